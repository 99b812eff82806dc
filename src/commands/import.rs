//! `sesto import`: bring secrets over from pass, gopass, passage, or a
//! dotenv, JSON or YAML file, in one transaction.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use sesto::local::import::{Decrypter, Plan, Source};
use sesto::SPath;

use super::Global;

/// Import secrets from pass, gopass or passage, or from a dotenv, JSON or YAML file
///
/// The whole import is one change: every value is read (and decrypted)
/// first, then all are written together, so a failure anywhere (gpg failing
/// on one file, a bad name) leaves the store as it was and names the file or
/// key. Where sesto commits, the import is one commit, whose message gives
/// the count and the kind of source, never a path or value.
///
/// Values are stored byte for byte: a pass entry's whole file, every line
/// and a final newline where the file has one (pass's first line is its
/// password; sesto keeps the lines after it too). Secrets that exist
/// already are an error unless --force; --dry-run lists what would be
/// created and writes nothing.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    sesto import pass --dry-run\n  \
    sesto import pass ~/.password-store --to personal\n  \
    sesto import passage\n  \
    sesto import gopass --mount old=~/old-store\n  \
    sesto import dotenv .env --to prod/app\n  \
    sops -d secrets.yaml | sesto import yaml - --to prod")]
pub struct Args {
    #[command(subcommand)]
    from: From,
}

#[derive(Debug, Subcommand)]
enum From {
    Pass(PassArgs),
    Gopass(GopassArgs),
    Passage(PassageArgs),
    /// Import a dotenv file of NAME=value lines (`-` reads stdin)
    ///
    /// `export ` before a name is allowed, `#` starts a comment line (and, after
    /// a space, ends an unquoted value). 'Single quotes' are literal; "double
    /// quotes" take \n \r \t \" \\ \$ escapes; both may span lines. Each
    /// NAME becomes a secret in --to, and must be a valid sesto name, set once.
    /// Files up to 16 MiB.
    Dotenv(FileArgs),
    /// Import a JSON object: mappings become folders (`-` reads stdin)
    ///
    /// Strings are stored as they are, integers and booleans as their text.
    /// Arrays, nulls and floats are refused, naming the key (quote a float to
    /// keep its text). Every key must be a valid sesto name. Files up to 16 MiB.
    Json(FileArgs),
    /// Import a YAML mapping: mappings become folders (`-` reads stdin)
    ///
    /// Strings are stored as they are (a `|` block keeps its newlines),
    /// integers and booleans as their text. Lists, nulls and floats are
    /// refused, naming the key (quote a float to keep its text), as are anchors
    /// and aliases. Every key must be a valid sesto name. Files up to 16 MiB;
    /// decrypt sops files first: `sops -d f.yaml | sesto import yaml - --to prod`.
    Yaml(FileArgs),
}

