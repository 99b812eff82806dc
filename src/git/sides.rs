//! The commits a merge brings together, each read as a store of its own:
//! its roster checked against what the user trusts, and every folder this
//! member reaches decrypted and verified under that roster, from the root
//! or a granted folder down.
//!
//! This is the merge rule's ground truth. A node from one side is accepted
//! only where it verifies at its position in that side's own tree; nothing
//! comes from other refs, and a commit's content is vouched for by nothing
//! but the signatures inside it. Keys for re-encrypting a merged node come
//! from these verified folders alone.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use git2::{Commit, Oid, Repository, Tree};

use crate::error::{Error, Result};
use crate::format::node::{self, Kind, NodeId, NodeKey, Roster};
use crate::git::node_files;
use crate::store::trust::Judge;
use crate::store::{Node, Rules, Store};

/// A folder to open while indexing: id, key from its parent (none for a
/// start), chain, and its file's bytes in the commit.
type ToOpen = (NodeId, Option<NodeKey>, Vec<NodeId>, Option<Vec<u8>>);

/// Where one node sits in one side's tree.
#[derive(Clone)]
pub(crate) struct Placed {
    /// Its key from the parent's entry; `None` for a folder this member
    /// reaches directly (the root for admins, a granted folder).
    pub(crate) key: Option<NodeKey>,
    pub(crate) parent: Option<NodeId>,
    pub(crate) name: String,
    pub(crate) kind: Kind,
    /// Ancestors and the node itself, from where this member starts.
    pub(crate) chain: Vec<NodeId>,
}

/// One commit of a merge, verified.
pub(crate) struct Side<'r> {
    /// The commit.
    pub(crate) commit: Oid,
    /// Its roster, trusted.
    pub(crate) roster: Roster,
    pub(crate) roster_bytes: Vec<u8>,
    pub(crate) roster_sig: Vec<u8>,
    keys: HashMap<String, String>,
    /// The merging member under this roster.
    pub(crate) me: Option<String>,
    repo: &'r Repository,
    tree: Tree<'r>,
    /// The layouts (store formats) node files are looked for in, in order:
    /// the verified roster's alone, or for a commit read under another
    /// commit's roster, the one its own roster declares first, then the
    /// others (a format 1 commit read under a format 2 roster, seed 840013).
    layouts: Vec<u32>,
    /// Every node this member reaches in this commit, placed by verified
    /// folders.
    pub(crate) nodes: HashMap<NodeId, Placed>,
    /// Nodes that failed verification here, and why.
    pub(crate) rejected: HashMap<NodeId, String>,
}

/// The path of a node file inside the repository, in a store of `format`.
pub(crate) fn node_path(id: &NodeId, format: u32) -> String {
    format!(".sesto/{}", id.rel_path(format))
}

/// The store format of the commit whose tree is `tree`, as its roster
/// declares it on its first line; 1 where it has none or declares none
/// (which no reader of that commit's nodes then opens anyway). The roster
/// itself is verified by whoever reads the commit's nodes; this only says
/// where to look for them.
pub(crate) fn tree_format(repo: &Repository, tree: &Tree) -> u32 {
    blob_at(repo, tree, ".sesto/roster.yaml")
        .and_then(|bytes| crate::format::node::declared_version(&bytes))
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| (crate::format::node::OLDEST_FORMAT..=crate::format::node::FORMAT).contains(v))
        .unwrap_or(crate::format::node::OLDEST_FORMAT)
}

/// Blob bytes at `path` in `tree`.
fn blob_at(repo: &Repository, tree: &Tree, path: &str) -> Option<Vec<u8>> {
    let entry = tree.get_path(Path::new(path)).ok()?;
    let blob = repo.find_blob(entry.id()).ok()?;
    Some(blob.content().to_vec())
}

