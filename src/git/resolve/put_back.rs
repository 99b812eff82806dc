//! Nodes a merge puts back after one side removed them are written above
//! the version that side removed, so no clone takes them for an older copy.
//!
//! Every clone remembers the node files it saw removed, and a file added
//! back older than that is refused as a rollback (an attacker who can push
//! removes a file in one commit and adds an older copy in a later one).
//! An honest merge puts files back too: an edit kept against a delete, a
//! file restored where git deleted it. Its version counts from its own
//! line, which may be below what the deleting line wrote before it deleted;
//! the resolver signs it again above both.

use std::collections::{HashMap, HashSet};

use git2::Repository;

use crate::error::Result;
use crate::format::node::NodeId;
use crate::git::merge::Merge;
use crate::git::sides::Side;
use crate::store::trust::Judge;
use crate::store::tx::Tx;
use crate::store::Store;

/// Most commits of each side looked at for the removal of a file.
const MAX_WALK: usize = 500;

/// The folder that lists each node, of the folders `tx` reaches.
pub(super) fn listing_folders(tx: &mut Tx) -> Result<HashMap<NodeId, NodeId>> {
    let mut parent_of = HashMap::new();
    for top in tx.top_ids() {
        let folders = tx.load_subtree(top, true)?;
        for folder in std::iter::once(top).chain(folders) {
            for e in &tx.node(&folder).body.children {
                parent_of.insert(e.id, folder);
            }
        }
    }
    Ok(parent_of)
}

impl Store {
    /// Writes each of `put_back` (loaded in `tx` under the folder
    /// `parent_of` names) at a version above the highest its file had on
    /// either side's line, since the base, before a commit there removed
    /// it. Nodes this member may not write, or whose removed files it
    /// cannot read, stay as they are. Returns how many were raised.
    pub(super) fn raise_put_back(
        &self,
        tx: &mut Tx,
        repo: &Repository,
        m: &Merge,
        put_back: &[NodeId],
        parent_of: &HashMap<NodeId, NodeId>,
    ) -> Result<usize> {
        if put_back.is_empty() {
            return Ok(0);
        }
        let judge = Judge::new(&self.work, &self.roster.store)?;
        let me = self.me.clone().unwrap_or_default();
        let only: HashSet<NodeId> = put_back.iter().copied().collect();
        let mut sides: HashMap<git2::Oid, Option<Side>> = HashMap::new();
        let mut raised = 0;
        for id in put_back {
            let Some(parent) = parent_of.get(id).copied() else {
                continue; // not listed after all
            };
            let removals = self.removals(repo, m, &judge, &only, &mut sides, id);
            let Some(removed) = removals.iter().map(|r| r.version).max() else {
                continue;
            };
            let Some(name) = tx
                .node(&parent)
                .body
                .children
                .iter()
                .find(|e| e.id == *id)
                .map(|e| e.name.clone())
            else {
                continue;
            };
            if !matches!(tx.child(parent, &name), Ok(Some(_)))
                || !self.may_write(&me, &tx.chain_of(*id))
            {
                continue;
            }
            if tx.node(id).body.version <= removed {
                // A side whose own line removed a newer file than the one it
                // holds put an older copy back: a replay, which no honest
                // write makes. Raising it would sign the older value above
                // the newer one, for every clone to take.
                for side in [&m.ours, &m.theirs] {
                    let Some(holds) = side_version(self, side, id) else {
                        continue;
                    };
                    let newer = removals
                        .iter()
                        .filter(|r| r.line == side.commit && r.version > holds)
                        .max_by_key(|r| r.version);
                    if let Some(r) = newer {
                        return Err(self.reject(
                            id,
                            format!(
                                "commit {} removed its file at version {}, and commit {} \
                                 holds an older copy (version {holds}) put back: a replay; \
                                 an admin puts the newer file back on the remote, then merge again",
                                short(r.commit),
                                r.version,
                                short(side.commit)
                            ),
                        ));
                    }
                }
                let node = tx.node_mut(*id);
                node.body.version = removed;
                raised += 1;
            }
        }
        Ok(raised)
    }

    /// Each file of node `id` that a commit on either side of `m` (since
    /// the base) removed: the version in the parent that still had it, read
    /// with that parent's verified keys (`sides` keeps each parent read,
    /// placing the nodes in `only`).
    fn removals<'r>(
        &self,
        repo: &'r Repository,
        m: &Merge,
        judge: &Judge,
        only: &HashSet<NodeId>,
        sides: &mut HashMap<git2::Oid, Option<Side<'r>>>,
        id: &NodeId,
    ) -> Vec<Removal> {
        let has =
            |commit: &git2::Commit| crate::store::rollback::node_blob_id(repo, commit.id(), id);
        let mut out = Vec::new();
        for tip in [m.ours.commit, m.theirs.commit] {
            let Ok(mut walk) = repo.revwalk() else {
                continue;
            };
            if walk.push(tip).is_err() {
                continue;
            }
            if let Some(base) = &m.base {
                let _ = walk.hide(base.commit);
            }
            for commit in walk.take(MAX_WALK).flatten() {
                let Ok(commit) = repo.find_commit(commit) else {
                    continue;
                };
                if has(&commit).is_some() {
                    continue;
                }
                for parent in commit.parents() {
                    let Some(blob) = has(&parent) else { continue };
                    let Ok(bytes) = repo.find_blob(blob).map(|b| b.content().to_vec()) else {
                        continue;
                    };
                    // Read as the rollback check reads it: with the key and
                    // place a side of this merge gives the node, else at its
                    // place in the commit that had it. That commit may not
                    // verify at all (a root forged there, repaired since),
                    // and every clone that saw the file still counts it.
                    let placed = [&m.ours, &m.theirs].into_iter().find_map(|side| {
                        let p = side.nodes.get(id)?;
                        self.open_node_under(&side.rules(), id, &bytes, p.key.as_ref(), &p.chain)
                            .ok()
                    });
                    let version = placed
                        .or_else(|| {
                            let side = sides.entry(parent.id()).or_insert_with(|| {
                                Side::load_placing(self, repo, judge, &parent, only).ok()
                            });
                            side.as_ref()?.open(self, id, &bytes).ok()
                        })
                        .map(|node| node.body.version);
                    if let Some(version) = version {
                        out.push(Removal {
                            line: tip,
                            commit: commit.id(),
                            version,
                        });
                    }
                }
            }
        }
        out
    }
}

/// A file of a node that a commit removed.
struct Removal {
    /// The tip of the side whose line holds the commit.
    line: git2::Oid,
    /// The commit that removed it.
    commit: git2::Oid,
    /// The version the removed file had.
    version: u64,
}

/// The version of node `id`'s file at `side`'s commit, where it has one it
/// opens.
fn side_version(store: &Store, side: &Side, id: &NodeId) -> Option<u64> {
    let bytes = side.blob(id)?;
    side.open(store, id, &bytes).ok().map(|n| n.body.version)
}

/// A commit's id as messages show it.
fn short(commit: git2::Oid) -> String {
    commit.to_string()[..12].to_string()
}
