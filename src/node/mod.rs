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
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

mod roster;
pub use roster::{check_member_name, Access, Member, Roster};

/// The format version written into every node and roster.
pub const FORMAT: u32 = 1;
/// Plaintexts larger than this are refused before they are read.
pub const MAX_PLAINTEXT: usize = 16 << 20;
/// Largest secret value: stored as base64 and padded, it stays under
/// [`MAX_PLAINTEXT`], so every value that can be written can be read.
pub const MAX_VALUE: usize = 11 << 20;
/// Deepest path: folders within folders, at most this many names.
pub const MAX_DEPTH: usize = 64;
/// Node files larger than this are refused before they are read.
pub const MAX_NODE_FILE: u64 = 64 << 20;
/// The separator between the body and the signature document.
const SEPARATOR: &[u8] = b"\n---\n";
/// Smallest padded plaintext: hides the size of short secrets entirely.
const MIN_PADDED: usize = 512;

/// The error for a format version this sesto does not read, saying what to do.
pub fn version_error(found: u64) -> FormatError {
    let what = if found > u64::from(FORMAT) {
        "upgrade sesto"
    } else {
        "the file is damaged or not sesto's"
    };
    FormatError::Invalid(format!(
        "format version {found}; this sesto reads version {FORMAT}: {what}"
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
        use rand::RngCore;
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        NodeId(bytes)
    }

    /// The relative path of this node's file under `.sesto/`, sharded by its
    /// first two hex digits.
    pub fn rel_path(&self) -> String {
        let hex = self.to_string();
        format!("nodes/{}/{}.age", &hex[..2], hex)
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
            sesto: FORMAT,
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
        if self.sesto != FORMAT {
            return Err(version_error(u64::from(self.sesto)));
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

/// Serialises a body to the exact bytes that will be signed.
pub fn encode_body(body: &Body) -> Zeroizing<Vec<u8>> {
    let text = Zeroizing::new(serde_yaml::to_string(body).expect("a body always serialises"));
    let local = format!("value: {BINARY_LOCAL_TAG} ");
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() + 8));
    for line in text.split_inclusive('\n') {
        // Top-level keys start at column 0, so this only ever matches the value field.
        match line.strip_prefix(local.as_str()) {
            Some(rest) => {
                out.extend_from_slice(b"value: !!binary ");
                out.extend_from_slice(rest.as_bytes());
            }
            None => out.extend_from_slice(line.as_bytes()),
        }
    }
    out
}

/// Parses body bytes, refusing anything that is not exactly what
/// [`encode_body`] would write for the parsed body (aliases, anchors, comments,
/// duplicate or reordered fields).
///
/// Most bodies take a fast path: a strict line parser for the layout
/// `encode_body` writes, accepting only plain scalars that serde_yaml also
/// writes plain, so what it accepts is canonical by construction. Anything
/// else (quoted names, say) goes through serde_yaml and a comparison with the
/// body written out again. Reading a folder of 200 entries is the bulk of a
/// `get`, and the fast path makes it about twenty times cheaper.
pub fn decode_body(bytes: &[u8]) -> Result<Body, FormatError> {
    let body = match decode_simple(bytes) {
        Some(body) => body,
        None => {
            match declared_version(bytes) {
                Some(v) if v != u64::from(FORMAT) => return Err(version_error(v)),
                _ => {}
            }
            crate::limits::check_yaml(bytes)?;
            let body: Body = serde_yaml::from_slice(bytes).map_err(yaml_error)?;
            if encode_body(&body).as_slice() != bytes {
                return Err(FormatError::NotCanonical);
            }
            body
        }
    };
    body.check()?;
    Ok(body)
}

type Lines<'a> = std::iter::Peekable<std::str::Split<'a, char>>;

/// The value of the next line if it is `key: value`, consuming it.
fn take<'a>(lines: &mut Lines<'a>, key: &str) -> Option<&'a str> {
    let value = lines.peek()?.strip_prefix(key)?.strip_prefix(": ")?;
    lines.next();
    Some(value)
}

