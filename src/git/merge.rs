//! sesto's git merge driver: merging two versions of one encrypted node by
//! DESIGN.md's rules, so concurrent changes from many clones lose no secret
//! and let nothing forged in.
//!
//! git runs `sesto merge-driver %O %A %B %P` for a node file both sides
//! changed. The rule: each side's file is accepted only where it verifies at
//! its place in that side's own commit, read as a store of its own under the
//! roster that commit's trust chain accepts (`crate::git::sides`). Ours is
//! `HEAD`; theirs is the commit git is bringing in, as git or `sesto sync`
//! names it, never one found on other refs; the base is theirs' parent (a
//! rebase or cherry-pick) or a merge base. A file that fails is never
//! re-signed: the driver fails, git keeps ours and stops, and the error
//! names the node and why.
//!
//! Folders merge as sets of entries; secrets merge as text when both changed
//! the value, and when that conflicts ours stays and theirs is queued to be
//! kept beside it as `name (conflict N)` by `sesto resolve` (a driver may
//! write only the file it was given). The merged node is signed by the
//! merging member and encrypted to the recipients of the merged roster,
//! under the key a rotation on either side chose: a revocation on one side
//! is never undone by a stale change on the other.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{Commit, Oid, Repository};

use crate::error::{Error, Result};
use crate::format::node::{Body, Entry, Kind, NodeId, NodeKey, Roster, Value};
use crate::git::sides::{self, Side};
use crate::store::trust::Judge;
use crate::store::{Node, Store};

/// The three commits of a merge, verified, and the roster the merged store
/// will have.
pub(crate) struct Merge<'r> {
    pub(crate) ours: Side<'r>,
    pub(crate) theirs: Side<'r>,
    pub(crate) base: Option<Side<'r>>,
    pub(crate) roster: Roster,
}

