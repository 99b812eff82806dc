//! Identities backed by ssh-agent: signing-only identities for the keys an
//! agent holds, and age X25519 identities derived from an agent signature
//! (`SESTO-SSH-AGENT-1` identity lines), so a member whose private key lives
//! only in an agent can decrypt without a key file.
//!
//! The derived secret is HKDF-SHA256 (salt [`DERIVE_NAMESPACE`], info the SSH
//! public key blob) over the agent's signature of a fixed SSHSIG message.
//! Ed25519 and RSA PKCS#1 v1.5 signatures are deterministic, so one agent key
//! always yields one age identity; enrolment checks that by signing twice.

use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use hkdf::Hkdf;
use ssh_key::public::KeyData;
use ssh_key::{HashAlg, PublicKey, SshSig};
use zeroize::Zeroizing;

use super::ssh_agent::{self, Agent};
use super::{ExternalKey, Identity, KeyError, SignRaw, Signer};

/// SSHSIG namespace of the signature an age identity is derived from; also
/// the HKDF salt.
pub const DERIVE_NAMESPACE: &str = "sesto-agent-identity-v1";
/// First word of an identity line for an agent-derived age identity.
pub const LINE_PREFIX: &str = "SESTO-SSH-AGENT-1";
/// Longest identity line accepted (an RSA-4096 public key is under 800
/// bytes of base64).
const MAX_LINE: usize = 4096;

/// The message signed to derive an age identity from `public` (OpenSSH
/// form, no comment).
fn derive_message(public: &str) -> Vec<u8> {
    format!("sesto agent-derived age identity v1\n{public}").into_bytes()
}

fn openssh(key: &KeyData) -> Result<String, KeyError> {
    PublicKey::new(key.clone(), "")
        .to_openssh()
        .map(|s| s.trim().to_string())
        .map_err(|e| KeyError(e.to_string()))
}

fn fingerprint(key: &KeyData) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn check_kind(key: &KeyData) -> Result<(), KeyError> {
    match key {
        KeyData::Ed25519(_) | KeyData::Rsa(_) => Ok(()),
        other => Err(KeyError(format!(
            "{} keys cannot carry an agent-derived identity (their signatures are not \
             deterministic, or age cannot use them); use an ssh-ed25519 or ssh-rsa key",
            other.algorithm()
        ))),
    }
}

/// Asks `agent` for the derivation signature with `key`, verified.
fn derivation_signature(agent: &Agent, key: &KeyData) -> Result<ssh_key::Signature, KeyError> {
    let public = openssh(key)?;
    let msg = derive_message(&public);
    let data = SshSig::signed_data(DERIVE_NAMESPACE, HashAlg::Sha512, &msg)
        .map_err(|e| KeyError(e.to_string()))?;
    let signature = agent.sign(key, &data).map_err(|e| KeyError(e.0))?;
    let sig = SshSig::new(
        key.clone(),
        DERIVE_NAMESPACE,
        HashAlg::Sha512,
        signature.clone(),
    )
    .map_err(|e| KeyError(format!("ssh-agent's signature is malformed: {e}")))?;
    PublicKey::new(key.clone(), "")
        .verify(DERIVE_NAMESPACE, &msg, &sig)
        .map_err(|_| {
            KeyError(format!(
                "ssh-agent's signature with {} does not verify",
                fingerprint(key)
            ))
        })?;
    Ok(signature)
}

/// The age identity derived from `signature` by `key`.
fn identity_from(
    key: &KeyData,
    signature: &ssh_key::Signature,
) -> Result<age::x25519::Identity, KeyError> {
    let info = ssh_agent::encode(key).map_err(|e| KeyError(e.to_string()))?;
    let hk = Hkdf::<sha2::Sha256>::new(Some(DERIVE_NAMESPACE.as_bytes()), signature.as_bytes());
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(&info, okm.as_mut())
        .map_err(|_| KeyError("HKDF expansion failed".into()))?;
    // Encoded exactly as age's `Identity::to_string` does, then parsed back.
    let hrp = bech32::Hrp::parse("age-secret-key-").map_err(|e| KeyError(e.to_string()))?;
    let encoded = Zeroizing::new(
        bech32::encode_lower::<bech32::Bech32>(hrp, okm.as_ref())
            .map_err(|e| KeyError(e.to_string()))?
            .to_uppercase(),
    );
    age::x25519::Identity::from_str(&encoded).map_err(|e| KeyError(e.to_string()))
}

/// Derives the age identity of `key` through `agent` (one signature).
pub fn derive(agent: &Agent, key: &KeyData) -> Result<age::x25519::Identity, KeyError> {
    check_kind(key)?;
    identity_from(key, &derivation_signature(agent, key)?)
}

