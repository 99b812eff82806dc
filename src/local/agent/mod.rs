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
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

mod client;
mod server;

pub use client::{identities, try_connect, ChildAgent, Client};
pub use server::{bind, serve, ServeOptions};

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
mod tests;
