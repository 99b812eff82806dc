//! `sesto materialize`: secrets as files for services. One shot writes one 0600
//! file per secret atomically and leaves unchanged files alone; hostile names and
//! directories are refused; `--watch` follows a real `git pull` from a bare remote
//! and stops cleanly on SIGTERM; and the systemd units in `examples/materialize/`
//! are run line by line as systemd would run them.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{insta_settings, require_tool, run_cmd, snapshot_text, KeyKind, TestEnv};

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
#[cfg_attr(
    missing_util_linux,
    ignore = "needs setpriv, setsid, unshare: apt-get install util-linux"
)]
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
        require_tool("unshare");
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

#[path = "materialize/watch.rs"]
mod watch;

#[path = "materialize/systemd.rs"]
mod systemd;