impl<'r> Merge<'r> {
    /// Reads the three commits as verified stores. The base only guides the
    /// merge: where it cannot be read, changes on both sides are kept.
    pub(crate) fn load(
        store: &Store,
        repo: &'r Repository,
        ours: &Commit<'r>,
        theirs: &Commit<'r>,
        base: Option<&Commit<'r>>,
    ) -> Result<Merge<'r>> {
        let judge = Judge::new(&store.work, &store.roster.store)?;
        let theirs_side = Side::load(store, repo, &judge, theirs)?;
        let (ours, base) = match Side::load(store, repo, &judge, ours) {
            Ok(side) => (
                side,
                base.and_then(|b| Side::load(store, repo, &judge, b).ok()),
            ),
            // Ours and the base hold one roster nobody vouched for: both
            // are read under theirs'.
            Err(e) => {
                let under = |c: &Commit<'r>| {
                    Side::load_under(
                        store,
                        repo,
                        c,
                        theirs_side.roster.clone(),
                        theirs_side.roster_bytes.clone(),
                        theirs_side.roster_sig.clone(),
                    )
                    .ok()
                };
                match base {
                    Some(b) if stale_roster(repo, ours, b, &theirs_side) => {
                        (under(ours).ok_or(e)?, under(b))
                    }
                    _ => return Err(e),
                }
            }
        };
        let theirs = theirs_side;
        let roster = merged_roster(&store.work, &ours, &theirs, base.as_ref())?;
        Ok(Merge {
            ours,
            theirs,
            base,
            roster,
        })
    }

    /// The blob id of `id`'s file in the base, if there is a base.
    fn base_blob(&self, id: &NodeId) -> Option<Oid> {
        self.base.as_ref().and_then(|b| b.blob_id(id))
    }

    /// Whether the file of `id` differs between `side` and the base (unknown
    /// counts as changed: an edit is never dropped on a guess).
    fn changed(&self, side: &Side, id: &NodeId) -> bool {
        match &self.base {
            Some(base) => side.blob_id(id) != base.blob_id(id),
            None => true,
        }
    }

    /// Whether `side` changed what node `id` holds since the base: its
    /// kind, name, value or entries (names and ids). A rotation re-encrypts
    /// and re-signs a node and changes none of these, so it does not beat
    /// the other side's delete. Unknown counts as changed.
    pub(crate) fn content_changed(&self, store: &Store, side: &Side, id: &NodeId) -> bool {
        if !self.changed(side, id) {
            return false;
        }
        let Some(base) = &self.base else {
            return true;
        };
        let (Some(now), Some(was)) = (side.blob(id), base.blob(id)) else {
            return true;
        };
        match (side.open(store, id, &now), base.open(store, id, &was)) {
            (Ok(now), Ok(was)) => !same_content(&now.body, &was.body),
            _ => true,
        }
    }

    /// Merges one node from its three files (`o` empty where the base had
    /// none). Each side's file must verify at its place in its commit.
    pub(crate) fn node(
        &self,
        store: &Store,
        id: &NodeId,
        o: &[u8],
        a: &[u8],
        b: &[u8],
    ) -> Result<Merged> {
        let ours = self.ours.open(store, id, a)?;
        let theirs = self.theirs.open(store, id, b)?;
        // The base only guides; a base that does not verify is no base.
        // git hands an empty base for an add/add: across `sesto migrate`
        // (both sides moved the node and changed it, so git saw no rename)
        // that hides what either side removed from a folder (seed 810049);
        // the merge base's own file of the node, by id, is the base then.
        let base = match &self.base {
            Some(side) if !o.is_empty() => side.open(store, id, o).ok(),
            Some(side) => side.blob(id).and_then(|o| side.open(store, id, &o).ok()),
            None => None,
        };
        if ours.body.kind != theirs.body.kind {
            return Err(store.reject(
                id,
                "one side has a folder and the other a secret under one id",
            ));
        }
        // Every write raises the version: a side whose file differs from the
        // base's but is not newer put an older file back.
        if let Some(b) = &base {
            for (side, node, name) in [
                (&self.ours, &ours, "ours"),
                (&self.theirs, &theirs, "theirs"),
            ] {
                if node.body.version <= b.body.version && side.blob_id(id) != self.base_blob(id) {
                    return Err(store.reject(
                        id,
                        format!(
                            "{name} (commit {}) has version {}, not newer than the base's version \
                             {}: an older file put back; find it with `git log -- {}` and revert it",
                            &side.commit.to_string()[..12],
                            node.body.version,
                            b.body.version,
                            sides::node_path(id, side.roster.sesto)
                        ),
                    ));
                }
            }
        }
        let mut body = ours.body.clone();
        let mut conflict_copy = None;
        match body.kind {
            Kind::Folder => {
                body.children = merge_entries(
                    store,
                    self,
                    base.as_ref()
                        .map(|n| n.body.children.as_slice())
                        .unwrap_or(&[]),
                    &ours.body.children,
                    &theirs.body.children,
                );
                // A folder shared on one side records where it sits (its
                // grantees start there); the merge keeps that.
                if body.path.is_none() {
                    body.path = theirs.body.path.clone();
                }
            }
            Kind::Secret => {
                let ov = ours.body.value.as_ref().map(Value::expose_secret);
                let tv = theirs.body.value.as_ref().map(Value::expose_secret);
                let bv = base
                    .as_ref()
                    .and_then(|n| n.body.value.as_ref())
                    .map(Value::expose_secret);
                let (ov, tv) = (ov.unwrap_or_default(), tv.unwrap_or_default());
                if ov != tv {
                    match three_way(bv, ov, tv) {
                        Some(merged) => {
                            body.value = Some(Value::new(merged));
                            body.exposed_to.clear();
                            if bv == Some(ov) {
                                body.updated = theirs.body.updated.clone();
                                body.updated_by = theirs.body.updated_by.clone();
                            }
                        }
                        None => {
                            conflict_copy = Some(Queued {
                                id: *id,
                                blob: Oid::hash_object(git2::ObjectType::Blob, b)?,
                                commit: self.theirs.commit,
                                ours: Some(self.ours.commit),
                            });
                        }
                    }
                }
            }
        }
        body.version = ours.body.version.max(theirs.body.version) + 1;
        let me = store
            .me
            .clone()
            .ok_or_else(|| Error::Denied("merging needs a member's key".into()))?;
        let chain = self
            .ours
            .nodes
            .get(id)
            .map(|p| p.chain.as_slice())
            .unwrap_or_default();
        if !self.roster.may_write(&me, chain) {
            return Err(Error::Denied(format!(
                "node {id} changed on both sides, and {me} may not write it under the merged \
                 roster; {}",
                admin_finishes(&self.roster)
            )));
        }
        let key = self.key(id, &ours, &theirs, base.as_ref());
        let shared = *id != self.roster.root && self.roster.grants.contains_key(id);
        body.recipient = match (&key, shared) {
            (_, false) => None,
            (Some(k), true) => Some(crate::store::tx::public_of(k)?),
            (None, true) => self.recipient(&ours, &theirs, base.as_ref()),
        };
        if key.is_none() && body.recipient.is_none() && *id != self.roster.root {
            return Err(store.reject(id, "no key for the merged node"));
        }
        let node = Node {
            id: *id,
            key,
            body,
            signer: String::new(),
        };
        let signer = crate::store::tx::signer_for(store, &me)?;
        let bytes = crate::store::tx::encode_node(store, &self.roster, &node, &signer)?;
        Ok(Merged {
            bytes,
            conflict_copy,
        })
    }

    /// The merged node's key: theirs where only theirs changed it (a
    /// rotation there), else ours. Folder entries merge by the same rule, so
    /// the parent's entry and the node agree.
    fn key(&self, id: &NodeId, ours: &Node, theirs: &Node, base: Option<&Node>) -> Option<NodeKey> {
        let placed = |s: Option<&Side>| s.and_then(|s| s.nodes.get(id)).and_then(|p| p.key.clone());
        let (o, t) = (
            ours.key.clone(),
            theirs.key.clone().or(placed(Some(&self.theirs))),
        );
        let b = base
            .and_then(|n| n.key.clone())
            .or(placed(self.base.as_ref()));
        let same = |x: &Option<NodeKey>, y: &Option<NodeKey>| {
            x.as_ref().map(NodeKey::expose_secret) == y.as_ref().map(NodeKey::expose_secret)
        };
        match (&o, &t) {
            (Some(_), Some(_)) if !same(&o, &t) && same(&o, &b) => t,
            (None, _) => None,
            _ => o,
        }
    }

    /// For a shared folder this member reaches directly (its key is in a
    /// folder they cannot read): its own recipient, by the key rule.
    fn recipient(&self, ours: &Node, theirs: &Node, base: Option<&Node>) -> Option<String> {
        let (o, t) = (&ours.body.recipient, &theirs.body.recipient);
        let b = base.and_then(|n| n.body.recipient.clone());
        if o != t && *o == b {
            t.clone()
        } else {
            o.clone()
        }
    }
}