/// What a member needs to use an agent-derived identity.
#[derive(Debug)]
pub struct Enrolment {
    /// The line for `~/.config/sesto/identity`.
    pub identity_line: String,
    /// The derived age recipient (`age1…`): the member's `key`.
    pub recipient: String,
    /// The SSH public key (OpenSSH form, no comment): the member's `signing_key`.
    pub ssh_key: String,
    /// The SSH key's SHA256 fingerprint.
    pub fingerprint: String,
}

/// Derives the identity of `key` through `agent`, signing twice to check
/// that the agent signs deterministically; refuses a key whose signatures
/// differ.
pub fn enrol(agent: &Agent, key: &KeyData) -> Result<Enrolment, KeyError> {
    check_kind(key)?;
    let first = derivation_signature(agent, key)?;
    let second = derivation_signature(agent, key)?;
    if first != second {
        return Err(KeyError(format!(
            "ssh-agent gave two different signatures of the same message with {}: it signs \
             non-deterministically, so no stable age identity can be derived from this key; \
             use a plain ssh-ed25519 key in an agent that signs deterministically (OpenSSH's)",
            fingerprint(key)
        )));
    }
    let recipient = identity_from(key, &first)?.to_public().to_string();
    let ssh_key = openssh(key)?;
    Ok(Enrolment {
        identity_line: format!("{LINE_PREFIX} {recipient} {ssh_key}"),
        recipient,
        ssh_key,
        fingerprint: fingerprint(key),
    })
}

