//! A tour of sesto on a throwaway store: `cargo run --example tour [-- --keep]`.
//!
//! Runs the real `sesto` binary, step by step, and prints each command line
//! followed by what it printed: an admin (alice) makes a store, adds bob and a
//! CI deploy key, stores secrets and grants folders; then what git sees (random
//! ids, no names), what bob and CI can and cannot read, a revoke with its key
//! rotation, and two clones that change the store at once and `sesto sync`.
//!
//! `cargo run --example` builds no binaries, so the tour first builds `sesto`
//! into the same target directory and profile. Everything happens in a
//! temporary directory with a sealed environment (its own HOME, XDG
//! directories and git config; no SESTO_* or GIT_* variables, no ssh-agent),
//! so your keys, config and trust pins are never touched. It is deleted at the
//! end unless `--keep` is given. A command that does not exit as expected
//! stops the tour with its output and a non-zero exit.

use std::error::Error;
use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use ssh_key::{Algorithm, LineEnding, PrivateKey};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

fn main() -> ExitCode {
    let keep = std::env::args().skip(1).any(|a| a == "--keep");
    match build_sesto().and_then(|bin| tour(&bin, keep)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ntour stopped: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tour(bin: &Path, keep: bool) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("sesto-tour-").tempdir()?;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700))?;
    let mut t = Tour::new(tmp.path(), bin)?;
    // Keys as `ssh-keygen -t ed25519` makes them: alice's, bob's and a CI
    // deploy key. The store only ever sees the public halves.
    for name in ["alice", "bob", "ci"] {
        let mut key = PrivateKey::random(&mut rand::rngs::OsRng, Algorithm::Ed25519)?;
        key.set_comment(format!("{name}@example.com"));
        let private = key.to_openssh(LineEnding::LF)?;
        write_private(&tmp.path().join(format!("{name}.key")), &private)?;
        let public = key.public_key().to_openssh()? + "\n";
        std::fs::write(tmp.path().join(format!("{name}.pub")), public)?;
    }

    section("a store in a new git repository; alice is its first admin");
    t.git("init -q infra")?;
    t.cd("infra");
    t.sesto("-i ../alice.key init")?;
    t.sesto("-i ../alice.key member add bob --key-file ../bob.pub")?;
    t.sesto("-i ../alice.key member add ci-prod --key-file ../ci.pub")?;

    section("secrets: values come on stdin (on a terminal, a prompt that does not echo)");
    t.pipe(
        "correct horse battery staple",
        "-i ../alice.key set prod/db/password",
    )?;
    t.pipe(
        "postgres://app@db.internal/app",
        "-i ../alice.key set prod/db/url",
    )?;
    t.pipe("tok_live_1234567890", "-i ../alice.key set prod/api/token")?;
    t.pipe("not so secret", "-i ../alice.key set staging/db/password")?;
    t.sesto("-i ../alice.key grant bob staging --write")?;
    t.sesto("-i ../alice.key grant ci-prod prod")?;
    t.sesto("-i ../alice.key member list")?;

    section("what git sees: random ids and padded sizes, no names");
    t.git("ls-tree -r -l --abbrev HEAD .sesto")?;
    t.git("log --oneline")?;

    section("what alice sees");
    t.sesto("-i ../alice.key tree")?;
    t.sesto("-i ../alice.key get prod/db/url")?;

    section("what bob sees: staging, granted to him, and nothing else");
    t.sesto("-i ../bob.key ls")?;
    t.sesto_fails("-i ../bob.key get prod/db/password")?;
    t.sesto("-i ../bob.key get staging/db/password")?;

    section("CI: the deploy key runs a job with prod/db's secrets as variables");
    note("--mask replaces any value the job prints with ***");
    let job = r#"echo "PASSWORD has ${#PASSWORD} bytes; printed by mistake: $PASSWORD""#;
    let exec = [
        "-i",
        "../ci.key",
        "exec",
        "--mask",
        "prod/db",
        "--",
        "sh",
        "-c",
        job,
    ];
    t.run("sesto", &exec, None, 0)?;

    section("revoke: what bob could read gets new keys");
    t.sesto("-i ../alice.key revoke bob staging")?;
    t.sesto_fails("-i ../bob.key get staging/db/password")?;
    note("until each of them changes value, `sesto stale` lists it (and exits 1):");
    t.sesto_fails("-i ../alice.key stale")?;

    section("two clones change the store at once; sesto sync merges them");
    t.git("init -q --bare ../origin.git")?;
    t.git("remote add origin ../origin.git")?;
    t.git("push -q -u origin main")?;
    t.cd("..");
    t.git("clone -q origin.git laptop")?;
    t.cd("laptop");
    note("alice's second machine: a new token, and a new staging password");
    t.pipe("tok_live_rotated", "-i ../alice.key set prod/api/token")?;
    t.pipe(
        "set on the laptop",
        "-i ../alice.key set staging/db/password",
    )?;
    t.sesto("-i ../alice.key sync")?;
    t.cd("../infra");
    note("meanwhile in infra: a new secret, and another staging password");
    t.pipe("smtp-secret", "-i ../alice.key set prod/mail/password")?;
    t.pipe("set in infra", "-i ../alice.key set staging/db/password")?;
    t.sesto("-i ../alice.key sync")?;
    t.sesto("-i ../alice.key tree")?;
    t.sesto("-i ../alice.key get staging/db/password")?;
    let conflict = [
        "-i",
        "../alice.key",
        "get",
        "staging/db/password (conflict 1)",
    ];
    t.run("sesto", &conflict, None, 0)?;
    t.git("log --oneline --graph -7")?;

    if keep {
        let root = tmp.keep();
        println!("\nThe store is kept in {}.", root.display());
        println!("To try it, in a new shell (its variables keep your own keys and pins out):\n");
        println!("  cd {}", quote_path(&root.join("infra")));
        for (name, value) in &t.env {
            if name == "PATH" {
                // Only the binary's directory: the rest is the shell's own PATH.
                let dir = quote_path(bin.parent().unwrap_or(bin));
                println!("  export PATH={dir}:\"$PATH\"");
            } else {
                println!("  export {name}={}", shell_quote(&value.to_string_lossy()));
            }
        }
        let key = quote_path(&root.join("alice.key"));
        println!("  export SESTO_IDENTITY_FILE={key}");
        println!("  unset SSH_AUTH_SOCK");
        println!("  sesto tree");
    } else {
        println!("\nThe tour's directory is gone now (--keep keeps it).");
    }
    Ok(())
}

