//! The client side: a connection to the agent, the identities it lends
//! (unwrapping and signing happen in the agent), and an agent started as a
//! child process for one command.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::format::crypto::{ExternalKey, Identity, KeyError, SignRaw, Signer};

use super::*;

/// A connection to a running agent.
pub struct Client {
    stream: Mutex<UnixStream>,
    path: PathBuf,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "agent::Client({})", self.path.display())
    }
}

impl Client {
    /// Connects to the agent at `path`, checking that it runs as this user.
    pub fn connect(path: &Path) -> Result<Client, String> {
        let shown = path.display();
        let stream = UnixStream::connect(path)
            .map_err(|e| format!("cannot reach the agent at {shown}: {e}"))?;
        let uid = peer_uid(&stream).map_err(|e| format!("{shown}: {e}"))?;
        // SAFETY: geteuid cannot fail.
        if uid != unsafe { libc::geteuid() } {
            return Err(format!(
                "{shown} is served by another user (uid {uid}); not using it"
            ));
        }
        // Long enough for a slow machine, short enough that a stuck agent
        // cannot hang sesto.
        let timeout = Some(Duration::from_secs(30));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        Ok(Client {
            stream: Mutex::new(stream),
            path: path.to_path_buf(),
        })
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn call(&self, req: &Request) -> Result<Response, String> {
        let mut stream = self.stream.lock().unwrap_or_else(|p| p.into_inner());
        let failed = |e: std::io::Error| format!("the sesto agent at {}: {e}", self.path.display());
        write_msg(&mut stream, req).map_err(failed)?;
        let resp: Response = read_msg(&mut stream).map_err(failed)?.ok_or_else(|| {
            format!(
                "the sesto agent at {} closed the connection",
                self.path.display()
            )
        })?;
        match &resp.error {
            Some(e) => Err(format!("the sesto agent: {e}")),
            None => Ok(resp),
        }
    }

    /// What the agent holds.
    pub fn status(&self) -> Result<Status, String> {
        let mut r = self.call(&Request::Hello)?;
        Ok(Status {
            keys: std::mem::take(&mut r.keys),
            idle: Duration::from_secs(r.idle_secs.unwrap_or(0)),
            memory_locked: r.memory_locked.unwrap_or(false),
        })
    }

    /// Hands unlocked keys to the agent, each as OpenSSH (or age identity)
    /// text with the path it came from, to keep for `idle` without use.
    pub fn add(
        &self,
        keys: Vec<(String, Zeroizing<String>)>,
        idle: Duration,
    ) -> Result<(), String> {
        let keys = keys
            .into_iter()
            .map(|(source, text)| KeyText {
                source,
                text: text.to_string(),
            })
            .collect();
        self.call(&Request::Add {
            keys,
            idle_secs: idle.as_secs().max(1),
        })
        .map(drop)
    }

    /// Makes the agent forget every key.
    pub fn lock(&self) -> Result<(), String> {
        self.call(&Request::Lock).map(drop)
    }
}

/// Connects to the agent at `path` if one is listening there; `None`
/// otherwise (no socket, a stale one, or one served by another user).
pub fn try_connect(path: &Path) -> Option<Client> {
    if std::fs::symlink_metadata(path).is_err() {
        return None;
    }
    Client::connect(path).ok()
}

/// The identities of the keys the agent holds, which decrypt and sign by
/// asking it.
pub fn identities(client: Arc<Client>, status: &Status) -> Vec<Identity> {
    status
        .keys
        .iter()
        .map(|k| {
            let ssh = k
                .signs
                .then(|| ssh_key::PublicKey::from_openssh(&k.public).ok())
                .flatten()
                .map(|p| p.key_data().clone());
            Identity::external(
                format!("{} (in the sesto agent)", k.source),
                Some(k.public.clone()),
                Box::new(AgentKey {
                    client: client.clone(),
                    public: k.public.clone(),
                    ssh,
                }),
            )
        })
        .collect()
}

/// One key held by the agent, seen from a client.
pub(super) struct AgentKey {
    client: Arc<Client>,
    public: String,
    ssh: Option<ssh_key::public::KeyData>,
}

impl age::Identity for AgentKey {
    fn unwrap_stanza(&self, stanza: &Stanza) -> Option<Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(&self, stanzas: &[Stanza]) -> Option<Result<FileKey, age::DecryptError>> {
        let req = Request::Unwrap {
            public: self.public.clone(),
            stanzas: stanzas
                .iter()
                .map(|s| WireStanza {
                    tag: s.tag.clone(),
                    args: s.args.clone(),
                    body: b64().encode(&s.body),
                })
                .collect(),
        };
        let mut resp = match self.client.call(&req) {
            Ok(r) => r,
            Err(e) => return Some(Err(age::DecryptError::Io(std::io::Error::other(e)))),
        };
        let text = Zeroizing::new(resp.file_key.take()?);
        resp.wipe();
        let bytes = Zeroizing::new(b64().decode(text.as_bytes()).unwrap_or_default());
        let Ok(key) = <[u8; 16]>::try_from(bytes.as_slice()) else {
            return Some(Err(age::DecryptError::Io(std::io::Error::other(
                "the sesto agent returned a malformed file key",
            ))));
        };
        Some(Ok(FileKey::new(Box::new(key))))
    }
}

impl ExternalKey for AgentKey {
    fn age_identity(&self) -> Result<Option<&dyn age::Identity>, KeyError> {
        Ok(Some(self))
    }

