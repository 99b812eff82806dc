//! Reading the store's past from git: node versions along history, to catch a
//! node rolled back to an older signed copy.
//!
//! Every write of a node raises its `version`; an attacker who can push may
//! put back an older file, which is still validly signed. Walking the history
//! of the current branch with the keys a member learns on the way, a version
//! that goes down is a rollback.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::crypto;
use crate::format::node::{self, NodeId, NodeKey};
use crate::store::read::Secret;
use crate::store::tree_index::TreeIndex;
use crate::store::SPath;
use crate::store::Store;

/// The outcome of [`Store::verify_node_history`].
#[derive(Debug, Default, Clone)]
pub struct NodeHistory {
    /// Commits walked.
    pub commits: usize,
    /// Node versions decrypted and compared.
    pub versions: usize,
    /// Versions that went down, described.
    pub problems: Vec<String>,
}

impl Store {
    /// Walks the first-parent history of `HEAD` from the oldest commit and
    /// checks that no node's version ever decreases, also where its file
    /// was removed and later added back. Node files this member's keys cannot open
    /// (before a grant, after a rotation) are skipped.
    pub fn verify_node_history(&self) -> Result<NodeHistory> {
        let repo = crate::git::open(&self.work)?;
        let mut report = NodeHistory::default();
        let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) else {
            return Ok(report);
        };
        let mut commits = vec![head.clone()];
        let mut at = head;
        while let Ok(parent) = at.parent(0) {
            commits.push(parent.clone());
            at = parent;
        }
        commits.reverse();
        let members = self.ids.age_identities(|p| self.keys.contains_key(p))?;
        let mut keys: HashMap<NodeId, Vec<NodeKey>> = HashMap::new();
        let mut highest: HashMap<NodeId, (u64, String)> = HashMap::new();
        // Each node's file in the previous commit, and versions already read.
        let mut current: HashMap<NodeId, git2::Oid> = HashMap::new();
        let mut versions: HashMap<git2::Oid, u64> = HashMap::new();
        for commit in &commits {
            report.commits += 1;
            let Ok(tree) = commit.tree() else { continue };
            // The node files this commit changed (by blob id). Only a file
            // where a reader looks for its node counts: one in another shard
            // or in the other format's layout is never read.
            let files = crate::git::node_files::node_files(&repo, &tree);
            let mut changed: Vec<(NodeId, git2::Oid)> = Vec::new();
            let mut present: HashSet<NodeId> = HashSet::new();
            for (id, blob) in files {
                present.insert(id);
                // A file put back byte for byte is a change too.
                if current.insert(id, blob) != Some(blob) {
                    changed.push((id, blob));
                }
            }
            changed.sort_unstable();
            // A node whose file this commit removed keeps its highest
            // version: a file put back later must be newer (whoever puts a
            // node back writes it above what was removed, as `sesto
            // resolve` does), or it is an older copy, as the check on each
            // pull judges it.
            current.retain(|id, _| present.contains(id));
            // Parents before children: repeat while a pass opens something.
            let short = commit.id().to_string()[..12].to_string();
            loop {
                let mut progress = false;
                let mut rest = Vec::new();
                for (id, blob) in changed {
                    if let Some(v) = versions.get(&blob) {
                        progress = true;
                        check(&mut report, &mut highest, id, *v, &short);
                        continue;
                    }
                    let Ok(blob_obj) = repo.find_blob(blob) else {
                        continue;
                    };
                    let bytes = blob_obj.content();
                    let node_keys: Vec<age::x25519::Identity> = keys
                        .get(&id)
                        .into_iter()
                        .flatten()
                        .filter_map(|k| age::x25519::Identity::from_str(k.expose_secret()).ok())
                        .collect();
                    let mut with: Vec<&dyn age::Identity> =
                        node_keys.iter().map(|k| k as &dyn age::Identity).collect();
                    with.extend(members.iter().copied());
                    let Ok(plain) = crypto::decrypt(bytes, &with) else {
                        rest.push((id, blob));
                        continue;
                    };
                    let Ok(body) = node::split(&plain).and_then(|p| node::decode_body(p.body))
                    else {
                        rest.push((id, blob));
                        continue;
                    };
                    progress = true;
                    report.versions += 1;
                    for e in &body.children {
                        let known = keys.entry(e.id).or_default();
                        if !known
                            .iter()
                            .any(|k| k.expose_secret() == e.key.expose_secret())
                        {
                            known.push(e.key.clone());
                            // A file this commit did not change is read
                            // too, now that its key is known (a member
                            // granted a folder learns its secrets' keys
                            // here), so its version counts from here.
                            if let Some(file) = current.get(&e.id) {
                                if !versions.contains_key(file)
                                    && !rest.iter().any(|(i, _)| *i == e.id)
                                {
                                    rest.push((e.id, *file));
                                }
                            }
                        }
                    }
                    versions.insert(blob, body.version);
                    check(&mut report, &mut highest, id, body.version, &short);
                }
                changed = rest;
                if !progress || changed.is_empty() {
                    break;
                }
            }
        }
        Ok(report)
    }
}

