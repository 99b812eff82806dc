//! Runs every C2SP age test vector (CCTV, `tests/data/age-cctv`, with its license) through
//! sesto's own `crypto::decrypt`: what a conforming age implementation accepts must
//! decrypt to the same bytes, and what it rejects must release nothing.
//!
//! The one deliberate difference: sesto refuses a plaintext over 16 MiB (DESIGN.md,
//! Limits), so a `success` vector whose plaintext is larger must fail. Its size comes
//! from decrypting it with the `age` crate directly.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// sesto's plaintext limit: 16 MiB is accepted, one byte more is not.
const MAX_PLAINTEXT: u64 = 16 * 1024 * 1024;

/// Fewer vectors than this checked means the folder or the parser is wrong.
const MIN_CHECKED: usize = 100;

/// The vectors use scrypt work factor 2^10; one asking for more than 2^18 must be
/// refused, not computed (`scrypt_work_factor_23`), whatever the machine's speed.
const MAX_SCRYPT_LOG_N: u8 = 18;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    NoMatch,
    HmacFailure,
    HeaderFailure,
    PayloadFailure,
    ArmorFailure,
}

impl Expect {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "success" => Self::Success,
            "no match" => Self::NoMatch,
            "HMAC failure" => Self::HmacFailure,
            "header failure" => Self::HeaderFailure,
            "payload failure" => Self::PayloadFailure,
            "armor failure" => Self::ArmorFailure,
            _ => return None,
        })
    }
}

struct Vector {
    expect: Expect,
    /// Hex SHA-256 of the plaintext (for failures: what a streaming reader releases
    /// before the error, which sesto must not release at all).
    payload: Option<String>,
    identities: Vec<String>,
    passphrases: Vec<String>,
    /// The age file, decompressed.
    file: Vec<u8>,
}

enum Parsed {
    Vector(Vector),
    /// A vector sesto cannot run, with the reason (counted in the summary).
    Skip(String),
}

#[test]
fn cctv_vectors() {
    let Some(dir) = common::cctv_dir() else {
        return;
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && !name.ends_with(".md") && name != "LICENSE")
        .collect();
    names.sort();

    let mut passed = 0;
    let mut over_cap = Vec::new();
    let mut skipped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(name);
        let vector = match parse(name, &path) {
            Ok(Parsed::Vector(vector)) => vector,
            Ok(Parsed::Skip(reason)) => {
                skipped.entry(reason).or_default().push(name.clone());
                continue;
            }
            Err(problem) => {
                failures.push(format!("{name}: bad vector file: {problem}"));
                continue;
            }
        };
        match check(&vector) {
            Ok(Outcome::Passed) => passed += 1,
            Ok(Outcome::RejectedOverCap(len)) => {
                passed += 1;
                over_cap.push(format!("{name} ({len} bytes)"));
            }
            Err(problem) => failures.push(format!("{name}: {problem}")),
        }
    }

    let skipped_count: usize = skipped.values().map(Vec::len).sum();
    for (reason, names) in &skipped {
        println!("skipped {} ({reason}): {}", names.len(), names.join(", "));
    }
    if !over_cap.is_empty() {
        println!(
            "success vectors over sesto's 16 MiB plaintext cap, rejected as designed: {}",
            over_cap.join(", ")
        );
    }
    for failure in &failures {
        println!("FAILED {failure}");
    }
    println!(
        "{} vectors: {passed} passed, {skipped_count} skipped",
        names.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} age test vectors failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    assert!(
        passed >= MIN_CHECKED,
        "only {passed} age test vectors were checked (at least {MIN_CHECKED} expected) in {}",
        dir.display()
    );
}

