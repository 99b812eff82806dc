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

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::{Error, Result};
use crate::format::node::NodeId;
use crate::git::sides::Side;
use crate::store::moves::{head_commit, CHECKED};
use crate::store::trust::Judge;
use crate::store::Store;

/// How a commit changed a node's file against one of its parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// There before and after, with other bytes.
    Modified,
    /// There before, gone after.
    Removed,
    /// Gone before, there after: new, or put back.
    Added,
}

/// The node files that changed from `old` to `new` (see
/// [`crate::git::node_files::changed_node_files`]: only directories whose
/// tree ids differ are looked into).
fn changed_nodes(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<(NodeId, Change)>> {
    let (old, new) = (
        repo.find_commit(old)?.tree()?,
        repo.find_commit(new)?.tree()?,
    );
    Ok(crate::git::node_files::changed_node_files(repo, &old, &new)
        .into_iter()
        .map(|(id, was, now)| {
            let change = match (was, now) {
                (Some(_), Some(_)) => Change::Modified,
                (Some(_), None) => Change::Removed,
                _ => Change::Added,
            };
            (id, change)
        })
        .collect())
}

/// Most commits walked per check: a check after a long absence (or a
/// checkout of a branch that went far) looks at the newest ones, and at
/// the files of the commit it last checked against those of the new one.
const MAX_WALK: usize = 500;

/// One node file a commit changed against one of its parents.
struct Step {
    id: NodeId,
    parent: Oid,
    commit: Oid,
    change: Change,
}

/// Every node file changed by a commit reachable from `new` but not from
/// `old`, against each of that commit's parents. Each commit is judged on
/// its own, so a newer version and a replay of an older one in between
/// cannot cancel out.
fn steps(repo: &Repository, old: Oid, new: Oid) -> Result<Vec<Step>> {
    steps_within(repo, old, new, MAX_WALK)
}

/// [`steps`], walking at most `most` commits.
fn steps_within(repo: &Repository, old: Oid, new: Oid, most: usize) -> Result<Vec<Step>> {
    let mut walk = repo.revwalk()?;
    walk.push(new)?;
    if repo.find_commit(old).is_ok() {
        walk.hide(old)?;
    }
    let mut out = Vec::new();
    let mut walked = 0;
    let mut push = |parent: Oid, commit: Oid| -> Result<()> {
        for (id, change) in changed_nodes(repo, parent, commit)? {
            out.push(Step {
                id,
                parent,
                commit,
                change,
            });
        }
        Ok(())
    };
    for commit in walk.take(most) {
        let commit = commit?;
        walked += 1;
        for parent in repo.find_commit(commit)?.parent_ids() {
            push(parent, commit)?;
        }
    }
    // More commits than are walked: what this clone had against what it
    // has now, too, so that a replay further back is not missed.
    if walked == most && repo.find_commit(old).is_ok() {
        push(old, new)?;
    }
    Ok(out)
}

/// The blob id of node `id`'s file in `commit`, if it has one.
pub(crate) fn node_blob_id(repo: &Repository, commit: Oid, id: &NodeId) -> Option<Oid> {
    let tree = repo.find_commit(commit).ok()?.tree().ok()?;
    crate::git::node_files::blob_of(repo, &tree, id)
}

/// Where this clone keeps the node files it saw removed, one per line:
/// `<node id> <commit that removed it> <its parent that still had it> <the
/// file's blob>`.
const REMOVED: &str = "removed";

/// Most lines kept in [`REMOVED`]; the oldest go first.
const MAX_REMOVED: usize = 200_000;

/// A node file this clone saw a commit remove: that commit, its parent that
/// still had the file, and the file. It counts against a file added back
/// on a line that holds the removal, not against one a merge brings in from
/// a line that never removed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Removal {
    id: NodeId,
    removed_in: Oid,
    had: Oid,
    blob: Oid,
}

