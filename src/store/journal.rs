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
//!
//! A large change (a key rotation rewrites every node a member could read) goes
//! another way to the same promise: the journal itself holds every new file's
//! bytes, and once it is durable the files are overwritten in place. Creating
//! and renaming thousands of temp files costs the filesystem a new inode each,
//! which was most of a rotation's time; overwriting reuses the inodes. A crash
//! before the journal is durable has touched nothing in the store; one after
//! it is replayed from the bytes in the journal.

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
    let batch = syncs_filesystem(files.len());
    // Up to IN_PLACE_FROM files are created on all cores: most of the time is
    // the filesystem finding room for each new file.
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
        sync_filesystem(temps[0].parent().expect("temps live in a directory"))?;
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
    prepare_dir(tmp.parent().expect("temps live in a directory"))?;
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

/// Replaces `target` atomically, without waiting for the disk: for records
/// that are worked out again when a crash loses them (which commit a clone
/// last checked), where readers must never see half a file but need not
/// see the newest one.
pub(crate) fn write_cache(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(target);
    create_temp(&tmp, bytes, false)?;
    fs::rename(&tmp, target).map_err(Error::io("cannot rename into place", target))
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

/// Changes of at least this many files are written in place from the journal
/// rather than through a temp file each (see the module comment).
pub const IN_PLACE_FROM: usize = 256;

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
    /// Write these bytes over the target in place (large changes).
    Write {
        /// The target.
        path: String,
        /// Its new content.
        bytes: Vec<u8>,
    },
    /// Remove a file.
    Remove(String),
}

impl Op {
    /// The work-tree path this op changes.
    pub fn target(&self) -> &str {
        match self {
            Op::Rename { to, .. } => to,
            Op::Write { path, .. } => path,
            Op::Remove(p) => p,
        }
    }

    /// The work-tree paths git must be told about once this op is done: the
    /// target, and a moved file's old path (a temp file's is not git's).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.moved_from()
            .into_iter()
            .chain(std::iter::once(self.target()))
    }

    /// The old path of a file this op moves unchanged (not a temp file's).
    pub fn moved_from(&self) -> Option<&str> {
        match self {
            Op::Rename { from, .. }
                if !Path::new(from)
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_MARK)) =>
            {
                Some(from)
            }
            _ => None,
        }
    }
}

/// Removes the directories that held `files` and are empty now, up to
/// `.sesto/nodes` (not included): what a move to another layout leaves.
/// Best effort: a directory that is not empty stays.
pub fn remove_empty_dirs<'p>(files: impl IntoIterator<Item = &'p Path>) {
    let mut dirs: Vec<&Path> = files.into_iter().filter_map(Path::parent).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        for level in dir.ancestors() {
            if level.file_name() == Some(std::ffi::OsStr::new("nodes"))
                || fs::remove_dir(level).is_err()
            {
                break;
            }
        }
    }
}

/// Creates the directories of `targets` and refuses symlinked ones; returns
/// them, each once. In-place writes call it before the journal makes the
/// change unstoppable (a journal that could never be applied would leave the
/// store stuck), and again when the journal is applied or replayed.
pub fn prepare_dirs<'p>(targets: impl IntoIterator<Item = &'p Path>) -> Result<Vec<&'p Path>> {
    let mut dirs: Vec<&Path> = targets
        .into_iter()
        .map(|target| target.parent().expect("targets live in a directory"))
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.iter().try_for_each(|dir| prepare_dir(dir))?;
    Ok(dirs)
}

