//! One module per command: its clap `Args` and its `run`; the options every
//! command takes ([`Global`]). The dispatch is in `cli.rs`, which uses these
//! modules; nothing here uses it back (the command tree is passed in).

pub mod access;
pub mod agent;
pub mod clip;
pub mod complete;
pub mod completions;
pub mod cp;
pub mod edit;
pub mod exec;
pub mod export;
pub mod find;
pub mod fsck;
pub mod generate;
pub mod get;
pub mod grant;
pub mod grep;
pub mod hooks;
pub mod import;
pub mod init;
pub mod log;
pub mod ls;
pub mod man;
pub mod materialize;
pub mod member;
pub mod migrate;
pub mod mkdir;
pub mod mv;
pub mod otp;
pub mod render;
pub mod rm;
pub mod scan;
pub mod set;
pub mod share;
pub mod ssh_agent_identity;
pub mod stale;
pub mod sync;
pub mod tree;
pub mod trust;
pub mod verify;
pub mod whoami;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

/// The umask sesto started with, before it set its own 077.
static ORIGINAL_UMASK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0o022);

/// Records the umask sesto started with, for the commands it runs.
pub fn set_original_umask(mask: libc::mode_t) {
    ORIGINAL_UMASK.store(mask, std::sync::atomic::Ordering::Relaxed);
}

/// The umask sesto started with: `exec` gives it back to the command.
pub fn original_umask() -> libc::mode_t {
    ORIGINAL_UMASK.load(std::sync::atomic::Ordering::Relaxed)
}

/// Options for every command.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Use the store of this directory instead of searching upwards from here
    #[arg(long, global = true, env = "SESTO_STORE", value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Identity file: an OpenSSH private key or an age identity file (repeatable)
    #[arg(short = 'i', long = "identity", global = true, value_name = "FILE")]
    pub identities: Vec<PathBuf>,
}

/// Loads the identities named by the options and environment.
pub fn identities(g: &Global) -> Result<sesto::Identities> {
    let sources = sesto::IdentitySources::from_env(g.identities.clone());
    let ids = sesto::Identities::load(&sources, Arc::new(crate::terminal::TtyPassphrase))?;
    for warning in ids.warnings() {
        eprintln!("warning: {warning}");
    }
    Ok(ids)
}

/// Opens the store for this invocation, checking its roster against the
/// admins the user trusts.
pub fn open(g: &Global) -> Result<sesto::Store> {
    open_with(g, sesto::store::trust::TrustMode::Check)
}

/// Opens the store with the given trust handling, and shows what opening
/// found worth telling (a first use, new admins) on stderr.
pub fn open_with(g: &Global, trust: sesto::store::trust::TrustMode) -> Result<sesto::Store> {
    let options = sesto::OpenOptions {
        start: g.store.clone(),
        trust,
    };
    let store = sesto::Store::open(&options, identities(g)?)?;
    for notice in store.notices() {
        eprintln!("note: {notice}");
    }
    let waiting = sesto::git::merge::waiting_copies(&store);
    if waiting > 0 {
        eprintln!(
            "note: {waiting} value{} a merge kept beside another wait{} for `sesto resolve` to \
             write {} (as `name (conflict N)`)",
            if waiting == 1 { "" } else { "s" },
            if waiting == 1 { "s" } else { "" },
            if waiting == 1 { "it" } else { "them" },
        );
    }
    // A fresh clone has no merge driver, and git merges node files as
    // binary conflicts without it: register it once, and say so.
    match sesto::git::resolve::ensure_merge_driver(store.work_tree()) {
        Ok(true) => eprintln!(
            "note: registered sesto's merge driver in .git/config (`sesto setup-git` does it too)"
        ),
        Ok(false) => {}
        Err(e) => eprintln!("warning: could not register sesto's merge driver: {e}"),
    }
    Ok(store)
}

