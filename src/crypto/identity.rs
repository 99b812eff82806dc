//! Identities: the private keys a user holds, where they are looked for, and
//! unlocking passphrase-protected SSH keys once per process.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use age::secrecy::{ExposeSecret, SecretString};
use ssh_key::{LineEnding, PrivateKey};
use zeroize::Zeroizing;

use super::{normalize_ssh_public, KeyError, Signer};

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

/// The identities of the person or machine running sesto, in the order tried.
pub struct Identities {
    list: Vec<Identity>,
    tried: Vec<String>,
    prompt: Arc<dyn Passphrase>,
    warnings: Vec<String>,
    agent: AgentKeys,
}

/// The keys of the ssh-agent of `SSH_AUTH_SOCK`, as signing-only identities,
/// listed only when first needed so that reads never wait on the agent.
#[derive(Default)]
struct AgentKeys {
    agent: Option<Arc<super::ssh_agent::Agent>>,
    /// With `-i`: only the agent keys among these SSH public keys.
    only: Option<Vec<String>>,
    list: OnceLock<Vec<Identity>>,
}

impl AgentKeys {
    fn get(&self) -> &[Identity] {
        self.list.get_or_init(|| match &self.agent {
            Some(agent) => super::agent_identity::agent_signing_identities(agent, |p| {
                self.only
                    .as_ref()
                    .is_none_or(|only| only.iter().any(|o| o == p))
            }),
            None => Vec::new(),
        })
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identities")
            .field("tried", &self.tried)
            .finish()
    }
}

/// Where identities are looked for; [`IdentitySources::from_env`] fills it in
/// DESIGN.md's order: `-i` files if any are given; else `SESTO_IDENTITY` and
/// `SESTO_IDENTITY_FILE` if set; else the default files that exist.
#[derive(Clone, Debug, Default)]
pub struct IdentitySources {
    /// `-i/--identity` files: must exist.
    pub explicit: Vec<PathBuf>,
    /// `SESTO_IDENTITY`: key text.
    pub key_text: Option<Zeroizing<String>>,
    /// `SESTO_IDENTITY_FILE`: one file, or several separated as in `PATH`;
    /// each must exist.
    pub env_files: Vec<PathBuf>,
    /// Defaults, skipped when missing.
    pub defaults: Vec<PathBuf>,
    /// The sesto agent's socket: the keys it holds stand in for locked
    /// keys of the same public key, and are used beside the sources (with
    /// `-i`, only for the keys named).
    pub agent: Option<PathBuf>,
}

impl IdentitySources {
    /// Reads `SESTO_IDENTITY`, `SESTO_IDENTITY_FILE`, `XDG_CONFIG_HOME` and `HOME`.
    pub fn from_env(explicit: Vec<PathBuf>) -> IdentitySources {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let mut defaults = Vec::new();
        let home = var("HOME").map(PathBuf::from);
        let config = var("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".config")));
        if let Some(c) = config {
            defaults.push(c.join("sesto/identity"));
        }
        if let Some(h) = &home {
            defaults.push(h.join(".ssh/id_ed25519"));
            defaults.push(h.join(".ssh/id_rsa"));
        }
        let key_text = std::env::var("SESTO_IDENTITY")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Zeroizing::new);
        let env_files: Vec<PathBuf> = var("SESTO_IDENTITY_FILE")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let agent = Some(crate::agent::socket_path());
        // The first kind of source that is given is the only one used: `-i` means
        // exactly these keys (so a deploy key can be tried alone), and CI's
        // SESTO_IDENTITY does not fall back to whatever ~/.ssh holds.
        if !explicit.is_empty() {
            return IdentitySources {
                explicit,
                agent,
                ..IdentitySources::default()
            };
        }
        if key_text.is_some() || !env_files.is_empty() {
            return IdentitySources {
                key_text,
                env_files,
                agent,
                ..IdentitySources::default()
            };
        }
        IdentitySources {
            defaults,
            agent,
            ..IdentitySources::default()
        }
    }
}

