//! age encryption and decryption, SSHSIG signatures, identities and recipients.
//!
//! Everything cryptographic goes through the `age` and `ssh-key` crates; this
//! module only decides which keys to use and keeps secret material in types
//! that never print it.

use std::io::{Read, Write};
use std::str::FromStr;

use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use zeroize::Zeroizing;

use crate::format::node::{MAX_NODE_FILE, MAX_PLAINTEXT};

pub mod agent_identity;
mod identity;
pub mod ssh_agent;
pub use identity::{
    ExternalKey, Identities, Identity, IdentitySources, NoPassphrase, Passphrase, MAX_IDENTITY_FILE,
};

/// Decrypted bytes, wiped on drop.
pub type Plaintext = Zeroizing<Vec<u8>>;

/// Namespace of node signatures.
pub const NODE_NAMESPACE: &str = "sesto-node-v1";
/// Namespace of roster signatures.
pub const ROSTER_NAMESPACE: &str = "sesto-roster-v1";

/// What went wrong in encryption, decryption or signing.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// No identity matched any recipient stanza of the file.
    #[error("none of the identities can decrypt it")]
    NoMatchingKeys,
    /// The file is not a well-formed age file, or its authentication failed.
    #[error("not a valid age file: {0}")]
    Invalid(String),
    /// The plaintext is larger than the limit.
    #[error("plaintext is larger than {} MiB", MAX_PLAINTEXT >> 20)]
    TooLarge,
    /// Encryption failed.
    #[error("encryption failed: {0}")]
    Encrypt(String),
    /// The signature is missing, malformed or does not verify.
    #[error("bad signature: {0}")]
    Signature(String),
}

/// Decrypts an age file (binary or armored) with the given identities; plaintext is
/// capped at 16 MiB. Nothing is returned unless the whole file authenticated.
pub fn decrypt(
    ciphertext: &[u8],
    identities: &[&dyn age::Identity],
) -> Result<Plaintext, CryptoError> {
    // The age spec allows whitespace before armor; the age crate only at byte 0.
    let trimmed = ciphertext.trim_ascii_start();
    let dearmored;
    let file: &[u8] = if trimmed.starts_with(ARMOR_BEGIN) {
        let mut buf = Vec::new();
        age::armor::ArmoredReader::new(trimmed)
            .take(MAX_NODE_FILE)
            .read_to_end(&mut buf)
            .map_err(|e| CryptoError::Invalid(e.to_string()))?;
        dearmored = buf;
        &dearmored
    } else {
        ciphertext
    };
    check_stanza_bodies(file)?;
    let decryptor = age::Decryptor::new_buffered(file).map_err(decrypt_error)?;
    let mut stream = decryptor
        .decrypt(identities.iter().copied())
        .map_err(decrypt_error)?;
    let mut out = Zeroizing::new(Vec::with_capacity(file.len()));
    (&mut stream)
        .take(MAX_PLAINTEXT as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| CryptoError::Invalid(e.to_string()))?;
    if out.len() > MAX_PLAINTEXT {
        return Err(CryptoError::TooLarge);
    }
    Ok(out)
}

const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Rejects the legacy stanza encoding the age crate still accepts for files
/// from its betas (a body of 0 mod 64 bytes with no closing short line, or no
/// body line at all), which the age spec forbids. Anything else malformed is
/// left to the age crate.
fn check_stanza_bodies(file: &[u8]) -> Result<(), CryptoError> {
    let mut lines = file.split(|&b| b == b'\n');
    if lines.next() != Some(b"age-encryption.org/v1".as_slice()) {
        return Ok(());
    }
    // Length of the current stanza's last body line; None: no body line yet.
    let mut stanza: Option<Option<usize>> = None;
    for line in lines {
        // Body lines are base64, so never start with '-'.
        if line.starts_with(b"-") {
            if let Some(last) = stanza {
                if !matches!(last, Some(n) if n < 64) {
                    return Err(CryptoError::Invalid(
                        "header stanza without its final short line".into(),
                    ));
                }
            }
            if line.starts_with(b"---") {
                return Ok(());
            }
            stanza = Some(None);
        } else if let Some(last) = stanza.as_mut() {
            *last = Some(line.len());
        } else {
            return Ok(());
        }
    }
    Ok(())
}

fn decrypt_error(e: age::DecryptError) -> CryptoError {
    match e {
        age::DecryptError::NoMatchingKeys => CryptoError::NoMatchingKeys,
        other => CryptoError::Invalid(other.to_string()),
    }
}

/// Encrypts to the given recipients, producing a binary age file.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[&dyn age::Recipient],
) -> Result<Vec<u8>, CryptoError> {
    let encryptor = age::Encryptor::with_recipients(recipients.iter().copied())
        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plaintext.len() + 200 + 100 * recipients.len());
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    writer
        .write_all(plaintext)
        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| CryptoError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// A problem with a public or private key given by the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// A member's public key, parsed: what files are encrypted to.
