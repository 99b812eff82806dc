//! The agent itself: binding its private socket, serving peers of its own
//! uid, holding keys until idle or locked, and wiping them on signals.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use age_core::format::Stanza;
use base64::Engine as _;

use crate::format::crypto::{Identity, NoPassphrase, Signer};

use super::*;

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

pub(super) struct Held {
    public: String,
    source: String,
    id: Identity,
    signer: Option<Signer>,
}

pub(super) struct State {
    keys: Vec<Held>,
    idle: Duration,
    last_used: Instant,
}

/// Makes this process's memory hard to read from outside: no core dumps,
/// no ptrace by other processes of the user, and pages locked in memory
/// where the limit allows. Returns whether the pages are locked.
pub(super) fn harden() -> bool {
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
pub(super) fn wipe_on_signals(state: Arc<Mutex<State>>, socket: PathBuf) {
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

pub(super) fn handle(
    mut conn: UnixStream,
    state: &Mutex<State>,
    options: &ServeOptions,
    memory_locked: bool,
) {
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

pub(super) fn answer(
    req: Request,
    state: &Mutex<State>,
    memory_locked: bool,
) -> Result<Response, String> {
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
pub(super) fn is_sesto_sshsig(data: &[u8]) -> bool {
    let Some(rest) = data.strip_prefix(b"SSHSIG") else {
        return false;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let len = u32::from_be_bytes(*len) as usize;
    rest.len() >= len && rest[..len].starts_with(b"sesto-")
}
