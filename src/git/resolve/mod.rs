//! After git: settling what a plain `git merge` or `git rebase` leaves in
//! `.sesto/` (delete/modify conflicts, values kept beside each other), the
//! `sync` loop over the system `git`, and registering the merge driver.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::format::node::{Entry, Kind, NodeId, Value};
use crate::git::merge::{self, Merge};
use crate::git::sides::{self, Side};
use crate::store::{SPath, Store};

mod layout;
mod put_back;
mod rekey;
mod setup;
mod sync;

use rekey::{rekey_past_rotations, settle_keys};

pub use setup::{ensure_merge_driver, setup_git};
pub use sync::SyncReport;

/// What [`Store::resolve`] did.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Nodes one side changed and the other deleted: the change was kept.
    pub kept: Vec<String>,
    /// Nodes one side deleted and the other only re-encrypted (a rotation):
    /// the delete was kept.
    pub dropped: Vec<String>,
    /// Secrets both sides changed: theirs kept beside ours under these paths.
    pub copies: Vec<SPath>,
    /// What could not be settled automatically, with what to run.
    pub left: Vec<String>,
    /// Whether both sides' roster changes were merged (and signed by you).
    pub roster_merged: bool,
    /// Folder entries settled after a merge: given the key of the node file
    /// the merge kept, or their file put back (or, with none, removed).
    pub rekeyed: usize,
    /// Node files a merge across `sesto migrate` left where this store's
    /// format does not keep them, moved to their place (`old → new`).
    pub relocated: Vec<String>,
    /// Node files both sides changed that git left conflicted (its merge
    /// driver could not run, as in a `git stash pop`), merged here.
    pub merged: usize,
}

impl Resolved {
    /// Whether resolve wrote anything to the store: values kept beside
    /// each other, changes or deletes kept, entries settled.
    pub fn wrote(&self) -> bool {
        !self.copies.is_empty()
            || !self.kept.is_empty()
            || !self.dropped.is_empty()
            || self.rekeyed > 0
            || !self.relocated.is_empty()
    }
}