/// Options of every import.
#[derive(Debug, clap::Args)]
struct Common {
    /// Replace secrets that exist already (without it any existing secret is
    /// an error, checked before anything is written)
    #[arg(long)]
    force: bool,
    /// List the secrets that would be created, and write nothing
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Print JSON: {"source", "to", "dry_run", "imported", "replaced",
    /// "folders", "skipped"}
    #[arg(long)]
    json: bool,
}

/// Import a pass store: each *.gpg file decrypted by your gpg
///
/// `a/b/c.gpg` becomes the secret a/b/c, folders created as needed.
/// `.gpg-id` files (in any folder), `.git/`, `.extensions/`, symlinks and
/// files not ending in .gpg are skipped and counted (--json lists them).
/// Each file is decrypted with `gpg --batch --quiet --decrypt FILE`, so
/// gpg-agent and pinentry ask for a passphrase as pass does.
#[derive(Debug, clap::Args)]
struct PassArgs {
    /// The store [default: $PASSWORD_STORE_DIR, else ~/.password-store]
    dir: Option<PathBuf>,
    /// Folder to import into [default: the top of the store]
    #[arg(long, value_name = "FOLDER")]
    to: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Import a gopass store (pass's layout) and its mounts
///
/// Each store is read as pass's is, and each mount is imported into the
/// folder of its name. With no DIR, the root store and the mounts are the
/// ones gopass's config lists ($XDG_CONFIG_HOME/gopass/config, the git-style
/// config of gopass 1.15 and later: `[mounts]` and `[mounts "NAME"]`, each
/// with `path = DIR`), else ~/.local/share/gopass/stores/root alone. Older
/// YAML configs are not read (name the mounts with --mount then); stores on
/// gopass's age backend are not supported.
#[derive(Debug, clap::Args)]
struct GopassArgs {
    /// The root store alone, not gopass's config [default: as gopass's
    /// config says]
    dir: Option<PathBuf>,
    /// A mounted store, imported into the folder NAME (repeatable); adds to
    /// or replaces the config's mounts
    #[arg(long = "mount", value_name = "NAME=DIR")]
    mounts: Vec<String>,
    /// Folder to import into [default: the top of the store]
    #[arg(long, value_name = "FOLDER")]
    to: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Import a passage store: each *.age file decrypted with your age identities
#[derive(Debug, clap::Args)]
struct PassageArgs {
    /// The store [default: $PASSAGE_DIR, else ~/.passage/store]
    dir: Option<PathBuf>,
    /// The age identity file [default: $PASSAGE_IDENTITIES_FILE, else
    /// ~/.passage/identities]
    // Not `identities`: that is the id of the global -i, which would take it.
    #[arg(long = "identities", value_name = "FILE")]
    identity_file: Option<PathBuf>,
    /// Folder to import into [default: the top of the store]
    #[arg(long, value_name = "FOLDER")]
    to: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// The arguments of a file import.
#[derive(Debug, clap::Args)]
struct FileArgs {
    /// The file, or `-` for stdin
    file: String,
    /// Folder to import into (created if missing)
    #[arg(long, value_name = "FOLDER", required = true)]
    to: String,
    #[command(flatten)]
    common: Common,
}

pub fn run(g: &Global, args: Args, out: &mut dyn Write) -> Result<ExitCode> {
    match args.from {
        From::Pass(a) => {
            let dir = default_dir(a.dir, "PASSWORD_STORE_DIR", ".password-store")?;
            let mut plan = Plan::new(Source::Pass, target(a.to.as_deref())?);
            plan.add_store(&dir, &SPath::root())?;
            import(g, plan, &Decrypter::Gpg("gpg".into()), &a.common, out)
        }
        From::Gopass(a) => {
            // With no DIR, gopass's config says where the root store and
            // the mounts are.
            let (dir, mut mounts) = match a.dir {
                Some(d) => (d, Vec::new()),
                None => {
                    let default = xdg_data()?.join("gopass/stores/root");
                    let config = xdg_config()?.join("gopass/config");
                    match sesto::format::limits::read_regular(&config, 1 << 20) {
                        Ok(bytes) => {
                            let (root, mounts) = sesto::local::import::gopass_mounts(
                                &String::from_utf8_lossy(&bytes),
                            );
                            (root.unwrap_or(default), mounts)
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (default, Vec::new()),
                        Err(e) => {
                            return Err(anyhow::Error::new(e).context(format!(
                                "cannot read gopass's config {}",
                                config.display()
                            )))
                        }
                    }
                }
            };
            for m in &a.mounts {
                let (name, mount_dir) = m.split_once('=').context(
                    "--mount takes NAME=DIR, e.g. --mount work=~/.local/share/gopass/stores/work",
                )?;
                mounts.retain(|(n, _)| n != name);
                mounts.push((name.to_string(), expand_home(mount_dir)?));
            }
            let mut plan = Plan::new(Source::Gopass, target(a.to.as_deref())?);
            plan.add_store(&dir, &SPath::root())?;
            for (name, mount_dir) in &mounts {
                let folder = SPath::parse(name).with_context(|| format!("gopass mount {name}"))?;
                if folder.is_root() {
                    anyhow::bail!("a gopass mount needs a name (--mount NAME=DIR)");
                }
                plan.add_store(mount_dir, &folder)?;
            }
            import(g, plan, &Decrypter::Gpg("gpg".into()), &a.common, out)
        }
        From::Passage(a) => {
            let dir = match a.dir {
                Some(d) => d,
                None => env_path("PASSAGE_DIR")
                    .map_or_else(|| home().map(|h| h.join(".passage/store")), Ok)?,
            };
            let identity_file = match a.identity_file {
                Some(f) => f,
                None => env_path("PASSAGE_IDENTITIES_FILE")
                    .map_or_else(|| home().map(|h| h.join(".passage/identities")), Ok)?,
            };
            let mut plan = Plan::new(Source::Passage, target(a.to.as_deref())?);
            plan.add_store(&dir, &SPath::root())?;
            let sources = sesto::IdentitySources {
                explicit: vec![identity_file.clone()],
                ..Default::default()
            };
            let ids = sesto::Identities::load(&sources, Arc::new(crate::terminal::TtyPassphrase))
                .with_context(|| {
                format!(
                    "cannot read passage's identities ({}); give the file with --identities",
                    identity_file.display()
                )
            })?;
            let age_ids = ids.age_identities(|_| true)?;
            import(g, plan, &Decrypter::Age(&age_ids), &a.common, out)
        }
        From::Dotenv(a) => file_import(g, Source::Dotenv, a, out),
        From::Json(a) => file_import(g, Source::Json, a, out),
        From::Yaml(a) => file_import(g, Source::Yaml, a, out),
    }
}

fn file_import(g: &Global, source: Source, a: FileArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let cap = sesto::local::import::MAX_FILE;
    let (bytes, from) = if a.file == "-" {
        let mut buf = zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(cap as u64 + 1)
            .read_to_end(&mut buf)
            .context("cannot read stdin")?;
        (buf, "stdin".to_string())
    } else {
        let bytes = sesto::format::limits::read_regular(Path::new(&a.file), cap)
            .with_context(|| format!("cannot read {}", a.file))?;
        (zeroize::Zeroizing::new(bytes), a.file.clone())
    };
    let mut plan = Plan::new(source, target(Some(&a.to))?);
    plan.add_file(&bytes, &from)?;
    drop(bytes);
    import(g, plan, &Decrypter::None, &a.common, out)
}

/// Checks the plan against the store, then imports it in one transaction
/// (or, with --dry-run, reports what it would do), and reports.
fn import(
    g: &Global,
    plan: Plan,
    decrypter: &Decrypter,
    common: &Common,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let store = super::open(g)?;
    let mut tx = store.transaction()?;
    let clashes = plan.check(&mut tx, common.force)?;
    let source = plan.source();
    let to = plan.to().to_string();
    let secrets: Vec<String> = plan.secrets().iter().map(|p| p.to_string()).collect();
    let folders: Vec<String> = plan.empty_folders().iter().map(|p| p.to_string()).collect();
    let replaced: Vec<String> = clashes.existing.iter().map(ToString::to_string).collect();
    let skipped = plan.skipped().to_vec();
    if !common.dry_run {
        let n = plan.apply(&mut tx, decrypter)?;
        tx.set_summary(format!(
            "import {n} secret{} from {}",
            if n == 1 { "" } else { "s" },
            source.name()
        ));
        super::commit(tx)?;
    }
    if common.json {
        let report = serde_json::json!({
            "source": source.name(),
            "to": to,
            "dry_run": common.dry_run,
            "imported": secrets,
            "replaced": replaced,
            "folders": folders,
            "skipped": skipped,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let n = secrets.len();
    let plural = if n == 1 { "" } else { "s" };
    if common.dry_run {
        for p in &secrets {
            writeln!(out, "{p}")?;
        }
        for p in &folders {
            writeln!(out, "{p}/")?;
        }
        writeln!(
            out,
            "would import {n} secret{plural} from {} into {to}{}; dry run, nothing was written",
            source.name(),
            replacing(&replaced)
        )?;
    } else {
        writeln!(
            out,
            "imported {n} secret{plural} from {} into {to}{}",
            source.name(),
            replacing(&replaced)
        )?;
    }
    if !skipped.is_empty() {
        writeln!(
            out,
            "skipped {} file{} that hold no entry (.gpg-id, .git/ and the like; --json lists them)",
            skipped.len(),
            if skipped.len() == 1 { "" } else { "s" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn replacing(replaced: &[String]) -> String {
    match replaced.len() {
        0 => String::new(),
        n => format!(" ({n} replaced)"),
    }
}

fn target(to: Option<&str>) -> Result<SPath> {
    match to {
        None => Ok(SPath::root()),
        Some(t) => SPath::parse(t).with_context(|| format!("--to {t}")),
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Result<PathBuf> {
    env_path("HOME").context("HOME is not set; give the store's directory")
}

fn xdg_config() -> Result<PathBuf> {
    match env_path("XDG_CONFIG_HOME") {
        Some(d) => Ok(d),
        None => Ok(home()?.join(".config")),
    }
}

fn xdg_data() -> Result<PathBuf> {
    match env_path("XDG_DATA_HOME") {
        Some(d) => Ok(d),
        None => Ok(home()?.join(".local/share")),
    }
}

/// `$VAR`, else `~/default`.
fn default_dir(given: Option<PathBuf>, var: &str, default: &str) -> Result<PathBuf> {
    match given.or_else(|| env_path(var)) {
        Some(d) => Ok(d),
        None => Ok(home()?.join(default)),
    }
}

/// A `~/` at the start of a --mount directory, which the shell does not
/// expand after `=`.
fn expand_home(dir: &str) -> Result<PathBuf> {
    match dir.strip_prefix("~/") {
        Some(rest) => Ok(home()?.join(rest)),
        None => Ok(PathBuf::from(dir)),
    }
}
