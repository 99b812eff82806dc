//! The roster: members, their keys, grants and the root id, as signed YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{yaml_error, FormatError, NodeId, FORMAT, OLDEST_FORMAT};

/// Read or write access granted on a shared folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Read the folder and everything below it.
    Read,
    /// Read and write the folder and everything below it.
    Write,
}

/// One member of the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member's public key: an SSH public key or an age recipient.
    pub key: String,
    /// Admins read the root and may change the roster.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// An SSH key to sign with, for members whose `key` is not an SSH key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
}

impl Member {
    /// The SSH public key this member signs with, if any.
    pub fn signer_key(&self) -> Option<&str> {
        match &self.signing_key {
            Some(k) => Some(k),
            None if self.key.starts_with("ssh-") => Some(&self.key),
            None => None,
        }
    }
}

/// The roster: members, grants and the root id. Plaintext, signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Roster {
    /// The store's format version: 1 or 2 (where node files live; see
    /// [`NodeId::rel_path`]).
    pub sesto: u32,
    /// Random store id, fixed at init.
    pub store: String,
    /// +1 on every roster change.
    pub version: u64,
    /// SHA-256 of the previous roster.yaml bytes; absent in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<String>,
    /// A merge of two concurrent roster changes: SHA-256 of the other side's
    /// roster.yaml bytes (`previous` is this side's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merges: Option<String>,
    /// The root folder's id.
    pub root: NodeId,
    /// Members by name.
    pub members: BTreeMap<String, Member>,
    /// Shared folders: node id → member → access.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grants: BTreeMap<NodeId, BTreeMap<String, Access>>,
}

impl Roster {
    /// A first roster (version 1) with fresh random store and root ids.
    pub fn new(members: BTreeMap<String, Member>) -> Roster {
        Roster {
            sesto: FORMAT,
            store: NodeId::random().to_string(),
            version: 1,
            previous: None,
            merges: None,
            root: NodeId::random(),
            members,
            grants: BTreeMap::new(),
        }
    }

    /// Serialises the roster to the bytes that are signed.
    pub fn encode(&self) -> Vec<u8> {
        serde_yaml::to_string(self)
            .expect("a roster always serialises")
            .into_bytes()
    }

    /// Parses roster bytes, refusing non-canonical YAML and broken rules.
    pub fn decode(bytes: &[u8]) -> Result<Roster, FormatError> {
        match super::declared_version(bytes) {
            Some(v) if !(u64::from(OLDEST_FORMAT)..=u64::from(FORMAT)).contains(&v) => {
                return Err(super::version_error(v, FORMAT))
            }
            _ => {}
        }
        crate::format::limits::check_yaml(bytes)?;
        let roster: Roster = serde_yaml::from_slice(bytes).map_err(yaml_error)?;
        if roster.encode() != bytes {
            return Err(FormatError::NotCanonical);
        }
        if !(OLDEST_FORMAT..=FORMAT).contains(&roster.sesto) {
            return Err(super::version_error(u64::from(roster.sesto), FORMAT));
        }
        roster
            .store
            .parse::<NodeId>()
            .map_err(|e| FormatError::Invalid(format!("store: {e}")))?;
        if roster.members.values().all(|m| !m.admin) {
            return Err(FormatError::Invalid("the roster has no admin".into()));
        }
        for (name, grants) in &roster.grants {
            for member in grants.keys() {
                if !roster.members.contains_key(member) {
                    return Err(FormatError::Invalid(format!(
                        "grant on {name} names {member:?}, who is not a member"
                    )));
                }
            }
        }
        for name in roster.members.keys() {
            check_member_name(name).map_err(FormatError::Invalid)?;
        }
        Ok(roster)
    }
}

impl Roster {
    /// Whether `member` is an admin.
    pub fn is_admin(&self, member: &str) -> bool {
        self.members.get(member).is_some_and(|m| m.admin)
    }

    /// The admins' names, sorted.
    pub fn admins(&self) -> Vec<&str> {
        self.members
            .iter()
            .filter(|(_, m)| m.admin)
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The access `member` has on a node below the ancestors `chain` (root
    /// first, the node itself last): `Write` for admins, else the strongest
    /// grant on the node or an ancestor.
    pub fn access(&self, member: &str, chain: &[NodeId]) -> Option<Access> {
        if self.is_admin(member) {
            return Some(Access::Write);
        }
        self.members.get(member)?;
        chain
            .iter()
            .filter_map(|id| self.grants.get(id).and_then(|g| g.get(member)).copied())
            .max_by_key(|a| *a == Access::Write)
    }

    /// Whether `member` may write a node below `chain`.
    pub fn may_write(&self, member: &str, chain: &[NodeId]) -> bool {
        self.access(member, chain) == Some(Access::Write)
    }

    /// Whether `member` may read a node below `chain`.
    pub fn may_read(&self, member: &str, chain: &[NodeId]) -> bool {
        self.access(member, chain).is_some()
    }
}

/// Member names: 1–64 characters of `[A-Za-z0-9._@-]`, not starting with `-` or `.`.
pub fn check_member_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid member name {:?}: use 1-64 of A-Z a-z 0-9 . _ @ -, not starting with - or .",
            name.chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        ))
    }
}
