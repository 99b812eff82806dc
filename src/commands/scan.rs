//! `sesto scan`: find plaintext secrets in files or staged changes.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sesto::deploy::scan::{Finding, Scanner};

use super::Global;

/// Files larger than this are skipped with a note: secrets are pasted into
/// configuration, not into disk images.
const MAX_FILE: u64 = 32 << 20;

/// Find plaintext secrets in files or in the staged change
///
/// Searches for every value your identities can read in the store (8 bytes or
/// longer, and each such line of a value spanning lines), for known token
/// shapes (private keys, age secret keys, AWS access key ids, GitHub, GitLab,
/// Slack and Stripe tokens, JWTs), and under .sesto/ for anything but the
/// roster and well-formed age node files. Findings are printed as
/// `file:line: rule`, never the value; a known value also names the secret.
/// The text sesto:allow on a line (in a comment: # sesto:allow) silences it.
///
/// With --staged, the content staged for the next commit is scanned (what the
/// pre-commit hook runs), and a `git merge --squash` whose values kept beside
/// each other still wait for `sesto resolve` counts as a finding; with PATHs, those files and directories (.git/ left
/// out); with neither, the work tree's tracked and unignored files. Files over
/// 32 MiB are skipped with a note. Nothing is ever prompted: with no identity
/// that can read the store (or no store), known values are not searched for
/// and a note says so, while the other checks still run.
///
/// Exit codes: 0 nothing found, 1 something found, 2 usage error or a file
/// or repository that cannot be read.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto scan --staged\n  \
    sesto scan config/ deploy.yaml\n  \
    sesto scan --json > findings.json")]
pub struct Args {
    /// Scan the content staged for the next commit
    #[arg(long, conflicts_with = "paths")]
    staged: bool,
    /// Print the findings as a JSON array of {file, line, rule, secret?}
    #[arg(long)]
    json: bool,
    /// Files or directories to scan (default: the work tree)
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    match scan(g, &args, out) {
        Ok(found) if found => Ok(ExitCode::FAILURE),
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) if e.chain().any(is_broken_pipe) => Err(e),
        Err(e) => {
            crate::terminal::print_error(&e);
            Ok(ExitCode::from(2))
        }
    }
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Scans what the arguments name; returns whether anything was found.
fn scan(g: &Global, args: &Args, out: &mut dyn Write) -> Result<bool> {
    let start = super::start_dir(g)?;
    // The store's values are read only once a file needs them: node files
    // alone (the sesto-verify hook) get the structure check and decrypt nothing.
    let structure = Scanner::without_values();
    let known = std::cell::OnceCell::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut files = 0usize;
    let mut each = |name: &str, bytes: &[u8]| {
        files += 1;
        let scanner = if sesto::deploy::scan::reads_content(name) {
            known.get_or_init(|| known_values(g))
        } else {
            &structure
        };
        findings.extend(scanner.scan(name, bytes));
    };
    let mut unsettled = false;
    if args.staged {
        let top = toplevel(&start)?;
        staged(&top, &mut each)?;
        unsettled = squash_unsettled(&top);
    } else if args.paths.is_empty() {
        match toplevel(&start) {
            Ok(top) => tracked(&top, &mut each)?,
            Err(_) => walk(Path::new("."), &mut each)?,
        }
    } else {
        for p in &args.paths {
            walk(p, &mut each)?;
        }
    }
    findings.sort();
    findings.dedup();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &findings)?;
        writeln!(out)?;
    } else {
        for f in &findings {
            match &f.secret {
                Some(s) => writeln!(out, "{}:{}: {} (secret {s})", f.file, f.line, f.rule)?,
                None => writeln!(out, "{}:{}: {}", f.file, f.line, f.rule)?,
            }
        }
    }
    if !findings.is_empty() {
        eprintln!(
            "sesto scan: {} finding(s) in {files} file(s) scanned. Take each value out and \
             keep it in sesto (`sesto set PATH`); where a finding is no secret, put \
             `# sesto:allow` on its line.",
            findings.len()
        );
    }
    if unsettled {
        eprintln!(
            "sesto scan: this `git merge --squash` kept values beside each other that are \
             not written yet (a squash leaves them to `sesto resolve`): run `sesto resolve`, \
             then commit"
        );
    }
    Ok(!findings.is_empty() || unsettled)
}

/// Whether a `git merge --squash` waits to be committed while sesto's
/// merge driver has queued values for `sesto resolve` to keep beside ours:
/// committing first would leave them out for good.
fn squash_unsettled(top: &Path) -> bool {
    let Ok(repo) = git2::Repository::open(top) else {
        return false;
    };
    repo.path().join("SQUASH_MSG").is_file() && sesto::git::merge::copies_queued(repo.path())
}

/// The scanner, knowing the values this user can read where that works
/// without a prompt; otherwise one of token shapes and structure, with a note.
fn known_values(g: &Global) -> Scanner {
    match readable(g) {
        Ok(scanner) => scanner,
        Err(e) => {
            eprintln!(
                "note: known-value scanning skipped ({e:#}); token shapes and .sesto/ \
                 structure are still checked"
            );
            Scanner::without_values()
        }
    }
}

