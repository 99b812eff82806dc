//! The node files of a commit's tree, and the ones two trees differ in.
//!
//! A node file counts where either format's layout puts it
//! ([`NodeId::from_any_rel_path`]): the roster that says which format a
//! commit is in is not verified here (a forged one could claim the other
//! format and hide every file from a walk that believed it), and a tree is
//! in one layout but for what an attacker plants or a merge across `sesto
//! migrate` leaves. Where one node has a file in both layouts, the one in
//! the format the commit's roster declares counts. A file anywhere else
//! (another shard, more levels) is never opened by a reader, so history
//! walks and the rollback check do not count it either.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree};

use crate::format::node::{NodeId, FORMAT, OLDEST_FORMAT};

/// A node file's blob on each side of a comparison (`None`: no file).
pub(crate) type Differs = (NodeId, Option<Oid>, Option<Oid>);

/// Directory levels below `nodes/` the deepest layout uses.
const LEVELS: usize = 4;

/// Every node file in `tree` (a commit's root tree): id → blob.
pub(crate) fn node_files(repo: &Repository, tree: &Tree) -> HashMap<NodeId, Oid> {
    let declared = super::sides::tree_format(repo, tree);
    let mut out: HashMap<NodeId, (u32, Oid)> = HashMap::new();
    if let Some(nodes) = nodes_tree(repo, tree) {
        walk(repo, &nodes, "nodes", LEVELS, &mut |id, format, blob| {
            keep(&mut out, id, format, blob, declared);
        });
    }
    out.into_iter().map(|(id, (_, blob))| (id, blob)).collect()
}

/// Keeps the file of `id` in `format`, unless one in the declared format is
/// kept already.
fn keep(out: &mut HashMap<NodeId, (u32, Oid)>, id: NodeId, format: u32, blob: Oid, declared: u32) {
    match out.get(&id) {
        Some((kept, _)) if *kept == declared => {}
        _ => {
            out.insert(id, (format, blob));
        }
    }
}

/// The node files that differ between the commits whose trees are `old` and
/// `new`, sorted by id. Only directories whose tree ids differ are looked
/// into, so a commit that changed one file costs a few small tree reads, not
/// a walk of the store; a file moved unchanged to the other layout (`sesto
/// migrate`) is no change.
pub(crate) fn changed_node_files(repo: &Repository, old: &Tree, new: &Tree) -> Vec<Differs> {
    let (declared_old, declared_new) = (
        super::sides::tree_format(repo, old),
        super::sides::tree_format(repo, new),
    );
    let (a, b) = (nodes_tree(repo, old), nodes_tree(repo, new));
    let mut was: HashMap<NodeId, (u32, Oid)> = HashMap::new();
    let mut now: HashMap<NodeId, (u32, Oid)> = HashMap::new();
    let mut ids: Vec<NodeId> = Vec::new();
    diff(
        repo,
        a.as_ref(),
        b.as_ref(),
        "nodes",
        LEVELS,
        &mut |id, format, x, y| {
            ids.push(id);
            if let Some(x) = x {
                keep(&mut was, id, format, x, declared_old);
            }
            if let Some(y) = y {
                keep(&mut now, id, format, y, declared_new);
            }
        },
    );
    ids.sort_unstable();
    ids.dedup();
    // A node whose file moved to the other layout was seen twice, once on
    // each side: its old and new files are compared by id. One seen on one
    // side only may still have a file in the other tree, unchanged, in the
    // other layout (it counts where the diff did not look).
    ids.into_iter()
        .filter_map(|id| {
            let blob_in = |seen: &HashMap<NodeId, (u32, Oid)>, tree: &Tree| {
                seen.get(&id)
                    .map(|(_, b)| *b)
                    .or_else(|| blob_of(repo, tree, &id))
            };
            let (x, y) = (blob_in(&was, old), blob_in(&now, new));
            (x != y).then_some((id, x, y))
        })
        .collect()
}

