//! `fsck`: decrypt and verify every node, check the layout of `.sesto/`, find
//! orphans and leftovers, and optionally clean them.
//!
//! Nodes are read level by level from the root, each level spread over the
//! machine's cores: a level of a large store is thousands of independent
//! decryptions and signature checks.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::format::node::{self, Kind, NodeId};
use crate::store::journal::{self, Lock};
use crate::store::{SPath, Store};

/// One thing fsck found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file under the work tree, or a store path.
    pub file: String,
    /// What is wrong.
    pub detail: String,
    /// Whether `--fix` can remove it safely (orphans and temp files).
    pub fixable: bool,
}

/// The outcome of [`Store::fsck`].
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Folders verified.
    pub folders: usize,
    /// Secrets verified.
    pub secrets: usize,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// Files removed by `--fix`.
    pub fixed: Vec<String>,
    /// Secrets whose value members who lost access could read, with those
    /// members: values to change (`sesto stale`).
    pub exposed: Vec<(SPath, Vec<String>)>,
}

struct Task {
    id: NodeId,
    key: Option<crate::format::node::NodeKey>,
    chain: Vec<NodeId>,
    path: SPath,
    kind: Kind,
}

impl Store {
    /// Verifies the whole store. With `fix`, removes orphaned node files and
    /// leftover temp files and stages the removal.
    pub fn fsck(&self, fix: bool) -> Result<Report> {
        let _lock = if fix {
            Some(Lock::acquire(&self.state)?)
        } else {
            None
        };
        let mut report = Report::default();
        let on_disk = self.scan_layout(&mut report.problems)?;
        let mut reachable: HashSet<NodeId> = HashSet::new();
        let root = self.roster.root;
        // Admins check everything from the root; a member the folders granted
        // to them, and cannot tell an orphan from a folder they do not see.
        let whole = self.me.is_none() || self.is_admin();
        let mut level: Vec<Task> = if whole {
            vec![Task {
                id: root,
                key: None,
                chain: vec![root],
                path: SPath::root(),
                kind: Kind::Folder,
            }]
        } else {
            let tops = self.tops()?;
            tops.iter()
                .filter(|(p, _)| !tops.iter().any(|(q, _)| p.starts_with(q) && p != q))
                .map(|(path, node)| Task {
                    id: node.id,
                    key: None,
                    chain: vec![node.id],
                    path: path.clone(),
                    kind: Kind::Folder,
                })
                .collect()
        };
        let mut depth = 0;
        while !level.is_empty() {
            // A node met again (a folder listing itself or an ancestor, or one
            // id under two names) is reported once and not walked again.
            level.retain(|t| {
                let first = reachable.insert(t.id);
                if !first {
                    report.problems.push(Problem {
                        file: format!(".sesto/{}", self.rel_path(&t.id)),
                        detail: format!("referenced twice (again at {})", t.path),
                        fixable: false,
                    });
                }
                first
            });
            depth += 1;
            if depth > crate::format::node::MAX_DEPTH + 1 {
                for t in &level {
                    report.problems.push(Problem {
                        file: format!(".sesto/{}", self.rel_path(&t.id)),
                        detail: format!(
                            "folders nest deeper than {} at {}",
                            crate::format::node::MAX_DEPTH,
                            t.path
                        ),
                        fixable: false,
                    });
                }
                break;
            }
            let results = self.read_level(&level);
            let mut next = Vec::new();
            for (task, result) in level.into_iter().zip(results) {
                match result {
                    Err(e) => report.problems.push(Problem {
                        file: format!(".sesto/{}", self.rel_path(&task.id)),
                        detail: format!("{} at {}: {e}", task.kind, task.path),
                        fixable: false,
                    }),
                    Ok(node) if node.body.kind != task.kind => report.problems.push(Problem {
                        file: format!(".sesto/{}", self.rel_path(&task.id)),
                        detail: format!(
                            "{} is listed as a {} but is a {}",
                            task.path, task.kind, node.body.kind
                        ),
                        fixable: false,
                    }),
                    Ok(node) => {
                        match node.body.kind {
                            Kind::Folder => report.folders += 1,
                            Kind::Secret => report.secrets += 1,
                        }
                        if !node.body.exposed_to.is_empty() {
                            report
                                .exposed
                                .push((task.path.clone(), node.body.exposed_to.clone()));
                        }
                        for e in &node.body.children {
                            let mut chain = task.chain.clone();
                            chain.push(e.id);
                            next.push(Task {
                                id: e.id,
                                key: Some(e.key.clone()),
                                chain,
                                path: task.path.join(&e.name),
                                kind: e.kind,
                            });
                        }
                    }
                }
            }
            level = next;
        }
        for (id, file) in &on_disk {
            if whole && !reachable.contains(id) {
                report.problems.push(Problem {
                    file: file.clone(),
                    detail:
                        "orphan: no folder refers to it (left by an interrupted write or a merge)"
                            .into(),
                    fixable: true,
                });
            }
        }
        if whole {
            report.folders = report.folders.saturating_sub(1); // the root is not counted as a folder
        }
        report.exposed.sort();
        if fix {
            self.fix(&mut report)?;
        }
        Ok(report)
    }

