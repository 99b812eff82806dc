//! Importing secrets from pass, gopass and passage stores and from dotenv,
//! JSON and YAML files, as one transaction: all of it or none.
//!
//! An import is planned first ([`Plan`]): every name is checked, and every
//! path that two sources would both fill is found, before the store is
//! touched. [`Plan::check`] then finds the paths that exist in the store
//! already, still writing nothing, and [`Plan::apply`] decrypts every entry
//! and sets every value in one [`Tx`]; an entry that fails to decrypt (gpg
//! failing on file 57) leaves the store unchanged and names the file.
//! Values pass byte for byte: a pass entry's whole decrypted file, its final
//! newline included where the file has one.

mod stores;
mod text;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::node::{self, Kind};
use crate::store::tx::Tx;
use crate::store::SPath;

/// Most secrets and folders one import creates: a store of this size is the
/// largest the design is measured at, and a file that would make more is
/// more likely a mistake than a store.
pub const MAX_ITEMS: usize = 100_000;

/// Largest dotenv, JSON or YAML file read, from a file or stdin.
pub const MAX_FILE: usize = 16 << 20;

/// What an import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A pass store: `*.gpg` files decrypted by `gpg`.
    Pass,
    /// A gopass store (pass's layout) and its mounts.
    Gopass,
    /// A passage store: `*.age` files decrypted with age identities.
    Passage,
    /// A dotenv file.
    Dotenv,
    /// A JSON document.
    Json,
    /// A YAML document.
    Yaml,
}

impl Source {
    /// The name users type (`pass`, `yaml`), used in messages and the commit.
    pub fn name(self) -> &'static str {
        match self {
            Source::Pass => "pass",
            Source::Gopass => "gopass",
            Source::Passage => "passage",
            Source::Dotenv => "dotenv",
            Source::Json => "json",
            Source::Yaml => "yaml",
        }
    }
}

/// The root store and the mounts (name, directory) that gopass's config
/// lists, from its text (git's config format, gopass 1.15 and later).
pub fn gopass_mounts(config: &str) -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    stores::gopass_mounts(config)
}

/// How entries of a store are decrypted.
pub enum Decrypter<'a> {
    /// Values are in the plan already (dotenv, JSON, YAML).
    None,
    /// Run this `gpg` program on each file (pass, gopass).
    Gpg(std::ffi::OsString),
    /// Decrypt each file with these age identities (passage).
    Age(&'a [&'a dyn age::Identity]),
}

/// Where one planned item's value comes from.
enum Origin {
    Value(Zeroizing<Vec<u8>>),
    File(PathBuf),
    Folder,
}

/// One secret (or empty folder) an import creates.
struct Item {
    path: SPath,
    /// The file or key it comes from, for messages.
    from: String,
    origin: Origin,
}

/// An import worked out and checked, before anything is decrypted or written.
pub struct Plan {
    source: Source,
    to: SPath,
    items: Vec<Item>,
    /// What each path is (`true`: a secret) and where it comes from, to find
    /// two sources of one path.
    claimed: BTreeMap<SPath, (bool, String)>,
    skipped: Vec<String>,
}

/// What [`Plan::check`] found in the store.
#[derive(Debug, Default)]
pub struct Clashes {
    /// Secrets that exist already: refused unless forced, then replaced.
    pub existing: Vec<SPath>,
}

impl Plan {
    /// An empty plan importing from `source` into folder `to`.
    pub fn new(source: Source, to: SPath) -> Plan {
        Plan {
            source,
            to,
            items: Vec::new(),
            claimed: BTreeMap::new(),
            skipped: Vec::new(),
        }
    }

    /// Adds the entries of a pass, gopass (`*.gpg`) or passage (`*.age`)
    /// store in `dir`, below the folder `under` (a gopass mount's name;
    /// empty for the store itself).
    pub fn add_store(&mut self, dir: &Path, under: &SPath) -> Result<()> {
        let ext = if self.source == Source::Passage {
            "age"
        } else {
            "gpg"
        };
        let (found, skipped) = stores::scan(dir, ext)?;
        for f in found {
            let mut path = self.to.clone();
            for name in under.names().iter().chain(&f.names) {
                path = path.join(name);
            }
            let from = f.file.display().to_string();
            self.add(path, from, Origin::File(f.file))?;
        }
        let prefix = if under.is_root() {
            String::new()
        } else {
            format!("{}: ", dir.display())
        };
        self.skipped
            .extend(skipped.into_iter().map(|s| format!("{prefix}{s}")));
        Ok(())
    }

