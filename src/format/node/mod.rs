//! The node and roster schema, their exact byte layout and padding.
//!
//! Pure: no I/O and no cryptography beyond hashing. A node's plaintext is the
//! body (one YAML document), the separator `---`, the signature document, then
//! Padmé padding as a YAML comment. Signatures cover the body's exact bytes,
//! which parsing keeps; re-serialising serves only to refuse YAML that sesto
//! would not have written (aliases, comments, reordered or duplicate fields).
//! `docs/format.md` is the format's specification for users.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, Zeroizing};

pub mod chunks;
mod codec;
mod layout;
mod roster;
pub(crate) use codec::yaml_error;
pub use codec::{decode_body, encode_body};
pub use layout::{
    assemble, node_signed_message, padded_len, sha256_hex, split, Parts, SignatureDoc,
};
pub use roster::{check_member_name, Access, Member, Roster};

/// The store format this sesto writes for new stores: the roster's `sesto`.
/// Version 2 moved node files to four levels of one-hex-digit shards
/// (`nodes/3/f/2/a/<id>.age`); see [`NodeId::rel_path`].
pub const FORMAT: u32 = 2;
/// The oldest store format this sesto reads (and `sesto migrate` upgrades).
pub const OLDEST_FORMAT: u32 = 1;
/// The node body schema, a body's `sesto`: the same in store formats 1 and 2
/// (version 2 changed where files live, not what they hold).
pub const BODY_FORMAT: u32 = 1;
/// Plaintexts larger than this are refused before they are read.
pub const MAX_PLAINTEXT: usize = 16 << 20;
/// Largest secret value: stored as base64 and padded, it stays under
/// [`MAX_PLAINTEXT`], so every value that can be written can be read.
pub const MAX_VALUE: usize = 11 << 20;
/// Deepest path: folders within folders, at most this many names.
pub const MAX_DEPTH: usize = 64;
/// Node files larger than this are refused before they are read.
pub const MAX_NODE_FILE: u64 = 64 << 20;

/// The error for a format version this sesto does not read, saying what to
/// do; `reads` is the newest version it reads for that kind of document.
pub fn version_error(found: u64, reads: u32) -> FormatError {
    let what = if found > u64::from(reads) {
        "upgrade sesto"
    } else {
        "the file is damaged or not sesto's"
    };
    let versions = if reads <= OLDEST_FORMAT {
        format!("version {reads}")
    } else {
        format!("versions {OLDEST_FORMAT} to {reads}")
    };
    FormatError::Invalid(format!(
        "format version {found}; this sesto reads {versions}: {what}"
    ))
}

/// The format version a document declares on its first line (`sesto: N`),
/// read without parsing the rest, so a newer format is named as such
/// rather than as a schema error.
pub fn declared_version(bytes: &[u8]) -> Option<u64> {
    let line = bytes.split(|b| *b == b'\n').next()?;
    let digits = std::str::from_utf8(line).ok()?.strip_prefix("sesto: ")?;
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Errors in a node's or roster's plaintext structure.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// The plaintext does not hold a body and a signature document.
    #[error("no signature document after the body")]
    NoSignature,
    /// The YAML could not be parsed into the schema.
    #[error("malformed YAML: {0}")]
    Yaml(String),
    /// The YAML parsed but is not in the form sesto writes (aliases, comments, order).
    #[error("YAML is not in canonical form (aliases, anchors, comments or reordered fields)")]
    NotCanonical,
    /// A field holds a value outside the format's rules.
    #[error("{0}")]
    Invalid(String),
}

/// A node id: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; 16]);

impl NodeId {
    /// A fresh random id.
    pub fn random() -> NodeId {
        use rand::Rng;
        NodeId(rand::rngs::OsRng.gen())
    }

    /// The relative path of this node's file under `.sesto/` in a store of
    /// `format`: version 1 shards by the first two hex digits
    /// (`nodes/3f/<id>.age`), version 2 by each of the first four
    /// (`nodes/3/f/2/a/<id>.age`), so that no git tree one change rewrites
    /// grows past a few KB at a million nodes. [`NodeId::from_rel_path`] is
    /// its inverse.
    pub fn rel_path(&self, format: u32) -> String {
        let hex = self.to_string();
        match format {
            1 => format!("nodes/{}/{hex}.age", &hex[..2]),
            _ => format!(
                "nodes/{}/{}/{}/{}/{hex}.age",
                &hex[..1],
                &hex[1..2],
                &hex[2..3],
                &hex[3..4]
            ),
        }
    }

