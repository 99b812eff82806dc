//! `sesto migrate`: move a store to the newest format.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Move this store to the newest format (admins; once a store)
///
/// Format 2 keeps each node file four directory levels deep
/// (.sesto/nodes/3/f/2/a/<id>.age instead of .sesto/nodes/3f/<id>.age), so
/// that the git trees one change rewrites stay small however large the store
/// grows. The migration moves every node file unchanged and signs a roster
/// that says format 2, in one transaction: a run that is killed is finished
/// by the next sesto command. Nothing is re-encrypted, and git stores no new
/// file contents. Push what you have before migrating, and tell the team:
/// members need a sesto that reads format 2 to read the store after they
/// pull.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: {"from", "to", "moved", "roster_version"}
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let done = store.migrate()?;
    if args.json {
        let v = serde_json::json!({
            "from": done.from,
            "to": done.to,
            "moved": done.moved,
            "roster_version": done.roster_version,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else if done.roster_version.is_none() {
        writeln!(out, "The store is in format {} already.", done.to)?;
    } else {
        writeln!(
            out,
            "Moved {} node files to format {}'s layout; the roster says format {} now.",
            done.moved, done.to, done.to
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
