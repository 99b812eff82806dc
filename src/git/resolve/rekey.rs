//! Folder entries put right after a merge git finished alone: each node
//! gets the key of the file the merge kept, and entries a side's key
//! rotation missed are re-keyed.

use std::collections::{BTreeSet, HashMap};

use git2::{Commit, Oid, Repository};

use crate::error::Result;
use crate::format::node::{Kind, NodeId};
use crate::git::merge::Merge;
use crate::git::sides::{self, Side};
use crate::store::Store;

use super::git;

impl Store {
    /// An entry whose file git deleted (the driver kept the entry, for a
    /// rename or a change in its folder, where git took the other side's
    /// delete of a file this side left alone): its file comes back from the
    /// side of `m` that has it, verified there; without one, the entry
    /// goes, as do those in `deleted` (a delete this merge kept). Returns
    /// the entries removed; `restored` gets the files put back.
    pub(super) fn restore_or_prune(
        &self,
        tx: &mut crate::store::tx::Tx,
        m: &Merge,
        deleted: &BTreeSet<NodeId>,
        restored: &mut Vec<String>,
    ) -> Result<Vec<crate::store::SPath>> {
        tx.prune_dangling(&mut |id| {
            if deleted.contains(id) {
                return false;
            }
            for side in [&m.ours, &m.theirs] {
                if let Some(bytes) = side.blob(id) {
                    if side.open(self, id, &bytes).is_ok()
                        && crate::store::journal::write_atomic(&self.node_file(id), &bytes).is_ok()
                    {
                        restored.push(sides::node_path(id, self.roster.sesto));
                        return true;
                    }
                }
            }
            false
        })
    }

    /// After a merge or rebase git finished alone (nothing under way):
    /// folder entries put right where git took a folder from one side and a
    /// node it lists, re-encrypted, from the other. Returns how many;
    /// nothing when the two sides cannot be told or read.
    pub(super) fn settle_merged_keys(&self, repo: &Repository) -> Result<usize> {
        if repo.state() != git2::RepositoryState::Clean {
            return Ok(0);
        }
        let Some((ours, theirs)) = merged_sides(repo)? else {
            return Ok(0);
        };
        let base = repo
            .merge_base(ours.id(), theirs.id())
            .ok()
            .and_then(|b| repo.find_commit(b).ok());
        let Ok(m) = Merge::load(self, repo, &ours, &theirs, base.as_ref()) else {
            return Ok(0);
        };
        let mut tx = self.transaction()?;
        // First the entries whose files are gone, so that what follows
        // reads only files that are there.
        let mut restored = Vec::new();
        let pruned = self.restore_or_prune(&mut tx, &m, &BTreeSet::new(), &mut restored)?;
        crate::git::stage(repo, &restored)?;
        let mut put_back: Vec<NodeId> = restored
            .iter()
            .filter_map(|p| crate::git::merge::node_of(p).ok())
            .collect();
        // Files git kept from one side that no merged folder lists: git took
        // the folder from the other side, which removed the entry, because
        // this side's folder was the merge base's (a change kept under an
        // older copy of its folder put back, seed 710311). An edit beats a
        // delete: each is listed again where its side had it.
        let Relisted {
            relisted,
            parent_of,
            removed,
        } = self.relist_kept(&mut tx, repo, &m)?;
        put_back.extend(relisted.iter().copied());
        // Restored files are written above what the other side removed
        // (see put_back.rs).
        let raised = if put_back.is_empty() {
            0
        } else {
            self.raise_put_back(&mut tx, repo, &m, &put_back, &parent_of)?
        };
        let fixed = raised
            + relisted.len()
            + removed.len()
            + settle_keys(&mut tx, &m)?
            + rekey_past_rotations(&mut tx, &m)?;
        if fixed > 0 || !pruned.is_empty() {
            tx.commit()?;
        } else if !restored.is_empty() && crate::git::auto_commit(repo) {
            git(
                &self.work,
                &["commit", "--quiet", "-m", "sesto: settle merge"],
            )?;
        }
        Ok(fixed + pruned.len() + restored.len())
    }

