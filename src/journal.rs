//! Crash-safe multi-file writes: temp files, an intent journal, renames, a lock.
//!
//! A change to the store touches several files (a node and its parent, say).
//! Each new file is written beside its target under a temporary name, with mode
//! 0600, and fsynced. Then a journal naming every rename and removal is made
//! durable in the git directory; that is the commit point. Then the renames and
//! removals happen, and the journal is removed. A process killed before the
//! journal is durable leaves the old state (plus temp files that recovery
//! removes); one killed after it leaves a journal that the next sesto process
//! replays, giving the new state. One lock file serialises writers of a clone.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Marks temporary files so recovery and fsck can recognise them.
pub const TEMP_MARK: &str = ".sesto-tmp-";

/// Stops the process at a named step when `SESTO_FAILPOINT` names it. Crash
/// tests use this to kill sesto at every step of a write.
pub fn failpoint(name: &str) {
    if std::env::var_os("SESTO_FAILPOINT").is_some_and(|v| v == name) {
        std::process::abort();
    }
}

/// An exclusive lock on the store, held for the life of the value.
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Blocks until this process holds the store's write lock.
    pub fn acquire(state_dir: &Path) -> Result<Lock> {
        fs::create_dir_all(state_dir).map_err(Error::io("cannot create", state_dir))?;
        let path = state_dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(Error::io("cannot open lock file", &path))?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(Error::io("cannot lock", &path)(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Lock { _file: file })
    }
}

/// Writes `bytes` to a new temporary file beside `target`, mode 0600, fsynced.
/// Returns the temporary path.
pub fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_path(target);
    create_temp(&tmp, bytes, true)?;
    Ok(tmp)
}

/// A fresh temporary path beside `target`.
fn temp_path(target: &Path) -> PathBuf {
    let dir = target.parent().expect("targets live in a directory");
    let name = target
        .file_name()
        .expect("targets have names")
        .to_string_lossy();
    dir.join(format!("{TEMP_MARK}{}-{name}", random_suffix()))
}

/// Writes many temp files beside their targets and makes them all durable
/// (one `syncfs` for a large batch on Linux instead of an fsync per file).
/// Their names are listed first in the state directory, so that if the
/// process dies before its journal is durable, the next write removes exactly
/// those files instead of searching the store for them.
pub fn write_temps(
    state: &Path,
    work: &Path,
    files: &[(PathBuf, Vec<u8>)],
) -> Result<Vec<PathBuf>> {
    let temps: Vec<PathBuf> = files.iter().map(|(target, _)| temp_path(target)).collect();
    let mut list = String::new();
    for t in &temps {
        list.push_str(&t.strip_prefix(work).unwrap_or(t).to_string_lossy());
        list.push('\n');
    }
    fs::create_dir_all(state).map_err(Error::io("cannot create", state))?;
    let list_path = state.join(TEMP_LIST);
    fs::write(&list_path, list).map_err(Error::io("cannot write", &list_path))?;
    match create_temps(files, &temps) {
        Ok(()) => Ok(temps),
        Err(e) => {
            // A refused or failed temp must not leave its siblings behind.
            let _ = remove_listed_temps(state, work);
            Err(e)
        }
    }
}

/// Writes each temp of [`write_temps`] and makes them durable.
fn create_temps(files: &[(PathBuf, Vec<u8>)], temps: &[PathBuf]) -> Result<()> {
    let batch = cfg!(target_os = "linux") && files.len() > 32;
    // Thousands of files (a key rotation) are created on all cores: most of
    // the time is the filesystem finding room for each new file.
    let jobs: Vec<(&[u8], &PathBuf)> = files
        .iter()
        .map(|(_, bytes)| bytes.as_slice())
        .zip(temps)
        .collect();
    crate::par::map(&jobs, |(bytes, tmp)| create_temp(tmp, bytes, !batch))
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    #[cfg(target_os = "linux")]
    if batch {
        let dir = temps[0].parent().expect("temps live in a directory");
        let d = File::open(dir).map_err(Error::io("cannot open", dir))?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(Error::io("cannot sync", dir)(
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// The list of temp files of the write in progress, in the state directory.
const TEMP_LIST: &str = "temps";

/// Removes the temp files of a write that died before its journal was
/// durable, as listed by [`write_temps`]. Hold the lock, with no journal pending.
pub fn remove_listed_temps(state: &Path, work: &Path) -> Result<()> {
    let list_path = state.join(TEMP_LIST);
    let list = match fs::read_to_string(&list_path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot read", &list_path)(e)),
    };
    for rel in list.lines() {
        let is_temp = Path::new(rel)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_MARK));
        if safe_rel(rel) && is_temp {
            let _ = fs::remove_file(work.join(rel));
        }
    }
    clear_temp_list(state)
}

/// Removes a file that may not exist.
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", path)(e)),
    }
}

