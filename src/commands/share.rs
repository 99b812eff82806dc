//! `sesto share`: hand one secret to someone outside the store as an age file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use age::secrecy::ExposeSecret;
use anyhow::{Context, Result};

use super::Global;

/// Print one secret as an armored age file for someone outside the store
///
/// The file goes to stdout and opens with the reference age CLI, no sesto needed:
/// `age -d -i ~/.ssh/id_ed25519 FILE` for a key given with --to or --to-file, or
/// `age -d FILE` and the passphrase. With --passphrase, a six-word passphrase is
/// generated and shown once on stderr: pass it over another channel than the file.
///
/// The file is a copy of the value as it is now; the store does not change. To take
/// a shared secret back, change it.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("recipients").required(true).multiple(true))]
pub struct Args {
    /// Path of the secret
    path: String,
    /// A public key to encrypt to: ssh-ed25519, ssh-rsa, age1… or an age plugin
    /// recipient (repeatable)
    // Hyphen values reach the private-key check instead of a clap error that would
    // echo a pasted `-----BEGIN … PRIVATE KEY-----` block whole.
    #[arg(
        long,
        value_name = "PUBLIC_KEY",
        group = "recipients",
        allow_hyphen_values = true
    )]
    to: Vec<String>,
    /// A file of public keys, one per line; blank lines and # comments are skipped
    /// (repeatable)
    #[arg(long, value_name = "FILE", group = "recipients")]
    to_file: Vec<PathBuf>,
    /// Encrypt with a generated passphrase instead, printed on stderr
    #[arg(long, group = "recipients", conflicts_with_all = ["to", "to_file"])]
    passphrase: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    // Keys are checked before the store is opened: a typo costs no passphrase prompt.
    let mut recipients = Vec::new();
    for text in &args.to {
        recipients.push(
            sesto::teams::share::parse_recipient(text).map_err(|e| anyhow::anyhow!("--to: {e}"))?,
        );
    }
    for path in &args.to_file {
        let bytes = sesto::format::limits::read_regular(path, 1 << 20)
            .with_context(|| format!("failed to read {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("{} is not text: not a recipients file", path.display()))?;
        recipients.extend(sesto::teams::share::parse_recipients(
            &text,
            &path.display().to_string(),
        )?);
    }
    let store = super::open(g)?;
    let secret = store.get(&args.path)?;
    if args.passphrase {
        let shared = sesto::teams::share::with_passphrase(secret.expose_value())?;
        out.write_all(shared.armored.as_bytes())?;
        out.flush()?;
        eprintln!("Passphrase: {}", shared.passphrase.expose_secret());
        eprintln!(
            "Give it to the recipient over another channel than the file (in person, by \
             phone); `age -d FILE` asks for it."
        );
    } else {
        let armored = sesto::teams::share::to_recipients(secret.expose_value(), &recipients)?;
        out.write_all(armored.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}
