//! `sesto whoami`: which member the current identity is.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use super::Global;

/// Show which member the current identity is, and what it may read
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print JSON: {"name", "admin", "fingerprint", "grants": [{"path", "access"}]}
    #[arg(long)]
    json: bool,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    let store = super::open(g)?;
    let Some(me) = store.whoami() else {
        let tried = store.identities().tried().join(", ");
        let send = match store.identities().member_key_to_send() {
            Some(key) => format!(
                "send an admin your public key and ask them to add you:\n  \
                 sesto member add YOUR-NAME --key '{key}'"
            ),
            None => {
                "make a key with `ssh-keygen -t ed25519` and send an admin its .pub line".into()
            }
        };
        anyhow::bail!(
            "you are not a member of this store: none of your keys is in its roster (tried: {});\n{send}",
            if tried.is_empty() {
                "none found"
            } else {
                &tried
            }
        );
    };
    let m = &store.roster().members[me];
    let fp = sesto::format::crypto::fingerprint(&m.key);
    let shared = if m.admin {
        Default::default()
    } else {
        store.shared_folders()?
    };
    let grants: Vec<(String, sesto::Access)> = store
        .roster()
        .grants
        .iter()
        .filter_map(|(id, g)| Some((shared.get(id)?.to_string(), *g.get(me)?)))
        .collect();
    if args.json {
        let g: Vec<_> = grants
            .iter()
            .map(|(p, a)| serde_json::json!({"path": p, "access": super::member::access_word(*a)}))
            .collect();
        let v = serde_json::json!({"name": me, "admin": m.admin, "fingerprint": fp, "grants": g});
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else if m.admin {
        writeln!(out, "{me} ({fp}), admin: reads and writes everything")?;
    } else if grants.is_empty() {
        writeln!(out, "{me} ({fp}), member with no grants yet")?;
    } else {
        let list: Vec<String> = grants
            .iter()
            .map(|(p, a)| format!("{p} ({})", super::member::access_word(*a)))
            .collect();
        writeln!(out, "{me} ({fp}), member: {}", list.join(", "))?;
    }
    Ok(ExitCode::SUCCESS)
}
