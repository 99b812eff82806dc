//! `sesto init`: create a store in this git repository.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Create a store in this git repository, with you as its first admin
///
/// Writes .sesto/ with a signed roster and an empty root folder, and stages
/// it. In a repository that holds nothing else, sesto also commits each change
/// (git config sesto.commit true).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Your member name (default: git's user.name, else your key's comment, else $USER)
    #[arg(long)]
    name: Option<String>,

    /// The store format to write: 2 (the default), or 1 while some members
    /// still run a sesto that reads only version 1 (`sesto migrate` upgrades
    /// it later)
    #[arg(long, value_name = "VERSION")]
    format: Option<u32>,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let ids = super::identities(g)?;
    let options = sesto::InitOptions {
        start: g.store.clone(),
        name: args.name,
        format: args.format,
    };
    let done = sesto::init(&options, ids)?;
    let store = &done.store;
    // Concurrent changes from other clones merge through sesto's driver.
    sesto::git::resolve::setup_git(store.work_tree(), false)?;
    let me = store.whoami().unwrap_or("?");
    let key = &store.roster().members[me].key;
    writeln!(
        out,
        "Created a sesto store in {}",
        store.work_tree().join(".sesto").display()
    )?;
    writeln!(
        out,
        "Admin: {me} ({})",
        sesto::format::crypto::fingerprint(key)
    )?;
    if done.auto_commit {
        writeln!(
            out,
            "Each change is committed (git config sesto.commit true)."
        )?;
    } else {
        writeln!(out, "Changes are staged; commit them with git as usual.")?;
    }
    writeln!(
        out,
        "Next: `sesto set PATH` stores a secret; `sesto hooks install` stops commits that hold one in plain text."
    )?;
    Ok(ExitCode::SUCCESS)
}