/// The roster the merged store will have: the side that changed it, or
/// both sides' changes merged. A side whose roster does not follow the base
/// by admin signatures (an old roster put back) is refused.
fn merged_roster(work: &Path, ours: &Side, theirs: &Side, base: Option<&Side>) -> Result<Roster> {
    if ours.roster_bytes == theirs.roster_bytes {
        return Ok(ours.roster.clone());
    }
    let Some(base) = base else {
        return Err(Error::Roster(
            "the two sides hold different rosters and their common base cannot be read".into(),
        ));
    };
    let side = |s: &Side| {
        crate::git::roster_merge::Side::new(
            s.roster.clone(),
            s.roster_bytes.clone(),
            s.roster_sig.clone(),
        )
    };
    let (b, o, t) = (side(base), side(ours), side(theirs));
    if base.roster_bytes == ours.roster_bytes {
        t.follows(work, &b)?;
        return Ok(theirs.roster.clone());
    }
    if base.roster_bytes == theirs.roster_bytes {
        o.follows(work, &b)?;
        return Ok(ours.roster.clone());
    }
    crate::git::roster_merge::merge(work, &b, &o, &t)
}

/// Whether ours' roster, not trusted, is a stale one theirs replaces: ours
/// holds exactly the base's roster (one an earlier pull took in unchecked,
/// as git takes a file only one side changed without asking) and theirs,
/// trusted, holds another. The merged store then has theirs' roster, so
/// ours' nodes are held to what any reader of the result holds them to:
/// verified at their place in ours' tree under that roster.
fn stale_roster(repo: &Repository, ours: &Commit, base: &Commit, theirs: &Side) -> bool {
    match (Side::roster_file(repo, ours), Side::roster_file(repo, base)) {
        (Some(o), Some(b)) => o == b && o != theirs.roster_bytes,
        _ => false,
    }
}