impl<'r> Side<'r> {
    /// Reads `commit` as its own store: its roster must be one `judge`
    /// trusts; then the folders this member reaches are verified.
    pub(crate) fn load(
        store: &Store,
        repo: &'r Repository,
        judge: &Judge,
        commit: &Commit<'r>,
    ) -> Result<Side<'r>> {
        let mut side = Side::load_unindexed(store, repo, judge, commit)?;
        side.index(store, None);
        Ok(side)
    }

    /// The commit's roster, trusted, and the side built on it, nothing
    /// placed yet.
    fn load_unindexed(
        store: &Store,
        repo: &'r Repository,
        judge: &Judge,
        commit: &Commit<'r>,
    ) -> Result<Side<'r>> {
        let tree = commit.tree()?;
        let short = commit.id().to_string()[..12].to_string();
        let (bytes, sig) = match (
            blob_at(repo, &tree, ".sesto/roster.yaml"),
            blob_at(repo, &tree, ".sesto/roster.sig"),
        ) {
            (Some(b), Some(s)) => (b, s),
            _ => {
                return Err(Error::Roster(format!(
                    "commit {short} holds no signed roster"
                )))
            }
        };
        let roster = judge
            .trusts(&bytes, &sig)
            .map_err(|why| Error::Roster(format!("commit {short}: its roster: {why}")))?;
        Side::build(store, repo, commit, roster, bytes, sig)
    }

    /// [`Side::load`] placing, of the secrets, only those in `only` (every
    /// folder is still verified): for checks that look at a few nodes.
    pub(crate) fn load_placing(
        store: &Store,
        repo: &'r Repository,
        judge: &Judge,
        commit: &Commit<'r>,
        only: &HashSet<NodeId>,
    ) -> Result<Side<'r>> {
        let mut side = Side::load_unindexed(store, repo, judge, commit)?;
        side.index(store, Some(only));
        Ok(side)
    }

    /// Reads `commit` under `roster`, a roster already trusted (which need
    /// not be the commit's own): every folder is verified under it.
    pub(crate) fn load_under(
        store: &Store,
        repo: &'r Repository,
        commit: &Commit<'r>,
        roster: Roster,
        bytes: Vec<u8>,
        sig: Vec<u8>,
    ) -> Result<Side<'r>> {
        let mut side = Side::build(store, repo, commit, roster, bytes, sig)?;
        // The commit's files are where its own roster put them, which need
        // not be this roster's format; each file is verified when opened,
        // wherever it is found.
        side.layouts = node_files::layouts(tree_format(repo, &side.tree));
        side.index(store, None);
        Ok(side)
    }

    fn build(
        store: &Store,
        repo: &'r Repository,
        commit: &Commit<'r>,
        roster: Roster,
        bytes: Vec<u8>,
        sig: Vec<u8>,
    ) -> Result<Side<'r>> {
        let tree = commit.tree()?;
        let short = commit.id().to_string()[..12].to_string();
        if roster.store != store.roster.store {
            return Err(Error::Roster(format!(
                "commit {short} holds another store's roster"
            )));
        }
        let keys = crate::store::member_keys(&roster)?;
        let me = store.member_among(&keys);
        let layout = roster.sesto;
        Ok(Side {
            commit: commit.id(),
            roster,
            roster_bytes: bytes,
            roster_sig: sig,
            keys,
            me,
            repo,
            tree,
            layouts: vec![layout],
            nodes: HashMap::new(),
            rejected: HashMap::new(),
        })
    }

    /// The roster file's bytes in `commit`, if it has one.
    pub(crate) fn roster_file(repo: &Repository, commit: &Commit) -> Option<Vec<u8>> {
        blob_at(repo, &commit.tree().ok()?, ".sesto/roster.yaml")
    }

    /// The rules of this side's roster.
    pub(crate) fn rules(&self) -> Rules<'_> {
        Rules {
            roster: &self.roster,
            keys: &self.keys,
            me: self.me.as_deref(),
        }
    }

    /// Places every node this member reaches, verifying each folder on the
    /// way. A node listed twice, or whose folder does not verify, is
    /// rejected with everything below it.
    fn index(&mut self, store: &Store, only: Option<&HashSet<NodeId>>) {
        let Some(me) = self.me.clone() else {
            return;
        };
        let mut starts = Vec::new();
        if self.roster.is_admin(&me) {
            starts.push(self.roster.root);
        } else {
            starts.extend(
                self.roster
                    .grants
                    .iter()
                    .filter(|(_, g)| g.contains_key(&me))
                    .map(|(id, _)| *id),
            );
        }
        // Folders to open: id, key, chain.
        let mut todo: Vec<(NodeId, Option<NodeKey>, Vec<NodeId>)> = Vec::new();
        for id in starts {
            self.nodes.insert(
                id,
                Placed {
                    key: None,
                    parent: None,
                    name: String::new(),
                    kind: Kind::Folder,
                    chain: vec![id],
                },
            );
            todo.push((id, None, vec![id]));
        }
        let tops: Vec<NodeId> = todo.iter().map(|(id, _, _)| *id).collect();
        let mut listed: HashMap<NodeId, NodeId> = HashMap::new();
        // Level by level: each level's folders are read from git here (git2
        // objects stay on this thread), then decrypted and verified on all
        // cores.
        let mut level = todo;
        while !level.is_empty() {
            let read: Vec<ToOpen> = level
                .into_iter()
                .map(|(id, key, chain)| {
                    let bytes = self.blob(&id);
                    (id, key, chain, bytes)
                })
                .collect();
            let rules = self.rules();
            let opened = crate::par::map_from(8, &read, |(id, key, chain, bytes)| match bytes {
                Some(b) => store.open_node_under(&rules, id, b, key.as_ref(), chain),
                None => Err(store.reject(id, "the file is missing in this commit")),
            });
            level = Vec::new();
            for ((id, _, chain, _), folder) in read.into_iter().zip(opened) {
                let folder = match folder {
                    Ok(n) if n.body.kind == Kind::Folder => n,
                    Ok(_) => {
                        self.reject(id, "its parent lists a folder, but it is a secret".into());
                        continue;
                    }
                    Err(e) => {
                        self.reject(id, e.to_string());
                        continue;
                    }
                };
                for e in &folder.body.children {
                    if chain.contains(&e.id) || chain.len() > node::MAX_DEPTH {
                        self.reject(e.id, "a folder lists itself or an ancestor".into());
                        continue;
                    }
                    if listed.insert(e.id, id).is_some() {
                        self.reject(e.id, "listed twice".into());
                        continue;
                    }
                    if tops.contains(&e.id) {
                        // A granted folder reached again from above: its key is
                        // known now; it is verified from where the member starts,
                        // as every read does (`Store::start_for`).
                        if let Some(p) = self.nodes.get_mut(&e.id) {
                            p.key = Some(e.key.clone());
                            p.parent = Some(id);
                            p.name = e.name.clone();
                        }
                        continue;
                    }
                    if e.kind != Kind::Folder && only.is_some_and(|o| !o.contains(&e.id)) {
                        continue;
                    }
                    let mut c = chain.clone();
                    c.push(e.id);
                    self.nodes.insert(
                        e.id,
                        Placed {
                            key: Some(e.key.clone()),
                            parent: Some(id),
                            name: e.name.clone(),
                            kind: e.kind,
                            chain: c.clone(),
                        },
                    );
                    if e.kind == Kind::Folder {
                        level.push((e.id, Some(e.key.clone()), c));
                    }
                }
            }
        }
        // What sits below a rejected folder cannot be placed either.
        let rejected: Vec<NodeId> = self.rejected.keys().copied().collect();
        self.nodes
            .retain(|_, p| !p.chain.iter().any(|a| rejected.contains(a)));
    }

    fn reject(&mut self, id: NodeId, why: String) {
        self.rejected.entry(id).or_insert(why);
    }

    /// The node file's bytes in this commit.
    pub(crate) fn blob(&self, id: &NodeId) -> Option<Vec<u8>> {
        let oid = self.blob_id(id)?;
        Some(self.repo.find_blob(oid).ok()?.content().to_vec())
    }

    /// The blob id of the node's file in this commit.
    pub(crate) fn blob_id(&self, id: &NodeId) -> Option<Oid> {
        node_files::blob_in(&self.tree, id, &self.layouts)
    }

    /// Whether this commit has a file of node `id`, in either layout (a
    /// side that moved it in `sesto migrate` still has it).
    pub(crate) fn has_file(&self, id: &NodeId) -> bool {
        let any = node_files::layouts(self.roster.sesto);
        node_files::blob_in(&self.tree, id, &any).is_some()
    }

    /// Opens node `id` from `bytes`, which must be its file in this commit,
    /// verified at its place here. The error says why it is refused.
    pub(crate) fn open(&self, store: &Store, id: &NodeId, bytes: &[u8]) -> Result<Node> {
        let short = &self.commit.to_string()[..12];
        if let Some(why) = self.rejected.get(id) {
            return Err(store.reject(id, format!("in commit {short}: {why}")));
        }
        let Some(placed) = self.nodes.get(id) else {
            return Err(store.reject(
                id,
                format!(
                    "in commit {short} no folder {} can read lists it",
                    self.me.as_deref().unwrap_or("you")
                ),
            ));
        };
        let hash = Oid::hash_object(git2::ObjectType::Blob, bytes)?;
        if self.blob_id(id) != Some(hash) {
            return Err(store.reject(
                id,
                format!("the file git gave is not the one in commit {short}"),
            ));
        }
        let node = store
            .open_node_under(&self.rules(), id, bytes, placed.key.as_ref(), &placed.chain)
            .map_err(|e| match e {
                Error::Node { id, file, reason } => Error::Node {
                    id,
                    file,
                    reason: format!("in commit {short}: {reason}"),
                },
                other => other,
            })?;
        if node.body.kind != placed.kind {
            return Err(store.reject(
                id,
                format!("in commit {short} its folder lists another kind"),
            ));
        }
        Ok(node)
    }
}

