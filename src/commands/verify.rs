//! `sesto verify`: check the roster chain and the files, with or without a key.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Global;

/// Check the store's integrity; needs no key for the structural part
///
/// Without a member key (a pull request check): the roster chain, each roster
/// signed by an admin of the one before back to version 1, and that .sesto/
/// holds nothing but the roster and well-formed age files. With a member key,
/// also every node that key can read: decrypted, signature and writer checked.
/// --history also checks every roster ever committed on any branch, and with a
/// key that no node's version goes down in any commit of the current branch,
/// also on the lines its merges took in (a node rolled back to an older
/// signed copy). --push checks what a `git push`
/// sends instead (sesto's pre-push hook). Exits 1 on any problem.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check every roster in history, and node versions along this branch
    #[arg(long)]
    history: bool,
    /// Check the commits a push sends, named on stdin as git gives them to a
    /// pre-push hook (or by the pre-commit framework's PRE_COMMIT_FROM_REF and
    /// PRE_COMMIT_TO_REF): no node goes back to an older signed copy in them
    #[arg(long, conflicts_with = "history")]
    push: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    if args.push {
        return push(g, out);
    }
    let store = super::open(g)?;
    let mut problems: Vec<String> = Vec::new();
    match sesto::store::trust::verify_chain(store.work_tree()) {
        Ok(n) => writeln!(
            out,
            "roster: version {}, a chain of {n} signed by the admins before each",
            store.roster().version
        )?,
        Err(e) => problems.push(format!(".sesto/roster.yaml: {e}")),
    }
    if args.history {
        match sesto::store::trust::verify_history(store.work_tree()) {
            Ok(n) => writeln!(out, "history: {n} rosters, each linked and signed")?,
            Err(e) => problems.extend(e),
        }
        if store.whoami().is_some() {
            let h = store.verify_node_history()?;
            writeln!(
                out,
                "history: {} node versions over {} commits",
                h.versions, h.commits
            )?;
            problems.extend(h.problems);
            // Every line of the branch, as a clone pulling it all would.
            match store.check_branch() {
                Ok(n) => writeln!(
                    out,
                    "history: {n} node file changes on every line merged in, none back in version"
                )?,
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let (files, file_problems) = store.check_files()?;
    problems.extend(
        file_problems
            .iter()
            .map(|p| format!("{}: {}", p.file, p.detail)),
    );
    writeln!(out, "files: {files} node files")?;
    match store.whoami() {
        Some(me) => {
            let report = store.fsck(false)?;
            writeln!(
                out,
                "nodes: {} folders and {} secrets verified with {me}'s key",
                report.folders, report.secrets
            )?;
            problems.extend(
                report
                    .problems
                    .iter()
                    .filter(|p| !p.fixable)
                    .map(|p| format!("{}: {}", p.file, p.detail)),
            );
        }
        None => writeln!(out, "nodes: not checked (no member key; pass one with -i)")?,
    }
    problems.sort();
    problems.dedup();
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    if problems.is_empty() {
        writeln!(out, "ok")?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(out, "{} problem(s)", problems.len())?;
        Ok(ExitCode::FAILURE)
    }
}

/// `--push`: each line git gives a pre-push hook on stdin is `<local ref>
/// <local commit> <remote ref> <remote commit>`; the commits each local one
/// would send are judged as a pull of them would be. Opening the store
/// checks the commits that came to this branch since the last command, too.
fn push(g: &Global, out: &mut dyn Write) -> Result<ExitCode> {
    let store = match super::open(g) {
        Err(e) if matches!(e.downcast_ref(), Some(sesto::Error::NoStore { .. })) => {
            writeln!(out, "push: no sesto store here, nothing to check")?;
            return Ok(ExitCode::SUCCESS);
        }
        opened => opened?,
    };
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the refs being pushed from stdin")?;
    if input.trim().is_empty() {
        input = pre_commit_framework_line().unwrap_or_default();
    }
    let mut problems = Vec::new();
    // Whether a problem is not a refusal but a failure to judge at all.
    let mut unjudged = false;
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [local_ref, local, remote_ref, remote] = fields[..] else {
            anyhow::bail!(
                "stdin: `{line}` is not `<local ref> <local commit> <remote ref> <remote commit>` \
                 (run by git's pre-push hook, or with such lines)"
            );
        };
        if local.bytes().all(|b| b == b'0') {
            continue; // a branch deleted on the remote sends nothing
        }
        match store.check_push(local, remote) {
            Ok(n) => writeln!(
                out,
                "push: {local_ref} → {remote_ref}: {n} node file changes, none back in version"
            )?,
            Err(e) => {
                unjudged |= !matches!(e, sesto::Error::Node { .. });
                problems.push(format!("{local_ref} → {remote_ref}: {e}"));
            }
        }
    }
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    if problems.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let why = if unjudged {
        "sesto could not judge what it sends (above)"
    } else {
        "a clone that saw the newer files would refuse these commits"
    };
    writeln!(
        out,
        "the push is refused: {why} (git push --no-verify sends them all the same)"
    )?;
    Ok(ExitCode::FAILURE)
}

/// The pre-commit framework runs a pre-push hook once per ref pushed and
/// names it in its environment rather than on stdin: that ref as git's line.
fn pre_commit_framework_line() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let to = var("PRE_COMMIT_TO_REF")?;
    let from = var("PRE_COMMIT_FROM_REF").unwrap_or_else(|| "0".repeat(to.len()));
    let local = var("PRE_COMMIT_LOCAL_BRANCH").unwrap_or_else(|| "HEAD".into());
    let remote = var("PRE_COMMIT_REMOTE_BRANCH").unwrap_or_else(|| "(remote)".into());
    Some(format!("{local} {to} {remote} {from}\n"))
}
