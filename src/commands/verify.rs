//! `sesto verify`: check the roster chain and the files, with or without a key.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Check the store's integrity; needs no key for the structural part
///
/// Without a member key (a pull request check): the roster chain, each roster
/// signed by an admin of the one before back to version 1, and that .sesto/
/// holds nothing but the roster and well-formed age files. With a member key,
/// also every node that key can read: decrypted, signature and writer checked.
/// --history also checks every roster ever committed on any branch, and with a
/// key that no node's version goes down along the current branch (a node
/// rolled back to an older signed copy). Exits 1 on any problem.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also check every roster in history, and node versions along this branch
    #[arg(long)]
    history: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
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
