//! A client for ssh-agent: lists the keys an agent holds and asks it for
//! signatures, over the OpenSSH agent protocol (draft-miller-ssh-agent) on the
//! Unix socket named by `SSH_AUTH_SOCK`.
//!
//! Whatever answers on the socket is outside input: every answer is bounded
//! ([`MAX_ANSWER`] bytes, [`MAX_KEYS`] keys), and anything malformed is an
//! error, never a panic. Every read and write has a timeout, so a hung agent
//! cannot hang sesto.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ssh_encoding::{Decode, Encode};
use ssh_key::public::KeyData;
use ssh_key::{Algorithm, HashAlg, Signature};

/// Largest answer accepted from an agent: a thousand RSA-4096 keys with
/// comments fit.
pub const MAX_ANSWER: usize = 256 << 10;
/// Most keys accepted in one answer.
pub const MAX_KEYS: u32 = 1000;

/// How long listing keys may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a signature may take: longer, since `ssh-add -c` keys wait for
/// a person to confirm.
const SIGN_TIMEOUT: Duration = Duration::from_secs(120);

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// SIGN_REQUEST flag: an RSA signature with SHA-512 (`rsa-sha2-512`).
const RSA_SHA2_512: u32 = 4;

/// What went wrong talking to an agent. Carries no key material.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

/// A key an agent holds.
#[derive(Clone, Debug)]
pub struct AgentKey {
    /// The public key.
    pub key: KeyData,
    /// The agent's comment for it, with control characters removed.
    pub comment: String,
}

/// A connection to one ssh-agent, reused for every request of this process.
pub struct Agent {
    path: PathBuf,
    conn: Mutex<Option<UnixStream>>,
    keys: OnceLock<Result<Vec<AgentKey>, String>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Agent({})", self.path.display())
    }
}

/// The agent named by `SSH_AUTH_SOCK`, shared by the whole process; an
/// error saying so when the variable is unset.
pub fn from_env() -> Result<Arc<Agent>, AgentError> {
    static SHARED: OnceLock<Option<Arc<Agent>>> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            std::env::var_os("SSH_AUTH_SOCK")
                .filter(|v| !v.is_empty())
                .map(|p| Arc::new(Agent::new(PathBuf::from(p))))
        })
        .clone()
        .ok_or_else(|| AgentError("SSH_AUTH_SOCK is not set".into()))
}

