//! `sesto ls`: list a folder's entries.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// List the entries of a folder (folders end in /)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder to list (default: the root)
    #[arg(default_value = "", hide_default_value = true)]
    path: String,
    /// Print JSON: [{"name": …, "kind": "folder"|"secret"}]
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let entries = store.list(&args.path)?;
    if args.json {
        let list: Vec<_> = entries
            .iter()
            .map(|e| serde_json::json!({"name": e.name, "kind": e.kind.to_string()}))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        // One write for all, not one per line (standard output's own buffer).
        let mut lines = std::io::BufWriter::new(&mut *out);
        for e in &entries {
            let slash = if e.kind == sesto::format::node::Kind::Folder {
                "/"
            } else {
                ""
            };
            writeln!(lines, "{}{slash}", e.name)?;
        }
        lines.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}
