//! The roster log: the signed rosters that came before the current one, in
//! `.sesto/roster.log`, so that readers can follow the chain of admin
//! signatures where git history lacks a link: several roster changes in one
//! commit (an infrastructure repository), a squash merge, a rebase that
//! dropped a commit, a shallow clone.
//!
//! One line per roster: `<base64 roster.yaml> <base64 roster.sig>`, oldest
//! first, the newest [`KEEP`] kept. git merges the file as a union of lines
//! (`merge=union` in `.sesto/.gitattributes`). The log vouches for nothing:
//! a roster from it is used only as a link that a signature chain names by
//! hash and that verifies, exactly as one found in git history. Lines that
//! do not parse are skipped.

use base64::Engine as _;

use crate::format::node;

/// The log's file name in `.sesto/`.
pub const FILE: &str = "roster.log";

/// How many earlier rosters the log keeps.
pub const KEEP: usize = 64;

/// Largest log read; past it, nothing is read from it.
pub const MAX_LOG: u64 = 8 << 20;

/// The line `.sesto/.gitattributes` needs for the log.
pub const ATTRIBUTE: &str = "roster.log merge=union";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The rosters in a log: bytes and signature of each, oldest first.
pub(crate) fn parse(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    if text.len() as u64 > MAX_LOG {
        return Vec::new();
    }
    text.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let (yaml, sig) = line.trim().split_once(' ')?;
            Some((B64.decode(yaml).ok()?, B64.decode(sig).ok()?))
        })
        .collect()
}

/// The log `old` with the roster `bytes` (signed by `sig`) added last, once,
/// and only the newest [`KEEP`] kept.
pub(crate) fn append(old: &[u8], added: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut entries = parse(old);
    for (bytes, sig) in added {
        let hash = node::sha256_hex(bytes);
        entries.retain(|(b, _)| node::sha256_hex(b) != hash);
        entries.push((bytes.to_vec(), sig.to_vec()));
    }
    let extra = entries.len().saturating_sub(KEEP);
    let mut out = Vec::new();
    for (bytes, sig) in entries.into_iter().skip(extra) {
        out.extend_from_slice(B64.encode(bytes).as_bytes());
        out.push(b' ');
        out.extend_from_slice(B64.encode(sig).as_bytes());
        out.push(b'\n');
    }
    out
}

/// `.gitattributes` text with the log's attribute, added where missing.
pub(crate) fn with_attribute(attributes: &str) -> Option<String> {
    if attributes.lines().any(|l| l.trim() == ATTRIBUTE) {
        return None;
    }
    let mut text = attributes.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(ATTRIBUTE);
    text.push('\n');
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_once_keeps_the_newest_and_skips_garbage() {
        let mut log = b"garbage line\n\xff\xfe not utf-8\nYQ== !!!\n".to_vec();
        for i in 0..KEEP + 3 {
            let r = format!("roster {i}");
            log = append(&log, &[(r.as_bytes(), b"sig")]);
        }
        log = append(&log, &[(format!("roster {}", KEEP + 2).as_bytes(), b"sig")]);
        let entries = parse(&log);
        assert_eq!(entries.len(), KEEP);
        assert_eq!(entries[0].0, b"roster 3");
        assert_eq!(
            entries.last().unwrap().0,
            format!("roster {}", KEEP + 2).as_bytes()
        );
    }

    #[test]
    fn an_oversized_log_is_not_read() {
        let huge = vec![b'A'; MAX_LOG as usize + 1];
        assert!(parse(&huge).is_empty());
    }

    #[test]
    fn the_attribute_is_added_once() {
        let before = "*.age binary merge=sesto diff=sesto\nroster.yaml -merge\nroster.sig -merge\n";
        let text = with_attribute(before).unwrap();
        assert!(text.ends_with("roster.log merge=union\n"));
        assert_eq!(with_attribute(&text), None);
        assert_eq!(with_attribute(crate::GITATTRIBUTES), None);
    }
}
