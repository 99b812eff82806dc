//! Many clones at once: 8 processes, each with its own clone of one bare
//! repository, add secrets to shared folders and edit shared ones, running
//! `sesto sync` after every change. At the end every clone holds every
//! secret with its last value, `fsck` and `verify` are clean, and the only
//! `conflict` entries are for the one secret all clones really edited (an
//! edit made after pulling another's is an ordinary overwrite).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{path_with_sesto, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv};

const CLONES: usize = 8;
const SECRETS: usize = 25;
/// The whole run stops (and fails) after this long.
const DEADLINE: Duration = Duration::from_secs(900);

fn sesto(env: &TestEnv, dir: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut cmd = env.sesto(args);
    cmd.current_dir(dir).env("PATH", path_with_sesto());
    match input {
        Some(i) => run_cmd_stdin(cmd, i),
        None => run_cmd(cmd),
    }
}

fn git(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let mut cmd = env.command("git");
    cmd.current_dir(dir)
        .env("PATH", path_with_sesto())
        .args(args);
    run_cmd(cmd)
}

#[test]
fn eight_clones_sync_at_once_and_lose_nothing() {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    let remote = env.root.join("remote.git");
    git(
        &env,
        &env.root,
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    )
    .assert_success();
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    for f in 0..4 {
        env.run_stdin(&["set", &format!("shared/f{f}/seed")], b"seed")
            .assert_success();
    }
    env.run_stdin(&["set", "shared/hot"], b"start")
        .assert_success();
    git(
        &env,
        &env.repo,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    )
    .assert_success();
    git(
        &env,
        &env.repo,
        &["push", "--quiet", "-u", "origin", "HEAD"],
    )
    .assert_success();
    let clones: Vec<PathBuf> = (0..CLONES)
        .map(|i| env.root.join(format!("clone{i}")))
        .collect();
    for dir in &clones {
        git(
            &env,
            &env.root,
            &[
                "clone",
                "--quiet",
                remote.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        )
        .assert_success();
        sesto(&env, dir, &["setup-git"], None).assert_success();
    }

    let start = Instant::now();
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = clones
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                let env = &env;
                s.spawn(move || -> Result<(), String> {
                    for j in 0..SECRETS {
                        if start.elapsed() > DEADLINE {
                            return Err(format!("clone {i}: out of time at {j}"));
                        }
                        let path = format!("shared/f{}/c{i}-s{j:02}", j % 4);
                        let out = sesto(
                            env,
                            dir,
                            &["set", &path],
                            Some(format!("v{i}-{j}").as_bytes()),
                        );
                        if !out.success() {
                            return Err(format!("clone {i} set {path}: {}", out.stderr));
                        }
                        // Edits of its own secret, already shared, and of one all share.
                        if j % 5 == 4 {
                            let own = format!("shared/f{}/c{i}-s00", 0);
                            let value = format!("edited{i}-{j}");
                            let out = sesto(env, dir, &["set", &own], Some(value.as_bytes()));
                            if !out.success() {
                                return Err(format!("clone {i} edit: {}", out.stderr));
                            }
                        }
                        if j == 12 {
                            let out = sesto(
                                env,
                                dir,
                                &["set", "shared/hot"],
                                Some(format!("hot{i}").as_bytes()),
                            );
                            if !out.success() {
                                return Err(format!("clone {i} hot: {}", out.stderr));
                            }
                        }
                        let out = sesto(env, dir, &["sync"], None);
                        if !out.success() {
                            return Err(format!(
                                "clone {i} sync after {j}: {}",
                                common::snapshot_text(&out)
                            ));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().unwrap().err())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "stress: {CLONES} clones x {SECRETS} changes in {:?}",
        start.elapsed()
    );

    // Final syncs, twice round, so every clone has everything.
    for _ in 0..2 {
        for dir in &clones {
            sesto(&env, dir, &["sync"], None).assert_success();
        }
    }
    for (k, dir) in clones.iter().enumerate() {
        let tree = sesto(&env, dir, &["find", "shared/"], None);
        tree.assert_success();
        for i in 0..CLONES {
            for j in 0..SECRETS {
                let path = format!("shared/f{}/c{i}-s{j:02}", j % 4);
                let want = if j == 0 {
                    format!("edited{i}-24")
                } else {
                    format!("v{i}-{j}")
                };
                let out = sesto(&env, dir, &["get", &path], None);
                assert_eq!(out.stdout, want, "clone {k}: {path}: {}", out.stderr);
            }
        }
        // Conflict copies only where all clones edited one secret.
        for line in tree.stdout.lines() {
            if line.contains("(conflict") {
                assert!(
                    line.starts_with("shared/hot (conflict"),
                    "clone {k}: unexpected {line}"
                );
            }
        }
        sesto(&env, dir, &["fsck"], None).assert_success();
        sesto(&env, dir, &["verify"], None).assert_success();
    }
    // The secret all clones edited holds one of their values; where two edits
    // were concurrent, the other is kept beside it, never dropped silently.
    let hot = sesto(&env, &clones[0], &["get", "shared/hot"], None).stdout;
    assert!(
        (0..CLONES).any(|i| hot == format!("hot{i}")),
        "shared/hot is {hot:?}"
    );
}
