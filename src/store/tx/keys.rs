//! Node keys in a transaction: settling them after a merge, dropping
//! entries whose files are gone, fresh keys for a rotation.

use std::collections::BTreeSet;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{Entry, Kind, NodeId, NodeKey};
use crate::store::SPath;

use super::{fresh_key, Tx};

impl Tx<'_> {
    /// After a merge: makes every folder entry hold the key that opens the
    /// node file the merge kept. git takes a file only one side changed, so
    /// a folder from one side can list, with that side's key, a node the
    /// other side re-encrypted under a new key (a rotation beside a move).
    /// For each entry of a node `changed` says differs between the sides and
    /// whose key does not open its file, the first of `keys_for(id)` that
    /// does is recorded instead. Folders are loaded on the way down (the
    /// tops must be loaded); secrets only where changed. Returns how many
    /// entries were fixed.
    pub(crate) fn settle_keys(
        &mut self,
        changed: &dyn Fn(&NodeId) -> bool,
        keys_for: &dyn Fn(&NodeId) -> Vec<NodeKey>,
    ) -> Result<usize> {
        let mut fixed = 0;
        let mut todo = self.top_ids();
        let mut seen: BTreeSet<NodeId> = todo.iter().copied().collect();
        while let Some(folder) = todo.pop() {
            let entries = self.nodes[&folder].body.children.clone();
            for e in entries {
                if !seen.insert(e.id) {
                    continue;
                }
                if changed(&e.id) {
                    let bytes = std::fs::read(self.store.node_file(&e.id)).ok();
                    let opens = |k: &NodeKey| bytes.as_deref().is_some_and(|b| key_opens(k, b));
                    // A key is taken only for a file that also verifies at
                    // this place: signed by someone who may write here.
                    let mut chain = self.chain_of(folder);
                    chain.push(e.id);
                    let verifies = |k: &NodeKey| {
                        let entry = Entry {
                            key: k.clone(),
                            ..e.clone()
                        };
                        self.store.read_entry(&entry, &chain).is_ok()
                    };
                    if bytes.is_some() && !opens(&e.key) {
                        if let Some(key) = keys_for(&e.id)
                            .into_iter()
                            .find(|k| opens(k) && verifies(k))
                        {
                            if let Some(entry) = self
                                .node_mut(folder)
                                .body
                                .children
                                .iter_mut()
                                .find(|x| x.id == e.id)
                            {
                                entry.key = key;
                                fixed += 1;
                            }
                        }
                    }
                }
                if e.kind == Kind::Folder {
                    if let Some(id) = self.child(folder, &e.name)? {
                        todo.push(id);
                    }
                }
            }
        }
        Ok(fixed)
    }

    /// After a merge: removes folder entries whose node file the merge
    /// deleted (a folder kept for a change inside it still lists what the
    /// other side deleted and this side left alone), unless `restore` puts
    /// the file back. Walks every folder from the tops, loading them.
    /// Returns the paths pruned.
    pub(crate) fn prune_dangling(
        &mut self,
        restore: &mut dyn FnMut(&NodeId) -> bool,
    ) -> Result<Vec<SPath>> {
        let mut pruned = Vec::new();
        let mut todo = self.top_ids();
        let mut seen: BTreeSet<NodeId> = todo.iter().copied().collect();
        while let Some(folder) = todo.pop() {
            let gone: Vec<String> = self.nodes[&folder]
                .body
                .children
                .iter()
                .filter(|e| !self.store.node_file(&e.id).exists() && !restore(&e.id))
                .map(|e| e.name.clone())
                .collect();
            for name in gone {
                pruned.push(self.path_of(folder).join(&name));
                self.node_mut(folder).body.remove_child(&name);
            }
            let folders: Vec<(NodeId, String)> = self.nodes[&folder]
                .body
                .children
                .iter()
                .filter(|e| e.kind == Kind::Folder)
                .map(|e| (e.id, e.name.clone()))
                .collect();
            for (id, name) in folders {
                if seen.insert(id) {
                    if let Some(child) = self.child(folder, &name)? {
                        todo.push(child);
                    }
                }
            }
        }
        Ok(pruned)
    }

    /// Gives a loaded node a new key, recorded in its parent's entry. The root
    /// has none: it is only re-encrypted to the admins.
    pub(crate) fn rekey(&mut self, id: NodeId) {
        self.dirty.insert(id);
        let Some(parent) = self.parents.get(&id).copied() else {
            return;
        };
        let key = fresh_key();
        if let Some(entry) = self
            .node_mut(parent)
            .body
            .children
            .iter_mut()
            .find(|e| e.id == id)
        {
            entry.key = key.clone();
        }
        self.node_mut(id).key = Some(key);
    }
}

/// The age recipient of a node key.
pub(crate) fn public_of(key: &NodeKey) -> Result<String> {
    age::x25519::Identity::from_str(key.expose_secret())
        .map(|i| i.to_public().to_string())
        .map_err(|_| Error::Value("a node key is malformed".into()))
}

/// Whether node key `key` decrypts `bytes` (a node file).
fn key_opens(key: &NodeKey, bytes: &[u8]) -> bool {
    age::x25519::Identity::from_str(key.expose_secret())
        .is_ok_and(|identity| crypto::decrypt(bytes, &[&identity]).is_ok())
}
