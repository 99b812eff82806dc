//! Identities: the private keys a user holds, where they are looked for, and
//! unlocking passphrase-protected SSH keys once per process.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use age::secrecy::{ExposeSecret, SecretString};
use ssh_key::{LineEnding, PrivateKey};

use super::{normalize_ssh_public, KeyError, Signer};

mod sources;
pub use sources::{Identities, IdentitySources, MAX_IDENTITY_FILE};

/// Asks for the passphrase of an encrypted key. The library has no terminal:
/// the binary supplies an implementation that prompts.
pub trait Passphrase: Send + Sync {
    /// Returns the passphrase for the key at `source`, or an error saying why
    /// none can be had (for example: no terminal).
    fn passphrase(&self, source: &str) -> Result<SecretString, String>;

    /// How many passphrases to try before giving up (ssh tries three on a
    /// terminal).
    fn tries(&self) -> usize {
        1
    }

    /// Says that the passphrase for `source` was wrong, before asking again.
    fn wrong(&self, _source: &str) {}
}

/// A [`Passphrase`] that never prompts: encrypted keys fail at once.
pub struct NoPassphrase;

impl Passphrase for NoPassphrase {
    fn passphrase(&self, _source: &str) -> Result<SecretString, String> {
        Err("there is no terminal to ask for its passphrase".into())
    }
}

/// An unlocked SSH key: signs, and decrypts as an age identity.
struct SshUnlocked {
    private: PrivateKey,
    age: age::ssh::Identity,
}

enum Material {
    X25519(age::x25519::Identity),
    Plugin(Box<dyn age::Identity + Send + Sync>),
    Ssh {
        key: Box<PrivateKey>,
        unlocked: OnceLock<Result<Box<SshUnlocked>, String>>,
        /// How to ask for the passphrase when a file needs this key (set
        /// when the identity joins [`Identities`]).
        prompt: OnceLock<Arc<dyn Passphrase>>,
    },
    External(Box<dyn ExternalKey>),
}

/// A key held outside this process (by the sesto agent or an ssh-agent),
/// which decrypts and signs by asking its holder, so the private key never
/// enters this process.
pub trait ExternalKey: Send + Sync {
    /// The age identity that unwraps file keys through the holder;
    /// `Ok(None)` when this key cannot decrypt (an ssh-agent key only signs).
    fn age_identity(&self) -> Result<Option<&dyn age::Identity>, KeyError>;
    /// Whether the holder signs with this key.
    fn can_sign(&self) -> bool;
    /// A signer that asks the holder for each signature.
    fn signer(&self) -> Result<Signer, KeyError>;
}

/// One identity: a private key the user holds, with where it came from.
pub struct Identity {
    source: String,
    public: Option<String>,
    /// The SSH public key this identity signs as, where it is not `public`
    /// (an agent-derived age identity signs with its SSH key).
    signing_public: Option<String>,
    material: Material,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({}, [redacted])", self.source)
    }
}