/// Records `version` of node `id` at commit `at`, reporting a decrease.
fn check(
    report: &mut NodeHistory,
    highest: &mut HashMap<NodeId, (u64, String)>,
    id: NodeId,
    version: u64,
    at: &str,
) {
    match highest.get(&id) {
        Some((v, was)) if version < *v => report.problems.push(format!(
            "node {id}: version {version} at commit {at} after version {v} at commit {was} (rolled back?)"
        )),
        _ => {
            highest.insert(id, (version, at.to_string()));
        }
    }
}

/// A node found at a path in one commit: its id, its file's blob, the index.
type Located<'r> = (NodeId, git2::Oid, TreeIndex<'r>);

/// One version of a secret in history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The commit that wrote it, abbreviated.
    pub commit: String,
    /// The commit's date (RFC 3339, UTC).
    pub date: String,
    /// The commit's author.
    pub author: String,
    /// The node's version number.
    pub version: u64,
    /// The member whose change it was.
    pub updated_by: Option<String>,
}

impl Store {
    /// The versions of the secret at `path` along the first-parent history
    /// of `HEAD`, newest first: one line per commit that changed its file.
    /// The path is looked up in each commit's tree, so renames are followed
    /// only as far as the name is the same.
    pub fn log(&self, path: &str) -> Result<Vec<Version>> {
        let path = SPath::parse(path)?;
        let repo = crate::git::open(&self.work)?;
        // The file at `path` in each commit, newest first.
        let mut found: Vec<(git2::Commit, Option<Located>)> = Vec::new();
        let mut commit = Some(repo.head()?.peel_to_commit()?);
        while let Some(c) = commit {
            let index = TreeIndex::of(self, &repo, &c)?;
            let at = index
                .resolve(self, &path)
                .and_then(|id| Some((id, index.blob_id(&id)?)))
                .map(|(id, blob)| (id, blob, index));
            commit = c.parent(0).ok();
            found.push((c, at));
        }
        let mut out: Vec<Version> = Vec::new();
        for i in 0..found.len() {
            let Some((id, blob, index)) = &found[i].1 else {
                continue;
            };
            let older = found
                .get(i + 1)
                .and_then(|(_, a)| a.as_ref().map(|(_, b, _)| *b));
            if older == Some(*blob) {
                continue;
            }
            let commit = &found[i].0;
            let placed = &index.nodes[id];
            let bytes = index.blob(id).unwrap_or_default();
            let node = self.open_node(id, &bytes, placed.key.as_ref(), &placed.chain)?;
            out.push(Version {
                commit: commit.id().to_string()[..12].to_string(),
                date: crate::format::time::format_rfc3339(commit.author().when().seconds()),
                author: commit.author().name().unwrap_or("?").to_string(),
                version: node.body.version,
                updated_by: node.body.updated_by,
            });
        }
        if out.is_empty() {
            return Err(Error::NotFound {
                path: path.to_string(),
                nearest: "not in this branch's history".into(),
            });
        }
        Ok(out)
    }