    /// Lists again each node whose file the merged work tree has but no
    /// folder of it lists, where a side of `m` placed it in a folder the
    /// merged store has and this member may write there; removes instead
    /// the file of a node the other side removed and this side only
    /// re-keyed, where nothing that comes back lists it. Returns the nodes
    /// listed again, the folder that lists each node afterwards (walked
    /// once, for [`Store::raise_put_back`] too), and the nodes whose files
    /// are removed in `tx`.
    pub(super) fn relist_kept(
        &self,
        tx: &mut crate::store::tx::Tx,
        repo: &Repository,
        m: &Merge,
    ) -> Result<Relisted> {
        let mut parent_of = super::put_back::listing_folders(tx)?;
        let mut listed: BTreeSet<NodeId> = tx
            .top_ids()
            .into_iter()
            .chain(parent_of.keys().copied())
            .collect();
        let me = self.me.clone().unwrap_or_default();
        let mut relisted = Vec::new();
        let mut removal_stands = Vec::new();
        for (side, other) in [(&m.ours, &m.theirs), (&m.theirs, &m.ours)] {
            let mut unlisted: Vec<(&NodeId, &crate::git::sides::Placed)> = side
                .nodes
                .iter()
                .filter(|(id, p)| {
                    !listed.contains(id) && p.parent.is_some() && self.node_file(id).exists()
                })
                .collect();
            // Folders before what they hold.
            unlisted.sort_by_key(|(_, p)| p.chain.len());
            for (id, placed) in unlisted {
                if listed.contains(id) || !self.may_write(&me, &placed.chain) {
                    continue;
                }
                let Some(parent) = placed.parent else {
                    continue;
                };
                // The other side removed its file and this side changed its
                // keys alone (a rotation): the removal stands, as in a
                // modify/delete conflict. Across `sesto migrate` git sees no
                // such conflict: this side's file moved and changed, the
                // other's was removed at the old path (seed 820005). Decided
                // by the files in the two commits, not by what this member
                // can place there (a node it cannot read on the other side
                // was not removed there; seed 850011 lost a value to that
                // rule). Removed only after everything that comes back is
                // listed: an edit below it brings its folders back.
                if m.base.as_ref().is_some_and(|b| b.has_file(id))
                    && !other.has_file(id)
                    && side
                        .blob(id)
                        .is_some_and(|b| std::fs::read(self.node_file(id)).is_ok_and(|f| f == b))
                    && !m.content_changed(self, side, id)
                {
                    removal_stands.push(*id);
                    continue;
                }
                if !listed.contains(&parent) {
                    // Its folder is gone too: the other side removed it, and
                    // git saw no modify/delete conflict because the change
                    // and the removal were on two sides of `sesto migrate`
                    // (seed 790055). An edit beats a delete, as in such a
                    // conflict: the folders above it come back from this
                    // side, ancestors first; a change of keys alone does not.
                    if !m.content_changed(self, side, id) {
                        continue;
                    }
                    for ancestor in &placed.chain[..placed.chain.len() - 1] {
                        if listed.contains(ancestor) {
                            continue;
                        }
                        let gone = !self.node_file(ancestor).exists();
                        self.restore_entry(tx, repo, side, *ancestor, &mut listed, &mut parent_of)?;
                        if gone && listed.contains(ancestor) {
                            relisted.push(*ancestor);
                        }
                    }
                    if !listed.contains(&parent) {
                        continue;
                    }
                }
                self.restore_entry(tx, repo, side, *id, &mut listed, &mut parent_of)?;
                if listed.contains(id) {
                    relisted.push(*id);
                }
            }
        }
        let mut removed = Vec::new();
        for id in removal_stands {
            if !listed.contains(&id) {
                tx.remove_unlisted(id);
                removed.push(id);
            }
        }
        Ok(Relisted {
            relisted,
            parent_of,
            removed,
        })
    }
}