/// Reads one vector file: `key: value` lines, a blank line, the age file.
fn parse(name: &str, path: &Path) -> Result<Parsed, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let split = bytes
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or("no blank line after the header")?;
    let header = std::str::from_utf8(&bytes[..split]).map_err(|_| "header is not UTF-8")?;
    let body = &bytes[split + 2..];

    let mut expect = None;
    let mut payload = None;
    let mut identities = Vec::new();
    let mut passphrases = Vec::new();
    let mut compressed = false;
    for line in header.lines() {
        let (key, value) = line
            .split_once(": ")
            .ok_or_else(|| format!("header line without ': ': {line:?}"))?;
        match key {
            "expect" => {
                expect =
                    Some(Expect::parse(value).ok_or_else(|| format!("unknown expect: {value:?}"))?);
            }
            "payload" => payload = Some(value.to_owned()),
            "identity" => identities.push(value.to_owned()),
            "passphrase" => passphrases.push(value.to_owned()),
            "compressed" if value == "zlib" => compressed = true,
            "compressed" => return Ok(Parsed::Skip(format!("compression {value:?}"))),
            // The decryptor detects armor itself; the key is informative.
            "armored" | "file key" | "comment" => {}
            other => return Ok(Parsed::Skip(format!("unknown header key {other:?}"))),
        }
    }
    let expect = expect.ok_or("no expect line")?;

    if name.starts_with("hybrid") {
        return Ok(Parsed::Skip("hybrid post-quantum recipient".into()));
    }
    if let Some(identity) = identities
        .iter()
        .find(|identity| !identity.starts_with("AGE-SECRET-KEY-1"))
    {
        let kind = identity.split('1').next().unwrap_or(identity);
        return Ok(Parsed::Skip(format!(
            "identity type sesto cannot build ({kind}…)"
        )));
    }

    let file = if compressed {
        let mut file = Vec::new();
        flate2::read::ZlibDecoder::new(body)
            .read_to_end(&mut file)
            .map_err(|e| format!("zlib: {e}"))?;
        file
    } else {
        body.to_vec()
    };
    Ok(Parsed::Vector(Vector {
        expect,
        payload,
        identities,
        passphrases,
        file,
    }))
}

enum Outcome {
    Passed,
    /// A `success` vector whose plaintext (of this many bytes) sesto must refuse.
    RejectedOverCap(u64),
}

fn check(vector: &Vector) -> Result<Outcome, String> {
    let mut owned: Vec<Box<dyn age::Identity>> = Vec::new();
    for identity in &vector.identities {
        let identity: age::x25519::Identity = identity
            .parse()
            .map_err(|e| format!("bad identity in vector: {e}"))?;
        owned.push(Box::new(identity));
    }
    for passphrase in &vector.passphrases {
        let mut identity =
            age::scrypt::Identity::new(age::secrecy::SecretString::from(passphrase.clone()));
        identity.set_max_work_factor(MAX_SCRYPT_LOG_N);
        owned.push(Box::new(identity));
    }
    let identities: Vec<&dyn age::Identity> = owned.iter().map(|i| i.as_ref()).collect();

    let result = sesto::format::crypto::decrypt(&vector.file, &identities);
    match (vector.expect, result) {
        (Expect::Success, Ok(plaintext)) => {
            let want = vector
                .payload
                .as_deref()
                .ok_or("success vector has no payload")?;
            let got = hex_sha256(&plaintext);
            if plaintext.len() as u64 > MAX_PLAINTEXT {
                Err(format!(
                    "released {} bytes, over the 16 MiB cap",
                    plaintext.len()
                ))
            } else if got != want {
                Err(format!("plaintext SHA-256 {got}, expected {want}"))
            } else {
                Ok(Outcome::Passed)
            }
        }
        (Expect::Success, Err(err)) => {
            // Only a plaintext over sesto's cap excuses a refusal.
            match reference_decrypt(&vector.file, &identities) {
                Some((len, hash))
                    if len > MAX_PLAINTEXT && Some(hash.as_str()) == vector.payload.as_deref() =>
                {
                    Ok(Outcome::RejectedOverCap(len))
                }
                _ => Err(format!("expected success, got error: {err}")),
            }
        }
        (expect, Ok(plaintext)) => Err(format!(
            "expected {expect:?}, but decrypt released {} bytes",
            plaintext.len()
        )),
        (_, Err(_)) => Ok(Outcome::Passed),
    }
}

/// Length and hex SHA-256 of the plaintext as the `age` crate streams it, uncapped;
/// `None` where it fails.
fn reference_decrypt(file: &[u8], identities: &[&dyn age::Identity]) -> Option<(u64, String)> {
    let decryptor = age::Decryptor::new_buffered(age::armor::ArmoredReader::new(file)).ok()?;
    let mut reader = decryptor.decrypt(identities.iter().copied()).ok()?;
    let mut hasher = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Some((len, hex(&hasher.finalize())))
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