    /// The node whose file `rel` (relative to `.sesto/`) is in a store of
    /// `format`, where `rel` is exactly the path [`NodeId::rel_path`] gives
    /// it; `None` for anything else (another shard, the other format's
    /// layout, an id not in canonical form, more levels). Every reader of
    /// node paths (the merge driver, history, the rollback check, `fsck`,
    /// `verify`, the commit scan) goes through here, so that one function
    /// owns the layout.
    pub fn from_rel_path(rel: &str, format: u32) -> Option<NodeId> {
        let file = rel.rsplit('/').next()?;
        let id: NodeId = file.strip_suffix(".age")?.parse().ok()?;
        // The id parsed, so the file name is 32 lowercase hex digits and
        // `.age`; the rest must be exactly where rel_path puts it.
        (id.rel_path(format) == rel).then_some(id)
    }

    /// [`NodeId::from_rel_path`] in either layout: the node and the format
    /// whose layout `rel` is in. For readers of paths that hold no roster
    /// (the commit scan, the merge driver's path).
    pub fn from_any_rel_path(rel: &str) -> Option<(NodeId, u32)> {
        (OLDEST_FORMAT..=FORMAT)
            .find_map(|format| NodeId::from_rel_path(rel, format).map(|id| (id, format)))
    }
}

/// How many directory levels below `nodes/` a store of `format` shards its
/// node files into.
pub fn shard_levels(format: u32) -> usize {
    match format {
        1 => 1,
        _ => 4,
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// An id that is not 32 lowercase hex digits.
#[derive(Debug, thiserror::Error)]
#[error("invalid id {shown:?}: ids are 32 lowercase hex digits")]
pub struct BadId {
    shown: String,
}

impl FromStr for NodeId {
    type Err = BadId;
    fn from_str(s: &str) -> Result<NodeId, BadId> {
        let bad = || BadId {
            shown: s.chars().take(40).collect(),
        };
        let b = s.as_bytes();
        if b.len() != 32 || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks(2).enumerate() {
            let hex = |c: u8| if c <= b'9' { c - b'0' } else { c - b'a' + 10 };
            out[i] = hex(pair[0]) << 4 | hex(pair[1]);
        }
        Ok(NodeId(out))
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether a node is a folder or a secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A folder: holds entries.
    Folder,
    /// A secret: holds a value.
    Secret,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Folder => "folder",
            Kind::Secret => "secret",
        })
    }
}

/// A node's age identity (`AGE-SECRET-KEY-1…`), as held in its parent's entry.
/// Redacted in Debug and zeroized on drop.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeKey(String);

impl NodeKey {
    /// Wraps key text; the caller has checked its form with the age crate.
    pub fn new(text: String) -> NodeKey {
        NodeKey(text)
    }
    /// The secret key text. Handle with care: never print or log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl Drop for NodeKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NodeKey([redacted])")
    }
}

/// A secret's value: opaque bytes, kept as `!!binary` in YAML. Redacted in
/// Debug and zeroized on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Value(Zeroizing<Vec<u8>>);

impl Value {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Value {
        Value(Zeroizing::new(bytes))
    }
    /// The secret bytes. Handle with care: never print or log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value([{} bytes redacted])", self.0.len())
    }
}

/// Marker the serializer writes; [`encode_body`] turns it into the core
/// schema's `!!binary` tag, which serde_yaml cannot emit by itself.
const BINARY_LOCAL_TAG: &str = "!sesto-binary";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine;
        let encoded = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*self.0));
        let tagged = serde_yaml::value::TaggedValue {
            tag: serde_yaml::value::Tag::new(BINARY_LOCAL_TAG),
            value: serde_yaml::Value::String(encoded.to_string()),
        };
        tagged.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        use base64::Engine;
        // serde_yaml resolves `!!binary` to a plain string.
        let text = Zeroizing::new(String::deserialize(d)?);
        let compact: Zeroizing<String> = Zeroizing::new(text.split_whitespace().collect());
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map(Value::new)
            .map_err(|_| serde::de::Error::custom("value is not valid base64"))
    }
}