pub enum Recipient {
    /// An SSH public key (`ssh-ed25519`, `ssh-rsa`).
    Ssh(age::ssh::Recipient),
    /// An age X25519 recipient (`age1…`).
    X25519(age::x25519::Recipient),
    /// An age plugin recipient (`age1<plugin>1…`).
    Plugin(age::plugin::Recipient),
}

impl Recipient {
    /// Parses a public key as written in the roster.
    pub fn parse(text: &str) -> Result<Recipient, KeyError> {
        let text = text.trim();
        if text.starts_with("ssh-") {
            let normalized = normalize_ssh_public(text)?;
            return age::ssh::Recipient::from_str(&normalized)
                .map(Recipient::Ssh)
                .map_err(|_| KeyError(format!("unsupported SSH key {}", short(text))));
        }
        if let Ok(r) = age::x25519::Recipient::from_str(text) {
            return Ok(Recipient::X25519(r));
        }
        if let Ok(r) = age::plugin::Recipient::from_str(text) {
            return Ok(Recipient::Plugin(r));
        }
        Err(KeyError(format!(
            "not a public key: {} (expected ssh-ed25519, ssh-rsa or age1…)",
            short(text)
        )))
    }

    /// Builds an age recipient that can wrap file keys, resolving plugins.
    pub fn to_age(&self) -> Result<Box<dyn age::Recipient + Send>, KeyError> {
        Ok(match self {
            Recipient::Ssh(r) => Box::new(r.clone()),
            Recipient::X25519(r) => Box::new(r.clone()),
            Recipient::Plugin(r) => Box::new(
                age::plugin::RecipientPluginV1::new(
                    r.plugin(),
                    std::slice::from_ref(r),
                    &[],
                    age::NoCallbacks,
                )
                .map_err(|e| KeyError(format!("age plugin for {}: {e}", short(&r.to_string()))))?,
            ),
        })
    }
}

/// The canonical text of a public key, used to compare keys: an SSH key without
/// its comment, or an age recipient as is.
pub fn normalize_public(text: &str) -> Result<String, KeyError> {
    let text = text.trim();
    if text.starts_with("ssh-") || text.starts_with(SK_ED25519) {
        normalize_ssh_public(text)
    } else {
        Recipient::parse(text).map(|_| text.to_string())
    }
}

/// Checks a public key offered for a new member and returns it normalized:
/// `ssh-ed25519`, `ssh-rsa` of 2048 to 4096 bits, or an age X25519 or plugin
/// recipient. Private keys, other SSH key types and several keys at once are
/// refused with an error saying what to give instead.
pub fn check_member_key(text: &str) -> Result<String, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError("the key is empty".into()));
    }
    if text.len() > 16 * 1024 {
        return Err(KeyError(format!(
            "the key is {} bytes; public keys are far shorter (is this the right file?)",
            text.len()
        )));
    }
    if looks_private(text) {
        return Err(KeyError(
            "that is a private key; give the public key (the .pub file, or `age-keygen -y`)".into(),
        ));
    }
    if text.lines().count() > 1 {
        return Err(KeyError(
            "give one key per member (the text holds several lines)".into(),
        ));
    }
    if text.starts_with("ssh-") || text.starts_with("ecdsa-") || text.starts_with("sk-") {
        let key = PublicKey::from_openssh(text)
            .map_err(|e| KeyError(format!("malformed SSH public key {}: {e}", short(text))))?;
        match key.key_data() {
            ssh_key::public::KeyData::Ed25519(_) => {}
            ssh_key::public::KeyData::Rsa(rsa) => {
                let n = rsa.n.as_positive_bytes().unwrap_or_default();
                let bits = (n.len() * 8)
                    .saturating_sub(n.first().map_or(8, |b| b.leading_zeros() as usize));
                if !(2048..=4096).contains(&bits) {
                    return Err(KeyError(format!(
                        "the RSA key has {bits} bits; sesto takes 2048 to 4096 \
                         (or better, an ssh-ed25519 key)"
                    )));
                }
            }
            ssh_key::public::KeyData::SkEd25519(_) => {
                return Err(KeyError(format!(
                    "{SK_ED25519} keys cannot be encrypted to by age; give it as --signing-key \
                     beside an ssh-ed25519 or age key"
                )))
            }
            other => {
                return Err(KeyError(format!(
                    "{} keys cannot be encrypted to by age; use an ssh-ed25519 (or ssh-rsa) key",
                    other.algorithm()
                )))
            }
        }
        return normalize_ssh_public(text);
    }
    normalize_public(text)
}

