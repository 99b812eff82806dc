//! The sesto agent: holds unlocked SSH keys in memory for a while so that a
//! passphrase is asked once, and unwraps file keys and signs for sesto
//! processes (merge drivers included) over a private Unix socket. The keys
//! never leave it.
//!
//! The socket is `$SESTO_AGENT_SOCK`, else `$XDG_RUNTIME_DIR/sesto/agent.sock`,
//! else `/tmp/sesto-agent-UID/agent.sock`; its directory must be private
//! (0700, owned by the user), the socket is 0600, and the agent serves only
//! peers of its own uid (checked with `SO_PEERCRED`). Messages are a 4-byte
//! big-endian length and a JSON object, at most [`MAX_MESSAGE`] bytes. The
//! agent signs only SSHSIG data under a `sesto-` namespace, so it cannot be
//! used to log in anywhere with the keys it holds.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{ExternalKey, Identity, KeyError, NoPassphrase, SignRaw, Signer};

/// How long unlocked keys are kept without use, unless `--for` says otherwise.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(15 * 60);

/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 1 << 20;

/// Most keys one agent holds.
const MAX_KEYS: usize = 64;

/// The socket path: `SESTO_AGENT_SOCK`, else in the user's runtime
/// directory, else in a per-user directory under /tmp.
pub fn socket_path() -> PathBuf {
    if let Some(p) = std::env::var_os("SESTO_AGENT_SOCK").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join("sesto/agent.sock"),
        // SAFETY: geteuid cannot fail.
        None => PathBuf::from(format!("/tmp/sesto-agent-{}/agent.sock", unsafe {
            libc::geteuid()
        })),
    }
}

/// Creates the socket's directory if needed (0700) and checks that it is
/// the user's own and private, so no one else can connect or swap the socket.
fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let shown = dir.display();
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create {shown}: {e}")),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{shown}: {e}"))?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{shown} must be a directory of your own that only you can open (mode 0700); \
             fix it with `chmod 700 {shown}` or set SESTO_AGENT_SOCK"
        ));
    }
    Ok(())
}

/// The uid of the process at the other end of `stream`.
fn peer_uid(stream: &UnixStream) -> std::io::Result<libc::uid_t> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

fn write_msg(stream: &mut UnixStream, value: &impl Serialize) -> std::io::Result<()> {
    let body = Zeroizing::new(serde_json::to_vec(value).map_err(std::io::Error::other)?);
    if body.len() > MAX_MESSAGE {
        return Err(std::io::Error::other("message too large"));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(4 + body.len()));
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(&body);
    stream.write_all(&buf)
}

/// Reads one message; `Ok(None)` at a clean end of the stream.
fn read_msg<T: for<'de> Deserialize<'de>>(stream: &mut UnixStream) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::other(format!(
            "message of {len} bytes is over the {MAX_MESSAGE}-byte limit"
        )));
    }
    let mut body = Zeroizing::new(vec![0u8; len]);
    stream.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| std::io::Error::other(format!("malformed message: {e}")))
}

/// A request to the agent.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum Request {
    /// What the agent holds.
    Hello,
    /// Hold these unlocked keys (OpenSSH or age identity text).
    Add { keys: Vec<KeyText>, idle_secs: u64 },
    /// Unwrap the file key of an age header with the key `public`.
    Unwrap {
        public: String,
        stanzas: Vec<WireStanza>,
    },
    /// Sign SSHSIG data with the key `public`.
    Sign { public: String, data: String },
    /// Forget every key.
    Lock,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyText {
    source: String,
    text: String,
}

impl Drop for KeyText {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.text);
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireStanza {
    tag: String,
    args: Vec<String>,
    body: String,
}

/// The agent's answer; `error` set when the request failed.
#[derive(Serialize, Deserialize, Default)]
struct Response {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keys: Vec<HeldKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idle_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    memory_locked: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
}

impl Response {
    /// Wipes the file key it carries, once sent or read.
    fn wipe(&mut self) {
        if let Some(k) = &mut self.file_key {
            zeroize::Zeroize::zeroize(k);
        }
    }
}

/// A key the agent holds, as it describes it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// Normalized public key.
    pub public: String,
    /// Where the key was read from when it was unlocked.
    pub source: String,
    /// Whether it signs (an SSH key).
    pub signs: bool,
}

/// What the agent said about itself.
#[derive(Debug, Clone)]
pub struct Status {
    /// The keys it holds.
    pub keys: Vec<HeldKey>,
    /// How long keys are kept without use.
    pub idle: Duration,
    /// Whether its memory is locked against swapping.
    pub memory_locked: bool,
}