impl Agent {
    /// An agent listening on the Unix socket `path`; nothing is connected
    /// until the first request.
    pub fn new(path: PathBuf) -> Agent {
        Agent {
            path,
            conn: Mutex::new(None),
            keys: OnceLock::new(),
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keys the agent holds (REQUEST_IDENTITIES), asked once per
    /// `Agent` and remembered. Keys whose type ssh-key cannot read (such as
    /// certificates) are skipped.
    pub fn keys(&self) -> Result<&[AgentKey], AgentError> {
        self.keys
            .get_or_init(|| self.list_keys().map_err(|e| e.0))
            .as_deref()
            .map_err(|e| AgentError(e.clone()))
    }

    /// Whether the agent holds `key`.
    pub fn holds(&self, key: &KeyData) -> bool {
        self.keys()
            .is_ok_and(|keys| keys.iter().any(|k| &k.key == key))
    }

    fn list_keys(&self) -> Result<Vec<AgentKey>, AgentError> {
        let answer = self.request(&[REQUEST_IDENTITIES], LIST_TIMEOUT)?;
        parse_identities(&answer)
    }

    /// Asks the agent to sign `data` with `key` (SIGN_REQUEST); RSA keys
    /// sign with SHA-512. The answer is decoded, not verified: the caller
    /// verifies it.
    pub fn sign(&self, key: &KeyData, data: &[u8]) -> Result<Signature, AgentError> {
        let blob =
            encode(key).map_err(|e| AgentError(format!("cannot encode the public key: {e}")))?;
        let is_rsa = matches!(key, KeyData::Rsa(_));
        let mut msg = vec![SIGN_REQUEST];
        put_string(&mut msg, &blob)?;
        put_string(&mut msg, data)?;
        msg.extend_from_slice(&(if is_rsa { RSA_SHA2_512 } else { 0 }).to_be_bytes());
        let answer = self.request(&msg, SIGN_TIMEOUT)?;
        let signature = parse_sign_response(&answer)?;
        if is_rsa
            && signature.algorithm()
                != (Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                })
        {
            return Err(AgentError(format!(
                "ssh-agent answered with a {} signature; sesto needs rsa-sha2-512",
                signature.algorithm()
            )));
        }
        if signature.algorithm() != key.algorithm() && !is_rsa {
            return Err(AgentError(format!(
                "ssh-agent answered with a {} signature for a {} key",
                signature.algorithm(),
                key.algorithm()
            )));
        }
        Ok(signature)
    }

    /// Sends one message and reads one answer, reusing the connection. A
    /// reused connection the agent has closed (it restarted) is reopened
    /// once; any other failure drops the connection.
    fn request(&self, msg: &[u8], timeout: Duration) -> Result<Vec<u8>, AgentError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let reused = guard.is_some();
        let result = match guard.take() {
            Some(stream) => match exchange(&stream, msg, timeout) {
                Err(Failure::Closed) => self.connect().map(|s| {
                    let out = exchange(&s, msg, timeout);
                    (s, out)
                }),
                out => Ok((stream, out)),
            },
            None => self.connect().map(|s| {
                let out = exchange(&s, msg, timeout);
                (s, out)
            }),
        };
        let (stream, out) = result?;
        match out {
            Ok(answer) => {
                *guard = Some(stream);
                Ok(answer)
            }
            Err(Failure::Closed) => Err(AgentError(format!(
                "ssh-agent at {} closed the connection{}",
                self.path.display(),
                if reused { " twice" } else { "" }
            ))),
            Err(Failure::Other(e)) => Err(AgentError(format!(
                "ssh-agent at {}: {e}",
                self.path.display()
            ))),
        }
    }

    fn connect(&self) -> Result<UnixStream, AgentError> {
        UnixStream::connect(&self.path).map_err(|e| {
            AgentError(format!(
                "cannot reach ssh-agent at {} (SSH_AUTH_SOCK): {e}",
                self.path.display()
            ))
        })
    }
}

enum Failure {
    /// The peer closed the connection before answering.
    Closed,
    Other(String),
}

fn exchange(stream: &UnixStream, msg: &[u8], timeout: Duration) -> Result<Vec<u8>, Failure> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::UnexpectedEof => Failure::Closed,
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            Failure::Other(format!("no answer within {} s", timeout.as_secs()))
        }
        _ => Failure::Other(e.to_string()),
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .map_err(io)?;
    let mut framed = Vec::with_capacity(msg.len() + 4);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(msg);
    let mut s = stream;
    s.write_all(&framed).map_err(io)?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).map_err(io)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(Failure::Other("empty answer".into()));
    }
    if len > MAX_ANSWER {
        return Err(Failure::Other(format!(
            "answer of {len} bytes is over the {} KiB limit",
            MAX_ANSWER >> 10
        )));
    }
    let mut answer = vec![0u8; len];
    s.read_exact(&mut answer).map_err(|e| match io(e) {
        Failure::Closed => Failure::Other("truncated answer".into()),
        other => other,
    })?;
    Ok(answer)
}

/// The SSH wire encoding of `value` (a key blob, a signature blob).
pub fn encode(value: &impl Encode) -> Result<Vec<u8>, ssh_encoding::Error> {
    let mut out = Vec::new();
    value.encode(&mut out)?;
    Ok(out)
}

fn put_string(out: &mut Vec<u8>, data: &[u8]) -> Result<(), AgentError> {
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&n| n as usize <= MAX_ANSWER)
        .ok_or_else(|| AgentError("request too large".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(data);
    Ok(())
}

/// Reads a uint32 from the front of `buf`.
fn take_u32(buf: &mut &[u8]) -> Result<u32, AgentError> {
    let (head, rest) = buf
        .split_first_chunk::<4>()
        .ok_or_else(|| AgentError("truncated answer".into()))?;
    *buf = rest;
    Ok(u32::from_be_bytes(*head))
}

/// Reads a length-prefixed string from the front of `buf`.
fn take_string<'a>(buf: &mut &'a [u8]) -> Result<&'a [u8], AgentError> {
    let len = take_u32(buf)? as usize;
    if len > buf.len() {
        return Err(AgentError("truncated answer".into()));
    }
    let (s, rest) = buf.split_at(len);
    *buf = rest;
    Ok(s)
}

