//! After a merge or rebase across `sesto migrate`: node files git left
//! where this store's format does not keep them, moved to where it does.
//!
//! `sesto migrate` moves every node file, so git sees renames. A file one
//! side added under the old layout stays there (or, with git's directory
//! rename detection, lands in some other shard); a file one side changed
//! and the other moved and changed is a modify/delete conflict at the old
//! path, its other version at the new one. Files are put where readers look
//! by the id their name carries, and such a conflict becomes one at the new
//! path, which the rest of `resolve` settles like any other. A file moved
//! here is read and verified like any node file afterwards: this opens
//! nothing that writing the file at its path would not.

use std::collections::BTreeMap;
use std::path::Path;

use git2::{Oid, Repository};

use crate::error::Result;
use crate::format::node::NodeId;
use crate::store::Store;

/// One path's index entries by stage (0: merged; 1, 2, 3: base, ours,
/// theirs of a conflict): mode and blob.
type Stages = [Option<(u32, Oid)>; 4];

/// What [`Store::relocate_nodes`] did.
#[derive(Debug, Default)]
pub(crate) struct Relocated {
    /// Paths moved, as `old → new`.
    pub(crate) moved: Vec<String>,
    /// What could not be settled here.
    pub(crate) left: Vec<String>,
}

impl Store {
    /// Moves every node file in git's index that is not where this store's
    /// format keeps it (`<id>.age` anywhere else below `.sesto/nodes/`) to
    /// its place: in the index (as a conflict there, where it is one) and in
    /// the work tree.
    pub(crate) fn relocate_nodes(&self, repo: &Repository) -> Result<Relocated> {
        let mut report = Relocated::default();
        let mut by_path: BTreeMap<String, Stages> = BTreeMap::new();
        for e in repo.index()?.iter() {
            let path = String::from_utf8_lossy(&e.path).into_owned();
            if path.starts_with(".sesto/nodes/") {
                let stage = usize::from((e.flags >> 12) & 3);
                by_path.entry(path).or_default()[stage] = Some((e.mode, e.id));
            }
        }
        let format = self.roster.sesto;
        let mut info = String::new();
        // Merged files moved: git is told about them again from the work
        // tree, so their index entries carry the files' stat data (without
        // it, `git merge --abort` finds them "not uptodate" and stops).
        let mut merged_moves = String::new();
        let mut files: Vec<(String, String, Oid)> = Vec::new();
        for (path, stages) in &by_path {
            let Some(id) = misplaced(path, format) else {
                continue;
            };
            let target = format!(".sesto/{}", id.rel_path(format));
            let there = by_path.get(&target);
            let entry = |(mode, oid): (u32, Oid), stage: u8, at: &str| {
                format!("{mode:o} {oid} {stage}\t{at}\n")
            };
            // Mode 0 removes the path, every stage of it.
            let remove = |at: &str| format!("0 {}\t{at}\n", Oid::zero());
            if let Some(merged) = stages[0] {
                match there {
                    None => {
                        info.push_str(&remove(path));
                        info.push_str(&entry(merged, 0, &target));
                        files.push((path.clone(), target.clone(), merged.1));
                        merged_moves.push_str(&target);
                        merged_moves.push('\0');
                    }
                    Some(t) if t[0].map(|e| e.1) == Some(merged.1) => {
                        info.push_str(&remove(path));
                        files.push((path.clone(), String::new(), merged.1));
                    }
                    Some(_) => {
                        report.left.push(format!(
                            "{path}: node {id} has another file at {target}; keep one \
                             (`git rm` the other) and run `sesto resolve` again"
                        ));
                        continue;
                    }
                }
            } else {
                // A conflict at the old path: the side that moved the node
                // has its version at the new one.
                let mut sides = *stages;
                match there {
                    None => {}
                    Some(t)
                        if t[1..].iter().all(Option::is_none)
                            && (sides[2].is_none() || sides[3].is_none()) =>
                    {
                        let moved = t[0];
                        for side in [2, 3] {
                            if sides[side].is_none() {
                                sides[side] = moved;
                                break;
                            }
                        }
                    }
                    Some(_) => {
                        report.left.push(format!(
                            "{path} and {target}: node {id} has a file in each layout and \
                             they do not settle; keep one (`git rm` the other, or `git \
                             checkout --ours -- {target}`) and run `sesto resolve` again"
                        ));
                        continue;
                    }
                }
                info.push_str(&remove(path));
                info.push_str(&remove(&target));
                for (stage, side) in sides.iter().enumerate().skip(1) {
                    if let Some(e) = side {
                        info.push_str(&entry(*e, stage as u8, &target));
                    }
                }
                if let Some(shown) = sides[2].or(sides[3]) {
                    files.push((path.clone(), target.clone(), shown.1));
                }
            }
            report.moved.push(format!("{path} → {target}"));
        }
        if info.is_empty() {
            return Ok(report);
        }
        // The work tree first: a file at its place before the index says so.
        for (from, to, blob) in &files {
            if !to.is_empty() {
                let target = self.work.join(to);
                crate::store::journal::prepare_dirs([target.as_path()])?;
                let bytes = repo.find_blob(*blob)?.content().to_vec();
                crate::store::journal::write_atomic(&target, &bytes)?;
            }
            let old = self.work.join(from);
            crate::store::journal::remove_if_exists(&old)?;
            crate::store::journal::remove_empty_dirs([old.as_path()]);
        }
        crate::git::run(
            &self.work,
            &["update-index", "--index-info"],
            info.as_bytes(),
            &[],
        )?;
        if !merged_moves.is_empty() {
            crate::git::run(
                &self.work,
                &["update-index", "--add", "-z", "--stdin"],
                merged_moves.as_bytes(),
                &[],
            )?;
        }
        Ok(report)
    }
}

/// The node a file at `path` (in the repository) is, where `path` is not
/// where a store of `format` keeps it; `None` for a file in its place and
/// for anything not named like a node file.
fn misplaced(path: &str, format: u32) -> Option<NodeId> {
    let rel = path.strip_prefix(".sesto/")?;
    let name = Path::new(rel).file_name()?.to_str()?;
    let id: NodeId = name.strip_suffix(".age")?.parse().ok()?;
    (NodeId::from_rel_path(rel, format) != Some(id)).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_node_files_outside_the_formats_layout_are_misplaced() {
        let id = NodeId::random();
        let hex = id.to_string();
        for format in [1, 2] {
            let other = 3 - format;
            let here = format!(".sesto/{}", id.rel_path(format));
            let there = format!(".sesto/{}", id.rel_path(other));
            assert_eq!(misplaced(&here, format), None, "{here}");
            assert_eq!(misplaced(&there, format), Some(id), "{there}");
            for odd in [
                format!(".sesto/nodes/zz/{hex}.age"),
                format!(".sesto/nodes/{hex}.age"),
                format!(".sesto/nodes/0/0/0/0/0/{hex}.age"),
            ] {
                assert_eq!(misplaced(&odd, format), Some(id), "{odd}");
            }
            for not_a_node in [
                format!(".sesto/nodes/{}/{hex}", &hex[..2]),
                format!(".sesto/nodes/{}/{}.age", &hex[..2], hex.to_uppercase()),
                ".sesto/nodes/ab/notes.txt".to_string(),
                format!("nodes/{}/{hex}.age", &hex[..2]),
                ".sesto/roster.yaml".to_string(),
                String::new(),
            ] {
                assert_eq!(misplaced(&not_a_node, format), None, "{not_a_node}");
            }
        }
    }
}
