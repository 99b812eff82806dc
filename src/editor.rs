//! Editing a secret with `$VISUAL` / `$EDITOR` on a private file: a fresh 0700
//! directory on tmpfs where one exists, a 0600 file in it, read back by path, and
//! the directory wiped and removed on every way out, Ctrl-C, SIGTERM and SIGHUP
//! included; directories a killed sesto left behind are removed by the next edit.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};

use tempfile::TempDir;
use zeroize::Zeroizing;

/// Largest file read back from the editor: the store's limit on a plaintext.
pub const MAX_EDIT_BYTES: usize = 16 * 1024 * 1024;

/// Environment variable naming the directory to create the private directory in,
/// instead of `/dev/shm`, `$XDG_RUNTIME_DIR` or the system temporary directory.
pub const EDIT_DIR_ENV: &str = "SESTO_EDIT_DIR";

/// Longest file name, in bytes, given to the file being edited.
const MAX_FILE_NAME: usize = 64;

/// Options for vim and neovim: no swap, backup, undo or viminfo/shada file, so no
/// copy of the plaintext outlives the edit. Both accept all of them (`viminfo` is
/// neovim's alias of `shada`; `shada=` would be an error in vim). `-c` repeats the
/// settings after the user's vimrc, which may turn them back on (a vimrc setting
/// `viminfofile` overrides `-i NONE`).
const VIM_OPTIONS: [&str; 7] = [
    "-n",
    "-i",
    "NONE",
    "--cmd",
    VIM_SETTINGS,
    "-c",
    VIM_SETTINGS,
];
/// `nofixendofline` keeps a value that had no final newline without one.
const VIM_SETTINGS: &str =
    "set nobackup nowritebackup noundofile noswapfile viminfo= nofixendofline";

/// Signals sesto passes on to the editor while it runs, living on to clean up:
/// Ctrl-C reaches the editor only (as in git); SIGTERM (`timeout`, systemd,
/// a logout) and SIGHUP (a closed terminal) end the editor, and then the
/// edit, with nothing saved and no file left behind.
const FORWARDED_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGHUP, libc::SIGTERM];

/// Signals ignored while the editor runs (SIGQUIT, as git does).
const IGNORED_SIGNALS: [libc::c_int; 1] = [libc::SIGQUIT];

/// Every signal whose disposition an edit changes.
const HANDLED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGQUIT];

/// The editor's process id while it runs, for the signal handler.
static EDITOR_PID: AtomicI32 = AtomicI32::new(0);

/// SIGTERM or SIGHUP received during this edit (0: none).
static ENDING: AtomicI32 = AtomicI32::new(0);

/// The handler for [`FORWARDED_SIGNALS`]: async-signal-safe (atomics, `kill`).
extern "C" fn forward(signal: libc::c_int) {
    if signal != libc::SIGINT {
        ENDING.store(signal, Ordering::SeqCst);
    }
    let pid = EDITOR_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; pid is our own child's.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// Signal dispositions are process-wide, so edits are run one at a time.
static EDIT_LOCK: Mutex<()> = Mutex::new(());

/// What the user did to the buffer.
pub enum Edit {
    /// The file was saved as it was (or only gained a final newline): write nothing.
    Unchanged,
    /// The file was emptied or holds only whitespace: write nothing.
    Emptied,
    /// The new content, byte for byte.
    Changed(Zeroizing<Vec<u8>>),
}

// Content is secret: Debug names the variant only.
impl fmt::Debug for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Edit::Unchanged => f.write_str("Unchanged"),
            Edit::Emptied => f.write_str("Emptied"),
            Edit::Changed(_) => f.write_str("Changed(<redacted>)"),
        }
    }
}

/// The result of an edit, with a warning for the user when there was one.
#[derive(Debug)]
pub struct Edited {
    /// What the user did.
    pub edit: Edit,
    /// Set when no tmpfs was available and the plaintext sat on persistent disk for
    /// the length of the edit; the caller should show it.
    pub warning: Option<String>,
}

