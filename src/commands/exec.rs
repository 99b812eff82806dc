//! `sesto exec`: run a command with secrets as environment variables.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result};
use sesto::deploy::env::{EnvValue, Vars};
use sesto::deploy::template::Reference;

use super::Global;

/// Run a command with secrets as environment variables
///
/// Every secret directly in each FOLDER becomes a variable named in upper snake
/// case (db-password → DB_PASSWORD, apiKey → API_KEY); subfolders are left out.
/// --env-file adds variables named by a file of lines like
/// `DB_URL=sesto://prod/db#url` (a field of a secret holding YAML) or
/// `API_KEY=sesto://prod/api/key` (a whole secret); such a file can be
/// committed, since it holds no values. Two secrets that give one name, or a
/// name that is not a valid variable, are errors naming both; values pass byte
/// for byte, and a value holding a NUL byte is an error.
///
/// The command inherits the rest of the environment except SESTO_IDENTITY
/// (the key text that opened the store), and sesto's umask is undone for it.
/// Without --mask, sesto replaces itself with the command: the same process,
/// so signals reach it directly and its exit code is sesto's.
/// With --mask, sesto stays as the parent, replaces every value of four bytes or
/// more (and each line of a value spanning lines) in the command's stdout and
/// stderr with ***, forwards the signals sent to it (INT, TERM, HUP, QUIT, USR1,
/// USR2), and exits with the command's code, or 128+N when signal N killed it.
///
/// Nothing is prompted without a terminal: a deploy key goes in SESTO_IDENTITY.
/// Exit codes: the command's; 127 when it is not found, 126 when it cannot
/// be run; 1 when sesto fails before starting it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto exec prod/app -- ./deploy.sh\n  \
    sesto exec --env-file app.env -- terraform apply\n  \
    sesto exec --mask prod/app -- ./deploy.sh")]
pub struct Args {
    /// Folders whose secrets become variables
    #[arg(value_name = "FOLDER")]
    folders: Vec<String>,
    /// A file of NAME=sesto://path[#field] lines (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Replace secret values in the command's output with ***
    #[arg(long)]
    mask: bool,
    /// The command and its arguments, after --
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

pub fn run(g: &Global, args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    let vars = load_vars(g, &args.folders, &args.env_files)?;
    vars.check_env_safe()?;
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    // The deploy key that opened the store is not the command's to read (a
    // secret of that name still reaches it: it is set below).
    cmd.env_remove(IDENTITY_VAR);
    for v in vars.iter() {
        cmd.env(&v.name, std::ffi::OsStr::from_bytes(v.expose_value()));
    }
    let umask = super::original_umask();
    // SAFETY: umask and sigprocmask are async-signal-safe, and the closure
    // touches nothing but a copied integer.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let shown = Path::new(&args.command[0]).display().to_string();
    if !args.mask {
        let e = cmd.exec();
        return Ok(cannot_run(&shown, &e));
    }
    let masker = sesto::deploy::mask::Masker::new(vars.iter().map(|v| v.expose_value()));
    drop(vars);
    run_masked(cmd, &masker, &shown)
}

/// The variables of `folders` and `env_files`, each name set once.
pub fn load_vars(g: &Global, folders: &[String], env_files: &[PathBuf]) -> Result<Vars> {
    if folders.is_empty() && env_files.is_empty() {
        anyhow::bail!("name a FOLDER or an --env-file to take the secrets from");
    }
    let mut lines = Vec::new();
    for file in env_files {
        let text = sesto::format::limits::read_regular(file, sesto::deploy::env::MAX_ENV_FILE)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let more = sesto::deploy::env::parse_env_file(file, &text)?;
        if let Some((_, at, _)) = more.get(sesto::deploy::env::MAX_ENV_VARS - lines.len()) {
            return Err(sesto::deploy::env::too_many_vars(at).into());
        }
        lines.extend(more);
    }
    let store = super::open(g)?;
    let mut vars = Vars::default();
    for folder in folders {
        let secrets = store.folder_secrets(folder)?;
        if secrets.is_empty() {
            // Only secrets directly in a folder are taken: say so, rather
            // than run the command without the variables it was meant to get.
            eprintln!(
                "warning: {folder} holds no secrets directly, and those in its folders are \
                 not taken; name the folder that holds them (`sesto ls {folder}` shows them)"
            );
        }
        vars.add_folder(folder, secrets)?;
    }
    let refs: Vec<(&Reference, &str)> = lines
        .iter()
        .filter_map(|(_, at, v)| match v {
            EnvValue::Ref(r) => Some((r, at.as_str())),
            EnvValue::Literal(_) => None,
        })
        .collect();
    let mut values = sesto::deploy::template::resolve(&store, &refs)?.into_iter();
    for (name, at, value) in lines {
        let value = match value {
            EnvValue::Ref(_) => values.next().expect("one value per reference"),
            EnvValue::Literal(text) => zeroize::Zeroizing::new(text.into_bytes()),
        };
        vars.add(name, at, value)?;
    }
    Ok(vars)
}

/// The variable holding key text, which the command does not inherit.
const IDENTITY_VAR: &str = "SESTO_IDENTITY";

/// The exit code for a command that could not start, as shells give it.
fn cannot_run(shown: &str, e: &std::io::Error) -> ExitCode {
    let (code, hint) = match e.kind() {
        std::io::ErrorKind::NotFound => (127, "check the name and PATH"),
        _ => (126, "check that it is an executable file"),
    };
    eprintln!("error: cannot run {shown}: {e}\nhint: {hint}");
    ExitCode::from(code)
}

/// Signals sesto forwards to a masked command.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Runs `cmd` with its output masked and signals forwarded; returns its code.
fn run_masked(
    mut cmd: Command,
    masker: &sesto::deploy::mask::Masker,
    shown: &str,
) -> Result<ExitCode> {
    // Blocked in this thread before any other starts, so every thread of
    // sesto leaves these signals to the one that waits for them.
    let set = super::block_signals(&FORWARDED);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ok(cannot_run(shown, &e)),
    };
    let pid = child.id() as libc::pid_t;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || forward_signals(set, pid));
    let status = std::thread::scope(|s| {
        let out = s.spawn(|| masker.copy(stdout, raw_fd(1)));
        let err = s.spawn(|| masker.copy(stderr, raw_fd(2)));
        let status = child.wait();
        // A closed stdout of ours is the reader's choice, not a failure.
        let _ = out.join();
        let _ = err.join();
        status
    })?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        (None, None) => ExitCode::FAILURE,
    })
}

/// Passes each blocked signal sent to sesto by another process on to the
/// command. Signals from the terminal (Ctrl-C) already reach the command,
/// which shares sesto's process group, and are not sent twice.
fn forward_signals(set: libc::sigset_t, child: libc::pid_t) {
    loop {
        // SAFETY: sigwaitinfo writes into the siginfo_t it is given.
        let (sig, from_process) = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            (sig, info.si_code <= 0)
        };
        if sig > 0 && from_process {
            // SAFETY: kill on the child's pid; a child already gone gets nothing.
            unsafe { libc::kill(child, sig) };
        }
    }
}

/// An unbuffered writer on one of sesto's own descriptors.
fn raw_fd(fd: libc::c_int) -> impl Write {
    use std::os::fd::BorrowedFd;
    // SAFETY: 1 and 2 are open for the life of the process.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    std::fs::File::from(fd.try_clone_to_owned().expect("dup of stdout or stderr"))
}
