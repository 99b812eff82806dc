//! `sesto access`: who can read and write a path, and why.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Show who can read and who can write a path, and why
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A secret or folder
    #[arg(default_value = "")]
    path: String,
    /// Print JSON: [{"member", "access", "via"}] (via: the granted folder, null for admins)
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let entries = store.access(&args.path)?;
    if args.json {
        let v: Vec<_> = entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "member": e.member,
                    "access": super::member::access_word(e.access),
                    "via": e.via.as_ref().map(|p| p.to_string()),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        let what = match e.access {
            sesto::Access::Write => "read, write",
            sesto::Access::Read => "read",
        };
        let why = match &e.via {
            None => "admin".to_string(),
            Some(p) => format!("granted {} on {p}", super::member::access_word(e.access)),
        };
        writeln!(out, "{}  {what}  ({why})", e.member)?;
    }
    Ok(ExitCode::SUCCESS)
}