/// Picks the agent key to enrol: the one `wanted` names (a public key or a
/// SHA256 fingerprint), else the only Ed25519 or RSA key the agent holds.
pub fn pick_key(agent: &Agent, wanted: Option<&str>) -> Result<KeyData, KeyError> {
    let keys = agent.keys().map_err(|e| KeyError(e.0))?;
    let usable: Vec<&KeyData> = keys
        .iter()
        .map(|k| &k.key)
        .filter(|k| check_kind(k).is_ok())
        .collect();
    let list = || {
        usable
            .iter()
            .map(|k| format!("  {} {}", k.algorithm(), fingerprint(k)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if let Some(wanted) = wanted.map(str::trim) {
        let by_key = PublicKey::from_openssh(wanted)
            .ok()
            .map(|k| k.key_data().clone());
        return keys
            .iter()
            .map(|k| &k.key)
            .find(|k| by_key.as_ref() == Some(*k) || fingerprint(k) == wanted)
            .cloned()
            .ok_or_else(|| {
                KeyError(format!(
                    "ssh-agent does not hold that key; it holds:\n{}",
                    if usable.is_empty() {
                        "  (no Ed25519 or RSA key)".into()
                    } else {
                        list()
                    }
                ))
            })
            .and_then(|k| check_kind(&k).map(|_| k));
    }
    match usable.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(KeyError(
            "ssh-agent holds no Ed25519 or RSA key; add one with `ssh-add`".into(),
        )),
        _ => Err(KeyError(format!(
            "ssh-agent holds {} usable keys; name one with --key:\n{}",
            usable.len(),
            list()
        ))),
    }
}

/// Signs through an agent for a [`Signer`].
struct AgentSigner {
    agent: Arc<Agent>,
    key: KeyData,
}

impl SignRaw for AgentSigner {
    fn sign_raw(&self, data: &[u8]) -> Result<ssh_key::Signature, String> {
        self.agent.sign(&self.key, data).map_err(|e| e.0)
    }
}

/// A key an ssh-agent holds: signs, cannot decrypt.
struct AgentSigning {
    agent: Arc<Agent>,
    key: KeyData,
}

impl ExternalKey for AgentSigning {
    fn age_identity(&self) -> Result<Option<&dyn age::Identity>, KeyError> {
        Ok(None)
    }
    fn can_sign(&self) -> bool {
        true
    }
    fn signer(&self) -> Result<Signer, KeyError> {
        Ok(Signer::agent(
            self.key.clone(),
            Box::new(AgentSigner {
                agent: self.agent.clone(),
                key: self.key.clone(),
            }),
        ))
    }
}

/// Signing-only identities for the Ed25519 and RSA keys `agent` holds,
/// those `wanted` accepts by public key. Nothing when the agent cannot be
/// reached.
pub(crate) fn agent_signing_identities(
    agent: &Arc<Agent>,
    wanted: impl Fn(&str) -> bool,
) -> Vec<Identity> {
    let Ok(keys) = agent.keys() else {
        return Vec::new();
    };
    // FIDO2 keys sign too (each signature asks for a touch); they are
    // never used to derive an identity, their signatures being unique.
    keys.iter()
        .filter(|k| check_kind(&k.key).is_ok() || matches!(k.key, KeyData::SkEd25519(_)))
        .filter_map(|k| {
            let public = openssh(&k.key).ok()?;
            wanted(&public).then(|| {
                Identity::external(
                    format!("ssh-agent ({})", fingerprint(&k.key)),
                    Some(public),
                    Box::new(AgentSigning {
                        agent: agent.clone(),
                        key: k.key.clone(),
                    }),
                )
            })
        })
        .collect()
}

/// An age identity derived through ssh-agent, from an identity line.
pub(crate) struct Derived {
    source: String,
    recipient: String,
    key: KeyData,
    /// None: the agent of `SSH_AUTH_SOCK`, looked up at first use.
    agent: Option<Arc<Agent>>,
    derived: OnceLock<Result<age::x25519::Identity, String>>,
}

impl Derived {
    fn agent(&self) -> Result<Arc<Agent>, String> {
        match &self.agent {
            Some(a) => Ok(a.clone()),
            None => ssh_agent::from_env().map_err(|e| e.0),
        }
    }

    fn derive(&self) -> Result<age::x25519::Identity, String> {
        let fp = fingerprint(&self.key);
        let agent = self.agent().map_err(|why| {
            format!(
                "{}: the age identity derived from {fp} needs ssh-agent: {why}; \
                 start ssh-agent and `ssh-add` that key",
                self.source
            )
        })?;
        let keys = agent.keys().map_err(|e| format!("{}: {e}", self.source))?;
        if !keys.iter().any(|k| k.key == self.key) {
            return Err(format!(
                "{}: ssh-agent at {} does not hold {fp}; add it with `ssh-add`",
                self.source,
                agent.path().display()
            ));
        }
        let id = derive(&agent, &self.key).map_err(|e| format!("{}: {e}", self.source))?;
        if id.to_public().to_string() != self.recipient {
            return Err(format!(
                "{}: the identity ssh-agent derives from {fp} is not the recorded {}: the agent \
                 holds a different key under that public key, or signs non-deterministically; \
                 run `sesto ssh-agent-identity` again",
                self.source, self.recipient
            ));
        }
        Ok(id)
    }
}

impl ExternalKey for Derived {
    fn age_identity(&self) -> Result<Option<&dyn age::Identity>, KeyError> {
        match self.derived.get_or_init(|| self.derive()) {
            Ok(id) => Ok(Some(id)),
            Err(e) => Err(KeyError(e.clone())),
        }
    }
    fn can_sign(&self) -> bool {
        self.agent().is_ok_and(|a| a.holds(&self.key))
    }
    fn signer(&self) -> Result<Signer, KeyError> {
        let agent = self.agent().map_err(|why| {
            KeyError(format!(
                "{}: signing with {} needs ssh-agent: {why}",
                self.source,
                fingerprint(&self.key)
            ))
        })?;
        Ok(Signer::agent(
            self.key.clone(),
            Box::new(AgentSigner {
                agent,
                key: self.key.clone(),
            }),
        ))
    }
}

/// Parses an identity line `SESTO-SSH-AGENT-1 <age1…> <type> <base64>` into
/// an identity whose public key is the recipient and which signs as the SSH
/// key. `agent`: None for the agent of `SSH_AUTH_SOCK`, found at first use.
pub(crate) fn parse_line(
    line: &str,
    at: &str,
    agent: Option<Arc<Agent>>,
) -> Result<Identity, KeyError> {
    let bad = |why: &str| {
        KeyError(format!(
            "{at}: malformed {LINE_PREFIX} line ({why}); expected \
             `{LINE_PREFIX} age1… ssh-ed25519 AAAA…` as `sesto ssh-agent-identity` prints it"
        ))
    };
    if line.len() > MAX_LINE {
        return Err(bad("too long"));
    }
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [prefix, recipient, kind, base64] = fields.as_slice() else {
        return Err(bad("it needs four fields"));
    };
    if *prefix != LINE_PREFIX {
        return Err(bad("unknown version"));
    }
    let recipient = age::x25519::Recipient::from_str(recipient)
        .map_err(|_| bad("not an age1 recipient"))?
        .to_string();
    let key = PublicKey::from_openssh(&format!("{kind} {base64}"))
        .map_err(|_| bad("not an SSH public key"))?
        .key_data()
        .clone();
    check_kind(&key).map_err(|e| KeyError(format!("{at}: {e}")))?;
    let signs_as = openssh(&key)?;
    let derived = Derived {
        source: at.to_string(),
        recipient: recipient.clone(),
        key,
        agent,
        derived: OnceLock::new(),
    };
    Ok(Identity::external(at.to_string(), Some(recipient), Box::new(derived)).signing_as(signs_as))
}

#[cfg(test)]
mod tests;
