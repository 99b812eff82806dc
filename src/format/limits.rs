//! The parsing policy for everything that arrives from a repository or a
//! file: what is bounded, and the one check every YAML parse of outside
//! bytes goes through first.
//!
//! Sizes are capped where the bytes are read, before any parse:
//!
//! | input | cap |
//! |---|---|
//! | node file | [`crate::format::node::MAX_NODE_FILE`] (64 MiB) |
//! | node plaintext | [`crate::format::node::MAX_PLAINTEXT`] (16 MiB) |
//! | roster, roster.sig | 1 MiB each |
//! | identity file | [`crate::format::crypto::MAX_IDENTITY_FILE`] (64 KiB), regular files only |
//! | template | [`crate::deploy::template::MAX_TEMPLATE`] (16 MiB), a regular file or stdin |
//! | env file | 1 MiB, a regular file; [`crate::deploy::env::MAX_ENV_VARS`] (10,000) variables from all env files together |
//! | signature document | 8 KiB, read by a line parser (never YAML) |
//! | YAML nesting | [`MAX_DEPTH`] levels, [`MAX_INDENT`] columns of indentation |
//!
//! Nothing unsigned is parsed as YAML beyond the roster, which must be read
//! to learn who may sign; a node's body is parsed only after its signature
//! checks out. libyaml's cost grows faster than linearly with nesting
//! (100,000 nested `[` took over ten minutes), so [`check_yaml`] refuses deep
//! nesting with one linear scan before serde_yaml sees the bytes.

use crate::format::node::FormatError;

/// Deepest nesting of YAML collections accepted (flow brackets, and block
/// indicators on one line). sesto's own documents nest at most four deep.
pub const MAX_DEPTH: usize = 32;

/// Widest indentation accepted, which bounds block nesting.
pub const MAX_INDENT: usize = 256;

/// Refuses YAML whose nesting is deeper than [`MAX_DEPTH`] or indented
/// further than [`MAX_INDENT`], in time linear in its length and without
/// allocating. Quoted scalars, comments and block scalars (`|`, `>`) are
/// skipped as content; a `[` or `{` counts only where a collection can
/// start (at a value's start, or inside another flow collection), so
/// `name: a[b` is a plain scalar as YAML reads it.
pub fn check_yaml(bytes: &[u8]) -> Result<(), FormatError> {
    let deep = || {
        Err(FormatError::Invalid(format!(
            "YAML nested deeper than {MAX_DEPTH} levels or indented past {MAX_INDENT} columns"
        )))
    };
    // Indentation of the line that opened a block scalar, while in one.
    let mut block_scalar: Option<usize> = None;
    let mut flow = 0usize;
    for line in bytes.split(|b| *b == b'\n') {
        let indent = line.iter().take_while(|b| **b == b' ').count();
        let rest = &line[indent..];
        if let Some(opener) = block_scalar {
            if rest.is_empty() || indent > opener {
                continue;
            }
            block_scalar = None;
        }
        if indent > MAX_INDENT {
            return deep();
        }
        let mut depth_here = 0usize;
        let mut value_start = true;
        let mut quote: Option<u8> = None;
        let mut i = 0;
        while i < rest.len() {
            let c = rest[i];
            if let Some(q) = quote {
                match c {
                    b'\\' if q == b'"' => i += 1,
                    b'\'' if q == b'\'' && rest.get(i + 1) == Some(&b'\'') => i += 1,
                    _ if c == q => quote = None,
                    _ => {}
                }
                i += 1;
                continue;
            }
            let next_blank = rest.get(i + 1).is_none_or(|n| *n == b' ');
            match c {
                b'#' if i == 0 || rest[i - 1] == b' ' => break,
                b'[' | b'{' if value_start || flow > 0 => {
                    flow += 1;
                    value_start = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    value_start = false;
                }
                b',' if flow > 0 => value_start = true,
                b'\'' | b'"' if value_start || flow > 0 => {
                    quote = Some(c);
                    value_start = false;
                }
                b'-' | b'?' if value_start && next_blank => depth_here += 1,
                b':' if next_blank => {
                    depth_here += 1;
                    value_start = true;
                }
                b'|' | b'>' if value_start && flow == 0 => {
                    let tail = &rest[i + 1..];
                    if tail
                        .iter()
                        .all(|b| matches!(b, b'+' | b'-' | b' ' | b'0'..=b'9'))
                    {
                        block_scalar = Some(indent);
                        break;
                    }
                    value_start = false;
                }
                b' ' | b'\t' => {}
                _ => value_start = false,
            }
            if flow + depth_here > MAX_DEPTH {
                return deep();
            }
            i += 1;
        }
    }
    Ok(())
}

/// Reads a file named on the command line (a template, an env file): a
/// regular file only, opened without blocking (a FIFO or device is refused
/// rather than waited on; pipe data in through stdin, `-`, instead), and at
/// most `cap` bytes. Errors say which of these it was.
pub fn read_regular(path: &std::path::Path, cap: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a FIFO, device or directory); pipe it to stdin as `-` instead",
        ));
    }
    let limit = if cap >= 1 << 20 {
        format!("{} MiB", cap >> 20)
    } else {
        format!("{} KiB", cap >> 10)
    };
    let too_big = || std::io::Error::other(format!("larger than the {limit} limit"));
    if meta.len() > cap as u64 {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(cap as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > cap {
        return Err(too_big());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> bool {
        check_yaml(text.as_bytes()).is_ok()
    }

    #[test]
    fn documents_sesto_writes_pass() {
        assert!(ok("sesto: 1\nmembers:\n  alice:\n    admin: true\n    keys:\n    - ssh-ed25519 AAAA alice@host\ngrants: {}\n"));
        assert!(ok("name: a[b{c\nlist: []\nmap: {}\n"));
        assert!(ok("name: '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[['\n"));
        assert!(ok(
            "name: \"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\\\"{\"\n"
        ));
        assert!(ok("text: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n  - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -\nnext: 1\n"));
        assert!(ok("# [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nk: v # {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\n"));
        assert!(ok(&format!("k: [{}]\n", "[".repeat(20) + &"]".repeat(20))));
    }

    #[test]
    fn deep_nesting_is_refused() {
        assert!(!ok(&"[".repeat(100_000)));
        assert!(!ok(&format!("k: {}", "{a: ".repeat(1000))));
        assert!(!ok(&"- ".repeat(1000)));
        assert!(!ok(&format!("k: {}", "[".repeat(MAX_DEPTH + 1))));
        assert!(!ok(&format!("{}k: v\n", " ".repeat(MAX_INDENT + 1))));
        // A block scalar does not hide what follows it.
        assert!(!ok(&format!("t: |\n  x\n{}", "[".repeat(100))));
    }

    #[test]
    fn the_scan_is_linear() {
        // 16 MiB of brackets is refused after the first few; 16 MiB of
        // harmless text is scanned once.
        assert!(!ok(&"[".repeat(16 << 20)));
        assert!(ok(&"a: b\n".repeat(3 << 20)));
    }
}