    fn can_sign(&self) -> bool {
        self.ssh.is_some()
    }

    fn signer(&self) -> Result<Signer, KeyError> {
        let public = self
            .ssh
            .clone()
            .ok_or_else(|| KeyError(format!("{}: not an SSH key; it cannot sign", self.public)))?;
        Ok(Signer::agent(
            public,
            Box::new(AgentSign {
                client: self.client.clone(),
                public: self.public.clone(),
            }),
        ))
    }
}

pub(super) struct AgentSign {
    client: Arc<Client>,
    public: String,
}

impl SignRaw for AgentSign {
    fn sign_raw(&self, data: &[u8]) -> Result<ssh_key::Signature, String> {
        let resp = self.client.call(&Request::Sign {
            public: self.public.clone(),
            data: b64().encode(data),
        })?;
        let (Some(alg), Some(sig)) = (&resp.algorithm, &resp.signature) else {
            return Err("the sesto agent returned no signature".into());
        };
        let alg = ssh_key::Algorithm::new(alg).map_err(|e| format!("the sesto agent: {e}"))?;
        let bytes = b64()
            .decode(sig)
            .map_err(|_| "the sesto agent returned a malformed signature".to_string())?;
        ssh_key::Signature::new(alg, bytes).map_err(|e| format!("the sesto agent: {e}"))
    }
}

/// An agent serving keys this process has unlocked to the sesto processes
/// it starts (git's merge drivers during `sesto sync`), on a socket in a
/// private temporary directory removed when this is dropped. Its children
/// find it through `SESTO_AGENT_SOCK`, which the caller sets.
pub struct ChildAgent {
    dir: tempfile::TempDir,
}

impl ChildAgent {
    /// Starts serving `keys` (source and unlocked key text) on a thread.
    pub fn start(keys: Vec<(String, Zeroizing<String>)>) -> Result<ChildAgent, String> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("sesto-agent-")
            .tempdir_in(&base)
            .map_err(|e| format!("cannot make a directory in {}: {e}", base.display()))?;
        let socket = dir.path().join("agent.sock");
        let listener = bind(&socket)?;
        let options = ServeOptions {
            socket: socket.clone(),
            idle: Duration::from_secs(24 * 3600),
            exit_when_empty: false,
            harden: false,
        };
        let idle = options.idle;
        std::thread::spawn(move || serve(listener, &options));
        Client::connect(&socket)?.add(keys, idle)?;
        Ok(ChildAgent { dir })
    }

    /// The socket, for `SESTO_AGENT_SOCK`.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }
}
