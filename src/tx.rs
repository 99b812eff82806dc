//! Write transactions: change nodes in memory, then sign, encrypt and write
//! them all at once through the journal.
//!
//! A transaction loads nodes on demand (verified, as every read), records which
//! ones changed, and on commit writes exactly those files: a new secret costs
//! its node and its parent, a changed value costs its node alone.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use std::path::Path;

use crate::crypto;
use crate::error::{Error, Result};
use crate::journal::{self, Journal, Lock, Op};
use crate::node::{self, Body, Entry, Kind, NodeId, NodeKey, Roster, Value};
use crate::store::{nearest, Node, SPath, Store};

/// An open write transaction on a store. Dropping it without
/// [`Tx::commit`] changes nothing.
pub struct Tx<'s> {
    pub(crate) store: &'s Store,
    _lock: Lock,
    pub(crate) nodes: HashMap<NodeId, Node>,
    /// Child id → parent id, for every loaded or created node below a top.
    pub(crate) parents: HashMap<NodeId, NodeId>,
    pub(crate) dirty: BTreeSet<NodeId>,
    created: BTreeSet<NodeId>,
    removed: BTreeSet<NodeId>,
    /// Where paths start: the root for admins, the granted folders for members.
    tops: Vec<(SPath, NodeId)>,
    /// A roster change, signed and written with the nodes.
    pub(crate) roster: Option<Roster>,
    /// Signed rosters (bytes, signature) to keep in the roster log besides
    /// the one this change replaces: the other side of a roster merge.
    pub(crate) log_also: Vec<(Vec<u8>, Vec<u8>)>,
    /// A warning from staging an earlier change at the start.
    warning: Option<String>,
    /// What the commit message says the change is, where not the default.
    summary: Option<String>,
}

impl Store {
    /// Starts a write transaction, holding the store's lock until it ends.
    pub fn transaction(&self) -> Result<Tx<'_>> {
        let lock = Lock::acquire(&self.state)?;
        let journal = Journal::at(&self.state);
        if journal.pending() {
            crate::store::finish_journal(&self.work, &self.state, &journal)?;
        } else {
            journal::remove_listed_temps(&self.state, &self.work)?;
        }
        journal::remove_state_temps(&self.state);
        let warning = stage_pending(&self.work, &self.state, &[], &Default::default(), None)?;
        let mut tx = Tx {
            store: self,
            _lock: lock,
            nodes: HashMap::new(),
            parents: HashMap::new(),
            dirty: BTreeSet::new(),
            created: BTreeSet::new(),
            removed: BTreeSet::new(),
            tops: Vec::new(),
            roster: None,
            log_also: Vec::new(),
            warning,
            summary: None,
        };
        for (path, node) in self.tops()? {
            tx.tops.push((path, node.id));
            tx.nodes.insert(node.id, node);
        }
        Ok(tx)
    }
}

impl<'s> Tx<'s> {
    /// How many nodes committing would write or remove (for a dry run).
    pub fn pending_nodes(&self) -> usize {
        self.dirty.union(&self.removed).count()
    }

    /// The roster this transaction writes under: its pending change, or the
    /// store's.
    pub(crate) fn roster(&self) -> &Roster {
        self.roster.as_ref().unwrap_or(&self.store.roster)
    }

    /// The folders this member starts from: the root for admins, the
    /// granted folders for others.
    pub(crate) fn top_ids(&self) -> Vec<NodeId> {
        self.tops.iter().map(|(_, id)| *id).collect()
    }