/// Where this invocation starts looking for the store: `--store`, or the
/// current directory.
pub fn start_dir(g: &Global) -> Result<std::path::PathBuf> {
    match &g.store {
        Some(dir) => Ok(dir.clone()),
        None => std::env::current_dir().context("cannot read the current directory"),
    }
}

/// Blocks `signals` in this thread and every thread it starts afterwards, and
/// returns the set, for one thread to wait on with sigwait or sigwaitinfo.
/// Call it before starting any thread, or another thread may take them.
pub fn block_signals(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: plain libc calls on a sigset_t owned here.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Runs the system git in `dir` with no stdin, returning its stdout; a
/// failure carries git's own message.
pub fn git_stdout(dir: &std::path::Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot run git; is it installed and on PATH?")?;
    if !out.status.success() {
        anyhow::bail!(
            "`git {}` failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Prints the secrets a former reader could read, for their values to change.
pub fn print_exposed(out: &mut dyn Write, member: &str, paths: &[sesto::SPath]) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    // A terminal gets counts by folder; a pipe or file the whole list.
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        let groups = by_folder(paths);
        writeln!(
            out,
            "{member} could read {} secret{} in {} folder{}; change their values:",
            paths.len(),
            if paths.len() == 1 { "" } else { "s" },
            groups.len(),
            if groups.len() == 1 { "" } else { "s" }
        )?;
        for (folder, n) in groups.iter().take(10) {
            writeln!(out, "  {folder}/  {n}")?;
        }
        if groups.len() > 10 {
            writeln!(out, "  … and {} more folders", groups.len() - 10)?;
        }
        writeln!(
            out,
            "`sesto stale --by-folder` lists them until then; `sesto stale` names each."
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{member} could read these secrets; change their values (`sesto stale` lists them until then):"
    )?;
    for p in paths {
        writeln!(out, "  {p}")?;
    }
    Ok(())
}

/// The JSON report of a revoke (`path` set) or a member's removal: the
/// files the rotation writes (or would, in a dry run) and the secrets the
/// member could read.
pub fn print_rotation_json(
    out: &mut dyn Write,
    member: &str,
    path: Option<&sesto::SPath>,
    files: usize,
    dry_run: bool,
    exposed: &[sesto::SPath],
) -> Result<()> {
    let mut v = serde_json::json!({
        "member": member, "files": files, "dry_run": dry_run,
        "exposed": exposed.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    });
    if let Some(p) = path {
        v["path"] = p.to_string().into();
    }
    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    Ok(())
}

/// Secrets counted by the folder that holds them, most first.
pub fn by_folder<'a>(paths: impl IntoIterator<Item = &'a sesto::SPath>) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for p in paths {
        let folder = p
            .split_last()
            .map(|(f, _)| f.to_string())
            .unwrap_or_default();
        *counts
            .entry(if folder.is_empty() {
                ".".into()
            } else {
                folder
            })
            .or_default() += 1;
    }
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Largest value accepted from a file or stdin (the library's limit).
pub const MAX_VALUE: u64 = sesto::format::node::MAX_VALUE as u64;

/// Reads at most [`MAX_VALUE`] bytes, failing past it.
pub fn read_capped(mut r: impl std::io::Read, what: &str) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut r, MAX_VALUE + 1), &mut buf)?;
    if buf.len() as u64 > MAX_VALUE {
        anyhow::bail!("{what} is larger than 11 MiB; sesto stores values up to 11 MiB");
    }
    Ok(buf)
}

/// Commits a transaction, showing a warning when git could not take the
/// change yet (it is saved, and the next command stages it).
pub fn commit(tx: sesto::Tx) -> Result<()> {
    commit_counted(tx).map(|_| ())
}

/// [`commit`], returning how many files the change wrote or removed.
pub fn commit_counted(tx: sesto::Tx) -> Result<usize> {
    let done = tx.commit()?;
    if let Some(w) = &done.warning {
        eprintln!("warning: {w}");
    }
    Ok(done.files)
}
