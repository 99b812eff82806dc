//! Secrets as files: one file per secret of a folder, in a directory a
//! service reads (`sesto materialize`).
//!
//! This module owns the directory side and nothing of the store: it checks
//! that a directory is a safe place for plaintext, locks it, and makes its
//! files match a list of (name, value) pairs. Each file is written through a
//! temp file in the directory (mode 0600, fsync, rename), so a reader sees
//! the old value or the new one, never half of either. A manifest,
//! [`MANIFEST`], lists the files sesto wrote: only those are ever replaced or
//! removed, and names starting with [`RESERVED_PREFIX`] are sesto's own.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// The manifest of the files sesto wrote into a directory.
pub const MANIFEST: &str = ".sesto-materialized";

/// Names starting with this are sesto's own (manifest, temp files), never a
/// secret's file.
pub const RESERVED_PREFIX: &str = ".sesto-";

const TEMP_PREFIX: &str = ".sesto-tmp-";

/// Why a directory or a name was refused, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The directory, or a file in it, is not a safe place for plaintext.
    #[error("refusing {path}: {reason}")]
    Refused {
        /// The directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to do about it.
        fix: String,
    },
    /// A secret's name cannot be a file name.
    #[error("secret {name:?} cannot be materialized as a file: {reason}")]
    BadName {
        /// The secret's name (a name, never a value).
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// I/O on a named file.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

impl Error {
    /// A line telling the user what to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Refused { fix, .. } => Some(fix.clone()),
            Error::BadName { .. } => Some("rename the secret with `sesto mv`".into()),
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                Some("make the directory writable by the user sesto runs as".into())
            }
            Error::Io { source, .. } if source.raw_os_error() == Some(libc::EROFS) => {
                Some("choose a directory on a writable file system, such as /run/secrets/…".into())
            }
            Error::Io { .. } => None,
        }
    }
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Result with this module's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that a secret's name can be a file name in the directory: not
/// empty, `.` or `..`, no `/`, NUL or control characters, not reserved.
/// The store refuses most of these already; this check does not rely on it.
pub fn check_file_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name == "." || name == ".." {
        return bad("`.`, `..` and the empty name are not file names");
    }
    if name.contains('/') || name.contains('\0') {
        return bad("file names cannot contain `/` or NUL");
    }
    if name.chars().any(char::is_control) {
        return bad("file names here cannot contain control characters");
    }
    if name.len() > 255 {
        return bad("file names are at most 255 bytes");
    }
    if name.starts_with(RESERVED_PREFIX) {
        return bad("names starting with `.sesto-` are reserved for sesto's own files");
    }
    Ok(())
}

/// A directory checked and locked for materializing. The lock (`flock` on
/// the directory itself) is held until this is dropped, so two materializers
/// never write one directory at once.
#[derive(Debug)]
pub struct Dir {
    path: PathBuf,
    handle: File,
}

/// What one [`Dir::apply`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Files written because they were new or their value changed.
    pub written: Vec<String>,
    /// Files removed because their secret is gone.
    pub removed: Vec<String>,
    /// Files left as they were.
    pub unchanged: Vec<String>,
}

