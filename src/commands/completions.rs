//! `sesto completions`: shell completion scripts.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

/// Print a completion script for bash, zsh, fish, elvish or powershell
///
/// For example: sesto completions bash > ~/.local/share/bash-completion/completions/sesto
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell
    shell: clap_complete::Shell,
}

pub fn run(args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    clap_complete::generate(args.shell, &mut crate::cli::Cli::command(), "sesto", out);
    Ok(ExitCode::SUCCESS)
}
