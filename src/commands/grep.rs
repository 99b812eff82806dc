//! `sesto grep`: search the values you can read, as `pass grep` does.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Search the values of every secret you can read for a pattern
///
/// Prints each matching line as PATH:LINE (values appear on your screen:
/// use it where that is fine), or with -l only the paths. Exits 1 when
/// nothing matches, as grep does. The pattern is a regular expression
/// (Rust's regex syntax; -F for a plain string).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto grep -l old-db.example.com        # which secrets still name the old host\n  \
    sesto grep --ignore-case 'user:' prod")]
pub struct Args {
    /// What to look for
    pattern: String,
    /// Only below this folder
    #[arg(default_value = "", hide_default_value = true)]
    folder: String,
    /// Ignore case (-i is the global identity option; `(?i)` in the pattern works too)
    #[arg(long)]
    ignore_case: bool,
    /// The pattern is a plain string, not a regular expression
    #[arg(short = 'F', long)]
    fixed_strings: bool,
    /// Print only the paths of matching secrets
    #[arg(short = 'l', long)]
    files_with_matches: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let pattern = if args.fixed_strings {
        regex::escape(&args.pattern)
    } else {
        args.pattern.clone()
    };
    let re = regex::bytes::RegexBuilder::new(&pattern)
        .case_insensitive(args.ignore_case)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| anyhow::anyhow!("not a valid pattern (-F searches for it as it is): {e}"))?;
    let below = sesto::SPath::parse(&args.folder)?;
    let store = super::open(g)?;
    let mut secrets = store.readable_secrets()?;
    secrets.retain(|(p, _)| p.starts_with(&below));
    secrets.sort_by(|a, b| a.0.cmp(&b.0));
    let mut found = false;
    for (path, secret) in &secrets {
        let value = secret.expose_value();
        if args.files_with_matches {
            if re.is_match(value) {
                found = true;
                writeln!(out, "{path}")?;
            }
            continue;
        }
        for line in value.split(|&b| b == b'\n') {
            if re.is_match(line) {
                found = true;
                write!(out, "{path}:")?;
                out.write_all(line)?;
                writeln!(out)?;
            }
        }
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