impl Report {
    /// Whether anything was written or removed.
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

impl Dir {
    /// Prepares `dir` for plaintext: creates it (mode 0700) when missing, then
    /// refuses it when it is a symbolic link, inside the git work tree
    /// `work_tree` or any other, owned by another user, or writable by group
    /// or others; then takes its lock, failing at once when another process
    /// holds it.
    ///
    /// A symlink is refused rather than followed: the link could be pointed
    /// elsewhere between the checks and the writes, and plaintext would land
    /// where no check looked. Naming the real directory costs nothing.
    pub fn open(dir: &Path, work_tree: &Path) -> Result<Dir> {
        let abs = std::path::absolute(dir).map_err(io("resolve", dir))?;
        // Checked before anything is created, so a refused DIR leaves no trace.
        refuse_in_work_tree(&resolve_existing(&abs), work_tree)?;
        match fs::symlink_metadata(&abs) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = fs::read_link(&abs)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(Error::Refused {
                    path: abs,
                    reason: format!("it is a symbolic link (to {target})"),
                    fix: "name the directory itself: a link can be re-pointed between sesto's \
                          checks and its writes"
                        .into(),
                });
            }
            Ok(m) if !m.is_dir() => {
                return Err(Error::Refused {
                    path: abs,
                    reason: "it is not a directory".into(),
                    fix: "name a directory, or a path where sesto may create one".into(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&abs)
                    .map_err(io("create", &abs))?;
            }
            Err(e) => return Err(io("read", &abs)(e)),
        }
        let path = fs::canonicalize(&abs).map_err(io("resolve", &abs))?;
        refuse_in_work_tree(&path, work_tree)?;
        let handle = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(io("open", &path))?;
        let meta = handle.metadata().map_err(io("read", &path))?;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::Refused {
                path,
                reason: format!(
                    "it is owned by uid {}, not by this user (uid {me})",
                    meta.uid()
                ),
                fix: "run sesto as the directory's owner, or give it a directory of its own \
                      (systemd: RuntimeDirectory=)"
                    .into(),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(Error::Refused {
                reason: format!(
                    "it is writable by group or others (mode {:04o}), who could replace the files",
                    meta.mode() & 0o7777
                ),
                fix: format!("chmod 700 {}", path.display()),
                path,
            });
        }
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                return Err(Error::Refused {
                    path,
                    reason: "another `sesto materialize` is writing it (its lock is held)".into(),
                    fix: "stop the other one (or let it keep the directory up to date); one \
                          directory takes one materializer"
                        .into(),
                });
            }
            return Err(io("lock", &path)(e));
        }
        // The path must still be the directory that was checked and locked.
        let now = fs::symlink_metadata(&path).map_err(io("read", &path))?;
        if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
            return Err(Error::Refused {
                path,
                reason: "it was replaced while sesto checked it".into(),
                fix: "find out what is changing it, then run sesto again".into(),
            });
        }
        Ok(Dir { path, handle })
    }

    /// The directory, resolved.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the directory hold exactly `files` among the files sesto wrote:
    /// new and changed values are written atomically (mode 0600), unchanged
    /// ones are left alone (their mtime stays), files of secrets no longer
    /// listed are removed. A file sesto did not write is never replaced or
    /// removed: a secret whose name it holds is an error, and nothing is
    /// written. Values are compared and written, never shown.
    pub fn apply(&self, files: &[(String, &[u8])]) -> Result<Report> {
        for (name, _) in files {
            check_file_name(name)?;
        }
        let old = self.read_manifest()?;
        self.remove_temps();
        let mut report = Report::default();
        let mut to_write = Vec::new();
        for (name, value) in files {
            let path = self.path.join(name);
            match fs::symlink_metadata(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => to_write.push((name, value)),
                Err(e) => return Err(io("read", &path)(e)),
                Ok(_) if !old.contains(name) => {
                    return Err(Error::Refused {
                        path,
                        reason: format!(
                            "secret {name:?} would replace this file, which sesto did not write"
                        ),
                        fix: "move the file away, or materialize into a directory of its own"
                            .into(),
                    })
                }
                Ok(m) if self.is_current(&path, &m, value)? => report.unchanged.push(name.clone()),
                Ok(_) => to_write.push((name, value)),
            }
        }
        let new: BTreeSet<String> = files.iter().map(|(n, _)| n.clone()).collect();
        // Listed before they exist, so a crash never leaves a file of ours unlisted.
        let union: BTreeSet<String> = old.union(&new).cloned().collect();
        if union != old {
            self.write_manifest(&union)?;
        }
        for (name, value) in to_write {
            self.write_file(name, value)?;
            report.written.push(name.clone());
        }
        for name in old.difference(&new) {
            let path = self.path.join(name);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => continue,
                Ok(_) => fs::remove_file(&path).map_err(io("remove", &path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("read", &path)(e)),
            }
            report.removed.push(name.clone());
        }
        if new != union {
            self.write_manifest(&new)?;
        }
        if report.changed() {
            let _ = self.handle.sync_all();
        }
        report.written.sort();
        report.unchanged.sort();
        Ok(report)
    }

    /// Whether the file at `path` is ours as it should be: a regular file,
    /// mode 0600, holding exactly `value`.
    fn is_current(&self, path: &Path, meta: &fs::Metadata, value: &[u8]) -> Result<bool> {
        if !meta.is_file() || meta.mode() & 0o7777 != 0o600 || meta.len() != value.len() as u64 {
            return Ok(false);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(io("read", path))?;
        let mut held = Zeroizing::new(Vec::with_capacity(value.len()));
        (&mut file)
            .take(value.len() as u64 + 1)
            .read_to_end(&mut held)
            .map_err(io("read", path))?;
        Ok(held.as_slice() == value)
    }

    /// The names the manifest lists; names that could not be sesto's (a
    /// tampered manifest naming `../x`) are dropped, so they are never removed.
    fn read_manifest(&self) -> Result<BTreeSet<String>> {
        let path = self.path.join(MANIFEST);
        let meta = match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(io("read", &path)(e)),
            Ok(m) => m,
        };
        let refused = |reason: &str| Error::Refused {
            path: path.clone(),
            reason: reason.into(),
            fix: "remove it (sesto then treats every other file as not its own) and run \
                  sesto again"
                .into(),
        };
        if !meta.is_file() || meta.len() > 16 << 20 {
            return Err(refused(
                "sesto's manifest is not a regular file of at most 16 MiB",
            ));
        }
        let bytes = fs::read(&path).map_err(io("read", &path))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|_| refused("sesto's manifest is not valid"))?;
        Ok(manifest
            .files
            .into_iter()
            .filter(|n| check_file_name(n).is_ok())
            .collect())
    }

    fn write_manifest(&self, names: &BTreeSet<String>) -> Result<()> {
        let manifest = Manifest {
            note: "files written by `sesto materialize`; it removes them when their secret \
                   is gone, and touches no other file"
                .into(),
            files: names.iter().cloned().collect(),
        };
        let mut text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        text.push(b'\n');
        self.write_file(MANIFEST, &text)
    }

    /// Writes `name` through a temp file beside it: 0600, fsync, rename.
    fn write_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        use rand::RngCore;
        let tmp = self.path.join(format!(
            "{TEMP_PREFIX}{:016x}",
            rand::rngs::OsRng.next_u64()
        ));
        let target = self.path.join(name);
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&tmp)
                .map_err(io("create", &tmp))?;
            // The mode given to open is filtered by the umask; this is exact.
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(io("set the mode of", &tmp))?;
            file.write_all(bytes).map_err(io("write", &tmp))?;
            file.sync_all().map_err(io("sync", &tmp))?;
            fs::rename(&tmp, &target).map_err(io("rename into place", &target))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Removes temp files a killed materializer left (the lock is held).
    fn remove_temps(&self) {
        for entry in fs::read_dir(&self.path).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    note: String,
    files: Vec<String>,
}