/// Removes temp files of the state directory's own atomic writes (journal,
/// lists) left by a process killed while writing them. Hold the lock.
pub fn remove_state_temps(state: &Path) {
    for entry in fs::read_dir(state).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_MARK) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Forgets the temp list once the journal has taken over.
pub fn clear_temp_list(state: &Path) -> Result<()> {
    let path = state.join(TEMP_LIST);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", &path)(e)),
    }
}

fn create_temp(tmp: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let dir = tmp.parent().expect("temps live in a directory");
    fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
    if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Refused {
            path: dir.to_path_buf(),
            reason: "symlinks are not allowed in .sesto/".into(),
        });
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .map_err(Error::io("cannot create", tmp))?;
    file.write_all(bytes)
        .map_err(Error::io("cannot write", tmp))?;
    if sync {
        file.sync_all().map_err(Error::io("cannot sync", tmp))?;
    }
    Ok(())
}

/// Writes one file atomically: temp file, fsync, rename, fsync of the directory.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(target, bytes)?;
    fs::rename(&tmp, target).map_err(Error::io("cannot rename into place", target))?;
    sync_dir(target.parent().expect("targets live in a directory"));
    Ok(())
}

fn random_suffix() -> String {
    use rand::RngCore;
    format!("{:016x}", rand::rngs::OsRng.next_u64())
}

fn sync_dir(dir: &Path) {
    // Best effort: some filesystems refuse fsync on directories.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// One step of a change, relative to the work tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Rename a finished temp file onto its target.
    Rename {
        /// The temp file.
        from: String,
        /// The target.
        to: String,
    },
    /// Remove a file.
    Remove(String),
}

impl Op {
    /// The work-tree path this op changes.
    pub fn target(&self) -> &str {
        match self {
            Op::Rename { to, .. } => to,
            Op::Remove(p) => p,
        }
    }
}

/// The journal of one change.
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// The journal file in the sesto state directory of the git dir.
    pub fn at(state_dir: &Path) -> Journal {
        Journal {
            path: state_dir.join("journal"),
        }
    }

    /// Whether an unfinished change is waiting to be replayed.
    pub fn pending(&self) -> bool {
        self.path.exists()
    }

    /// Makes the list of ops durable: after this returns, the change happens.
    pub fn record(&self, ops: &[Op]) -> Result<()> {
        let mut text = String::from("sesto-journal-v1\n");
        for op in ops {
            match op {
                Op::Rename { from, to } => text.push_str(&format!("rename\t{from}\t{to}\n")),
                Op::Remove(p) => text.push_str(&format!("remove\t{p}\n")),
            }
        }
        text.push_str("end\n");
        write_atomic(&self.path, text.as_bytes())
    }

    /// Reads the pending ops. A journal without its end line was never
    /// committed (the atomic write makes that impossible, but a hand-edited
    /// or damaged one is refused rather than half-applied).
    pub fn read(&self) -> Result<Vec<Op>> {
        let text =
            fs::read_to_string(&self.path).map_err(Error::io("cannot read journal", &self.path))?;
        let refuse = |reason: &str| Error::Refused {
            path: self.path.clone(),
            reason: reason.to_string(),
        };
        let mut lines = text.lines();
        if lines.next() != Some("sesto-journal-v1") || !text.ends_with("end\n") {
            return Err(refuse(
                "not a complete sesto journal; remove it after checking `git status`",
            ));
        }
        let mut ops = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split('\t').collect();
            let op = match fields.as_slice() {
                ["rename", from, to] => Op::Rename {
                    from: from.to_string(),
                    to: to.to_string(),
                },
                ["remove", p] => Op::Remove(p.to_string()),
                ["end"] => break,
                _ => return Err(refuse("unreadable journal line")),
            };
            for p in [
                op.target(),
                if let Op::Rename { from, .. } = &op {
                    from
                } else {
                    ""
                },
            ] {
                if !p.is_empty() && !safe_rel(p) {
                    return Err(refuse("journal names a path outside .sesto/"));
                }
            }
            ops.push(op);
        }
        Ok(ops)
    }

    /// Carries out the ops; each is idempotent, so replaying is safe.
    pub fn apply(work: &Path, ops: &[Op]) -> Result<()> {
        let mut dirs = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Rename { from, to } => {
                    let (from, to) = (work.join(from), work.join(to));
                    if from.exists() {
                        fs::rename(&from, &to)
                            .map_err(Error::io("cannot rename into place", &to))?;
                    }
                    dirs.push(to.parent().map(Path::to_path_buf));
                }
                Op::Remove(p) => {
                    let path = work.join(p);
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io("cannot remove", &path)(e)),
                    }
                    if let Some(dir) = path.parent() {
                        let _ = fs::remove_dir(dir); // only succeeds when the shard is empty
                    }
                }
            }
            if n == 0 {
                failpoint("after-first-rename");
            }
        }
        dirs.sort();
        dirs.dedup();
        for dir in dirs.into_iter().flatten() {
            sync_dir(&dir);
        }
        Ok(())
    }

    /// Removes the journal once the change is complete.
    pub fn clear(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove journal", &self.path)(e)),
        }
    }
}

