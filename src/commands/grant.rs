//! `sesto grant` and `sesto revoke`: share a folder with a member, or stop.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Let a member read (or write) a folder and everything below it (admins only)
///
/// Costs one re-encrypted file and the roster, however much lies below. The
/// member then reaches the folder directly: `sesto ls` shows it to them.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The member
    member: String,
    /// The folder to share
    path: String,
    /// Also let them write there
    #[arg(long)]
    write: bool,
}

/// Take a member's grant on a folder away and rotate its keys (admins only)
///
/// Every node the member could read there and no longer can gets a new key;
/// the secrets they could read are listed, for their values to change too.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The member
    member: String,
    /// The folder they were granted
    path: String,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    let access = if args.write {
        sesto::Access::Write
    } else {
        sesto::Access::Read
    };
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let changed = tx.grant(&args.member, &path, access)?;
    super::commit(tx)?;
    let word = super::member::access_word(access);
    if changed {
        writeln!(out, "Granted {} {word} on {path}.", args.member)?;
    } else {
        writeln!(out, "{} has {word} on {path} already.", args.member)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(g: &Global, args: RevokeArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let exposed = tx.revoke(&args.member, &path)?;
    let files = super::commit_counted(tx)?;
    writeln!(
        out,
        "Revoked {}'s access to {path}; rotated keys ({files} files written).",
        args.member
    )?;
    super::print_exposed(out, &args.member, &exposed)?;
    Ok(ExitCode::SUCCESS)
}
