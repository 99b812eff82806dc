//! Plaintext detection for hooks (`sesto scan`, sesto's own commits).
//!
//! Three kinds of finding: a value the reader's identities can read, found
//! verbatim (one leftmost-longest aho-corasick pass over the content for all
//! values and the lines of multi-line values); a known token shape
//! ([`rules`]); and, under `.sesto/`, anything but the roster and well-formed
//! age node files. A finding names the file, the line, the rule and, for a
//! known value, the secret's path; never the bytes that matched.

pub mod rules;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Serialize;

/// Values shorter than this are not searched for: `yes` or `8080` would be
/// found everywhere and mean nothing.
pub const MIN_KNOWN: usize = 8;

/// Text on a line that silences every finding on that line (written in a
/// comment: `# sesto:allow`).
pub const ALLOW_MARK: &[u8] = b"sesto:allow";

/// Rule name of a known value found in plaintext.
pub const KNOWN_VALUE: &str = "known-value";
/// Rule name of a file in `.sesto/` that sesto does not write there.
pub const SESTO_LAYOUT: &str = "sesto-layout";
/// Rule name of a node file in `.sesto/` that is not a well-formed age file.
pub const SESTO_NODE: &str = "sesto-node";

/// One thing found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Finding {
    /// The file, as the caller named it.
    pub file: String,
    /// The 1-based line where the match starts (1 for whole-file findings).
    pub line: usize,
    /// The rule that matched.
    pub rule: String,
    /// For a known value: the path of the secret it is (never the value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The searches to make, built once and used on many files.
pub struct Scanner {
    /// Every known value and line of one; the automaton holds the only copy.
    known: Option<AhoCorasick>,
    /// The secret path of each pattern of `known`, by pattern index.
    names: Vec<String>,
}

impl Scanner {
    /// A scanner of token shapes and structure only (no values known).
    pub fn without_values() -> Scanner {
        Scanner {
            known: None,
            names: Vec::new(),
        }
    }

    /// A scanner that also looks for each of `values` (secret path, bytes):
    /// the whole value and each of its lines, where [`MIN_KNOWN`] bytes or
    /// longer. The bytes are copied into the automaton only; callers can
    /// drop (and zeroize) theirs at once.
    pub fn new<'a>(values: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Scanner {
        let mut patterns: Vec<&[u8]> = Vec::new();
        let mut names = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (name, value) in values {
            let lines = value
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .map(trim_ascii);
            for p in std::iter::once(value).chain(lines) {
                if p.len() >= MIN_KNOWN && seen.insert(p) {
                    patterns.push(p);
                    names.push(name.to_string());
                }
            }
        }
        let known = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(&patterns)
                .expect("literal patterns always build")
        });
        Scanner { known, names }
    }

    /// How many values (and lines of values) are searched for.
    pub fn known_count(&self) -> usize {
        self.names.len()
    }

    /// Scans one file's bytes (any bytes: binary, invalid UTF-8, NULs).
    /// `file` is the name used in findings; a path inside `.sesto/` gets the
    /// structure check instead of a content scan, except for the roster.
    pub fn scan(&self, file: &str, bytes: &[u8]) -> Vec<Finding> {
        if let Some(rule) = sesto_relative(file).and_then(|rel| check_sesto_file(rel, Some(bytes)))
        {
            return vec![finding(file, 1, rule, None)];
        }
        if !reads_content(file) {
            return Vec::new();
        }
        let mut hits: Vec<(usize, &str, Option<&str>)> = Vec::new();
        if let Some(ac) = &self.known {
            for m in ac.find_iter(bytes) {
                hits.push((
                    m.start(),
                    KNOWN_VALUE,
                    Some(&self.names[m.pattern().as_usize()]),
                ));
            }
        }
        for (rule, re) in rules::compiled() {
            for m in re.find_iter(bytes) {
                hits.push((m.start(), rule.name, None));
            }
        }
        hits.sort_by_key(|h| h.0);
        let mut lines = LineCounter::new(bytes);
        let mut out: Vec<Finding> = Vec::new();
        // Whether the line of the last hit is allowed, so a long line with
        // many hits is searched for the mark once.
        let mut allowed: Option<(usize, bool)> = None;
        for (at, rule, secret) in hits {
            let line = lines.locate(at);
            let allow = match allowed {
                Some((l, a)) if l == line => a,
                _ => {
                    let a = contains(lines.line_bytes(at), ALLOW_MARK);
                    allowed = Some((line, a));
                    a
                }
            };
            if allow {
                continue;
            }
            let f = finding(file, line, rule, secret);
            if !out.contains(&f) {
                out.push(f);
            }
        }
        out
    }
}

fn finding(file: &str, line: usize, rule: &str, secret: Option<&str>) -> Finding {
    Finding {
        file: file.to_string(),
        line,
        rule: rule.to_string(),
        secret: secret.map(str::to_string),
    }
}