fn b64() -> &'static base64::engine::GeneralPurpose {
    &base64::engine::general_purpose::STANDARD
}

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
struct AgentKey {
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

struct AgentSign {
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

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The socket to listen on.
    pub socket: PathBuf,
    /// How long keys are kept without use (until an `add` says otherwise).
    pub idle: Duration,
    /// Exit once no key is held (an agent `sesto unlock` started), rather
    /// than wait for the next `unlock` (one run in the foreground).
    pub exit_when_empty: bool,
    /// Lock the process's memory and forbid core dumps and ptrace: for an
    /// agent process of its own, not for a command serving its children.
    pub harden: bool,
}

struct Held {
    public: String,
    source: String,
    id: Identity,
    signer: Option<Signer>,
}

struct State {
    keys: Vec<Held>,
    idle: Duration,
    last_used: Instant,
}

/// Makes this process's memory hard to read from outside: no core dumps,
/// no ptrace by other processes of the user, and pages locked in memory
/// where the limit allows. Returns whether the pages are locked.
fn harden() -> bool {
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // Locking future pages too fails allocations past the limit, so it
        // is done only where the limit leaves ample room.
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) == 0
            && (limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= 256 << 20)
            && libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) == 0
    }
}

/// Binds the socket: its directory made private, a stale socket replaced,
/// a live agent's left alone (an error).
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        private_dir(dir)?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!("an agent already listens at {shown}"));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove the stale {shown}: {e}"))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot listen at {shown}: {e}"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(listener)
}

/// Runs the agent on `listener` until it is told to exit (an agent that
/// exits when empty, after `lock` or its idle time). Returns only on an
/// error of the listener.
pub fn serve(listener: UnixListener, options: &ServeOptions) -> Result<(), String> {
    let memory_locked = options.harden && harden();
    let state = Arc::new(Mutex::new(State {
        keys: Vec::new(),
        idle: options.idle,
        last_used: Instant::now(),
    }));
    if options.harden {
        wipe_on_signals(state.clone(), options.socket.clone());
    }
    let started = Instant::now();
    {
        let state = state.clone();
        let options = options.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if !s.keys.is_empty() && s.last_used.elapsed() >= s.idle {
                // Dropping the keys wipes them (ssh-key and age zeroize on drop).
                s.keys.clear();
            }
            // An agent started for `unlock` that never got keys gives up.
            if options.exit_when_empty
                && s.keys.is_empty()
                && started.elapsed() > Duration::from_secs(10)
            {
                let _ = std::fs::remove_file(&options.socket);
                std::process::exit(0);
            }
        });
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("accepting on {}: {e}", options.socket.display())),
        };
        let state = state.clone();
        let options = options.clone();
        std::thread::spawn(move || match peer_uid(&conn) {
            Ok(uid) if uid == me => handle(conn, &state, &options, memory_locked),
            Ok(uid) => {
                // Its first request is read (briefly) and answered with the
                // refusal, so the client sees why rather than a broken pipe.
                let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = read_msg::<serde_json::Value>(&mut conn);
                let _ = write_msg(
                    &mut conn,
                    &Response {
                        error: Some(format!("uid {uid} may not use this agent")),
                        ..Response::default()
                    },
                );
            }
            Err(_) => {}
        });
    }
    Ok(())
}

/// An agent process of its own stops on SIGTERM, SIGINT or SIGHUP (a
/// service manager's stop, a logout) by wiping its keys and removing its
/// socket first. The signals are blocked before any other thread starts, so
/// only the waiting thread takes them.
fn wipe_on_signals(state: Arc<Mutex<State>>, socket: PathBuf) {
    // SAFETY: plain libc calls on a sigset_t owned here.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: sigwait writes the signal number into `sig`.
        while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
        state.lock().unwrap_or_else(|p| p.into_inner()).keys.clear();
        let _ = std::fs::remove_file(&socket);
        std::process::exit(0);
    });
}

fn handle(mut conn: UnixStream, state: &Mutex<State>, options: &ServeOptions, memory_locked: bool) {
    loop {
        let req: Request = match read_msg(&mut conn) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                let _ = write_msg(
                    &mut conn,
                    &Response {
                        error: Some(e.to_string()),
                        ..Response::default()
                    },
                );
                return;
            }
        };
        let lock = matches!(req, Request::Lock);
        let mut resp = answer(req, state, memory_locked).unwrap_or_else(|e| Response {
            error: Some(e),
            ..Response::default()
        });
        let sent = write_msg(&mut conn, &resp);
        resp.wipe();
        if sent.is_err() {
            return;
        }
        if lock && options.exit_when_empty {
            let _ = std::fs::remove_file(&options.socket);
            std::process::exit(0);
        }
    }
}