/// Adds identities, skipping keys already loaded from another source, so that a
/// key named twice (`-i K -i K`, SESTO_IDENTITY and SESTO_IDENTITY_FILE) is
/// unlocked, and its passphrase asked, once.
fn add_unique(list: &mut Vec<Identity>, new: Vec<Identity>) {
    for id in new {
        if id.public.is_some() && list.iter().any(|known| known.public == id.public) {
            continue;
        }
        list.push(id);
    }
}

/// Size cap for identity files: an OpenSSH RSA-8192 key is under 7 KiB, and
/// an age identity file of a few hundred keys fits.
pub const MAX_IDENTITY_FILE: u64 = 64 << 10;

/// Reads an identity file: a regular file only (a FIFO or device is refused
/// without blocking on it), at most [`MAX_IDENTITY_FILE`] bytes, as text.
/// Returns the text and a warning when group or others may read the file.
fn read_identity_file(path: &Path) -> Result<(Zeroizing<String>, Option<String>), KeyError> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.display();
    let cannot = |e: std::io::Error| KeyError(format!("cannot read identity {shown}: {e}"));
    // O_NONBLOCK: opening a FIFO with no writer returns at once; the file
    // type is then checked on the open file, so nothing swaps it after.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(KeyError(format!(
            "identity {shown} is not a regular file (a FIFO, device or directory); \
             give the path of a key file"
        )));
    }
    let too_big = || {
        KeyError(format!(
            "identity {shown} is larger than {} KiB; is it the right file?",
            MAX_IDENTITY_FILE >> 10
        ))
    };
    if meta.len() > MAX_IDENTITY_FILE {
        return Err(too_big());
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    (&mut file)
        .take(MAX_IDENTITY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_IDENTITY_FILE {
        return Err(too_big());
    }
    let text = std::str::from_utf8(&bytes)
        .map(|s| Zeroizing::new(s.to_string()))
        .map_err(|_| {
            KeyError(format!(
                "identity {shown} is not text: not an OpenSSH private key or age identity"
            ))
        })?;
    let mode = meta.permissions().mode() & 0o777;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "identity {shown} can be read by others (mode {mode:04o}); ssh refuses such a key: \
             run `chmod 600 {shown}`"
        )
    });
    Ok((text, warning))
}

impl Identities {
    /// Loads every identity from `sources`. Explicit sources that cannot be
    /// read are errors; missing defaults are skipped. Encrypted keys are not
    /// unlocked until needed.
    pub fn load(
        sources: &IdentitySources,
        prompt: Arc<dyn Passphrase>,
    ) -> Result<Identities, KeyError> {
        let mut list = Vec::new();
        let mut tried = Vec::new();
        let mut warnings = Vec::new();
        let mut read = |path: &Path| -> Result<Zeroizing<String>, KeyError> {
            let (text, warning) = read_identity_file(path)?;
            warnings.extend(warning);
            Ok(text)
        };
        for path in &sources.explicit {
            let text = read(path)?;
            add_unique(
                &mut list,
                Identity::parse(&text, &path.display().to_string())?,
            );
            tried.push(path.display().to_string());
        }
        if let Some(text) = &sources.key_text {
            add_unique(&mut list, Identity::parse(text, "SESTO_IDENTITY")?);
            tried.push("SESTO_IDENTITY".into());
        }
        for path in &sources.env_files {
            let text = read(path).map_err(|e| KeyError(format!("SESTO_IDENTITY_FILE: {e}")))?;
            add_unique(
                &mut list,
                Identity::parse(&text, &path.display().to_string())?,
            );
            tried.push(path.display().to_string());
        }
        for path in &sources.defaults {
            if !path.exists() {
                continue;
            }
            let text = read(path)?;
            add_unique(
                &mut list,
                Identity::parse(&text, &path.display().to_string())?,
            );
            tried.push(path.display().to_string());
        }
        if let Some(client) = sources.agent.as_deref().and_then(crate::agent::try_connect) {
            let client = Arc::new(client);
            if let Ok(status) = client.status() {
                for held in crate::agent::identities(client.clone(), &status) {
                    match list.iter().position(|i| i.public == held.public) {
                        // The agent's copy needs no passphrase.
                        Some(at) if list[at].is_locked() => list[at] = held,
                        Some(_) => {}
                        None if sources.explicit.is_empty() => list.push(held),
                        None => {}
                    }
                }
                if !status.keys.is_empty() {
                    tried.push(format!("the sesto agent ({})", client.path().display()));
                }
            }
        }
        // Agent keys sign after the files' keys; with `-i`, only the agent
        // keys of the files given (an encrypted key's public half is readable).
        let agent = AgentKeys {
            agent: super::ssh_agent::from_env().ok(),
            only: (!sources.explicit.is_empty()).then(|| {
                list.iter()
                    .filter_map(|i| i.signing_public().map(str::to_string))
                    .collect()
            }),
            list: OnceLock::new(),
        };
        Self::share_prompt(&list, &prompt);
        Ok(Identities {
            list,
            tried,
            prompt,
            warnings,
            agent,
        })
    }

