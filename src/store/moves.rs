//! How `HEAD` moved since this clone last checked it: not at all, forward
//! (a pull), or elsewhere (the user's own checkout, reset or rebase).
//!
//! Read from git's files alone where it did not move, so that every command
//! can ask. Trust pins and the rollback check both depend on the answer.

use std::path::Path;

use git2::{Oid, Repository};

/// The file in `.git/sesto/` that names the last commit checked.
pub(crate) const CHECKED: &str = "checked";

/// The commit `HEAD` points at, read from git's files alone (no repository
/// opened): a loose ref or `packed-refs`.
pub(crate) fn head_commit(git_dir: &Path) -> Option<String> {
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

/// After sesto's own commit `made` on `parent`: a clone that had checked
/// `parent` has checked `made` too.
pub(crate) fn advance(state: &Path, parent: Option<Oid>, made: Oid) {
    let file = state.join(CHECKED);
    let checked = std::fs::read_to_string(&file).unwrap_or_default();
    if parent.is_some_and(|p| checked.trim() == p.to_string()) {
        let _ = crate::store::journal::write_cache(&file, format!("{made}\n").as_bytes());
    }
}