    /// The deepest top holding `path`: how many names it covers, and its id.
    fn start(&self, path: &SPath) -> Result<(usize, NodeId)> {
        self.tops
            .iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.names().len())
            .map(|(p, id)| (p.names().len(), *id))
            .ok_or_else(|| self.store.not_granted(path))
    }

    /// The current path of a loaded node, from its parents' entries.
    pub(crate) fn path_of(&self, id: NodeId) -> SPath {
        let mut names = Vec::new();
        let mut at = id;
        while let Some(p) = self.parents.get(&at) {
            if let Some(e) = self.nodes[p].body.children.iter().find(|e| e.id == at) {
                names.push(e.name.clone());
            }
            at = *p;
            if names.len() > node::MAX_DEPTH + 2 {
                break;
            }
        }
        let mut path = self
            .tops
            .iter()
            .find(|(_, t)| *t == at)
            .map(|(p, _)| p.clone())
            .unwrap_or_default();
        for name in names.iter().rev() {
            path = path.join(name);
        }
        path
    }

    pub(crate) fn chain_of(&self, id: NodeId) -> Vec<NodeId> {
        let mut chain = vec![id];
        let mut at = id;
        while let Some(p) = self.parents.get(&at) {
            chain.push(*p);
            at = *p;
            if chain.len() > node::MAX_DEPTH + 2 {
                break; // parents are recorded once per node, so this is only a guard
            }
        }
        chain.reverse();
        chain
    }

    #[track_caller]
    pub(crate) fn node(&self, id: &NodeId) -> &Node {
        &self.nodes[id]
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.dirty.insert(id);
        self.nodes
            .get_mut(&id)
            .expect("nodes are loaded before they change")
    }

    /// Loads the child `name` of folder `parent`, if it exists.
    pub(crate) fn child(&mut self, parent: NodeId, name: &str) -> Result<Option<NodeId>> {
        let Some(entry) = self.node(&parent).body.child(name).cloned() else {
            return Ok(None);
        };
        if self.chain_of(parent).contains(&entry.id) {
            return Err(self
                .store
                .reject(&entry.id, "a folder lists itself or an ancestor"));
        }
        if !self.nodes.contains_key(&entry.id) {
            self.parents.insert(entry.id, parent);
            let chain = self.chain_of(entry.id);
            let node = self.store.read_entry(&entry, &chain)?;
            self.nodes.insert(entry.id, node);
        }
        Ok(Some(entry.id))
    }

    /// Loads every node below `top` (with `folders_only`, folders alone),
    /// level by level, decrypting each level on all cores. Returns their ids,
    /// `top` excluded.
    pub(crate) fn load_subtree(&mut self, top: NodeId, folders_only: bool) -> Result<Vec<NodeId>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([top]);
        let mut level = vec![top];
        while !level.is_empty() {
            let mut jobs: Vec<(NodeId, Entry, Vec<NodeId>)> = Vec::new();
            for parent in &level {
                let chain = self.chain_of(*parent);
                for e in &self.nodes[parent].body.children {
                    if folders_only && e.kind != Kind::Folder {
                        continue;
                    }
                    if chain.contains(&e.id) || !seen.insert(e.id) {
                        return Err(self.store.reject(
                            &e.id,
                            "listed twice, or a folder lists itself or an ancestor",
                        ));
                    }
                    let mut c = chain.clone();
                    c.push(e.id);
                    jobs.push((*parent, e.clone(), c));
                }
            }
            let store = self.store;
            let todo: Vec<&(NodeId, Entry, Vec<NodeId>)> = jobs
                .iter()
                .filter(|(_, e, _)| !self.nodes.contains_key(&e.id))
                .collect();
            let progress = crate::progress::Progress::new("reading", todo.len());
            let read = crate::par::map(&todo, |(_, e, chain)| {
                let node = store.read_entry(e, chain);
                progress.tick();
                node
            });
            for ((parent, e, _), node) in todo.into_iter().zip(read) {
                let node = node?;
                self.parents.insert(e.id, *parent);
                self.nodes.insert(e.id, node);
            }
            level = jobs
                .iter()
                .filter(|(_, e, _)| e.kind == Kind::Folder)
                .map(|(_, e, _)| e.id)
                .collect();
            out.extend(jobs.iter().map(|(_, e, _)| e.id));
        }
        Ok(out)
    }

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

    /// Resolves a path to a node id.
    pub(crate) fn resolve(&mut self, path: &SPath) -> Result<NodeId> {
        let (from, mut at) = self.start(path)?;
        for (depth, name) in path.names().iter().enumerate().skip(from) {
            let here = SPath::parse(&path.names()[..depth].join("/"))?;
            if self.node(&at).body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
            at = self.child(at, name)?.ok_or_else(|| Error::NotFound {
                path: path.to_string(),
                nearest: nearest(&here),
            })?;
        }
        Ok(at)
    }

    /// Resolves a folder, creating missing folders on the way when `parents`.
    fn folder(&mut self, path: &SPath, parents: bool) -> Result<NodeId> {
        let (from, mut at) = self.start(path)?;
        for (depth, name) in path.names().iter().enumerate().skip(from) {
            let here = SPath::parse(&path.names()[..=depth].join("/"))?;
            at = match self.child(at, name)? {
                Some(id) => id,
                None if parents => self.create(at, name, Kind::Folder, None)?,
                None => {
                    let above = SPath::parse(&path.names()[..depth].join("/"))?;
                    return Err(Error::NotFound {
                        path: path.to_string(),
                        nearest: nearest(&above),
                    });
                }
            };
            if self.node(&at).body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
        }
        Ok(at)
    }

    fn create(
        &mut self,
        parent: NodeId,
        name: &str,
        kind: Kind,
        value: Option<Value>,
    ) -> Result<NodeId> {
        node::check_name(name)?;
        let id = NodeId::random();
        let key = fresh_key();
        let mut body = Body::new(&self.store.roster.store, id, kind, name);
        body.value = value;
        let entry = Entry {
            name: name.to_string(),
            kind,
            id,
            key: key.clone(),
        };
        self.node_mut(parent).body.put_child(entry);
        self.parents.insert(id, parent);
        self.nodes.insert(
            id,
            Node {
                id,
                key: Some(key),
                body,
                signer: String::new(),
            },
        );
        self.created.insert(id);
        self.dirty.insert(id);
        if kind == Kind::Secret {
            self.stamp(id);
        }
        Ok(id)
    }

    fn stamp(&mut self, id: NodeId) {
        let who = self.store.me.clone();
        let body = &mut self.node_mut(id).body;
        body.updated = Some(crate::time::now_rfc3339());
        body.updated_by = who;
    }

    /// Reads a secret's value within the transaction.
    pub fn get(&mut self, path: &SPath) -> Result<Value> {
        let id = self.resolve(path)?;
        let body = &self.node(&id).body;
        match (&body.kind, &body.value) {
            (Kind::Secret, Some(v)) => Ok(v.clone()),
            _ => Err(Error::NotASecret {
                path: path.to_string(),
            }),
        }
    }

    /// Sets a secret's value, creating it and any missing folders.
    pub fn set(&mut self, path: &SPath, value: &[u8]) -> Result<()> {
        if value.len() > node::MAX_VALUE {
            return Err(Error::Value(format!(
                "the value is {} bytes; sesto stores values up to {} MiB",
                value.len(),
                node::MAX_VALUE >> 20
            )));
        }
        let (parent_path, name) = path.split_last().ok_or(Error::Root("given a value"))?;
        let parent = self.folder(&parent_path, true)?;
        match self.child(parent, name)? {
            Some(id) => {
                if self.node(&id).body.kind != Kind::Secret {
                    return Err(Error::NotASecret {
                        path: path.to_string(),
                    });
                }
                if self.node(&id).body.value.as_ref().map(Value::expose_secret) == Some(value) {
                    return Ok(());
                }
                let body = &mut self.node_mut(id).body;
                body.value = Some(Value::new(value.to_vec()));
                // A new value is no longer one a former reader knows.
                body.exposed_to.clear();
                self.stamp(id);
            }
            None => {
                self.create(parent, name, Kind::Secret, Some(Value::new(value.to_vec())))?;
            }
        }
        Ok(())
    }

    /// Creates a folder; with `parents`, also missing ancestors, and an
    /// existing folder is not an error.
    pub fn mkdir(&mut self, path: &SPath, parents: bool) -> Result<()> {
        let (parent_path, name) = path
            .split_last()
            .ok_or(Error::Exists { path: "/".into() })?;
        let parent = self.folder(&parent_path, parents)?;
        match self.child(parent, name)? {
            Some(id) if self.node(&id).body.kind == Kind::Secret => Err(Error::NotAFolder {
                path: path.to_string(),
            }),
            Some(_) if parents => Ok(()),
            Some(_) => Err(Error::Exists {
                path: path.to_string(),
            }),
            None => self.create(parent, name, Kind::Folder, None).map(|_| ()),
        }
    }

    /// Removes a secret or folder; a folder with entries needs `recursive`.
    pub fn remove(&mut self, path: &SPath, recursive: bool) -> Result<()> {
        let (parent_path, name) = path.split_last().ok_or(Error::Root("removed"))?;
        let id = self.resolve(path)?;
        let count = self.node(&id).body.children.len();
        if count > 0 && !recursive {
            return Err(Error::NotEmpty {
                path: path.to_string(),
                count,
            });
        }
        let parent = self.resolve(&parent_path)?;
        self.node_mut(parent).body.remove_child(name);
        self.forget_subtree(id)
    }

    fn forget_subtree(&mut self, id: NodeId) -> Result<()> {
        let mut stack = vec![id];
        let mut seen = BTreeSet::new();
        while let Some(at) = stack.pop() {
            if !seen.insert(at) {
                continue; // listed twice, or a folder listing an ancestor
            }
            let names: Vec<String> = self
                .node(&at)
                .body
                .children
                .iter()
                .map(|e| e.name.clone())
                .collect();
            for name in names {
                // Loading verifies each file; an unreadable one is still removed.
                let entry = self.node(&at).body.child(&name).cloned().expect("listed");
                match self.child(at, &name) {
                    Ok(Some(child)) => stack.push(child),
                    // A folder listing an ancestor is damage to report, not to follow.
                    Err(e) if self.chain_of(at).contains(&entry.id) => return Err(e),
                    _ => {
                        self.removed.insert(entry.id);
                    }
                }
            }
            self.dirty.remove(&at);
            if !self.created.remove(&at) {
                self.removed.insert(at);
            }
        }
        Ok(())
    }

    /// Moves or renames. Moving onto an existing folder moves into it.
    pub fn rename(&mut self, from: &SPath, to: &SPath) -> Result<SPath> {
        let (from_parent_path, from_name) = from.split_last().ok_or(Error::Root("moved"))?;
        let id = self.resolve(from)?;
        let mut to = to.clone();
        if let Ok(existing) = self.resolve(&to) {
            if self.node(&existing).body.kind != Kind::Folder {
                return Err(Error::Exists {
                    path: to.to_string(),
                });
            }
            to = to.join(from_name);
        }
        if to.starts_with(from) {
            return Err(Error::IntoItself {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        let (to_parent_path, to_name) = to.split_last().ok_or(Error::Root("replaced"))?;
        node::check_name(to_name)?;
        let to_parent = self.folder(&to_parent_path, false)?;
        if self.child(to_parent, to_name)?.is_some() {
            return Err(Error::Exists {
                path: to.to_string(),
            });
        }
        let from_parent = self.resolve(&from_parent_path)?;
        let mut entry = self
            .node_mut(from_parent)
            .body
            .remove_child(from_name)
            .expect("resolved above");
        entry.name = to_name.to_string();
        let kind = entry.kind;
        self.node_mut(to_parent).body.put_child(entry);
        self.parents.insert(id, to_parent);
        if kind == Kind::Folder && !self.roster().grants.is_empty() {
            // Shared folders record where they sit.
            for below in self.load_subtree(id, true)? {
                if self.roster().grants.contains_key(&below) {
                    self.dirty.insert(below);
                }
            }
        }
        Ok(to)
    }

    /// Says what this change is in the commit sesto makes for it (where
    /// `sesto.commit` is set), e.g. `import 3000 secrets from pass`, in
    /// place of `update store`. The message is as public as the repository:
    /// give counts and kinds, never a path or value.
    pub fn set_summary(&mut self, summary: impl Into<String>) {
        self.summary = Some(summary.into());
    }

    /// Signs, encrypts and writes every changed node, then stages (and, where
    /// configured, commits) the change.
    pub fn commit(mut self) -> Result<Committed> {
        if self.dirty.is_empty() && self.removed.is_empty() && self.roster.is_none() {
            return Ok(Committed {
                files: 0,
                warning: self.warning.take(),
            });
        }
        // What the store read before (its tops) may be rewritten now; a
        // later transaction from the same store reads them again.
        *self.store.tops.lock().unwrap_or_else(|e| e.into_inner()) = None;
        if let crate::git::HeadState::Detached(commit) = &self.store.head {
            return Err(Error::Denied(format!(
                "this clone is reading history at commit {} (detached HEAD); \
                 check out a branch (`git checkout main`) to write",
                &commit[..commit.len().min(12)]
            )));
        }
        let me = self
            .store
            .me
            .clone()
            .ok_or_else(|| not_member(self.store))?;
        let signer = signer_for(self.store, &me)?;
        // Deepest first, so parents land after the children they point to.
        let mut order: Vec<(usize, NodeId)> = self
            .dirty
            .iter()
            .map(|id| (self.chain_of(*id).len(), *id))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, id) in &order {
            let chain = self.chain_of(*id);
            if !self.store.may_write(&me, &chain) {
                return Err(Error::Denied(format!(
                    "{me} may not write here; ask an admin for a write grant"
                )));
            }
            let created = self.created.contains(id);
            let shared = *id != self.roster().root && self.roster().grants.contains_key(id);
            let path = shared.then(|| self.path_of(*id).to_string());
            let node = self.nodes.get_mut(id).expect("dirty nodes are loaded");
            node.body.version = if created { 1 } else { node.body.version + 1 };
            // A shared folder records where it sits and its own recipient, for
            // members who reach it directly and must re-encrypt it.
            if let Some(key) = node.key.as_ref().filter(|_| shared) {
                node.body.recipient = Some(public_of(key)?);
            } else if !shared {
                node.body.recipient = None;
            }
            node.body.path = path;
        }
        let roster = self.roster();
        let nodes: Vec<&Node> = order.iter().map(|(_, id)| &self.nodes[id]).collect();
        let encoded = encode_all(self.store, roster, &nodes, &signer)?;
        let mut writes: Vec<(std::path::PathBuf, Vec<u8>)> = order
            .iter()
            .zip(encoded)
            .map(|((_, id), bytes)| (self.store.node_file(id), bytes))
            .collect();
        let roster_bytes = match &self.roster {
            Some(next) => {
                let bytes = next.encode();
                let sig = signer
                    .sign(crypto::ROSTER_NAMESPACE, &bytes)
                    .map_err(|e| Error::Denied(format!("cannot sign the roster: {e}")))?;
                writes.extend(self.log_writes()?);
                writes.push((self.store.dir.join("roster.sig"), sig.into_bytes()));
                writes.push((self.store.dir.join("roster.yaml"), bytes.clone()));
                Some(bytes)
            }
            None => None,
        };
        let removes: Vec<std::path::PathBuf> = self
            .removed
            .iter()
            .map(|id| self.store.node_file(id))
            .collect();
        let mut committed = write_change(self.store, writes, &removes, self.summary.as_deref())?;
        let pinning = matches!(
            self.store.trust,
            crate::trust::TrustMode::Check | crate::trust::TrustMode::Accept
        );
        if let (Some(next), Some(bytes), true) = (&self.roster, &roster_bytes, pinning) {
            // We signed it: it is the roster we trust from now on.
            if let Err(e) = crate::trust::pin(&self.store.work, next, bytes) {
                committed.warning =
                    Some(format!("could not record the new roster as trusted: {e}"));
            }
        }
        self.dirty.clear();
        committed.warning = committed.warning.or(self.warning.take());
        Ok(committed)
    }
}

impl Tx<'_> {
    /// The roster log with the roster this change replaces (and any other
    /// side of a merge) added, and `.gitattributes` where it lacks the log's
    /// merge rule.
    fn log_writes(&self) -> Result<Vec<(std::path::PathBuf, Vec<u8>)>> {
        let dir = &self.store.dir;
        let read = |name: &str, limit: u64| -> Result<Vec<u8>> {
            match crate::store::read_limited(&dir.join(name), limit) {
                Ok(b) => Ok(b),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            }
        };
        let old = read(crate::roster_log::FILE, crate::roster_log::MAX_LOG)?;
        let bytes = read("roster.yaml", 1 << 20)?;
        let sig = read("roster.sig", 1 << 20)?;
        let mut added: Vec<(&[u8], &[u8])> = self
            .log_also
            .iter()
            .map(|(b, s)| (b.as_slice(), s.as_slice()))
            .collect();
        added.push((&bytes, &sig));
        let mut writes = vec![(
            dir.join(crate::roster_log::FILE),
            crate::roster_log::append(&old, &added),
        )];
        let attributes = String::from_utf8_lossy(&read(".gitattributes", 1 << 20)?).into_owned();
        if let Some(text) = crate::roster_log::with_attribute(&attributes) {
            writes.push((dir.join(".gitattributes"), text.into_bytes()));
        }
        Ok(writes)
    }
}