    /// What reading the identity files found worth a warning (a private key
    /// others can read), one line each, naming the file and the fix.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Identities from already-parsed keys (library use and tests).
    pub fn from_list(list: Vec<Identity>, prompt: Arc<dyn Passphrase>) -> Identities {
        let tried = list.iter().map(|i| i.source.clone()).collect();
        Self::share_prompt(&list, &prompt);
        Identities {
            list,
            tried,
            prompt,
            warnings: Vec::new(),
            agent: AgentKeys::default(),
        }
    }

    /// Every identity, in order: the files' keys, then the keys ssh-agent
    /// holds (signing only), which are listed only if the iteration gets
    /// that far.
    pub fn iter(&self) -> impl Iterator<Item = &Identity> {
        self.list
            .iter()
            .chain(std::iter::once(&self.agent).flat_map(|a| a.get().iter()))
    }

    /// The public key a newcomer sends an admin to be added: the first SSH
    /// key held in a file (it can also sign), else the first public key.
    pub fn member_key_to_send(&self) -> Option<String> {
        self.list
            .iter()
            .find(|i| i.is_ssh_file_key())
            .or_else(|| self.list.iter().find(|i| i.public.is_some()))
            .and_then(|i| i.public.clone())
    }

    /// The sources that were read, for "which keys were tried" messages.
    pub fn tried(&self) -> &[String] {
        &self.tried
    }

    /// The passphrase callback.
    pub fn prompt(&self) -> &dyn Passphrase {
        self.prompt.as_ref()
    }

    /// age identities for the identities that `wanted` accepts by public key
    /// (plugins, whose public key is unknown, are always included). Encrypted
    /// keys are unlocked only here, so a key that is not wanted is never
    /// prompted for.
    pub fn age_identities(
        &self,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<Vec<&dyn age::Identity>, KeyError> {
        let mut out = Vec::new();
        let mut first_error = None;
        // Keys that need a passphrase come last, as themselves: they unlock
        // only for a file that the keys before them could not open and that
        // holds a stanza for them.
        let (locked, ready): (Vec<&Identity>, Vec<&Identity>) = self
            .list
            .iter()
            .filter(|id| id.public.as_deref().is_none_or(&wanted))
            .partition(|id| id.is_ssh_file_key() && id.is_locked());
        for id in ready {
            match id.age_identity(self.prompt.as_ref()) {
                Ok(Some(a)) => out.push(a),
                Ok(None) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        out.extend(locked.into_iter().map(|id| id as &dyn age::Identity));
        match (out.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// Why a passphrase-protected key could not be unlocked, if one was
    /// tried and failed (no terminal, wrong passphrase): the reason a file
    /// it should have opened did not open.
    pub fn unlock_failure(&self) -> Option<KeyError> {
        self.list.iter().find_map(|id| match &id.material {
            Material::Ssh { unlocked, .. } => match unlocked.get() {
                Some(Err(e)) => Some(KeyError(e.clone())),
                _ => None,
            },
            _ => None,
        })
    }

    /// Gives each passphrase-protected key the way to ask for its passphrase.
    fn share_prompt(list: &[Identity], prompt: &Arc<dyn Passphrase>) {
        for id in list {
            if let Material::Ssh { prompt: slot, .. } = &id.material {
                let _ = slot.set(prompt.clone());
            }
        }
    }
}
