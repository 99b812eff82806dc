//! `sesto render`: fill `{{ sesto://path#field }}` references in a template.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::Global;

/// Fill a template's `{{ sesto://path#field }}` references with secrets
///
/// Each `{{ sesto://PATH }}` is replaced by the secret's exact bytes, and
/// `{{ sesto://PATH#FIELD }}` by one field of a secret holding a YAML mapping.
/// Spaces inside the braces are optional. Every other `{{ … }}` (Helm, Jinja,
/// GitHub expressions) is left as it is. A name holding `#`, `%`, `}` or a
/// space is written percent-encoded (%23, %25, %7D, %20). Each secret is read
/// once however often it is named; an unknown reference fails with the
/// template's file and line, and nothing is written.
///
/// The result holds secret values: with -o it goes to a file made 0600
/// atomically, so a reader never sees half of it.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    sesto render config.tmpl -o config.yaml\n  \
    sesto render config.tmpl > config.yaml")]
pub struct Args {
    /// The template file, or - for stdin
    #[arg(value_name = "TEMPLATE")]
    template: PathBuf,
    /// Write to this file (atomically, mode 0600) instead of stdout
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let (name, text) = if args.template == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin()
            .take(sesto::deploy::template::MAX_TEMPLATE as u64 + 1)
            .read_to_end(&mut text)
            .context("cannot read the template from stdin")?;
        ("<stdin>".to_string(), text)
    } else {
        let text = sesto::format::limits::read_regular(
            &args.template,
            sesto::deploy::template::MAX_TEMPLATE,
        )
        .with_context(|| format!("cannot read {}", args.template.display()))?;
        (args.template.display().to_string(), text)
    };
    // The template is checked before the store is opened: a typo costs no key.
    sesto::deploy::template::check_template(&name, &text)?;
    let store = super::open(g)?;
    let rendered = sesto::deploy::template::render(&store, &name, &text)?;
    match &args.output {
        None => out.write_all(&rendered)?,
        Some(path) => write_private(path, &rendered)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file of secret values: temp file 0600 beside it, fsync, rename.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let path =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    if path.is_dir() {
        anyhow::bail!("{} is a directory; name a file to write", path.display());
    }
    sesto::store::journal::write_atomic(&path, bytes)?;
    Ok(())
}