/// Writes a change of several files atomically through the journal, stages
/// it, and commits where `sesto.commit` is set. Files are renamed in the
/// order given (children before parents), removals last; a change of
/// [`journal::IN_PLACE_FROM`] files or more is written in place from the
/// journal instead; `summary` says what the change is in sesto's commit
/// message (see [`Tx::set_summary`]). Hold the lock.
pub(crate) fn write_change(
    store: &Store,
    writes: Vec<(std::path::PathBuf, Vec<u8>)>,
    removes: &[std::path::PathBuf],
    summary: Option<&str>,
) -> Result<Committed> {
    let mut ops = Vec::new();
    if writes.len() >= journal::IN_PLACE_FROM {
        // Thousands of files (a key rotation): their bytes go in the journal
        // and over the old files, with no temp file each.
        journal::prepare_dirs(writes.iter().map(|(target, _)| target.as_path()))?;
        ops.extend(writes.into_iter().map(|(target, bytes)| Op::Write {
            path: rel(store, &target),
            bytes,
        }));
    } else {
        for ((target, _), tmp) in
            writes
                .iter()
                .zip(journal::write_temps(&store.state, &store.work, &writes)?)
        {
            ops.push(Op::Rename {
                from: rel(store, &tmp),
                to: rel(store, target),
            });
        }
    }
    for path in removes {
        ops.push(Op::Remove(rel(store, path)));
    }
    journal::failpoint("after-temp");
    let journal = Journal::at(&store.state);
    journal.record(&ops)?;
    journal::clear_temp_list(&store.state)?;
    journal::failpoint("after-journal");
    // The new files of a large change go into git's object database while
    // they are written in place.
    let in_git: Vec<(&str, &[u8])> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Write { path, bytes } => Some((path.as_str(), bytes.as_slice())),
            _ => None,
        })
        .collect();
    let known = if in_git.is_empty() {
        Journal::apply(&store.work, &ops)?;
        crate::git::Blobs::new()
    } else {
        std::thread::scope(|s| {
            let packing = s.spawn(|| crate::git::store_blobs(&store.work, &in_git));
            let applied = Journal::apply(&store.work, &ops);
            // A failed pack costs nothing but time: staging reads the files.
            let known = packing
                .join()
                .expect("packing does not panic")
                .unwrap_or_default();
            applied.map(|()| known)
        })?
    };
    journal::failpoint("after-renames");
    let paths: Vec<String> = ops.iter().map(|o| o.target().to_string()).collect();
    let warning = stage_pending(&store.work, &store.state, &paths, &known, summary)?;
    journal.clear()?;
    Ok(Committed {
        files: ops.len(),
        warning,
    })
}