/// What [`Store::relist_kept`] did.
pub(super) struct Relisted {
    /// Nodes listed again.
    pub(super) relisted: Vec<NodeId>,
    /// The folder that lists each node afterwards.
    pub(super) parent_of: HashMap<NodeId, NodeId>,
    /// Nodes whose files the transaction removes: the other side removed
    /// them, this one only re-keyed them.
    pub(super) removed: Vec<NodeId>,
}

/// The two sides of what `HEAD` last took in: a merge commit's parents, or
/// after a rebase onto the upstream (`git pull --rebase`) the upstream and
/// the branch as it was before (`ORIG_HEAD`, no longer in `HEAD`'s history).
fn merged_sides(repo: &Repository) -> Result<Option<(Commit<'_>, Commit<'_>)>> {
    let head = repo.head()?.peel_to_commit()?;
    if head.parent_count() == 2 {
        return Ok(Some((head.parent(0)?, head.parent(1)?)));
    }
    let commit = |spec: &str| {
        repo.revparse_single(spec)
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
    };
    let (Some(before), Some(upstream)) = (commit("ORIG_HEAD"), commit("@{upstream}")) else {
        return Ok(None);
    };
    let holds = |tip: Oid, c: Oid| tip == c || repo.graph_descendant_of(tip, c).unwrap_or(false);
    let rebased = upstream.id() != head.id()
        && holds(head.id(), upstream.id())
        && !holds(head.id(), before.id())
        && !holds(upstream.id(), before.id());
    Ok(rebased.then_some((upstream, before)))
}

/// [`crate::store::tx::Tx::settle_keys`] for a merge: nodes whose files differ
/// between the sides, with the keys each side's verified folders give them.
pub(super) fn settle_keys(tx: &mut crate::store::tx::Tx, m: &Merge) -> Result<usize> {
    tx.settle_keys(&|id| m.ours.blob_id(id) != m.theirs.blob_id(id), &|id| {
        [m.ours.nodes.get(id), m.theirs.nodes.get(id)]
            .into_iter()
            .flatten()
            .filter_map(|p| p.key.clone())
            .collect()
    })
}

/// Folders a side re-keyed since the base (a revoke or member removal
/// there): the folder's own key changed, or a key of an entry the base had.
fn rotated_folders(side: &Side, base: &Side) -> BTreeSet<NodeId> {
    let key = |s: &Side, id: &NodeId| {
        s.nodes
            .get(id)
            .and_then(|p| p.key.as_ref())
            .map(|k| k.expose_secret().to_owned())
    };
    let mut out = BTreeSet::new();
    for (id, placed) in &side.nodes {
        let (now, then) = (key(side, id), key(base, id));
        if now.is_some() && then.is_some() && now != then {
            if placed.kind == Kind::Folder {
                out.insert(*id);
            }
            if let Some(parent) = placed.parent {
                out.insert(parent);
            }
        }
    }
    out
}

