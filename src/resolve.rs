//! After git: settling what a plain `git merge` or `git rebase` leaves in
//! `.sesto/` (delete/modify conflicts, values kept beside each other), the
//! `sync` loop over the system `git`, and registering the merge driver.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use git2::{Commit, Oid, Repository};

use crate::error::{Error, Result};
use crate::merge::{self, Merge};
use crate::node::{Entry, Kind, NodeId, Value};
use crate::sides::{self, Side};
use crate::store::{SPath, Store};

/// What [`Store::resolve`] did.
#[derive(Debug, Default, Clone)]
pub struct Resolved {
    /// Nodes one side changed and the other deleted: the change was kept.
    pub kept: Vec<String>,
    /// Secrets both sides changed: theirs kept beside ours under these paths.
    pub copies: Vec<SPath>,
    /// What could not be settled automatically, with what to run.
    pub left: Vec<String>,
    /// Whether both sides' roster changes were merged (and signed by you).
    pub roster_merged: bool,
    /// Folder entries settled after a merge: given the key of the node file
    /// the merge kept, or their file put back (or, with none, removed).
    pub rekeyed: usize,
}

/// How git should call this executable: `sesto` when that is what `PATH`
/// finds (so an upgrade that moves the binary keeps working), else its
/// absolute path.
fn driver_program() -> Result<String> {
    let exe = std::env::current_exe().map_err(Error::io("cannot find", "the sesto executable"))?;
    let real = std::fs::canonicalize(&exe).unwrap_or(exe.clone());
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("sesto"))
            .find(|p| p.is_file())
    });
    match on_path {
        Some(p) if std::fs::canonicalize(&p).ok().as_ref() == Some(&real) => Ok("sesto".into()),
        _ => Ok(exe.to_string_lossy().into_owned()),
    }
}

/// Registers the merge driver when the clone has none. Returns whether it
/// did.
pub fn ensure_merge_driver(work: &Path) -> Result<bool> {
    let repo = crate::git::open(work)?;
    let config = repo.config()?;
    if config.get_string("merge.sesto.driver").is_ok() {
        return Ok(false);
    }
    setup_git(work, false)?;
    Ok(true)
}

/// Registers sesto's merge driver (and, with `diff`, its textconv) in the
/// repository's `.git/config`, pointing at this executable.
pub fn setup_git(work: &Path, diff: bool) -> Result<()> {
    let repo = crate::git::open(work)?;
    let exe = driver_program()?;
    let quoted = format!("'{}'", exe.replace('\'', "'\\''"));
    let mut config = repo.config()?.open_level(git2::ConfigLevel::Local)?;
    config.set_str("merge.sesto.name", "sesto: merge encrypted nodes")?;
    config.set_str(
        "merge.sesto.driver",
        &format!("{quoted} merge-driver %O %A %B %P"),
    )?;
    if diff {
        config.set_str("diff.sesto.textconv", &format!("{quoted} textconv"))?;
        config.set_bool("diff.sesto.cachetextconv", false)?;
    }
    // A clone of a repository of secrets alone commits each change, as the
    // clone it came from does (`sesto init` chose that there).
    let only_secrets = {
        let index = repo.index()?;
        !index.is_empty()
            && index
                .iter()
                .all(|e| String::from_utf8_lossy(&e.path).starts_with(".sesto/"))
    };
    if only_secrets {
        if config.get_bool("sesto.commit").is_err() {
            config.set_bool("sesto.commit", true)?;
        }
        // git's settings for an index of many files (as `feature.manyFiles`):
        // a store of 100,000 secrets writes its index in a fraction of the time.
        if config.get_bool("index.skipHash").is_err() {
            config.set_bool("index.skipHash", true)?;
        }
        if config.get_i32("index.version").is_err() {
            config.set_i32("index.version", 4)?;
        }
    }
    Ok(())
}

/// Whether git left the roster conflicted (both sides changed it).
fn roster_conflicted(repo: &Repository) -> Result<bool> {
    let index = repo.index()?;
    if !index.has_conflicts() {
        return Ok(false);
    }
    for c in index.conflicts()?.flatten() {
        let path = c
            .our
            .as_ref()
            .or(c.their.as_ref())
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .unwrap_or_default();
        if path == ".sesto/roster.yaml" || path == ".sesto/roster.sig" {
            return Ok(true);
        }
    }
    Ok(false)
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
        crate::journal::write_atomic(&work.join(name), blob.content())?;
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
    let index = repo.index()?;
    let mut out = Vec::new();
    if !index.has_conflicts() {
        return Ok(out);
    }
    for c in index.conflicts()?.flatten() {
        let path = c
            .our
            .as_ref()
            .or(c.their.as_ref())
            .or(c.ancestor.as_ref())
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .unwrap_or_default();
        if path.starts_with(".sesto/nodes/") {
            out.push(Conflict {
                path,
                base: c.ancestor.map(|e| e.id),
                ours: c.our.map(|e| e.id),
                theirs: c.their.map(|e| e.id),
            });
        }
    }
    Ok(out)
}