/// Merges one node file as git's merge driver: `base`, `ours` and `theirs`
/// are git's temporary files, the result goes into `ours`.
pub fn merge_driver(
    store: &Store,
    base: &Path,
    ours: &Path,
    theirs: &Path,
    path: &str,
) -> Result<()> {
    let id = node_of(path)?;
    let read = |p: &Path| std::fs::read(p).map_err(Error::io("cannot read", p));
    let (o, a, b) = (read(base)?, read(ours)?, read(theirs)?);
    let repo = crate::git::open(&store.work)?;
    let head = repo.head()?.peel_to_commit()?;
    let blob = |bytes: &[u8]| Oid::hash_object(git2::ObjectType::Blob, bytes);
    let their_commit = sides::their_commit(&repo, Some((path, blob(&b)?))).ok_or_else(|| {
        Error::Value(format!(
            "cannot tell which commit git is merging into {path}; when git stops, run `sesto resolve`"
        ))
    })?;
    let base_held = (!o.is_empty()).then(|| blob(&o)).transpose()?;
    let base_commit = sides::base_commit(
        &repo,
        head.id(),
        &their_commit,
        base_held.map(|b| (path, b)),
    );
    let merge = Merge::load(store, &repo, &head, &their_commit, base_commit.as_ref())?;
    let merged = merge.node(store, &id, &o, &a, &b)?;
    if merged.conflict_copy.is_some() && sides::applying_stash(&repo, &their_commit) {
        // A stash applied cleanly is dropped, and with no merge under way
        // nothing would write theirs' value beside ours: failing here
        // leaves the conflict, and git keeps the stash for `sesto resolve`.
        return Err(Error::Value(format!(
            "{path}: the stash and this branch both changed a secret's value; git keeps the \
             stash: run `sesto resolve`, which keeps both values, then `git stash drop`"
        )));
    }
    std::fs::write(ours, merged.bytes).map_err(Error::io("cannot write", ours))?;
    if let Some(copy) = merged.conflict_copy {
        queue_conflict_copy(store, &copy)?;
    }
    Ok(())
}

/// What a member who cannot finish a merge does: hand it to an admin, who
/// reads and may write everything, or give up their side.
pub(crate) fn admin_finishes(roster: &Roster) -> String {
    format!(
        "an admin ({}) can finish this merge: give it up here (`git merge --abort`, or \
         `git rebase --abort`), push your commits to a branch of their own (`git push origin \
         HEAD:refs/heads/for-admin`) and ask them to merge that branch; or keep theirs with \
         `git merge --abort` and `git reset --hard @{{u}}`",
        roster.admins().join(", ")
    )
}

/// The node id of a node file's path in the repository, in either
/// format's layout (a merge may span `sesto migrate`; each side's file is
/// read where its own roster's format puts it).
pub(crate) fn node_of(path: &str) -> Result<NodeId> {
    path.strip_prefix(".sesto/")
        .and_then(NodeId::from_any_rel_path)
        .map(|(id, _)| id)
        .ok_or_else(|| Error::Value(format!("{path} is not a sesto node file")))
}

/// A merged node, and theirs' value when it had to be kept beside ours.
pub(crate) struct Merged {
    pub(crate) bytes: Vec<u8>,
    pub(crate) conflict_copy: Option<Queued>,
}

/// Whether two bodies of one node hold the same: kind, name, value and
/// entries (names, ids and kinds; not their keys).
fn same_content(a: &Body, b: &Body) -> bool {
    let entries = |body: &Body| -> BTreeSet<(String, NodeId, bool)> {
        body.children
            .iter()
            .map(|e| (e.name.clone(), e.id, e.kind == Kind::Folder))
            .collect()
    };
    a.kind == b.kind
        && a.name == b.name
        && a.value.as_ref().map(Value::expose_secret) == b.value.as_ref().map(Value::expose_secret)
        && entries(a) == entries(b)
}

