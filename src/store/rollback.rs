//! Node rollback detection: no commit may take a node file back.
//!
//! Anyone who can push can put back an older node file, which is still
//! validly signed. Every write raises a node's `version`, so each commit
//! must leave every file it changes at a higher version than its parent had.
//! The check runs once per new commit, not on every read: the clone records
//! in `.git/sesto/checked` the commit it last checked, and when `HEAD` has
//! moved, each commit `HEAD` has that one has not (a pull, a merge, a
//! rebase onto the remote) is compared with its parents, for the node files
//! it changed only. A file that went down in any of them is refused unless
//! the tip holds the newest file met again (an admin put it back): judging
//! each commit means a replay cannot hide behind the newer version it
//! undoes, nor behind a write someone built on top of it. `sync` runs the same check on
//! the remote's commits before it merges them. A read whose `HEAD` has not
//! moved costs three small file reads.
//!
//! `HEAD` detached behind a branch reads history and is not checked. A
//! fresh clone has seen nothing: `sesto verify --history` checks the whole
//! branch.

use std::collections::HashMap;
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::format::node::NodeId;
use crate::git::sides::{self, Side};
use crate::store::moves::{head_commit, CHECKED};
use crate::store::trust::Judge;
use crate::store::Store;

/// The nodes whose files changed (not added or removed) from `old` to `new`:
/// only the fan-out directories whose tree ids differ are looked into, so a
/// commit that changed one file costs two small tree reads, not a diff of
/// the store.
fn modified_nodes(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<NodeId>> {
    let nodes = |commit: Oid| -> Result<Option<git2::Tree>> {
        let tree = repo.find_commit(commit)?.tree()?;
        Ok(match tree.get_path(Path::new(".sesto/nodes")) {
            Ok(e) => Some(repo.find_tree(e.id())?),
            Err(_) => None,
        })
    };
    let (Some(old_tree), Some(new_tree)) = (nodes(old)?, nodes(new)?) else {
        return Ok(Vec::new());
    };
    if old_tree.id() == new_tree.id() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for fan in new_tree.iter() {
        let Some(name) = fan.name() else { continue };
        let Some(before) = old_tree.get_name(name) else {
            continue;
        };
        if before.id() == fan.id() {
            continue;
        }
        let (Ok(before), Ok(after)) = (repo.find_tree(before.id()), repo.find_tree(fan.id()))
        else {
            continue;
        };
        for file in after.iter() {
            let Some(file_name) = file.name() else {
                continue;
            };
            if before
                .get_name(file_name)
                .is_some_and(|b| b.id() != file.id())
            {
                if let Ok(id) =
                    crate::git::merge::node_of(&format!(".sesto/nodes/{name}/{file_name}"))
                {
                    out.push(id);
                }
            }
        }
    }
    Ok(out)
}

/// Most commits walked per check: a check after a long absence (or a
/// checkout of a branch that went far) looks at the newest ones.
const MAX_WALK: usize = 500;

/// One node file a commit changed against one of its parents.
struct Step {
    id: NodeId,
    parent: Oid,
    commit: Oid,
}

/// Every node file changed by a commit reachable from `new` but not from
/// `old`, against each of that commit's parents. Each commit is judged on
/// its own, so a newer version and a replay of an older one in between
/// cannot cancel out.
fn steps(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<Step>> {
    let mut walk = repo.revwalk()?;
    walk.push(new)?;
    if repo.find_commit(old).is_ok() {
        walk.hide(old)?;
    }
    let mut out = Vec::new();
    for commit in walk.take(MAX_WALK) {
        let commit = commit?;
        for parent in repo.find_commit(commit)?.parent_ids() {
            for id in modified_nodes(repo, parent, commit)? {
                out.push(Step { id, parent, commit });
            }
        }
    }
    Ok(out)
}

impl Store {
    /// Checks the commits `HEAD` has that the commit this clone last checked
    /// has not: a node file whose version goes down in any of them is
    /// refused. Records `HEAD` as checked when all is well.
    pub(crate) fn check_rollback(&self) -> Result<()> {
        if self.trust == crate::store::trust::TrustMode::Skip
            || self.head != crate::git::HeadState::Branch
        {
            return Ok(());
        }
        let Some(git_dir) = self.state.parent() else {
            return Ok(());
        };
        let Some(head) = head_commit(git_dir) else {
            return Ok(());
        };
        let file = self.state.join(CHECKED);
        let checked = std::fs::read_to_string(&file).unwrap_or_default();
        let checked = checked.trim();
        if checked == head {
            return Ok(());
        }
        let checking = matches!(
            self.trust,
            crate::store::trust::TrustMode::Check | crate::store::trust::TrustMode::Peek
        );
        if let (false, true, Ok(old), Ok(new)) = (
            checked.is_empty(),
            checking,
            Oid::from_str(checked),
            Oid::from_str(&head),
        ) {
            let repo = crate::git::open(&self.work)?;
            let steps = steps(&repo, old, new)?;
            if !steps.is_empty() {
                self.compare_steps(&repo, new, &steps)?;
            }
        }
        if self.trust == crate::store::trust::TrustMode::Peek {
            return Ok(());
        }
        self.record_checked(&head)
    }

    /// Records `commit` as checked (also after sesto's own commits, which
    /// need no check).
    pub(crate) fn record_checked(&self, commit: &str) -> Result<()> {
        std::fs::create_dir_all(&self.state).map_err(Error::io("cannot create", &self.state))?;
        crate::store::journal::write_cache(
            &self.state.join(CHECKED),
            format!("{commit}\n").as_bytes(),
        )
    }

    /// Before `sync` takes in `theirs`: no commit it brings may take a node
    /// file back in version. Refusing here keeps the clone where it was,
    /// rather than at a commit every later command refuses.
    pub(crate) fn check_incoming(&self, repo: &Repository, head: Oid, theirs: Oid) -> Result<()> {
        if !matches!(
            self.trust,
            crate::store::trust::TrustMode::Check | crate::store::trust::TrustMode::Peek
        ) {
            return Ok(());
        }
        let steps = steps(repo, head, theirs)?;
        if steps.is_empty() {
            return Ok(());
        }
        self.compare_steps(repo, theirs, &steps)
    }

    /// Opens each step's node before and after and refuses a version that
    /// went down. Keys and places come from `tip` read as a side; a file
    /// they do not open (a rotation since) is read in its own commit. Nodes
    /// this member cannot read are left alone.
    fn compare_steps(&self, repo: &Repository, tip: Oid, steps: &[Step]) -> Result<()> {
        let judge = Judge::new(&self.work, &self.roster.store)?;
        let wanted: std::collections::HashSet<NodeId> = steps.iter().map(|s| s.id).collect();
        let tip_side = Side::load_placing(self, repo, &judge, &repo.find_commit(tip)?, &wanted)?;
        let mut sides: HashMap<Oid, Option<Side>> = HashMap::new();
        // Per node: the drop from the highest version (commit, from, to,
        // the file it dropped from).
        #[allow(clippy::type_complexity)]
        let mut drops: HashMap<NodeId, (Oid, u64, u64, Option<Oid>)> = HashMap::new();
        let blob = |commit: Oid, id: &NodeId| -> Option<Vec<u8>> {
            let tree = repo.find_commit(commit).ok()?.tree().ok()?;
            let entry = tree.get_path(Path::new(&sides::node_path(id))).ok()?;
            Some(repo.find_blob(entry.id()).ok()?.content().to_vec())
        };
        for step in steps {
            let Some(placed) = tip_side.nodes.get(&step.id) else {
                continue;
            };
            let (Some(before), Some(after)) =
                (blob(step.parent, &step.id), blob(step.commit, &step.id))
            else {
                continue;
            };
            let mut version = |commit: Oid, bytes: &[u8]| -> Option<u64> {
                if let Ok(n) = self.open_node_under(
                    &tip_side.rules(),
                    &step.id,
                    bytes,
                    placed.key.as_ref(),
                    &placed.chain,
                ) {
                    return Some(n.body.version);
                }
                let side = sides.entry(commit).or_insert_with(|| {
                    repo.find_commit(commit)
                        .ok()
                        .and_then(|c| Side::load(self, repo, &judge, &c).ok())
                });
                side.as_ref()?
                    .open(self, &step.id, bytes)
                    .ok()
                    .map(|n| n.body.version)
            };
            let (Some(was), Some(now)) =
                (version(step.parent, &before), version(step.commit, &after))
            else {
                continue;
            };
            if now < was {
                // Of several drops, the one from the highest version counts.
                let drop = drops
                    .entry(step.id)
                    .or_insert((step.commit, was, now, None));
                if was >= drop.1 {
                    *drop = (
                        step.commit,
                        was,
                        now,
                        Some(Oid::hash_object(git2::ObjectType::Blob, &before)?),
                    );
                }
            }
        }
        // A drop is forgiven where the tip holds the file from before it
        // again (an admin put it back) or a newer version than that;
        // otherwise the tip is older than what was written, whatever was
        // built on the replay since.
        for (id, (commit, was, now, dropped_from)) in drops {
            let Some(bytes) = tip_side.blob(&id) else {
                continue; // removed since
            };
            if Some(Oid::hash_object(git2::ObjectType::Blob, &bytes)?) == dropped_from {
                continue;
            }
            let tip_version = tip_side
                .open(self, &id, &bytes)
                .map(|n| n.body.version)
                .ok();
            if tip_version.is_some_and(|t| t > was) {
                continue;
            }
            // The tip's file counts against the drop only when it came in on
            // the drop's line: the replay itself, or a write built on it. A
            // file from a line the drop never touched (a concurrent write a
            // merge kept) does not.
            let tip_blob = Oid::hash_object(git2::ObjectType::Blob, &bytes)?;
            if !self.came_after(repo, steps, &id, tip_blob, commit) {
                continue;
            }
            let c = commit.to_string();
            return Err(self.reject(
                &id,
                format!(
                    "it went back from version {was} to version {now} in commit {} (an older \
                     file put back); see `git show {} -- {}` and revert that commit; if you \
                     put it back yourself, `sesto trust --accept` takes the store as it is",
                    &c[..12],
                    &c[..12],
                    sides::node_path(&id),
                ),
            ));
        }
        Ok(())
    }

    /// Whether the commit that brought `blob` in as `id`'s file (among the
    /// steps; in a merge, the parent it came from, not the merge) is `drop`
    /// or descends from it.
    fn came_after(
        &self,
        repo: &Repository,
        steps: &[Step],
        id: &NodeId,
        blob: Oid,
        drop: Oid,
    ) -> bool {
        let path = sides::node_path(id);
        let blob_at = |commit: Oid| -> Option<Oid> {
            let tree = repo.find_commit(commit).ok()?.tree().ok()?;
            tree.get_path(Path::new(&path)).ok().map(|e| e.id())
        };
        steps
            .iter()
            .filter(|s| s.id == *id && blob_at(s.commit) == Some(blob))
            .filter(|s| {
                // Held by another parent of a merge: it came from there.
                repo.find_commit(s.commit).is_ok_and(|c| {
                    !c.parent_ids()
                        .any(|p| p != s.parent && blob_at(p) == Some(blob))
                })
            })
            .any(|s| s.commit == drop || repo.graph_descendant_of(s.commit, drop).unwrap_or(false))
    }
}
