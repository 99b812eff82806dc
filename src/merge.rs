//! sesto's git merge driver: merging two versions of one encrypted node by
//! DESIGN.md's rules, so concurrent changes from many clones lose no secret.
//!
//! git runs `sesto merge-driver %O %A %B %P` for a node file both sides
//! changed. Folders merge as sets of entries; secrets merge as text when both
//! changed the value, and when that conflicts ours stays and theirs is queued
//! to be kept beside it as `name (conflict N)` by `sesto resolve` (a driver
//! may write only the file it was given). The merged node is signed by the
//! merging member.
//!
//! git tells a driver neither side's commit. Ours is `HEAD`; theirs is found
//! as the newest commit on any ref whose tree holds theirs' file, and the base
//! as the merge base of the two. Their trees give the node's keys.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::str::FromStr;

use git2::{Commit, Oid, Repository, Tree};

use crate::crypto;
use crate::error::{Error, Result};
use crate::node::{self, Entry, Kind, NodeId, NodeKey, Value};
use crate::store::{Node, Store};

/// Most commits searched for the one holding theirs' file.
const MAX_SEARCH: usize = 20_000;

/// Where one node sits in one commit's tree.
#[derive(Clone)]
pub(crate) struct Placed {
    pub(crate) key: Option<NodeKey>,
    pub(crate) parent: Option<NodeId>,
    pub(crate) name: String,
    /// Folder or secret.
    pub(crate) kind: Kind,
    /// Ancestors and the node itself, root first.
    pub(crate) chain: Vec<NodeId>,
}

/// The nodes of one commit this member can reach, found by decrypting its
/// folders from git objects. Signatures are not checked here: these keys
/// only open files, which are verified when they are used.
pub(crate) struct TreeIndex<'r> {
    repo: &'r Repository,
    tree: Tree<'r>,
    pub(crate) nodes: HashMap<NodeId, Placed>,
}

/// The path of a node file inside the repository.
pub(crate) fn node_path(id: &NodeId) -> String {
    format!(".sesto/{}", id.rel_path())
}