/// Merges folder entries by id: additions from both sides, renames and key
/// rotations from the side that made them, deletions only where the other
/// side did not rename the node or change what it holds (a rotation alone
/// does not keep it); a name taken twice gets ` (conflict N)`.
fn merge_entries(
    store: &Store,
    m: &Merge,
    base: &[Entry],
    ours: &[Entry],
    theirs: &[Entry],
) -> Vec<Entry> {
    let find = |list: &[Entry], id: &NodeId| list.iter().find(|e| e.id == *id).cloned();
    let mut out: Vec<Entry> = Vec::new();
    for o in ours {
        let b = find(base, &o.id);
        match (find(theirs, &o.id), b) {
            (Some(t), b) => {
                let mut e = o.clone();
                if let Some(b) = &b {
                    if o.name == b.name && t.name != b.name {
                        e.name = t.name.clone();
                    }
                    if o.key.expose_secret() == b.key.expose_secret()
                        && t.key.expose_secret() != b.key.expose_secret()
                    {
                        e.key = t.key.clone();
                    }
                }
                out.push(e);
            }
            // Theirs deleted it: gone, unless ours renamed it or changed
            // what it holds since (a rotation alone does not count). Theirs
            // moved it, when theirs lists it elsewhere: its file carries
            // ours' change, and the entry goes where theirs put it.
            (None, Some(b)) => {
                if moved(&m.theirs, &o.id) {
                    continue;
                }
                if o.name != b.name || m.content_changed(store, &m.ours, &o.id) {
                    out.push(o.clone());
                }
            }
            (None, None) => out.push(o.clone()),
        }
    }
    for t in theirs {
        if find(ours, &t.id).is_some() {
            continue;
        }
        match find(base, &t.id) {
            // Ours deleted it: back, if theirs renamed it or changed what it
            // holds since (and ours did not move it elsewhere).
            Some(b) => {
                if moved(&m.ours, &t.id) {
                    continue;
                }
                if t.name != b.name || m.content_changed(store, &m.theirs, &t.id) {
                    out.push(t.clone());
                }
            }
            None => out.push(t.clone()),
        }
    }
    // Names are unique in a folder: a second holder of a name is renamed.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut result: Vec<Entry> = Vec::new();
    for mut e in out {
        if let Some(key) = rotated_elsewhere(m, &e) {
            e.key = key;
        }
        if !taken.insert(e.name.clone()) {
            e.name = free_name(&taken, &e.name);
            taken.insert(e.name.clone());
        }
        result.push(e);
    }
    result.sort_by(|a, b| a.name.cmp(&b.name));
    result
}

/// The key a rotation on either side gave `e`'s node, where `e` still holds
/// the key the base had for it: an entry one side moved here (from a folder
/// the other side re-keyed) takes the new key, as the node's file does
/// (only the rotating side changed it, so git takes that file as it is).
fn rotated_elsewhere(m: &Merge, e: &Entry) -> Option<NodeKey> {
    let base = m.base.as_ref()?.nodes.get(&e.id)?.key.as_ref()?;
    if base.expose_secret() != e.key.expose_secret() {
        return None;
    }
    [&m.ours, &m.theirs]
        .into_iter()
        .filter_map(|side| side.nodes.get(&e.id)?.key.clone())
        .find(|k| k.expose_secret() != base.expose_secret())
}

/// Whether `side` lists node `id` in a folder (the one it is not in here).
fn moved(side: &Side, id: &NodeId) -> bool {
    side.nodes.get(id).is_some_and(|p| p.parent.is_some())
}

/// `name (conflict N)` with the smallest N not in `taken`.
pub(crate) fn free_name(taken: &BTreeSet<String>, name: &str) -> String {
    (1..)
        .map(|n| format!("{name} (conflict {n})"))
        .find(|c| !taken.contains(c))
        .expect("some number is free")
}

/// A line-based three-way merge of two values against their base; `None`
/// when the changes overlap (or there is no base to merge against).
fn three_way(base: Option<&[u8]>, ours: &[u8], theirs: &[u8]) -> Option<Vec<u8>> {
    let base = base?;
    if base == ours {
        return Some(theirs.to_vec());
    }
    if base == theirs {
        return Some(ours.to_vec());
    }
    diffy::merge_bytes(base, ours, theirs).ok()
}

/// The queue of theirs' values to keep beside ours, by `sesto resolve`.
const CONFLICTS: &str = "conflicts";