/// The type of FIDO2 Ed25519 SSH keys (`ssh-keygen -t ed25519-sk`).
pub const SK_ED25519: &str = "sk-ssh-ed25519@openssh.com";

/// Checks an SSH public key offered as a member's signing key and returns it
/// normalized: what [`check_member_key`] takes, plus FIDO2 `sk-ssh-ed25519`
/// keys, which sign but cannot be encrypted to.
pub fn check_signing_key(text: &str) -> Result<String, KeyError> {
    let text = text.trim();
    if text.starts_with(SK_ED25519) && !looks_private(text) && text.lines().count() == 1 {
        return normalize_ssh_public(text);
    }
    if !text.starts_with("ssh-") {
        return Err(KeyError(
            "a signing key must be an SSH public key (ssh-ed25519, ssh-rsa or sk-ssh-ed25519@openssh.com)"
                .into(),
        ));
    }
    check_member_key(text)
}

/// Whether `text` looks like a private key (OpenSSH, PEM or PuTTY, an age
/// identity or plugin identity), which must be refused without echoing it.
pub fn looks_private(text: &str) -> bool {
    let trimmed = text.trim();
    // age identities are bech32, which may be written in either case.
    let head = trimmed
        .chars()
        .take(20)
        .collect::<String>()
        .to_ascii_uppercase();
    trimmed.contains("PRIVATE KEY")
        || head.starts_with("PUTTY-USER-KEY-FILE-")
        || head.starts_with("AGE-SECRET-KEY-")
        || head.starts_with("AGE-PLUGIN-")
}

fn normalize_ssh_public(text: &str) -> Result<String, KeyError> {
    let mut key = PublicKey::from_openssh(text)
        .map_err(|e| KeyError(format!("malformed SSH public key {}: {e}", short(text))))?;
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim().to_string())
        .map_err(|e| KeyError(e.to_string()))
}

/// SHA256 fingerprint of an SSH public key, as `ssh-keygen -l` shows it.
pub fn fingerprint(public: &str) -> String {
    match PublicKey::from_openssh(public) {
        Ok(k) => k.fingerprint(HashAlg::Sha256).to_string(),
        Err(_) => public.to_string(),
    }
}

fn short(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(40).collect();
    if text.len() > 40 {
        format!("{t}…")
    } else {
        t
    }
}

/// Signs `msg` with an SSH key (SSHSIG, SHA-512), returning the armored signature.
pub fn sign(key: &PrivateKey, namespace: &str, msg: &[u8]) -> Result<String, CryptoError> {
    Signer::new(key)?.sign(namespace, msg)
}

/// An SSH private key made ready for many SSHSIG signatures (SHA-512).
///
/// ssh-key turns the key into a signing key again for every signature: for
/// ed25519 that derives and compares the public point, two scalar
/// multiplications' worth, a third of what a rotation of 10,000 nodes spent
/// signing; for RSA it rebuilds the private key from its primes. Here that
/// happens once. The signatures are made by ed25519-dalek and rsa, exactly as
/// ssh-key makes them.
pub struct Signer {
    public: ssh_key::public::KeyData,
    kind: SignerKind,
}

enum SignerKind {
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Rsa(Box<rsa::pkcs1v15::SigningKey<sha2::Sha512>>),
    /// Any other kind: left to ssh-key.
    Other(Box<PrivateKey>),
    /// A key an agent holds.
    Agent(Box<dyn SignRaw>),
}

/// Signs SSHSIG's signed data with a key held elsewhere (an agent).
pub trait SignRaw: Send + Sync {
    /// The SSH signature over `data` (RSA keys: rsa-sha2-512).
    fn sign_raw(&self, data: &[u8]) -> Result<ssh_key::Signature, String>;
}

