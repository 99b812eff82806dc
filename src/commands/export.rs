//! `sesto export`: print secrets as dotenv, JSON, YAML, shell or GitHub Actions.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use rand::RngCore;
use sesto::deploy::env::Format;

use super::Global;

/// Print secrets as variables for another tool to read
///
/// Takes its variables as `sesto exec` does: every secret directly in each
/// FOLDER, named in upper snake case, and the NAME=sesto://path#field lines of
/// each --env-file. Output is sorted by name. dotenv and shell need values
/// without NUL bytes; JSON and YAML need UTF-8 values.
///
/// --format github-actions is for a step of a GitHub Actions job: when
/// GITHUB_ENV is set the variables are appended to that file (as
/// NAME<<DELIMITER blocks, for the steps after this one) and an ::add-mask::
/// command per value line is printed, so the runner hides the values in
/// logs; without GITHUB_ENV the blocks are printed.
///
/// The output holds secret values: write it to a pipe, or with -o to a file
/// made 0600, not to a terminal log.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto export prod/app --format dotenv -o .env\n  \
    eval \"$(sesto export prod/app --format shell)\"\n  \
    sesto export prod/app --format github-actions")]
pub struct Args {
    /// Folders whose secrets are exported
    #[arg(value_name = "FOLDER")]
    folders: Vec<String>,
    /// A file of NAME=sesto://path[#field] lines (repeatable)
    #[arg(long = "env-file", value_name = "FILE")]
    env_files: Vec<PathBuf>,
    /// Output format
    #[arg(long, short = 'f', value_enum, default_value = "dotenv")]
    format: Format,
    /// Write to this file (atomically, mode 0600) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let vars = super::exec::load_vars(g, &args.folders, &args.env_files)?;
    let delimiter = format!(
        "ghadelimiter_{:032x}",
        rand::rngs::OsRng.next_u64() as u128 | (u128::from(rand::rngs::OsRng.next_u64()) << 64)
    );
    let github_env = (args.format == Format::GithubActions)
        .then(|| std::env::var_os("GITHUB_ENV"))
        .flatten()
        .filter(|p| !p.is_empty());
    if let Some(path) = github_env {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot open GITHUB_ENV ({})",
                    PathBuf::from(&path).display()
                )
            })?;
        // Masks first, then the values: the runner hides them before any step sees them.
        let mut env_block = zeroize::Zeroizing::new(Vec::new());
        sesto::deploy::env::write(&vars, args.format, out, Some(&mut *env_block), &delimiter)?;
        out.flush()?;
        file.write_all(&env_block).with_context(|| {
            format!(
                "cannot write GITHUB_ENV ({})",
                PathBuf::from(&path).display()
            )
        })?;
        writeln!(
            std::io::stderr(),
            "sesto: {} variable(s) set for the next steps, their values masked",
            vars.len()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    match &args.output {
        None => sesto::deploy::env::write(&vars, args.format, out, None, &delimiter)?,
        Some(path) => {
            let mut bytes = zeroize::Zeroizing::new(Vec::new());
            sesto::deploy::env::write(&vars, args.format, &mut *bytes, None, &delimiter)?;
            super::render::write_private(path, &bytes)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