    /// Adds the secrets of a dotenv, JSON or YAML file's bytes; `from` names
    /// the file (`stdin` for `-`).
    pub fn add_file(&mut self, bytes: &[u8], from: &str) -> Result<()> {
        if bytes.len() > MAX_FILE {
            return Err(Error::Value(format!(
                "{from} is larger than {} MiB",
                MAX_FILE >> 20
            )));
        }
        let parsed = match self.source {
            Source::Dotenv => text::parse_dotenv(bytes, from)?,
            Source::Json => text::parse_json(bytes, from)?,
            Source::Yaml => text::parse_yaml(bytes, from)?,
            other => {
                return Err(Error::Value(format!(
                    "{} imports a store directory, not a file",
                    other.name()
                )))
            }
        };
        for p in parsed {
            let (names, origin) = match p {
                text::Parsed::Secret(names, value) => (names, Origin::Value(value)),
                text::Parsed::Folder(names) => (names, Origin::Folder),
            };
            let key = names.join(".");
            let mut path = self.to.clone();
            for name in &names {
                path = path.join(name);
            }
            self.add(path, format!("{from}: {key}"), origin)?;
        }
        Ok(())
    }

    fn add(&mut self, path: SPath, from: String, origin: Origin) -> Result<()> {
        if self.items.len() == MAX_ITEMS {
            return Err(Error::Value(format!(
                "{from}: an import creates at most {MAX_ITEMS} secrets; split it"
            )));
        }
        if path.names().len() > node::MAX_DEPTH {
            return Err(Error::Value(format!(
                "{from}: {path} is deeper than sesto's {} levels",
                node::MAX_DEPTH
            )));
        }
        let secret = !matches!(origin, Origin::Folder);
        // Every folder above it must be a folder here too, and it must be new.
        let mut above = path.clone();
        while let Some((parent, _)) = above.split_last() {
            above = parent;
            if above.starts_with(&self.to) && above != self.to {
                match self.claimed.get(&above) {
                    Some((true, other)) => return Err(two_sources(&above, other, &from)),
                    Some((false, _)) => break, // its own parents are folders already
                    None => {
                        self.claimed.insert(above.clone(), (false, from.clone()));
                    }
                }
            }
        }
        match self.claimed.get(&path) {
            Some((false, _)) if !secret => {}
            Some((_, other)) => return Err(two_sources(&path, other, &from)),
            None => {
                self.claimed.insert(path.clone(), (secret, from.clone()));
            }
        }
        self.items.push(Item { path, from, origin });
        Ok(())
    }

    /// The folder the import goes into.
    pub fn to(&self) -> &SPath {
        &self.to
    }

    /// The source this plan imports from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The paths of the secrets the import creates or replaces, in order.
    pub fn secrets(&self) -> Vec<&SPath> {
        let mut out: Vec<&SPath> = self
            .items
            .iter()
            .filter(|i| !matches!(i.origin, Origin::Folder))
            .map(|i| &i.path)
            .collect();
        out.sort();
        out
    }

    /// The empty folders the import creates (from empty JSON or YAML
    /// mappings).
    pub fn empty_folders(&self) -> Vec<&SPath> {
        self.items
            .iter()
            .filter(|i| matches!(i.origin, Origin::Folder))
            .map(|i| &i.path)
            .collect()
    }