/// What a commit wrote.
#[derive(Debug, Default)]
pub struct Committed {
    /// Files written or removed.
    pub files: usize,
    /// Set when the change is saved but git could not take it yet (a locked
    /// index, say); the next sesto command stages it.
    pub warning: Option<String>,
}

/// Stages `new` paths with any left unstaged by an earlier write, and commits
/// where `sesto.commit` is set; blobs in `known` are in git already. A
/// failure here (another git holding the index lock) does not undo a change
/// already in place: the paths are kept in `.git/sesto/unstaged` for the next
/// sesto command, and a warning returned.
pub(crate) fn stage_pending(
    work: &Path,
    state: &Path,
    new: &[String],
    known: &crate::git::Blobs,
    summary: Option<&str>,
) -> Result<Option<String>> {
    let list = state.join("unstaged");
    let mut paths: Vec<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text
            .lines()
            .filter(|l| l.starts_with(".sesto/"))
            .map(str::to_string)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("cannot read", &list)(e)),
    };
    paths.extend(new.iter().cloned());
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return Ok(None);
    }
    let mut staged = false;
    let attempt = (|| -> Result<()> {
        let repo = crate::git::open(work)?;
        // In the middle of a merge or rebase, git makes the commit.
        let commit = crate::git::auto_commit(&repo) && repo.state() == git2::RepositoryState::Clean;
        let staging = crate::git::start_stage(&repo, &paths, known)?;
        // libgit2 runs no hooks: sesto makes its own check of what it would
        // commit, while git writes the index.
        let refused = if commit {
            check_commit(work, &paths, known)
        } else {
            None
        };
        // The commit object is built while git writes the index; HEAD moves
        // only once the index holds the change too.
        let prepared = (commit && refused.is_none()).then(|| {
            crate::git::prepare_commit(
                &repo,
                &paths,
                staging.blobs(),
                &commit_message(summary, paths.len()),
            )
        });
        staging.wait()?;
        staged = true;
        if let Some(why) = refused {
            return Err(Error::Refused {
                path: work.join(&why.0),
                reason: format!(
                    "{} (sesto's check before committing); the commit was not made. \
                     Remove the file (`git rm --cached` keeps a copy) and run `git commit`",
                    why.1
                ),
            });
        }
        let prepared = prepared.transpose()?;
        journal::failpoint("after-stage");
        if let Some(prepared) = prepared {
            let parent = prepared.parent;
            let made = crate::git::finish_commit(&repo, prepared)?;
            journal::failpoint("after-commit");
            // sesto's own commit needs no rollback check.
            crate::rollback::advance(state, parent, made);
        }
        Ok(())
    })();
    match attempt {
        Ok(()) => {
            journal::remove_if_exists(&list)?;
            Ok(None)
        }
        Err(e) => {
            journal::write_atomic(&list, (paths.join("\n") + "\n").as_bytes())?;
            Ok(Some(if staged && matches!(e, Error::Refused { .. }) {
                format!("the change is saved and staged, but sesto did not commit it: {e}")
            } else if staged {
                format!(
                    "the change is saved and staged but not committed yet ({e}); \
                     the next sesto command commits it, or run `git commit`"
                )
            } else {
                format!(
                    "the change is saved in .sesto/ but not staged in git yet ({e}); \
                     the next sesto command stages it, or run `git add .sesto`"
                )
            }))
        }
    }
}

