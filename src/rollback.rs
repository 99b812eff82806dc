//! Node rollback detection for a clone that has seen newer versions.
//!
//! Anyone who can push can put back an older node file, which is still
//! validly signed. Every write raises a node's `version`, so a clone that
//! has seen a version notices when a later commit brings a lower one. The
//! check runs once per new commit, not on every read: the clone records in
//! `.git/sesto/checked` the commit it last checked, and when `HEAD` has moved
//! forward from it, the node files that changed in between (and only those)
//! are decrypted in both commits and their versions compared. A read whose
//! `HEAD` has not moved costs three small file reads.
//!
//! Moves that are not forward (a reset, another branch) are the user's own
//! and simply recorded; `HEAD` detached behind a branch reads history and is
//! not checked. A fresh clone has seen nothing: `sesto verify --history`
//! checks the whole branch.

use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::node::NodeId;
use crate::sides::{self, Side};
use crate::store::Store;
use crate::trust::Judge;

/// The file in `.git/sesto/` that names the last commit checked.
const CHECKED: &str = "checked";

/// The commit `HEAD` points at, read from git's files alone (no repository
/// opened): a loose ref or `packed-refs`.
fn head_commit(git_dir: &Path) -> Option<String> {
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(name) = head.strip_prefix("ref: ") else {
        return Some(head.to_string());
    };
    if name.contains("..") {
        return None;
    }
    if let Ok(text) = std::fs::read_to_string(git_dir.join(name)) {
        return Some(text.trim().to_string());
    }
    // A linked worktree keeps its refs in the common directory.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|_| git_dir.to_path_buf());
    if let Ok(text) = std::fs::read_to_string(common.join(name)) {
        return Some(text.trim().to_string());
    }
    let packed = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (oid, r) = l.split_once(' ')?;
        (r == name).then(|| oid.to_string())
    })
}

/// How `HEAD` moved since the commit this clone last checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Move {
    /// Not at all (or nothing checked yet, or not on a branch).
    None,
    /// Forward, from `from` to `to`: a pull, a merge, a fast-forward.
    Forward { from: String, to: String },
    /// Anywhere else: the user's own checkout, reset or rebase.
    Own,
}

/// How `HEAD` moved since the commit recorded in `<git dir>/sesto/checked`.
/// Opens the repository only when it did move.
pub(crate) fn head_move(git_dir: &Path) -> Move {
    let Some(head) = head_commit(git_dir) else {
        return Move::None;
    };
    let checked = std::fs::read_to_string(git_dir.join("sesto").join(CHECKED)).unwrap_or_default();
    let checked = checked.trim();
    if checked.is_empty() || checked == head {
        return Move::None;
    }
    let forward = (|| {
        let (old, new) = (Oid::from_str(checked).ok()?, Oid::from_str(&head).ok()?);
        let repo = Repository::open(git_dir).ok()?;
        repo.find_commit(old).ok()?;
        repo.graph_descendant_of(new, old).ok()
    })();
    if forward == Some(true) {
        Move::Forward {
            from: checked.to_string(),
            to: head,
        }
    } else {
        Move::Own
    }
}

/// The nodes whose files changed (not added or removed) from `old` to `new`.
fn modified_nodes(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<NodeId>> {
    let old_tree = repo.find_commit(old)?.tree()?;
    let new_tree = repo.find_commit(new)?.tree()?;
    let mut options = git2::DiffOptions::new();
    options.pathspec(".sesto/nodes");
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), Some(&mut options))?;
    Ok(diff
        .deltas()
        .filter(|d| d.status() == git2::Delta::Modified)
        .filter_map(|d| {
            let path = d.new_file().path()?.to_str()?;
            crate::merge::node_of(path).ok()
        })
        .collect())
}

/// After sesto's own commit `made` on `parent`: a clone that had checked
/// `parent` has checked `made` too.
pub(crate) fn advance(state: &Path, parent: Option<Oid>, made: Oid) {
    let file = state.join(CHECKED);
    let checked = std::fs::read_to_string(&file).unwrap_or_default();
    if parent.is_some_and(|p| checked.trim() == p.to_string()) {
        let _ = crate::journal::write_atomic(&file, format!("{made}\n").as_bytes());
    }
}

