//! `sesto materialize`: one file per secret in a directory, kept up to date with --watch.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Not written yet
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("`sesto materialize` is not written yet")
}
