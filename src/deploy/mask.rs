//! Masking secret values in a stream of output (`sesto exec --mask`).
//!
//! Each value, and each line of a value that spans lines, is replaced by
//! `***`. Output is passed on as soon as it cannot be the start of a value,
//! so a child's progress lines are not held back; only a tail that could
//! still grow into a value waits for more bytes. Matching is leftmost-longest,
//! so a value that begins with a shorter one is masked whole.

use std::io::{self, Read, Write};

use aho_corasick::{AhoCorasick, MatchKind};
use zeroize::Zeroizing;

/// What a value becomes.
pub const MASK: &[u8] = b"***";

/// Values shorter than this are not masked: masking `1` or `yes` would
/// garble output and hide nothing.
pub const MIN_MASKED: usize = 4;

/// A set of values to mask.
pub struct Masker {
    matcher: Option<AhoCorasick>,
    patterns: Vec<Zeroizing<Vec<u8>>>,
}

impl Masker {
    /// Masks these values and their lines.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Masker {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        for v in values {
            let lines = v
                .split(|&b| b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
            for p in std::iter::once(v).chain(lines) {
                if p.len() >= MIN_MASKED && !patterns.iter().any(|q| q[..] == *p) {
                    patterns.push(Zeroizing::new(p.to_vec()));
                }
            }
        }
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| &p[..]))
                .expect("a few thousand literal patterns build")
        });
        Masker { matcher, patterns }
    }

    /// Copies `input` to `output` with values masked, flushing after each
    /// piece, until `input` ends.
    pub fn copy(&self, mut input: impl Read, mut output: impl Write) -> io::Result<()> {
        let mut buf = Zeroizing::new(Vec::with_capacity(16 << 10));
        let mut chunk = Zeroizing::new(vec![0u8; 8 << 10]);
        loop {
            let n = match input.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let eof = n == 0;
            buf.extend_from_slice(&chunk[..n]);
            let done = self.mask_into(&buf, eof, &mut output)?;
            output.flush()?;
            buf.drain(..done);
            if eof {
                return Ok(());
            }
        }
    }

    /// Writes the part of `buf` that is settled, masked; returns how many
    /// bytes of `buf` it consumed.
    fn mask_into(&self, buf: &[u8], eof: bool, out: &mut impl Write) -> io::Result<usize> {
        let Some(matcher) = &self.matcher else {
            out.write_all(buf)?;
            return Ok(buf.len());
        };
        // A match starting before `safe` cannot grow with more input.
        let safe = if eof {
            buf.len()
        } else {
            buf.len() - self.open_tail(buf)
        };
        let mut pos = 0;
        for m in matcher.find_iter(buf) {
            if m.start() >= safe {
                break;
            }
            out.write_all(&buf[pos..m.start()])?;
            out.write_all(MASK)?;
            pos = m.end();
        }
        let end = safe.max(pos);
        out.write_all(&buf[pos..end])?;
        Ok(end)
    }

    /// The length of the longest tail of `buf` that is the start of a value.
    fn open_tail(&self, buf: &[u8]) -> usize {
        let longest = self.patterns.iter().map(|p| p.len()).max().unwrap_or(0);
        (1..=longest.min(buf.len()))
            .rev()
            .find(|&k| {
                let tail = &buf[buf.len() - k..];
                self.patterns.iter().any(|p| p.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(self.data.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn masked(values: &[&[u8]], input: &[u8], step: usize) -> String {
        let m = Masker::new(values.iter().copied());
        let mut out = Vec::new();
        m.copy(Trickle { data: input, step }, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_masked_whatever_the_read_sizes() {
        let input = b"user=admin pass=hunter22 again:hunter22\nend";
        for step in [1, 2, 3, 7, 100] {
            assert_eq!(
                masked(&[b"hunter22"], input, step),
                "user=admin pass=*** again:***\nend"
            );
        }
    }

    #[test]
    fn a_value_starting_with_another_is_masked_whole() {
        for step in [1, 5, 64] {
            assert_eq!(
                masked(&[b"pass", b"password1"], b"x password1 pass passwor", step),
                "x *** *** ***wor"
            );
        }
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_masked() {
        let key = b"-----BEGIN KEY-----\r\nAAAABBBB\n-----END KEY-----";
        let out = masked(&[key], b"printed: AAAABBBB and the whole: ", 3);
        assert_eq!(out, "printed: *** and the whole: ");
    }

    #[test]
    fn short_values_and_no_values_pass_through() {
        assert_eq!(masked(&[b"yes", b""], b"yes yes", 1), "yes yes");
        assert_eq!(masked(&[], b"anything", 3), "anything");
    }

    #[test]
    fn output_not_starting_a_value_is_not_held_back() {
        let m = Masker::new([&b"secretvalue"[..]]);
        let mut out = Vec::new();
        let used = m.mask_into(b"progress 50%\nsec", false, &mut out).unwrap();
        assert_eq!(out, b"progress 50%\n");
        assert_eq!(used, 13);
    }
}
