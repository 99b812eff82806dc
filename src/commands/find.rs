//! `sesto find`: search names.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Find secrets and folders whose path matches a pattern
///
/// The pattern is a case-insensitive substring, or a glob when it holds * or ?
/// (matched against the whole path and against the last name). Exits 1 when
/// nothing matches, or when a folder could not be read (each is named on
/// stderr; the rest is searched).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Substring or glob
    pattern: String,
    /// Print JSON: [{"path": …, "kind": …}]
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let found = store.find(&args.pattern)?;
    if args.json {
        let list: Vec<_> = found
            .paths
            .iter()
            .map(|(p, k)| serde_json::json!({"path": p.to_string(), "kind": k.to_string()}))
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
    } else {
        // One write for all, not one per line (standard output's own buffer).
        let mut lines = std::io::BufWriter::new(&mut *out);
        for (p, k) in &found.paths {
            let slash = if *k == sesto::format::node::Kind::Folder {
                "/"
            } else {
                ""
            };
            writeln!(lines, "{p}{slash}")?;
        }
        lines.flush()?;
    }
    let unreadable = super::tree::report_unreadable(&found.unreadable);
    Ok(if found.paths.is_empty() || unreadable {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