/// Whether [`Scanner::scan`] searches the content of `file`: every file but
/// the node files in `.sesto/`, which are ciphertext and get the structure
/// check only. A caller can skip reading the store's values when no file
/// it scans needs them.
pub fn reads_content(file: &str) -> bool {
    sesto_relative(file).is_none_or(|rel| !rel.starts_with("nodes/"))
}

/// The part of `path` after its first `.sesto` component, if it has one:
/// `.sesto/nodes/3f/….age` → `nodes/3f/….age`.
pub fn sesto_relative(path: &str) -> Option<&str> {
    let mut rest = path;
    loop {
        if let Some(r) = rest.strip_prefix(".sesto/") {
            return Some(r);
        }
        let (_, after) = rest.split_once('/')?;
        rest = after;
    }
}

/// Checks a file that sits in `.sesto/` (`rel` is its path below it): the
/// roster, its signature, the roster log and `.gitattributes` are allowed, and node files
/// where either format's layout puts them (`nodes/3f/<id>.age`,
/// `nodes/3/f/2/a/<id>.age`) whose bytes (when given) open as an age file. Returns the rule broken, if any.
pub fn check_sesto_file(rel: &str, bytes: Option<&[u8]>) -> Option<&'static str> {
    if matches!(
        rel,
        "roster.yaml" | "roster.sig" | "roster.log" | ".gitattributes"
    ) {
        return None;
    }
    if crate::format::node::NodeId::from_any_rel_path(rel).is_none() {
        return Some(SESTO_LAYOUT);
    }
    match bytes {
        Some(b) if !is_age_file(b) => Some(SESTO_NODE),
        _ => None,
    }
}

/// Whether `bytes` start with a well-formed age header (the body is not read).
pub fn is_age_file(bytes: &[u8]) -> bool {
    age::Decryptor::new_buffered(bytes).is_ok()
}

/// Maps byte offsets, asked for in increasing order, to lines, counting
/// newlines once over the content.
struct LineCounter<'a> {
    bytes: &'a [u8],
    /// Offset of the start of the line `line`.
    start: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            start: 0,
            line: 1,
        }
    }

    /// The line number holding offset `at`.
    fn locate(&mut self, at: usize) -> usize {
        while let Some(nl) = self.bytes[self.start..at].iter().position(|&b| b == b'\n') {
            self.start += nl + 1;
            self.line += 1;
        }
        self.line
    }

    /// The bytes of the line holding `at`, the last offset located.
    fn line_bytes(&self, at: usize) -> &'a [u8] {
        let end = self.bytes[at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.bytes.len(), |n| at + n);
        &self.bytes[self.start..end]
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn trim_ascii(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_values_and_their_lines_but_never_says_them() {
        let s = Scanner::new([
            ("prod/db", &b"hunter2hunter2"[..]),
            ("prod/pem", b"short\nline-of-a-key-123\n"),
        ]);
        let text =
            b"a\nb = hunter2hunter2\nline-of-a-key-123 # x\nok hunter2hunter2 # sesto:allow\n";
        let found = s.scan("conf", text);
        assert_eq!(
            found,
            vec![
                finding("conf", 2, KNOWN_VALUE, Some("prod/db")),
                finding("conf", 3, KNOWN_VALUE, Some("prod/pem")),
            ]
        );
    }

    #[test]
    fn sesto_paths_are_checked_for_layout() {
        assert_eq!(sesto_relative("a/.sesto/x"), Some("x"));
        assert_eq!(sesto_relative("a/b.sesto/x"), None);
        let id = "3f2a9c00000000000000000000000000";
        assert_eq!(check_sesto_file(&format!("nodes/3f/{id}.age"), None), None);
        assert_eq!(
            check_sesto_file(&format!("nodes/3e/{id}.age"), None),
            Some(SESTO_LAYOUT)
        );
        assert_eq!(check_sesto_file("notes.txt", None), Some(SESTO_LAYOUT));
        assert_eq!(
            check_sesto_file(&format!("nodes/3f/{id}.age"), Some(b"junk")),
            Some(SESTO_NODE)
        );
        assert_eq!(check_sesto_file("roster.yaml", Some(b"junk")), None);
    }

    #[test]
    fn hostile_bytes_do_not_panic() {
        let s = Scanner::new([("x", &b"abcdefgh"[..])]);
        let mut bytes = vec![0u8, 0xff, 0xfe, b'\n'];
        bytes.extend(std::iter::repeat_n(b'a', 1 << 20));
        bytes.extend_from_slice(b"abcdefgh");
        assert_eq!(s.scan("../x", &bytes).len(), 1);
        assert!(s.scan("", b"").is_empty());
    }
}