impl<'r> TreeIndex<'r> {
    /// Indexes `commit`'s tree with the store's identities.
    pub(crate) fn of(
        store: &Store,
        repo: &'r Repository,
        commit: &Commit<'r>,
    ) -> Result<TreeIndex<'r>> {
        let tree = commit.tree()?;
        let mut index = TreeIndex {
            repo,
            tree,
            nodes: HashMap::new(),
        };
        let root = store.roster.root;
        let mut starts = vec![root];
        starts.extend(store.roster.grants.keys().copied());
        let members = store.ids.age_identities(|p| store.keys.contains_key(p))?;
        let mut level: Vec<(NodeId, Option<NodeKey>, Vec<NodeId>)> = Vec::new();
        for id in starts {
            if index.nodes.contains_key(&id) {
                continue;
            }
            let Some(bytes) = index.blob(&id) else {
                continue;
            };
            if crypto::decrypt(&bytes, &members).is_ok() {
                index.nodes.insert(
                    id,
                    Placed {
                        key: None,
                        parent: None,
                        name: String::new(),
                        kind: Kind::Folder,
                        chain: vec![id],
                    },
                );
                level.push((id, None, vec![id]));
            }
        }
        while let Some((id, key, chain)) = level.pop() {
            let Some(bytes) = index.blob(&id) else {
                continue;
            };
            let plain = match &key {
                Some(k) => age::x25519::Identity::from_str(k.expose_secret())
                    .ok()
                    .and_then(|i| crypto::decrypt(&bytes, &[&i]).ok()),
                None => crypto::decrypt(&bytes, &members).ok(),
            };
            let Some(plain) = plain else { continue };
            let Ok(body) = node::split(&plain).and_then(|p| node::decode_body(p.body)) else {
                continue;
            };
            for e in &body.children {
                if chain.contains(&e.id) || chain.len() > node::MAX_DEPTH {
                    continue;
                }
                let mut c = chain.clone();
                c.push(e.id);
                let placed = Placed {
                    key: Some(e.key.clone()),
                    parent: Some(id),
                    name: e.name.clone(),
                    kind: e.kind,
                    chain: c.clone(),
                };
                // A granted folder reached again from above: the fuller chain wins.
                index.nodes.insert(e.id, placed);
                if e.kind == Kind::Folder {
                    level.push((e.id, Some(e.key.clone()), c));
                }
            }
        }
        Ok(index)
    }

    /// The id at `path` in this tree, following entry names from the root
    /// (or from a granted folder whose own path this index cannot see).
    pub(crate) fn resolve(&self, store: &Store, path: &crate::store::SPath) -> Option<NodeId> {
        let mut at = store.roster.root;
        if !self.nodes.contains_key(&at) {
            return None;
        }
        for name in path.names() {
            at = self
                .nodes
                .iter()
                .find(|(_, p)| p.parent == Some(at) && p.name == *name)
                .map(|(id, _)| *id)?;
        }
        Some(at)
    }

    /// The path of a node in this tree, from the entry names above it.
    pub(crate) fn path_of(&self, id: &NodeId) -> Option<crate::store::SPath> {
        let mut names = Vec::new();
        let mut at = self.nodes.get(id)?;
        while let Some(parent) = at.parent {
            names.push(at.name.clone());
            at = self.nodes.get(&parent)?;
            if names.len() > node::MAX_DEPTH {
                return None;
            }
        }
        names.reverse();
        crate::store::SPath::parse(&names.join("/")).ok()
    }

    /// The node file's bytes in this tree.
    pub(crate) fn blob(&self, id: &NodeId) -> Option<Vec<u8>> {
        let entry = self.tree.get_path(Path::new(&node_path(id))).ok()?;
        let blob = self.repo.find_blob(entry.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// The blob id of the node's file in this tree.
    pub(crate) fn blob_id(&self, id: &NodeId) -> Option<Oid> {
        self.tree
            .get_path(Path::new(&node_path(id)))
            .ok()
            .map(|e| e.id())
    }
}

/// The newest commit on any ref whose tree holds `blob` at `path`.
pub(crate) fn commit_holding<'r>(
    repo: &'r Repository,
    path: &str,
    blob: Oid,
) -> Option<Commit<'r>> {
    let mut walk = repo.revwalk().ok()?;
    walk.set_sorting(git2::Sort::TIME).ok()?;
    let _ = walk.push_glob("*");
    for name in [
        "ORIG_HEAD",
        "FETCH_HEAD",
        "MERGE_HEAD",
        "REBASE_HEAD",
        "CHERRY_PICK_HEAD",
    ] {
        if let Ok(oid) = repo.refname_to_id(name) {
            let _ = walk.push(oid);
        }
    }
    for oid in walk.flatten().take(MAX_SEARCH) {
        let Ok(commit) = repo.find_commit(oid) else {
            continue;
        };
        let held = commit
            .tree()
            .ok()
            .and_then(|t| t.get_path(Path::new(path)).ok())
            .is_some_and(|e| e.id() == blob);
        if held {
            return Some(commit);
        }
    }
    None
}

/// The three sides of a merge, as far as they can be found.
pub(crate) struct Sides<'r> {
    pub(crate) ours: TreeIndex<'r>,
    pub(crate) theirs: Option<TreeIndex<'r>>,
    pub(crate) base: Option<TreeIndex<'r>>,
}