impl Store {
    /// Checks the node files that changed since the commit this clone last
    /// checked, when `HEAD` moved forward from it: a node whose version went
    /// down is refused. Records `HEAD` as checked when all is well.
    pub(crate) fn check_rollback(&self) -> Result<()> {
        if self.trust == crate::trust::TrustMode::Skip || self.head != crate::git::HeadState::Branch
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
        let forward = (!checked.is_empty() && self.trust == crate::trust::TrustMode::Check)
            .then(|| self.changed_since(checked, &head))
            .transpose()?
            .flatten();
        if let Some((repo, old, new, ids)) = forward {
            self.compare_versions(&repo, old, new, &ids)?;
        }
        self.record_checked(&head)
    }

    /// Records `commit` as checked (also after sesto's own commits, which
    /// need no check).
    pub(crate) fn record_checked(&self, commit: &str) -> Result<()> {
        std::fs::create_dir_all(&self.state).map_err(Error::io("cannot create", &self.state))?;
        crate::journal::write_atomic(&self.state.join(CHECKED), format!("{commit}\n").as_bytes())
    }

    /// When `head` lies ahead of `checked`: the repository, both commits and
    /// the nodes whose files changed between them (added and removed files
    /// aside). `None` for any other move.
    #[allow(clippy::type_complexity)]
    fn changed_since(
        &self,
        checked: &str,
        head: &str,
    ) -> Result<Option<(Repository, Oid, Oid, Vec<NodeId>)>> {
        let (Ok(old), Ok(new)) = (Oid::from_str(checked), Oid::from_str(head)) else {
            return Ok(None);
        };
        let repo = crate::git::open(&self.work)?;
        if repo.find_commit(old).is_err() || !repo.graph_descendant_of(new, old).unwrap_or(false) {
            return Ok(None);
        }
        let ids = modified_nodes(&repo, old, new)?;
        Ok((!ids.is_empty()).then_some((repo, old, new, ids)))
    }

    /// Before `sync` takes in `theirs`: the node files the remote's commits
    /// changed since where the histories met must not go back in version.
    /// Refusing here keeps the clone where it was, rather than stuck at a
    /// commit every later command refuses.
    pub(crate) fn check_incoming(&self, repo: &Repository, head: Oid, theirs: Oid) -> Result<()> {
        if self.trust != crate::trust::TrustMode::Check {
            return Ok(());
        }
        let base = repo.merge_base(head, theirs)?;
        let ids = modified_nodes(repo, base, theirs)?;
        if ids.is_empty() {
            return Ok(());
        }
        self.compare_versions(repo, base, theirs, &ids)
    }

    /// Opens each changed node in both commits and refuses a version that
    /// went down. Nodes this member cannot read in both are left alone.
    fn compare_versions(
        &self,
        repo: &Repository,
        old: Oid,
        new: Oid,
        ids: &[NodeId],
    ) -> Result<()> {
        let judge = Judge::new(&self.work, &self.roster.store)?;
        let new_side = Side::load(self, repo, &judge, &repo.find_commit(new)?)?;
        let mut old_side: Option<Side> = None;
        for id in ids {
            let (Some(placed), Some(bytes)) = (new_side.nodes.get(id), new_side.blob(id)) else {
                continue;
            };
            let newer = new_side.open(self, id, &bytes)?;
            // Most changes keep the key: the old file opens with the new
            // place's key. A rotation needs the old commit read as well.
            let old_bytes = repo
                .find_commit(old)?
                .tree()?
                .get_path(Path::new(&sides::node_path(id)))
                .ok()
                .and_then(|e| repo.find_blob(e.id()).ok())
                .map(|b| b.content().to_vec());
            let Some(old_bytes) = old_bytes else { continue };
            let before = match self.open_node_under(
                &new_side.rules(),
                id,
                &old_bytes,
                placed.key.as_ref(),
                &placed.chain,
            ) {
                Ok(n) => Some(n),
                Err(_) => {
                    if old_side.is_none() {
                        old_side = Some(Side::load(self, repo, &judge, &repo.find_commit(old)?)?);
                    }
                    old_side
                        .as_ref()
                        .and_then(|s| s.open(self, id, &old_bytes).ok())
                }
            };
            let Some(before) = before else { continue };
            if newer.body.version < before.body.version {
                return Err(self.reject(
                    id,
                    format!(
                        "it went back from version {} to version {} in the commits from {} to {} \
                         (an older file put back); find the commit with `git log {}..{} -- {}` and \
                         revert it; if you put it back yourself, `sesto trust --accept` takes the \
                         store as it is",
                        before.body.version,
                        newer.body.version,
                        &old.to_string()[..12],
                        &new.to_string()[..12],
                        &old.to_string()[..12],
                        &new.to_string()[..12],
                        sides::node_path(id),
                    ),
                ));
            }
        }
        Ok(())
    }
}