/// Creates `dir` if needed, and refuses it when it is a symlink. Inside a
/// store's `.sesto/` every level below `.sesto/` is checked and made one at a
/// time, so that a symlink planted at a middle level (`nodes/`, or a level of
/// format version 2's deeper shards) is refused before anything is created
/// through it: `create_dir_all` would follow it out of the repository.
fn prepare_dir(dir: &Path) -> Result<()> {
    let refuse = |path: &Path, reason: &str| Error::Refused {
        path: path.to_path_buf(),
        reason: reason.into(),
    };
    let below_sesto = dir
        .ancestors()
        .position(|a| a.file_name() == Some(std::ffi::OsStr::new(".sesto")));
    let Some(depth) = below_sesto else {
        fs::create_dir_all(dir).map_err(Error::io("cannot create directory", dir))?;
        if fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(refuse(dir, "symlinks are not allowed in .sesto/"));
        }
        return Ok(());
    };
    let levels: Vec<&Path> = dir.ancestors().take(depth).collect();
    for level in levels.into_iter().rev() {
        let meta = match fs::symlink_metadata(level) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match fs::create_dir(level) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::io("cannot create directory", level)(e))
                    }
                    _ => {}
                }
                // Made here, or by someone else meanwhile: look again.
                fs::symlink_metadata(level).map_err(Error::io("cannot read", level))?
            }
            other => other.map_err(Error::io("cannot read", level))?,
        };
        if meta.file_type().is_symlink() {
            return Err(refuse(level, "symlinks are not allowed in .sesto/"));
        }
        if !meta.is_dir() {
            return Err(refuse(level, "not a directory"));
        }
    }
    Ok(())
}

/// Overwrites `path` with `bytes`, keeping its inode where it is a plain file
/// of ours. Never writes through a symlink, a hard link or a special file
/// (git cannot make the last two, but the work tree is not only git's): such a
/// file is removed and a new one made in its place. Mode 0600.
///
/// The old bytes are written over, and the file cut to length only when it
/// was longer: node files are padded, so most keep their size, and freeing
/// and allocating the same blocks again (a truncate first) made rewriting
/// 10,000 files on disk ten times slower.
fn write_in_place(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let open = |create_new: bool| {
        OpenOptions::new()
            .write(true)
            .create(!create_new)
            .create_new(create_new)
            .mode(0o600)
            // O_NONBLOCK: opening a planted FIFO fails instead of hanging.
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
    };
    let replace = || -> std::io::Result<File> {
        remove_if_exists(path).map_err(|_| std::io::Error::last_os_error())?;
        open(true)
    };
    let (mut file, old_len) = match open(false) {
        Ok(file) => {
            let meta = file.metadata().map_err(Error::io("cannot read", path))?;
            if !meta.is_file() || meta.nlink() > 1 {
                drop(file);
                (replace().map_err(Error::io("cannot create", path))?, 0)
            } else {
                if meta.mode() & 0o7777 != 0o600 {
                    file.set_permissions(fs::Permissions::from_mode(0o600))
                        .map_err(Error::io("cannot set mode 0600 on", path))?;
                }
                (file, meta.len())
            }
        }
        // A symlink (ELOOP) or a FIFO nobody reads (ENXIO) where the file goes.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENXIO)) => {
            (replace().map_err(Error::io("cannot create", path))?, 0)
        }
        Err(e) => return Err(Error::io("cannot open", path)(e)),
    };
    file.write_all(bytes)
        .map_err(Error::io("cannot write", path))?;
    if old_len > bytes.len() as u64 {
        file.set_len(bytes.len() as u64)
            .map_err(Error::io("cannot truncate", path))?;
    }
    if sync {
        file.sync_all().map_err(Error::io("cannot sync", path))?;
    }
    Ok(())
}

/// Whether a batch of `files` written files is made durable by one `syncfs`
/// (Linux) rather than an fsync per file and directory.
fn syncs_filesystem(files: usize) -> bool {
    cfg!(target_os = "linux") && files > 32
}

