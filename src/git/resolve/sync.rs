//! `sync`: fetch, merge with the driver, settle, commit, push; again when
//! the push loses a race.

use crate::error::{Error, Result};
use crate::store::{SPath, Store};

use super::{git, git_text};

impl Store {
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
        } else {
            // What resolve settled here (a merge this clone fast-forwarded
            // to, settled further) is sync's to commit, as after its own.
            self.commit_settled(&earlier)?;
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
                    if !repo.graph_descendant_of(theirs, head)? {
                        self.migrate_before_merge(&repo, head, theirs)?;
                    }
                }
                let head = repo.head()?.peel_to_commit()?.id();
                if repo.graph_descendant_of(theirs, head)? {
                    git(&self.work, &["merge", "--quiet", "--ff-only", &upstream])?;
                    self.reload()?;
                } else if theirs != head && !repo.graph_descendant_of(head, theirs)? {
                    // The driver is told theirs' commit rather than searching for it.
                    let theirs = theirs.to_string();
                    let hint = [("SESTO_MERGE_THEIRS", theirs.as_str())];
                    // Across `sesto migrate` git sees every node file renamed;
                    // its directory rename detection would move a file added
                    // under the old layout into some shard of the new one.
                    // `resolve` puts such files in place by their ids.
                    let merged = crate::git::run(
                        &self.work,
                        &[
                            "-c",
                            "merge.directoryRenames=false",
                            "merge",
                            "--quiet",
                            "--no-edit",
                            &upstream,
                        ],
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
                    } else {
                        self.commit_settled(&resolved)?;
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

    /// Before merging a line that moved the store to a newer format while
    /// this one changed the roster in the older one: migrates this side
    /// first (admins change rosters, and may migrate), so that the two
    /// roster changes merge in one format. Where this side left the roster
    /// as the merge base had it, the merge takes theirs and nothing is done.
    fn migrate_before_merge(
        &mut self,
        repo: &git2::Repository,
        head: git2::Oid,
        theirs: git2::Oid,
    ) -> Result<()> {
        let format = crate::git::sides::tree_format(repo, &repo.find_commit(theirs)?.tree()?);
        if format <= self.roster.sesto || !self.is_admin() {
            return Ok(());
        }
        let roster_at = |commit: git2::Oid| {
            repo.find_commit(commit)
                .ok()
                .and_then(|c| c.tree().ok())
                .and_then(|t| t.get_path(std::path::Path::new(".sesto/roster.yaml")).ok())
                .map(|e| e.id())
        };
        let base = repo.merge_base(head, theirs)?;
        if roster_at(base) == roster_at(head) {
            return Ok(());
        }
        self.migrate()?;
        let dirty = git_text(&self.work, &["status", "--porcelain", "--", ".sesto"])?;
        if !dirty.trim().is_empty() {
            git(
                &self.work,
                &[
                    "commit",
                    "--quiet",
                    "-m",
                    "sesto: move the store to format 2 before merging",
                    "--",
                    ".sesto",
                ],
            )?;
        }
        self.reload()
    }

    /// Commits what `resolved` wrote where resolve left it staged (people
    /// commit here, or resolve had nothing to commit with).
    fn commit_settled(&self, resolved: &super::Resolved) -> Result<()> {
        if !resolved.wrote() {
            return Ok(());
        }
        let status = git_text(&self.work, &["status", "--porcelain", "--", ".sesto"])?;
        if !status.trim().is_empty() {
            git(
                &self.work,
                &["commit", "--quiet", "-m", "sesto: settle merge"],
            )?;
        }
        Ok(())
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