/// Where the commands run, with what environment; the transcript goes to stdout.
struct Tour {
    /// Set for every child, on top of the inherited environment minus
    /// SESTO_*, GIT_* and SSH_AUTH_SOCK.
    env: Vec<(String, OsString)>,
    cwd: PathBuf,
}

impl Tour {
    fn new(root: &Path, bin: &Path) -> Result<Tour> {
        let home = root.join("home");
        let runtime = root.join("run");
        std::fs::create_dir(&home)?;
        std::fs::create_dir(&runtime)?;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700))?;
        let gitconfig = home.join(".gitconfig");
        std::fs::write(
            &gitconfig,
            "[user]\n\tname = alice\n\temail = alice@example.com\n\
             [init]\n\tdefaultBranch = main\n",
        )?;
        // `sesto` is found on PATH, by the tour and by git for the merge
        // driver during `sesto sync`: the one just built comes first.
        let path = std::env::var_os("PATH").unwrap_or_default();
        let path = [bin.parent().unwrap_or(bin).to_path_buf()]
            .into_iter()
            .chain(std::env::split_paths(&path));
        let env = vec![
            ("HOME".into(), home.clone().into()),
            ("XDG_CONFIG_HOME".into(), home.join(".config").into()),
            ("XDG_STATE_HOME".into(), home.join(".local/state").into()),
            ("XDG_RUNTIME_DIR".into(), runtime.into()),
            ("GIT_CONFIG_GLOBAL".into(), gitconfig.into()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("PATH".into(), std::env::join_paths(path)?),
        ];
        let cwd = root.to_path_buf();
        Ok(Tour { env, cwd })
    }

    fn cd(&mut self, dir: &str) {
        println!("$ cd {dir}");
        self.cwd = self.cwd.join(dir);
    }

    // These take their arguments as one line split at spaces; `run` takes a list.
    fn sesto(&self, args: &str) -> Result<()> {
        self.run("sesto", &words(args), None, 0)
    }

    /// Runs sesto where it must exit 1 (a member refused), and checks that it did.
    fn sesto_fails(&self, args: &str) -> Result<()> {
        self.run("sesto", &words(args), None, 1)
    }

    /// `printf %s VALUE | sesto ARGS`
    fn pipe(&self, value: &str, args: &str) -> Result<()> {
        self.run("sesto", &words(args), Some(value), 0)
    }

    fn git(&self, args: &str) -> Result<()> {
        self.run("git", &words(args), None, 0)
    }

    /// Prints `$ program args` (after `printf %s VALUE |` when a value is
    /// piped in), runs it, prints its stdout and stderr as they came, and
    /// stops the tour unless it exited with `code`.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>, code: i32) -> Result<()> {
        let mut line = String::new();
        if let Some(value) = stdin {
            line += &format!("printf %s {} | ", shell_quote(value));
        }
        line += program;
        for arg in args {
            line += " ";
            line += &shell_quote(arg);
        }
        println!("$ {line}");

        // The PATH set below is the one Command searches for `program`.
        let mut cmd = Command::new(program);
        cmd.args(args).current_dir(&self.cwd);
        for (name, _) in std::env::vars_os() {
            let text = name.to_string_lossy();
            if text.starts_with("SESTO_") || text.starts_with("GIT_") || text == "SSH_AUTH_SOCK" {
                cmd.env_remove(&name);
            }
        }
        cmd.envs(self.env.iter().map(|(name, value)| (name, value)));
        // One file for both streams keeps their order.
        let mut out = tempfile::tempfile()?;
        cmd.stdout(out.try_clone()?).stderr(out.try_clone()?);
        cmd.stdin(stdin.map_or_else(Stdio::null, |_| Stdio::piped()));
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{line}: cannot run {program}: {e}"))?;
        if let (Some(value), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(value.as_bytes())?;
        }
        let status = child.wait()?;
        let mut text = String::new();
        out.rewind()?;
        out.read_to_string(&mut text)?;
        print!("{text}");
        if !text.is_empty() && !text.ends_with('\n') {
            println!();
        }
        match status.code() {
            Some(c) if c == code => Ok(()),
            _ if code == 0 => Err(format!("`{line}` failed ({status})").into()),
            _ => Err(format!("`{line}` should have exited with {code}, not {status}").into()),
        }
    }
}

