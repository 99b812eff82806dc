//! `sesto scan`: find plaintext secrets in files or staged changes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Not written yet
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("`sesto scan` is not written yet")
}