fn unexpected(kind: u8, wanted: &str) -> AgentError {
    match kind {
        FAILURE => AgentError(format!("the agent refused ({wanted})")),
        other => AgentError(format!("unexpected answer type {other} ({wanted})")),
    }
}

fn parse_identities(answer: &[u8]) -> Result<Vec<AgentKey>, AgentError> {
    let bad = |e: AgentError| AgentError(format!("malformed key list from ssh-agent: {e}"));
    let (&kind, mut rest) = answer
        .split_first()
        .ok_or_else(|| AgentError("empty answer".into()))?;
    if kind != IDENTITIES_ANSWER {
        return Err(unexpected(kind, "listing keys"));
    }
    let n = take_u32(&mut rest).map_err(bad)?;
    if n > MAX_KEYS {
        return Err(bad(AgentError(format!(
            "{n} keys, over the limit of {MAX_KEYS}"
        ))));
    }
    let mut keys = Vec::new();
    for _ in 0..n {
        let blob = take_string(&mut rest).map_err(bad)?;
        let comment = take_string(&mut rest).map_err(bad)?;
        let mut reader = blob;
        // A key ssh-key cannot read (a certificate, a new type) is not one
        // sesto could use: skip it, as ssh does with keys it cannot use.
        let Ok(key) = KeyData::decode(&mut reader) else {
            continue;
        };
        if !reader.is_empty() {
            continue;
        }
        let comment: String = String::from_utf8_lossy(comment)
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        keys.push(AgentKey { key, comment });
    }
    if !rest.is_empty() {
        return Err(bad(AgentError("trailing bytes".into())));
    }
    Ok(keys)
}