/// The commit git is bringing in while it runs the merge driver, or while a
/// merge, rebase or cherry-pick it stopped is being settled: named by
/// `sesto sync`, by `git merge` (`GITHEAD_<oid>` in the environment), by a
/// rebase's list of done steps, by git's `*_HEAD` refs, or (with `held`)
/// as a stash being applied (see [`stashes`]). Only a commit whose tree
/// holds `blob` at `path` (when given) qualifies.
pub(crate) fn their_commit<'r>(
    repo: &'r Repository,
    held: Option<(&str, Oid)>,
) -> Option<Commit<'r>> {
    let mut candidates: Vec<Oid> = Vec::new();
    if let Some(oid) = std::env::var("SESTO_MERGE_THEIRS")
        .ok()
        .and_then(|h| Oid::from_str(&h).ok())
    {
        candidates.push(oid);
    }
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if let Some(oid) = name
            .strip_prefix("GITHEAD_")
            .and_then(|h| Oid::from_str(h).ok())
        {
            candidates.push(oid);
        }
    }
    // git leaves `REBASE_HEAD` behind when a rebase finishes: it names
    // theirs only while one is under way.
    let rebasing = rebasing(repo);
    for r in ["MERGE_HEAD", "CHERRY_PICK_HEAD", "REBASE_HEAD"] {
        if r == "REBASE_HEAD" && !rebasing {
            continue;
        }
        if let Ok(oid) = repo.refname_to_id(r) {
            candidates.push(oid);
        }
    }
    if let Some(oid) = rebase_step(repo) {
        candidates.push(oid);
    }
    // `git stash pop` (or `apply`, or an autostash) merges the stash's
    // commit and names it nowhere but in `refs/stash` or an autostash file,
    // which may stay after it is applied: it qualifies only by holding the
    // file git hands over.
    if held.is_some() {
        candidates.extend(stashes(repo));
    }
    candidates.into_iter().find_map(|oid| {
        let commit = repo.find_commit(oid).ok()?;
        match held {
            None => Some(commit),
            Some((path, blob)) => {
                let tree = commit.tree().ok()?;
                (tree.get_path(Path::new(path)).ok()?.id() == blob).then_some(commit)
            }
        }
    })
}

