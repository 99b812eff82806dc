//! Staging what a change wrote in git's index, and committing it where
//! `sesto.commit` is set, after sesto's own check of what it commits.

use std::path::Path;

use crate::error::{Error, Result};
use crate::store::journal;

/// Stages `new` paths with any left unstaged by an earlier write, and commits
/// where `sesto.commit` is set; blobs in `known` are in git already. A
/// failure here (another git holding the index lock) does not undo a change
/// already in place: the paths are kept in `.git/sesto/unstaged` for the next
/// sesto command, and a warning returned.
pub(crate) fn stage_pending(
    work: &Path,
    state: &Path,
    new: &[String],
    known: &crate::git::Blobs,
    summary: Option<&str>,
) -> Result<Option<String>> {
    let list = state.join("unstaged");
    let mut paths: Vec<String> = match std::fs::read_to_string(&list) {
        Ok(text) => text
            .lines()
            .filter(|l| l.starts_with(".sesto/"))
            .map(str::to_string)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("cannot read", &list)(e)),
    };
    paths.extend(new.iter().cloned());
    paths.sort();
    paths.dedup();
    if paths.is_empty() {
        return Ok(None);
    }
    let mut staged = false;
    let attempt = (|| -> Result<()> {
        let repo = crate::git::open(work)?;
        // In the middle of a merge or rebase, git makes the commit.
        let commit = crate::git::auto_commit(&repo) && repo.state() == git2::RepositoryState::Clean;
        let staging = crate::git::start_stage(&repo, &paths, known)?;
        // libgit2 runs no hooks: sesto makes its own check of what it would
        // commit, while git writes the index.
        let refused = if commit {
            check_commit(work, &paths, known)
        } else {
            None
        };
        // The commit object is built while git writes the index; HEAD moves
        // only once the index holds the change too.
        let prepared = (commit && refused.is_none()).then(|| {
            crate::git::prepare_commit(
                &repo,
                &paths,
                staging.blobs(),
                &commit_message(summary, paths.len()),
            )
        });
        staging.wait()?;
        staged = true;
        if let Some(why) = refused {
            return Err(Error::Refused {
                path: work.join(&why.0),
                reason: format!(
                    "{} (sesto's check before committing); the commit was not made. \
                     Remove the file (`git rm --cached` keeps a copy) and run `git commit`",
                    why.1
                ),
            });
        }
        let prepared = prepared.transpose()?;
        journal::failpoint("after-stage");
        if let Some(prepared) = prepared {
            let parent = prepared.parent;
            let made = crate::git::finish_commit(&repo, prepared)?;
            journal::failpoint("after-commit");
            // sesto's own commit needs no rollback check.
            crate::store::moves::advance(state, parent, made);
        }
        Ok(())
    })();
    match attempt {
        Ok(()) => {
            journal::remove_if_exists(&list)?;
            Ok(None)
        }
        Err(e) => {
            journal::write_atomic(&list, (paths.join("\n") + "\n").as_bytes())?;
            Ok(Some(if staged && matches!(e, Error::Refused { .. }) {
                format!("the change is saved and staged, but sesto did not commit it: {e}")
            } else if staged {
                format!(
                    "the change is saved and staged but not committed yet ({e}); \
                     the next sesto command commits it, or run `git commit`"
                )
            } else {
                format!(
                    "the change is saved in .sesto/ but not staged in git yet ({e}); \
                     the next sesto command stages it, or run `git add .sesto`"
                )
            }))
        }
    }
}

/// The check sesto makes before a commit of its own (git's pre-commit hook
/// does not run under libgit2): each path is the roster or a node file
/// named as sesto names them, and each node file present opens as an age
/// file. Only an age header is read per file, in parallel; files this
/// process has just encrypted itself (`written`, the blobs of a large change
/// such as a key rotation) are checked by name only, so rewriting a large
/// store's every node stays cheap. Returns the first path refused and why.
fn check_commit(
    work: &Path,
    paths: &[String],
    written: &crate::git::Blobs,
) -> Option<(String, &'static str)> {
    let checked = crate::par::map(paths, |p| {
        if let Some(rel) = p
            .strip_prefix(".sesto/")
            .filter(|_| written.contains_key(p))
        {
            return crate::deploy::scan::check_sesto_file(rel, None).map(rule_reason);
        }
        let file = match std::fs::File::open(work.join(p)) {
            Ok(f) => f,
            Err(_) => return None, // removed: its removal is what gets committed
        };
        let Some(rel) = p.strip_prefix(".sesto/") else {
            return Some("sesto commits nothing outside .sesto/");
        };
        if let Some(rule) = crate::deploy::scan::check_sesto_file(rel, None) {
            return Some(rule_reason(rule));
        }
        if !rel.starts_with("nodes/") {
            return None;
        }
        age::Decryptor::new(std::io::BufReader::new(file))
            .is_err()
            .then(|| rule_reason(crate::deploy::scan::SESTO_NODE))
    });
    paths
        .iter()
        .zip(checked)
        .find_map(|(p, why)| why.map(|w| (p.clone(), w)))
}

fn rule_reason(rule: &str) -> &'static str {
    if rule == crate::deploy::scan::SESTO_NODE {
        "not a well-formed age file"
    } else {
        "not a file sesto writes in .sesto/"
    }
}

fn commit_message(summary: Option<&str>, files: usize) -> String {
    // Names no path: the message is as public as the repository.
    format!(
        "sesto: {} ({files} file{})",
        summary.unwrap_or("update store"),
        if files == 1 { "" } else { "s" }
    )
}