impl Identity {
    /// Parses key text: an OpenSSH private key, or an age identity file
    /// (X25519 or plugin identities). `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Vec<Identity>, KeyError> {
        let trimmed = text.trim_start();
        if trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            let key = PrivateKey::from_openssh(trimmed)
                .map_err(|e| KeyError(format!("{source}: malformed OpenSSH private key: {e}")))?;
            let public = normalize_ssh_public(
                &key.public_key()
                    .to_openssh()
                    .map_err(|e| KeyError(e.to_string()))?,
            )?;
            match key.algorithm() {
                ssh_key::Algorithm::Ed25519 | ssh_key::Algorithm::Rsa { .. } => {}
                other => {
                    return Err(KeyError(format!(
                        "{source}: {other} keys are not supported; use ssh-ed25519 or ssh-rsa"
                    )))
                }
            }
            return Ok(vec![Identity {
                source: source.to_string(),
                public: Some(public),
                signing_public: None,
                material: Material::Ssh {
                    key: Box::new(key),
                    unlocked: OnceLock::new(),
                    prompt: OnceLock::new(),
                },
            }]);
        }
        if trimmed.starts_with("-----BEGIN") {
            return Err(KeyError(format!(
                "{source}: only OpenSSH-format private keys are supported; convert with `ssh-keygen -p -f {source}`"
            )));
        }
        let mut out = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with("AGE-SECRET-KEY-1") {
                let id = age::x25519::Identity::from_str(line)
                    .map_err(|_| KeyError(format!("{source}:{}: malformed age identity", n + 1)))?;
                out.push(Identity {
                    source: source.to_string(),
                    public: Some(id.to_public().to_string()),
                    signing_public: None,
                    material: Material::X25519(id),
                });
            } else if line.starts_with("AGE-PLUGIN-") {
                let file = age::IdentityFile::from_buffer(line.as_bytes())
                    .map_err(|e| KeyError(format!("{source}:{}: {e}", n + 1)))?;
                for id in file
                    .into_identities()
                    .map_err(|e| KeyError(format!("{source}:{}: {e}", n + 1)))?
                {
                    out.push(Identity {
                        source: source.to_string(),
                        public: None,
                        signing_public: None,
                        material: Material::Plugin(id),
                    });
                }
            } else if line.starts_with(super::agent_identity::LINE_PREFIX) {
                out.push(super::agent_identity::parse_line(
                    line,
                    &format!("{source}:{}", n + 1),
                    None,
                )?);
            } else {
                return Err(KeyError(format!(
                    "{source}:{}: not an OpenSSH private key or age identity",
                    n + 1
                )));
            }
        }
        if out.is_empty() {
            return Err(KeyError(format!("{source}: holds no identity")));
        }
        Ok(out)
    }

    /// An identity whose key is held elsewhere (see [`ExternalKey`]).
    /// `public` is its normalized public key where known.
    pub fn external(source: String, public: Option<String>, key: Box<dyn ExternalKey>) -> Identity {
        Identity {
            source,
            public,
            signing_public: None,
            material: Material::External(key),
        }
    }

    /// This identity, signing as the SSH public key `public` (normalized)
    /// rather than as its own public key.
    pub fn signing_as(mut self, public: String) -> Identity {
        self.signing_public = Some(public);
        self
    }

    /// The normalized SSH public key this identity signs as, where known:
    /// its own public key unless [`Identity::signing_as`] set another.
    pub fn signing_public(&self) -> Option<&str> {
        self.signing_public.as_deref().or(self.public.as_deref())
    }

    /// The comment of an SSH key file (`alice@laptop`), where it has one.
    pub fn comment(&self) -> Option<&str> {
        match &self.material {
            Material::Ssh { key, .. } => Some(key.comment()).filter(|c| !c.is_empty()),
            _ => None,
        }
    }

    /// Where this identity came from (a path or an environment variable).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The normalized public key, where it is known without the plugin.
    pub fn public(&self) -> Option<&str> {
        self.public.as_deref()
    }

    /// Whether using this key needs a passphrase not yet given, or one that
    /// could not be had (a failed unlock is remembered and stays locked: a
    /// read that tried it must not make a write prefer it to an agent's key).
    pub fn is_locked(&self) -> bool {
        matches!(&self.material, Material::Ssh { key, unlocked, .. }
            if key.is_encrypted() && !matches!(unlocked.get(), Some(Ok(_))))
    }

    fn unlock(&self, prompt: &dyn Passphrase) -> Result<&SshUnlocked, KeyError> {
        let Material::Ssh { key, unlocked, .. } = &self.material else {
            return Err(KeyError(format!("{}: not an SSH key", self.source)));
        };
        let result = unlocked.get_or_init(|| {
            let private = if key.is_encrypted() {
                let tries = prompt.tries().max(1);
                let mut attempt = 0;
                loop {
                    let pass = prompt.passphrase(&self.source).map_err(|why| {
                        format!("{} is passphrase-protected and {why}", self.source)
                    })?;
                    match key.decrypt(pass.expose_secret().as_bytes()) {
                        Ok(k) => break k,
                        Err(_) => {
                            attempt += 1;
                            if attempt == tries {
                                return Err(format!(
                                    "{}: wrong passphrase{}",
                                    self.source,
                                    if tries > 1 {
                                        format!(" ({tries} tries)")
                                    } else {
                                        String::new()
                                    }
                                ));
                            }
                            prompt.wrong(&self.source);
                        }
                    }
                }
            } else {
                (**key).clone()
            };
            let pem = private
                .to_openssh(LineEnding::LF)
                .map_err(|e| e.to_string())?;
            let age = age::ssh::Identity::from_buffer(pem.as_bytes(), None)
                .map_err(|e| format!("{}: {e}", self.source))?;
            if !matches!(age, age::ssh::Identity::Unencrypted(_)) {
                return Err(format!(
                    "{}: the age crate cannot use this key",
                    self.source
                ));
            }
            Ok(Box::new(SshUnlocked { private, age }))
        });
        result.as_deref().map_err(|e| KeyError(e.clone()))
    }

    /// The age identity, unlocking an encrypted SSH key through `prompt`.
    /// `Ok(None)` for a key that cannot decrypt (one an ssh-agent holds).
    pub fn age_identity(
        &self,
        prompt: &dyn Passphrase,
    ) -> Result<Option<&dyn age::Identity>, KeyError> {
        match &self.material {
            Material::X25519(id) => Ok(Some(id)),
            Material::Plugin(id) => Ok(Some(id.as_ref())),
            Material::Ssh { .. } => Ok(Some(&self.unlock(prompt)?.age)),
            Material::External(key) => key.age_identity(),
        }
    }

    /// The unlocked SSH private key, unlocking it through `prompt` (for
    /// handing it to the sesto agent).
    pub fn ssh_private_key(&self, prompt: &dyn Passphrase) -> Result<&PrivateKey, KeyError> {
        self.unlock(prompt).map(|u| &u.private)
    }

    /// A signer for this SSH key, unlocking it through `prompt`.
    pub fn signer(&self, prompt: &dyn Passphrase) -> Result<Signer, KeyError> {
        match &self.material {
            Material::External(key) => key.signer(),
            _ => Signer::new(self.ssh_private_key(prompt)?)
                .map_err(|e| KeyError(format!("{}: cannot sign: {e}", self.source))),
        }
    }

    /// Whether this identity can sign (an SSH key, here or in an agent).
    pub fn can_sign(&self) -> bool {
        match &self.material {
            Material::Ssh { .. } => true,
            Material::External(key) => key.can_sign(),
            _ => false,
        }
    }

    /// Whether this is an SSH private key held in this process (the kind
    /// `sesto unlock` can hand to the agent).
    pub fn is_ssh_file_key(&self) -> bool {
        matches!(self.material, Material::Ssh { .. })
    }

    /// Whether the key is held by an agent rather than this process.
    pub fn is_external(&self) -> bool {
        matches!(self.material, Material::External(_))
    }
}