/// Flushes everything written to the filesystem holding `dir`: one `syncfs`
/// on Linux instead of an fsync per file of a large batch.
#[cfg(target_os = "linux")]
fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(Error::io("cannot open", dir))?;
    // SAFETY: syncfs on a descriptor we own.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(Error::io("cannot sync", dir)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
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
        let mut out = b"sesto-journal-v1\n".to_vec();
        for op in ops {
            match op {
                Op::Rename { from, to } => {
                    out.extend_from_slice(format!("rename\t{from}\t{to}\n").as_bytes())
                }
                Op::Write { path, bytes } => {
                    out.extend_from_slice(format!("write\t{path}\t{}\n", bytes.len()).as_bytes());
                    out.extend_from_slice(bytes);
                    out.push(b'\n');
                }
                Op::Remove(p) => out.extend_from_slice(format!("remove\t{p}\n").as_bytes()),
            }
        }
        out.extend_from_slice(b"end\n");
        write_atomic(&self.path, &out)
    }

    /// Reads the pending ops. A journal without its end line was never
    /// committed (the atomic write makes that impossible, but a hand-edited
    /// or damaged one is refused rather than half-applied).
    pub fn read(&self) -> Result<Vec<Op>> {
        let data = fs::read(&self.path).map_err(Error::io("cannot read journal", &self.path))?;
        parse(&data).map_err(|reason| Error::Refused {
            path: self.path.clone(),
            reason: reason.to_string(),
        })
    }

    /// Carries out the ops; each is idempotent, so replaying is safe.
    pub fn apply(work: &Path, ops: &[Op]) -> Result<()> {
        let mut dirs = Vec::new();
        let writes: Vec<(usize, PathBuf, &[u8])> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Write { path, bytes } => Some((work.join(path), bytes.as_slice())),
                _ => None,
            })
            .enumerate()
            .map(|(n, (path, bytes))| (n, path, bytes))
            .collect();
        if !writes.is_empty() {
            let batch = syncs_filesystem(writes.len());
            let write_dirs = prepare_dirs(writes.iter().map(|(_, path, _)| path.as_path()))?;
            crate::par::map(&writes, |(n, path, bytes)| {
                let written = write_in_place(path, bytes, !batch);
                if *n == 0 {
                    failpoint("after-first-rename");
                }
                written
            })
            .into_iter()
            .collect::<Result<Vec<()>>>()?;
            #[cfg(target_os = "linux")]
            if batch {
                sync_filesystem(work)?;
            }
            if !batch {
                // New files' entries; syncfs has flushed them already.
                dirs.extend(write_dirs.into_iter().map(|d| Some(d.to_path_buf())));
            }
        }
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
                Op::Write { .. } => continue,
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

/// Parses a journal's bytes (see [`Journal::record`] for the format).
fn parse(data: &[u8]) -> std::result::Result<Vec<Op>, &'static str> {
    let incomplete = "not a complete sesto journal; remove it after checking `git status`";
    let mut rest = data
        .strip_prefix(b"sesto-journal-v1\n".as_slice())
        .filter(|_| data.ends_with(b"end\n"))
        .ok_or(incomplete)?;
    let mut ops = Vec::new();
    loop {
        let eol = rest.iter().position(|&b| b == b'\n').ok_or(incomplete)?;
        let line = std::str::from_utf8(&rest[..eol]).map_err(|_| "unreadable journal line")?;
        rest = &rest[eol + 1..];
        let fields: Vec<&str> = line.split('\t').collect();
        let op = match fields.as_slice() {
            ["end"] if rest.is_empty() => return Ok(ops),
            ["rename", from, to] => Op::Rename {
                from: from.to_string(),
                to: to.to_string(),
            },
            ["write", path, len] => {
                let len: usize = len.parse().map_err(|_| "unreadable journal line")?;
                if rest.len() <= len || rest[len] != b'\n' {
                    return Err(incomplete);
                }
                let bytes = rest[..len].to_vec();
                rest = &rest[len + 1..];
                Op::Write {
                    path: path.to_string(),
                    bytes,
                }
            }
            ["remove", p] => Op::Remove(p.to_string()),
            _ => return Err("unreadable journal line"),
        };
        let from = match &op {
            Op::Rename { from, .. } => Some(from.as_str()),
            _ => None,
        };
        if !safe_rel(op.target()) || from.is_some_and(|f| !safe_rel(f)) {
            return Err("journal names a path outside .sesto/");
        }
        ops.push(op);
    }
}

/// A relative path that stays inside `.sesto/`.
fn safe_rel(p: &str) -> bool {
    p.starts_with(".sesto/") && !p.split('/').any(|c| c == ".." || c.is_empty() || c == ".")
}

#[cfg(test)]
mod tests;