fn parse_sign_response(answer: &[u8]) -> Result<Signature, AgentError> {
    let bad = |e: String| AgentError(format!("malformed signature from ssh-agent: {e}"));
    let (&kind, mut rest) = answer
        .split_first()
        .ok_or_else(|| AgentError("empty answer".into()))?;
    if kind != SIGN_RESPONSE {
        return Err(unexpected(
            kind,
            "signing; is the key still in the agent, and was the confirmation accepted?",
        ));
    }
    let mut blob = take_string(&mut rest).map_err(|e| bad(e.0))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes".into()));
    }
    let signature = Signature::decode(&mut blob).map_err(|e| bad(e.to_string()))?;
    if !blob.is_empty() {
        return Err(bad("trailing bytes in the signature".into()));
    }
    Ok(signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake agent in a temporary directory that answers each request with
    /// the next of `answers` (raw bytes, framing included), then closes.
    fn fake_agent(answers: Vec<Vec<u8>>) -> (tempfile::TempDir, Agent) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            for answer in answers {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).is_err() {
                    return;
                }
                let mut req = vec![0u8; u32::from_be_bytes(len) as usize];
                if s.read_exact(&mut req).is_err() {
                    return;
                }
                let _ = s.write_all(&answer);
            }
        });
        (dir, Agent::new(path))
    }

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    fn ed25519() -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519).unwrap()
    }

    fn list_answer(keys: &[&KeyData]) -> Vec<u8> {
        let mut body = vec![IDENTITIES_ANSWER];
        body.extend_from_slice(&(keys.len() as u32).to_be_bytes());
        for k in keys {
            put_string(&mut body, &encode(*k).unwrap()).unwrap();
            put_string(&mut body, b"comment\x1b[31m").unwrap();
        }
        framed(&body)
    }

    #[test]
    fn lists_keys_and_signs() {
        let key = ed25519();
        let public = key.public_key().key_data().clone();
        let sig = ssh_key::Signature::new(Algorithm::Ed25519, vec![1u8; 64]).unwrap();
        let mut sign_body = vec![SIGN_RESPONSE];
        put_string(&mut sign_body, &encode(&sig).unwrap()).unwrap();
        let (_dir, agent) = fake_agent(vec![list_answer(&[&public]), framed(&sign_body)]);
        let keys = agent.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, public);
        assert_eq!(keys[0].comment, "comment[31m");
        assert!(agent.holds(&public));
        assert_eq!(agent.sign(&public, b"data").unwrap(), sig);
    }

    #[test]
    fn hostile_answers_are_errors() {
        let key = ed25519();
        let public = key.public_key().key_data().clone();
        let good = list_answer(&[&public]);
        let mut too_many = vec![IDENTITIES_ANSWER];
        too_many.extend_from_slice(&(MAX_KEYS + 1).to_be_bytes());
        let mut trailing = good[4..].to_vec();
        trailing.push(0);
        let mut huge_string = vec![IDENTITIES_ANSWER, 0, 0, 0, 1];
        huge_string.extend_from_slice(&u32::MAX.to_be_bytes());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("nothing", vec![]),
            ("short length", vec![0, 0]),
            ("zero length", framed(&[])),
            (
                "oversized",
                ((MAX_ANSWER + 1) as u32).to_be_bytes().to_vec(),
            ),
            ("length 4 GiB", u32::MAX.to_be_bytes().to_vec()),
            ("truncated body", good[..good.len() - 3].to_vec()),
            ("failure", framed(&[FAILURE])),
            ("wrong type", framed(&[SIGN_RESPONSE, 0, 0, 0, 0])),
            ("too many keys", framed(&too_many)),
            (
                "count without keys",
                framed(&[IDENTITIES_ANSWER, 0, 0, 0, 3]),
            ),
            ("string past the end", framed(&huge_string)),
            ("trailing bytes", framed(&trailing)),
            ("garbage", framed(b"\xff\x00garbage\x13\x37")),
        ];
        for (what, answer) in cases {
            let (_dir, agent) = fake_agent(vec![answer]);
            assert!(agent.keys().is_err(), "{what}");
        }
        // Unreadable key blobs are skipped, not fatal.
        let mut body = vec![IDENTITIES_ANSWER, 0, 0, 0, 1];
        put_string(&mut body, b"\x00\x00\x00\x03abc").unwrap();
        put_string(&mut body, b"").unwrap();
        let (_dir, agent) = fake_agent(vec![framed(&body)]);
        assert!(agent.keys().unwrap().is_empty());
    }

    #[test]
    fn hostile_sign_responses_are_errors() {
        let key = ed25519();
        let public = key.public_key().key_data().clone();
        let sig = ssh_key::Signature::new(Algorithm::Ed25519, vec![1u8; 64]).unwrap();
        let blob = encode(&sig).unwrap();
        let with = |b: &[u8]| {
            let mut body = vec![SIGN_RESPONSE];
            put_string(&mut body, b).unwrap();
            framed(&body)
        };
        let rsa_sig = ssh_key::Signature::new(
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha256),
            },
            vec![1; 256],
        )
        .unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("failure", framed(&[FAILURE])),
            ("truncated blob", with(&blob[..blob.len() - 1])),
            ("garbage blob", with(b"garbage")),
            (
                "blob with trailing bytes",
                with(&[&blob[..], b"x"].concat()),
            ),
            ("wrong algorithm", with(&encode(&rsa_sig).unwrap())),
            (
                "identities answer",
                framed(&[IDENTITIES_ANSWER, 0, 0, 0, 0]),
            ),
        ];
        for (what, answer) in cases {
            let (_dir, agent) = fake_agent(vec![answer]);
            assert!(agent.sign(&public, b"data").is_err(), "{what}");
        }
    }

    #[test]
    fn an_agent_that_never_answers_times_out_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let agent = Agent::new(dir.path().join("missing.sock"));
        let err = agent.keys().unwrap_err().to_string();
        assert!(err.contains("cannot reach ssh-agent"), "{err}");
        // A hung peer: exchange with a short timeout returns an error.
        let (a, _b) = UnixStream::pair().unwrap();
        let out = exchange(&a, &[REQUEST_IDENTITIES], Duration::from_millis(50));
        assert!(matches!(out, Err(Failure::Other(m)) if m.contains("no answer")));
    }
}
