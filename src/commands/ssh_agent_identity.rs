//! `sesto ssh-agent-identity`: enrol an ssh-agent key as an age identity, so
//! a member decrypts and signs with a key that only the agent holds.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sesto::format::crypto::{agent_identity, ssh_agent};

use super::Global;

/// Derive an age identity from a key in ssh-agent, to decrypt without a key file
///
/// Asks ssh-agent (SSH_AUTH_SOCK) to sign a fixed message with an Ed25519 or
/// RSA key, twice, and derives an age X25519 identity from the signature.
/// Prints the identity line to add to ~/.config/sesto/identity (or give with
/// -i FILE, or SESTO_IDENTITY), and the command an admin runs to add you.
/// Anyone who can use your agent can derive the same identity: see the
/// README's "Threats of agent-derived keys" (`ssh-add -c` confirms each use).
///
/// Example:
///
///   $ ssh-add ~/.ssh/id_ed25519
///
///   $ sesto ssh-agent-identity >> ~/.config/sesto/identity
///
/// and send the admin the `sesto member add` line it prints on stderr.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent key to use: its public key or SHA256 fingerprint (needed
    /// when the agent holds several Ed25519/RSA keys)
    #[arg(long, value_name = "PUBKEY_OR_FINGERPRINT", allow_hyphen_values = true)]
    key: Option<String>,
    /// Print JSON: {"identity_line", "recipient", "ssh_key", "fingerprint"}
    #[arg(long)]
    json: bool,
}

pub fn run(_g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let agent =
        ssh_agent::from_env().context("sesto ssh-agent-identity needs a running ssh-agent")?;
    let key = agent_identity::pick_key(&agent, args.key.as_deref())?;
    let e = agent_identity::enrol(&agent, &key)?;
    if args.json {
        let v = serde_json::json!({
            "identity_line": e.identity_line,
            "recipient": e.recipient,
            "ssh_key": e.ssh_key,
            "fingerprint": e.fingerprint,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // stdout holds only the identity file's lines, so `>>` appends them to
    // the identity file; the instructions go to stderr.
    writeln!(
        out,
        "# sesto: age identity derived through ssh-agent from {}\n{}",
        e.fingerprint, e.identity_line
    )?;
    eprintln!(
        "Add the line above to ~/.config/sesto/identity (or pass it with -i FILE or \
         SESTO_IDENTITY).\n\
         Your recipient: {}\n\
         Send your admin this command to add you (NAME is your member name):\n  \
         sesto member add NAME --key {} --signing-key \"{}\"",
        e.recipient, e.recipient, e.ssh_key
    );
    Ok(ExitCode::SUCCESS)
}