/// Reads [`REMOVED`]; lines that do not parse are skipped (the file is
/// this clone's own, and a lost line only weakens the check).
fn read_removed(state: &Path) -> Vec<Removal> {
    let text = std::fs::read_to_string(state.join(REMOVED)).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            let id = words.next()?.parse().ok()?;
            let removed_in = Oid::from_str(words.next()?).ok()?;
            let had = Oid::from_str(words.next()?).ok()?;
            let blob = Oid::from_str(words.next()?).ok()?;
            Some(Removal {
                id,
                removed_in,
                had,
                blob,
            })
        })
        .collect()
}

/// A version that went down: in `commit`, from `was` (the file `from`,
/// where known) to `now`. `put_back` where the commit added the file
/// again after a removal rather than changing it.
#[derive(Debug, Clone, Copy)]
struct Drop {
    commit: Oid,
    /// The commit that held the file of version `was`.
    had: Oid,
    was: u64,
    now: u64,
    from: Option<Oid>,
    put_back: bool,
}

impl Drop {
    /// The error refusing node `id` for this drop; `gone` where the tip no
    /// longer has its file.
    fn refusal(&self, store: &Store, id: &NodeId, gone: bool) -> Error {
        let c = self.commit.to_string();
        let how = if self.put_back {
            "its file was removed and an older copy added back"
        } else {
            "an older file put back"
        };
        let since = if gone { ", and it is gone since" } else { "" };
        store.reject(
            id,
            format!(
                "it went back from version {} to version {} in commit {} ({how}){since}; see \
                 `git show {} -- {}` and revert that commit; if you put it back yourself \
                 (`git revert` of a sesto change does), `sesto trust --accept` takes the \
                 store as it is, and `sesto restore PATH --rev REV` is the way to set a \
                 secret back to an earlier value",
                self.was,
                self.now,
                &c[..12],
                &c[..12],
                format_args!(".sesto/{}", store.rel_path(id)),
            ),
        )
    }
}

/// What a check saw besides drops: removals to remember, and nodes whose
/// files came back (above what was removed) so that their removals can go.
#[derive(Debug, Default)]
struct Seen {
    removed: Vec<Removal>,
    put_back: BTreeSet<NodeId>,
}

