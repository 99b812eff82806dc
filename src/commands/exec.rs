//! `sesto exec`: run a command with a folder's secrets as environment variables.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Not written yet
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("`sesto exec` is not written yet")
}
