//! Where identities come from (`-i`, `$SESTO_IDENTITY_FILE`, the agent, the
//! usual files under `~/.ssh`) and the set a command works with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use zeroize::Zeroizing;

use super::KeyError;

use super::*;

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
    agent: Option<Arc<crate::format::crypto::ssh_agent::Agent>>,
    /// With `-i`: only the agent keys among these SSH public keys.
    only: Option<Vec<String>>,
    list: OnceLock<Vec<Identity>>,
}

impl AgentKeys {
    fn get(&self) -> &[Identity] {
        self.list.get_or_init(|| match &self.agent {
            Some(agent) => {
                crate::format::crypto::agent_identity::agent_signing_identities(agent, |p| {
                    self.only
                        .as_ref()
                        .is_none_or(|only| only.iter().any(|o| o == p))
                })
            }
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
        let agent = Some(crate::local::agent::socket_path());
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
        if let Some(client) = sources
            .agent
            .as_deref()
            .and_then(crate::local::agent::try_connect)
        {
            let client = Arc::new(client);
            if let Ok(status) = client.status() {
                for held in crate::local::agent::identities(client.clone(), &status) {
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
            agent: crate::format::crypto::ssh_agent::from_env().ok(),
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
