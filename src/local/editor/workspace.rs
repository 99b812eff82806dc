//! The private directory an edit happens in: created 0700 (on tmpfs where
//! one exists), written and read back with a size cap, wiped and removed on
//! drop; and what a killed sesto left behind, removed by the next edit.

use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use zeroize::Zeroizing;

use super::{EditError, EDIT_DIR_ENV, MAX_EDIT_BYTES, MAX_FILE_NAME};

/// The private directory and the file in it; wiped and removed on drop.
pub(super) struct Workspace {
    pub(super) dir: Option<TempDir>,
    pub(super) file: PathBuf,
}

impl Workspace {
    /// A workspace on the first tmpfs candidate that works, else on `disk` with a
    /// warning.
    pub(super) fn create_on_tmpfs(
        candidates: &[PathBuf],
        disk: &Path,
        file_name: &str,
    ) -> Result<(Workspace, Option<String>), EditError> {
        for dir in candidates.iter().filter(|d| d.is_dir()) {
            if let Ok(workspace) = Workspace::create(dir, file_name) {
                return Ok((workspace, None));
            }
        }
        let workspace = Workspace::create(disk, file_name)?;
        let warning = format!(
            "no tmpfs found (/dev/shm, $XDG_RUNTIME_DIR): the secret was edited in {} on \
             persistent disk, where deleted data may be recoverable; set {EDIT_DIR_ENV} \
             to a directory on tmpfs",
            disk.display()
        );
        Ok((workspace, Some(warning)))
    }

    pub(super) fn create(parent: &Path, file_name: &str) -> Result<Workspace, EditError> {
        let private_dir = |source| EditError::PrivateDir {
            dir: parent.to_owned(),
            source,
        };
        remove_stale(parent);
        // The pid in the name tells a later run whether this one is gone.
        let prefix = format!("{STALE_PREFIX}{}-", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(private_dir)?;
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).map_err(private_dir)?;
        let file = dir.path().join(sanitize_file_name(file_name));
        Ok(Workspace {
            dir: Some(dir),
            file,
        })
    }

    pub(super) fn write(&self, initial: &[u8]) -> Result<(), EditError> {
        let write_file = |source| EditError::WriteFile {
            path: self.file.clone(),
            source,
        };
        // No fsync: on a disk fallback the less of it that reaches the disk the better.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.file)
            .and_then(|mut f| f.write_all(initial))
            .map_err(write_file)
    }

    /// Read the file by path, since editors that save by renaming replace it.
    pub(super) fn read_back(&self) -> Result<Zeroizing<Vec<u8>>, EditError> {
        let read_back = |source| EditError::ReadBack {
            path: self.file.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&self.file)
            .map_err(read_back)?;
        let meta = file.metadata().map_err(read_back)?;
        if !meta.is_file() {
            return Err(read_back(io::Error::other("not a regular file")));
        }
        if meta.len() > MAX_EDIT_BYTES as u64 {
            return Err(EditError::TooLarge);
        }
        read_capped(&mut file, meta.len() as usize).map_err(|e| match e {
            ReadCapped::TooLarge => EditError::TooLarge,
            ReadCapped::Io(e) => read_back(e),
        })
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            wipe_files(dir.path());
            // Best effort: nothing more can be done about a directory that will not go.
            let _ = dir.close();
        }
    }
}

/// The start of every edit directory's name.
pub(super) const STALE_PREFIX: &str = "sesto-edit-";

/// Age after which an edit directory without a pid in its name (from an older
/// sesto) is taken as left behind.
pub(super) const STALE_LEGACY_SECS: i64 = 24 * 60 * 60;

/// Wipes and removes this user's edit directories in `parent` whose sesto is
/// gone (killed with SIGKILL, or the machine lost power mid-edit).
pub(super) fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(STALE_PREFIX)) else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_dir() || meta.uid() != me {
            continue;
        }
        let pid = rest
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<libc::pid_t>().ok())
            .filter(|pid| *pid > 0);
        let stale = match pid {
            Some(pid) => pid != std::process::id() as libc::pid_t && !alive(pid),
            None => now - meta.mtime() > STALE_LEGACY_SECS,
        };
        if stale {
            wipe_files(&path);
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Whether a process `pid` exists (one we may not signal counts).
pub(super) fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

pub(super) enum ReadCapped {
    TooLarge,
    Io(io::Error),
}

/// Read to the end, up to [`MAX_EDIT_BYTES`], growing the buffer by hand so that no
/// reallocation leaves an unzeroized copy of the plaintext on the heap.
pub(super) fn read_capped(
    reader: &mut impl Read,
    size_hint: usize,
) -> Result<Zeroizing<Vec<u8>>, ReadCapped> {
    let mut buf = Zeroizing::new(Vec::with_capacity(size_hint.min(MAX_EDIT_BYTES) + 1));
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let n = match reader.read(&mut chunk[..]) {
            Ok(0) => return Ok(buf),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadCapped::Io(e)),
        };
        let needed = buf.len() + n;
        if needed > MAX_EDIT_BYTES {
            return Err(ReadCapped::TooLarge);
        }
        if needed > buf.capacity() {
            let capacity = needed.max(buf.capacity() * 2).min(MAX_EDIT_BYTES);
            let mut bigger = Zeroizing::new(Vec::with_capacity(capacity));
            bigger.extend_from_slice(&buf);
            buf = bigger;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Overwrite with zeros every regular file the editor left in `dir` (ours, its
/// backups, anything), best effort, before the directory is removed.
pub(super) fn wipe_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let zeros = [0u8; 8192];
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        // A hard link would carry the zeros to a file outside the directory.
        if !meta.is_file() || meta.nlink() != 1 {
            continue;
        }
        let Ok(mut file) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
        else {
            continue;
        };
        let mut left = meta.len();
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            if file.write_all(&zeros[..n]).is_err() {
                break;
            }
            left -= n as u64;
        }
        let _ = file.sync_data();
    }
}

/// A single safe path component from a display name: letters, digits and `._-+@,=~`
/// kept, anything else (`/`, control and format characters, spaces) turned into `_`,
/// no leading dot, at most 64 bytes with a short extension kept.
pub(super) fn sanitize_file_name(hint: &str) -> String {
    let mapped: String = hint
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "._-+@,=~".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = mapped.trim_start_matches('.');
    if name.is_empty() {
        return "secret".to_owned();
    }
    if name.len() <= MAX_FILE_NAME {
        return name.to_owned();
    }
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.len() <= 16 => (stem, ext),
        _ => (name, ""),
    };
    let room = if ext.is_empty() {
        MAX_FILE_NAME
    } else {
        MAX_FILE_NAME - ext.len() - 1
    };
    let mut cut = room.min(stem.len());
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    if ext.is_empty() {
        stem[..cut].to_owned()
    } else {
        format!("{}.{ext}", &stem[..cut])
    }
}
