//! `sesto materialize`: one file per secret in a directory, kept up to date with --watch.
//!
//! The directory rules (safety checks, lock, manifest, atomic writes) are the
//! library's `sesto::deploy::materialize`; this file reads the store, prints what
//! changed, and runs the watch loop with its signal handling.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use notify::Watcher;
use sesto::deploy::materialize::{Dir, Report};

use super::Global;

/// Write each secret of a folder to a file, for services that read files
///
/// Every secret directly in FOLDER becomes the file DIR/NAME, holding its
/// value byte for byte, mode 0600, written atomically (temp file in DIR,
/// fsync, rename), so a service never reads half a value. DIR is created
/// (0700) when missing. Files whose value is unchanged are not rewritten.
/// The files sesto wrote are listed in DIR/.sesto-materialized: when a
/// secret is removed from FOLDER its file is removed, and a file sesto did
/// not write is never replaced or removed (a secret of that name is an
/// error). Names starting with `.sesto-` are reserved.
///
/// DIR is refused when it is inside a git work tree (the plaintext could be
/// committed), a symbolic link (name the real directory), owned by another
/// user, or writable by group or others; one materializer at a time holds
/// its lock.
///
/// With --watch, sesto stays running: it watches the store's .sesto/ and the
/// git directory, and after changes settle (250 ms quiet, at most 3 s) reads
/// the folder again and updates the files, so a `git pull` reaches them in
/// well under a second. It also reads again every --poll seconds, and on
/// SIGHUP. A read that fails (a merge half done, a key no longer granted)
/// is logged without values and the last good files stay. SIGTERM or
/// SIGINT stops it with exit 0, leaving the files in place.
///
/// Prints the files written and removed (--json: one JSON object per
/// change, for scripts). Exit codes: 0 ok, 1 failure, 2 usage.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto materialize prod/tls /run/secrets/app\n  \
    sesto materialize --watch prod/tls /run/secrets/app\n  \
    sesto --store /srv/secrets materialize --watch prod/tls /run/secrets/app\n\
    \n\
    examples/materialize/ has systemd units for a server that pulls on a timer.")]
pub struct Args {
    /// Folder whose secrets become files, e.g. prod/tls
    #[arg(value_name = "FOLDER")]
    folder: String,
    /// Directory the files are written to, e.g. /run/secrets/app
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Keep running and update the files when the store changes
    #[arg(long)]
    watch: bool,
    /// With --watch: read the store again at least this often, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "watch",
          value_parser = clap::value_parser!(u64).range(1..))]
    poll: u64,
    /// Print each change as one line of JSON: {"dir", "folder", "written", "removed", "unchanged"}
    #[arg(long)]
    json: bool,
}

/// Whether the store is open (see [`wait_signals`]).
static OPENED: AtomicBool = AtomicBool::new(false);

/// How long the store must be quiet before a re-read.
const QUIET: Duration = Duration::from_millis(250);
/// The longest a re-read waits while changes keep coming.
const MAX_WAIT: Duration = Duration::from_secs(3);

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    // Before any thread starts, so that every thread leaves these to the waiter.
    let channel = args.watch.then(|| {
        let set = super::block_signals(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP]);
        let (tx, rx) = mpsc::channel();
        let sig_tx = tx.clone();
        std::thread::spawn(move || wait_signals(set, sig_tx));
        (tx, rx)
    });
    let store = super::open(g)?;
    // Keys are loaded (and any passphrase typed): from here a signal stops the
    // loop between writes instead of ending the process at once.
    OPENED.store(true, Ordering::SeqCst);
    let dir = Dir::open(&args.dir, store.work_tree())?;
    let Some((tx, rx)) = channel else {
        let report = materialize(&store, &args.folder, &dir)?;
        print_report(out, &args, &dir, &report, true)?;
        return Ok(ExitCode::SUCCESS);
    };
    watch(&args, store, &dir, (tx, rx), out)
}

/// Reads the folder and makes the directory match it.
fn materialize(store: &sesto::Store, folder: &str, dir: &Dir) -> Result<Report> {
    let secrets = store
        .folder_secrets(folder)
        .with_context(|| format!("cannot read the secrets of {folder}"))?;
    let files: Vec<(String, &[u8])> = secrets
        .iter()
        .map(|(name, s)| (name.clone(), s.expose_value()))
        .collect();
    Ok(dir.apply(&files)?)
}

fn print_report(
    out: &mut dyn Write,
    args: &Args,
    dir: &Dir,
    report: &Report,
    always: bool,
) -> Result<()> {
    if !always && !report.changed() {
        return Ok(());
    }
    if args.json {
        let line = serde_json::json!({
            "dir": dir.path(),
            "folder": args.folder,
            "written": report.written,
            "removed": report.removed,
            "unchanged": report.unchanged,
        });
        writeln!(out, "{line}")?;
    } else {
        for name in &report.written {
            writeln!(out, "wrote {}", dir.path().join(name).display())?;
        }
        for name in &report.removed {
            writeln!(out, "removed {}", dir.path().join(name).display())?;
        }
        writeln!(
            out,
            "{}: {} written, {} removed, {} unchanged",
            dir.path().display(),
            report.written.len(),
            report.removed.len(),
            report.unchanged.len()
        )?;
    }
    out.flush()?;
    Ok(())
}

