//! Reading nodes: each one decrypted with the key its parent holds, its
//! signature checked against the roster (its signer must be allowed to write
//! it) and its body bound to the id it was read under; and walking a path
//! down from the folders the current member starts from.

use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{self, Kind, NodeId, NodeKey, MAX_NODE_FILE};
use crate::store::files::read_limited;

use super::{nearest, Node, Rules, SPath, Store};

impl Store {
    /// The folders the current member reaches without the root: the shared
    /// folders granted to them, each with the path its body records, sorted by
    /// path. Admins reach everything from the root, so theirs is the root alone.
    pub(crate) fn tops(&self) -> Result<Vec<(SPath, Node)>> {
        if let Some(tops) = self.tops.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(tops.clone());
        }
        let me = match self.me.as_deref() {
            Some(me) if !self.roster.is_admin(me) => me,
            _ => return Ok(vec![(SPath::root(), self.read_root()?)]),
        };
        let mut tops = Vec::new();
        for (id, grants) in &self.roster.grants {
            // A granted folder that is gone (removed by a member, or on one
            // side of a merge) shows nothing; the others still open.
            if !grants.contains_key(me) || !self.node_file(id).exists() {
                continue;
            }
            let node = self.read_node(id, None, &[*id])?;
            if node.body.kind != Kind::Folder {
                return Err(self.reject(id, "a grant names it, but it is not a folder"));
            }
            let path = if *id == self.roster.root {
                SPath::root()
            } else {
                let text = node.body.path.as_deref().ok_or_else(|| {
                    self.reject(
                        id,
                        "a shared folder without its path (written before the grant?)",
                    )
                })?;
                SPath::parse(text).map_err(|e| self.reject(id, format!("its path: {e}")))?
            };
            tops.push((path, node));
        }
        tops.sort_by(|a, b| a.0.cmp(&b.0));
        *self.tops.lock().unwrap_or_else(|e| e.into_inner()) = Some(tops.clone());
        Ok(tops)
    }

    /// The error for a path outside every folder the current member reaches.
    pub(crate) fn not_granted(&self, path: &SPath) -> Error {
        Error::NotGranted {
            path: path.to_string(),
            member: self.me.clone().unwrap_or_default(),
            admins: self.roster.admins().iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Reads and verifies one node. `key` is its key from the parent's entry;
    /// without it (the root, a shared folder) the member identities are used.
    /// `chain` lists its ancestors and itself, root first.
    pub(crate) fn read_node(
        &self,
        id: &NodeId,
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        let path = self.node_file(id);
        // Every directory between `.sesto/` and the file: `nodes/` and the
        // shard (and each level of a deeper layout).
        let mut levels = path.ancestors().skip(1).take_while(|d| *d != self.dir);
        if levels.any(is_symlink) {
            return Err(self.reject(
                id,
                "its directory is a symlink; symlinks are not allowed in .sesto/",
            ));
        }
        let bytes = match read_limited(&path, MAX_NODE_FILE) {
            Ok(b) => b,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(self.reject(id, "the file is missing (deleted, or not yet merged)"))
            }
            Err(Error::Io { source, .. }) => return Err(self.reject(id, source)),
            Err(Error::Refused { reason, .. }) => return Err(self.reject(id, reason)),
            Err(e) => return Err(e),
        };
        self.open_node(id, &bytes, key, chain)
    }

    /// Decrypts and verifies node bytes read from anywhere (the work tree, a
    /// git object): the checks of [`Store::read_node`] after reading.
    pub(crate) fn open_node(
        &self,
        id: &NodeId,
        bytes: &[u8],
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        self.open_node_under(&self.rules(), id, bytes, key, chain)
    }

    /// The rules this store's own roster sets.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            roster: &self.roster,
            keys: &self.keys,
            me: self.me.as_deref(),
        }
    }

    /// [`Store::open_node`] under another roster's rules (one side of a
    /// merge, read from its own commit), with this store's identities.
    pub(crate) fn open_node_under(
        &self,
        rules: &Rules,
        id: &NodeId,
        bytes: &[u8],
        key: Option<&NodeKey>,
        chain: &[NodeId],
    ) -> Result<Node> {
        if bytes.len() as u64 > MAX_NODE_FILE {
            return Err(self.reject(id, "the file is over the 64 MiB limit"));
        }
        let plaintext = match key {
            Some(k) => {
                let identity = age::x25519::Identity::from_str(k.expose_secret())
                    .map_err(|_| self.reject(id, "its key in the parent folder is malformed"))?;
                crypto::decrypt(bytes, &[&identity]).map_err(|e| match e {
                    crypto::CryptoError::NoMatchingKeys => self.reject(
                        id,
                        "the key in its parent folder does not open it (replaced file?)",
                    ),
                    other => self.reject(id, other),
                })?
            }
            None => {
                let ids = self.ids.age_identities(|p| rules.keys.contains_key(p))?;
                if ids.is_empty() {
                    return Err(Error::NoIdentity {
                        tried: self.ids.tried().to_vec(),
                        public: self.ids.member_key_to_send(),
                    });
                }
                crypto::decrypt(bytes, &ids).map_err(|e| match e {
                    // A key this file is encrypted to could not be unlocked
                    // (no terminal, a wrong passphrase): that is the reason.
                    _ if self.ids.unlock_failure().is_some() => {
                        Error::from(self.ids.unlock_failure().expect("checked"))
                    }
                    // The roster says we may read it, yet it is not encrypted to
                    // us: the file is at fault, not the user's keys.
                    crypto::CryptoError::NoMatchingKeys if rules.may_read(chain) => self.reject(
                        id,
                        format!(
                            "it is not encrypted to {}'s key, though the roster lets {0} read it \
                             (replaced or stale file?); tried: {}",
                            rules.me.unwrap_or("?"),
                            self.ids.tried().join(", ")
                        ),
                    ),
                    crypto::CryptoError::NoMatchingKeys => Error::NoIdentity {
                        tried: self.ids.tried().to_vec(),
                        public: self.ids.member_key_to_send(),
                    },
                    other => self.reject(id, other),
                })?
            }
        };
        let parts = node::split(&plaintext).map_err(|e| self.reject(id, e))?;
        let message = node::node_signed_message(&rules.roster.store, id, parts.body);
        let signer_key =
            crypto::verify(&parts.signature.signature, crypto::NODE_NAMESPACE, &message).map_err(
                |e| {
                    self.reject(
                        id,
                        format!("{e} (signature for another id or store, or a forged file)"),
                    )
                },
            )?;
        let signer = match rules.keys.get(&signer_key) {
            Some(name)
                if rules
                    .roster
                    .members
                    .get(name)
                    .is_some_and(|m| m.signer_key().is_some()) =>
            {
                name.clone()
            }
            _ => {
                return Err(self.reject(
                    id,
                    format!(
                        "signed by {}, who is not a member",
                        crypto::fingerprint(&signer_key)
                    ),
                ))
            }
        };
        if !rules.roster.may_write(&signer, chain) {
            return Err(self.reject(id, format!("signed by {signer}, who may not write it")));
        }
        let body = node::decode_body(parts.body).map_err(|e| self.reject(id, e))?;
        if body.id != *id || body.store != rules.roster.store {
            return Err(self.reject(
                id,
                "its content belongs to another id or store (copied file?)",
            ));
        }
        Ok(Node {
            id: *id,
            key: key.cloned(),
            body,
            signer,
        })
    }

    /// Reads the node a folder entry names, with the entry's key, and checks
    /// it is the kind the entry says. `chain` ends with the entry's id.
    pub(crate) fn read_entry(
        &self,
        entry: &crate::format::node::Entry,
        chain: &[NodeId],
    ) -> Result<Node> {
        let node = self.read_node(&entry.id, Some(&entry.key), chain)?;
        if node.body.kind != entry.kind {
            return Err(self.reject(
                &entry.id,
                format!(
                    "its parent lists a {} but it is a {}",
                    entry.kind, node.body.kind
                ),
            ));
        }
        Ok(node)
    }

    /// Reads the root folder.
    pub(crate) fn read_root(&self) -> Result<Node> {
        let root = self.roster.root;
        let node = self.read_node(&root, None, &[root])?;
        if node.body.kind != Kind::Folder {
            return Err(self.reject(&root, "the root is not a folder"));
        }
        Ok(node)
    }

    /// Resolves a path to the chain of nodes from where the current member
    /// starts (the root, or a granted folder) down to it.
    pub(crate) fn walk(&self, path: &SPath) -> Result<Vec<Node>> {
        let (top_path, top) = self.start_for(path)?;
        let mut ids = vec![top.id];
        let mut chain = vec![top];
        for depth in top_path.names().len()..path.names().len() {
            let name = &path.names()[depth];
            let parent = chain.last().expect("chain starts with the top");
            let here = SPath(path.names()[..depth].to_vec());
            if parent.body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
            let Some(entry) = parent.body.child(name) else {
                return Err(Error::NotFound {
                    path: path.to_string(),
                    nearest: nearest(&here),
                });
            };
            if ids.contains(&entry.id) {
                return Err(self.reject(&entry.id, "a folder lists itself or an ancestor"));
            }
            ids.push(entry.id);
            let child = self.read_entry(entry, &ids)?;
            chain.push(child);
        }
        Ok(chain)
    }

    /// The deepest folder the current member reaches that holds `path`.
    pub(crate) fn start_for(&self, path: &SPath) -> Result<(SPath, Node)> {
        self.tops()?
            .into_iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.names().len())
            .ok_or_else(|| self.not_granted(path))
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}
