//! Running the editor: its command line (vim and neovim with options that
//! keep copies of the plaintext off disk), the terminal's modes, and the
//! signals passed on or ignored while it runs.

use std::ffi::OsStr;
use std::fs::{self};
use std::io::{self};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};

use super::EditError;

/// Options for vim and neovim: no swap, backup, undo or viminfo/shada file, so no
/// copy of the plaintext outlives the edit. Both accept all of them (`viminfo` is
/// neovim's alias of `shada`; `shada=` would be an error in vim). `-c` repeats the
/// settings after the user's vimrc, which may turn them back on (a vimrc setting
/// `viminfofile` overrides `-i NONE`).
pub(super) const VIM_OPTIONS: [&str; 7] = [
    "-n",
    "-i",
    "NONE",
    "--cmd",
    VIM_SETTINGS,
    "-c",
    VIM_SETTINGS,
];
/// `nofixendofline` keeps a value that had no final newline without one.
pub(super) const VIM_SETTINGS: &str =
    "set nobackup nowritebackup noundofile noswapfile viminfo= nofixendofline";

/// Signals sesto passes on to the editor while it runs, living on to clean up:
/// Ctrl-C reaches the editor only (as in git); SIGTERM (`timeout`, systemd,
/// a logout) and SIGHUP (a closed terminal) end the editor, and then the
/// edit, with nothing saved and no file left behind.
pub(super) const FORWARDED_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGHUP, libc::SIGTERM];

/// Signals ignored while the editor runs (SIGQUIT, as git does).
pub(super) const IGNORED_SIGNALS: [libc::c_int; 1] = [libc::SIGQUIT];

/// Every signal whose disposition an edit changes.
pub(super) const HANDLED_SIGNALS: [libc::c_int; 4] =
    [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGQUIT];

/// The editor's process id while it runs, for the signal handler.
pub(super) static EDITOR_PID: AtomicI32 = AtomicI32::new(0);

/// SIGTERM or SIGHUP received during this edit (0: none).
pub(super) static ENDING: AtomicI32 = AtomicI32::new(0);

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

/// Whether `editor` runs vim or neovim, judged by its first word. `vi` and `view`
/// count only when they resolve, through `path`, to a vim binary: elsewhere they may
/// be nvi or busybox, which reject vim's options.
pub(super) fn is_vim(editor: &str, path: Option<&OsStr>) -> bool {
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
pub(super) fn program(editor: &str) -> &str {
    let editor = editor.trim_start();
    for quote in ['"', '\''] {
        if let Some(rest) = editor.strip_prefix(quote) {
            return rest.split(quote).next().unwrap_or_default();
        }
    }
    editor.split_whitespace().next().unwrap_or_default()
}

/// The file `program` names, looked up in `path` when it has no `/`.
pub(super) fn resolve(program: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// The `sh -c` command that runs `editor` on `file`, as git runs it.
pub(super) fn editor_command(editor: &str, file: &Path, path_var: Option<&OsStr>) -> Command {
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

pub(super) fn run_editor(
    editor: &str,
    file: &Path,
    signals: &EditSignals,
) -> Result<(), EditError> {
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
pub(super) struct TerminalModes(Option<libc::termios>);

impl TerminalModes {
    pub(super) fn save() -> TerminalModes {
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

    pub(super) fn restore(&self) {
        if let Some(modes) = &self.0 {
            // SAFETY: modes came from tcgetattr on the same descriptor.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, modes);
            }
        }
    }
}

pub(super) type SavedActions = [Option<(libc::c_int, libc::sigaction)>; HANDLED_SIGNALS.len()];

/// [`FORWARDED_SIGNALS`] passed on to the editor and [`IGNORED_SIGNALS`]
/// ignored; the previous dispositions come back on drop (and in the editor's
/// process, before it starts).
pub(super) struct EditSignals {
    saved: SavedActions,
}

impl EditSignals {
    pub(super) fn install() -> EditSignals {
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
pub(super) fn ignored(signal: libc::c_int) -> bool {
    // SAFETY: sigaction only reads the disposition into a zeroed struct.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

pub(super) fn restore(saved: &SavedActions) {
    for (signal, action) in saved.iter().flatten() {
        // SAFETY: `action` is what sigaction itself returned for `signal`.
        unsafe {
            libc::sigaction(*signal, action, std::ptr::null_mut());
        }
    }
}