impl Store {
    /// Settles `.sesto/` after a plain git merge or rebase, or a merge the
    /// driver could not finish: node files both sides changed are merged
    /// here by the driver's rules; a node changed on one side and deleted on
    /// the other keeps the change (its folder entry is put back); values
    /// that do not merge are kept beside ours as `name (conflict N)`; both
    /// sides' roster changes are merged (by an admin). Every file taken from
    /// a side verifies at its place in that side's commit. Stages the result.
    pub fn resolve(&self) -> Result<Resolved> {
        let mut report = Resolved::default();
        let repo = crate::git::open(&self.work)?;
        let conflicts = node_conflicts(&repo)?;
        let roster_conflict = roster_conflicted(&repo)?;
        let mut copies = merge::queued_conflict_copies(self);
        if conflicts.is_empty() && !roster_conflict {
            // A merge git finished (the driver may have queued values to
            // keep beside ours, written below).
            report.rekeyed = self.settle_merged_keys(&repo)?;
            if copies.is_empty() {
                return Ok(report);
            }
        }
        let head = repo.head()?.peel_to_commit()?;
        let their_commit = if conflicts.is_empty() && !roster_conflict {
            None
        } else {
            Some(sides::their_commit(&repo, None).ok_or_else(|| {
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
                        crate::journal::write_atomic(&self.work.join(&c.path), &bytes)?;
                        if c.ours.is_none() || c.theirs.is_none() {
                            report.kept.push(c.path.clone());
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
                    "you cannot read every node this merge changed; nothing was pushed: an admin \
                     ({}) can finish this merge, or keep theirs with `git merge --abort` and \
                     `git reset --hard @{{u}}`",
                    self.roster.admins().join(", ")
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
        // A member's own folder that the other side removed (gone, or kept
        // here from a delete/modify conflict) cannot be listed again by them:
        // it is listed in a folder they cannot write.
        if !self.is_admin() {
            let me = self.me.clone().unwrap_or_default();
            for (id, grants) in &self.roster.grants {
                let removed = !self.node_file(id).exists() || kept.iter().any(|(k, _)| k == id);
                if grants.contains_key(&me) && removed {
                    report.left.push(format!(
                        "the other side removed shared folder {id}, and you changed what is \
                         inside it; nothing was pushed: an admin ({}) can finish this merge, \
                         or keep theirs with `git merge --abort` and `git reset --hard @{{u}}`",
                        self.roster.admins().join(", ")
                    ));
                }
            }
            if !report.left.is_empty() {
                return Ok(report);
            }
        }
        let mut tx = self.transaction()?;
        if let Some(m) = &merge {
            report.rekeyed = settle_keys(&mut tx, m)?;
        }
        let mut listed: BTreeSet<NodeId> = BTreeSet::new();
        let mut parent_of: HashMap<NodeId, NodeId> = HashMap::new();
        for top in tx.top_ids() {
            listed.insert(top);
            let folders = tx.load_subtree(top, true)?;
            for folder in std::iter::once(top).chain(folders) {
                for e in &tx.node(&folder).body.children {
                    listed.insert(e.id);
                    parent_of.insert(e.id, folder);
                }
            }
        }
        // Put kept nodes back where their side had them, ancestors first.
        if let Some(m) = &merge {
            for (id, from_theirs) in &kept {
                let side = if *from_theirs { &m.theirs } else { &m.ours };
                let Some(placed) = side.nodes.get(id) else {
                    continue;
                };
                for ancestor in placed.chain.clone() {
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
        if !kept.is_empty() {
            tx.prune_dangling(&mut |_| false)?;
        }
        // What was kept or restored from a side that had not rotated.
        if let Some(m) = &merge {
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
            let taken: BTreeSet<String> = tx
                .node(&parent)
                .body
                .children
                .iter()
                .map(|e| e.name.clone())
                .collect();
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

    /// After a merge or rebase git finished alone (nothing under way):
    /// folder entries put right where git took a folder from one side and a
    /// node it lists, re-encrypted, from the other. Returns how many;
    /// nothing when the two sides cannot be told or read.
    fn settle_merged_keys(&self, repo: &Repository) -> Result<usize> {
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
        let fixed = settle_keys(&mut tx, &m)? + rekey_past_rotations(&mut tx, &m)?;
        // An entry whose file git deleted (a merge kept the entry, say for
        // a change to the folder): its file comes back from the side that
        // has it, verified there; without one, the entry goes.
        let mut restored = Vec::new();
        let pruned = tx.prune_dangling(&mut |id| {
            for side in [&m.ours, &m.theirs] {
                if let Some(bytes) = side.blob(id) {
                    if side.open(self, id, &bytes).is_ok()
                        && crate::journal::write_atomic(&self.node_file(id), &bytes).is_ok()
                    {
                        restored.push(sides::node_path(id));
                        return true;
                    }
                }
            }
            false
        })?;
        crate::git::stage(repo, &restored)?;
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

    /// Lists node `id` again in the folder `side` has it in, when no folder
    /// of the merged store lists it (the other side deleted it or its
    /// folder), writing its file back from `side` where it is gone.
    fn restore_entry(
        &self,
        tx: &mut crate::tx::Tx,
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
                crate::journal::write_atomic(&self.node_file(&id), &bytes)?;
                crate::git::stage(repo, &[sides::node_path(&id)])?;
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
        let taken: BTreeSet<String> = tx
            .node(&parent)
            .body
            .children
            .iter()
            .map(|e| e.name.clone())
            .collect();
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
            // entries, those the other side deleted stay deleted.
            tx.child(parent, &name)?;
            let gone: Vec<String> = tx
                .node(&id)
                .body
                .children
                .iter()
                .filter(|e| !self.node_file(&e.id).exists())
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
    /// `git fetch`, merge the upstream with sesto's driver, settle what git
    /// leaves, commit, `git push`; again when the push loses a race.
    /// The store is read again after each merge, so what follows works on
    /// the merged roster and folders, not on what was read before.
    pub fn sync(&mut self, remote_branch: Option<&str>) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let repo = crate::git::open(&self.work)?;
        let upstream = match remote_branch {
            Some(u) => u.to_string(),
            None => git_text(&self.work, &["rev-parse", "--abbrev-ref", "@{upstream}"]).map_err(|_| {
                Error::Value(
                    "this branch has no upstream; push it once with `git push -u origin HEAD`, or pass the remote branch"
                        .into(),
                )
            })?,
        };
        let (remote, branch) = upstream
            .split_once('/')
            .ok_or_else(|| Error::Value(format!("{upstream} is not REMOTE/BRANCH")))?;
        // A merge that git or an earlier sync left half-done is finished first.
        let in_merge = repo.refname_to_id("MERGE_HEAD").is_ok();
        let earlier = self.resolve()?;
        if !earlier.left.is_empty() {
            return Err(Error::Value(format!(
                "the merge under way needs a hand: {}",
                earlier.left.join("; ")
            )));
        }
        if in_merge {
            git(&self.work, &["commit", "--quiet", "--no-edit"])?;
        } else if !earlier.copies.is_empty() || !earlier.kept.is_empty() {
            let status = git_text(&self.work, &["status", "--porcelain", "--", ".sesto"])?;
            if !status.trim().is_empty() {
                git(
                    &self.work,
                    &["commit", "--quiet", "-m", "sesto: settle merge"],
                )?;
            }
        }
        report.copies.extend(earlier.copies);
        let dirty = git_text(&self.work, &["status", "--porcelain", "--", ".sesto"])?;
        if !dirty.trim().is_empty() {
            return Err(Error::Value(
                "commit the changes in .sesto/ first (git commit), then sync".into(),
            ));
        }
        for attempt in 1..=SYNC_ATTEMPTS {
            report.attempts = attempt;
            git(&self.work, &["fetch", "--quiet", remote, branch])?;
            let theirs = repo.refname_to_id(&format!("refs/remotes/{remote}/{branch}"));
            if let Ok(theirs) = theirs {
                let head = repo.head()?.peel_to_commit()?.id();
                if theirs != head && !repo.graph_descendant_of(head, theirs)? {
                    self.check_incoming(&repo, head, theirs)?;
                }
                if repo.graph_descendant_of(theirs, head)? {
                    git(&self.work, &["merge", "--quiet", "--ff-only", &upstream])?;
                    self.reload()?;
                } else if theirs != head && !repo.graph_descendant_of(head, theirs)? {
                    // The driver is told theirs' commit rather than searching for it.
                    let theirs = theirs.to_string();
                    let hint = [("SESTO_MERGE_THEIRS", theirs.as_str())];
                    let merged = crate::git::run(
                        &self.work,
                        &["merge", "--quiet", "--no-edit", &upstream],
                        &[],
                        &hint,
                    );
                    self.reload()?;
                    let resolved = self.resolve()?;
                    if !resolved.left.is_empty() {
                        return Err(Error::Value(format!(
                            "the merge needs a hand: {}",
                            resolved.left.join("; ")
                        )));
                    }
                    if merged.is_err() {
                        git(&self.work, &["commit", "--quiet", "--no-edit"])?;
                    } else if !resolved.copies.is_empty()
                        || !resolved.kept.is_empty()
                        || resolved.rekeyed > 0
                    {
                        // resolve staged (and, with sesto.commit, committed) its changes.
                        let status =
                            git_text(&self.work, &["status", "--porcelain", "--", ".sesto"])?;
                        if !status.trim().is_empty() {
                            git(
                                &self.work,
                                &["commit", "--quiet", "-m", "sesto: settle merge"],
                            )?;
                        }
                    }
                    report.merged = true;
                    report.copies.extend(resolved.copies);
                }
            }
            match git(
                &self.work,
                &["push", "--quiet", remote, &format!("HEAD:{branch}")],
            ) {
                Ok(()) => return Ok(report),
                Err(e) if attempt < SYNC_ATTEMPTS => {
                    report.retries.push(e.to_string());
                    // Clones racing for the remote back off exponentially, each
                    // by a random share, so that one of them wins each round.
                    use rand::Rng;
                    let cap = (50u64 << attempt.min(6)).min(3000);
                    let wait = rand::thread_rng().gen_range(0..=cap);
                    std::thread::sleep(std::time::Duration::from_millis(wait));
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }
}

/// How often `sync` fetches, merges and pushes before giving up.
const SYNC_ATTEMPTS: u32 = 50;

/// What [`Store::sync`] did.
#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    /// Fetch–merge–push rounds.
    pub attempts: u32,
    /// Whether a merge was made.
    pub merged: bool,
    /// Values kept beside each other.
    pub copies: Vec<SPath>,
    /// Why earlier pushes failed.
    pub retries: Vec<String>,
}

/// Theirs' value of a secret from the blob the driver queued, verified
/// again at its place in the commit it came from.
fn their_value(store: &Store, repo: &Repository, copy: &merge::Queued) -> Result<Value> {
    let bytes = repo.find_blob(copy.blob)?.content().to_vec();
    let commit = repo.find_commit(copy.commit)?;
    let judge = crate::trust::Judge::new(&store.work, &store.roster.store)?;
    let side = Side::load(store, repo, &judge, &commit)?;
    side.open(store, &copy.id, &bytes)?
        .body
        .value
        .ok_or_else(|| store.reject(&copy.id, "its other value is not a secret"))
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

/// Runs the system `git` in `work`; its output is kept, and quoted on failure.
/// [`crate::tx::Tx::settle_keys`] for a merge: nodes whose files differ
/// between the sides, with the keys each side's verified folders give them.
fn settle_keys(tx: &mut crate::tx::Tx, m: &Merge) -> Result<usize> {
    tx.settle_keys(&|id| m.ours.blob_id(id) != m.theirs.blob_id(id), &|id| {
        [m.ours.nodes.get(id), m.theirs.nodes.get(id)]
            .into_iter()
            .flatten()
            .filter_map(|p| p.key.clone())
            .collect()
    })
}

/// Loads folder `id`, listed in the merged store (`parent_of` says where),
/// loading the folders above it first where they are not. Returns whether
/// it is loaded.
fn load_listed(
    tx: &mut crate::tx::Tx,
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
fn rekey_past_rotations(tx: &mut crate::tx::Tx, m: &Merge) -> Result<usize> {
    // (roster, the keys its commit gives each node) of the base and sides.
    let mut views: Vec<(&crate::node::Roster, &Side)> = vec![(&m.ours.roster, &m.ours)];
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

fn git(work: &Path, args: &[&str]) -> Result<()> {
    crate::git::run(work, args, &[], &[]).map(|_| ())
}

fn git_text(work: &Path, args: &[&str]) -> Result<String> {
    crate::git::run(work, args, &[], &[])
}