/// Why an edit failed. In every case the private directory is already removed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The private directory could not be created.
    #[error("failed to create a private directory for editing in {}; set {EDIT_DIR_ENV} to a writable directory", .dir.display())]
    PrivateDir {
        /// Where it was to be created.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file to edit could not be written.
    #[error("failed to write the file to edit, {}", .path.display())]
    WriteFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `sh` could not be started to run the editor.
    #[error("failed to start the editor `{editor}` through sh")]
    Spawn {
        /// The editor command.
        editor: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The shell could not find or execute the editor (exit status 126 or 127).
    #[error("editor `{editor}` not found or not executable; set $VISUAL or $EDITOR to an editor command")]
    EditorNotFound {
        /// The editor command.
        editor: String,
    },
    /// The editor exited unsuccessfully or was killed; its changes are discarded.
    #[error("editor `{editor}` failed ({status}); nothing was saved")]
    EditorFailed {
        /// The editor command.
        editor: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The edited file could not be read back.
    #[error("failed to read back the edited file {}", .path.display())]
    ReadBack {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The edited file is larger than [`MAX_EDIT_BYTES`].
    #[error("the edited file is larger than 16 MiB, the limit for a secret; nothing was saved")]
    TooLarge,
    /// sesto was told to stop (SIGTERM, SIGHUP) while the editor ran; the
    /// editor was told too, and nothing was saved.
    #[error("the edit was interrupted by {signal}; the editor was stopped and nothing was saved")]
    Interrupted {
        /// The signal's name.
        signal: &'static str,
    },
    /// The value is not UTF-8 text; an editor would change its bytes.
    #[error(
        "the value is binary (not UTF-8 text), and an editor would change its bytes; \
         replace it with `sesto set PATH < FILE`"
    )]
    Binary,
}

/// Let the user edit `initial` in their editor and return what they saved.
///
/// The editor is `$VISUAL` (unless `TERM=dumb`), then `$EDITOR`, then `vi`, run as
/// git does (`sh -c '<editor> "$@"'`) so that `EDITOR="code --wait"` works, with its
/// standard streams inherited. vim and neovim get options that keep swap, backup,
/// undo and viminfo files from holding the plaintext.
///
/// The file sits in a fresh 0700 directory under `$SESTO_EDIT_DIR` if set, else
/// `/dev/shm`, else `$XDG_RUNTIME_DIR`, else the system temporary directory (then
/// [`Edited::warning`] says so). `file_name` only names the file, for the user and
/// for the editor's syntax detection: it is reduced to a safe single component, and
/// other local users can see it in the editor's command line, so pass a generic or
/// leaf name. The file is read back by path (editors that save by renaming work),
/// then overwritten with zeros and removed with its directory on every path out.
/// While the editor runs, sesto passes SIGINT on to it, ends it and the edit on
/// SIGTERM or SIGHUP (saving nothing), and ignores SIGQUIT; a signal ignored
/// when sesto started (SIGHUP under `nohup`) stays ignored.
pub fn edit(initial: &[u8], file_name: &str) -> Result<Edited, EditError> {
    let editor = choose_editor(
        std::env::var_os("VISUAL"),
        std::env::var_os("EDITOR"),
        std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
    );
    let base = std::env::var_os(EDIT_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    edit_with(initial, file_name, &editor, base.as_deref())
}

/// [`edit`] with the editor command and parent directory given, for tests.
fn edit_with(
    initial: &[u8],
    file_name: &str,
    editor: &str,
    base_dir: Option<&Path>,
) -> Result<Edited, EditError> {
    if std::str::from_utf8(initial).is_err() || initial.contains(&0) {
        return Err(EditError::Binary);
    }
    let _one_at_a_time = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    // Declared before the workspace so it is dropped after it: signals stay
    // handled until the files are gone.
    let signals = EditSignals::install();
    let (workspace, warning) = match base_dir {
        Some(dir) => (Workspace::create(dir, file_name)?, None),
        None => Workspace::create_on_tmpfs(&tmpfs_candidates(), &std::env::temp_dir(), file_name)?,
    };
    workspace.write(initial)?;
    run_editor(editor, &workspace.file, &signals)?;
    let content = workspace.read_back()?;
    Ok(Edited {
        edit: classify(initial, content),
        warning,
    })
}

/// `$VISUAL`, then `$EDITOR`, then `vi`; empty or non-UTF-8 values are skipped.
fn choose_editor(visual: Option<OsString>, editor: Option<OsString>, dumb: bool) -> String {
    let visual = visual.filter(|_| !dumb);
    [visual, editor]
        .into_iter()
        .flatten()
        .filter_map(|e| e.into_string().ok())
        .find(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned())
}

fn tmpfs_candidates() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/dev/shm")];
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        if runtime.is_absolute() {
            dirs.push(runtime);
        }
    }
    dirs
}

fn classify(initial: &[u8], mut content: Zeroizing<Vec<u8>>) -> Edit {
    // Editors that end every file with a newline (nano; vim without
    // `nofixendofline`) would give one to a value that had none: a value
    // keeps its bytes, so that newline goes (a blank last line stays).
    if !initial.is_empty()
        && !initial.ends_with(b"\n")
        && content.ends_with(b"\n")
        && !content.ends_with(b"\n\n")
    {
        content.pop();
    }
    if content.as_slice() == initial {
        Edit::Unchanged
    } else if content.iter().all(u8::is_ascii_whitespace) {
        Edit::Emptied
    } else {
        Edit::Changed(content)
    }
}

