//! `sesto grant` and `sesto revoke`: share a folder with a member, or stop.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

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
    /// Show what would be rotated and which secrets they could read; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print JSON: {"member", "path", "files", "dry_run", "exposed": [path…]}
    #[arg(long)]
    json: bool,
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
    let before = tx.grant(&args.member, &path, access)?;
    super::commit(tx)?;
    let word = super::member::access_word(access);
    let m = &args.member;
    match before {
        None => writeln!(out, "Granted {m} {word} on {path}.")?,
        Some(b) if b == access => writeln!(out, "{m} has {word} on {path} already.")?,
        Some(sesto::Access::Write) => writeln!(
            out,
            "Lowered {m}'s access to {path} from write to read (grant --write gives write back)."
        )?,
        Some(sesto::Access::Read) => {
            writeln!(out, "Raised {m}'s access to {path} from read to write.")?
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn revoke(g: &Global, args: RevokeArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let path = sesto::SPath::parse(&args.path)?;
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let exposed = tx.revoke(&args.member, &path)?;
    let files = if args.dry_run {
        tx.pending_nodes()
    } else {
        super::commit_counted(tx)?
    };
    if args.json {
        super::print_rotation_json(
            out,
            &args.member,
            Some(&path),
            files,
            args.dry_run,
            &exposed,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        writeln!(
            out,
            "Would revoke {}'s access to {path} and rotate keys ({files} files); nothing was changed.",
            args.member
        )?;
    } else {
        writeln!(
            out,
            "Revoked {}'s access to {path}; rotated keys ({files} files written).",
            args.member
        )?;
    }
    super::print_exposed(out, &args.member, &exposed)?;
    Ok(ExitCode::SUCCESS)
}
