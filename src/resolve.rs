//! After git: settling what a plain `git merge` or `git rebase` leaves in
//! `.sesto/` (delete/modify conflicts, values kept beside each other), the
//! `sync` loop over the system `git`, and registering the merge driver.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::merge::{self, TreeIndex};
use crate::node::{Entry, Kind, NodeId, Value};
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
}

/// Registers sesto's merge driver (and, with `diff`, its textconv) in the
/// repository's `.git/config`, pointing at this executable.
pub fn setup_git(work: &Path, diff: bool) -> Result<()> {
    let repo = crate::git::open(work)?;
    let exe = std::env::current_exe()
        .map_err(Error::io("cannot find", "the sesto executable"))?
        .to_string_lossy()
        .into_owned();
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

/// The commit of the side git is merging in, while a merge, rebase or
/// cherry-pick is stopped.
fn their_head(repo: &Repository) -> Option<Oid> {
    ["MERGE_HEAD", "REBASE_HEAD", "CHERRY_PICK_HEAD"]
        .iter()
        .find_map(|r| repo.refname_to_id(r).ok())
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

impl Store {
    /// Settles `.sesto/` after a plain git merge or rebase: a node changed on
    /// one side and deleted on the other keeps the change (its folder entry
    /// is put back), and values the merge driver could not merge are kept
    /// beside ours as `name (conflict N)`. Stages the result.
    pub fn resolve(&self) -> Result<Resolved> {
        let mut report = Resolved::default();
        let repo = crate::git::open(&self.work)?;
        let merged_roster = if roster_conflicted(&repo)? {
            restore_our_roster(&self.work)?;
            let head = repo.head()?.peel_to_commit()?.id();
            let theirs = their_head(&repo).ok_or_else(|| {
                Error::Roster(
                    "the roster is conflicted but no merge or rebase is in progress".into(),
                )
            })?;
            let base = repo.merge_base(head, theirs)?;
            let side = |c| crate::roster_merge::Side::at(&repo, c);
            let merged =
                crate::roster_merge::merge(&self.work, &side(base)?, &side(head)?, &side(theirs)?)?;
            if !self.is_admin() || !merged.is_admin(self.me.as_deref().unwrap_or_default()) {
                return Err(Error::Denied(format!(
                    "both sides changed the roster; an admin ({}) runs `sesto resolve` to merge and sign it",
                    self.roster.admins().join(", ")
                )));
            }
            Some(merged)
        } else {
            None
        };
        let index = repo.index()?;
        let mut kept: Vec<(NodeId, Oid)> = Vec::new(); // node, commit of the side that kept it
        let head = repo.head().ok().and_then(|h| h.target());
        let theirs = their_head(&repo);
        let mut conflicted: BTreeSet<String> = BTreeSet::new();
        if index.has_conflicts() {
            for c in index.conflicts()?.flatten() {
                let path = c
                    .our
                    .as_ref()
                    .or(c.their.as_ref())
                    .or(c.ancestor.as_ref())
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .unwrap_or_default();
                if !path.starts_with(".sesto/nodes/") {
                    continue;
                }
                conflicted.insert(path.clone());
                let id = path
                    .strip_prefix(".sesto/nodes/")
                    .and_then(|p| p.split('/').nth(1))
                    .and_then(|f| f.strip_suffix(".age"))
                    .and_then(|i| i.parse::<NodeId>().ok());
                match (id, &c.our, &c.their) {
                    (Some(id), Some(e), None) | (Some(id), None, Some(e)) => {
                        let side = if c.our.is_some() { head } else { theirs };
                        let blob = repo.find_blob(e.id)?;
                        crate::journal::write_atomic(&self.work.join(&path), blob.content())?;
                        if let Some(side) = side {
                            kept.push((id, side));
                        }
                        report.kept.push(path);
                    }
                    _ => report.left.push(format!(
                        "{path}: both sides changed it and git did not merge it; run `sesto setup-git`, \
                         then `git checkout -m -- {path}` to merge it again"
                    )),
                }
            }
        }
        if !report.left.is_empty() {
            return Ok(report);
        }
        // Stage what was kept; conflicts in the index are settled by adding.
        crate::git::stage(&repo, &report.kept)?;
        let copies = merge::queued_conflict_copies(self);
        if kept.is_empty() && copies.is_empty() && merged_roster.is_none() {
            return Ok(report);
        }
        // Put kept nodes back where their side had them, ancestors first.
        let mut restore: Vec<(NodeId, Oid)> = Vec::new();
        let mut sides: HashMap<Oid, TreeIndex> = HashMap::new();
        for (id, side) in &kept {
            if !sides.contains_key(side) {
                let commit = repo.find_commit(*side)?;
                sides.insert(*side, TreeIndex::of(self, &repo, &commit)?);
            }
            let index = &sides[side];
            if let Some(placed) = index.nodes.get(id) {
                for ancestor in &placed.chain {
                    restore.push((*ancestor, *side));
                }
            }
        }
        let mut tx = self.transaction()?;
        let root = self.roster.root;
        let mut listed: BTreeSet<NodeId> = BTreeSet::from([root]);
        let mut parent_of: HashMap<NodeId, NodeId> = HashMap::new();
        let folders = tx.load_subtree(root, true)?;
        for folder in std::iter::once(root).chain(folders) {
            for e in &tx.node(&folder).body.children {
                listed.insert(e.id);
                parent_of.insert(e.id, folder);
            }
        }
        for (id, side) in restore {
            if listed.contains(&id) {
                continue;
            }
            let index = &sides[&side];
            let placed = index.nodes[&id].clone();
            let Some(parent) = placed.parent else {
                continue;
            };
            if !self.node_file(&id).exists() {
                if let Some(bytes) = index.blob(&id) {
                    crate::journal::write_atomic(&self.node_file(&id), &bytes)?;
                    crate::git::stage(&repo, &[merge::node_path(&id)])?;
                }
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
                key: placed.key.clone().expect("a child has a key"),
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
                touched.insert(root);
            }
            tx.roster = Some(merged);
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
        for (id, blob) in copies {
            let Some(parent) = parent_of.get(&id).copied() else {
                report.left.push(format!(
                    "node {id}: no longer in the store; its other value is in git object {blob}"
                ));
                continue;
            };
            let path = merge::node_path(&id);
            let value = their_value(self, &repo, &id, &path, blob)?;
            let name = tx
                .node(&parent)
                .body
                .children
                .iter()
                .find(|e| e.id == id)
                .map(|e| e.name.clone())
                .unwrap_or_default();
            let copy = tx.path_of(parent).join(&merge::free_name(
                &tx.node(&parent)
                    .body
                    .children
                    .iter()
                    .map(|e| e.name.clone())
                    .collect(),
                &name,
            ));
            tx.set(&copy, value.expose_secret())?;
            report.copies.push(copy);
        }
        tx.commit()?;
        merge::clear_conflict_copies(self)?;
        Ok(report)
    }

    /// `git fetch`, merge the upstream with sesto's driver, settle what git
    /// leaves, commit, `git push`; again when the push loses a race.
    pub fn sync(&self, remote_branch: Option<&str>) -> Result<SyncReport> {
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
                if repo.graph_descendant_of(theirs, head)? {
                    git(&self.work, &["merge", "--quiet", "--ff-only", &upstream])?;
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
                    let resolved = self.resolve()?;
                    if !resolved.left.is_empty() {
                        return Err(Error::Value(format!(
                            "the merge needs a hand: {}",
                            resolved.left.join("; ")
                        )));
                    }
                    if merged.is_err() {
                        git(&self.work, &["commit", "--quiet", "--no-edit"])?;
                    } else if !resolved.copies.is_empty() || !resolved.kept.is_empty() {
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

/// Theirs' value of a secret from the blob the driver queued.
fn their_value(
    store: &Store,
    repo: &Repository,
    id: &NodeId,
    path: &str,
    blob: Oid,
) -> Result<Value> {
    let bytes = repo.find_blob(blob)?.content().to_vec();
    let mut keys = Vec::new();
    if let Some(commit) = merge::commit_holding(repo, path, blob) {
        let index = TreeIndex::of(store, repo, &commit)?;
        if let Some(placed) = index.nodes.get(id) {
            keys.push((placed.key.clone(), placed.chain.clone()));
        }
    }
    for (key, chain) in keys {
        if let Ok(node) = store.open_node(id, &bytes, key.as_ref(), &chain) {
            if let Some(v) = node.body.value {
                return Ok(v);
            }
        }
    }
    Err(store.reject(
        id,
        format!("its other value (git object {blob}) cannot be opened"),
    ))
}

/// Runs the system `git` in `work`; its output is kept, and quoted on failure.
fn git(work: &Path, args: &[&str]) -> Result<()> {
    crate::git::run(work, args, &[], &[]).map(|_| ())
}

fn git_text(work: &Path, args: &[&str]) -> Result<String> {
    crate::git::run(work, args, &[], &[])
}
