//! Write transactions: change nodes in memory, then sign, encrypt and write
//! them all at once through the journal.
//!
//! A transaction loads nodes on demand (verified, as every read), records which
//! ones changed, and on commit writes exactly those files: a new secret costs
//! its node and its parent, a changed value costs its node alone.
//!
//! Here: the transaction and finding nodes in it. Beside it: changing the
//! tree (`edit`), node keys (`keys`), and committing (`write`), which hands
//! what it wrote to [`crate::store::staging`].

use std::collections::{BTreeSet, HashMap};

use crate::error::{Error, Result};
use crate::format::node::{self, Entry, Kind, NodeId, NodeKey, Roster};
use crate::store::journal::{self, Journal, Lock};
use crate::store::staging::stage_pending;
use crate::store::{Node, SPath, Store};

mod edit;
mod keys;
mod write;

pub(crate) use keys::public_of;
pub use write::Committed;
pub(crate) use write::{encode_node, signer_for};

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
    /// Node files moved unchanged (old path, new path): `sesto migrate`.
    pub(crate) moves: Vec<(std::path::PathBuf, std::path::PathBuf)>,
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
            moves: Vec::new(),
        };
        for (path, node) in self.tops()? {
            tx.tops.push((path, node.id));
            tx.nodes.insert(node.id, node);
        }
        Ok(tx)
    }
}

impl<'s> Tx<'s> {
    /// Removes node `id`'s file in this transaction: a node no folder
    /// lists, whose removal a merge keeps (see `resolve`).
    pub(crate) fn remove_unlisted(&mut self, id: NodeId) {
        self.removed.insert(id);
    }

    /// The current member, when an admin; the roster is theirs to change.
    pub(crate) fn require_admin(&self, what: &str) -> Result<String> {
        let admins = self.store.roster.admins().join(", ");
        match self.store.me.as_deref() {
            Some(me) if self.store.roster.is_admin(me) => Ok(me.to_string()),
            Some(me) => Err(Error::Denied(format!(
                "only admins {what}, and {me} is not one; ask {admins}"
            ))),
            None => Err(Error::Denied(format!(
                "only admins {what}; none of your identities is a member (admins: {admins})"
            ))),
        }
    }

    /// The roster this change writes: the store's, one version on, naming
    /// it as `previous`; made on first use.
    pub(crate) fn next_roster(&mut self) -> &mut node::Roster {
        if self.roster.is_none() {
            let mut next = self.store.roster.clone();
            next.version += 1;
            next.previous = Some(node::sha256_hex(&self.store.roster.encode()));
            self.roster = Some(next);
        }
        self.roster.as_mut().expect("set above")
    }

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
            let progress = crate::local::progress::Progress::new("reading", todo.len());
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
}

/// A new random node key.
fn fresh_key() -> NodeKey {
    NodeKey::new(
        age::x25519::Identity::generate()
            .to_string()
            .expose_secret_str(),
    )
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
