//! `sesto materialize`: secrets as files for services. One shot writes one 0600
//! file per secret atomically and leaves unchanged files alone; hostile names and
//! directories are refused; `--watch` follows a real `git pull` from a bare remote
//! and stops cleanly on SIGTERM; and the systemd units in `examples/materialize/`
//! are run line by line as systemd would run them.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    insta_settings, path_with_sesto, require_tool, run_cmd, snapshot_text, KeyKind, Output, TestEnv,
};

const CERT: &[u8] = b"-----BEGIN CERTIFICATE-----\nMIIBcert-value-41\n-----END CERTIFICATE-----\n";
/// Bytes that must come back exactly: NUL, non-UTF-8, trailing blank line.
const KEY: &[u8] = b"key-value-\x00\xff-77\n\n";
const NEW_KEY: &[u8] = b"rotated-key-value-93\n";

/// An admin's store holding `secrets`, in `env.repo`.
fn store_with(env: &TestEnv, secrets: &[(&str, &[u8])]) {
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    for (path, value) in secrets {
        env.run_stdin(&["set", path], value).assert_success();
    }
}

fn tls_store(env: &TestEnv) {
    store_with(
        env,
        &[
            ("prod/tls/cert.pem", CERT),
            ("prod/tls/key.pem", KEY),
            ("prod/tls/old.pem", b"old-value-12"),
            ("prod/tls/archive/nested", b"nested-value-5"),
            ("prod/db/password", b"db-value-8"),
        ],
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Panics if any value of the store shows up in what a command printed.
#[track_caller]
fn assert_no_values(text: &str) {
    for v in [
        "cert-value-41",
        "key-value-",
        "rotated-key-value",
        "old-value-12",
        "nested-value",
        "db-value",
        "new-value-3",
    ] {
        assert!(!text.contains(v), "a secret value was printed:\n{text}");
    }
}

#[test]
fn one_shot_writes_each_secret_0600_and_leaves_unchanged_files_alone() {
    let env = TestEnv::new();
    tls_store(&env);
    let dir = env.root.join("run/secrets/app");
    let out = env.run(&["materialize", "prod/tls", s(&dir)]);
    out.assert_success();
    assert_no_values(&snapshot_text(&out));
    insta_settings().bind(|| insta::assert_snapshot!("one_shot", snapshot_text(&out)));

    assert_eq!(mode(&dir), 0o700, "a missing DIR is created 0700");
    assert_eq!(
        names(&dir),
        [".sesto-materialized", "cert.pem", "key.pem", "old.pem"],
        "secrets directly in the folder only"
    );
    for (name, value) in [("cert.pem", CERT), ("key.pem", KEY)] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), value, "{name}");
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    std::fs::write(dir.join("notes.txt"), "not sesto's").unwrap();
    let cert_before = std::fs::metadata(dir.join("cert.pem")).unwrap();

    env.run_stdin(&["set", "prod/tls/key.pem"], NEW_KEY)
        .assert_success();
    env.run(&["rm", "prod/tls/old.pem"]).assert_success();
    env.run_stdin(&["set", "prod/tls/new.pem"], b"new-value-3")
        .assert_success();
    let out = env.run(&["materialize", "--json", "prod/tls", s(&dir)]);
    out.assert_success();
    assert_no_values(&snapshot_text(&out));
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["written"], serde_json::json!(["key.pem", "new.pem"]));
    assert_eq!(report["removed"], serde_json::json!(["old.pem"]));
    assert_eq!(report["unchanged"], serde_json::json!(["cert.pem"]));
    assert_eq!(report["folder"], "prod/tls");

    let cert_after = std::fs::metadata(dir.join("cert.pem")).unwrap();
    assert_eq!(
        (
            cert_after.ino(),
            cert_after.mtime(),
            cert_after.mtime_nsec()
        ),
        (
            cert_before.ino(),
            cert_before.mtime(),
            cert_before.mtime_nsec()
        ),
        "an unchanged file is not rewritten"
    );
    assert_eq!(std::fs::read(dir.join("key.pem")).unwrap(), NEW_KEY);
    assert_eq!(std::fs::read(dir.join("new.pem")).unwrap(), b"new-value-3");
    assert_eq!(
        std::fs::read(dir.join("notes.txt")).unwrap(),
        b"not sesto's"
    );
    assert_eq!(
        names(&dir),
        [
            ".sesto-materialized",
            "cert.pem",
            "key.pem",
            "new.pem",
            "notes.txt"
        ]
    );
    // A third run has nothing to do.
    let out = env.run(&["materialize", "prod/tls", s(&dir)]);
    out.assert_success();
    assert!(
        out.stdout.contains("0 written, 0 removed, 3 unchanged"),
        "{}",
        out.stdout
    );
}

