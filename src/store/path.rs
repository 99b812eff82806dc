//! Paths inside a store (`prod/db/password`): parsing, joining, showing.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::node;

/// A path inside the store: names separated by `/`. The empty path is the root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SPath(pub(crate) Vec<String>);

impl SPath {
    /// The root folder.
    pub fn root() -> SPath {
        SPath(Vec::new())
    }
    /// Parses user input; empty components (`a//b`, a trailing `/`) are ignored.
    pub fn parse(text: &str) -> Result<SPath> {
        let mut parts = Vec::new();
        for part in text.split('/').filter(|p| !p.is_empty()) {
            if parts.len() == node::MAX_DEPTH {
                return Err(Error::Value(format!(
                    "paths are at most {} names deep",
                    node::MAX_DEPTH
                )));
            }
            node::check_name(part)?;
            parts.push(part.to_string());
        }
        Ok(SPath(parts))
    }
    /// The names from the root down.
    pub fn names(&self) -> &[String] {
        &self.0
    }
    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
    /// The parent path and last name; `None` for the root.
    pub fn split_last(&self) -> Option<(SPath, &str)> {
        let (last, rest) = self.0.split_last()?;
        Some((SPath(rest.to_vec()), last))
    }
    /// This path with one more name.
    pub fn join(&self, name: &str) -> SPath {
        let mut v = self.0.clone();
        v.push(name.to_string());
        SPath(v)
    }
    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &SPath) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for SPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("/")
        } else {
            f.write_str(&self.0.join("/"))
        }
    }
}

impl FromStr for SPath {
    type Err = Error;
    fn from_str(s: &str) -> Result<SPath> {
        SPath::parse(s)
    }
}

pub(crate) fn nearest(existing: &SPath) -> String {
    if existing.is_root() {
        "the root folder has no such entry".into()
    } else {
        format!("{existing} exists")
    }
}
