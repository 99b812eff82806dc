//! `sesto hooks`: install sesto's git pre-commit hook.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Not written yet
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("`sesto hooks` is not written yet")
}