impl Signer {
    /// Prepares `key` for signing.
    pub fn new(key: &PrivateKey) -> Result<Signer, CryptoError> {
        let failed = |e: ssh_key::Error| CryptoError::Signature(e.to_string());
        let kind = match key.key_data() {
            ssh_key::private::KeypairData::Ed25519(pair) => SignerKind::Ed25519(Box::new(
                ed25519_dalek::SigningKey::try_from(pair).map_err(failed)?,
            )),
            // ssh-key 0.6.7 builds the RSA private key from the primes (p, p)
            // instead of (p, q), which rsa >= 0.9.7 rejects (RustCrypto/SSH#217,
            // fixed only on its master), so the key is built here.
            ssh_key::private::KeypairData::Rsa(pair) => {
                let private = (|| {
                    rsa::RsaPrivateKey::from_components(
                        rsa::BigUint::try_from(&pair.public.n)?,
                        rsa::BigUint::try_from(&pair.public.e)?,
                        rsa::BigUint::try_from(&pair.private.d)?,
                        vec![
                            rsa::BigUint::try_from(&pair.private.p)?,
                            rsa::BigUint::try_from(&pair.private.q)?,
                        ],
                    )
                    .map_err(|_| ssh_key::Error::Crypto)
                })()
                .map_err(failed)?;
                SignerKind::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(private)))
            }
            _ => SignerKind::Other(Box::new(key.clone())),
        };
        Ok(Signer {
            public: key.public_key().key_data().clone(),
            kind,
        })
    }

    /// A signer whose key `public` an agent holds; each signature is asked
    /// of `agent` and checked before it is used.
    pub fn agent(public: ssh_key::public::KeyData, agent: Box<dyn SignRaw>) -> Signer {
        Signer {
            public,
            kind: SignerKind::Agent(agent),
        }
    }

    /// Signs `data` as it is (SSHSIG's signed data): what the sesto agent
    /// does for its clients. Ed25519 and RSA (rsa-sha2-512) keys only.
    pub fn sign_raw(&self, data: &[u8]) -> Result<ssh_key::Signature, CryptoError> {
        let failed = |e: ssh_key::Error| CryptoError::Signature(e.to_string());
        match &self.kind {
            SignerKind::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                ssh_key::Signature::new(
                    ssh_key::Algorithm::Ed25519,
                    key.sign(data).to_bytes().to_vec(),
                )
                .map_err(failed)
            }
            SignerKind::Rsa(key) => {
                use rsa::signature::{SignatureEncoding, Signer as _};
                let raw = key
                    .try_sign(data)
                    .map_err(|_| CryptoError::Signature("RSA signing failed".into()))?;
                ssh_key::Signature::new(
                    ssh_key::Algorithm::Rsa {
                        hash: Some(HashAlg::Sha512),
                    },
                    raw.to_vec(),
                )
                .map_err(failed)
            }
            SignerKind::Other(key) => Err(CryptoError::Signature(format!(
                "{} keys cannot sign for an agent",
                key.algorithm()
            ))),
            SignerKind::Agent(agent) => agent.sign_raw(data).map_err(CryptoError::Signature),
        }
    }

    /// Signs `msg` under `namespace`, returning the armored SSHSIG.
    pub fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, CryptoError> {
        let failed = |e: ssh_key::Error| CryptoError::Signature(e.to_string());
        let sig = match &self.kind {
            SignerKind::Other(key) => key.sign(namespace, HashAlg::Sha512, msg).map_err(failed)?,
            kind => {
                let data = SshSig::signed_data(namespace, HashAlg::Sha512, msg).map_err(failed)?;
                let signature = self.sign_raw(&data)?;
                let sig = SshSig::new(self.public.clone(), namespace, HashAlg::Sha512, signature)
                    .map_err(failed)?;
                // An agent's answer is checked like any signature: a wrong one
                // would be refused by every reader later.
                if matches!(kind, SignerKind::Agent(_)) {
                    PublicKey::new(self.public.clone(), "")
                        .verify(namespace, msg, &sig)
                        .map_err(|_| {
                            CryptoError::Signature("the agent's signature does not verify".into())
                        })?;
                }
                sig
            }
        };
        sig.to_pem(LineEnding::LF).map_err(failed)
    }
}

/// Verifies an armored SSHSIG over `msg` and returns the signer's normalized
/// public key. The caller decides whether that signer may write.
pub fn verify(signature_pem: &str, namespace: &str, msg: &[u8]) -> Result<String, CryptoError> {
    let sig = SshSig::from_pem(signature_pem)
        .map_err(|e| CryptoError::Signature(format!("malformed: {e}")))?;
    if sig.namespace() != namespace {
        return Err(CryptoError::Signature(format!(
            "wrong namespace {:?}",
            short(sig.namespace())
        )));
    }
    let key = PublicKey::new(sig.public_key().clone(), "");
    key.verify(namespace, msg, &sig)
        .map_err(|_| CryptoError::Signature("does not verify".into()))?;
    // A FIDO2 signature made without the user's touch is refused, as
    // `ssh-keygen -Y verify` does by default. ssh-key keeps the flags byte
    // after the 64 signature bytes; bit 0 is user presence.
    if sig.signature().algorithm() == ssh_key::Algorithm::SkEd25519
        && sig
            .signature()
            .as_bytes()
            .get(64)
            .is_none_or(|f| f & 1 == 0)
    {
        return Err(CryptoError::Signature(
            "the FIDO2 key signed without user presence (no touch)".into(),
        ));
    }
    key.to_openssh()
        .map(|s| s.trim().to_string())
        .map_err(|e| CryptoError::Signature(e.to_string()))
}

#[cfg(test)]
mod tests;