impl Store {
    /// Checks the commits `HEAD` has that the commit this clone last checked
    /// has not: a node file whose version goes down in any of them, or that
    /// comes back older than a file this clone saw removed, is refused.
    /// Records `HEAD` as checked, and the removals seen, when all is well.
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
        let mut seen = Seen::default();
        if let (false, true, Ok(old), Ok(new)) = (
            checked.is_empty(),
            checking,
            Oid::from_str(checked),
            Oid::from_str(&head),
        ) {
            let repo = crate::git::open(&self.work)?;
            let steps = steps(&repo, old, new)?;
            if !steps.is_empty() {
                seen = self.compare_steps(&repo, new, old, &steps)?;
            }
        }
        if self.trust == crate::store::trust::TrustMode::Peek {
            return Ok(());
        }
        self.remember_removed(&seen)?;
        self.record_checked(&head)
    }

    /// Adds what a check saw removed to [`REMOVED`], and forgets the
    /// removals of nodes that came back newer.
    fn remember_removed(&self, seen: &Seen) -> Result<()> {
        if seen.removed.is_empty() && seen.put_back.is_empty() {
            return Ok(());
        }
        let mut all = read_removed(&self.state);
        all.retain(|r| !seen.put_back.contains(&r.id));
        all.extend(seen.removed.iter().copied());
        let skip = all.len().saturating_sub(MAX_REMOVED);
        let text: String = all[skip..]
            .iter()
            .map(|r| format!("{} {} {} {}\n", r.id, r.removed_in, r.had, r.blob))
            .collect();
        std::fs::create_dir_all(&self.state).map_err(Error::io("cannot create", &self.state))?;
        crate::store::journal::write_cache(&self.state.join(REMOVED), text.as_bytes())
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

    /// Before a push (the pre-push hook): judges the commits `local` would
    /// send that `remote` does not hold, as a clone that pulled them would,
    /// and remembers nothing. `remote` is the remote's tip as git names it;
    /// one this clone does not have (all zeros for a new branch) hides
    /// nothing, and the newest commits of `local` are judged. The folders
    /// this member reaches are opened first, so a key that cannot be
    /// unlocked fails the check rather than pass it unjudged. Returns how
    /// many node file changes were looked at.
    pub fn check_push(&self, local: &str, remote: &str) -> Result<usize> {
        let parse = |name: &str, text: &str| {
            Oid::from_str(text)
                .map_err(|_| Error::Value(format!("{name} commit `{text}` is not a git object id")))
        };
        let local = parse("the local", local)?;
        let remote = parse("the remote", remote)?;
        let repo = crate::git::open(&self.work)?;
        // A tag names its commit (an annotated one through a tag object);
        // a tag of a tree or a blob sends no commits to judge.
        let commit_of = |oid: Oid| {
            repo.find_object(oid, None)
                .and_then(|o| o.peel_to_commit())
                .map(|c| c.id())
                .ok()
        };
        let Some(local) = commit_of(local) else {
            return Ok(0);
        };
        let remote = commit_of(remote).unwrap_or(remote);
        let steps = steps(&repo, remote, local)?;
        if !steps.is_empty() {
            self.can_judge()?;
            self.compare_steps(&repo, local, remote, &steps)?;
        }
        Ok(steps.len())
    }

    /// Opens the folders this member reaches, so that a key that cannot be
    /// unlocked (a passphrase with no terminal to ask it on) is an error here:
    /// a check that opens nothing judges nothing, and must not say all is
    /// well.
    fn can_judge(&self) -> Result<()> {
        self.tops().map(|_| ())
    }

    /// `verify --history`: judges every commit of `HEAD`'s history, on
    /// every line a merge joined (not its first parents only), as a clone
    /// that pulled them all at once would, and remembers nothing. A fresh
    /// clone has seen no newer file, so this is how it finds an older copy
    /// put back on a line a merge took in. Returns how many node file
    /// changes were looked at.
    pub fn check_branch(&self) -> Result<usize> {
        let repo = crate::git::open(&self.work)?;
        let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else {
            return Ok(0);
        };
        let steps = steps_within(&repo, Oid::zero(), head.id(), usize::MAX)?;
        if !steps.is_empty() {
            self.can_judge()?;
            self.compare_steps(&repo, head.id(), head.id(), &steps)?;
        }
        Ok(steps.len())
    }

    /// Before `sync` takes in `theirs`: no commit it brings may take a node
    /// file back in version. Refusing here keeps the clone where it was,
    /// rather than at a commit every later command refuses. The files those
    /// commits removed are remembered as by [`Store::check_rollback`].
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
        let seen = self.compare_steps(repo, theirs, head, &steps)?;
        // Remembered now: once sync commits the merge, this clone counts
        // as having checked the commits it brought in.
        if self.trust == crate::store::trust::TrustMode::Peek {
            return Ok(());
        }
        self.remember_removed(&seen)
    }

    /// Opens each step's node before and after and refuses a version that
    /// went down, and a file put back older than one removed before it (in
    /// these steps, or seen removed by this clone earlier). Keys and places
    /// come from `tip` read as a side; a file they do not open (a rotation
    /// since) is read in its own commit, or else in `before`, the commit
    /// the clone had. Nodes this member cannot read are left alone.
    fn compare_steps(
        &self,
        repo: &Repository,
        tip: Oid,
        before: Oid,
        steps: &[Step],
    ) -> Result<Seen> {
        let blob_id = |commit: Oid, id: &NodeId| node_blob_id(repo, commit, id);
        let blob = |commit: Oid, id: &NodeId| -> Option<Vec<u8>> {
            Some(
                repo.find_blob(blob_id(commit, id)?)
                    .ok()?
                    .content()
                    .to_vec(),
            )
        };
        let on_or_after = |later: Oid, earlier: Oid| {
            later == earlier || repo.graph_descendant_of(later, earlier).unwrap_or(false)
        };
        // Whether `id`'s file was removed in `commit` or a commit after it.
        let removed_since = |id: &NodeId, commit: Oid| {
            steps.iter().any(|s| {
                s.id == *id && s.change == Change::Removed && on_or_after(s.commit, commit)
            })
        };
        let mut seen = Seen::default();
        // Removals in these steps, and those this clone saw before, by node.
        let mut removals_of: HashMap<NodeId, Vec<Removal>> = HashMap::new();
        for step in steps.iter().filter(|s| s.change == Change::Removed) {
            if let Some(blob) = blob_id(step.parent, &step.id) {
                seen.removed.push(Removal {
                    id: step.id,
                    removed_in: step.commit,
                    had: step.parent,
                    blob,
                });
            }
        }
        if steps.iter().any(|s| s.change == Change::Added) {
            for removal in read_removed(&self.state)
                .into_iter()
                .chain(seen.removed.iter().copied())
            {
                removals_of.entry(removal.id).or_default().push(removal);
            }
        }
        // Files added after a removal on their own line, each with those
        // removals (a new node's file, the common case, has none).
        let mut put_back: Vec<(&Step, Vec<Removal>)> = Vec::new();
        for add in steps.iter().filter(|s| s.change == Change::Added) {
            let removals: Vec<Removal> = removals_of
                .get(&add.id)
                .into_iter()
                .flatten()
                .filter(|r| {
                    r.removed_in == add.parent
                        || repo
                            .graph_descendant_of(add.parent, r.removed_in)
                            .unwrap_or(false)
                })
                .copied()
                .collect();
            if !removals.is_empty() {
                put_back.push((add, removals));
            }
        }
        let wanted: std::collections::HashSet<NodeId> = steps
            .iter()
            .filter(|s| s.change == Change::Modified)
            .map(|s| s.id)
            .chain(put_back.iter().map(|(s, _)| s.id))
            .collect();
        if wanted.is_empty() {
            return Ok(seen);
        }
        let judge = Judge::new(&self.work, &self.roster.store)?;
        let tip_side = Side::load_placing(self, repo, &judge, &repo.find_commit(tip)?, &wanted)?;
        let mut sides: HashMap<Oid, Option<Side>> = HashMap::new();
        // A node's version in a file of `commit`: with the tip's keys, or
        // else with the keys `commit` itself gives.
        let mut version = |commit: Oid, id: &NodeId, bytes: &[u8]| -> Option<u64> {
            if let Some(placed) = tip_side.nodes.get(id) {
                if let Ok(n) = self.open_node_under(
                    &tip_side.rules(),
                    id,
                    bytes,
                    placed.key.as_ref(),
                    &placed.chain,
                ) {
                    return Some(n.body.version);
                }
            }
            // Else with the keys of `commit` itself, and else with those of
            // the commit this clone had before: a file from before a
            // rotation, put back, opens with neither the tip's keys nor its
            // own commit's, but it is still an older file.
            // (read under the tip's roster where its own is older than
            // what this clone has accepted since).
            for at in [commit, before] {
                let side = sides.entry(at).or_insert_with(|| {
                    let c = repo.find_commit(at).ok()?;
                    Side::load(self, repo, &judge, &c).ok().or_else(|| {
                        Side::load_under(
                            self,
                            repo,
                            &c,
                            tip_side.roster.clone(),
                            tip_side.roster_bytes.clone(),
                            tip_side.roster_sig.clone(),
                        )
                        .ok()
                    })
                });
                let Some(side) = side.as_ref() else { continue };
                // In `commit` the bytes are its own file; in `before`, a
                // file opened with the key and place that commit gives.
                let opened = if at == commit {
                    side.open(self, id, bytes).ok()
                } else {
                    side.nodes.get(id).and_then(|p| {
                        self.open_node_under(&side.rules(), id, bytes, p.key.as_ref(), &p.chain)
                            .ok()
                    })
                };
                if let Some(n) = opened {
                    return Some(n.body.version);
                }
            }
            None
        };
        // Nodes the tip lists: placed there, or refused there (a file that
        // does not open with its folder's key is judged all the same).
        let listed =
            |id: &NodeId| tip_side.nodes.contains_key(id) || tip_side.rejected.contains_key(id);
        // Per node, the drops from its highest version: each is judged, so
        // that which one a walk meets last decides nothing (a merge that
        // took a replay in before an admin's repair is a drop of its own).
        let mut drops: HashMap<NodeId, Vec<Drop>> = HashMap::new();
        let mut note = |id: NodeId, drop: Drop| {
            let known = drops.entry(id).or_default();
            match known.first().map(|k| k.was) {
                Some(was) if drop.was < was => {}
                Some(was) if drop.was == was => known.push(drop),
                _ => *known = vec![drop],
            }
        };
        for step in steps.iter().filter(|s| s.change == Change::Modified) {
            // A node the tip no longer lists is judged only where its file
            // went after this change: an older file there may be what let
            // git take the delete (below).
            if !listed(&step.id) && !removed_since(&step.id, step.commit) {
                continue;
            }
            let (Some(before), Some(after)) =
                (blob(step.parent, &step.id), blob(step.commit, &step.id))
            else {
                continue;
            };
            let (Some(was), Some(now)) = (
                version(step.parent, &step.id, &before),
                version(step.commit, &step.id, &after),
            ) else {
                continue;
            };
            if now < was {
                let from = Some(Oid::hash_object(git2::ObjectType::Blob, &before)?);
                note(
                    step.id,
                    Drop {
                        commit: step.commit,
                        had: step.parent,
                        was,
                        now,
                        from,
                        put_back: false,
                    },
                );
            }
        }
        // Files put back: each must be newer than every file of its node
        // removed before it (whoever puts a node back writes it above what
        // was removed, as `sesto resolve` does), or it is an older copy.
        for (add, removals) in put_back {
            // Judged whether or not the tip still lists the node: a copy
            // put back as the merge base's file hides the other side's
            // change from git, which may then take a delete over it.
            let Some(added) = blob_id(add.commit, &add.id) else {
                continue;
            };
            let Some(now) =
                blob(add.commit, &add.id).and_then(|b| version(add.commit, &add.id, &b))
            else {
                continue;
            };
            let mut fine = true;
            for removal in removals {
                if removal.blob == added {
                    continue; // the same file back: nothing older
                }
                let Some(was) = repo
                    .find_blob(removal.blob)
                    .ok()
                    .and_then(|b| version(removal.had, &add.id, b.content()))
                else {
                    continue;
                };
                if now < was {
                    fine = false;
                    let drop = Drop {
                        commit: add.commit,
                        had: removal.had,
                        was,
                        now,
                        from: Some(removal.blob),
                        put_back: true,
                    };
                    note(add.id, drop);
                }
            }
            if fine {
                seen.put_back.insert(add.id);
            }
        }
        // A drop is forgiven where the tip holds the file from before it
        // again (an admin put it back) or a newer version than that;
        // otherwise the tip is older than what was written, whatever was
        // built on the replay since.
        for (id, drop) in drops
            .into_iter()
            .flat_map(|(id, all)| all.into_iter().map(move |d| (id, d)))
        {
            // Commits on the drop's line that held the removed file again:
            // an admin's repair.
            let repairs: Vec<Oid> = steps
                .iter()
                .filter(|s| {
                    s.id == id
                        && on_or_after(s.commit, drop.commit)
                        && blob_id(s.commit, &id) == drop.from
                })
                .map(|s| s.commit)
                .collect();
            let Some(bytes) = tip_side.blob(&id) else {
                // Removed since. The replay may be what let git take that
                // delete over a newer write: a folder put back as the file
                // a delete was made against (a rebase of an older `rm -r`,
                // a merge with a line that removed it) gives git no conflict
                // to stop at, and what was added since is gone (seed 350053).
                // So the drop counts where the file went on or after it,
                // and always for a file put back older, unless a later
                // commit held the removed file again (an admin's repair).
                if !repairs.is_empty() || !(drop.put_back || removed_since(&id, drop.commit)) {
                    continue;
                }
                return Err(drop.refusal(self, &id, true));
            };
            let tip_blob = Oid::hash_object(git2::ObjectType::Blob, &bytes)?;
            if Some(tip_blob) == drop.from {
                continue;
            }
            // A line held the newer file where it descends from the commit
            // that had it, or from any other commit with that file (the file
            // is often older than that commit: seed 560184).
            let held_newer = |line: Oid| {
                if on_or_after(line, drop.had) {
                    return true;
                }
                let Some(from) = drop.from else {
                    return true;
                };
                let Ok(mut walk) = repo.revwalk() else {
                    return true;
                };
                if walk.push(line).is_err() {
                    return true;
                }
                let mut walked = 0;
                for commit in walk.take(MAX_WALK).flatten() {
                    walked += 1;
                    if blob_id(commit, &id) == Some(from) {
                        return true;
                    }
                }
                // Further back than a check walks: not held against it.
                walked == MAX_WALK
            };
            // A merge took the tip's file over the drop's line from a line
            // that never held the newer file: the older copy made the drop's
            // line look unchanged to git, so nothing merged what the newer
            // file added, and no version the tip's file carries makes up
            // for it (seed 540280: a folder's new entry was gone). An
            // admin's repair forgives it, so then nothing is walked.
            let taken_over = repairs.is_empty()
                && steps.iter().any(|s| {
                    s.id == id
                        && blob_id(s.commit, &id) == Some(tip_blob)
                        && on_or_after(s.parent, drop.commit)
                        && repo.find_commit(s.commit).is_ok_and(|c| {
                            c.parent_ids().any(|p| {
                                p != s.parent && blob_id(p, &id) == Some(tip_blob) && !held_newer(p)
                            })
                        })
                });
            if taken_over {
                return Err(drop.refusal(self, &id, false));
            }
            let tip_version = tip_side
                .open(self, &id, &bytes)
                .map(|n| n.body.version)
                .ok();
            // A newer version forgives the drop only where its file derives
            // from the newer one: a merge of the older copy with a line that
            // never had the newer file numbers its file above both, yet holds
            // nothing the newer file added (seed 621072: a folder's entry
            // was gone), and writes built on an older copy put back after a
            // removal climb above the removed version all the same (seed
            // 670195: a secret was gone). An honest merge that puts a file
            // back writes it above the removed version in the same commit,
            // so it makes no drop to forgive.
            if tip_version.is_some_and(|t| t > drop.was)
                && derives_from_newer(repo, &id, &drop, tip, &mut version)
            {
                continue;
            }
            // An admin's repair (a later commit on the drop's line that held
            // the removed file again) with the tip's file written on top of
            // it: what was built since was built on the newer file, not on
            // the copy. This is what a member who no longer reads the node at
            // the tip (a revoke since) has to go on, since the tip's version
            // above does not open for them.
            let repaired_below_tip = !repairs.is_empty()
                && steps.iter().any(|t| {
                    t.id == id
                        && blob_id(t.commit, &id) == Some(tip_blob)
                        && repairs.iter().any(|r| on_or_after(t.commit, *r))
                });
            if repaired_below_tip {
                continue;
            }
            // The tip's file counts against the drop only when it came in on
            // the drop's line: the replay itself, or a write built on it. A
            // file from a line the drop never touched (a concurrent write a
            // merge kept) does not; but a file put back after a removal
            // came in on that line, whichever parent of a merge held it.
            if !self.came_after(repo, steps, &id, tip_blob, drop) {
                continue;
            }
            return Err(drop.refusal(self, &id, false));
        }
        Ok(seen)
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
        drop: Drop,
    ) -> bool {
        let blob_at = |commit: Oid| node_blob_id(repo, commit, id);
        steps
            .iter()
            .filter(|s| s.id == *id && blob_at(s.commit) == Some(blob))
            .filter(|s| {
                // Held by another parent of a merge: it came from there
                // (a file put back counts wherever it came from, and so
                // does the tip against the commit last checked).
                drop.put_back
                    || repo.find_commit(s.commit).is_ok_and(|c| {
                        !c.parent_ids().any(|p| p == s.parent)
                            || !c
                                .parent_ids()
                                .any(|p| p != s.parent && blob_at(p) == Some(blob))
                    })
            })
            .any(|s| {
                s.commit == drop.commit
                    || repo
                        .graph_descendant_of(s.commit, drop.commit)
                        .unwrap_or(false)
            })
    }
}