/// A relative path that stays inside `.sesto/`.
fn safe_rel(p: &str) -> bool {
    p.starts_with(".sesto/") && !p.split('/').any(|c| c == ".." || c.is_empty() || c == ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_temp_takes_its_written_siblings_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let nodes = work.join(".sesto/nodes");
        fs::create_dir_all(nodes.join("aa")).unwrap();
        fs::create_dir(work.join("outside")).unwrap();
        std::os::unix::fs::symlink(work.join("outside"), nodes.join("bb")).unwrap();
        let files = vec![
            (nodes.join("aa/first.age"), b"one".to_vec()),
            (nodes.join("bb/second.age"), b"two".to_vec()),
        ];
        let err = write_temps(&work.join("state"), work, &files).unwrap_err();
        assert!(
            err.to_string().contains("symlinks are not allowed"),
            "{err}"
        );
        assert_eq!(fs::read_dir(nodes.join("aa")).unwrap().count(), 0);
        assert_eq!(fs::read_dir(work.join("outside")).unwrap().count(), 0);
        assert!(!work.join("state").join(TEMP_LIST).exists());
    }

    #[test]
    fn journal_round_trip_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        fs::create_dir_all(work.join(".sesto/nodes/ab")).unwrap();
        let target = work.join(".sesto/nodes/ab/x.age");
        let tmp = write_temp(&target, b"new").unwrap();
        fs::write(work.join(".sesto/nodes/ab/old.age"), b"old").unwrap();
        let rel = |p: &Path| p.strip_prefix(work).unwrap().to_string_lossy().into_owned();
        let ops = vec![
            Op::Rename {
                from: rel(&tmp),
                to: rel(&target),
            },
            Op::Remove(".sesto/nodes/ab/old.age".into()),
        ];
        let journal = Journal::at(&work.join("state"));
        fs::create_dir_all(work.join("state")).unwrap();
        journal.record(&ops).unwrap();
        assert_eq!(journal.read().unwrap(), ops);
        Journal::apply(work, &ops).unwrap();
        Journal::apply(work, &ops).unwrap(); // replay is harmless
        assert_eq!(fs::read(&target).unwrap(), b"new");
        assert!(!work.join(".sesto/nodes/ab/old.age").exists());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn hostile_journals_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::at(dir.path());
        for text in [
            "",
            "sesto-journal-v1\nrename\ta\tb\n",
            "sesto-journal-v1\nremove\t../../etc/passwd\nend\n",
            "sesto-journal-v1\nrename\t.sesto/x\t.sesto/../../y\nend\n",
            "sesto-journal-v1\nexplode\nend\n",
        ] {
            fs::write(dir.path().join("journal"), text).unwrap();
            assert!(journal.read().is_err(), "{text:?}");
        }
    }
}