/// Whether a rebase is under way (its state directory is there).
pub(crate) fn rebasing(repo: &Repository) -> bool {
    ["rebase-merge", "rebase-apply"]
        .iter()
        .any(|d| repo.path().join(d).exists())
}

/// The stashes git may be applying: `refs/stash` (`git stash pop` or
/// `apply`) and the autostash of a rebase or merge (`--autostash`).
fn stashes(repo: &Repository) -> Vec<Oid> {
    let mut out: Vec<Oid> = repo.refname_to_id("refs/stash").into_iter().collect();
    for file in [
        "rebase-merge/autostash",
        "rebase-apply/autostash",
        "MERGE_AUTOSTASH",
    ] {
        let Ok(text) = crate::format::limits::read_regular(&repo.path().join(file), 256) else {
            continue;
        };
        let text = String::from_utf8_lossy(&text);
        if let Some(oid) = repo
            .revparse_single(text.trim())
            .ok()
            .and_then(|o| o.peel_to_commit().ok())
        {
            out.push(oid.id());
        }
    }
    out
}

/// Whether `theirs` is a stash git is applying (see [`stashes`]): once
/// applied cleanly a stash is dropped, and no merge is left under way for
/// `sesto resolve` to finish.
pub(crate) fn applying_stash(repo: &Repository, theirs: &Commit) -> bool {
    stashes(repo).contains(&theirs.id())
}