/// The check sesto makes before a commit of its own (git's pre-commit hook
/// does not run under libgit2): each path is the roster or a node file
/// named as sesto names them, and each node file present opens as an age
/// file. Only an age header is read per file, in parallel; files this
/// process has just encrypted itself (`written`, the blobs of a large change
/// such as a key rotation) are checked by name only, so rewriting a large
/// store's every node stays cheap. Returns the first path refused and why.
fn check_commit(
    work: &Path,
    paths: &[String],
    written: &crate::git::Blobs,
) -> Option<(String, &'static str)> {
    let checked = crate::par::map(paths, |p| {
        if let Some(rel) = p
            .strip_prefix(".sesto/")
            .filter(|_| written.contains_key(p))
        {
            return crate::scan::check_sesto_file(rel, None).map(rule_reason);
        }
        let file = match std::fs::File::open(work.join(p)) {
            Ok(f) => f,
            Err(_) => return None, // removed: its removal is what gets committed
        };
        let Some(rel) = p.strip_prefix(".sesto/") else {
            return Some("sesto commits nothing outside .sesto/");
        };
        if let Some(rule) = crate::scan::check_sesto_file(rel, None) {
            return Some(rule_reason(rule));
        }
        if !rel.starts_with("nodes/") {
            return None;
        }
        age::Decryptor::new(std::io::BufReader::new(file))
            .is_err()
            .then(|| rule_reason(crate::scan::SESTO_NODE))
    });
    paths
        .iter()
        .zip(checked)
        .find_map(|(p, why)| why.map(|w| (p.clone(), w)))
}