    /// Files in a store's directory that are not entries (`.gpg-id`,
    /// `.git/`, anything not `*.gpg` or `*.age`), relative to the store.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Finds what the import would overwrite, reading but writing nothing.
    /// A secret in the store where the import has a folder (or the other
    /// way round) is an error; existing secrets are returned, and with
    /// `force` false they are an error listing the first few.
    pub fn check(&self, tx: &mut Tx, force: bool) -> Result<Clashes> {
        let mut clashes = Clashes::default();
        match tx.resolve(&self.to) {
            Ok(id) if tx.node(&id).body.kind != Kind::Folder => {
                return Err(Error::NotAFolder {
                    path: self.to.to_string(),
                })
            }
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        for (path, (secret, from)) in &self.claimed {
            let kind = match tx.resolve(path) {
                Ok(id) => tx.node(&id).body.kind,
                Err(Error::NotFound { .. }) => continue,
                Err(Error::NotAFolder { path: above }) => {
                    return Err(Error::Value(format!(
                        "{above} is a secret in the store, where the import ({from}) needs a \
                         folder; move it aside (`sesto mv`) or import --to another folder"
                    )))
                }
                Err(e) => return Err(e),
            };
            match (kind, secret) {
                (Kind::Secret, true) => clashes.existing.push(path.clone()),
                (Kind::Folder, false) => {}
                (Kind::Folder, true) => {
                    return Err(Error::Value(format!(
                        "{path} is a folder in the store, where the import ({from}) has a secret; \
                         move it aside (`sesto mv`) or import --to another folder"
                    )))
                }
                (Kind::Secret, false) => {
                    return Err(Error::Value(format!(
                        "{path} is a secret in the store, where the import ({from}) needs a \
                         folder; move it aside (`sesto mv`) or import --to another folder"
                    )))
                }
            }
        }
        if !force && !clashes.existing.is_empty() {
            let n = clashes.existing.len();
            let first: Vec<String> = clashes
                .existing
                .iter()
                .take(5)
                .map(ToString::to_string)
                .collect();
            return Err(Error::Value(format!(
                "{n} secret{} of the import exist{} already: {}{}; nothing was imported. \
                 Pass --force to replace them, or import --to another folder",
                if n == 1 { "" } else { "s" },
                if n == 1 { "s" } else { "" },
                first.join(", "),
                if n > first.len() { ", …" } else { "" }
            )));
        }
        Ok(clashes)
    }

    /// Decrypts every entry with `decrypter` and sets every value in `tx`
    /// (creating folders as needed), counting decrypted files on a terminal.
    /// Call [`Plan::check`] first. On an error nothing is written: the
    /// caller drops `tx`. Returns how many secrets were set.
    pub fn apply(self, tx: &mut Tx, decrypter: &Decrypter) -> Result<usize> {
        let files: Vec<&Path> = self
            .items
            .iter()
            .filter_map(|i| match &i.origin {
                Origin::File(f) => Some(f.as_path()),
                _ => None,
            })
            .collect();
        let mut values = decrypt_all(&files, decrypter)?.into_iter();
        let mut count = 0;
        for item in self.items {
            let value = match item.origin {
                Origin::Folder => {
                    tx.mkdir(&item.path, true)?;
                    continue;
                }
                Origin::Value(v) => v,
                Origin::File(_) => values.next().ok_or_else(|| {
                    Error::Value("internal error: a decrypted value went missing".into())
                })?,
            };
            if value.len() > node::MAX_VALUE {
                return Err(Error::Value(format!(
                    "{}: the value is larger than {} MiB, more than sesto stores",
                    item.from,
                    node::MAX_VALUE >> 20
                )));
            }
            tx.set(&item.path, &value)?;
            count += 1;
        }
        Ok(count)
    }
}

/// Decrypts `files` in order. gpg runs on the first file alone, so that a
/// passphrase is asked once (gpg-agent keeps it), then on the rest in
/// parallel; the first failure in file order is returned.
fn decrypt_all(files: &[&Path], decrypter: &Decrypter) -> Result<Vec<Zeroizing<Vec<u8>>>> {
    let progress = crate::local::progress::Progress::counting("decrypting", "files", files.len());
    match decrypter {
        Decrypter::None if files.is_empty() => Ok(Vec::new()),
        Decrypter::None => Err(Error::Value(
            "internal error: store files with no way to decrypt them".into(),
        )),
        Decrypter::Gpg(program) => {
            let Some((first, rest)) = files.split_first() else {
                return Ok(Vec::new());
            };
            let mut out = vec![stores::gpg_decrypt(program, first)?];
            progress.tick();
            let decrypted = crate::par::map_from(2, rest, |f| {
                let v = stores::gpg_decrypt(program, f);
                progress.tick();
                v
            });
            for v in decrypted {
                out.push(v?);
            }
            Ok(out)
        }
        Decrypter::Age(ids) => files
            .iter()
            .map(|f| {
                let v = stores::age_decrypt(ids, f);
                progress.tick();
                v
            })
            .collect(),
    }
}

fn two_sources(path: &SPath, first: &str, second: &str) -> Error {
    Error::Value(format!(
        "{first} and {second} both become {path} (a secret and a folder of one name, or two \
         sources of one secret); rename one in the source (nothing was imported)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sources_of_one_path_are_refused_before_anything() {
        let mut plan = Plan::new(Source::Yaml, SPath::parse("to").unwrap());
        plan.add_file(b"a: x\n", "one").unwrap();
        let e = plan.add_file(b"a:\n  b: y\n", "two").err().unwrap();
        assert!(
            e.to_string()
                .contains("one: a and two: a.b both become to/a"),
            "{e}"
        );
        let mut plan = Plan::new(Source::Json, SPath::root());
        plan.add_file(br#"{"a": {"b": "x"}}"#, "one").unwrap();
        let e = plan.add_file(br#"{"a": "y"}"#, "two").err().unwrap();
        assert!(e.to_string().contains("both become a"), "{e}");
    }

    #[test]
    fn plans_list_secrets_folders_and_refuse_oversized_files() {
        let mut plan = Plan::new(Source::Json, SPath::parse("p").unwrap());
        plan.add_file(br#"{"b": "1", "a": {"c": "2"}, "e": {}}"#, "f")
            .unwrap();
        let secrets: Vec<String> = plan.secrets().iter().map(|p| p.to_string()).collect();
        assert_eq!(secrets, ["p/a/c", "p/b"]);
        assert_eq!(plan.empty_folders()[0].to_string(), "p/e");
        let big = vec![b' '; MAX_FILE + 1];
        assert!(plan.add_file(&big, "big").is_err());
    }

    #[test]
    fn too_many_secrets_are_refused() {
        let mut text = String::new();
        for i in 0..=MAX_ITEMS {
            text.push_str(&format!("K{i}=v\n"));
        }
        let mut plan = Plan::new(Source::Dotenv, SPath::root());
        let e = plan.add_file(text.as_bytes(), "f").err().unwrap();
        assert!(e.to_string().contains("at most 100000"), "{e}");
    }
}
