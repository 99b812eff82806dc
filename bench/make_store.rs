//! Builds the benchmark store through the library, in one transaction.
//!
//! `cargo run --release --example bench-make-store -- DIR [--keys KEYDIR]
//! [--folders N] [--secrets N] [--big N]` makes a git repository in DIR (new
//! or empty), an ed25519 key at `DIR/id_ed25519` (mode 0600, and `.pub`), a
//! store whose only admin is that key, and N folders `app00…` of M secrets
//! `secret-0000…` each (default 50 × 200 = 10,000) with 20–60 byte values.
//! `--big N` adds one more folder, `big`, of N secrets `secret-0000…` (for
//! bench/growth.sh: one large folder beside many ordinary ones).
//! Timings of each step go to stderr.
//!
//! With `--keys KEYDIR`, every node's own age key is written to
//! `KEYDIR/<id>.key` and `KEYDIR/nodes.tsv` lists `kind path key file` for
//! every node (the root's key is the SSH key), so `bench/run.sh` can have the
//! reference `age` CLI decrypt exactly the files that sesto decrypts. Those
//! are secret keys: KEYDIR belongs in a temporary directory.

use std::error::Error;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sesto::format::node::{self, Body, Kind};
use sesto::{InitOptions, SPath};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

type Res<T> = Result<T, Box<dyn Error>>;

struct Args {
    dir: PathBuf,
    keys: Option<PathBuf>,
    folders: usize,
    secrets: usize,
    big: usize,
    /// The store format (`--format`; default: the newest).
    format: Option<u32>,
}

fn parse_args() -> Res<Args> {
    let usage = "usage: bench-make-store DIR [--keys KEYDIR] [--folders N] [--secrets N] [--big N] [--format 1|2]";
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut keys = None;
    let (mut folders, mut secrets, mut big) = (50, 200, 0);
    let mut format = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => keys = Some(PathBuf::from(args.next().ok_or(usage)?)),
            "--folders" => folders = args.next().ok_or(usage)?.parse()?,
            "--secrets" => secrets = args.next().ok_or(usage)?.parse()?,
            "--big" => big = args.next().ok_or(usage)?.parse()?,
            "--format" => format = Some(args.next().ok_or(usage)?.parse()?),
            _ if a.starts_with('-') || dir.is_some() => return Err(usage.into()),
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    if folders > 100 || secrets > 10_000 || big > 10_000 {
        return Err(
            "at most 100 folders of 10,000 secrets (names are app00…, secret-0000…)".into(),
        );
    }
    Ok(Args {
        dir: dir.ok_or(usage)?,
        keys,
        folders,
        secrets,
        big,
        format,
    })
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let total = Instant::now();
    let step =
        |name: &str, t: Instant| eprintln!("{name:<52} {:>8.3} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    std::fs::create_dir_all(&args.dir)?;
    if std::fs::read_dir(&args.dir)?.next().is_some() {
        return Err(format!("{} is not empty", args.dir.display()).into());
    }
    git2::Repository::init(&args.dir)?;
    let key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
    let key_text = key.to_openssh(LineEnding::LF)?;
    step("git init, ed25519 key", t);

    let t = Instant::now();
    let options = InitOptions {
        start: Some(args.dir.clone()),
        name: Some("bench".into()),
        format: args.format,
    };
    let store = sesto::init(&options, sesto::identities_from_text(&key_text)?)?.store;
    // Written after init, so the repository was empty and init turned on sesto.commit.
    write_private(&args.dir.join("id_ed25519"), key_text.as_bytes())?;
    std::fs::write(
        args.dir.join("id_ed25519.pub"),
        format!("{} bench\n", key.public_key().to_openssh()?),
    )?;
    step("sesto::init", t);

    let t = Instant::now();
    let mut rng = StdRng::seed_from_u64(7);
    let mut tx = store.transaction()?;
    for f in 0..args.folders {
        for s in 0..args.secrets {
            let path = SPath::parse(&format!("app{f:02}/secret-{s:04}"))?;
            tx.set(&path, value(&mut rng, f, s).as_bytes())?;
        }
    }
    for s in 0..args.big {
        let path = SPath::parse(&format!("big/secret-{s:04}"))?;
        tx.set(&path, value(&mut rng, args.folders, s).as_bytes())?;
    }
    step(
        &format!(
            "{} set() calls in memory",
            args.folders * args.secrets + args.big
        ),
        t,
    );

    let t = Instant::now();
    let files = tx.commit()?.files;
    step(
        &format!("commit: sign, encrypt, write, stage {files} files"),
        t,
    );

    if let Some(keys) = &args.keys {
        let t = Instant::now();
        let n = export_keys(&args.dir, &key_text, &store, keys)?;
        step(&format!("export {n} node keys"), t);
    }
    step("total", total);
    Ok(())
}

/// A made-up but realistic value of 20–60 bytes: passwords, API tokens,
/// database URLs, access key ids.
fn value(rng: &mut StdRng, folder: usize, secret: usize) -> String {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const SYMBOLS: &[u8] = b"!#%+-.:=@^_~";
    let mut pick = |set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.gen_range(0..set.len())] as char)
            .collect()
    };
    let v = match secret % 4 {
        0 => {
            let n = 20 + secret % 21;
            let mut s = pick(ALNUM, n - 4);
            s.push_str(&pick(SYMBOLS, 4));
            s
        }
        1 => format!("tok_live_{}", pick(ALNUM, 24 + secret % 16)),
        2 => format!(
            "postgres://app{folder:02}:{}@db{folder:02}.internal/app",
            pick(ALNUM, 16)
        ),
        _ => format!(
            "AKIA{}",
            pick(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16 + secret % 20)
        ),
    };
    debug_assert!((20..=60).contains(&v.len()), "{} bytes", v.len());
    v
}

