//! The node files of a commit's tree, found where its store format's layout
//! puts them, and the ones two trees differ in.
//!
//! Only a file at the path [`NodeId::rel_path`] gives its id in that
//! commit's format counts: a file anywhere else (another shard, the other
//! format's layout) is never opened by a reader, so history walks and the
//! rollback check must not count it either.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use git2::{ObjectType, Oid, Repository, Tree};

use crate::format::node::{shard_levels, NodeId};

/// A node file's blob on each side of a comparison (`None`: no file).
pub(crate) type Differs = (NodeId, Option<Oid>, Option<Oid>);

/// Every node file in `tree` (a commit's root tree): id → blob.
pub(crate) fn node_files(repo: &Repository, tree: &Tree) -> HashMap<NodeId, Oid> {
    let format = super::sides::tree_format(repo, tree);
    let mut out = HashMap::new();
    if let Some(nodes) = nodes_tree(repo, tree) {
        walk(
            repo,
            &nodes,
            "nodes",
            shard_levels(format),
            format,
            &mut |id, blob| {
                out.insert(id, blob);
            },
        );
    }
    out
}

/// The node files that differ between the commits whose trees are `old` and
/// `new`, sorted by id. Where both are in one format, only directories whose
/// tree ids differ are looked into, so a commit that changed one file costs a
/// few small tree reads, not a walk of the store; across `sesto migrate` both
/// trees are listed whole and compared by id (a file moved unchanged is no
/// change).
pub(crate) fn changed_node_files(repo: &Repository, old: &Tree, new: &Tree) -> Vec<Differs> {
    let (format_old, format_new) = (
        super::sides::tree_format(repo, old),
        super::sides::tree_format(repo, new),
    );
    let (a, b) = (nodes_tree(repo, old), nodes_tree(repo, new));
    if format_old != format_new {
        let (was, now) = (node_files(repo, old), node_files(repo, new));
        let mut ids: Vec<&NodeId> = was.keys().chain(now.keys()).collect();
        ids.sort_unstable();
        ids.dedup();
        return ids
            .into_iter()
            .map(|id| (*id, was.get(id).copied(), now.get(id).copied()))
            .filter(|(_, a, b)| a != b)
            .collect();
    }
    let mut out = Vec::new();
    diff(
        repo,
        a.as_ref(),
        b.as_ref(),
        "nodes",
        shard_levels(format_new),
        format_new,
        &mut out,
    );
    out.sort_unstable_by_key(|d| d.0);
    out
}

/// The `.sesto/nodes` tree of a commit's root tree.
fn nodes_tree<'r>(repo: &'r Repository, tree: &Tree) -> Option<Tree<'r>> {
    let entry = tree.get_path(Path::new(".sesto/nodes")).ok()?;
    repo.find_tree(entry.id()).ok()
}

/// Calls `found` for each node file below `tree` (at `rel`, `levels` shard
/// levels above the files) that is where `format` puts it.
fn walk(
    repo: &Repository,
    tree: &Tree,
    rel: &str,
    levels: usize,
    format: u32,
    found: &mut dyn FnMut(NodeId, Oid),
) {
    for entry in tree.iter() {
        let Some(name) = entry.name() else { continue };
        let path = format!("{rel}/{name}");
        match entry.kind() {
            Some(ObjectType::Tree) if levels > 0 => {
                if let Ok(sub) = repo.find_tree(entry.id()) {
                    walk(repo, &sub, &path, levels - 1, format, found);
                }
            }
            Some(ObjectType::Blob) if levels == 0 => {
                if let Some(id) = NodeId::from_rel_path(&path, format) {
                    found(id, entry.id());
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

/// Pushes onto `out` the node files that differ between `a` and `b` (the
/// same directory in two trees of one format).
fn diff(
    repo: &Repository,
    a: Option<&Tree>,
    b: Option<&Tree>,
    rel: &str,
    levels: usize,
    format: u32,
    out: &mut Vec<Differs>,
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
        if levels > 0 {
            let sub = |e: Option<&(Option<ObjectType>, Oid)>| {
                e.filter(|(kind, _)| *kind == Some(ObjectType::Tree))
                    .and_then(|(_, id)| repo.find_tree(*id).ok())
            };
            let (sa, sb) = (sub(x), sub(y));
            if sa.is_some() || sb.is_some() {
                diff(
                    repo,
                    sa.as_ref(),
                    sb.as_ref(),
                    &path,
                    levels - 1,
                    format,
                    out,
                );
            }
        } else if let Some(id) = NodeId::from_rel_path(&path, format) {
            let blob = |e: Option<&(Option<ObjectType>, Oid)>| {
                e.filter(|(kind, _)| *kind == Some(ObjectType::Blob))
                    .map(|(_, id)| *id)
            };
            let (ba, bb) = (blob(x), blob(y));
            if ba != bb {
                out.push((id, ba, bb));
            }
        }
    }
}
