//! git2 plumbing: finding the repository, staging what sesto wrote, committing.
//!
//! Transport (fetch, push) is left to the system `git`, so users' ssh config,
//! agents and credential helpers apply; this module only touches the local
//! repository.

use std::path::{Path, PathBuf};

use git2::{Repository, Signature};

use crate::error::{Error, Result};

/// Finds the git directory of a work tree without opening the repository:
/// `.git` as a directory, or a `.git` file pointing elsewhere (worktrees).
pub fn git_dir(work: &Path) -> Result<PathBuf> {
    let dot_git = work.join(".git");
    let meta =
        std::fs::symlink_metadata(&dot_git).map_err(|_| Error::NotGit(work.to_path_buf()))?;
    if meta.is_dir() {
        return Ok(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).map_err(Error::io("cannot read", &dot_git))?;
    let target = text
        .strip_prefix("gitdir:")
        .map(str::trim)
        .ok_or_else(|| Error::NotGit(work.to_path_buf()))?;
    Ok(work.join(target))
}

/// Opens the repository whose work tree is `work`.
pub fn open(work: &Path) -> Result<Repository> {
    Repository::open(work).map_err(|_| Error::NotGit(work.to_path_buf()))
}

/// Whether sesto should commit its changes (`git config sesto.commit`).
pub fn auto_commit(repo: &Repository) -> bool {
    repo.config()
        .and_then(|c| c.get_bool("sesto.commit"))
        .unwrap_or(false)
}

/// Stages the given work-tree paths: present files are added, missing ones removed.
pub fn stage(repo: &Repository, paths: &[String]) -> Result<()> {
    let work = repo
        .workdir()
        .ok_or_else(|| Error::NotGit(repo.path().to_path_buf()))?
        .to_path_buf();
    let mut index = repo.index()?;
    for p in paths {
        if work.join(p).exists() {
            index.add_path(Path::new(p))?;
        } else if index.get_path(Path::new(p), 0).is_some() {
            index.remove_path(Path::new(p))?;
        }
    }
    index.write()?;
    Ok(())
}

/// Commits the index with a message that names no path. Returns the commit id.
pub fn commit(repo: &Repository, message: &str) -> Result<git2::Oid> {
    let mut index = repo.index()?;
    let tree_id = index.write_tree()?;
    let tree = repo.find_tree(tree_id)?;
    let sig = signature(repo)?;
    let parent = match repo.head() {
        Ok(head) => Some(head.peel_to_commit()?),
        Err(_) => None,
    };
    if let Some(p) = &parent {
        if p.tree_id() == tree_id {
            return Ok(p.id());
        }
    }
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    Ok(repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)?)
}

fn signature(repo: &Repository) -> Result<Signature<'static>> {
    let config = repo.config()?;
    let name = config
        .get_string("user.name")
        .unwrap_or_else(|_| "sesto".into());
    let email = config
        .get_string("user.email")
        .unwrap_or_else(|_| "sesto@localhost".into());
    let when = match std::env::var("GIT_COMMITTER_DATE")
        .ok()
        .and_then(|d| crate::time::parse_rfc3339(&d))
    {
        Some(secs) => git2::Time::new(secs, 0),
        None => return Ok(Signature::now(&name, &email)?),
    };
    Ok(Signature::new(&name, &email, &when)?)
}

/// Whether the repository holds nothing but sesto's files: no commits, nothing
/// staged, and an empty work tree apart from `.git` and `.sesto`.
pub fn is_empty_repo(repo: &Repository) -> bool {
    if repo.head().is_ok() {
        return false;
    }
    if repo.index().map(|i| !i.is_empty()).unwrap_or(true) {
        return false;
    }
    let Some(work) = repo.workdir() else {
        return false;
    };
    match std::fs::read_dir(work) {
        Ok(entries) => entries.flatten().all(|e| {
            let n = e.file_name();
            n == ".git" || n == ".sesto"
        }),
        Err(_) => false,
    }
}
