//! Read operations of the library API: get, list, tree and find.
//!
//! Listing needs folders only: names live in the parent's entries, so `tree`
//! decrypts each folder once and never touches a secret's file.

use crate::error::{Error, Result};
use crate::format::node::{Kind, Value};
use crate::store::{SPath, Store};

/// A secret as read from the store.
#[derive(Debug)]
pub struct Secret {
    value: Value,
    /// When it last changed (RFC 3339, UTC).
    pub updated: Option<String>,
    /// Who changed it last.
    pub updated_by: Option<String>,
    /// Its write count.
    pub version: u64,
}

impl Secret {
    /// The secret a verified node holds; `None` for a folder.
    pub(crate) fn from_body(body: crate::format::node::Body) -> Option<Secret> {
        match (body.kind, body.value) {
            (Kind::Secret, Some(value)) => Some(Secret {
                value,
                updated: body.updated,
                updated_by: body.updated_by,
                version: body.version,
            }),
            _ => None,
        }
    }

    /// The secret bytes, exactly as stored. Never print or log them carelessly.
    pub fn expose_value(&self) -> &[u8] {
        self.value.expose_secret()
    }
}

/// One entry of a folder listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Entry name.
    pub name: String,
    /// Folder or secret.
    pub kind: Kind,
}

/// A folder and everything below it, names only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// Entry name (empty for the root).
    pub name: String,
    /// Folder or secret.
    pub kind: Kind,
    /// Entries of a folder, sorted by name.
    pub children: Vec<Tree>,
    /// Why a folder's file could not be read (missing, refused): its
    /// entries are unknown, and the rest of the tree is still there.
    pub unreadable: Option<String>,
}

/// What [`Store::find`] found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Matching paths with their kinds, sorted.
    pub paths: Vec<(SPath, Kind)>,
    /// Folders whose files could not be read, with why: what is below them
    /// was not searched.
    pub unreadable: Vec<(SPath, String)>,
}

impl Tree {
    /// Every path in the tree with its kind, depth first, excluding the root.
    pub fn paths(&self) -> Vec<(SPath, Kind)> {
        fn walk(t: &Tree, at: &SPath, out: &mut Vec<(SPath, Kind)>) {
            for c in &t.children {
                let p = at.join(&c.name);
                out.push((p.clone(), c.kind));
                walk(c, &p, out);
            }
        }
        let mut out = Vec::new();
        walk(self, &SPath::root(), &mut out);
        out
    }

    /// The folders whose files could not be read, with why, depth first.
    pub fn unreadable(&self) -> Vec<(SPath, String)> {
        fn walk(t: &Tree, at: &SPath, out: &mut Vec<(SPath, String)>) {
            for c in &t.children {
                let p = at.join(&c.name);
                if let Some(why) = &c.unreadable {
                    out.push((p.clone(), why.clone()));
                }
                walk(c, &p, out);
            }
        }
        let mut out = Vec::new();
        walk(self, &SPath::root(), &mut out);
        out
    }

    /// Number of secrets in the tree.
    pub fn secret_count(&self) -> usize {
        match self.kind {
            Kind::Secret => 1,
            Kind::Folder => self.children.iter().map(Tree::secret_count).sum(),
        }
    }
}

impl Store {
    /// Reads a secret.
    pub fn get(&self, path: &str) -> Result<Secret> {
        let path = SPath::parse(path)?;
        if path.is_root() {
            return Err(Error::NotASecret {
                path: path.to_string(),
            });
        }
        let node = self
            .walk(&path)?
            .pop()
            .expect("walk returns at least the root");
        match node.body.value {
            Some(value) if node.body.kind == Kind::Secret => Ok(Secret {
                value,
                updated: node.body.updated,
                updated_by: node.body.updated_by,
                version: node.body.version,
            }),
            _ => Err(Error::NotASecret {
                path: path.to_string(),
            }),
        }
    }

    /// Sets a secret, creating missing folders, in one transaction.
    pub fn set(&self, path: &str, value: &[u8]) -> Result<()> {
        let path = SPath::parse(path)?;
        let mut tx = self.transaction()?;
        tx.set(&path, value)?;
        tx.commit().map(|_| ())
    }