/// Where an edit broke a secret that was a YAML mapping (whose fields `get
/// PATH FIELD`, `render` and `exec` read): `None` when `before` was no mapping
/// or `after` still is one. The answer names a line and column only, never
/// the content.
pub fn broken_mapping(before: &[u8], after: &[u8]) -> Option<String> {
    fn mapping(bytes: &[u8]) -> Result<bool, Option<serde_yaml::Location>> {
        crate::limits::check_yaml(bytes).map_err(|_| None)?;
        match serde_yaml::from_slice::<serde_yaml::Value>(bytes) {
            Ok(serde_yaml::Value::Mapping(m)) => Ok(!m.is_empty()),
            Ok(_) => Ok(false),
            Err(e) => Err(e.location()),
        }
    }
    if !matches!(mapping(before), Ok(true)) {
        return None;
    }
    match mapping(after) {
        Ok(true) => None,
        Ok(false) => Some("it is no longer a YAML mapping of fields".into()),
        Err(Some(at)) => Some(format!(
            "it no longer parses as YAML (line {}, column {})",
            at.line(),
            at.column()
        )),
        Err(None) => Some("it no longer parses as YAML".into()),
    }
}

/// The private directory and the file in it; wiped and removed on drop.
struct Workspace {
    dir: Option<TempDir>,
    file: PathBuf,
}

