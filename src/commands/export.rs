//! `sesto export`: print a folder's secrets as dotenv, JSON, YAML, shell or GitHub Actions.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::Global;

/// Not written yet
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_g: &Global, _args: Args, _out: &mut dyn Write) -> Result<ExitCode> {
    anyhow::bail!("`sesto export` is not written yet")
}