/// A passphrase-protected SSH key offered for decryption unlocks itself (and
/// so asks its passphrase) only for a file that holds a stanza for it: a key
/// that only signs, or that this file is not encrypted to, is never asked for.
impl age::Identity for Identity {
    fn unwrap_stanza(
        &self,
        stanza: &age_core::format::Stanza,
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[age_core::format::Stanza],
    ) -> Option<Result<age_core::format::FileKey, age::DecryptError>> {
        let Material::Ssh { key, prompt, .. } = &self.material else {
            return None;
        };
        // age's tag for an SSH recipient: the first 4 bytes of the SHA-256
        // of the public key's wire encoding, base64 without padding.
        let tag = {
            use base64::Engine as _;
            use sha2::Digest as _;
            let blob = key.public_key().to_bytes().ok()?;
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(&sha2::Sha256::digest(&blob)[..4])
        };
        let ours = |s: &age_core::format::Stanza| {
            matches!(s.tag.as_str(), "ssh-ed25519" | "ssh-rsa") && s.args.first() == Some(&tag)
        };
        if !stanzas.iter().any(ours) {
            return None;
        }
        let prompt: &dyn Passphrase = match prompt.get() {
            Some(p) => p.as_ref(),
            None => &NoPassphrase,
        };
        match self.unlock(prompt) {
            Ok(u) => u.age.unwrap_stanzas(stanzas),
            // The reason stays in the identity ([`Identities::unlock_failure`]).
            Err(e) => Some(Err(age::DecryptError::Io(std::io::Error::other(e.0)))),
        }
    }
}
