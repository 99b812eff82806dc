//! A tour of sesto on a throwaway store: `cargo run --example tour`.
//!
//! Makes a git repository in a temporary directory, an admin (alice, an SSH
//! key), a second member (bob, an age key) and a CI deploy key, stores a few
//! secrets, then shows what git sees (random ids, padded sizes) and what a
//! member sees (names and values). Everything is deleted at the end.

use std::process::Command;

use sesto::{InitOptions, OpenOptions, Store};
use ssh_key::{Algorithm, LineEnding, PrivateKey};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    // Trust pins of this throwaway store stay in the throwaway directory.
    std::env::set_var("XDG_STATE_HOME", tmp.path().join("state"));
    let repo = tmp.path().join("infra");
    std::fs::create_dir(&repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["config", "user.name", "Alice"])?;
    git(&repo, &["config", "user.email", "alice@example.com"])?;

    // Keys: alice's SSH key (as `ssh-keygen -t ed25519` makes), bob's age key,
    // and a deploy key for CI.
    let alice_key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
    let alice_text = alice_key.to_openssh(LineEnding::LF)?;
    let bob = age::x25519::Identity::generate();
    let deploy = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;

    println!("$ sesto init --name alice");
    let options = InitOptions {
        start: Some(repo.clone()),
        name: Some("alice".into()),
    };
    sesto::init(&options, sesto::identities_from_text(&alice_text)?)?;

    // Opens the store as whoever holds `key_text`, as `sesto` does each run.
    let open_as = |key_text: &str| -> Result<Store, Box<dyn std::error::Error>> {
        let options = OpenOptions {
            start: Some(repo.clone()),
            ..Default::default()
        };
        Ok(Store::open(
            &options,
            sesto::identities_from_text(key_text)?,
        )?)
    };
    let mut store = open_as(&alice_text)?;
    store.add_member("bob", &bob.to_public().to_string(), true)?;
    store.add_member("ci-prod", &deploy.public_key().to_openssh()?, false)?;
    println!(
        "members: {}",
        store
            .roster()
            .members
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut tx = store.transaction()?;
    tx.set(
        &"prod/db/password".parse()?,
        b"correct horse battery staple",
    )?;
    tx.set(&"prod/db/url".parse()?, b"postgres://app@db.internal/app")?;
    tx.set(&"prod/api/token".parse()?, b"tok_live_1234567890")?;
    tx.set(&"staging/db/password".parse()?, b"not so secret")?;
    tx.commit()?;

    println!("\n== what git sees: random ids and padded sizes, no names ==");
    let files = git_out(&repo, &["ls-files", "-s", ".sesto"])?;
    for line in files.lines() {
        let path = line.split('\t').nth(1).unwrap_or(line);
        let size = std::fs::metadata(repo.join(path))?.len();
        println!("{size:>6}  {path}");
    }
    println!("\n$ git log --oneline");
    print!("{}", git_out(&repo, &["log", "--oneline"])?);

    println!("\n== what bob (an admin, age key) sees ==");
    let bob_text = age::secrecy::ExposeSecret::expose_secret(&bob.to_string()).to_string();
    let as_bob = open_as(&bob_text)?;
    println!("$ sesto tree");
    for (path, kind) in as_bob.tree("")?.paths() {
        let slash = if kind == sesto::node::Kind::Folder {
            "/"
        } else {
            ""
        };
        println!("  {path}{slash}");
    }
    let secret = as_bob.get("prod/db/url")?;
    println!(
        "$ sesto get prod/db/url\n  {}",
        String::from_utf8_lossy(secret.expose_value())
    );
    println!(
        "  (version {}, changed by {})",
        secret.version,
        secret.updated_by.as_deref().unwrap_or("?")
    );

    println!("\n== what the CI deploy key sees before any grant ==");
    let deploy_text = deploy.to_openssh(LineEnding::LF)?;
    let as_ci = open_as(&deploy_text)?;
    match as_ci.get("prod/db/password") {
        Ok(_) => println!("  unexpected: the deploy key read a secret"),
        Err(e) => println!("  error: {e}"),
    }

    println!("\n$ sesto grant ci-prod prod   # rewrites one folder's file and the roster");
    store.grant("ci-prod", "prod", sesto::Access::Read)?;
    print!(
        "{}",
        git_out(&repo, &["show", "--stat", "--format=", "HEAD"])?
    );
    println!("\n== what the CI deploy key sees after the grant ==");
    let as_ci = open_as(&deploy_text)?;
    for (path, _) in as_ci.tree("")?.paths() {
        println!("  {path}");
    }
    match as_ci.get("staging/db/password") {
        Ok(_) => println!("  unexpected: the deploy key read staging"),
        Err(e) => println!("  sesto get staging/db/password: error: {e}"),
    }
    println!("\n$ SESTO_IDENTITY=\"$DEPLOY_KEY\" sesto exec prod/db -- ./deploy.sh   # in CI");
    let mut vars = sesto::env::Vars::default();
    vars.add_folder("prod/db", as_ci.folder_secrets("prod/db")?)?;
    for v in vars.iter() {
        println!(
            "  ./deploy.sh gets {}=<{} bytes> from {}",
            v.name,
            v.expose_value().len(),
            v.source
        );
    }
    println!("\nThe store lived in {} and is gone now.", repo.display());
    Ok(())
}

fn git(dir: &std::path::Path, args: &[&str]) -> Result<(), Box<dyn std::error::Error>> {
    let status = Command::new("git").args(args).current_dir(dir).status()?;
    if !status.success() {
        return Err(format!("git {} failed", args.join(" ")).into());
    }
    Ok(())
}

fn git_out(dir: &std::path::Path, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new("git").args(args).current_dir(dir).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