/// The fast path of [`decode_body`]; `None` sends the body down the slow path.
fn decode_simple(bytes: &[u8]) -> Option<Body> {
    let text = std::str::from_utf8(bytes).ok()?.strip_suffix('\n')?;
    let lines = &mut text.split('\n').peekable();
    let sesto = number(take(lines, "sesto")?)?;
    let store = hex_id(take(lines, "store")?)?;
    let id = hex_id(take(lines, "id")?)?.parse().ok()?;
    let kind = kind_of(take(lines, "kind")?)?;
    let name = match take(lines, "name")? {
        "''" => String::new(),
        plain => plain_str(plain, false)?.to_string(),
    };
    let mut body = Body::new(store, id, kind, &name);
    body.sesto = u32::try_from(sesto).ok()?;
    body.version = number(take(lines, "version")?)?;
    if let Some(v) = take(lines, "path") {
        body.path = Some(plain_str(v, true)?.to_string());
    }
    if let Some(v) = take(lines, "recipient") {
        body.recipient = Some(plain_str(v, false)?.to_string());
    }
    if lines.peek() == Some(&"children:") {
        lines.next();
        while let Some(name) = take(lines, "- name") {
            body.children.push(Entry {
                name: plain_str(name, false)?.to_string(),
                kind: kind_of(take(lines, "  kind")?)?,
                id: hex_id(take(lines, "  id")?)?.parse().ok()?,
                key: NodeKey::new(age_key(take(lines, "  key")?)?.to_string()),
            });
        }
        if body.children.is_empty() {
            return None;
        }
    }
    if let Some(v) = take(lines, "value") {
        let b64 = v.strip_prefix("!!binary ")?;
        if b64.is_empty()
            || !b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
        {
            return None;
        }
        use base64::Engine;
        body.value = Some(Value::new(
            base64::engine::general_purpose::STANDARD.decode(b64).ok()?,
        ));
    }
    if let Some(v) = take(lines, "updated") {
        // Exactly `YYYY-MM-DDTHH:MM:SSZ`, which serde_yaml writes plain; any
        // other shape takes the slow path (found by tests/properties.rs: a
        // trailing `:` was taken here though serde_yaml quotes it).
        let ok = v.len() == 20
            && v.bytes().enumerate().all(|(i, c)| match i {
                4 | 7 => c == b'-',
                10 => c == b'T',
                13 | 16 => c == b':',
                19 => c == b'Z',
                _ => c.is_ascii_digit(),
            });
        if !ok {
            return None;
        }
        body.updated = Some(v.to_string());
    }
    if let Some(v) = take(lines, "updated_by") {
        body.updated_by = Some(plain_str(v, false)?.to_string());
    }
    if lines.peek() == Some(&"exposed_to:") {
        lines.next();
        while let Some(member) = lines.peek().and_then(|l| l.strip_prefix("- ")) {
            body.exposed_to.push(plain_str(member, false)?.to_string());
            lines.next();
        }
        if body.exposed_to.is_empty() {
            return None;
        }
    }
    lines.next().is_none().then_some(body)
}

fn kind_of(v: &str) -> Option<Kind> {
    match v {
        "folder" => Some(Kind::Folder),
        "secret" => Some(Kind::Secret),
        _ => None,
    }
}

/// A decimal number as serde_yaml writes it: digits, no leading zero.
fn number(v: &str) -> Option<u64> {
    let canonical =
        !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    canonical.then(|| v.parse().ok()).flatten()
}

/// 32 lowercase hex digits that serde_yaml writes plain: not all digits and
/// not a float such as `123e45` (those it quotes; they take the slow path).
fn hex_id(v: &str) -> Option<&str> {
    let hex = v.len() == 32 && v.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let letters = v.bytes().filter(|c| c.is_ascii_lowercase()).count();
    let float_like = letters == 1 && v.contains('e');
    (hex && letters > 0 && !float_like).then_some(v)
}

fn age_key(v: &str) -> Option<&str> {
    let ok = v.starts_with("AGE-SECRET-KEY-1")
        && v.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'-');
    ok.then_some(v)
}