    /// The secret at `path` as it was at revision `rev` (anything `git
    /// rev-parse` takes: `HEAD~3`, a commit, a tag).
    pub fn show(&self, path: &str, rev: &str) -> Result<Secret> {
        let path = SPath::parse(path)?;
        let repo = crate::git::open(&self.work)?;
        let commit = repo
            .revparse_single(rev)
            .and_then(|o| o.peel_to_commit())
            .map_err(|_| Error::Value(format!("{rev} is not a commit in this repository")))?;
        let index = TreeIndex::of(self, &repo, &commit)?;
        let id = index.resolve(self, &path).ok_or_else(|| Error::NotFound {
            path: path.to_string(),
            nearest: format!("not in {rev}"),
        })?;
        let placed = &index.nodes[&id];
        let bytes = index.blob(&id).unwrap_or_default();
        let node = self.open_node(&id, &bytes, placed.key.as_ref(), &placed.chain)?;
        Secret::from_body(node.body).ok_or(Error::NotASecret {
            path: path.to_string(),
        })
    }
}

impl Store {
    /// The text `git diff` shows for a node file with `diff=sesto` (opt-in
    /// textconv): its path, kind and version, then a secret's value or a
    /// folder's entry names. Node keys are never shown. The id comes from
    /// the file name, which git keeps at the end of its temporary files.
    pub fn textconv(&self, file: &Path) -> Result<Vec<u8>> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.strip_suffix(".age").unwrap_or(&name);
        let id: NodeId = stem
            .get(stem.len().saturating_sub(32)..)
            .unwrap_or_default()
            .parse()?;
        let bytes = crate::store::files::read_limited(file, node::MAX_NODE_FILE)?;
        let repo = crate::git::open(&self.work)?;
        let mut places = Vec::new();
        if let Ok(head) = repo.head().and_then(|h| h.peel_to_commit()) {
            let index = TreeIndex::of(self, &repo, &head)?;
            if let Some(p) = index.nodes.get(&id) {
                places.push((p.clone(), index.path_of(&id)));
            }
        }
        for (placed, path) in places {
            if let Ok(n) = self.open_node(&id, &bytes, placed.key.as_ref(), &placed.chain) {
                return Ok(describe(&n.body, &path));
            }
        }
        // New since HEAD: its entry is in a folder of the work tree.
        let mut level: Vec<(SPath, crate::store::Node, Vec<NodeId>)> = self
            .tops()?
            .into_iter()
            .map(|(path, node)| {
                let chain = vec![node.id];
                (path, node, chain)
            })
            .collect();
        while !level.is_empty() {
            let mut next = Vec::new();
            for (path, folder, chain) in level {
                for e in &folder.body.children {
                    let mut c = chain.clone();
                    c.push(e.id);
                    if e.id == id {
                        let n = self.open_node(&id, &bytes, Some(&e.key), &c)?;
                        return Ok(describe(&n.body, &Some(path.join(&e.name))));
                    }
                    if e.kind == node::Kind::Folder && !chain.contains(&e.id) {
                        next.push((path.join(&e.name), self.read_entry(e, &c)?, c));
                    }
                }
            }
            level = next;
        }
        Err(self.reject(&id, "none of your keys opens it"))
    }
}

fn describe(body: &node::Body, path: &Option<SPath>) -> Vec<u8> {
    let path = path
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| format!("(node {})", body.id));
    let mut out = format!("# sesto {} {path}, version {}\n", body.kind, body.version).into_bytes();
    match body.kind {
        node::Kind::Folder => {
            for e in &body.children {
                let slash = if e.kind == node::Kind::Folder {
                    "/"
                } else {
                    ""
                };
                out.extend_from_slice(format!("{}{slash}\n", e.name).as_bytes());
            }
        }
        node::Kind::Secret => {
            if let (Some(at), Some(by)) = (&body.updated, &body.updated_by) {
                out.extend_from_slice(format!("# updated {at} by {by}\n").as_bytes());
            }
            if let Some(v) = &body.value {
                out.extend_from_slice(v.expose_secret());
                if !v.expose_secret().ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
        }
    }
    out
}