#[test]
fn names_unsafe_as_file_names_are_refused() {
    let env = TestEnv::new();
    tls_store(&env);
    // The store's own rules already refuse `..` and `/` in names (SPath).
    for bad in ["prod/tls/..", "prod/tls/a\nb"] {
        let out = env.run_stdin(&["set", bad], b"x");
        assert_ne!(out.code, 0, "{bad:?} was stored");
    }
    // `.sesto-` names are fine in the store but reserved in DIR.
    env.run_stdin(&["set", "prod/tls/.sesto-materialized"], b"sneaky")
        .assert_success();
    let dir = env.root.join("out");
    let out = env.run(&["materialize", "prod/tls", s(&dir)]);
    out.assert_code(1);
    assert_no_values(&snapshot_text(&out));
    insta_settings().bind(|| insta::assert_snapshot!("reserved_name", snapshot_text(&out)));
    assert!(
        names(&dir).is_empty(),
        "nothing is written: {:?}",
        names(&dir)
    );
}

#[test]
fn unsafe_directories_are_refused_and_left_as_they_were() {
    let env = TestEnv::new();
    tls_store(&env);
    let mut shown = String::new();
    let mut refuse = |what: &str, dir: &Path| {
        let out = env.run(&["materialize", "prod/tls", s(dir)]);
        out.assert_code(1);
        assert_no_values(&snapshot_text(&out));
        shown.push_str(&format!("## {what}\n{}\n", out.stderr));
    };

    // Inside the repository: the plaintext would be one `git add` from a commit.
    let in_repo = env.repo.join("deploy/secrets");
    refuse("inside the work tree", &in_repo);
    assert!(
        !env.repo.join("deploy").exists(),
        "a refused DIR is not created"
    );

    // A symlink is refused, not followed: it could be re-pointed between the
    // checks and the writes. The real directory, named directly, works.
    let real = env.root.join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = env.root.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    refuse("a symlink", &link);
    assert!(names(&real).is_empty());

    // Writable by others, who could swap the files.
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o770)).unwrap();
    refuse("group-writable", &real);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();

    // Owned by another user (only root can make one).
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&real, Some(65534), None).unwrap();
        refuse("owned by another user", &real);
        std::os::unix::fs::chown(&real, Some(0), None).unwrap();
    }

    // A file sesto did not write, under a secret's name, is never replaced.
    std::fs::write(real.join("cert.pem"), "operator's own").unwrap();
    refuse("a file sesto did not write", &real);
    assert_eq!(
        std::fs::read(real.join("cert.pem")).unwrap(),
        b"operator's own"
    );
    assert_eq!(names(&real), ["cert.pem"]);
    std::fs::remove_file(real.join("cert.pem")).unwrap();

    // Another materializer holds the lock.
    let handle = std::fs::File::open(&real).unwrap();
    // SAFETY: flock on a descriptor this test owns.
    assert_eq!(unsafe { libc::flock(handle.as_raw_fd(), libc::LOCK_EX) }, 0);
    refuse("locked by another materializer", &real);
    drop(handle);
    assert!(names(&real).is_empty());

    insta_settings().bind(|| insta::assert_snapshot!("refused_dirs", shown));

    // A tampered manifest naming a path outside DIR removes nothing there.
    env.run(&["materialize", "prod/tls", s(&real)])
        .assert_success();
    let victim = env.root.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    std::fs::write(
        real.join(".sesto-materialized"),
        r#"{"note": "", "files": ["../victim", "/etc/passwd", "..", "cert.pem", "key.pem", "old.pem"]}"#,
    )
    .unwrap();
    env.run(&["rm", "prod/tls/cert.pem"]).assert_success();
    let out = env.run(&["materialize", "prod/tls", s(&real)]);
    out.assert_success();
    assert!(out.stdout.contains("removed"), "{}", out.stdout);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(!real.join("cert.pem").exists());
}

