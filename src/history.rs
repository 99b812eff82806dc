//! Reading the store's past from git: node versions along history, to catch a
//! node rolled back to an older signed copy.
//!
//! Every write of a node raises its `version`; an attacker who can push may
//! put back an older file, which is still validly signed. Walking the history
//! of the current branch with the keys a member learns on the way, a version
//! that goes down is a rollback.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;

use crate::crypto;
use crate::error::Result;
use crate::node::{self, NodeId, NodeKey};
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
    /// checks that no node's version ever decreases. Node files this member's
    /// keys cannot open (before a grant, after a rotation) are skipped.
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
            let Ok(nodes) = tree.get_path(Path::new(".sesto/nodes")) else {
                continue;
            };
            let Ok(nodes) = nodes.to_object(&repo).and_then(|o| o.peel_to_tree()) else {
                continue;
            };
            // The node files this commit changed (by blob id).
            let mut changed: Vec<(NodeId, git2::Oid)> = Vec::new();
            for shard in nodes.iter() {
                let Ok(shard) = shard.to_object(&repo).and_then(|o| o.peel_to_tree()) else {
                    continue;
                };
                for file in shard.iter() {
                    let name = file.name().unwrap_or_default();
                    let Some(Ok(id)) = name.strip_suffix(".age").map(NodeId::from_str) else {
                        continue;
                    };
                    // A file put back byte for byte is a change too.
                    if current.insert(id, file.id()) != Some(file.id()) {
                        changed.push((id, file.id()));
                    }
                }
            }
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
