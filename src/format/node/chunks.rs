//! Format version 2's chunked folders, as docs/format.md designs them: which
//! chunk holds a name, each chunk's node id, and the split trie a folder's
//! header keeps. Pure functions over bytes; no store uses them yet (this
//! sesto writes version 1), so they can be checked against the design first.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{FormatError, NodeId};

/// Most entries a chunk holds before an add splits it (bench/chunks.py).
pub const CHUNK_LIMIT: usize = 16;

/// Deepest prefix a trie may hold, in bits. 2^64 chunks never exist; the
/// bound is for hostile headers, and keeps a [`Prefix`] in one `u64`.
pub const MAX_DEPTH: u8 = 64;

/// Most chunks one folder may have: 2^20 chunks of 16 entries is far beyond
/// the 16 MiB a folder's plaintext may hold (155 bytes an entry).
pub const MAX_CHUNKS: usize = 1 << 20;

type HmacSha256 = Hmac<Sha256>;

/// A folder's secret bucket seed: 32 random bytes in its (encrypted) header.
/// Without it no one can tell which names share a chunk.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Seed([u8; 32]);

impl Seed {
    /// A fresh random seed.
    pub fn random() -> Seed {
        use rand::Rng;
        Seed(rand::rngs::OsRng.gen())
    }

    /// The seed from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Seed {
        Seed(bytes)
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        // HMAC takes a key of any length (RFC 2104): this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// The first 64 bits of HMAC-SHA256(seed, name): the bits that pick the
    /// name's chunk, most significant first.
    pub fn name_bits(&self, name: &str) -> u64 {
        let mac = self.mac(&[name.as_bytes()]);
        u64::from_be_bytes(std::array::from_fn(|i| mac[i]))
    }

    /// The node id of the chunk at `prefix`: the first 128 bits of
    /// HMAC-SHA256(seed, "sesto-chunk-v2\n" ‖ prefix as `0`s and `1`s). Two
    /// clones that split one chunk write the same files.
    pub fn chunk_id(&self, prefix: Prefix) -> NodeId {
        let mac = self.mac(&[b"sesto-chunk-v2\n", prefix.to_string().as_bytes()]);
        NodeId(std::array::from_fn(|i| mac[i]))
    }
}

/// The first `len` bits of a name's hash: the place of one chunk.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Prefix {
    /// The bits, left-aligned: bit 63 is the first; bits past `len` are 0.
    bits: u64,
    len: u8,
}

impl Prefix {
    /// The empty prefix: the one chunk of a folder that never split.
    pub const ROOT: Prefix = Prefix { bits: 0, len: 0 };

    /// Its length in bits.
    pub fn len(self) -> u8 {
        self.len
    }

    /// Whether it is [`Prefix::ROOT`].
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The prefix one bit longer, with `bit` appended; `None` at [`MAX_DEPTH`].
    pub fn child(self, bit: bool) -> Option<Prefix> {
        (self.len < MAX_DEPTH).then(|| Prefix {
            bits: self.bits | (u64::from(bit) << (63 - self.len)),
            len: self.len + 1,
        })
    }

    /// Whether the hash bits `h` start with this prefix.
    pub fn holds(self, h: u64) -> bool {
        self.len == 0 || (h ^ self.bits) >> (64 - u32::from(self.len)) == 0
    }

    /// Bit `i` (0 is the first) of `h`.
    fn bit_of(h: u64, i: u8) -> bool {
        (h >> (63 - i)) & 1 == 1
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for i in 0..self.len {
            f.write_str(if Prefix::bit_of(self.bits, i) {
                "1"
            } else {
                "0"
            })?;
        }
        Ok(())
    }
}

/// The chunks of a folder, as the set of prefixes that were split. Splits
/// only grow, so two sides' tries merge as the union of their splits; the
/// live chunks are the leaves.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Trie {
    /// Every split prefix; closed under parents (a split chunk's parent was
    /// split first).
    splits: std::collections::BTreeSet<Prefix>,
}

impl Trie {
    /// A folder's trie before any split: one chunk, [`Prefix::ROOT`].
    pub fn new() -> Trie {
        Trie::default()
    }

    /// Whether `p` was split (it is a tombstone, its entries in its children).
    pub fn is_split(&self, p: Prefix) -> bool {
        self.splits.contains(&p)
    }

    /// The live chunk that holds the hash bits `h`.
    pub fn owner(&self, h: u64) -> Prefix {
        let mut p = Prefix::ROOT;
        while self.is_split(p) {
            // `splits` is private and only `split`, `decode` and `union` (of
            // such sets) fill it, all refusing a split at MAX_DEPTH - 1: a
            // split prefix always has a child.
            p = p
                .child(Prefix::bit_of(h, p.len))
                .expect("a split prefix is shorter than MAX_DEPTH - 1");
        }
        p
    }