impl Sides<'_> {
    /// Every key known for `id` on any side, ours first.
    fn keys(&self, id: &NodeId) -> Vec<NodeKey> {
        let mut out: Vec<NodeKey> = Vec::new();
        for side in [Some(&self.ours), self.theirs.as_ref(), self.base.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(k) = side.nodes.get(id).and_then(|p| p.key.clone()) {
                if !out.iter().any(|o| o.expose_secret() == k.expose_secret()) {
                    out.push(k);
                }
            }
        }
        out
    }

    /// Whether the file of `id` differs between `side` and the base (unknown
    /// counts as changed: an edit is never dropped on a guess).
    fn changed(&self, side: &TreeIndex, id: &NodeId) -> bool {
        match &self.base {
            Some(base) => side.blob_id(id) != base.blob_id(id),
            None => true,
        }
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
    let id = path
        .strip_prefix(".sesto/nodes/")
        .and_then(|p| p.split('/').nth(1))
        .and_then(|f| f.strip_suffix(".age"))
        .ok_or_else(|| Error::Value(format!("{path} is not a sesto node file")))?
        .parse::<NodeId>()?;
    let read = |p: &Path| std::fs::read(p).map_err(Error::io("cannot read", p));
    let (o, a, b) = (read(base)?, read(ours)?, read(theirs)?);
    let repo = crate::git::open(&store.work)?;
    let head = repo.head()?.peel_to_commit()?;
    let their_blob = Oid::hash_object(git2::ObjectType::Blob, &b)?;
    // `sesto sync` names theirs' commit; a plain git merge makes us look.
    let hinted = std::env::var("SESTO_MERGE_THEIRS")
        .ok()
        .and_then(|h| Oid::from_str(&h).ok())
        .and_then(|oid| repo.find_commit(oid).ok())
        .filter(|c| {
            c.tree()
                .ok()
                .and_then(|t| t.get_path(Path::new(path)).ok())
                .is_some_and(|e| e.id() == their_blob)
        });
    let their_commit = hinted.or_else(|| commit_holding(&repo, path, their_blob));
    let base_commit = their_commit
        .as_ref()
        .and_then(|t| repo.merge_base(head.id(), t.id()).ok())
        .and_then(|oid| repo.find_commit(oid).ok());
    let sides = Sides {
        ours: TreeIndex::of(store, &repo, &head)?,
        theirs: their_commit
            .as_ref()
            .map(|c| TreeIndex::of(store, &repo, c))
            .transpose()?,
        base: base_commit
            .as_ref()
            .map(|c| TreeIndex::of(store, &repo, c))
            .transpose()?,
    };
    let merged = merge_node(store, &sides, &id, &o, &a, &b)?;
    std::fs::write(ours, merged.bytes).map_err(Error::io("cannot write", ours))?;
    if let Some(copy) = merged.conflict_copy {
        queue_conflict_copy(store, &id, &copy)?;
    }
    Ok(())
}

/// A merged node, and theirs' value when it had to be kept beside ours.
struct Merged {
    bytes: Vec<u8>,
    conflict_copy: Option<Oid>,
}