    /// Lists a folder's entries; a secret's path lists that secret alone.
    pub fn list(&self, path: &str) -> Result<Vec<Listing>> {
        let path = SPath::parse(path)?;
        let chain = match self.walk(&path) {
            Err(e @ Error::NotGranted { .. }) => {
                // Above the folders a member was granted: the names that lead there.
                let mut names: Vec<String> = self
                    .tops()?
                    .iter()
                    .filter(|(p, _)| p.starts_with(&path) && *p != path)
                    .map(|(p, _)| p.names()[path.names().len()].clone())
                    .collect();
                names.dedup();
                if names.is_empty() {
                    return Err(e);
                }
                return Ok(names
                    .into_iter()
                    .map(|name| Listing {
                        name,
                        kind: Kind::Folder,
                    })
                    .collect());
            }
            other => other?,
        };
        let node = chain.into_iter().last().expect("walk returns the top");
        Ok(match node.body.kind {
            Kind::Folder => node
                .body
                .children
                .iter()
                .map(|e| Listing {
                    name: e.name.clone(),
                    kind: e.kind,
                })
                .collect(),
            Kind::Secret => vec![Listing {
                name: node.body.name.clone(),
                kind: Kind::Secret,
            }],
        })
    }

    /// The names below `path` (a folder), decrypting folders only.
    pub fn tree(&self, path: &str) -> Result<Tree> {
        let path = SPath::parse(path)?;
        let chain = match self.walk(&path) {
            Err(e @ Error::NotGranted { .. }) => return self.granted_tree(&path).ok_or(e)?,
            other => other?,
        };
        let ids: Vec<_> = chain.iter().map(|n| n.id).collect();
        let top = chain
            .into_iter()
            .last()
            .expect("walk returns at least the root");
        if top.body.kind != Kind::Folder {
            return Err(Error::NotAFolder {
                path: path.to_string(),
            });
        }
        let name = path.names().last().cloned().unwrap_or_default();
        self.subtree(name, top, ids)
    }