/// The blob of node `id`'s file in `tree`, in the layout its roster declares
/// or else in the other one. Reads the roster: for many lookups in one
/// tree, take [`layouts`] once and call [`blob_in`].
pub(crate) fn blob_of(repo: &Repository, tree: &Tree, id: &NodeId) -> Option<Oid> {
    blob_in(tree, id, &layouts(super::sides::tree_format(repo, tree)))
}

/// The layouts to look for a node file in, in order: the `declared`
/// format's first, then every other format this sesto reads.
pub(crate) fn layouts(declared: u32) -> Vec<u32> {
    std::iter::once(declared)
        .chain((OLDEST_FORMAT..=FORMAT).filter(|f| *f != declared))
        .collect()
}

/// The blob of node `id`'s file in `tree`, in the first of `layouts` that
/// has one.
pub(crate) fn blob_in(tree: &Tree, id: &NodeId, layouts: &[u32]) -> Option<Oid> {
    layouts.iter().find_map(|format| {
        tree.get_path(Path::new(&super::sides::node_path(id, *format)))
            .ok()
            .filter(|e| e.kind() == Some(ObjectType::Blob))
            .map(|e| e.id())
    })
}

/// The `.sesto/nodes` tree of a commit's root tree.
fn nodes_tree<'r>(repo: &'r Repository, tree: &Tree) -> Option<Tree<'r>> {
    let entry = tree.get_path(Path::new(".sesto/nodes")).ok()?;
    repo.find_tree(entry.id()).ok()
}

/// Calls `found` for each node file below `tree` (at `rel`, with up to
/// `levels` directory levels below it) that is where a format puts it.
fn walk(
    repo: &Repository,
    tree: &Tree,
    rel: &str,
    levels: usize,
    found: &mut dyn FnMut(NodeId, u32, Oid),
) {
    for entry in tree.iter() {
        let Some(name) = entry.name() else { continue };
        let path = format!("{rel}/{name}");
        match entry.kind() {
            Some(ObjectType::Tree) if levels > 0 => {
                if let Ok(sub) = repo.find_tree(entry.id()) {
                    walk(repo, &sub, &path, levels - 1, found);
                }
            }
            Some(ObjectType::Blob) => {
                if let Some((id, format)) = NodeId::from_any_rel_path(&path) {
                    found(id, format, entry.id());
                }
            }
            _ => {}
        }
    }
}

/// The entries of a tree by name: (kind, id).
fn entries(tree: Option<&Tree>) -> BTreeMap<String, (Option<ObjectType>, Oid)> {
    tree.map(|t| {
        t.iter()
            .filter_map(|e| Some((e.name()?.to_owned(), (e.kind(), e.id()))))
            .collect()
    })
    .unwrap_or_default()
}

/// Calls `found` for each node file that differs between `a` and `b` (the
/// same directory in two trees), with its blob in each.
fn diff(
    repo: &Repository,
    a: Option<&Tree>,
    b: Option<&Tree>,
    rel: &str,
    levels: usize,
    found: &mut dyn FnMut(NodeId, u32, Option<Oid>, Option<Oid>),
) {
    let (was, now) = (entries(a), entries(b));
    let mut names: Vec<&String> = was.keys().chain(now.keys()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let (x, y) = (was.get(name), now.get(name));
        if x == y {
            continue;
        }
        let path = format!("{rel}/{name}");
        let of = |e: Option<&(Option<ObjectType>, Oid)>, kind: ObjectType| {
            e.filter(|(k, _)| *k == Some(kind)).map(|(_, id)| *id)
        };
        if levels > 0 {
            let (ta, tb) = (of(x, ObjectType::Tree), of(y, ObjectType::Tree));
            if ta.is_some() || tb.is_some() {
                let (sa, sb) = (
                    ta.and_then(|t| repo.find_tree(t).ok()),
                    tb.and_then(|t| repo.find_tree(t).ok()),
                );
                diff(repo, sa.as_ref(), sb.as_ref(), &path, levels - 1, found);
            }
        }
        let (ba, bb) = (of(x, ObjectType::Blob), of(y, ObjectType::Blob));
        if ba != bb {
            if let Some((id, format)) = NodeId::from_any_rel_path(&path) {
                found(id, format, ba, bb);
            }
        }
    }
}
