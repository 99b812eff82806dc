//! A node's plaintext: the body, the separator, the signature document,
//! then Padmé padding as a YAML comment.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::*;

/// The separator between the body and the signature document.
const SEPARATOR: &[u8] = b"\n---\n";
/// Smallest padded plaintext: hides the size of short secrets entirely.
const MIN_PADDED: usize = 512;

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
    // memmem: a folder of 10,000 entries is 1.5 MB to search.
    let at = memchr::memmem::find(plaintext, SEPARATOR).ok_or(FormatError::NoSignature)?;
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