    /// The tree above and through the folders granted to a member: the names
    /// leading to each granted folder, with its whole subtree. `None` when no
    /// granted folder lies below `path`.
    fn granted_tree(&self, path: &SPath) -> Option<Result<Tree>> {
        let tops = match self.tops() {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let below: Vec<_> = tops
            .into_iter()
            .filter(|(p, _)| p.starts_with(path) && p != path)
            .collect();
        if below.is_empty() {
            return None;
        }
        let mut tree = Tree {
            name: path.names().last().cloned().unwrap_or_default(),
            kind: Kind::Folder,
            children: vec![],
            unreadable: None,
        };
        for (top_path, node) in &below {
            // A granted folder inside another granted folder is already there.
            if below
                .iter()
                .any(|(p, _)| top_path.starts_with(p) && p != top_path)
            {
                continue;
            }
            let mut at = &mut tree;
            let rest = &top_path.names()[path.names().len()..];
            for (i, name) in rest.iter().enumerate() {
                let pos = match at.children.iter().position(|c| &c.name == name) {
                    Some(pos) => pos,
                    None => {
                        at.children.push(Tree {
                            name: name.clone(),
                            kind: Kind::Folder,
                            children: vec![],
                            unreadable: None,
                        });
                        at.children.sort_by(|a, b| a.name.cmp(&b.name));
                        at.children
                            .iter()
                            .position(|c| &c.name == name)
                            .expect("added")
                    }
                };
                at = &mut at.children[pos];
                if i + 1 == rest.len() {
                    match self.subtree(name.clone(), node.clone(), vec![node.id]) {
                        Ok(sub) => *at = sub,
                        Err(e) => return Some(Err(e)),
                    }
                }
            }
        }
        Some(Ok(tree))
    }

    fn subtree(
        &self,
        name: String,
        node: crate::store::Node,
        chain: Vec<crate::format::node::NodeId>,
    ) -> Result<Tree> {
        // The subfolders' files are read on every core (each is decrypted and
        // its signature checked), then each is walked in turn.
        let folders: Vec<_> = node
            .body
            .children
            .iter()
            .filter(|e| e.kind == Kind::Folder)
            .collect();
        for e in &folders {
            if chain.contains(&e.id) || chain.len() > crate::format::node::MAX_DEPTH {
                return Err(Error::Node {
                    id: e.id,
                    file: self.rel_path(&e.id),
                    reason: "a folder lists itself or an ancestor, or folders nest too deep".into(),
                });
            }
        }
        let read = crate::par::map_from(8, &folders, |e| {
            let mut ids = chain.clone();
            ids.push(e.id);
            self.read_node(&e.id, Some(&e.key), &ids).and_then(|child| {
                if child.body.kind == Kind::Folder {
                    Ok((child, ids))
                } else {
                    Err(Error::Node {
                        id: e.id,
                        file: self.rel_path(&e.id),
                        reason: "its parent lists a folder but it is a secret".into(),
                    })
                }
            })
        });
        let mut read = read.into_iter();
        let mut children = Vec::with_capacity(node.body.children.len());
        for e in &node.body.children {
            children.push(match e.kind {
                Kind::Secret => Tree {
                    name: e.name.clone(),
                    kind: Kind::Secret,
                    children: vec![],
                    unreadable: None,
                },
                // A folder whose file cannot be read (a pusher removed it,
                // say) is named, not followed; the rest still shows.
                Kind::Folder => match read.next().expect(
                    "par::map_from gives one result per item, in order: one per folder entry",
                ) {
                    Ok((child, ids)) => self.subtree(e.name.clone(), child, ids)?,
                    Err(why) => Tree {
                        name: e.name.clone(),
                        kind: Kind::Folder,
                        children: vec![],
                        unreadable: Some(why.to_string()),
                    },
                },
            });
        }
        Ok(Tree {
            name,
            kind: Kind::Folder,
            children,
            unreadable: None,
        })
    }

    /// The secrets directly in a folder, sorted by name, read in parallel.
    /// Subfolders are left out.
    pub fn folder_secrets(&self, path: &str) -> Result<Vec<(String, Secret)>> {
        let path = SPath::parse(path)?;
        let chain = self.walk(&path)?;
        let ids: Vec<_> = chain.iter().map(|n| n.id).collect();
        let folder = chain.into_iter().last().expect("walk returns the top");
        if folder.body.kind != Kind::Folder {
            return Err(Error::NotAFolder {
                path: path.to_string(),
            });
        }
        let entries: Vec<_> = folder
            .body
            .children
            .iter()
            .filter(|e| e.kind == Kind::Secret)
            .collect();
        let read = crate::par::map(&entries, |e| {
            let mut chain = ids.clone();
            chain.push(e.id);
            self.read_entry(e, &chain)
        });
        entries
            .iter()
            .zip(read)
            .map(|(e, node)| {
                let body = node?.body;
                let secret = Secret::from_body(body).ok_or_else(|| Error::NotASecret {
                    path: path.join(&e.name).to_string(),
                })?;
                Ok((e.name.clone(), secret))
            })
            .collect()
    }

    /// Every secret the current identities can read, with its path: the whole
    /// store for an admin, the granted folders for a member. Folders are read
    /// level by level and secrets in parallel; a folder listing an ancestor is
    /// an error.
    pub fn readable_secrets(&self) -> Result<Vec<(SPath, Secret)>> {
        struct Task<'a> {
            entry: &'a crate::format::node::Entry,
            chain: Vec<crate::format::node::NodeId>,
            path: SPath,
        }
        let tops = self.tops()?;
        // A granted folder inside another granted folder is read through it.
        let outer: Vec<_> = tops
            .iter()
            .filter(|(p, _)| !tops.iter().any(|(q, _)| p.starts_with(q) && p != q))
            .collect();
        let mut folders: Vec<(SPath, crate::store::Node, Vec<crate::format::node::NodeId>)> = outer
            .iter()
            .map(|(p, n)| (p.clone(), n.clone(), vec![n.id]))
            .collect();
        let mut out = Vec::new();
        while !folders.is_empty() {
            let mut tasks = Vec::new();
            for (path, node, chain) in &folders {
                if chain.len() > crate::format::node::MAX_DEPTH + 1 {
                    return Err(self.reject(&node.id, "folders nest too deep"));
                }
                for e in &node.body.children {
                    if chain.contains(&e.id) {
                        return Err(self.reject(&e.id, "a folder lists itself or an ancestor"));
                    }
                    let mut chain = chain.clone();
                    chain.push(e.id);
                    tasks.push(Task {
                        entry: e,
                        chain,
                        path: path.join(&e.name),
                    });
                }
            }
            let read = crate::par::map(&tasks, |t| self.read_entry(t.entry, &t.chain));
            let mut next = Vec::new();
            for (t, node) in tasks.into_iter().zip(read) {
                let node = node?;
                match node.body.kind {
                    Kind::Folder => next.push((t.path, node, t.chain)),
                    Kind::Secret => {
                        if let Some(s) = Secret::from_body(node.body) {
                            out.push((t.path, s));
                        }
                    }
                }
            }
            folders = next;
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Paths whose text matches `pattern`: a case-insensitive substring, or a
    /// glob when the pattern holds `*` or `?`.
    /// Folders that could not be read are in [`Found::unreadable`].
    pub fn find(&self, pattern: &str) -> Result<Found> {
        let tree = self.tree("")?;
        let pattern_lower = pattern.to_lowercase();
        let is_glob = pattern.contains(['*', '?']);
        let paths = tree
            .paths()
            .into_iter()
            .filter(|(p, _)| {
                let text = p.to_string().to_lowercase();
                if is_glob {
                    glob_match(pattern_lower.as_bytes(), text.as_bytes())
                        || p.names().last().is_some_and(|n| {
                            glob_match(pattern_lower.as_bytes(), n.to_lowercase().as_bytes())
                        })
                } else {
                    text.contains(&pattern_lower)
                }
            })
            .collect();
        Ok(Found {
            paths,
            unreadable: tree.unreadable(),
        })
    }
}

/// `*` matches any run of characters, `?` one; iterative, linear backtracking.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Reads one field of a secret whose value is a YAML mapping. Scalars print
/// as their text; nested values as YAML.
pub fn field(value: &[u8], name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let text = std::str::from_utf8(value)
        .map_err(|_| Error::Value("the secret is not text, so it has no fields".into()))?;
    if has_alias(text) {
        return Err(Error::Value(
            "the secret's YAML uses anchors or aliases, which sesto refuses".into(),
        ));
    }
    crate::format::limits::check_yaml(text.as_bytes())
        .map_err(|e| Error::Value(format!("the secret has no fields: {e}")))?;
    let map: serde_yaml::Mapping = serde_yaml::from_str(text).map_err(|e| {
        let why = if e.to_string().contains("duplicate") {
            "it has duplicate keys"
        } else {
            "it is not a YAML mapping"
        };
        Error::Value(format!("the secret has no fields: {why}"))
    })?;
    // Field names stay out of the message: they may be secret, and a value that
    // merely looks like a mapping ("pass: word") would otherwise leak.
    let v = map.get(name).ok_or_else(|| {
        Error::Value(format!(
            "no field {name:?} (the secret is a mapping of {} fields)",
            map.len()
        ))
    })?;
    let out = match v {
        serde_yaml::Value::String(s) => s.clone().into_bytes(),
        serde_yaml::Value::Number(n) => n.to_string().into_bytes(),
        serde_yaml::Value::Bool(b) => b.to_string().into_bytes(),
        serde_yaml::Value::Null => Vec::new(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .into_bytes(),
    };
    Ok(zeroize::Zeroizing::new(out))
}

/// Whether YAML text uses an anchor (`&a`) or alias (`*a`). Both can only
/// start a node, and a plain scalar can never start with `&` or `*`, so a
/// check of each node start outside quotes is exact for block YAML.
pub(crate) fn has_alias(text: &str) -> bool {
    for line in text.lines() {
        let mut rest = line.trim_start();
        loop {
            rest = rest.trim_start_matches(['-', '?', ' ', '[', '{', ',']);
            if rest.starts_with(['&', '*']) {
                return true;
            }
            if rest.starts_with(['"', '\'', '#', '|', '>']) {
                break;
            }
            match rest.find(": ").or_else(|| rest.find(", ")) {
                Some(i) => rest = &rest[i + 2..],
                None => break,
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"prod/*", b"prod/db"));
        assert!(glob_match(b"*pass*", b"prod/db/password"));
        assert!(!glob_match(b"prod/?", b"prod/db"));
        assert!(glob_match(
            b"a*b*c",
            &b"a"
                .repeat(1000)
                .iter()
                .chain(b"bc")
                .copied()
                .collect::<Vec<_>>()
        ));
    }

    #[test]
    fn fields() {
        let v = b"url: postgres://db\nport: 5432\nnested:\n  a: 1\n";
        assert_eq!(&field(v, "url").unwrap()[..], b"postgres://db");
        assert_eq!(&field(v, "port").unwrap()[..], b"5432");
        assert!(field(v, "missing").is_err());
        assert!(field(b"just text", "url").is_err());
        assert!(field(b"\xff\xfe", "url").is_err());
        assert!(field(b"a: 1\na: 2\n", "a").is_err());
        assert!(field(b"a: &x hunter2\nb: *x\n", "b").is_err());
        assert!(field(b"a: [1, *x]\n", "a").is_err());
        assert_eq!(&field(b"a: 'x &y *z'\n", "a").unwrap()[..], b"x &y *z");
        let err = field(b"password: hunter2\n", "url")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }
}