/// A string that serde_yaml writes as a plain scalar, so that reading it
/// plain is canonical: it starts with a letter, holds only letters, digits
/// and `._@+-` (and `/` in paths), and is not a word YAML reads as something
/// other than a string. Anything else takes the slow path.
fn plain_str(v: &str, slashes: bool) -> Option<&str> {
    const WORDS: [&str; 11] = [
        "true", "false", "yes", "no", "on", "off", "y", "n", "null", "nan", "inf",
    ];
    let first_letter = v.bytes().next().is_some_and(|c| c.is_ascii_alphabetic());
    let chars_ok = v.bytes().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(c, b'.' | b'_' | b'@' | b'+' | b'-')
            || (slashes && c == b'/')
    });
    let word = WORDS.iter().any(|w| v.eq_ignore_ascii_case(w));
    (first_letter && chars_ok && !word && !v.ends_with(['.', '-'])).then_some(v)
}

pub(crate) fn yaml_error(e: serde_yaml::Error) -> FormatError {
    // serde_yaml's messages quote field names, never values of secret fields,
    // but a message can echo a scalar it could not place: keep only the kind.
    let text = e.to_string();
    let kind = text.split(" at line").next().unwrap_or(&text);
    let kind: String = if kind.contains("invalid type") || kind.contains("invalid value") {
        "a field has the wrong type".to_string()
    } else {
        kind.chars().take(120).collect()
    };
    match e.location() {
        Some(loc) => FormatError::Yaml(format!("{kind} (line {})", loc.line())),
        None => FormatError::Yaml(kind),
    }
}

/// The signature document that follows a node's body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureDoc {
    /// Armored SSHSIG.
    pub signature: String,
}

/// The bytes a node signature covers.
pub fn node_signed_message(store: &str, id: &NodeId, body: &[u8]) -> Vec<u8> {
    format!("sesto-node-v1\n{store}\n{id}\n{}\n", sha256_hex(body)).into_bytes()
}

/// Hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

/// Assembles a node's plaintext: body, signature document, padding.
pub fn assemble(body: &[u8], signature_pem: &str) -> Zeroizing<Vec<u8>> {
    let sig_doc = serde_yaml::to_string(&SignatureDoc {
        signature: signature_pem.to_string(),
    })
    .expect("a signature document always serialises");
    let mut out = Zeroizing::new(Vec::with_capacity(padded_len(
        body.len() + 5 + sig_doc.len(),
    )));
    out.extend_from_slice(body);
    if !body.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(&SEPARATOR[1..]);
    out.extend_from_slice(sig_doc.as_bytes());
    pad(&mut out);
    out
}

/// The two parts of a node's plaintext, borrowed from it.
pub struct Parts<'a> {
    /// The body's exact bytes.
    pub body: &'a [u8],
    /// The parsed signature document.
    pub signature: SignatureDoc,
}

/// Splits a plaintext into body bytes and signature document. The body is
/// only sliced here (it is parsed after its signature checks out); the
/// signature document is read by a strict line parser, never by a YAML
/// parser, so content nobody signed costs no more than a scan.
pub fn split(plaintext: &[u8]) -> Result<Parts<'_>, FormatError> {
    let at = plaintext
        .windows(SEPARATOR.len())
        .position(|w| w == SEPARATOR)
        .ok_or(FormatError::NoSignature)?;
    let body = &plaintext[..at + 1];
    let rest = &plaintext[at + SEPARATOR.len()..];
    let signature = signature_doc(rest).ok_or_else(|| {
        FormatError::Invalid("the signature document is not in the form sesto writes".into())
    })?;
    Ok(Parts {
        body,
        signature: SignatureDoc { signature },
    })
}

/// Longest signature document: an armored SSHSIG of an RSA-8192 key is
/// under 2 KiB.
const MAX_SIGNATURE_DOC: usize = 8 << 10;

/// The armored signature from a signature document as [`assemble`] writes
/// it: `signature: |`, lines indented by two spaces, then the padding (one
/// newline, or a `#` comment of spaces). `None` for anything else.
fn signature_doc(rest: &[u8]) -> Option<String> {
    let text = rest.strip_prefix(b"signature: |\n")?;
    let mut armor = String::new();
    let mut at = 0;
    while let Some(line) = text[at..].strip_prefix(b"  ") {
        let end = line.iter().position(|b| *b == b'\n')?;
        let content = std::str::from_utf8(&line[..end]).ok()?;
        if content.is_empty() || content.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
            return None;
        }
        armor.push_str(content);
        armor.push('\n');
        at += 2 + end + 1;
        if at > MAX_SIGNATURE_DOC {
            return None;
        }
    }
    let padding = &text[at..];
    let padded = match padding {
        [] | [b'\n'] => true,
        [b'#', middle @ .., b'\n'] => middle.iter().all(|b| *b == b' '),
        _ => false,
    };
    (padded && !armor.is_empty()).then_some(armor)
}