/// Builds the `sesto` binary beside this example and returns its path:
/// `<target>/<profile>/examples/tour` is running, so the binary is
/// `<target>/<profile>/sesto`, built with the same profile.
fn build_sesto() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot tell the target directory from the example's path")?;
    let target_dir = profile_dir.parent().ok_or("no target directory")?;
    let release = profile_dir
        .file_name()
        .is_some_and(|name| name == "release");
    let flag = if release { " --release" } else { "" };
    println!("(building the sesto binary first: cargo build --bin sesto{flag})");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--bin", "sesto"])
        // With the example in the build, dev-dependencies' features are what
        // they were for this run, so the library already built is reused
        // instead of being compiled a second time without them.
        .args(["--example", "tour"])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo to build sesto: {e}"))?;
    if !status.success() {
        return Err(format!("building sesto failed ({status}); cargo said why above").into());
    }
    let bin = profile_dir.join("sesto");
    if !bin.is_file() {
        return Err(format!("cargo built sesto, but {} is not there", bin.display()).into());
    }
    Ok(bin)
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn note(text: &str) {
    println!("# {text}");
}

/// A private key file, mode 0600 from the start, as ssh-keygen writes it.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

fn quote_path(path: &Path) -> String {
    shell_quote(&path.to_string_lossy())
}

/// `arg` as a POSIX shell word: as is when plain, else in single quotes.
fn shell_quote(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}