#[test]
fn a_read_only_dir_fails_naming_it_and_changes_nothing() {
    let env = TestEnv::new();
    tls_store(&env);
    let dir = env.root.join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let out = if unsafe { libc::geteuid() } == 0 {
        // Root writes through mode bits: make the file system read-only instead,
        // with a read-only bind mount in a mount namespace of its own.
        if !require_tool("unshare") {
            return;
        }
        let mut cmd = env.command("unshare");
        cmd.args([
            "-m",
            "sh",
            "-c",
            r#"mount --bind -o ro "$0" "$0" && exec "$@""#,
        ])
        .arg(&dir)
        .args([
            env!("CARGO_BIN_EXE_sesto"),
            "materialize",
            "prod/tls",
            s(&dir),
        ]);
        run_cmd(cmd)
    } else {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        env.run(&["materialize", "prod/tls", s(&dir)])
    };
    out.assert_code(1);
    assert_no_values(&snapshot_text(&out));
    assert!(out.stderr.contains(s(&dir)), "{}", out.stderr);
    assert!(out.stderr.contains("hint:"), "{}", out.stderr);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(names(&dir).is_empty());
}

/// A process left running, its output going to files (no pipe can fill).
struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    fn start(mut cmd: Command, logs: &Path, name: &str) -> Running {
        let stdout = logs.join(format!("{name}.out"));
        let stderr = logs.join(format!("{name}.err"));
        cmd.stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .stdin(Stdio::null());
        Running {
            child: cmd.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill on our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits (at most 10 s); the output and how long it took.
    fn terminate(self) -> (Output, Duration) {
        self.stop(libc::SIGTERM)
    }

    /// Sends `sig` and waits (at most 10 s); the output and how long it took.
    fn stop(mut self, sig: libc::c_int) -> (Output, Duration) {
        let start = Instant::now();
        self.signal(sig);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no exit 10 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = start.elapsed();
        use std::os::unix::process::ExitStatusExt;
        let out = Output {
            stdout: std::fs::read_to_string(&self.stdout).unwrap(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap(),
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap()),
        };
        (out, took)
    }

    fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `ready` until it holds; how long that took. A functional wait with a
/// 10 s deadline, not a timing assertion.
#[track_caller]
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "waited 10 s for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// `program` sealed, in `dir`, with sesto on PATH for git's merge driver.
fn in_dir(env: &TestEnv, dir: &Path, program: &str, args: &[&str]) -> Command {
    let mut cmd = env.command(program);
    cmd.current_dir(dir)
        .env("PATH", path_with_sesto())
        .args(args);
    cmd
}

#[test]
fn watch_follows_a_pull_from_another_clone_and_stops_on_sigterm() {
    if !require_tool("git") {
        return;
    }
    let env = TestEnv::new();
    tls_store(&env);
    let remote = env.root.join("remote.git");
    env.git(&["init", "--quiet", "--bare", s(&remote)])
        .assert_success();
    env.git(&["remote", "add", "origin", s(&remote)])
        .assert_success();
    env.git(&["push", "--quiet", "-u", "origin", "HEAD"])
        .assert_success();
    let server = env.root.join("server");
    run_cmd(in_dir(
        &env,
        &env.root,
        "git",
        &["clone", "--quiet", s(&remote), s(&server)],
    ))
    .assert_success();
    run_cmd(in_dir(
        &env,
        &server,
        env!("CARGO_BIN_EXE_sesto"),
        &["setup-git"],
    ))
    .assert_success();

    let dir = env.root.join("run/app");
    // --poll 600: what the test sees comes from the watch, not the fallback.
    let watcher = Running::start(
        in_dir(
            &env,
            &server,
            env!("CARGO_BIN_EXE_sesto"),
            &[
                "materialize",
                "--watch",
                "--poll",
                "600",
                "prod/tls",
                s(&dir),
            ],
        ),
        &env.root,
        "watch",
    );
    wait_for("the first write", || dir.join("old.pem").exists());
    assert_eq!(std::fs::read(dir.join("key.pem")).unwrap(), KEY);

    // One directory, one materializer.
    let out = env.run(&["materialize", "prod/tls", s(&dir)]);
    out.assert_code(1);
    assert!(out.stderr.contains("lock is held"), "{}", out.stderr);

    // Another clone changes a secret and removes one; the server pulls.
    env.run_stdin(&["set", "prod/tls/key.pem"], NEW_KEY)
        .assert_success();
    env.run(&["rm", "prod/tls/old.pem"]).assert_success();
    env.git(&["push", "--quiet"]).assert_success();
    run_cmd(in_dir(
        &env,
        &server,
        "git",
        &["pull", "--ff-only", "--quiet"],
    ))
    .assert_success();
    let latency = wait_for("the pulled change in the files", || {
        std::fs::read(dir.join("key.pem")).unwrap() == NEW_KEY && !dir.join("old.pem").exists()
    });
    eprintln!("materialize --watch: files updated {latency:?} after `git pull` returned");
    assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), CERT);
    assert_eq!(mode(&dir.join("key.pem")), 0o600);

    // Garbage in the checkout (a merge gone wrong): logged, the files stay.
    for entry in walkdir::WalkDir::new(server.join(".sesto/nodes")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            std::fs::write(entry.path(), "<<<<<<< garbage\n").unwrap();
        }
    }
    wait_for("the failed re-read to be logged", || {
        watcher.stderr_now().contains("stay as they were")
    });
    assert_eq!(std::fs::read(dir.join("key.pem")).unwrap(), NEW_KEY);
    assert_eq!(names(&dir), [".sesto-materialized", "cert.pem", "key.pem"]);
    run_cmd(in_dir(&env, &server, "git", &["checkout", "--", ".sesto"])).assert_success();

    let (out, took) = watcher.terminate();
    eprintln!("materialize --watch: exited {took:?} after SIGTERM");
    out.assert_success();
    assert_no_values(&snapshot_text(&out));
    assert!(
        out.stdout
            .contains(&format!("wrote {}", s(&dir.join("key.pem")))),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("removed {}", s(&dir.join("old.pem")))),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("stopped; the files stay"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read(dir.join("key.pem")).unwrap(),
        NEW_KEY,
        "files stay after stop"
    );
}