/// Padmé: pads a length so that it leaks O(log log n) bits, with a floor.
pub fn padded_len(len: usize) -> usize {
    if len <= MIN_PADDED {
        return MIN_PADDED;
    }
    let e = usize::BITS - 1 - len.leading_zeros(); // floor(log2 len)
    let s = u32::BITS - e.leading_zeros(); // floor(log2 e) + 1
    let last_bits = e - s;
    let mask = (1usize << last_bits) - 1;
    (len + mask) & !mask
}

/// Appends padding that YAML reads as a comment.
fn pad(buf: &mut Vec<u8>) {
    let extra = padded_len(buf.len()) - buf.len();
    match extra {
        0 => {}
        1 => buf.push(b'\n'),
        n => {
            buf.push(b'#');
            buf.resize(buf.len() + n - 2, b' ');
            buf.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::collections::BTreeMap;

    fn secret_body(value: &[u8]) -> Body {
        Body {
            sesto: FORMAT,
            store: NodeId::random().to_string(),
            id: NodeId::random(),
            kind: Kind::Secret,
            name: "password".into(),
            version: 1,
            path: None,
            recipient: None,
            children: vec![],
            value: Some(Value::new(value.to_vec())),
            updated: Some("2026-11-23T10:00:00Z".into()),
            updated_by: Some("alice".into()),
            exposed_to: vec![],
        }
    }

    /// Everything the fast path reads plain, serde_yaml writes plain: so the
    /// fast path accepts only canonical text.
    #[test]
    fn fast_path_plain_scalars_are_what_serde_writes_plain() {
        use rand::Rng;
        let alphabet = b"aZ09._@+-/ e:#'&*!yYnN";
        let mut rng = rand::rngs::OsRng;
        let mut checked = 0;
        for _ in 0..20_000 {
            let len = rng.gen_range(1..12);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
                .collect();
            for slashes in [false, true] {
                if plain_str(&s, slashes).is_some() {
                    assert_eq!(
                        serde_yaml::to_string(&s).unwrap(),
                        format!("{s}\n"),
                        "{s:?}"
                    );
                    checked += 1;
                }
            }
        }
        for word in [
            "yes", "No", "ON", "null", "true", "y", "nan", "inf", "a.", "a-",
        ] {
            assert!(plain_str(word, false).is_none(), "{word}");
        }
        for _ in 0..2_000 {
            let id = NodeId::random().to_string();
            if hex_id(&id).is_some() {
                assert_eq!(
                    serde_yaml::to_string(&id).unwrap(),
                    format!("{id}\n"),
                    "{id}"
                );
            }
        }
        let all_digits = "1".repeat(32);
        let float = format!("{}e{}", "1".repeat(20), "2".repeat(11));
        assert!(hex_id(&all_digits).is_none() && hex_id(&float).is_none());
        assert!(checked > 1000);
    }

    /// Both paths give the same body, and the fast one is taken for ordinary names.
    #[test]
    fn fast_and_slow_paths_agree() {
        let mut folder = Body::new(
            &NodeId::random().to_string(),
            NodeId::random(),
            Kind::Folder,
            "prod",
        );
        for name in [
            "db",
            "api-key",
            "a b",
            "'q'",
            "123",
            "yes",
            "ü",
            "x.y_z@w+v",
            "-dash",
            "with: colon",
        ] {
            folder.put_child(Entry {
                name: name.into(),
                kind: Kind::Secret,
                id: NodeId::random(),
                key: NodeKey::new(
                    age::x25519::Identity::generate()
                        .to_string()
                        .expose_secret()
                        .to_string(),
                ),
            });
        }
        folder.version = 7;
        let bytes = encode_body(&folder);
        let slow: Body = serde_yaml::from_slice(&bytes).unwrap();
        assert_eq!(decode_body(&bytes).unwrap(), slow);
        assert_eq!(slow, folder);
        let mut plain = Body::new(
            &NodeId::random().to_string(),
            NodeId::random(),
            Kind::Folder,
            "",
        );
        plain.put_child(Entry {
            name: "db".into(),
            kind: Kind::Folder,
            id: NodeId::random(),
            key: NodeKey::new(
                age::x25519::Identity::generate()
                    .to_string()
                    .expose_secret()
                    .to_string(),
            ),
        });
        let secret = secret_body(b"\x00\xffvalue");
        // After a revoke: every secret lists who may have read it.
        let mut exposed = secret_body(b"v");
        exposed.exposed_to = vec!["bob".into(), "carol-2".into()];
        for body in [plain, secret, exposed] {
            let bytes = encode_body(&body);
            assert_eq!(
                decode_simple(&bytes).as_ref(),
                Some(&body),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn ids_round_trip_and_reject_bad_text() {
        let id = NodeId::random();
        assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
        for bad in [
            "",
            "0",
            "../../../../etc/passwd",
            "ABCDEF0123456789abcdef0123456789",
            &"a".repeat(33),
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert!(bad.parse::<NodeId>().is_err(), "{bad}");
        }
        assert!(id
            .rel_path()
            .starts_with(&format!("nodes/{}/", &id.to_string()[..2])));
    }

    #[test]
    fn body_round_trips_with_binary_value() {
        let body = secret_body(b"\x00\xffhunter2\n");
        let bytes = encode_body(&body);
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.contains("value: !!binary "), "{text}");
        assert_eq!(decode_body(&bytes).unwrap(), body);
    }

    #[test]
    fn aliases_and_comments_are_not_canonical() {
        let body = secret_body(b"x");
        let text = String::from_utf8(encode_body(&body).to_vec()).unwrap();
        let aliased = text
            .replace("name: password", "name: &a password")
            .replace("updated_by: alice", "updated_by: *a");
        assert!(decode_body(aliased.as_bytes()).is_err());
        let commented = format!("# hi\n{text}");
        assert!(matches!(
            decode_body(commented.as_bytes()),
            Err(FormatError::NotCanonical)
        ));
        let duplicate = format!("{text}name: other\n");
        assert!(decode_body(duplicate.as_bytes()).is_err());
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let body = secret_body(b"x");
        let bytes = encode_body(&body);
        for cut in 0..bytes.len() {
            let _ = decode_body(&bytes[..cut]);
        }
        for junk in [
            &b"\xff\xfe"[..],
            b"- - - -",
            b"{",
            b"sesto: [",
            b"value: !!binary ***",
        ] {
            assert!(decode_body(junk).is_err());
        }
    }

    #[test]
    fn assemble_split_round_trip_and_padding() {
        let body = encode_body(&secret_body(b"v"));
        let plain = assemble(
            &body,
            "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n",
        );
        assert_eq!(plain.len(), 512);
        let parts = split(&plain).unwrap();
        assert_eq!(parts.body, &body[..]);
        assert!(parts.signature.signature.contains("BEGIN SSH SIGNATURE"));
    }

    #[test]
    fn padme_leaks_little() {
        assert_eq!(padded_len(1), 512);
        assert_eq!(padded_len(512), 512);
        assert!(padded_len(513) >= 513);
        for len in [600usize, 1000, 5000, 70_000, 1 << 20, (1 << 20) + 1] {
            let p = padded_len(len);
            assert!(p >= len && p - len <= len / 8, "{len} -> {p}");
        }
    }

    #[test]
    fn names() {
        for good in ["a", "db password", "R&D", "ü", &"x".repeat(255)] {
            check_name(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a\nb", "\u{7f}", &"x".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roster_round_trip_and_rules() {
        let mut members = BTreeMap::new();
        members.insert(
            "alice".to_string(),
            Member {
                key: "ssh-ed25519 AAAA".into(),
                admin: true,
                signing_key: None,
            },
        );
        let roster = Roster::new(members);
        let bytes = roster.encode();
        assert_eq!(Roster::decode(&bytes).unwrap(), roster);
        let no_admin = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("  admin: true\n", "");
        assert!(Roster::decode(no_admin.as_bytes()).is_err());
        let unknown = format!("{}extra: 1\n", String::from_utf8(bytes).unwrap());
        assert!(Roster::decode(unknown.as_bytes()).is_err());
    }
}