fn queue_conflict_copy(store: &Store, copy: &Queued) -> Result<()> {
    std::fs::create_dir_all(&store.state).map_err(Error::io("cannot create", &store.state))?;
    let path = store.state.join(CONFLICTS);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&format!("{} {} {}", copy.id, copy.blob, copy.commit));
    if let Some(ours) = copy.ours {
        text.push_str(&format!(" {ours}"));
    }
    text.push('\n');
    crate::store::journal::write_atomic(&path, text.as_bytes())
}

/// Theirs' value of a secret, to be kept beside ours by `sesto resolve`:
/// the node, the blob of theirs' file, and the commit it was verified in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queued {
    pub(crate) id: NodeId,
    pub(crate) blob: Oid,
    pub(crate) commit: Oid,
    /// Ours' commit in the merge that queued it (`None` where an older
    /// sesto queued it).
    pub(crate) ours: Option<Oid>,
}

/// Theirs' values the merge driver queued, for the merge or rebase under
/// way or the one git finished since. A merge given up (`git merge
/// --abort`, `git reset --hard @{u}`) leaves its queue behind; its values
/// are not kept beside anything.
pub(crate) fn queued_conflict_copies(store: &Store) -> Vec<Queued> {
    let text = std::fs::read_to_string(store.state.join(CONFLICTS)).unwrap_or_default();
    let queued: Vec<Queued> = text
        .lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            Some(Queued {
                id: words.next()?.parse().ok()?,
                blob: Oid::from_str(words.next()?).ok()?,
                commit: Oid::from_str(words.next()?).ok()?,
                ours: words.next().and_then(|w| Oid::from_str(w).ok()),
            })
        })
        .collect();
    if queued.is_empty() {
        return queued;
    }
    let Ok(repo) = crate::git::open(&store.work) else {
        return queued;
    };
    let moving = crate::git::head_state(&store.work) == crate::git::HeadState::Moving;
    queued
        .into_iter()
        .filter(|q| still_merging(&repo, moving, q))
        .collect()
}

/// Whether the merge driver has queued values for `sesto resolve` in the
/// repository whose git directory is `git_dir` (no store opened: for the
/// pre-commit hook). [`waiting_copies`] says which still belong to a merge.
pub fn copies_queued(git_dir: &Path) -> bool {
    std::fs::read(git_dir.join("sesto").join(CONFLICTS))
        .is_ok_and(|queued| !queued.iter().all(u8::is_ascii_whitespace))
}

/// How many values a merge kept beside ours still wait for `sesto resolve`
/// to write them (a plain `git pull`, or a squash, leaves them to it).
pub fn waiting_copies(store: &Store) -> usize {
    queued_conflict_copies(store).len()
}

/// Whether `HEAD` is where the merge that queued `q` left it: at ours with
/// the merge or rebase still under way, or past ours with theirs taken in
/// (a merge's parent, or a commit of the branch a rebase replayed, which
/// `ORIG_HEAD` names).
fn still_merging(repo: &Repository, moving: bool, q: &Queued) -> bool {
    let Some(ours) = q.ours else {
        return true;
    };
    let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()).map(|c| c.id()) else {
        return false;
    };
    if head == ours {
        return moving || squashing(repo, q.commit);
    }
    let holds = |tip: Oid, commit: Oid| {
        tip == commit || repo.graph_descendant_of(tip, commit).unwrap_or(false)
    };
    if !holds(head, ours) {
        return false;
    }
    holds(head, q.commit)
        || repo
            .refname_to_id("ORIG_HEAD")
            .is_ok_and(|orig| holds(orig, q.commit))
}

/// Whether a `git merge --squash` of a line holding `theirs` is waiting to
/// be committed: it moves no `HEAD` and leaves no `MERGE_HEAD`, only
/// `SQUASH_MSG`, which lists the commits it took in.
fn squashing(repo: &Repository, theirs: Oid) -> bool {
    let file = repo.path().join("SQUASH_MSG");
    let Ok(text) = crate::format::limits::read_regular(&file, 4 << 20) else {
        return false;
    };
    let want = format!("commit {theirs}");
    String::from_utf8_lossy(&text)
        .lines()
        .any(|l| l.trim_end() == want)
}

/// Forgets the queue once `resolve` has kept every copy.
pub(crate) fn clear_conflict_copies(store: &Store) -> Result<()> {
    crate::store::journal::remove_if_exists(&store.state.join(CONFLICTS))
}