fn write_private(path: &Path, bytes: &[u8]) -> Res<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    Ok(())
}

/// Decrypts the root and the folders (not the secrets) to collect every
/// node's own key, and writes them out for the `age` CLI.
fn export_keys(dir: &Path, ssh_key_text: &str, store: &sesto::Store, out: &Path) -> Res<usize> {
    std::fs::create_dir_all(out)?;
    let nodes_dir = dir.join(".sesto");
    let format = store.roster().sesto;
    let file_of = |id: &node::NodeId| nodes_dir.join(id.rel_path(format));
    let root_id = store.roster().root;
    let ssh = age::ssh::Identity::from_buffer(ssh_key_text.as_bytes(), None)?;
    let root = read_body(&file_of(&root_id), &ssh)?;
    let mut tsv = String::new();
    let mut line = |kind: Kind, path: &str, key: &Path, file: &Path| {
        tsv.push_str(&format!(
            "{kind}\t{path}\t{}\t{}\n",
            key.display(),
            file.display()
        ));
    };
    line(
        Kind::Folder,
        "/",
        &dir.join("id_ed25519"),
        &file_of(&root_id),
    );
    let mut count = 0;
    let mut stack: Vec<(String, Body)> = vec![(String::new(), root)];
    while let Some((at, body)) = stack.pop() {
        for e in &body.children {
            let path = format!("{at}{}", e.name);
            let key_file = out.join(format!("{}.key", e.id));
            write_private(&key_file, format!("{}\n", e.key.expose_secret()).as_bytes())?;
            line(e.kind, &path, &key_file, &file_of(&e.id));
            count += 1;
            if e.kind == Kind::Folder {
                let identity = age::x25519::Identity::from_str(e.key.expose_secret())?;
                stack.push((format!("{path}/"), read_body(&file_of(&e.id), &identity)?));
            }
        }
    }
    std::fs::write(out.join("nodes.tsv"), tsv)?;
    Ok(count)
}

fn read_body(file: &Path, identity: &dyn age::Identity) -> Res<Body> {
    let bytes = std::fs::read(file)?;
    let plaintext = sesto::format::crypto::decrypt(&bytes, &[identity])?;
    let parts = node::split(&plaintext)?;
    Ok(node::decode_body(parts.body)?)
}