#[test]
fn watch_survives_sesto_dir_replaced_restores_files_on_the_poll_and_stops_on_sigint() {
    let env = TestEnv::new();
    tls_store(&env);
    let sesto = |args: &[&str]| {
        let mut cmd = env.sesto(args);
        cmd.env("PATH", path_with_sesto());
        cmd
    };
    let dir = env.root.join("app");
    let watcher = Running::start(
        sesto(&["materialize", "--watch", "--poll", "1", "prod/tls", s(&dir)]),
        &env.root,
        "watch",
    );
    wait_for("the first write", || dir.join("old.pem").exists());

    // Someone deletes a file: no store change, so the periodic re-read brings it back.
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let back = wait_for("the poll to restore key.pem", || {
        dir.join("key.pem").exists()
    });
    eprintln!("materialize --watch --poll 1: deleted file back after {back:?}");
    assert_eq!(std::fs::read(dir.join("key.pem")).unwrap(), KEY);

    // A checkout that removes .sesto/ and brings it back: logged, files kept,
    // and changes after it are seen (the new .sesto/ is watched again).
    std::fs::rename(env.repo.join(".sesto"), env.root.join("sesto-away")).unwrap();
    wait_for("the failed re-read to be logged", || {
        watcher.stderr_now().contains("stay as they were")
    });
    assert_eq!(std::fs::read(dir.join("cert.pem")).unwrap(), CERT);
    env.git(&["checkout", "--", ".sesto"]).assert_success();
    env.run_stdin(&["set", "prod/tls/key.pem"], NEW_KEY)
        .assert_success();
    wait_for("the change after .sesto/ came back", || {
        std::fs::read(dir.join("key.pem")).unwrap() == NEW_KEY
    });

    let (out, took) = watcher.stop(libc::SIGINT);
    eprintln!("materialize --watch: exited {took:?} after SIGINT");
    out.assert_success();
    assert_no_values(&snapshot_text(&out));
    assert_eq!(
        names(&dir),
        [".sesto-materialized", "cert.pem", "key.pem", "old.pem"]
    );
}

#[path = "materialize/systemd.rs"]
mod systemd;