fn readable(g: &Global) -> Result<Scanner> {
    let sources = sesto::IdentitySources::from_env(g.identities.clone());
    let ids = sesto::Identities::load(&sources, Arc::new(NoPrompt))?;
    // Trust is not checked: values only become search patterns and findings
    // name only paths, so a forged roster could add false alarms, not leak.
    let options = sesto::OpenOptions {
        start: g.store.clone(),
        trust: sesto::store::trust::TrustMode::Skip,
    };
    let store = sesto::Store::open(&options, ids)?;
    if store.whoami().is_none() {
        anyhow::bail!("none of your identities is a member of this store; pass one with -i");
    }
    let secrets = store.readable_secrets()?;
    let names: Vec<String> = secrets.iter().map(|(p, _)| p.to_string()).collect();
    let scanner = Scanner::new(
        names
            .iter()
            .zip(&secrets)
            .map(|(n, (_, s))| (n.as_str(), s.expose_value())),
    );
    drop(secrets); // the values are zeroized as they drop
    Ok(scanner)
}

/// Fails instead of asking: a hook has no one to answer.
struct NoPrompt;

impl sesto::Passphrase for NoPrompt {
    fn passphrase(&self, source: &str) -> Result<age::secrecy::SecretString, String> {
        Err(format!(
            "sesto scan never asks for a passphrase ({source} has one); load the key \
             unencrypted in SESTO_IDENTITY or pass another with -i"
        ))
    }
}

/// The top of the git work tree holding `dir`.
fn toplevel(dir: &Path) -> Result<PathBuf> {
    let out = git(dir, &["rev-parse", "--show-toplevel"])?;
    let text = String::from_utf8(out).context("git printed a work tree path that is not UTF-8")?;
    Ok(PathBuf::from(text.trim_end_matches('\n')))
}

/// Runs git in `dir`, returning its stdout; a failure says a PATH can be
/// scanned outside a repository.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>> {
    super::git_stdout(dir, args).with_context(|| {
        format!(
            "cannot read git's view of {} (outside a git repository, scan PATHs instead of --staged)",
            dir.display()
        )
    })
}

/// Feeds every added or changed blob of the index to `each`.
fn staged(top: &Path, each: &mut dyn FnMut(&str, &[u8])) -> Result<()> {
    let raw = git(
        top,
        &[
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--no-renames",
            "--diff-filter=ACMT",
        ],
    )?;
    let repo = git2::Repository::open(top)
        .with_context(|| format!("cannot open the git repository at {}", top.display()))?;
    let odb = repo.odb()?;
    let mut fields = raw.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        if meta.is_empty() {
            continue;
        }
        let path = fields.next().context("git diff --raw ended early")?;
        let name = String::from_utf8_lossy(path);
        let meta = String::from_utf8_lossy(meta);
        // `:100644 100644 <old> <new> M`
        let parts: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
        let (Some(mode), Some(oid)) = (parts.get(1), parts.get(3)) else {
            anyhow::bail!("cannot parse `git diff --raw` output for {name}");
        };
        if *mode == "160000" {
            continue; // a submodule's commit, not content
        }
        let oid = git2::Oid::from_str(oid)?;
        let (size, _) = odb
            .read_header(oid)
            .with_context(|| format!("cannot read the staged {name} from git"))?;
        if size as u64 > MAX_FILE {
            eprintln!("note: {name} skipped: over 32 MiB");
            continue;
        }
        let blob = repo
            .find_blob(oid)
            .with_context(|| format!("cannot read the staged {name} from git"))?;
        each(&name, blob.content());
    }
    Ok(())
}

/// Feeds the work tree's tracked and unignored files to `each`.
fn tracked(top: &Path, each: &mut dyn FnMut(&str, &[u8])) -> Result<()> {
    let list = git(
        top,
        &[
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
    )?;
    let mut names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
    names.dedup(); // a file with merge conflicts is listed once per stage
    for name in names {
        let rel = Path::new(std::ffi::OsStr::from_bytes(name));
        let path = top.join(rel);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => {}
            _ => continue, // deleted, a symlink or a submodule
        }
        read_one(&path, &rel.to_string_lossy(), each)?;
    }
    Ok(())
}

/// Feeds a file, or every file below a directory (not .git/), to `each`.
fn walk(root: &Path, each: &mut dyn FnMut(&str, &[u8])) -> Result<()> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("cannot scan {}: check the path", root.display()))?;
    if meta.is_file() {
        return read_one(root, &shown(root), each);
    }
    let entries = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && e.file_name() == ".git"));
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", root.display()))?;
        if entry.file_type().is_file() {
            read_one(entry.path(), &shown(entry.path()), each)?;
        }
    }
    Ok(())
}

fn shown(path: &Path) -> String {
    let text = path.to_string_lossy();
    text.strip_prefix("./").unwrap_or(&text).to_string()
}

/// Reads one file whole (up to [`MAX_FILE`]) and feeds it to `each`.
fn read_one(path: &Path, name: &str, each: &mut dyn FnMut(&str, &[u8])) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {name}"))?;
    if meta.len() > MAX_FILE {
        eprintln!("note: {name} skipped: over 32 MiB");
        return Ok(());
    }
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read {name}: check its permissions"))?,
    );
    each(name, &bytes);
    Ok(())
}
