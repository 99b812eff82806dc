//! Editing a secret with `$VISUAL` / `$EDITOR` on a private file: a fresh 0700
//! directory on tmpfs where one exists, a 0600 file in it, read back by path, and
//! the directory wiped and removed on every way out, Ctrl-C, SIGTERM and SIGHUP
//! included; directories a killed sesto left behind are removed by the next edit.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

mod run;
mod workspace;

use run::{run_editor, EditSignals};
use workspace::Workspace;

/// Largest file read back from the editor: the store's limit on a plaintext.
pub const MAX_EDIT_BYTES: usize = 16 * 1024 * 1024;

/// Environment variable naming the directory to create the private directory in,
/// instead of `/dev/shm`, `$XDG_RUNTIME_DIR` or the system temporary directory.
pub const EDIT_DIR_ENV: &str = "SESTO_EDIT_DIR";

/// Longest file name, in bytes, given to the file being edited.
const MAX_FILE_NAME: usize = 64;

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
        crate::format::limits::check_yaml(bytes).map_err(|_| None)?;
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

#[cfg(test)]
mod tests;