/// One entry of a folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The entry's name within its folder.
    pub name: String,
    /// Folder or secret.
    pub kind: Kind,
    /// The child's node id.
    pub id: NodeId,
    /// The child's age identity.
    pub key: NodeKey,
}

/// The decrypted body of a node: the first YAML document of its plaintext.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    /// Format version.
    pub sesto: u32,
    /// The store id from the roster.
    pub store: String,
    /// The node's own id: binds content to its location.
    pub id: NodeId,
    /// Folder or secret.
    pub kind: Kind,
    /// The node's name (the root's is empty).
    pub name: String,
    /// +1 on every write of this node.
    pub version: u64,
    /// Shared folders: where the folder sits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Shared folders: the folder's own recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// Folders: entries sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Entry>,
    /// Secrets: the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Secrets: time of the last change (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// Secrets: the member who made the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// Secrets: members who could read this value and have lost access since;
    /// cleared when the value changes (`sesto stale` lists these).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_to: Vec<String>,
}

impl Body {
    /// A new, empty node of `kind`, at version 0: its first write makes it 1.
    pub fn new(store: &str, id: NodeId, kind: Kind, name: &str) -> Body {
        Body {
            sesto: BODY_FORMAT,
            store: store.to_string(),
            id,
            kind,
            name: name.to_string(),
            version: 0,
            path: None,
            recipient: None,
            children: vec![],
            value: None,
            updated: None,
            updated_by: None,
            exposed_to: vec![],
        }
    }

    /// Checks the rules the schema cannot express.
    pub fn check(&self) -> Result<(), FormatError> {
        let invalid = |m: String| Err(FormatError::Invalid(m));
        if self.sesto != BODY_FORMAT {
            return Err(version_error(u64::from(self.sesto), BODY_FORMAT));
        }
        match self.kind {
            Kind::Folder => {
                if self.value.is_some() {
                    return invalid("a folder holds a value".into());
                }
                for pair in self.children.windows(2) {
                    if pair[0].name >= pair[1].name {
                        return invalid("folder entries are not sorted and unique".into());
                    }
                }
                for e in &self.children {
                    check_name(&e.name).map_err(|e| FormatError::Invalid(e.to_string()))?;
                }
            }
            Kind::Secret => {
                if !self.children.is_empty() {
                    return invalid("a secret holds entries".into());
                }
                if self.value.is_none() {
                    return invalid("a secret has no value".into());
                }
            }
        }
        Ok(())
    }

    /// The entry called `name`, if any.
    pub fn child(&self, name: &str) -> Option<&Entry> {
        self.children
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.children[i])
    }

    /// Inserts or replaces an entry, keeping entries sorted.
    pub fn put_child(&mut self, entry: Entry) {
        match self.children.binary_search_by(|e| e.name.cmp(&entry.name)) {
            Ok(i) => self.children[i] = entry,
            Err(i) => self.children.insert(i, entry),
        }
    }

    /// Removes the entry called `name`.
    pub fn remove_child(&mut self, name: &str) -> Option<Entry> {
        let i = self
            .children
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()?;
        Some(self.children.remove(i))
    }
}

/// A name that breaks the naming rules.
#[derive(Debug, thiserror::Error)]
#[error("invalid name {shown:?}: {reason}")]
pub struct BadName {
    shown: String,
    reason: &'static str,
}

/// Names: 1–255 bytes of UTF-8, no `/`, no control characters, not `.` or `..`.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let bad = |reason| {
        let mut shown: String = name.chars().take(60).collect();
        if shown.len() < name.len() {
            shown.push('…');
        }
        Err(BadName { shown, reason })
    };
    if name.is_empty() {
        return bad("names may not be empty");
    }
    if name.len() > 255 {
        return bad("names are at most 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("`.` and `..` are not names");
    }
    if name.contains('/') {
        return bad("names may not contain `/`");
    }
    if name.chars().any(char::is_control) {
        return bad("names may not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