/// After a merge, no node may keep a key a member could have read on one
/// side (or in the base) when the merged roster no longer lets them read it,
/// nor a key from before a rotation the other side made in its folder:
/// a revoke or member removal made on one side re-keyed what that side had,
/// but what only the other side has (a folder it added, a folder the
/// revoking side deleted and the other side changed, so the merge kept it)
/// still holds the keys from before. Those nodes get fresh keys with
/// everything below them, so a rotation on one side always wins over an
/// unrotated key on the other. Folders are walked from the tops (secrets
/// are judged by their entries); only nodes the merging member may write
/// are re-keyed, and the secrets among them list the members who lost
/// access in `exposed_to`, so `sesto stale` shows them. Returns how many
/// nodes were re-keyed.
pub(super) fn rekey_past_rotations(tx: &mut crate::store::tx::Tx, m: &Merge) -> Result<usize> {
    // (roster, the keys its commit gives each node) of the base and sides.
    let mut views: Vec<(&crate::format::node::Roster, &Side)> = vec![(&m.ours.roster, &m.ours)];
    views.push((&m.theirs.roster, &m.theirs));
    if let Some(base) = &m.base {
        views.push((&base.roster, base));
    }
    // Members who may read less under the merged roster than under one of
    // the others: removed, demoted, or a grant gone.
    let lost: BTreeSet<&String> = views
        .iter()
        .flat_map(|(roster, _)| roster.members.keys())
        .filter(|name| !m.roster.is_admin(name))
        .filter(|name| {
            !m.roster.members.contains_key(*name)
                || views.iter().any(|(roster, _)| {
                    roster.is_admin(name)
                        || roster.grants.iter().any(|(folder, who)| {
                            who.contains_key(*name)
                                && m.roster
                                    .grants
                                    .get(folder)
                                    .is_none_or(|w| !w.contains_key(*name))
                        })
                })
        })
        .collect();
    // Folders one side re-keyed: what the other side has there and the
    // re-keying side lacks was never re-keyed.
    let rotated: Vec<(&Side, BTreeSet<NodeId>)> = match &m.base {
        Some(base) => [&m.ours, &m.theirs]
            .into_iter()
            .map(|side| (side, rotated_folders(side, base)))
            .collect(),
        None => Vec::new(),
    };
    if lost.is_empty() && rotated.iter().all(|(_, folders)| folders.is_empty()) {
        return Ok(0);
    }
    let mut stale = Vec::new();
    let mut todo = tx.top_ids();
    let mut seen: BTreeSet<NodeId> = todo.iter().copied().collect();
    while let Some(folder) = todo.pop() {
        // A top this member cannot read is not loaded: nothing to judge there.
        let Some(entries) = tx.nodes.get(&folder).map(|n| n.body.children.clone()) else {
            continue;
        };
        let chain = tx.chain_of(folder);
        for e in entries {
            if !seen.insert(e.id) {
                continue;
            }
            let mut here = chain.clone();
            here.push(e.id);
            let exposed: Vec<String> = lost
                .iter()
                .filter(|name| {
                    !m.roster.may_read(name, &here)
                        && views.iter().any(|(roster, side)| {
                            roster.may_read(name, &here)
                                && side
                                    .nodes
                                    .get(&e.id)
                                    .and_then(|p| p.key.as_ref())
                                    .is_some_and(|k| k.expose_secret() == e.key.expose_secret())
                        })
                })
                .map(|name| name.to_string())
                .collect();
            // Judged by the key: once re-keyed, the entry has a key no side
            // gave it, so settling the same merge again changes nothing.
            let key_of_a_side = views.iter().any(|(_, side)| {
                side.nodes
                    .get(&e.id)
                    .and_then(|p| p.key.as_ref())
                    .is_some_and(|k| k.expose_secret() == e.key.expose_secret())
            });
            let behind = key_of_a_side
                && rotated.iter().any(|(side, folders)| {
                    folders.contains(&folder) && !side.nodes.contains_key(&e.id)
                });
            if !exposed.is_empty() || behind {
                stale.push((folder, e.name.clone(), exposed));
            } else if e.kind == Kind::Folder {
                if let Some(id) = tx.child(folder, &e.name)? {
                    todo.push(id);
                }
            }
        }
    }
    let me = tx.store.me.clone();
    let mut rekeyed = 0;
    for (folder, name, exposed) in stale {
        let Some(top) = tx.child(folder, &name)? else {
            continue;
        };
        let mut ids = vec![top];
        ids.extend(tx.load_subtree(top, false)?);
        for id in ids {
            let chain = tx.chain_of(id);
            if me
                .as_deref()
                .is_some_and(|me| tx.roster().may_write(me, &chain))
            {
                tx.rekey(id);
                rekeyed += 1;
                // The values they could read are theirs to rotate: `sesto
                // stale` lists them, as after a revoke.
                let body = &mut tx.node_mut(id).body;
                if body.kind == Kind::Secret {
                    for name in &exposed {
                        if !body.exposed_to.contains(name) {
                            body.exposed_to.push(name.clone());
                        }
                    }
                    body.exposed_to.sort();
                }
            }
        }
    }
    Ok(rekeyed)
}
