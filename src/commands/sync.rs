//! `sesto sync`, `sesto resolve`, `sesto setup-git` and the hidden commands
//! git runs: the merge driver and textconv.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Fetch, merge with sesto's rules, push; again when the remote moved
///
/// Uses the system git (your ssh config, agent and credentials). Nodes both
/// sides changed are merged by sesto's driver; a value both changed in ways
/// that do not merge is kept beside ours as `name (conflict N)`. Needs the
/// changes in .sesto/ committed and the branch to have an upstream.
#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The remote branch to sync with, e.g. origin/main (default: the upstream)
    remote_branch: Option<String>,
}

/// Settle what a plain git merge or rebase left in .sesto/
///
/// A node changed on one side and deleted on the other keeps the change, and
/// its folder entry comes back; values the merge driver could not merge are
/// kept beside ours as `name (conflict N)`. Stages the result; then finish
/// with `git commit` or `git rebase --continue`.
#[derive(Debug, clap::Args)]
pub struct ResolveArgs {}

/// Register sesto's merge driver in .git/config (init does it too)
#[derive(Debug, clap::Args)]
pub struct SetupGitArgs {
    /// Also show decrypted, path-named diffs in `git diff` and `git log -p`
    /// (textconv): plaintext on your terminal, so only where you want it
    #[arg(long)]
    diff: bool,
}

/// git's merge driver for node files (git runs it: %O %A %B %P)
#[derive(Debug, clap::Args)]
pub struct MergeDriverArgs {
    base: PathBuf,
    ours: PathBuf,
    theirs: PathBuf,
    path: String,
}

/// git's textconv for node files: the decrypted node, keys left out
#[derive(Debug, clap::Args)]
pub struct TextconvArgs {
    file: PathBuf,
}

pub fn sync(g: &Global, args: SyncArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let mut store = super::open(g)?;
    // git runs the merge driver once per node both sides changed; each is
    // a sesto process that would ask for the passphrase again.
    let _agent = super::agent::serve_children(&store)?;
    let report = store.sync(args.remote_branch.as_deref())?;
    for copy in &report.copies {
        writeln!(out, "kept both values: theirs is at {copy}")?;
    }
    writeln!(
        out,
        "Synced{}{}.",
        if report.merged { " (merged)" } else { "" },
        if report.attempts > 1 {
            format!(" after {} attempts", report.attempts)
        } else {
            String::new()
        }
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn resolve(g: &Global, _args: ResolveArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let start = super::start_dir(g)?;
    // A roster both sides changed does not open; ours does, and is merged below.
    sesto::git::resolve::restore_our_roster(&sesto::find_work_tree(&start)?)?;
    let store = super::open(g)?;
    let report = store.resolve()?;
    if report.roster_merged {
        writeln!(out, "merged both sides' roster changes (signed by you)")?;
    }
    if !report.relocated.is_empty() {
        let n = report.relocated.len();
        writeln!(
            out,
            "moved {n} node file{} the merge left where the store's format does not keep them",
            if n == 1 { "" } else { "s" }
        )?;
    }
    if report.merged > 0 {
        writeln!(
            out,
            "merged {} node file{} both sides changed",
            report.merged,
            if report.merged == 1 { "" } else { "s" }
        )?;
    }
    for k in &report.kept {
        writeln!(out, "kept the change to {k} (the other side deleted it)")?;
    }
    for d in &report.dropped {
        writeln!(
            out,
            "kept the delete of {d} (the other side only re-encrypted it)"
        )?;
    }
    for c in &report.copies {
        writeln!(out, "kept both values: theirs is at {c}")?;
    }
    if report.rekeyed > 0 {
        writeln!(
            out,
            "settled {} folder entr{} after the merge (the key of the file kept, or a file git removed){}",
            report.rekeyed,
            if report.rekeyed == 1 { "y" } else { "ies" },
            if sesto::git::open(&sesto::find_work_tree(&start)?).is_ok_and(|r| sesto::git::auto_commit(&r)) {
                ""
            } else {
                "; staged: commit and push them"
            }
        )?;
    }
    for l in &report.left {
        writeln!(out, "left: {l}")?;
    }
    if !report.wrote() && report.merged == 0 && report.left.is_empty() && !report.roster_merged {
        writeln!(out, "Nothing to resolve.")?;
    }
    Ok(if report.left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn setup_git(g: &Global, args: SetupGitArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let start = super::start_dir(g)?;
    let work = sesto::find_work_tree(&start)?;
    sesto::git::resolve::setup_git(&work, args.diff)?;
    writeln!(
        out,
        "Registered the sesto merge driver{} in .git/config.",
        if args.diff { " and textconv" } else { "" }
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn merge_driver(g: &Global, args: MergeDriverArgs, _out: &mut dyn Write) -> Result<ExitCode> {
    // Each side is checked against what the user trusts; so is the work
    // tree's roster (the rollback check waits while git is merging).
    let store = super::open(g)?;
    sesto::git::merge::merge_driver(&store, &args.base, &args.ours, &args.theirs, &args.path)?;
    Ok(ExitCode::SUCCESS)
}

pub fn textconv(g: &Global, args: TextconvArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open_with(g, sesto::store::trust::TrustMode::Skip)?;
    out.write_all(&store.textconv(&args.file)?)?;
    Ok(ExitCode::SUCCESS)
}