fn merge_node(
    store: &Store,
    sides: &Sides,
    id: &NodeId,
    o: &[u8],
    a: &[u8],
    b: &[u8],
) -> Result<Merged> {
    let keys = sides.keys(id);
    let chain_in = |side: Option<&TreeIndex>| {
        side.and_then(|s| s.nodes.get(id))
            .map(|p| p.chain.clone())
            .unwrap_or_else(|| vec![*id])
    };
    let open = |bytes: &[u8], chain: &[NodeId]| -> Result<Node> {
        let mut last = None;
        for k in keys.iter().map(Some).chain(std::iter::once(None)) {
            match store.open_node(id, bytes, k, chain) {
                Ok(n) => return Ok(n),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Value("no key".into())))
    };
    let ours = open(a, &chain_in(Some(&sides.ours)))?;
    let theirs = open(b, &chain_in(sides.theirs.as_ref()))?;
    // The base need not verify under today's roster; it only guides the merge.
    let base = (!o.is_empty())
        .then(|| open(o, &chain_in(sides.base.as_ref())).ok())
        .flatten();
    if ours.body.kind != theirs.body.kind {
        return Err(store.reject(
            id,
            "one side has a folder and the other a secret under one id",
        ));
    }
    let mut body = ours.body.clone();
    let mut conflict_copy = None;
    match body.kind {
        Kind::Folder => {
            body.children = merge_entries(
                sides,
                base.as_ref()
                    .map(|n| n.body.children.as_slice())
                    .unwrap_or(&[]),
                &ours.body.children,
                &theirs.body.children,
            );
        }
        Kind::Secret => {
            let ov = ours
                .body
                .value
                .as_ref()
                .map(Value::expose_secret)
                .unwrap_or_default();
            let tv = theirs
                .body
                .value
                .as_ref()
                .map(Value::expose_secret)
                .unwrap_or_default();
            let bv = base
                .as_ref()
                .and_then(|n| n.body.value.as_ref())
                .map(Value::expose_secret);
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
                        conflict_copy = Some(Oid::hash_object(git2::ObjectType::Blob, b)?);
                    }
                }
            }
        }
    }
    body.version = ours.body.version.max(theirs.body.version) + 1;
    // The key: theirs where only theirs rotated it, else ours.
    let base_key = sides
        .base
        .as_ref()
        .and_then(|s| s.nodes.get(id))
        .and_then(|p| p.key.clone());
    let their_key = sides
        .theirs
        .as_ref()
        .and_then(|s| s.nodes.get(id))
        .and_then(|p| p.key.clone());
    let key = match (&ours.key, &their_key, &base_key) {
        (Some(o), Some(t), Some(b))
            if o.expose_secret() == b.expose_secret() && t.expose_secret() != b.expose_secret() =>
        {
            Some(t.clone())
        }
        _ => ours.key.clone(),
    };
    let node = Node {
        id: *id,
        key,
        body,
        signer: String::new(),
    };
    let me = store
        .me
        .clone()
        .ok_or_else(|| Error::Denied("merging needs a member's key".into()))?;
    let signer = crate::tx::signer_for(store, &me)?;
    let bytes = crate::tx::encode_node(store, &store.roster, &node, &signer)?;
    Ok(Merged {
        bytes,
        conflict_copy,
    })
}

/// Merges folder entries by id: additions from both sides, renames and key
/// rotations from the side that made them, deletions only where the other
/// side left the node alone; a name taken twice gets ` (conflict N)`.
fn merge_entries(sides: &Sides, base: &[Entry], ours: &[Entry], theirs: &[Entry]) -> Vec<Entry> {
    let find = |list: &[Entry], id: &NodeId| list.iter().find(|e| e.id == *id).cloned();
    let mut out: Vec<Entry> = Vec::new();
    let same =
        |a: &Entry, b: &Entry| a.name == b.name && a.key.expose_secret() == b.key.expose_secret();
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
            // Theirs deleted it: gone, unless ours changed it since.
            (None, Some(b)) => {
                if !same(o, &b) || sides.changed(&sides.ours, &o.id) {
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
            // Ours deleted it: back, if theirs changed it since.
            Some(b) => {
                let changed = sides
                    .theirs
                    .as_ref()
                    .is_none_or(|s| sides.changed(s, &t.id));
                if !same(t, &b) || changed {
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
        if !taken.insert(e.name.clone()) {
            e.name = free_name(&taken, &e.name);
            taken.insert(e.name.clone());
        }
        result.push(e);
    }
    result.sort_by(|a, b| a.name.cmp(&b.name));
    result
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

fn queue_conflict_copy(store: &Store, id: &NodeId, blob: &Oid) -> Result<()> {
    std::fs::create_dir_all(&store.state).map_err(Error::io("cannot create", &store.state))?;
    let path = store.state.join(CONFLICTS);
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str(&format!("{id} {blob}\n"));
    crate::journal::write_atomic(&path, text.as_bytes())
}

/// Theirs' values the merge driver queued: node id and the blob of theirs' file.
pub(crate) fn queued_conflict_copies(store: &Store) -> Vec<(NodeId, Oid)> {
    let text = std::fs::read_to_string(store.state.join(CONFLICTS)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (id, blob) = l.split_once(' ')?;
            Some((id.parse().ok()?, Oid::from_str(blob).ok()?))
        })
        .collect()
}

/// Forgets the queue once `resolve` has kept every copy.
pub(crate) fn clear_conflict_copies(store: &Store) -> Result<()> {
    crate::journal::remove_if_exists(&store.state.join(CONFLICTS))
}