/// Node `id`'s version in `commit`'s file, as `version` reads it.
type VersionOf<'a> = dyn FnMut(Oid, &NodeId, &[u8]) -> Option<u64> + 'a;

/// Whether node `id`'s file at `commit` derives from the newer file `drop`
/// went back from: it is that file, or it is a parent's file that derives
/// from it, unchanged or written above it in version. The older copy does
/// not, nor does a merge of it with a line that never had the newer file,
/// whatever version that merge gave its file. Files that do not open, and
/// history further back than a check walks, are given the benefit.
fn derives_from_newer(
    repo: &Repository,
    id: &NodeId,
    drop: &Drop,
    commit: Oid,
    version: &mut VersionOf,
) -> bool {
    let mut walk = DerivesWalk {
        repo,
        id,
        drop,
        memo: HashMap::new(),
        budget: MAX_WALK,
    };
    walk.derives(commit, version)
}

/// The state of one [`derives_from_newer`].
struct DerivesWalk<'a> {
    repo: &'a Repository,
    id: &'a NodeId,
    drop: &'a Drop,
    memo: HashMap<Oid, bool>,
    budget: usize,
}

impl DerivesWalk<'_> {
    fn derives(&mut self, commit: Oid, version: &mut VersionOf) -> bool {
        if let Some(&known) = self.memo.get(&commit) {
            return known;
        }
        let blob = node_blob_id(self.repo, commit, self.id);
        let answer = if blob.is_some() && blob == self.drop.from {
            true
        } else if blob.is_none()
            || commit == self.drop.commit
            || commit == self.drop.had
            || self
                .repo
                .graph_descendant_of(self.drop.had, commit)
                .unwrap_or(false)
        {
            // Gone here, the older copy itself, or from before the newer file.
            false
        } else if self.budget == 0 {
            true
        } else {
            self.budget -= 1;
            let parents: Vec<Oid> = self
                .repo
                .find_commit(commit)
                .map(|c| c.parent_ids().collect())
                .unwrap_or_default();
            let mut mine = None;
            let mut found = false;
            for parent in parents {
                if !self.derives(parent, version) {
                    continue;
                }
                let theirs = node_blob_id(self.repo, parent, self.id);
                if theirs == blob {
                    found = true;
                    break;
                }
                let mine = *mine.get_or_insert_with(|| self.version_at(commit, version));
                match (mine, self.version_at(parent, version)) {
                    (Some(m), Some(p)) if m < p => {}
                    _ => {
                        found = true;
                        break;
                    }
                }
            }
            found
        };
        self.memo.insert(commit, answer);
        answer
    }

    fn version_at(&self, commit: Oid, version: &mut VersionOf) -> Option<u64> {
        let blob = node_blob_id(self.repo, commit, self.id)?;
        let bytes = self.repo.find_blob(blob).ok()?.content().to_vec();
        version(commit, self.id, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_removed_list_skips_what_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let id = NodeId::random();
        let removed = "0123456789abcdef0123456789abcdef01234567";
        let had = "fedcba9876543210fedcba9876543210fedcba98";
        let blob = "89abcdef0123456789abcdef0123456789abcdef";
        let text = format!(
            "{id} {removed} {had} {blob}\n\
             garbage\n\
             {id} {removed} {had}\n\
             {id} {removed} {blob}\n\
             {id} not-a-commit {had} {blob}\n\
             ../../etc/passwd {removed} {had} {blob}\n\
             \n\
             {id} {removed} {had} {blob} trailing\n"
        );
        std::fs::write(dir.path().join(REMOVED), text).unwrap();
        let read = read_removed(dir.path());
        let want = Removal {
            id,
            removed_in: Oid::from_str(removed).unwrap(),
            had: Oid::from_str(had).unwrap(),
            blob: Oid::from_str(blob).unwrap(),
        };
        assert_eq!(read, vec![want, want]);
        // Bytes that are not UTF-8 at all, or no file: nothing.
        std::fs::write(dir.path().join(REMOVED), [0xff, 0xfe, 0x00]).unwrap();
        assert!(read_removed(dir.path()).is_empty());
        assert!(read_removed(&dir.path().join("absent")).is_empty());
    }
}
