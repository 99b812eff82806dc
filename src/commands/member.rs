//! `sesto member`: add, list and remove the store's members.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;

use super::Global;

/// Manage the store's members: who they are, their keys, what they may read
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: MemberCommand,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    Add(AddArgs),
    List(ListArgs),
    Remove(RemoveArgs),
}

/// Add a member with an SSH or age public key (admins only)
///
/// The member reads nothing until granted a folder (`sesto grant`), unless
/// added with --admin. Keys: ssh-ed25519, ssh-rsa (2048-4096 bits), age1…
/// and age plugin recipients. A member with an age key signs writes with
/// --signing-key; without one they can only read.
#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Member name: 1-64 of A-Z a-z 0-9 . _ @ -
    name: String,
    /// The public key, as text
    // Hyphen values: a pasted private key must reach the key check, which
    // refuses it without echoing it, not clap's error, which would print it.
    #[arg(
        long,
        required_unless_present = "key_file",
        conflicts_with = "key_file",
        allow_hyphen_values = true
    )]
    key: Option<String>,
    /// A file holding the public key (e.g. ~/.ssh/id_ed25519.pub)
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// An SSH public key the member signs with, for an age key
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    signing_key: Option<String>,
    /// Make the member an admin: reads and writes everything, changes the roster
    #[arg(long)]
    admin: bool,
}

/// List members, their key fingerprints and their grants
#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Print JSON: [{"name", "admin", "key", "fingerprint", "signing_key", "grants": [{"path", "access"}]}]
    #[arg(long)]
    json: bool,
}

/// Remove a member: revoke everything, rotate keys, list what they could read
///
/// Every node the member could read gets a new key, so a kept copy of their
/// key opens nothing written afterwards. What they read before stays in git
/// history: change those values (`sesto stale` lists them).
#[derive(Debug, clap::Args)]
struct RemoveArgs {
    /// The member to remove
    name: String,
    /// Show what would be rotated and which secrets they could read; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation on a terminal
    #[arg(short, long)]
    force: bool,
    /// Print JSON: {"member", "files", "dry_run", "exposed": [path…]}
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    match args.command {
        MemberCommand::Add(a) => add(g, a, out),
        MemberCommand::List(a) => list(g, a, out),
        MemberCommand::Remove(a) => remove(g, a, out),
    }
}

fn add(g: &Global, args: AddArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let key = match (&args.key, &args.key_file) {
        (Some(k), _) => k.clone(),
        (None, Some(f)) => {
            let bytes = sesto::format::limits::read_regular(f, 64 << 10)
                .with_context(|| format!("cannot read {} (a public key file)", f.display()))?;
            String::from_utf8(bytes)
                .with_context(|| format!("{} is not text: not a public key", f.display()))?
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    tx.add_member(&args.name, &key, args.signing_key.as_deref(), args.admin)
        .map_err(|e| match (&args.key_file, &e) {
            // A refusal is about who runs it, not about the key file.
            (Some(f), e) if !matches!(e, sesto::Error::Denied(_)) => {
                anyhow::anyhow!("{}: {e}", f.display())
            }
            _ => e.into(),
        })?;
    super::commit(tx)?;
    let fp = sesto::format::crypto::fingerprint(&sesto::format::crypto::normalize_public(&key)?);
    if args.admin {
        writeln!(out, "Added {} as an admin ({fp}).", args.name)?;
    } else {
        writeln!(
            out,
            "Added {} ({fp}); they read nothing until granted a folder: sesto grant {} PATH",
            args.name, args.name
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn list(g: &Global, args: ListArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let roster = store.roster();
    // Paths of shared folders where this identity can see them.
    let shared = store.shared_folders().unwrap_or_default();
    let grants_of = |name: &str| -> Vec<(String, sesto::Access)> {
        let mut v: Vec<(String, sesto::Access)> = roster
            .grants
            .iter()
            .filter_map(|(id, g)| {
                let a = g.get(name)?;
                let where_ = shared
                    .get(id)
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| format!("(folder {id})"));
                Some((where_, *a))
            })
            .collect();
        v.sort();
        v
    };
    if args.json {
        let members: Vec<_> = roster
            .members
            .iter()
            .map(|(name, m)| {
                let grants: Vec<_> = grants_of(name)
                    .into_iter()
                    .map(|(p, a)| serde_json::json!({"path": p, "access": access_word(a)}))
                    .collect();
                serde_json::json!({
                    "name": name, "admin": m.admin, "key": m.key,
                    "fingerprint": sesto::format::crypto::fingerprint(&m.key),
                    "signing_key": m.signing_key, "grants": grants,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&members)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (name, m) in &roster.members {
        let kind = m.key.split_whitespace().next().unwrap_or("?");
        let kind = if kind.starts_with("age1") {
            "age"
        } else {
            kind
        };
        let role = if m.admin {
            "admin: reads and writes everything".to_string()
        } else {
            let g = grants_of(name);
            if g.is_empty() {
                "no grants".to_string()
            } else {
                g.iter()
                    .map(|(p, a)| format!("{p} ({})", access_word(*a)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(
            out,
            "{name}  {kind} {}{}  {role}",
            sesto::format::crypto::fingerprint(&m.key),
            match &m.signing_key {
                Some(k) => format!(", signs with {}", sesto::format::crypto::fingerprint(k)),
                None if m.signer_key().is_none() => ", cannot sign".to_string(),
                None => String::new(),
            }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(g: &Global, args: RemoveArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let exposed = tx.remove_member(&args.name)?;
    let pending = tx.pending_nodes();
    if !args.dry_run
        && !args.force
        && crate::terminal::stdin_is_terminal()
        && !crate::terminal::confirm(&format!(
            "Remove {} and rotate the keys of {pending} files ({} secrets they could read)?",
            args.name,
            exposed.len()
        ))?
    {
        anyhow::bail!("{} was not removed", args.name);
    }
    let files = if args.dry_run {
        pending
    } else {
        super::commit_counted(tx)?
    };
    if args.json {
        super::print_rotation_json(out, &args.name, None, files, args.dry_run, &exposed)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        writeln!(
            out,
            "Would remove {} and rotate keys ({files} files); nothing was changed.",
            args.name
        )?;
    } else {
        writeln!(
            out,
            "Removed {}; rotated keys ({files} files written).",
            args.name
        )?;
    }
    super::print_exposed(out, &args.name, &exposed)?;
    Ok(ExitCode::SUCCESS)
}

/// The word for an access level, as the CLI prints it.
pub fn access_word(a: sesto::Access) -> &'static str {
    match a {
        sesto::Access::Read => "read",
        sesto::Access::Write => "write",
    }
}