/// The names taken in `folder`, for [`merge::free_name`].
fn taken_names(tx: &crate::store::tx::Tx, folder: NodeId) -> BTreeSet<String> {
    tx.node(&folder)
        .body
        .children
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

/// Whether git left the roster conflicted (both sides changed it).
fn roster_conflicted(repo: &Repository) -> Result<bool> {
    Ok(conflicts(repo)?
        .iter()
        .any(|c| c.path == ".sesto/roster.yaml" || c.path == ".sesto/roster.sig"))
}

/// When both sides of a merge changed the roster, puts this side's signed
/// roster back in the work tree, so the store opens while `sesto resolve`
/// merges the two. Returns whether it did.
pub fn restore_our_roster(work: &Path) -> Result<bool> {
    let repo = crate::git::open(work)?;
    if !roster_conflicted(&repo)? {
        return Ok(false);
    }
    let head = repo.head()?.peel_to_commit()?.tree()?;
    for name in [".sesto/roster.yaml", ".sesto/roster.sig"] {
        let blob = repo.find_blob(head.get_path(Path::new(name))?.id())?;
        crate::store::journal::write_atomic(&work.join(name), blob.content())?;
    }
    Ok(true)
}

/// A conflicted path in git's index: the blob of each stage present.
struct Conflict {
    path: String,
    base: Option<Oid>,
    ours: Option<Oid>,
    theirs: Option<Oid>,
}

/// The conflicted node files in git's index.
fn node_conflicts(repo: &Repository) -> Result<Vec<Conflict>> {
    let mut all = conflicts(repo)?;
    all.retain(|c| c.path.starts_with(".sesto/nodes/"));
    Ok(all)
}

/// Every conflicted path in git's index.
fn conflicts(repo: &Repository) -> Result<Vec<Conflict>> {
    let index = repo.index()?;
    if !index.has_conflicts() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in index.conflicts()?.flatten() {
        let path = c
            .our
            .as_ref()
            .or(c.their.as_ref())
            .or(c.ancestor.as_ref())
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .unwrap_or_default();
        out.push(Conflict {
            path,
            base: c.ancestor.map(|e| e.id),
            ours: c.our.map(|e| e.id),
            theirs: c.their.map(|e| e.id),
        });
    }
    Ok(out)
}

impl Store {
    /// Settles `.sesto/` after a plain git merge or rebase, or a merge the
    /// driver could not finish: node files both sides changed are merged
    /// here by the driver's rules; a node changed on one side and deleted on
    /// the other keeps the change (its folder entry is put back), unless the
    /// change only re-encrypted it (a rotation does not beat a delete); values
    /// that do not merge are kept beside ours as `name (conflict N)`; both
    /// sides' roster changes are merged (by an admin). Every file taken from
    /// a side verifies at its place in that side's commit. Stages the result.
    pub fn resolve(&self) -> Result<Resolved> {
        let mut report = Resolved::default();
        let repo = crate::git::open(&self.work)?;
        // Across `sesto migrate`: node files where the other layout keeps
        // them first, so that all that follows finds each at its place.
        if roster_conflicted(&repo)? {
            // Both sides changed the roster; ours is in the work tree. Where
            // theirs is in a newer format, ours migrates first (nothing here
            // may move files toward the older layout).
            if let Some(theirs) = sides::their_commit(&repo, None) {
                let format = sides::tree_format(&repo, &theirs.tree()?);
                if format > self.roster.sesto {
                    return Err(crate::git::roster_merge::format_behind(
                        &self.work,
                        format,
                        self.roster.sesto,
                    ));
                }
            }
        }
        let relocated = self.relocate_nodes(&repo)?;
        report.relocated = relocated.moved;
        if !relocated.left.is_empty() {
            report.left = relocated.left;
            return Ok(report);
        }
        if !report.relocated.is_empty() {
            // git changed the index on disk; libgit2 keeps what it read.
            repo.index()?.read(true)?;
        }
        let conflicts = node_conflicts(&repo)?;
        let roster_conflict = roster_conflicted(&repo)?;
        let mut copies = merge::queued_conflict_copies(self);
        if conflicts.is_empty() && !roster_conflict {
            // A merge git finished (the driver may have queued values to
            // keep beside ours, written below).
            report.rekeyed = self.settle_merged_keys(&repo)?;
            if copies.is_empty() {
                // Nothing queued, or only what a merge given up left.
                merge::clear_conflict_copies(self)?;
                return Ok(report);
            }
        }
        let head = repo.head()?.peel_to_commit()?;
        let their_commit = if conflicts.is_empty() && !roster_conflict {
            None
        } else {
            // Where nothing names it (a `git stash pop`), a conflict's
            // theirs' file picks the commit out.
            let all = self::conflicts(&repo)?;
            let held = all
                .iter()
                .find_map(|c| c.theirs.map(|b| (c.path.as_str(), b)));
            let theirs = sides::their_commit(&repo, None)
                .or_else(|| held.and_then(|h| sides::their_commit(&repo, Some(h))));
            Some(theirs.ok_or_else(|| {
                Error::Value(
                    ".sesto/ has conflicts but no merge, rebase or cherry-pick is in progress; \
                     take one side with `git checkout --ours -- .sesto`"
                        .into(),
                )
            })?)
        };
        let merge = match &their_commit {
            Some(theirs) => {
                let base = sides::base_commit(&repo, head.id(), theirs, None);
                Some(Merge::load(self, &repo, &head, theirs, base.as_ref())?)
            }
            None => None,
        };
        let merged_roster = match (&merge, roster_conflict) {
            (Some(m), true) => {
                if !self.is_admin() || !m.roster.is_admin(self.me.as_deref().unwrap_or_default()) {
                    return Err(Error::Denied(format!(
                        "both sides changed the roster; an admin ({}) runs `sesto resolve` to merge and sign it",
                        self.roster.admins().join(", ")
                    )));
                }
                Some(m.roster.clone())
            }
            _ => None,
        };
        // Node files: merged, or the side that kept a change.
        let mut kept: Vec<(NodeId, bool)> = Vec::new(); // node, from theirs
        let mut settled: Vec<String> = Vec::new();
        if let Some(m) = &merge {
            let blob = |oid: Option<Oid>| -> Result<Vec<u8>> {
                oid.map(|o| Ok(repo.find_blob(o)?.content().to_vec()))
                    .unwrap_or(Ok(Vec::new()))
            };
            for c in &conflicts {
                let id = merge::node_of(&c.path)?;
                // A delete against a rotation: the delete stands, where the
                // deleting side's verified folders no longer list the node
                // (a file merely missing there is no delete anyone signed).
                let deleted_by = match (c.ours, c.theirs) {
                    (Some(_), None) => Some((&m.ours, &m.theirs)),
                    (None, Some(_)) => Some((&m.theirs, &m.ours)),
                    _ => None,
                };
                if let Some((changing, deleting)) = deleted_by {
                    if c.base.is_some()
                        && !deleting.nodes.contains_key(&id)
                        && !m.content_changed(self, changing, &id)
                    {
                        let file = self.work.join(&c.path);
                        match std::fs::remove_file(&file) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(Error::io("cannot remove", &file)(e)),
                        }
                        report.dropped.push(c.path.clone());
                        settled.push(c.path.clone());
                        continue;
                    }
                }
                let outcome = match (c.ours, c.theirs) {
                    (Some(a), Some(b)) => m
                        .node(self, &id, &blob(c.base)?, &blob(Some(a))?, &blob(Some(b))?)
                        .map(|merged| {
                            copies.extend(merged.conflict_copy);
                            merged.bytes
                        }),
                    (Some(a), None) => {
                        let bytes = blob(Some(a))?;
                        m.ours.open(self, &id, &bytes).map(|_| {
                            kept.push((id, false));
                            bytes
                        })
                    }
                    (None, Some(b)) => {
                        let bytes = blob(Some(b))?;
                        m.theirs.open(self, &id, &bytes).map(|_| {
                            kept.push((id, true));
                            bytes
                        })
                    }
                    (None, None) => continue,
                };
                match outcome {
                    Ok(bytes) => {
                        crate::store::journal::write_atomic(&self.work.join(&c.path), &bytes)?;
                        if c.ours.is_none() || c.theirs.is_none() {
                            report.kept.push(c.path.clone());
                        } else {
                            report.merged += 1;
                        }
                        settled.push(c.path.clone());
                    }
                    Err(e) => report.left.push(format!("{}: {e}", c.path)),
                }
            }
        }
        if !report.left.is_empty() {
            // A member who cannot read a node both sides changed (its folder
            // is gone or no longer theirs on one side) cannot finish; an
            // admin, who reads everything, can.
            if !self.is_admin() && report.left.iter().any(|l| l.contains("can read lists it")) {
                report.left.push(format!(
                    "you cannot read every node this merge changed; nothing was pushed: {}",
                    merge::admin_finishes(&self.roster)
                ));
            }
            return Ok(report);
        }
        // Stage what was settled; conflicts in the index are settled by adding.
        crate::git::stage(&repo, &settled)?;
        if kept.is_empty() && copies.is_empty() && merged_roster.is_none() && merge.is_none() {
            merge::clear_conflict_copies(self)?;
            return Ok(report);
        }
        // A member's own folder that one side removed, where the other
        // changed what is inside it (the folder or a node below it, kept
        // from a delete/modify conflict), cannot be listed again by them: it
        // is listed in a folder they cannot write. Where nothing inside it
        // changed, the delete stands. (In a rebase the member's own changes
        // are theirs.)
        if !self.is_admin() {
            let me = self.me.clone().unwrap_or_default();
            let changed_inside = |folder: &NodeId| {
                kept.iter().any(|(k, from_theirs)| {
                    k == folder
                        || merge.as_ref().is_some_and(|m| {
                            let side = if *from_theirs { &m.theirs } else { &m.ours };
                            side.nodes.get(k).is_some_and(|p| p.chain.contains(folder))
                        })
                })
            };
            for (id, grants) in &self.roster.grants {
                let removed = !self.node_file(id).exists() || kept.iter().any(|(k, _)| k == id);
                if grants.contains_key(&me) && removed && changed_inside(id) {
                    report.left.push(format!(
                        "the other side removed shared folder {id}, and you changed what is \
                         inside it; nothing was pushed: {}",
                        merge::admin_finishes(&self.roster)
                    ));
                }
            }
            if !report.left.is_empty() {
                return Ok(report);
            }
        }
        let mut tx = self.transaction()?;
        // Nodes whose files come back here after a side removed them.
        let mut put_back: Vec<NodeId> = kept.iter().map(|(id, _)| *id).collect();
        if let Some(m) = &merge {
            // Entries whose files git deleted first, so that what follows
            // reads only files that are there.
            let deleted: BTreeSet<NodeId> = report
                .dropped
                .iter()
                .filter_map(|p| merge::node_of(p).ok())
                .collect();
            let mut restored = Vec::new();
            let pruned = self.restore_or_prune(&mut tx, m, &deleted, &mut restored)?;
            crate::git::stage(&repo, &restored)?;
            put_back.extend(restored.iter().filter_map(|p| merge::node_of(p).ok()));
            report.rekeyed = pruned.len() + restored.len() + settle_keys(&mut tx, m)?;
        }
        let mut parent_of = put_back::listing_folders(&mut tx)?;
        let mut listed: BTreeSet<NodeId> = tx
            .top_ids()
            .into_iter()
            .chain(parent_of.keys().copied())
            .collect();
        // Put kept nodes back where their side had them, ancestors first.
        if let Some(m) = &merge {
            for (id, from_theirs) in &kept {
                let side = if *from_theirs { &m.theirs } else { &m.ours };
                let Some(placed) = side.nodes.get(id) else {
                    continue;
                };
                for ancestor in placed.chain.clone() {
                    if !self.node_file(&ancestor).exists() {
                        put_back.push(ancestor);
                    }
                    self.restore_entry(
                        &mut tx,
                        &repo,
                        side,
                        ancestor,
                        &mut listed,
                        &mut parent_of,
                    )?;
                }
            }
        }
        if !kept.is_empty() || !report.dropped.is_empty() {
            tx.prune_dangling(&mut |_| false)?;
        }
        if let Some(m) = &merge {
            // Files git kept without a conflict that no merged folder lists
            // (across `sesto migrate`, an edit against the removal of its
            // folder is no conflict to git): listed again, as after a merge
            // git finished.
            let relisted = self.relist_kept(&mut tx, &repo, m)?;
            put_back.extend(relisted.relisted);
            parent_of.extend(relisted.parent_of);
            report.dropped.extend(
                relisted
                    .removed
                    .iter()
                    .map(|id| sides::node_path(id, self.roster.sesto)),
            );
        }
        if let Some(m) = &merge {
            // Above what a side removed, so no clone takes them for older
            // copies put back.
            put_back.retain(|id| parent_of.get(id).is_some_and(|p| tx.nodes.contains_key(p)));
            report.rekeyed += self.raise_put_back(&mut tx, &repo, m, &put_back, &parent_of)?;
            // What was kept or restored from a side that had not rotated.
            report.rekeyed += rekey_past_rotations(&mut tx, m)?;
        }
        if let Some(merged) = merged_roster {
            // Shared folders are encrypted to their grantees and the root to
            // the admins: each one whose readers changed is written again,
            // and what a member may no longer write is re-signed.
            let ours = self.roster.clone();
            let mut touched: BTreeSet<NodeId> = ours
                .grants
                .keys()
                .chain(merged.grants.keys())
                .copied()
                .collect();
            if ours.admins() != merged.admins() {
                touched.insert(self.roster.root);
            }
            tx.roster = Some(merged);
            if let Some(m) = &merge {
                // Theirs is a link of the merged roster's chain too.
                tx.log_also
                    .push((m.theirs.roster_bytes.clone(), m.theirs.roster_sig.clone()));
            }
            for id in touched {
                if listed.contains(&id) {
                    if ours.grants.get(&id) != tx.roster().grants.get(&id) {
                        tx.resign_below(id)?;
                    }
                    tx.dirty.insert(id);
                }
            }
            report.roster_merged = true;
        }
        // Values the driver could not merge: theirs beside ours.
        for copy in copies {
            let Some(parent) = parent_of.get(&copy.id).copied() else {
                report.left.push(format!(
                    "node {}: no longer in the store; its other value is in git object {}",
                    copy.id, copy.blob
                ));
                continue;
            };
            let value = their_value(self, &repo, &copy)?;
            let taken = taken_names(&tx, parent);
            let name = tx
                .node(&parent)
                .body
                .children
                .iter()
                .find(|e| e.id == copy.id)
                .map(|e| e.name.clone())
                .unwrap_or_default();
            let path = tx.path_of(parent).join(&merge::free_name(&taken, &name));
            tx.set(&path, value.expose_secret())?;
            report.copies.push(path);
        }
        tx.commit()?;
        merge::clear_conflict_copies(self)?;
        Ok(report)
    }

    /// Lists node `id` again in the folder `side` has it in, when no folder
    /// of the merged store lists it (the other side deleted it or its
    /// folder), writing its file back from `side` where it is gone.
    fn restore_entry(
        &self,
        tx: &mut crate::store::tx::Tx,
        repo: &Repository,
        side: &Side,
        id: NodeId,
        listed: &mut BTreeSet<NodeId>,
        parent_of: &mut HashMap<NodeId, NodeId>,
    ) -> Result<()> {
        if listed.contains(&id) {
            return Ok(());
        }
        let Some(placed) = side.nodes.get(&id).cloned() else {
            return Ok(());
        };
        let (Some(parent), Some(key)) = (placed.parent, placed.key.clone()) else {
            return Ok(());
        };
        if !self.node_file(&id).exists() {
            if let Some(bytes) = side.blob(&id) {
                side.open(self, &id, &bytes)?;
                crate::store::journal::write_atomic(&self.node_file(&id), &bytes)?;
                crate::git::stage(repo, &[sides::node_path(&id, self.roster.sesto)])?;
            }
        }
        // The parent may be listed (inside a folder restored before it)
        // without being loaded yet; and listed there, the node needs nothing.
        if !load_listed(tx, parent_of, parent)? {
            return Ok(());
        }
        if tx.node(&parent).body.children.iter().any(|e| e.id == id) {
            listed.insert(id);
            parent_of.insert(id, parent);
            return Ok(());
        }
        let taken = taken_names(tx, parent);
        let name = if taken.contains(&placed.name) {
            merge::free_name(&taken, &placed.name)
        } else {
            placed.name.clone()
        };
        tx.node_mut(parent).body.put_child(Entry {
            name: name.clone(),
            kind: placed.kind,
            id,
            key,
        });
        if placed.kind == Kind::Folder {
            // Loaded, so that what is restored inside it finds it; of its
            // entries, those the other side deleted stay deleted, and those
            // it moved out before deleting the folder stay where it moved
            // them (listed twice, one name would follow the other's writes).
            tx.child(parent, &name)?;
            let gone: Vec<String> = tx
                .node(&id)
                .body
                .children
                .iter()
                .filter(|e| !self.node_file(&e.id).exists() || listed.contains(&e.id))
                .map(|e| e.name.clone())
                .collect();
            for n in gone {
                tx.node_mut(id).body.remove_child(&n);
            }
            for e in &tx.node(&id).body.children {
                listed.insert(e.id);
                parent_of.insert(e.id, id);
            }
        }
        parent_of.insert(id, parent);
        listed.insert(id);
        Ok(())
    }
}

