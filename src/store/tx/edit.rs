//! Changing the tree in a transaction: set, mkdir, remove, rename, and the
//! path resolution they share.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::format::node::{self, Body, Entry, Kind, NodeId, Value};
use crate::store::{nearest, Node, SPath};

use super::{fresh_key, Tx};

impl Tx<'_> {
    /// Resolves a path to a node id.
    pub(crate) fn resolve(&mut self, path: &SPath) -> Result<NodeId> {
        let (from, mut at) = self.start(path)?;
        for (depth, name) in path.names().iter().enumerate().skip(from) {
            let here = SPath::parse(&path.names()[..depth].join("/"))?;
            if self.node(&at).body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
            at = self.child(at, name)?.ok_or_else(|| Error::NotFound {
                path: path.to_string(),
                nearest: nearest(&here),
            })?;
        }
        Ok(at)
    }

    /// Resolves a folder, creating missing folders on the way when `parents`.
    fn folder(&mut self, path: &SPath, parents: bool) -> Result<NodeId> {
        let (from, mut at) = self.start(path)?;
        for (depth, name) in path.names().iter().enumerate().skip(from) {
            let here = SPath::parse(&path.names()[..=depth].join("/"))?;
            at = match self.child(at, name)? {
                Some(id) => id,
                None if parents => self.create(at, name, Kind::Folder, None)?,
                None => {
                    let above = SPath::parse(&path.names()[..depth].join("/"))?;
                    return Err(Error::NotFound {
                        path: path.to_string(),
                        nearest: nearest(&above),
                    });
                }
            };
            if self.node(&at).body.kind != Kind::Folder {
                return Err(Error::NotAFolder {
                    path: here.to_string(),
                });
            }
        }
        Ok(at)
    }

    fn create(
        &mut self,
        parent: NodeId,
        name: &str,
        kind: Kind,
        value: Option<Value>,
    ) -> Result<NodeId> {
        node::check_name(name)?;
        let id = NodeId::random();
        let key = fresh_key();
        let mut body = Body::new(&self.store.roster.store, id, kind, name);
        body.value = value;
        let entry = Entry {
            name: name.to_string(),
            kind,
            id,
            key: key.clone(),
        };
        self.node_mut(parent).body.put_child(entry);
        self.parents.insert(id, parent);
        self.nodes.insert(
            id,
            Node {
                id,
                key: Some(key),
                body,
                signer: String::new(),
            },
        );
        self.created.insert(id);
        self.dirty.insert(id);
        if kind == Kind::Secret {
            self.stamp(id);
        }
        Ok(id)
    }

    fn stamp(&mut self, id: NodeId) {
        let who = self.store.me.clone();
        let body = &mut self.node_mut(id).body;
        body.updated = Some(crate::format::time::now_rfc3339());
        body.updated_by = who;
    }

    /// Reads a secret's value within the transaction.
    pub fn get(&mut self, path: &SPath) -> Result<Value> {
        let id = self.resolve(path)?;
        let body = &self.node(&id).body;
        match (&body.kind, &body.value) {
            (Kind::Secret, Some(v)) => Ok(v.clone()),
            _ => Err(Error::NotASecret {
                path: path.to_string(),
            }),
        }
    }

    /// Sets a secret's value, creating it and any missing folders.
    pub fn set(&mut self, path: &SPath, value: &[u8]) -> Result<()> {
        if value.len() > node::MAX_VALUE {
            return Err(Error::Value(format!(
                "the value is {} bytes; sesto stores values up to {} MiB",
                value.len(),
                node::MAX_VALUE >> 20
            )));
        }
        let (parent_path, name) = path.split_last().ok_or(Error::Root("given a value"))?;
        let parent = self.folder(&parent_path, true)?;
        match self.child(parent, name)? {
            Some(id) => {
                if self.node(&id).body.kind != Kind::Secret {
                    return Err(Error::NotASecret {
                        path: path.to_string(),
                    });
                }
                if self.node(&id).body.value.as_ref().map(Value::expose_secret) == Some(value) {
                    return Ok(());
                }
                let body = &mut self.node_mut(id).body;
                body.value = Some(Value::new(value.to_vec()));
                // A new value is no longer one a former reader knows.
                body.exposed_to.clear();
                self.stamp(id);
            }
            None => {
                self.create(parent, name, Kind::Secret, Some(Value::new(value.to_vec())))?;
            }
        }
        Ok(())
    }

    /// Creates a folder; with `parents`, also missing ancestors, and an
    /// existing folder is not an error.
    pub fn mkdir(&mut self, path: &SPath, parents: bool) -> Result<()> {
        let (parent_path, name) = path
            .split_last()
            .ok_or(Error::Exists { path: "/".into() })?;
        let parent = self.folder(&parent_path, parents)?;
        match self.child(parent, name)? {
            Some(id) if self.node(&id).body.kind == Kind::Secret => Err(Error::NotAFolder {
                path: path.to_string(),
            }),
            Some(_) if parents => Ok(()),
            Some(_) => Err(Error::Exists {
                path: path.to_string(),
            }),
            None => self.create(parent, name, Kind::Folder, None).map(|_| ()),
        }
    }

    /// Removes a secret or folder; a folder with entries needs `recursive`.
    pub fn remove(&mut self, path: &SPath, recursive: bool) -> Result<()> {
        let (parent_path, name) = path.split_last().ok_or(Error::Root("removed"))?;
        let id = self.resolve(path)?;
        let count = self.node(&id).body.children.len();
        if count > 0 && !recursive {
            return Err(Error::NotEmpty {
                path: path.to_string(),
                count,
            });
        }
        let parent = self.resolve(&parent_path)?;
        self.node_mut(parent).body.remove_child(name);
        self.forget_subtree(id)
    }

    fn forget_subtree(&mut self, id: NodeId) -> Result<()> {
        let mut stack = vec![id];
        let mut seen = BTreeSet::new();
        while let Some(at) = stack.pop() {
            if !seen.insert(at) {
                continue; // listed twice, or a folder listing an ancestor
            }
            let names: Vec<String> = self
                .node(&at)
                .body
                .children
                .iter()
                .map(|e| e.name.clone())
                .collect();
            for name in names {
                // Loading verifies each file; an unreadable one is still removed.
                let entry = self.node(&at).body.child(&name).cloned().expect("listed");
                match self.child(at, &name) {
                    Ok(Some(child)) => stack.push(child),
                    // A folder listing an ancestor is damage to report, not to follow.
                    Err(e) if self.chain_of(at).contains(&entry.id) => return Err(e),
                    _ => {
                        self.removed.insert(entry.id);
                    }
                }
            }
            self.dirty.remove(&at);
            if !self.created.remove(&at) {
                self.removed.insert(at);
            }
        }
        Ok(())
    }

    /// Moves or renames. Moving onto an existing folder moves into it.
    pub fn rename(&mut self, from: &SPath, to: &SPath) -> Result<SPath> {
        let (from_parent_path, from_name) = from.split_last().ok_or(Error::Root("moved"))?;
        let id = self.resolve(from)?;
        let mut to = to.clone();
        if let Ok(existing) = self.resolve(&to) {
            if self.node(&existing).body.kind != Kind::Folder {
                return Err(Error::Exists {
                    path: to.to_string(),
                });
            }
            to = to.join(from_name);
        }
        if to.starts_with(from) {
            return Err(Error::IntoItself {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        let (to_parent_path, to_name) = to.split_last().ok_or(Error::Root("replaced"))?;
        node::check_name(to_name)?;
        let to_parent = self.folder(&to_parent_path, false)?;
        if self.child(to_parent, to_name)?.is_some() {
            return Err(Error::Exists {
                path: to.to_string(),
            });
        }
        let from_parent = self.resolve(&from_parent_path)?;
        let below = self.load_moving_subtree(id, from_parent, to_parent)?;
        let mut entry = self
            .node_mut(from_parent)
            .body
            .remove_child(from_name)
            .expect("resolved above");
        entry.name = to_name.to_string();
        let kind = entry.kind;
        self.node_mut(to_parent).body.put_child(entry);
        self.parents.insert(id, to_parent);
        self.resign_unwritable(std::iter::once(id).chain(below));
        if kind == Kind::Folder && !self.roster().grants.is_empty() {
            // Shared folders record where they sit.
            for below in self.load_subtree(id, true)? {
                if self.roster().grants.contains_key(&below) {
                    self.dirty.insert(below);
                }
            }
        }
        Ok(to)
    }

    /// The nodes below `top`, a node about to move from folder `from` to
    /// folder `to`, loaded where they still sit, when the move leaves behind
    /// a write grant that may have let someone sign them: their signers are
    /// then checked where they land. Otherwise none (a secret has none).
    fn load_moving_subtree(
        &mut self,
        top: NodeId,
        from: NodeId,
        to: NodeId,
    ) -> Result<Vec<NodeId>> {
        let writers = |tx: &Self, folder: NodeId| -> BTreeSet<String> {
            tx.chain_of(folder)
                .iter()
                .filter_map(|a| tx.roster().grants.get(a))
                .flat_map(|g| g.iter())
                .filter(|(_, access)| **access == node::Access::Write)
                .map(|(member, _)| member.clone())
                .collect()
        };
        if self.node(&top).body.kind != Kind::Folder
            || writers(self, to).is_superset(&writers(self, from))
        {
            return Ok(Vec::new());
        }
        self.load_subtree(top, false)
    }

    /// Marks for signing again each of `moved` whose signer may not write
    /// it where it now sits (a writer's secret moved out of the folder their
    /// grant covers): readers would refuse it, so the mover signs it instead.
    fn resign_unwritable(&mut self, moved: impl IntoIterator<Item = NodeId>) {
        for id in moved {
            if !self
                .roster()
                .may_write(&self.node(&id).signer, &self.chain_of(id))
            {
                self.dirty.insert(id);
            }
        }
    }

    /// Says what this change is in the commit sesto makes for it (where
    /// `sesto.commit` is set), e.g. `import 3000 secrets from pass`, in
    /// place of `update store`. The message is as public as the repository:
    /// give counts and kinds, never a path or value.
    pub fn set_summary(&mut self, summary: impl Into<String>) {
        self.summary = Some(summary.into());
    }
}
