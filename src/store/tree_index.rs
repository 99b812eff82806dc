//! An index of one commit's tree for reading history (`log`, `show`,
//! textconv): where each node this member reaches sits, found by decrypting
//! its folders from git objects. Nodes are verified when they are opened,
//! under the store's current roster. Merges do not use this: they read each
//! side as a verified store of its own (`crate::git::sides`).

use std::collections::HashMap;
use std::str::FromStr;

use git2::{Commit, Oid, Repository, Tree};

use crate::error::Result;
use crate::format::crypto;
use crate::format::node::{self, Kind, NodeId, NodeKey};
use crate::store::Store;

/// Where one node sits in one commit's tree.
#[derive(Clone)]
pub(crate) struct Placed {
    pub(crate) key: Option<NodeKey>,
    pub(crate) parent: Option<NodeId>,
    pub(crate) name: String,
    /// Ancestors and the node itself, root first.
    pub(crate) chain: Vec<NodeId>,
}

/// The nodes of one commit this member can reach, found by decrypting its
/// folders from git objects. Signatures are not checked here: these keys
/// only open files, which are verified when they are used.
pub(crate) struct TreeIndex<'r> {
    repo: &'r Repository,
    tree: Tree<'r>,
    /// Where to look for node files, read once from the commit's roster
    /// ([`crate::git::node_files::layouts`]).
    layouts: Vec<u32>,
    pub(crate) nodes: HashMap<NodeId, Placed>,
}

impl<'r> TreeIndex<'r> {
    /// Indexes `commit`'s tree with the store's identities.
    pub(crate) fn of(
        store: &Store,
        repo: &'r Repository,
        commit: &Commit<'r>,
    ) -> Result<TreeIndex<'r>> {
        let tree = commit.tree()?;
        let layouts = crate::git::node_files::layouts(crate::git::sides::tree_format(repo, &tree));
        let mut index = TreeIndex {
            repo,
            tree,
            layouts,
            nodes: HashMap::new(),
        };
        let root = store.roster.root;
        let mut starts = vec![root];
        starts.extend(store.roster.grants.keys().copied());
        let members = store.ids.age_identities(|p| store.keys.contains_key(p))?;
        let mut level: Vec<(NodeId, Option<NodeKey>, Vec<NodeId>)> = Vec::new();
        for id in starts {
            if index.nodes.contains_key(&id) {
                continue;
            }
            let Some(bytes) = index.blob(&id) else {
                continue;
            };
            if crypto::decrypt(&bytes, &members).is_ok() {
                index.nodes.insert(
                    id,
                    Placed {
                        key: None,
                        parent: None,
                        name: String::new(),
                        chain: vec![id],
                    },
                );
                level.push((id, None, vec![id]));
            }
        }
        while let Some((id, key, chain)) = level.pop() {
            let Some(bytes) = index.blob(&id) else {
                continue;
            };
            let plain = match &key {
                Some(k) => age::x25519::Identity::from_str(k.expose_secret())
                    .ok()
                    .and_then(|i| crypto::decrypt(&bytes, &[&i]).ok()),
                None => crypto::decrypt(&bytes, &members).ok(),
            };
            let Some(plain) = plain else { continue };
            let Ok(body) = node::split(&plain).and_then(|p| node::decode_body(p.body)) else {
                continue;
            };
            for e in &body.children {
                if chain.contains(&e.id) || chain.len() > node::MAX_DEPTH {
                    continue;
                }
                let mut c = chain.clone();
                c.push(e.id);
                let placed = Placed {
                    key: Some(e.key.clone()),
                    parent: Some(id),
                    name: e.name.clone(),
                    chain: c.clone(),
                };
                // A granted folder reached again from above: the fuller chain wins.
                index.nodes.insert(e.id, placed);
                if e.kind == Kind::Folder {
                    level.push((e.id, Some(e.key.clone()), c));
                }
            }
        }
        Ok(index)
    }

    /// The id at `path` in this tree, following entry names from the root,
    /// or for a member who cannot read the root, from the granted folder
    /// that holds `path` (at the path it has in the work tree).
    pub(crate) fn resolve(&self, store: &Store, path: &crate::store::SPath) -> Option<NodeId> {
        let root = store.roster.root;
        let (mut at, from) = if self.nodes.contains_key(&root) {
            (root, 0)
        } else {
            let (top_path, top) = store.start_for(path).ok()?;
            (top.id, top_path.names().len())
        };
        if !self.nodes.contains_key(&at) {
            return None;
        }
        for name in &path.names()[from..] {
            at = self
                .nodes
                .iter()
                .find(|(_, p)| p.parent == Some(at) && p.name == *name)
                .map(|(id, _)| *id)?;
        }
        Some(at)
    }

    /// The path of a node in this tree, from the entry names above it.
    pub(crate) fn path_of(&self, id: &NodeId) -> Option<crate::store::SPath> {
        let mut names = Vec::new();
        let mut at = self.nodes.get(id)?;
        while let Some(parent) = at.parent {
            names.push(at.name.clone());
            at = self.nodes.get(&parent)?;
            if names.len() > node::MAX_DEPTH {
                return None;
            }
        }
        names.reverse();
        crate::store::SPath::parse(&names.join("/")).ok()
    }

    /// The node file's bytes in this tree.
    pub(crate) fn blob(&self, id: &NodeId) -> Option<Vec<u8>> {
        let blob = self.repo.find_blob(self.blob_id(id)?).ok()?;
        Some(blob.content().to_vec())
    }

    /// The blob id of the node's file in this tree.
    pub(crate) fn blob_id(&self, id: &NodeId) -> Option<Oid> {
        crate::git::node_files::blob_in(&self.tree, id, &self.layouts)
    }
}