    /// Checks what needs no key: `.sesto/` holds only the roster and node
    /// files, each a well-formed age file. Returns how many node files there
    /// are and what is wrong.
    pub fn check_files(&self) -> Result<(usize, Vec<Problem>)> {
        let mut problems = Vec::new();
        let nodes: Vec<(NodeId, String)> = self.scan_layout(&mut problems)?.into_iter().collect();
        let checked = crate::par::map(&nodes, |(id, _)| {
            let bytes = crate::store::files::read_limited(
                &self.node_file(id),
                crate::format::node::MAX_NODE_FILE,
            )
            .map_err(|e| e.to_string())?;
            age::Decryptor::new_buffered(&bytes[..])
                .map(|_| ())
                .map_err(|e| format!("not a well-formed age file: {e}"))
        });
        for ((_, file), result) in nodes.iter().zip(checked) {
            if let Err(detail) = result {
                problems.push(Problem {
                    file: file.clone(),
                    detail,
                    fixable: false,
                });
            }
        }
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        Ok((nodes.len(), problems))
    }

    fn read_level(&self, level: &[Task]) -> Vec<Result<crate::store::Node>> {
        crate::par::map(level, |t| {
            // Keep only what the walk needs: a secret's value is dropped at once.
            self.read_node(&t.id, t.key.as_ref(), &t.chain)
                .map(|mut n| {
                    n.body.value = None;
                    n
                })
        })
    }

    /// Checks that `.sesto/` holds only what sesto writes; returns node files by id.
    fn scan_layout(&self, problems: &mut Vec<Problem>) -> Result<HashMap<NodeId, String>> {
        let mut nodes = HashMap::new();
        let known = ["roster.yaml", "roster.sig", "roster.log", ".gitattributes"];
        let rel = |p: &Path| {
            format!(
                ".sesto/{}",
                p.strip_prefix(&self.dir).unwrap_or(p).display()
            )
        };
        for entry in walkdir::WalkDir::new(&self.dir)
            .follow_links(false)
            .min_depth(1)
        {
            let entry = entry.map_err(|e| Error::Refused {
                path: self.dir.clone(),
                reason: e.to_string(),
            })?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy();
            let depth = entry.depth();
            let problem = |detail: &str, fixable: bool| Problem {
                file: rel(path),
                detail: detail.into(),
                fixable,
            };
            if entry.path_is_symlink() {
                problems.push(problem("symlinks are not allowed in .sesto/", false));
                continue;
            }
            if name.starts_with(journal::TEMP_MARK) {
                problems.push(problem("temporary file left by an interrupted write", true));
                continue;
            }
            let ft = entry.file_type();
            let format = self.roster.sesto;
            let levels = node::shard_levels(format);
            // A shard directory of either format's layout: files in the
            // other one are reported one by one below.
            let shard_dir = |depth: usize| {
                (node::OLDEST_FORMAT..=node::FORMAT).any(|f| {
                    depth >= 2
                        && depth <= node::shard_levels(f) + 1
                        && name.len() == if f == 1 { 2 } else { 1 }
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
                })
            };
            match depth {
                1 if ft.is_dir() && name == "nodes" => {}
                1 if ft.is_file() && known.contains(&name.as_ref()) => {}
                _ if ft.is_dir() && shard_dir(depth) => {}
                _ if ft.is_file() && depth >= 3 => {
                    let rel_here = path
                        .strip_prefix(&self.dir)
                        .unwrap_or(path)
                        .to_string_lossy()
                        .into_owned();
                    match NodeId::from_any_rel_path(&rel_here) {
                        Some((id, f)) if f == format => {
                            nodes.insert(id, rel(path));
                        }
                        Some((_, f)) => problems.push(problem(
                            &format!(
                                "node file where format {f} keeps it, in a store of format \
                                 {format}: no reader opens it (a merge across `sesto migrate` \
                                 left it? `sesto resolve` moves it to its place)"
                            ),
                            false,
                        )),
                        None if name
                            .strip_suffix(".age")
                            .is_some_and(|s| s.parse::<NodeId>().is_ok()) =>
                        {
                            problems.push(problem("node file in the wrong shard directory", false))
                        }
                        None if depth == levels + 2 => problems.push(problem(
                            "not a node file: names are <32 hex digits>.age",
                            false,
                        )),
                        None => {
                            problems.push(problem("unexpected file or directory in .sesto/", false))
                        }
                    }
                }
                _ => problems.push(problem("unexpected file or directory in .sesto/", false)),
            }
        }
        Ok(nodes)
    }

    fn fix(&self, report: &mut Report) -> Result<()> {
        let mut removed = Vec::new();
        for p in report.problems.iter().filter(|p| p.fixable) {
            let path = self.work.join(&p.file);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    removed.push(p.file.clone());
                    if let Some(shard) = path
                        .parent()
                        .filter(|d| d.starts_with(self.dir.join("nodes")))
                    {
                        let _ = std::fs::remove_dir(shard); // only when empty
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", &path)(e)),
            }
        }
        if !removed.is_empty() {
            let repo = crate::git::open(&self.work)?;
            crate::git::stage(&repo, &removed)?;
        }
        report.problems.retain(|p| !p.fixable);
        report.fixed = removed;
        Ok(())
    }
}