fn rule_reason(rule: &str) -> &'static str {
    if rule == crate::scan::SESTO_NODE {
        "not a well-formed age file"
    } else {
        "not a file sesto writes in .sesto/"
    }
}

fn commit_message(summary: Option<&str>, files: usize) -> String {
    // Names no path: the message is as public as the repository.
    format!(
        "sesto: {} ({files} file{})",
        summary.unwrap_or("update store"),
        if files == 1 { "" } else { "s" }
    )
}

fn rel(store: &Store, path: &std::path::Path) -> String {
    path.strip_prefix(&store.work)
        .expect("inside the work tree")
        .to_string_lossy()
        .into_owned()
}

fn not_member(store: &Store) -> Error {
    Error::Denied(format!(
        "none of your identities ({}) is a member of this store",
        if store.ids.tried().is_empty() {
            "none found".to_string()
        } else {
            store.ids.tried().join(", ")
        }
    ))
}

/// The SSH key `member` signs with, from the loaded identities, made ready
/// for signing.
pub(crate) fn signer_for(store: &Store, member: &str) -> Result<crypto::Signer> {
    let m = &store.roster.members[member];
    let Some(want) = m
        .signer_key()
        .and_then(|k| crypto::normalize_public(k).ok())
    else {
        return Err(Error::Denied(format!(
            "{member} has only an age key and cannot sign; an admin can add an SSH signing_key for {member}"
        )));
    };
    // A key that needs no passphrase (an agent's) before one that does.
    let id = store
        .ids
        .iter()
        .filter(|i| i.signing_public() == Some(want.as_str()) && i.can_sign())
        .min_by_key(|i| i.is_locked())
        .ok_or_else(|| {
            Error::Denied(format!(
                "writing needs {member}'s SSH key ({}); pass it with -i, or add it to ssh-agent",
                crypto::fingerprint(&want)
            ))
        })?;
    Ok(id.signer(store.ids.prompt())?)
}