/// `path` with its longest existing prefix resolved (symlinks followed),
/// for checks made before the rest is created.
fn resolve_existing(path: &Path) -> PathBuf {
    for base in path.ancestors() {
        if let Ok(real) = fs::canonicalize(base) {
            let rest = path.strip_prefix(base).expect("an ancestor is a prefix");
            return real.join(rest);
        }
    }
    path.to_path_buf()
}

/// Refuses `dir` (resolved) inside the store's work tree or any git work
/// tree: plaintext there is one `git add` away from a commit.
fn refuse_in_work_tree(dir: &Path, work_tree: &Path) -> Result<()> {
    let work = fs::canonicalize(work_tree).unwrap_or_else(|_| work_tree.to_path_buf());
    let found = if dir.starts_with(&work) {
        Some(work)
    } else {
        dir.ancestors()
            .find(|a| fs::symlink_metadata(a.join(".git")).is_ok())
            .map(Path::to_path_buf)
    };
    match found {
        None => Ok(()),
        Some(repo) => Err(Error::Refused {
            path: dir.to_path_buf(),
            reason: format!(
                "it is inside the git work tree {}, where plaintext could be committed",
                repo.display()
            ),
            fix: "choose a directory outside every git work tree, such as /run/secrets/<app> \
                  or $XDG_RUNTIME_DIR/<app>"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\0b",
            "a\nb",
            ".sesto-materialized",
            ".sesto-x",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?} was accepted");
        }
        for good in ["tls.key", "...", ".hidden", "sesto-x", "grüß"] {
            check_file_name(good).unwrap();
        }
    }
}