enum Msg {
    /// Something changed under a watched path.
    Changed,
    /// SIGHUP: read again now.
    Reread,
    /// SIGTERM or SIGINT.
    Stop,
}

/// The watch loop: first write, then re-read on change, on SIGHUP and every
/// --poll seconds, until SIGTERM or SIGINT.
fn watch(
    args: &Args,
    mut store: sesto::Store,
    dir: &Dir,
    (tx, rx): (mpsc::Sender<Msg>, mpsc::Receiver<Msg>),
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let work = store.work_tree().to_path_buf();
    let git_dir = sesto::git::git_dir(&work)?;
    let sesto_dir = work.join(".sesto");
    let filter = Relevant {
        sesto_dir: sesto_dir.clone(),
        git_dir: git_dir.clone(),
    };
    // Watching starts before the first read, so no change falls between them.
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if filter.matches(&ev) {
            let _ = tx.send(Msg::Changed);
        }
    })
    .context("cannot start watching the store")?;
    watcher
        .watch(&sesto_dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", sesto_dir.display()))?;
    let mut watched = dir_id(&sesto_dir);
    // The work tree's top, to see .sesto/ itself come back after a checkout
    // that removed it, and the git directory, to see a pull or merge end.
    for (path, what) in [(&work, "the work tree"), (&git_dir, "the git directory")] {
        watcher
            .watch(path, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {what} {}", path.display()))?;
    }

    let report = materialize(&store, &args.folder, dir)?;
    print_report(out, args, dir, &report, true)?;

    let poll = Duration::from_secs(args.poll);
    let mut next_poll = Instant::now() + poll;
    // (first change, last change) of a burst not read yet.
    let mut pending: Option<(Instant, Instant)> = None;
    loop {
        let now = Instant::now();
        let due = match pending {
            Some((first, last)) => (last + QUIET).min(first + MAX_WAIT),
            None => next_poll,
        };
        let msg = match rx.recv_timeout(due.saturating_duration_since(now)) {
            Ok(msg) => msg,
            Err(mpsc::RecvTimeoutError::Timeout) => Msg::Reread,
            Err(mpsc::RecvTimeoutError::Disconnected) => Msg::Stop,
        };
        match msg {
            Msg::Stop => break,
            Msg::Changed => {
                let now = Instant::now();
                pending = Some((pending.map_or(now, |(first, _)| first), now));
            }
            Msg::Reread => {
                pending = None;
                next_poll = Instant::now() + poll;
                // A .sesto/ removed and made again is a new directory to watch.
                let now = dir_id(&sesto_dir);
                if now != watched && now.is_some() {
                    let _ = watcher.unwatch(&sesto_dir);
                    if watcher
                        .watch(&sesto_dir, notify::RecursiveMode::Recursive)
                        .is_ok()
                    {
                        watched = now;
                    }
                }
                refresh(&mut store, args, dir, out)?;
            }
        }
    }
    eprintln!("sesto: stopped; the files stay in {}", dir.path().display());
    Ok(ExitCode::SUCCESS)
}

/// Which file system events may mean the folder changed.
struct Relevant {
    sesto_dir: PathBuf,
    git_dir: PathBuf,
}

impl Relevant {
    fn matches(&self, ev: &notify::Result<notify::Event>) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            // An overflowed queue may hide a change: read again.
            Err(_) => return true,
        };
        // Opens and reads (ours included) change nothing.
        if matches!(ev.kind, notify::EventKind::Access(_)) {
            return false;
        }
        ev.paths.iter().any(|p| {
            if p.starts_with(&self.sesto_dir) {
                return true;
            }
            p.parent() == Some(self.git_dir.as_path())
                && p.file_name()
                    .is_some_and(|n| GIT_FILES.iter().any(|g| n == *g))
        })
    }
}

/// The device and inode of a directory, to notice it was replaced.
fn dir_id(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Files of the git directory whose change means the work tree may have
/// changed (a pull, merge, checkout or reset); the rest (objects, logs,
/// FETCH_HEAD) is noise.
const GIT_FILES: &[&str] = &["HEAD", "ORIG_HEAD", "MERGE_HEAD", "index"];

/// One re-read, with the identities loaded at the start (a passphrase is
/// asked once, not on every pull). A failure is logged, without values, and
/// the files stay as they were; only failing to print ends the loop.
fn refresh(store: &mut sesto::Store, args: &Args, dir: &Dir, out: &mut dyn Write) -> Result<()> {
    let result = store.reload().map_err(anyhow::Error::from).and_then(|()| {
        for notice in store.notices() {
            eprintln!("note: {notice}");
        }
        materialize(store, &args.folder, dir)
    });
    match result {
        Ok(report) => print_report(out, args, dir, &report, false),
        Err(e) => {
            eprintln!(
                "sesto: {e:#}; the files in {} stay as they were",
                dir.path().display()
            );
            Ok(())
        }
    }
}

/// Turns the blocked signals into messages for the loop: the loop stops
/// between writes, never in the middle of one.
fn wait_signals(set: libc::sigset_t, tx: mpsc::Sender<Msg>) {
    loop {
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait writes the signal number into `sig`.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if !OPENED.load(Ordering::SeqCst) {
            // Still loading keys, perhaps at a passphrase prompt; nothing is written yet.
            std::process::exit(128 + sig);
        }
        let msg = if sig == libc::SIGHUP {
            Msg::Reread
        } else {
            Msg::Stop
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