/// Encodes many nodes, spread over the machine's cores when there are
/// enough to be worth it (building or rotating a large store).
fn encode_all(
    store: &Store,
    roster: &Roster,
    nodes: &[&Node],
    signer: &crypto::Signer,
) -> Result<Vec<Vec<u8>>> {
    let progress = crate::progress::Progress::new("writing", nodes.len());
    crate::par::map(nodes, |n| {
        let out = encode_node(store, roster, n, signer);
        progress.tick();
        out
    })
    .into_iter()
    .collect()
}

/// Signs and encrypts one node to its own key and its member recipients.
pub(crate) fn encode_node(
    store: &Store,
    roster: &Roster,
    node: &Node,
    signer: &crypto::Signer,
) -> Result<Vec<u8>> {
    let body = node::encode_body(&node.body);
    let message = node::node_signed_message(&store.roster.store, &node.id, &body);
    let signature = signer
        .sign(crypto::NODE_NAMESPACE, &message)
        .map_err(|e| Error::Denied(format!("cannot sign: {e}")))?;
    let plaintext = node::assemble(&body, &signature);
    let mut recipients: Vec<Box<dyn age::Recipient + Send>> = Vec::new();
    if let Some(key) = &node.key {
        let identity = age::x25519::Identity::from_str(key.expose_secret())
            .map_err(|_| Error::Value("a node key is malformed".into()))?;
        recipients.push(Box::new(identity.to_public()));
    } else if let Some(own) = &node.body.recipient {
        // A shared folder reached directly: its key is in a parent we cannot read.
        let r = age::x25519::Recipient::from_str(own)
            .map_err(|_| Error::Value("a shared folder's recipient is malformed".into()))?;
        recipients.push(Box::new(r));
    }
    for r in crate::store::member_recipients(roster, &node.id)? {
        recipients.push(r.to_age()?);
    }
    let refs: Vec<&dyn age::Recipient> = recipients
        .iter()
        .map(|r| r.as_ref() as &dyn age::Recipient)
        .collect();
    crypto::encrypt(&plaintext, &refs).map_err(|e| Error::Value(e.to_string()))
}

/// A new random node key.
fn fresh_key() -> NodeKey {
    NodeKey::new(
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret_str(),
    )
}

/// The age recipient of a node key.
pub(crate) fn public_of(key: &NodeKey) -> Result<String> {
    age::x25519::Identity::from_str(key.expose_secret())
        .map(|i| i.to_public().to_string())
        .map_err(|_| Error::Value("a node key is malformed".into()))
}

trait ExposeStr {
    fn expose_secret_str(&self) -> String;
}

impl ExposeStr for age::secrecy::SecretString {
    fn expose_secret_str(&self) -> String {
        use age::secrecy::ExposeSecret;
        self.expose_secret().to_string()
    }
}

/// Whether node key `key` decrypts `bytes` (a node file).
fn key_opens(key: &NodeKey, bytes: &[u8]) -> bool {
    age::x25519::Identity::from_str(key.expose_secret())
        .is_ok_and(|identity| crypto::decrypt(bytes, &[&identity]).is_ok())
}