/// The commit a `git rebase` (merge backend) is picking: the last line of
/// its list of done steps.
fn rebase_step(repo: &Repository) -> Option<Oid> {
    let done: PathBuf = repo.path().join("rebase-merge/done");
    let meta = std::fs::metadata(&done).ok()?;
    if meta.len() > 1 << 20 {
        return None;
    }
    let text = std::fs::read_to_string(&done).ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let word = line.split_whitespace().nth(1)?;
    repo.revparse_single(word)
        .ok()?
        .peel_to_commit()
        .ok()
        .map(|c| c.id())
}

/// The merge base git used for `ours` and `theirs`, when the base file
/// (`base_blob` at `path`) is in one: the first parent of theirs for a
/// rebase or cherry-pick, else a merge base of the two.
pub(crate) fn base_commit<'r>(
    repo: &'r Repository,
    ours: Oid,
    theirs: &Commit<'r>,
    held: Option<(&str, Oid)>,
) -> Option<Commit<'r>> {
    // A rebase or cherry-pick applies theirs' own change: its base is
    // theirs' parent. A merge joins two histories: its base is where they
    // met (theirs' parent would count all of ours' history as a change).
    let mut candidates: Vec<Oid> = if picking(repo) {
        theirs.parent_ids().take(1).collect()
    } else {
        Vec::new()
    };
    if let Ok(bases) = repo.merge_bases(ours, theirs.id()) {
        candidates.extend(bases.iter());
    }
    candidates.into_iter().find_map(|oid| {
        let commit = repo.find_commit(oid).ok()?;
        let tree = commit.tree().ok()?;
        match held {
            None => Some(commit),
            Some((path, blob)) => {
                (tree.get_path(Path::new(path)).ok()?.id() == blob).then_some(commit)
            }
        }
    })
}

/// Whether git is applying single commits (a rebase or cherry-pick) rather
/// than merging: a merge names theirs in `MERGE_HEAD`, or to a merge driver
/// in `GITHEAD_*` (or `sesto sync`'s `SESTO_MERGE_THEIRS`).
fn picking(repo: &Repository) -> bool {
    use git2::RepositoryState as S;
    match repo.state() {
        S::Merge => false,
        S::Clean => !std::env::vars_os().any(|(k, _)| {
            k.to_str()
                .is_some_and(|k| k.starts_with("GITHEAD_") || k == "SESTO_MERGE_THEIRS")
        }),
        _ => true,
    }
}