impl Workspace {
    /// A workspace on the first tmpfs candidate that works, else on `disk` with a
    /// warning.
    fn create_on_tmpfs(
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

    fn create(parent: &Path, file_name: &str) -> Result<Workspace, EditError> {
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

    fn write(&self, initial: &[u8]) -> Result<(), EditError> {
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
    fn read_back(&self) -> Result<Zeroizing<Vec<u8>>, EditError> {
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
const STALE_PREFIX: &str = "sesto-edit-";

/// Age after which an edit directory without a pid in its name (from an older
/// sesto) is taken as left behind.
const STALE_LEGACY_SECS: i64 = 24 * 60 * 60;

/// Wipes and removes this user's edit directories in `parent` whose sesto is
/// gone (killed with SIGKILL, or the machine lost power mid-edit).
fn remove_stale(parent: &Path) {
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
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let found = unsafe { libc::kill(pid, 0) } == 0;
    found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

enum ReadCapped {
    TooLarge,
    Io(io::Error),
}

/// Read to the end, up to [`MAX_EDIT_BYTES`], growing the buffer by hand so that no
/// reallocation leaves an unzeroized copy of the plaintext on the heap.
fn read_capped(reader: &mut impl Read, size_hint: usize) -> Result<Zeroizing<Vec<u8>>, ReadCapped> {
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
fn wipe_files(dir: &Path) {
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
fn sanitize_file_name(hint: &str) -> String {
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

/// Whether `editor` runs vim or neovim, judged by its first word. `vi` and `view`
/// count only when they resolve, through `path`, to a vim binary: elsewhere they may
/// be nvi or busybox, which reject vim's options.
fn is_vim(editor: &str, path: Option<&OsStr>) -> bool {
    let program = program(editor);
    let name = Path::new(program)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or_default();
    match name {
        "vim" | "nvim" | "gvim" => true,
        "vi" | "view" => resolve(program, path)
            .and_then(|p| fs::canonicalize(p).ok())
            .and_then(|p| p.file_name().and_then(OsStr::to_str).map(str::to_owned))
            .is_some_and(|real| {
                ["vim", "nvim", "gvim"]
                    .iter()
                    .any(|v| real == *v || real.starts_with(&format!("{v}.")))
            }),
        _ => false,
    }
}

/// The first word of a shell command, unquoted when the whole word is quoted.
fn program(editor: &str) -> &str {
    let editor = editor.trim_start();
    for quote in ['"', '\''] {
        if let Some(rest) = editor.strip_prefix(quote) {
            return rest.split(quote).next().unwrap_or_default();
        }
    }
    editor.split_whitespace().next().unwrap_or_default()
}

/// The file `program` names, looked up in `path` when it has no `/`.
fn resolve(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The `sh -c` command that runs `editor` on `file`, as git runs it.
fn editor_command(editor: &str, file: &Path, path_var: Option<&OsStr>) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        // `exec`: the editor is sesto's child itself, so signals sesto passes
        // on reach it rather than an intermediate shell.
        .arg(format!("exec {editor} \"$@\""))
        .arg(editor);
    if is_vim(editor, path_var) {
        // gvim forks into the background unless told not to, and the edit would
        // end before it began.
        if program(editor).ends_with("gvim") {
            command.arg("-f");
        }
        command.args(VIM_OPTIONS);
    }
    command.arg(file);
    command
}

fn run_editor(editor: &str, file: &Path, signals: &EditSignals) -> Result<(), EditError> {
    let mut command = editor_command(editor, file, std::env::var_os("PATH").as_deref());
    let saved = signals.saved;
    // SAFETY: the closure runs in the forked child before exec and only calls
    // sigaction, which is async-signal-safe, on data copied before the fork.
    unsafe {
        command.pre_exec(move || {
            restore(&saved);
            Ok(())
        });
    }
    let terminal = TerminalModes::save();
    let spawn = |source| EditError::Spawn {
        editor: editor.to_owned(),
        source,
    };
    let mut child = command.spawn().map_err(spawn)?;
    EDITOR_PID.store(child.id() as i32, Ordering::SeqCst);
    // A SIGTERM that came before the editor did.
    let early = ENDING.load(Ordering::SeqCst);
    if early != 0 {
        // SAFETY: our own child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, early);
        }
    }
    let waited = loop {
        match child.wait() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    EDITOR_PID.store(0, Ordering::SeqCst);
    // An editor that died in raw mode leaves the terminal unusable.
    terminal.restore();
    let status = waited.map_err(spawn)?;
    let ending = ENDING.swap(0, Ordering::SeqCst);
    if ending != 0 {
        return Err(EditError::Interrupted {
            signal: if ending == libc::SIGHUP {
                "SIGHUP"
            } else {
                "SIGTERM"
            },
        });
    }
    match status.code() {
        Some(0) => Ok(()),
        Some(126 | 127) => Err(EditError::EditorNotFound {
            editor: editor.to_owned(),
        }),
        _ => Err(EditError::EditorFailed {
            editor: editor.to_owned(),
            status,
        }),
    }
}

/// The terminal's modes on stdin before the editor ran, put back after it.
struct TerminalModes(Option<libc::termios>);

impl TerminalModes {
    fn save() -> TerminalModes {
        // SAFETY: plain libc calls on fd 0 and a zero-initialised termios.
        unsafe {
            if libc::isatty(0) == 1 {
                let mut modes: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(0, &mut modes) == 0 {
                    return TerminalModes(Some(modes));
                }
            }
        }
        TerminalModes(None)
    }

    fn restore(&self) {
        if let Some(modes) = &self.0 {
            // SAFETY: modes came from tcgetattr on the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, modes);
            }
        }
    }
}

type SavedActions = [Option<(libc::c_int, libc::sigaction)>; HANDLED_SIGNALS.len()];

/// [`FORWARDED_SIGNALS`] passed on to the editor and [`IGNORED_SIGNALS`]
/// ignored; the previous dispositions come back on drop (and in the editor's
/// process, before it starts).
struct EditSignals {
    saved: SavedActions,
}

impl EditSignals {
    fn install() -> EditSignals {
        ENDING.store(0, Ordering::SeqCst);
        let mut saved: SavedActions = [None; HANDLED_SIGNALS.len()];
        for (slot, &signal) in saved.iter_mut().zip(HANDLED_SIGNALS.iter()) {
            // A signal ignored when sesto started (SIGHUP under `nohup`) stays
            // ignored, for sesto and the editor alike, as shells do.
            if ignored(signal) {
                continue;
            }
            let handler = if FORWARDED_SIGNALS.contains(&signal) {
                forward as extern "C" fn(libc::c_int) as libc::sighandler_t
            } else {
                debug_assert!(IGNORED_SIGNALS.contains(&signal));
                libc::SIG_IGN
            };
            // SAFETY: plain libc calls on zero-initialised, properly sized structs;
            // the handler only touches atomics and calls kill.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = handler;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut previous) == 0 {
                    *slot = Some((signal, previous));
                }
            }
        }
        EditSignals { saved }
    }
}

impl Drop for EditSignals {
    fn drop(&mut self) {
        restore(&self.saved);
    }
}

/// Whether `signal` is ignored now.
fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction only reads the disposition into a zeroed struct.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

fn restore(saved: &SavedActions) {
    for (signal, action) in saved.iter().flatten() {
        // SAFETY: `action` is what sigaction itself returned for `signal`.
        unsafe {
            libc::sigaction(*signal, action, std::ptr::null_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake editor: a shell script the test writes, as Jujutsu's tests do.
    fn script(dir: &Path, name: &str, body: &str) -> String {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// Run `body` as the editor on `initial`; check the base directory is left empty.
    fn run(initial: &[u8], body: &str) -> (Result<Edited, EditError>, tempfile::TempDir) {
        let scripts = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        let editor = script(scripts.path(), "editor", body);
        let result = edit_with(initial, "password", &editor, Some(base.path()));
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0, "left behind");
        (result, scripts)
    }

    fn changed(result: Result<Edited, EditError>) -> Vec<u8> {
        match result.unwrap().edit {
            Edit::Changed(content) => content.to_vec(),
            other => panic!("expected a change, got {other:?}"),
        }
    }

    #[test]
    fn appending_a_line_is_a_change() {
        let (result, _s) = run(b"hunter2\n", r#"echo more >> "$1""#);
        assert_eq!(changed(result), b"hunter2\nmore\n");
    }

    #[test]
    fn doing_nothing_is_unchanged() {
        let (result, _s) = run(b"hunter2", "exit 0");
        let edited = result.unwrap();
        assert!(matches!(edited.edit, Edit::Unchanged));
        assert!(edited.warning.is_none());
    }

    #[test]
    fn adding_only_a_final_newline_is_unchanged() {
        let (result, _s) = run(b"hunter2", r#"echo >> "$1""#);
        assert!(matches!(result.unwrap().edit, Edit::Unchanged));
        let (result, _s) = run(b"hunter2\n", r#"echo >> "$1""#);
        assert_eq!(changed(result), b"hunter2\n\n");
    }

    #[test]
    fn truncating_or_blanking_is_emptied() {
        let (result, _s) = run(b"hunter2", r#": > "$1""#);
        assert!(matches!(result.unwrap().edit, Edit::Emptied));
        let (result, _s) = run(b"hunter2", r#"printf ' \n\t\n' > "$1""#);
        assert!(matches!(result.unwrap().edit, Edit::Emptied));
    }

    #[test]
    fn saving_by_rename_is_read_back() {
        let body = r#"printf 'new value' > "$1.tmp" && mv "$1.tmp" "$1""#;
        let (result, _s) = run(b"old", body);
        assert_eq!(changed(result), b"new value");
    }

    #[test]
    fn bytes_an_editor_writes_are_read_back_as_they_are() {
        let (result, _s) = run(b"text", r#"printf '\000\377' >> "$1""#);
        assert_eq!(changed(result), [b't', b'e', b'x', b't', 0, 255]);
    }

    #[test]
    fn failing_editor_is_an_error_and_cleans_up() {
        let (result, _s) = run(b"hunter2", r#"echo changed > "$1"; exit 1"#);
        match result {
            Err(EditError::EditorFailed { status, .. }) => assert_eq!(status.code(), Some(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_editor_is_not_found() {
        let base = tempfile::tempdir().unwrap();
        let result = edit_with(b"x", "password", "/nonexistent/editor", Some(base.path()));
        assert!(
            matches!(result, Err(EditError::EditorNotFound { .. })),
            "{result:?}"
        );
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
    }

    #[test]
    fn editor_command_with_arguments_works() {
        let scripts = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        let editor = script(scripts.path(), "editor", r#"printf '%s' "$1" >> "$2""#);
        let result = edit_with(b"a", "x", &format!("{editor} --wait"), Some(base.path()));
        assert_eq!(changed(result), b"a--wait");
    }

    // GNU stat.
    #[cfg(target_os = "linux")]
    #[test]
    fn private_file_modes_and_removal() {
        let scripts = tempfile::tempdir().unwrap();
        let side = scripts.path().join("side");
        let body = format!(
            r#"printf '%s\n' "$1" > '{side}'
stat -c %a "$1" >> '{side}'
stat -c %a "$(dirname "$1")" >> '{side}'
cat "$1" >> '{side}'
touch "$1~""#,
            side = side.display()
        );
        let editor = script(scripts.path(), "editor", &body);
        let base = tempfile::tempdir().unwrap();
        let result = edit_with(
            b"\nvalue",
            "db/../../pass\nword",
            &editor,
            Some(base.path()),
        );
        assert!(matches!(result.unwrap().edit, Edit::Unchanged));
        let side = fs::read_to_string(side).unwrap();
        let lines: Vec<&str> = side.lines().collect();
        let file = Path::new(lines[0]);
        assert_eq!(file.parent().unwrap().parent().unwrap(), base.path());
        assert_eq!(file.file_name().unwrap(), "db_.._.._pass_word");
        assert_eq!(&lines[1..], ["600", "700", "", "value"]);
        assert!(!file.exists());
        assert!(!file.parent().unwrap().exists());
    }

    #[test]
    fn too_large_is_an_error() {
        let body = format!("head -c {} /dev/zero > \"$1\"", MAX_EDIT_BYTES + 1);
        let (result, _s) = run(b"x", &body);
        assert!(matches!(result, Err(EditError::TooLarge)), "{result:?}");
        let body = format!("head -c {} /dev/zero | tr '\\0' a > \"$1\"", MAX_EDIT_BYTES);
        let (result, _s) = run(b"x", &body);
        assert_eq!(changed(result).len(), MAX_EDIT_BYTES);
    }

    #[test]
    fn replaced_by_a_symlink_or_removed_is_an_error() {
        let (result, _s) = run(b"x", r#"rm "$1" && ln -s /etc/passwd "$1""#);
        assert!(
            matches!(result, Err(EditError::ReadBack { .. })),
            "{result:?}"
        );
        let (result, _s) = run(b"x", r#"rm "$1""#);
        assert!(
            matches!(result, Err(EditError::ReadBack { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn unwritable_base_dir_is_an_error() {
        let base = tempfile::tempdir().unwrap();
        let missing = base.path().join("missing");
        let result = edit_with(b"x", "p", "true", Some(&missing));
        assert!(
            matches!(result, Err(EditError::PrivateDir { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn disk_fallback_warns() {
        let disk = tempfile::tempdir().unwrap();
        let not_a_dir = disk.path().join("file");
        fs::write(&not_a_dir, "").unwrap();
        let candidates = [PathBuf::from("/nonexistent/shm"), not_a_dir];
        let (workspace, warning) =
            Workspace::create_on_tmpfs(&candidates, disk.path(), "p").unwrap();
        assert!(workspace.file.starts_with(disk.path()));
        assert!(warning.unwrap().contains("persistent disk"));
        let tmpfs = tempfile::tempdir().unwrap();
        let candidates = [tmpfs.path().to_owned()];
        let (workspace, warning) =
            Workspace::create_on_tmpfs(&candidates, disk.path(), "p").unwrap();
        assert!(workspace.file.starts_with(tmpfs.path()));
        assert!(warning.is_none());
    }

    #[test]
    fn workspace_is_wiped_on_drop() {
        let base = tempfile::tempdir().unwrap();
        let workspace = Workspace::create(base.path(), "p").unwrap();
        workspace.write(b"secret").unwrap();
        // Keep a second name for the file so its content can be checked after.
        let other = base.path().join("other-name");
        fs::hard_link(&workspace.file, &other).unwrap();
        // With two links the file is skipped, as a hard link out must not be zeroed.
        drop(workspace);
        assert_eq!(fs::read(&other).unwrap(), b"secret");
        let workspace = Workspace::create(base.path(), "p").unwrap();
        workspace.write(b"secret").unwrap();
        let file = fs::File::open(&workspace.file).unwrap();
        drop(workspace);
        let mut content = Vec::new();
        (&file).read_to_end(&mut content).unwrap();
        assert_eq!(content, [0; 6]);
    }

    fn dispositions() -> Vec<libc::sighandler_t> {
        HANDLED_SIGNALS
            .iter()
            .map(|&signal| unsafe {
                let mut current: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, std::ptr::null(), &mut current);
                current.sa_sigaction
            })
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ctrl_c_reaches_only_the_editor_and_dispositions_come_back() {
        let before = {
            let _lock = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            dispositions()
        };
        let scripts = tempfile::tempdir().unwrap();
        let side = scripts.path().join("side");
        // SIGINT to sesto while the editor runs: passed on, or the test binary
        // dies. The editor itself must not inherit sesto's dispositions.
        let body = format!(
            "trap '' INT; kill -INT {pid}; kill -QUIT {pid}\n\
             grep SigIgn /proc/$$/status > '{side}'\necho x >> \"$1\"",
            pid = std::process::id(),
            side = side.display()
        );
        let editor = script(scripts.path(), "editor", &body);
        let base = tempfile::tempdir().unwrap();
        let result = edit_with(b"v", "p", &editor, Some(base.path()));
        assert_eq!(changed(result), b"vx");
        let side = fs::read_to_string(side).unwrap();
        let mask =
            u64::from_str_radix(side.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
        for signal in [libc::SIGQUIT, libc::SIGHUP, libc::SIGTERM] {
            let ignored_before =
                before[HANDLED_SIGNALS.iter().position(|&s| s == signal).unwrap()] == libc::SIG_IGN;
            assert_eq!(
                mask & (1 << (signal - 1)) != 0,
                ignored_before,
                "signal {signal}"
            );
        }
        let _lock = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(dispositions(), before);
    }

    /// issue 11 case 6: SIGTERM to sesto reaches the editor, and the edit ends
    /// with nothing saved and nothing left (`run` checks the directory).
    #[cfg(target_os = "linux")]
    #[test]
    fn sigterm_and_sighup_stop_the_editor_and_leave_nothing() {
        for (signal, number) in [("TERM", libc::SIGTERM), ("HUP", libc::SIGHUP)] {
            if ignored(number) {
                // Run under `nohup` (or with SIGTERM ignored): the signal
                // stays ignored, and the edit ends as the editor does.
                let body = format!(
                    "echo changed > \"$1\"; kill -{signal} {pid}; sleep 1; echo late >> \"$1\"",
                    pid = std::process::id()
                );
                let (result, _s) = run(b"v", &body);
                // The editor finished; its final newline goes, as the value had none.
                assert_eq!(changed(result), b"changed\nlate", "SIG{signal} ignored");
                continue;
            }
            let body = format!(
                "echo changed > \"$1\"; kill -{signal} {pid}; sleep 30; echo late >> \"$1\"",
                pid = std::process::id()
            );
            let started = std::time::Instant::now();
            let (result, _s) = run(b"v", &body);
            match result {
                Err(EditError::Interrupted { signal: name }) => {
                    assert_eq!(name, format!("SIG{signal}"))
                }
                other => panic!("SIG{signal}: expected an interrupted edit, got {other:?}"),
            }
            // The editor was stopped, not waited out.
            assert!(started.elapsed() < std::time::Duration::from_secs(25));
        }
    }

    /// issue 11 case 6: edit directories whose sesto is gone are removed;
    /// a live one's (this process) and a recent one without a pid are kept.
    #[test]
    fn stale_edit_directories_are_removed_at_start() {
        let base = tempfile::tempdir().unwrap();
        let dir = |name: &str| {
            let d = base.path().join(name);
            fs::create_dir(&d).unwrap();
            fs::write(d.join("password"), b"left behind").unwrap();
            d
        };
        // pid_max is at most 2^22: this pid cannot exist.
        let gone = dir("sesto-edit-4194305-abc123");
        let live = dir(&format!("sesto-edit-{}-abc123", std::process::id()));
        let legacy = dir("sesto-edit-Ab12Cd");
        let other = dir("not-sesto-4194305-x");
        let scripts = tempfile::tempdir().unwrap();
        let editor = script(scripts.path(), "editor", "true");
        edit_with(b"v", "p", &editor, Some(base.path())).unwrap();
        assert!(!gone.exists());
        assert!(live.exists() && legacy.exists() && other.exists());
    }

    /// issue 11 case 7: a value without a final newline keeps having none,
    /// and a binary value is refused before any editor runs.
    #[test]
    fn values_keep_their_bytes() {
        let (result, _s) = run(b"bob-pw", r#"printf 'bob-pw-x\n' > "$1""#);
        assert_eq!(changed(result), b"bob-pw-x");
        let (result, _s) = run(b"bob-pw", r#"printf 'bob-pw\n\n' > "$1""#);
        assert_eq!(changed(result), b"bob-pw\n\n");
        let (result, _s) = run(b"a\nb\n", r#"printf 'a\nc\n' > "$1""#);
        assert_eq!(changed(result), b"a\nc\n");
        let scripts = tempfile::tempdir().unwrap();
        let marker = scripts.path().join("ran");
        let editor = script(
            scripts.path(),
            "editor",
            &format!("touch '{}'", marker.display()),
        );
        for binary in [&b"\xff\xfe"[..], b"a\0b"] {
            let base = tempfile::tempdir().unwrap();
            let result = edit_with(binary, "p", &editor, Some(base.path()));
            assert!(matches!(result, Err(EditError::Binary)), "{result:?}");
        }
        assert!(!marker.exists(), "the editor ran on a binary value");
    }

    #[test]
    fn choose_editor_order() {
        let s = |v: &str| Some(OsString::from(v));
        assert_eq!(choose_editor(s("code -w"), s("nano"), false), "code -w");
        assert_eq!(choose_editor(s("code -w"), s("nano"), true), "nano");
        assert_eq!(choose_editor(s(" "), s("nano"), false), "nano");
        assert_eq!(choose_editor(None, s(""), false), "vi");
        assert_eq!(choose_editor(None, None, false), "vi");
    }

    #[test]
    fn sanitized_names_are_one_safe_component() {
        assert_eq!(sanitize_file_name("password"), "password");
        assert_eq!(sanitize_file_name("config.yaml"), "config.yaml");
        assert_eq!(sanitize_file_name("mot de passé"), "mot_de_passé");
        for (hostile, want) in [
            ("", "secret"),
            (".", "secret"),
            ("..", "secret"),
            ("../../etc/passwd", "_.._etc_passwd"),
            ("/etc/passwd", "_etc_passwd"),
            ("a\0b\nc\u{1b}[31m", "a_b_c__31m"),
            ("\u{202e}gpj.exe", "_gpj.exe"),
            ("-rf", "-rf"),
        ] {
            assert_eq!(sanitize_file_name(hostile), want, "{hostile:?}");
        }
        let long = format!("{}.yaml", "é".repeat(100));
        let name = sanitize_file_name(&long);
        assert!(
            name.len() <= MAX_FILE_NAME && name.ends_with(".yaml"),
            "{name}"
        );
        let name = sanitize_file_name(&"x".repeat(1000));
        assert_eq!(name.len(), MAX_FILE_NAME);
        let name = sanitize_file_name(&format!("a.{}", "b".repeat(100)));
        assert_eq!(name.len(), MAX_FILE_NAME);
    }

    #[test]
    fn vim_detection() {
        let bin = tempfile::tempdir().unwrap();
        let path = bin.path().as_os_str();
        assert!(is_vim("vim", None));
        assert!(is_vim("/usr/local/bin/nvim -p", None));
        assert!(is_vim("'/opt/x y/gvim'", None));
        assert!(!is_vim("code --wait", None));
        assert!(!is_vim("nano", None));
        assert!(!is_vim("vimish", None));
        assert!(!is_vim("", None));
        assert!(!is_vim("vi", None));
        // vi counts only when it resolves to vim.
        fs::write(bin.path().join("vim.basic"), "").unwrap();
        fs::write(bin.path().join("busybox"), "").unwrap();
        symlink(bin.path().join("vim.basic"), bin.path().join("vi")).unwrap();
        symlink(bin.path().join("busybox"), bin.path().join("view")).unwrap();
        assert!(is_vim("vi", Some(path)));
        assert!(!is_vim("view", Some(path)));
        assert!(!is_vim("vi", Some(OsStr::new("/nonexistent"))));
    }

    #[test]
    fn vim_gets_its_options_before_the_file() {
        let file = Path::new("/dev/shm/x/password");
        let args = |editor: &str| -> Vec<String> {
            editor_command(editor, file, None)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let mut want = vec!["-c".to_owned(), "exec vim \"$@\"".into(), "vim".into()];
        want.extend(VIM_OPTIONS.iter().map(|s| s.to_string()));
        want.push(file.display().to_string());
        assert_eq!(args("vim"), want);
        assert_eq!(args("gvim")[3], "-f");
        assert_eq!(
            args("code --wait"),
            [
                "-c",
                "exec code --wait \"$@\"",
                "code --wait",
                "/dev/shm/x/password"
            ]
        );
    }

    /// The real vim and neovim accept the options, and leave no swap, backup, undo
    /// or viminfo/shada file even when a vimrc asks for all of them.
    #[test]
    fn real_vim_and_neovim() {
        for (program, flags) in [("vim", "-es"), ("nvim", "--headless")] {
            let Some(real) = resolve(program, std::env::var_os("PATH").as_deref()) else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{program} is required under CI (install it in .ci/run)"
                );
                eprintln!("skipping {program}: not installed (apt-get install vim neovim)");
                continue;
            };
            let home = tempfile::tempdir().unwrap();
            let h = home.path().display();
            fs::write(
                home.path().join("rc"),
                format!(
                    "set nocompatible viminfo='100,<50 viminfofile={h}/info swapfile \
                     directory={h} backup backupdir={h} undofile undodir={h}\n"
                ),
            )
            .unwrap();
            let scripts = tempfile::tempdir().unwrap();
            // Named like the real thing so that it gets vim's options.
            let body = format!(
                "export HOME='{h}' XDG_STATE_HOME='{h}/state' XDG_DATA_HOME='{h}/data'\n\
                 exec '{real}' -u '{h}/rc' {flags} \"$@\" \
                 -c 'normal! Goadded' -c 'let @a=\"yank\"' -c 'silent wq'",
                real = real.display()
            );
            let editor = script(scripts.path(), program, &body);
            let base = tempfile::tempdir().unwrap();
            let result = edit_with(b"first\n", "p.txt", &editor, Some(base.path()));
            assert_eq!(changed(result), b"first\nadded\n", "{program}");
            let leftovers: Vec<PathBuf> = walk(home.path())
                .into_iter()
                .filter(|p| {
                    p.is_file() && !p.ends_with("rc") && !p.starts_with(home.path().join(".cache"))
                })
                .collect();
            assert!(leftovers.is_empty(), "{program}: {leftovers:?}");
            assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn debug_hides_content() {
        let edited = Edited {
            edit: Edit::Changed(Zeroizing::new(b"hunter2".to_vec())),
            warning: None,
        };
        assert!(!format!("{edited:?}").contains("hunter2"));
        assert!(!format!("{edited:?}").contains("104"));
    }
}