    /// Splits the live chunk `p` into its two children. Refuses a prefix that
    /// is not a live chunk, one at [`MAX_DEPTH`], and more than [`MAX_CHUNKS`].
    pub fn split(&mut self, p: Prefix) -> Result<(), FormatError> {
        if !self.is_live(p) {
            return Err(FormatError::Invalid(format!(
                "chunk {p} is not a live chunk"
            )));
        }
        if p.len + 1 >= MAX_DEPTH || self.splits.len() + 2 > MAX_CHUNKS {
            return Err(FormatError::Invalid(format!(
                "chunk {p} cannot split further"
            )));
        }
        self.splits.insert(p);
        Ok(())
    }

    /// Whether `p` is a live chunk: not split, and its parent split (or root).
    pub fn is_live(&self, p: Prefix) -> bool {
        !self.is_split(p) && (p.is_empty() || self.is_split(parent(p)))
    }

    /// The live chunks, in prefix order.
    pub fn leaves(&self) -> Vec<Prefix> {
        let mut out = Vec::with_capacity(self.splits.len() + 1);
        self.walk(Prefix::ROOT, &mut |p, split| {
            if !split {
                out.push(p);
            }
        });
        out
    }

    /// Both sides' splits: what a merge of two headers keeps.
    pub fn union(&self, other: &Trie) -> Trie {
        Trie {
            splits: self.splits.union(&other.splits).copied().collect(),
        }
    }

    /// Preorder, one bit a trie node (1 split, 0 leaf), packed most
    /// significant bit first, zero bits to the byte's end, base64.
    pub fn encode(&self) -> String {
        let mut bits = Vec::with_capacity(2 * self.splits.len() + 1);
        self.walk(Prefix::ROOT, &mut |_, split| bits.push(split));
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (i, b) in bits.iter().enumerate() {
            if *b {
                bytes[i / 8] |= 0x80 >> (i % 8);
            }
        }
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// Reads what [`Trie::encode`] writes, refusing anything else: anything
    /// but canonical base64, a trie cut short, deeper than [`MAX_DEPTH`] or
    /// with more than [`MAX_CHUNKS`] chunks, bytes or set bits after its end.
    pub fn decode(text: &str) -> Result<Trie, FormatError> {
        let bad = |why: &str| FormatError::Invalid(format!("chunk trie: {why}"));
        // 2 × MAX_CHUNKS bits, base64: refuse longer text before decoding it.
        if text.len() > (2 * MAX_CHUNKS / 8).div_ceil(3) * 4 {
            return Err(bad("too many chunks"));
        }
        use base64::Engine;
        // The standard engine takes only canonical base64: padded, no set
        // bits in the padding, so one trie has one text.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad("not canonical base64"))?;
        let bit = |i: usize| bytes.get(i / 8).map(|b| b & (0x80 >> (i % 8)) != 0);
        let mut trie = Trie::new();
        // Iterative preorder: the prefixes still to read, deepest last.
        let mut todo = vec![Prefix::ROOT];
        let mut i = 0;
        while let Some(p) = todo.pop() {
            let split = bit(i).ok_or_else(|| bad("cut short"))?;
            i += 1;
            if !split {
                continue;
            }
            if p.len + 1 >= MAX_DEPTH {
                return Err(bad("deeper than 63 bits"));
            }
            if trie.splits.len() + 2 > MAX_CHUNKS {
                return Err(bad("too many chunks"));
            }
            trie.splits.insert(p);
            todo.extend([p.child(true), p.child(false)].into_iter().flatten());
        }
        if i.div_ceil(8) != bytes.len() || (i..bytes.len() * 8).any(|j| bit(j) == Some(true)) {
            return Err(bad("bits after its end"));
        }
        Ok(trie)
    }

    /// Visits every trie node in preorder with whether it was split.
    fn walk(&self, root: Prefix, f: &mut impl FnMut(Prefix, bool)) {
        let mut todo = vec![root];
        while let Some(p) = todo.pop() {
            let split = self.is_split(p);
            f(p, split);
            if split {
                todo.extend([p.child(true), p.child(false)].into_iter().flatten());
            }
        }
    }
}

/// The prefix one bit shorter. Only called on a non-empty prefix.
fn parent(p: Prefix) -> Prefix {
    let len = p.len - 1;
    let mask = if len == 0 {
        0
    } else {
        u64::MAX << (64 - u32::from(len))
    };
    Prefix {
        bits: p.bits & mask,
        len,
    }
}

#[cfg(test)]
mod tests;