/// Theirs' value of a secret from the blob the driver queued, verified
/// again at its place in the commit it came from.
fn their_value(store: &Store, repo: &Repository, copy: &merge::Queued) -> Result<Value> {
    let bytes = repo.find_blob(copy.blob)?.content().to_vec();
    let commit = repo.find_commit(copy.commit)?;
    let judge = crate::store::trust::Judge::new(&store.work, &store.roster.store)?;
    let side = Side::load(store, repo, &judge, &commit)?;
    side.open(store, &copy.id, &bytes)?
        .body
        .value
        .ok_or_else(|| store.reject(&copy.id, "its other value is not a secret"))
}

/// Loads folder `id`, listed in the merged store (`parent_of` says where),
/// loading the folders above it first where they are not. Returns whether
/// it is loaded.
fn load_listed(
    tx: &mut crate::store::tx::Tx,
    parent_of: &HashMap<NodeId, NodeId>,
    id: NodeId,
) -> Result<bool> {
    if tx.nodes.contains_key(&id) {
        return Ok(true);
    }
    let Some(&parent) = parent_of.get(&id) else {
        return Ok(false);
    };
    if parent == id || !load_listed(tx, parent_of, parent)? {
        return Ok(false);
    }
    let name = tx
        .node(&parent)
        .body
        .children
        .iter()
        .find(|e| e.id == id && e.kind == Kind::Folder)
        .map(|e| e.name.clone());
    match name {
        Some(name) => Ok(tx.child(parent, &name)?.is_some()),
        None => Ok(false),
    }
}

/// Runs the system `git` in `work`; its output is kept, and quoted on failure.
fn git(work: &Path, args: &[&str]) -> Result<()> {
    crate::git::run(work, args, &[], &[]).map(|_| ())
}

fn git_text(work: &Path, args: &[&str]) -> Result<String> {
    crate::git::run(work, args, &[], &[])
}