fn answer(req: Request, state: &Mutex<State>, memory_locked: bool) -> Result<Response, String> {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let find = |s: &State, public: &str| -> Result<usize, String> {
        s.keys
            .iter()
            .position(|h| h.public == public)
            .ok_or_else(|| "it does not hold that key (locked, or timed out)".to_string())
    };
    match req {
        Request::Hello => Ok(Response {
            keys: s
                .keys
                .iter()
                .map(|h| HeldKey {
                    public: h.public.clone(),
                    source: h.source.clone(),
                    signs: h.signer.is_some(),
                })
                .collect(),
            idle_secs: Some(s.idle.as_secs()),
            memory_locked: Some(memory_locked),
            ..Response::default()
        }),
        Request::Add { keys, idle_secs } => {
            let mut new = Vec::new();
            for k in &keys {
                for id in Identity::parse(&k.text, &k.source).map_err(|e| e.0)? {
                    let public = id
                        .public()
                        .ok_or_else(|| format!("{}: plugin identities cannot be held", k.source))?
                        .to_string();
                    if id.is_locked() {
                        return Err(format!("{}: the key is still encrypted", k.source));
                    }
                    let signer = if id.can_sign() {
                        Some(id.signer(&NoPassphrase).map_err(|e| e.0)?)
                    } else {
                        None
                    };
                    new.push(Held {
                        public,
                        source: k.source.clone(),
                        id,
                        signer,
                    });
                }
            }
            for h in new {
                s.keys.retain(|old| old.public != h.public);
                s.keys.push(h);
            }
            if s.keys.len() > MAX_KEYS {
                let extra = s.keys.len() - MAX_KEYS;
                s.keys.drain(..extra);
            }
            s.idle = Duration::from_secs(idle_secs.clamp(1, 30 * 24 * 3600));
            s.last_used = Instant::now();
            Ok(Response::default())
        }
        Request::Unwrap { public, stanzas } => {
            let i = find(&s, &public)?;
            if stanzas.len() > 1024 {
                return Err("too many stanzas".into());
            }
            let stanzas = stanzas
                .into_iter()
                .map(|w| {
                    Ok(Stanza {
                        tag: w.tag,
                        args: w.args,
                        body: b64()
                            .decode(&w.body)
                            .map_err(|_| "malformed stanza body".to_string())?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            s.last_used = Instant::now();
            let id = s.keys[i]
                .id
                .age_identity(&NoPassphrase)
                .map_err(|e| e.0)?
                .ok_or("that key cannot decrypt")?;
            match id.unwrap_stanzas(&stanzas) {
                None => Ok(Response::default()),
                Some(Ok(key)) => Ok(Response {
                    file_key: Some(b64().encode(key.expose_secret())),
                    ..Response::default()
                }),
                Some(Err(e)) => Err(e.to_string()),
            }
        }
        Request::Sign { public, data } => {
            let i = find(&s, &public)?;
            let data = b64()
                .decode(&data)
                .map_err(|_| "malformed data".to_string())?;
            if !is_sesto_sshsig(&data) {
                return Err("it signs only SSHSIG data under a sesto- namespace".into());
            }
            s.last_used = Instant::now();
            let signer = s.keys[i].signer.as_ref().ok_or("that key cannot sign")?;
            let sig = signer.sign_raw(&data).map_err(|e| e.to_string())?;
            Ok(Response {
                algorithm: Some(sig.algorithm().as_str().to_string()),
                signature: Some(b64().encode(sig.as_bytes())),
                ..Response::default()
            })
        }
        Request::Lock => {
            s.keys.clear();
            Ok(Response::default())
        }
    }
}

/// Whether `data` is SSHSIG's signed data under a namespace starting with
/// `sesto-` (the magic, then the namespace as an SSH string).
fn is_sesto_sshsig(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"SSHSIG") else {
        return false;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    rest.len() >= len && rest[..len].starts_with(b"sesto-")
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

/// Parses a duration such as `90s`, `15m`, `2h` or `1d` (a bare number is
/// minutes).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write e.g. 90s, 15m, 2h or 1d"))?;
    let secs = match unit {
        "s" => n,
        "" | "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => {
            return Err(format!(
                "`{text}` is not a duration; write e.g. 90s, 15m, 2h or 1d"
            ))
        }
    };
    if secs == 0 || secs > 30 * 86400 {
        return Err(format!("`{text}`: give a duration between 1s and 30d"));
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_refuse_nonsense() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        for bad in [
            "",
            "m",
            "0s",
            "31d",
            "1y",
            "-5m",
            "99999999999999999999d",
            "1.5h",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_sesto_sshsig_data_is_signed() {
        let ok =
            ssh_key::SshSig::signed_data("sesto-node-v1", ssh_key::HashAlg::Sha512, b"m").unwrap();
        assert!(is_sesto_sshsig(&ok));
        let git = ssh_key::SshSig::signed_data("git", ssh_key::HashAlg::Sha512, b"m").unwrap();
        assert!(!is_sesto_sshsig(&git));
        for bad in [
            &b""[..],
            b"SSHSIG",
            b"SSHSIG\x00\x00\x00\x09sesto",
            b"SSHSIG\xff\xff\xff\xffsesto-",
            b"\x00\x00\x00\x0essh-connection",
        ] {
            assert!(!is_sesto_sshsig(bad), "{bad:?}");
        }
    }

    #[test]
    fn hostile_messages_are_refused_without_panic() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        // Over the limit: refused before allocating.
        a.write_all(&(u32::MAX).to_be_bytes()).unwrap();
        assert!(read_msg::<Request>(&mut b).is_err());
        for body in [
            &b"garbage"[..],
            b"{}",
            b"{\"op\":\"sign\"}",
            b"{\"op\":\"nope\"}",
            b"[]",
        ] {
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
            a.write_all(body).unwrap();
            assert!(read_msg::<Request>(&mut b).is_err(), "{body:?}");
        }
        // Truncated: the length promises more than comes.
        let (mut a, mut b) = UnixStream::pair().unwrap();
        a.write_all(&10u32.to_be_bytes()).unwrap();
        a.write_all(b"{\"op\"").unwrap();
        drop(a);
        assert!(read_msg::<Request>(&mut b).is_err());
    }

    #[test]
    fn an_agent_unwraps_and_signs_and_forgets_on_lock() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("agent/agent.sock");
        let listener = bind(&sock).unwrap();
        let options = ServeOptions {
            socket: sock.clone(),
            idle: Duration::from_secs(60),
            exit_when_empty: false,
            harden: false,
        };
        std::thread::spawn(move || serve(listener, &options));
        let key = ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
        let text = Zeroizing::new(key.to_openssh(ssh_key::LineEnding::LF).unwrap().to_string());
        let public =
            crate::crypto::normalize_public(&key.public_key().to_openssh().unwrap()).unwrap();
        let client = Arc::new(Client::connect(&sock).unwrap());
        client
            .add(vec![("k".into(), text)], Duration::from_secs(60))
            .unwrap();
        let status = client.status().unwrap();
        assert_eq!(status.keys.len(), 1);
        assert_eq!(status.keys[0].public, public);
        let ids = identities(client.clone(), &status);

        let recipient = crate::crypto::Recipient::parse(&public)
            .unwrap()
            .to_age()
            .unwrap();
        let ct = crate::crypto::encrypt(b"value", &[recipient.as_ref()]).unwrap();
        let age_id = ids[0].age_identity(&NoPassphrase).unwrap().unwrap();
        assert_eq!(
            &crate::crypto::decrypt(&ct, &[age_id]).unwrap()[..],
            b"value"
        );

        let pem = ids[0]
            .signer(&NoPassphrase)
            .unwrap()
            .sign(crate::crypto::NODE_NAMESPACE, b"msg")
            .unwrap();
        assert_eq!(
            crate::crypto::verify(&pem, crate::crypto::NODE_NAMESPACE, b"msg").unwrap(),
            public
        );
        // Signatures are Ed25519's: the same as the key's own, byte for byte.
        assert_eq!(
            pem,
            crate::crypto::sign(&key, crate::crypto::NODE_NAMESPACE, b"msg").unwrap()
        );

        client.lock().unwrap();
        assert!(client.status().unwrap().keys.is_empty());
        assert!(crate::crypto::decrypt(&ct, &[age_id]).is_err());
        assert!(ids[0]
            .signer(&NoPassphrase)
            .unwrap()
            .sign(crate::crypto::NODE_NAMESPACE, b"msg")
            .is_err());
    }
}
