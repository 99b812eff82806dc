//! `sesto unlock`, `sesto lock` and `sesto agent`: a passphrase asked once,
//! for every sesto process, through the sesto agent.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sesto::local::agent;
use zeroize::Zeroizing;

use super::Global;

fn duration(text: &str) -> Result<Duration, String> {
    agent::parse_duration(text)
}

/// Unlock your passphrase-protected keys once, for every sesto process
///
/// Asks each key's passphrase once (three tries) and hands the unlocked keys
/// to the sesto agent, which it starts if none runs. Until the keys go unused
/// for DURATION, or `sesto lock`, every sesto process (git's merge drivers
/// too) decrypts and signs through the agent without asking again. The keys
/// stay in the agent's memory only; they never reach another process.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto unlock              # keys unused for 15 minutes are forgotten\n  \
    sesto unlock --for 2h\n  \
    sesto -i ~/.ssh/work_ed25519 unlock")]
pub struct UnlockArgs {
    /// Forget the keys after they go unused this long: 90s, 15m, 2h, 1d
    #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = duration)]
    idle: Duration,
}

/// Make the sesto agent forget every key now
#[derive(Debug, clap::Args)]
pub struct LockArgs {}

/// Run the sesto agent in the foreground (for systemd or launchd)
///
/// `sesto unlock` starts an agent when none runs; this runs one that stays,
/// for a service manager. It listens on $SESTO_AGENT_SOCK, else
/// $XDG_RUNTIME_DIR/sesto/agent.sock, else /tmp/sesto-agent-UID/agent.sock,
/// serves only your own user, and holds keys only in memory.
#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// Forget keys unused this long, unless `sesto unlock --for` says otherwise
    #[arg(long = "for", value_name = "DURATION", default_value = "15m", value_parser = duration)]
    idle: Duration,
    /// Exit once no key is held (how `sesto unlock` starts it)
    #[arg(long, hide = true)]
    on_demand: bool,
}

pub fn unlock(g: &Global, args: UnlockArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let ids = super::identities(g)?;
    let mut keys = Vec::new();
    let mut already = Vec::new();
    for id in ids.iter() {
        if id.is_external() && id.can_sign() {
            already.push(id.source().to_string());
        }
        if !id.is_ssh_file_key() || !id.is_locked() {
            continue;
        }
        let private = id.ssh_private_key(ids.prompt())?;
        let text = private
            .to_openssh(ssh_key::LineEnding::LF)
            .context("cannot hand the key to the agent")?;
        keys.push((id.source().to_string(), Zeroizing::new(text.to_string())));
    }
    if keys.is_empty() && already.is_empty() {
        writeln!(
            out,
            "Nothing to unlock: none of your keys has a passphrase (tried: {}).",
            if ids.tried().is_empty() {
                "none found".to_string()
            } else {
                ids.tried().join(", ")
            }
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = connect_or_start(args.idle)?;
    let names: Vec<String> = keys.iter().map(|(s, _)| s.clone()).collect();
    client.add(keys, args.idle).map_err(anyhow::Error::msg)?;
    for name in &names {
        writeln!(out, "Unlocked {name}.")?;
    }
    for name in &already {
        writeln!(out, "Already unlocked: {name}.")?;
    }
    writeln!(
        out,
        "The sesto agent ({}) forgets keys unused for {}, or at `sesto lock`.",
        client.path().display(),
        shown(args.idle)
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn lock(_g: &Global, _args: LockArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let path = agent::socket_path();
    if std::fs::symlink_metadata(&path).is_err() {
        writeln!(out, "No sesto agent is running; nothing to lock.")?;
        return Ok(ExitCode::SUCCESS);
    }
    let client = agent::Client::connect(&path).map_err(anyhow::Error::msg)?;
    let held = client.status().map_err(anyhow::Error::msg)?.keys.len();
    client.lock().map_err(anyhow::Error::msg)?;
    writeln!(
        out,
        "Locked: the sesto agent forgot {held} key{}.",
        if held == 1 { "" } else { "s" }
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn agent(_g: &Global, args: AgentArgs, _out: &mut dyn Write) -> Result<ExitCode> {
    let socket = agent::socket_path();
    let listener = agent::bind(&socket).map_err(anyhow::Error::msg)?;
    if !args.on_demand {
        eprintln!("sesto agent: listening on {}", socket.display());
    }
    let options = agent::ServeOptions {
        socket,
        idle: args.idle,
        exit_when_empty: args.on_demand,
        harden: true,
    };
    agent::serve(listener, &options).map_err(anyhow::Error::msg)?;
    Ok(ExitCode::SUCCESS)
}

/// For a command that runs git, which runs sesto again (the merge driver):
/// when no agent holds the user's passphrase-protected keys, unlocks them
/// here (asking once) and serves them to those children through an agent
/// of this process, so that one command asks at most once. Keep the
/// returned value alive while the children run.
pub fn serve_children(store: &sesto::Store) -> Result<Option<agent::ChildAgent>> {
    let ids = store.identities();
    // Only the keys of the member this is: others are not asked for.
    let mine: Vec<String> = store
        .whoami()
        .and_then(|me| store.roster().members.get(me))
        .map(|m| {
            std::iter::once(&m.key)
                .chain(m.signing_key.as_ref())
                .filter_map(|k| sesto::format::crypto::normalize_public(k).ok())
                .collect()
        })
        .unwrap_or_default();
    let mut keys = Vec::new();
    for id in ids.iter().filter(|i| {
        i.is_ssh_file_key()
            && i.is_locked()
            && i.public().is_some_and(|p| mine.iter().any(|m| m == p))
    }) {
        let private = id.ssh_private_key(ids.prompt())?;
        let text = private
            .to_openssh(ssh_key::LineEnding::LF)
            .context("cannot hand the key to the merge drivers")?;
        keys.push((id.source().to_string(), Zeroizing::new(text.to_string())));
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let child = agent::ChildAgent::start(keys).map_err(anyhow::Error::msg)?;
    // Set before git starts and while this process runs no other thread
    // that reads the environment.
    std::env::set_var("SESTO_AGENT_SOCK", child.socket());
    Ok(Some(child))
}

/// The running agent, or a new one started in the background.
fn connect_or_start(idle: Duration) -> Result<agent::Client> {
    let path = agent::socket_path();
    if let Some(c) = agent::try_connect(&path) {
        return Ok(c);
    }
    let exe = std::env::current_exe().context("cannot find the sesto binary to start the agent")?;
    let mut cmd = Command::new(exe);
    cmd.args([
        "agent",
        "--on-demand",
        "--for",
        &format!("{}s", idle.as_secs()),
    ])
    .env("SESTO_AGENT_SOCK", &path)
    .current_dir("/")
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the agent leaves the terminal's
    // session so that closing the terminal does not stop it.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the sesto agent")?;
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(c) = agent::try_connect(&path) {
            // Reaped by init once we exit; nothing to wait for here.
            drop(child);
            return Ok(c);
        }
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!(
                "the sesto agent exited at once ({status}); run `sesto agent` to see why"
            );
        }
        if Instant::now() > until {
            anyhow::bail!(
                "the sesto agent did not start listening on {} within 5 s",
                Path::new(&path).display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A duration as the user would write it.
fn shown(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
