//! Crash safety: a write killed at any step leaves the store readable as before or
//! as after, never a mix, and the next sesto process finishes the job.
//!
//! What the design promises, and what these tests hold it to:
//! - killed before the journal is durable (`after-temp`): the old state, plus temp
//!   files that `fsck` reports as fixable and the next write (or `fsck --fix`)
//!   removes;
//! - killed once the journal is durable (every later step): the new state, as soon
//!   as the next sesto process of any kind (here `tree`) has replayed the journal,
//!   with the change staged in the index; the commit of an auto-committing store
//!   follows with the next write;
//! - in every case, after the next write: `fsck` clean and `git status` empty.
//!
//! The failpoints (`SESTO_FAILPOINT`) abort the process at each step of
//! `write_change`; a second test SIGKILLs a real `sesto set` of a 1 MiB value at
//! times spread over its whole run.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{snapshot_text, KeyKind, Output, TestEnv};

const FAILPOINTS: [&str; 6] = [
    "after-temp",
    "after-journal",
    "after-first-rename",
    "after-renames",
    "after-stage",
    "after-commit",
];

/// Exit code of a process killed by SIGABRT, as the harness reports it.
const ABORTED: i32 = 128 + libc::SIGABRT;
/// Exit code of a process killed by SIGKILL.
const KILLED: i32 = 128 + libc::SIGKILL;

/// Path → value for secrets, `None` for folders: everything a reader can see.
type Contents = BTreeMap<String, Option<String>>;

/// The operations interrupted, each touching several files.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// `set new/deep/secret`: two new folders, a new secret and the root.
    Create,
    /// `set prod/db/password`: one existing secret.
    Change,
    /// `mv prod/db/user staging/api`: the old and the new parent.
    Move,
    /// `rm -r old`: the root rewritten, four node files removed.
    RemoveTree,
    /// `migrate` of a store made in format 1: every node file moved, the
    /// roster rewritten.
    Migrate,
}

impl Op {
    fn args(self) -> &'static [&'static str] {
        match self {
            Op::Create => &["set", "new/deep/secret"],
            Op::Change => &["set", "prod/db/password"],
            Op::Move => &["mv", "prod/db/user", "staging/api"],
            Op::RemoveTree => &["rm", "-r", "old"],
            Op::Migrate => &["migrate"],
        }
    }

    fn stdin(self) -> &'static [u8] {
        match self {
            Op::Create => b"created-value",
            Op::Change => b"changed-password",
            Op::Move | Op::RemoveTree | Op::Migrate => b"",
        }
    }

    /// What a reader sees once the operation is complete.
    fn apply(self, before: &Contents) -> Contents {
        let mut after = before.clone();
        match self {
            Op::Create => {
                after.insert("new".into(), None);
                after.insert("new/deep".into(), None);
                after.insert("new/deep/secret".into(), Some("created-value".into()));
            }
            Op::Change => {
                after.insert("prod/db/password".into(), Some("changed-password".into()));
            }
            Op::Move => {
                let value = after.remove("prod/db/user").unwrap();
                after.insert("staging/api/user".into(), value);
            }
            Op::RemoveTree => after.retain(|path, _| path != "old" && !path.starts_with("old/")),
            Op::Migrate => {}
        }
        after
    }

    /// The store format before and after the operation.
    fn formats(self) -> (u32, u32) {
        match self {
            Op::Migrate => (1, 2),
            _ => (2, 2),
        }
    }
}

/// A store with secrets in several folders; returns it and what it holds.
fn setup() -> (TestEnv, Contents) {
    setup_in(2)
}

/// [`setup`] in store format `format`.
fn setup_in(format: u32) -> (TestEnv, Contents) {
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice", "--format", &format.to_string()])
        .assert_success();
    let mut contents = Contents::new();
    for (path, value) in [
        ("prod/db/password", "old-password"),
        ("prod/db/user", "old-user"),
        ("staging/api/token", "old-token"),
        ("old/a", "old-a"),
        ("old/sub/b", "old-b"),
    ] {
        env.run_stdin(&["set", path], value.as_bytes())
            .assert_success();
        contents.insert(path.into(), Some(value.into()));
    }
    for folder in [
        "prod",
        "prod/db",
        "staging",
        "staging/api",
        "old",
        "old/sub",
    ] {
        contents.insert(folder.into(), None);
    }
    assert_eq!(read_contents(&env), contents, "the fixture reads back");
    assert_eq!(
        env.git(&["config", "sesto.commit"]).stdout.trim(),
        "true",
        "init in an empty repository turns on commits (after-commit needs it)"
    );
    (env, contents)
}

/// `sesto …` that cannot leave a core file in the repository when it aborts.
fn sesto_no_core(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = env.sesto(args);
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(|| {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &none);
            Ok(())
        });
    }
    cmd
}

/// Everything a reader sees, through the CLI: `tree --json`, then `get` of every
/// secret. Every command must succeed: a crash may leave old or new, never an error.
#[track_caller]
fn read_contents(env: &TestEnv) -> Contents {
    let out = env.run(&["tree", "--json"]);
    assert_eq!(out.code, 0, "tree failed:\n{}", snapshot_text(&out));
    let tree: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let mut contents = Contents::new();
    fn walk(node: &serde_json::Value, at: &str, env: &TestEnv, out: &mut Contents) {
        for child in node["children"].as_array().unwrap() {
            let name = child["name"].as_str().unwrap();
            let path = if at.is_empty() {
                name.to_string()
            } else {
                format!("{at}/{name}")
            };
            if child["kind"] == "folder" {
                out.insert(path.clone(), None);
                walk(child, &path, env, out);
            } else {
                let got = env.run(&["get", &path]);
                assert_eq!(got.code, 0, "get {path} failed:\n{}", snapshot_text(&got));
                out.insert(path, Some(got.stdout));
            }
        }
    }
    walk(&tree, "", env, &mut contents);
    contents
}

fn fsck_json(env: &TestEnv, fix: bool) -> (Output, serde_json::Value) {
    let args: &[&str] = if fix {
        &["fsck", "--fix", "--json"]
    } else {
        &["fsck", "--json"]
    };
    let out = env.run(args);
    let json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("fsck --json: {e}\n{}", snapshot_text(&out)));
    (out, json)
}

#[track_caller]
fn assert_fsck_clean(env: &TestEnv, when: &str) {
    let (out, json) = fsck_json(env, false);
    assert_eq!(
        (out.code, json["problems"].as_array().unwrap().len()),
        (0, 0),
        "fsck {when}:\n{}",
        snapshot_text(&out)
    );
}

/// Temp files left under `.sesto/`, relative to the repository.
fn temp_files(env: &TestEnv) -> Vec<String> {
    fn walk(dir: &Path, repo: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, repo, out);
            } else if entry
                .file_name()
                .to_string_lossy()
                .starts_with(sesto::store::journal::TEMP_MARK)
            {
                out.push(path.strip_prefix(repo).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&env.repo.join(".sesto"), &env.repo, &mut out);
    out.sort();
    out
}

fn git_lines(env: &TestEnv, args: &[&str]) -> Vec<String> {
    let out = env.git(args);
    out.assert_success();
    out.stdout.lines().map(str::to_string).collect()
}

fn head(env: &TestEnv) -> String {
    env.git(&["rev-parse", "HEAD"]).stdout.trim().to_string()
}

/// Lock files git and libgit2 leave in `.git` while they write the index,
/// `HEAD`, a ref or the config.
fn git_locks(env: &TestEnv) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(env.repo.join(".git"))
        .into_iter()
        .filter_entry(|e| e.file_name() != "objects")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".lock"))
        .map(|e| e.into_path())
        .collect()
}

fn journal_pending(env: &TestEnv) -> bool {
    env.repo.join(".git/sesto/journal").exists()
}

/// Interrupts `op` at `failpoint` and checks everything the store promises.
fn crash_case(op: Op, failpoint: &str) {
    let (env, before) = setup_in(op.formats().0);
    let after = op.apply(&before);
    let head_before = head(&env);
    let journaled = failpoint != "after-temp";

    let mut cmd = sesto_no_core(&env, op.args());
    cmd.env("SESTO_FAILPOINT", failpoint);
    let out = common::run_cmd_stdin(cmd, op.stdin());
    assert_eq!(
        out.code,
        ABORTED,
        "{op:?} should abort at {failpoint}:\n{}",
        snapshot_text(&out)
    );

    // What the crash left, before any sesto process looks at it.
    assert_eq!(
        journal_pending(&env),
        journaled,
        "journal after {failpoint}"
    );
    if failpoint == "after-temp" || failpoint == "after-journal" {
        assert!(
            !temp_files(&env).is_empty(),
            "{failpoint}: the new files should be waiting as temp files"
        );
    }
    assert_eq!(
        head(&env) != head_before,
        failpoint == "after-commit",
        "only a crash after the commit has moved HEAD"
    );

    // The next reader sees the complete old or the complete new state.
    let expected = if journaled { &after } else { &before };
    assert_eq!(
        &read_contents(&env),
        expected,
        "{op:?} killed at {failpoint}: readers must see the {} state",
        if journaled { "new" } else { "old" }
    );
    assert!(!journal_pending(&env), "the reader replayed the journal");
    let format = if journaled {
        op.formats().1
    } else {
        op.formats().0
    };
    assert_eq!(
        common::store_layout(&env.repo),
        (format, true),
        "{op:?} killed at {failpoint}: the roster's format and where the files are"
    );

    // The index matches the work tree; the only untracked files are the temp files
    // of a crash before the journal.
    let unstaged = git_lines(&env, &["diff", "--name-only"]);
    assert!(unstaged.is_empty(), "unstaged changes: {unstaged:?}");
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    let temps = temp_files(&env);
    match failpoint {
        "after-temp" => {
            let expected: Vec<String> = temps.iter().map(|t| format!("?? {t}")).collect();
            assert_eq!(status, expected, "after-temp leaves only temp files");
            assert!(!temps.is_empty());
        }
        _ => {
            // The replaying reader stages the change and, in this auto-commit
            // store, commits it: one commit for the interrupted change, never two.
            assert!(temps.is_empty(), "replay left temp files: {temps:?}");
            assert!(
                status.is_empty(),
                "{failpoint}: replayed but not committed: {status:?}"
            );
            let commits = git_lines(&env, &["rev-list", &format!("{head_before}..HEAD")]);
            assert_eq!(
                commits.len(),
                1,
                "{failpoint}: the interrupted change is one commit"
            );
        }
    }

    // fsck: clean, except for the temp files of a crash before the journal.
    let (fsck, json) = fsck_json(&env, false);
    let problems = json["problems"].as_array().unwrap();
    if journaled {
        assert_eq!(
            (fsck.code, problems.len()),
            (0, 0),
            "fsck after {failpoint}:\n{}",
            snapshot_text(&fsck)
        );
    } else {
        assert_eq!(fsck.code, 1, "{}", snapshot_text(&fsck));
        assert_eq!(problems.len(), temps.len(), "{}", snapshot_text(&fsck));
        for p in problems {
            assert!(
                p["fixable"] == true && p["detail"].as_str().unwrap().contains("temporary"),
                "after-temp: {p}"
            );
        }
    }

    // The next write finishes the job: temp files gone, everything committed.
    let head_before_next = head(&env);
    env.run_stdin(&["set", "next/write"], b"next-value")
        .assert_success();
    let mut expected = expected.clone();
    expected.insert("next".into(), None);
    expected.insert("next/write".into(), Some("next-value".into()));
    assert_eq!(read_contents(&env), expected, "after the next write");
    assert_fsck_clean(&env, &format!("after {failpoint} and the next write"));
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "after the next write: {status:?}");
    let commits = git_lines(&env, &["rev-list", &format!("{head_before_next}..HEAD")]);
    assert_eq!(commits.len(), 1, "the next write makes one commit");
}

macro_rules! crash_tests {
    ($($name:ident: $op:expr, $failpoint:literal;)*) => {
        $(
            #[test]
            fn $name() {
                crash_case($op, $failpoint);
            }
        )*
        /// Every failpoint of write_change is covered for every operation.
        #[test]
        fn every_failpoint_is_covered() {
            let covered: Vec<&str> = vec![$($failpoint),*];
            for fp in FAILPOINTS {
                assert_eq!(covered.iter().filter(|c| **c == fp).count(), 5, "{fp}");
            }
            assert_eq!(covered.len(), FAILPOINTS.len() * 5);
        }
    };
}

crash_tests! {
    create_after_temp: Op::Create, "after-temp";
    create_after_journal: Op::Create, "after-journal";
    create_after_first_rename: Op::Create, "after-first-rename";
    create_after_renames: Op::Create, "after-renames";
    create_after_stage: Op::Create, "after-stage";
    create_after_commit: Op::Create, "after-commit";
    change_after_temp: Op::Change, "after-temp";
    change_after_journal: Op::Change, "after-journal";
    change_after_first_rename: Op::Change, "after-first-rename";
    change_after_renames: Op::Change, "after-renames";
    change_after_stage: Op::Change, "after-stage";
    change_after_commit: Op::Change, "after-commit";
    move_after_temp: Op::Move, "after-temp";
    move_after_journal: Op::Move, "after-journal";
    move_after_first_rename: Op::Move, "after-first-rename";
    move_after_renames: Op::Move, "after-renames";
    move_after_stage: Op::Move, "after-stage";
    move_after_commit: Op::Move, "after-commit";
    remove_tree_after_temp: Op::RemoveTree, "after-temp";
    remove_tree_after_journal: Op::RemoveTree, "after-journal";
    remove_tree_after_first_rename: Op::RemoveTree, "after-first-rename";
    remove_tree_after_renames: Op::RemoveTree, "after-renames";
    remove_tree_after_stage: Op::RemoveTree, "after-stage";
    remove_tree_after_commit: Op::RemoveTree, "after-commit";
    migrate_after_temp: Op::Migrate, "after-temp";
    migrate_after_journal: Op::Migrate, "after-journal";
    migrate_after_first_rename: Op::Migrate, "after-first-rename";
    migrate_after_renames: Op::Migrate, "after-renames";
    migrate_after_stage: Op::Migrate, "after-stage";
    migrate_after_commit: Op::Migrate, "after-commit";
}

#[test]
fn fsck_fix_cleans_up_after_a_crash_before_the_journal() {
    let (env, before) = setup();
    let mut cmd = sesto_no_core(&env, Op::Create.args());
    cmd.env("SESTO_FAILPOINT", "after-temp");
    let out = common::run_cmd_stdin(cmd, Op::Create.stdin());
    assert_eq!(out.code, ABORTED, "{}", snapshot_text(&out));
    let temps = temp_files(&env);
    assert_eq!(
        temps.len(),
        4,
        "two folders, a secret and the root: {temps:?}"
    );

    let (fix, json) = fsck_json(&env, true);
    assert_eq!(fix.code, 0, "{}", snapshot_text(&fix));
    let mut fixed: Vec<String> = json["fixed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    fixed.sort();
    assert_eq!(fixed, temps);
    assert!(temp_files(&env).is_empty());
    assert_fsck_clean(&env, "after fsck --fix");
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "{status:?}");
    assert_eq!(read_contents(&env), before);
}

#[test]
fn a_write_waits_for_nothing_after_a_crash_holding_the_lock() {
    // The lock is an flock: it dies with its process, so a crash never leaves the
    // store locked. A write right after an abort must not hang.
    let (env, _) = setup();
    let mut cmd = sesto_no_core(&env, Op::Change.args());
    cmd.env("SESTO_FAILPOINT", "after-journal");
    assert_eq!(common::run_cmd_stdin(cmd, b"x").code, ABORTED);
    let start = Instant::now();
    env.run_stdin(&["set", "prod/db/password"], b"y")
        .assert_success();
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(env.run(&["get", "prod/db/password"]).stdout, "y");
    assert_fsck_clean(&env, "after the write");
}

/// A printable value of `len` bytes, different on every call.
fn random_text(len: usize) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    (0..len)
        .map(|_| HEX[rand::random::<u8>() as usize % 16] as char)
        .collect()
}

#[test]
fn sigkill_at_random_times_during_set_leaves_old_or_new() {
    // Big enough that a debug build spends most of a second in a write, small enough
    // that twenty rounds of set, get and fsck stay within half a minute.
    const SIZE: usize = 1 << 20;
    const ROUNDS: u32 = 20;
    let (env, _) = setup();
    let file = env.root.join("value");
    let set_file = |value: &str| {
        fs::write(&file, value).unwrap();
        sesto_no_core(
            &env,
            &["set", "big/blob", "--file", &file.display().to_string()],
        )
    };
    let get_blob = || {
        let out = env.run(&["get", "big/blob"]);
        assert_eq!(out.code, 0, "get failed: {}", out.stderr);
        out.stdout
    };

    // A first value, and how long a whole `set` of a new value takes.
    let mut current = random_text(SIZE);
    common::run_cmd(set_file(&current)).assert_success();
    current = random_text(SIZE);
    let start = Instant::now();
    common::run_cmd(set_file(&current)).assert_success();
    let full = start.elapsed();
    eprintln!("a whole set of {SIZE} bytes takes {full:?}");

    let (mut killed, mut landed) = (0, 0);
    for round in 0..ROUNDS {
        let next = random_text(SIZE);
        let mut cmd = set_file(&next);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // Spread the kills over a whole run (start-up, encoding, the temp
        // files, the journal, the renames, the index and the commit), denser towards
        // the end, where the files are written.
        let delay = full.mul_f64((f64::from(round) / f64::from(ROUNDS)).sqrt());
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        assert!(
            code == 0 || code == KILLED,
            "round {round}: set exited {code}"
        );
        // Killed while `git update-index` ran, that git lives on and finishes
        // its index write. Killed inside a lock-protected write of its own
        // (the branch ref as HEAD moves), sesto leaves the lock behind, as a
        // killed git does. Only a lock still there after ample time is a dead
        // writer's, which a person removes as git says to. (What sesto does
        // while one is there: a_locked_git_index_does_not_make_the_store_unreadable.)
        let waited = Instant::now();
        while !git_locks(&env).is_empty() && waited.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for lock in git_locks(&env) {
            eprintln!("round {round}: a stale {}; removing it", lock.display());
            fs::remove_file(&lock).unwrap();
        }
        let got = get_blob();
        let outcome = if got == next {
            landed += 1;
            current = next;
            "new"
        } else {
            assert!(
                got == current,
                "round {round} (killed after {delay:?}): the value is neither old nor new \
                 ({} bytes)",
                got.len()
            );
            assert_ne!(code, 0, "round {round}: set succeeded but the value is old");
            "old"
        };
        if code == KILLED {
            killed += 1;
        }
        eprintln!("round {round}: killed after {delay:?} (exit {code}): {outcome}");

        // Nothing else was touched, and only fixable leftovers remain.
        assert_eq!(env.run(&["get", "prod/db/password"]).stdout, "old-password");
        let (fsck, json) = fsck_json(&env, false);
        for p in json["problems"].as_array().unwrap() {
            assert!(
                p["fixable"] == true && p["detail"].as_str().unwrap().contains("temporary"),
                "round {round}: fsck: {}",
                snapshot_text(&fsck)
            );
        }
        let unstaged = git_lines(&env, &["diff", "--name-only"]);
        assert!(unstaged.is_empty(), "round {round}: unstaged: {unstaged:?}");
    }
    eprintln!("{killed} of {ROUNDS} rounds killed, {landed} landed the new value");
    assert!(killed >= 5, "the kills did not land inside the writes");

    // The next write cleans up and commits; the store is whole.
    let last = common::run_cmd_stdin(sesto_no_core(&env, &["set", "after"]), b"v");
    last.assert_success();
    assert_eq!(get_blob(), current);
    assert_fsck_clean(&env, "after the kills and a write");
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(
        status.is_empty(),
        "{status:?}\nthe last set said: {}\nlog: {:?}",
        last.stderr,
        git_lines(&env, &["log", "--oneline", "-5"])
    );
}

#[test]
fn a_locked_git_index_does_not_make_the_store_unreadable() {
    // `.git/index.lock` exists while any git process writes the index (an editor's
    // `git status` does) and stays behind when one is killed, as a crash of sesto
    // inside libgit2's index write would leave it. Readers must still read, and the
    // store must heal once the lock is gone.
    let (env, before) = setup();
    let lock = env.repo.join(".git/index.lock");
    let mut failures = Vec::new();

    // 1. Killed after the renames, before the index: then the lock appears.
    let mut cmd = sesto_no_core(&env, Op::Change.args());
    cmd.env("SESTO_FAILPOINT", "after-renames");
    assert_eq!(common::run_cmd_stdin(cmd, Op::Change.stdin()).code, ABORTED);
    fs::write(&lock, b"").unwrap();
    let after = Op::Change.apply(&before);
    for args in [&["get", "prod/db/password"][..], &["ls", "prod/db"]] {
        let out = env.run(args);
        if out.code != 0 {
            failures.push(format!(
                "with a pending journal and a locked index, sesto {args:?} fails:\n{}",
                snapshot_text(&out)
            ));
        } else if args[0] == "get" && out.stdout != "changed-password" {
            failures.push(format!("get shows {:?}, not the new value", out.stdout));
        }
    }

    // 2. With the lock gone the journal is replayed; then a write while the index
    //    is locked again: refused, or done; never reported failed yet done.
    fs::remove_file(&lock).unwrap();
    assert_eq!(read_contents(&env), after);
    fs::write(&lock, b"").unwrap();
    let set = env.run_stdin(&["set", "prod/db/user"], b"locked-user");
    fs::remove_file(&lock).unwrap();
    let contents = read_contents(&env);
    let mut done = after.clone();
    done.insert("prod/db/user".into(), Some("locked-user".into()));
    if set.code == 0 {
        if contents != done {
            failures.push(format!("set succeeded but the store holds {contents:?}"));
        }
    } else if contents != after {
        failures.push(format!(
            "set failed (exit {}) yet changed the store: prod/db/user is now {:?}\n{}",
            set.code,
            contents.get("prod/db/user"),
            snapshot_text(&set)
        ));
    }

    // 3. With the lock gone, the next write stages and commits everything.
    env.run_stdin(&["set", "next/write"], b"next-value")
        .assert_success();
    assert_fsck_clean(&env, "after the lock is gone and a write");
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "{status:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_stale_branch_lock_leaves_the_change_staged_and_the_next_write_commits_it() {
    // A process killed while it moves the branch (git, or sesto at the end of
    // a commit) leaves `refs/heads/<branch>.lock`. The change is saved and
    // staged; sesto says it is not committed and why; once a person removes
    // the lock, the next write commits the earlier change, then its own.
    let (env, before) = setup();
    let branch = env.git(&["symbolic-ref", "--short", "HEAD"]).stdout;
    let lock = env
        .repo
        .join(format!(".git/refs/heads/{}.lock", branch.trim()));
    fs::write(&lock, b"").unwrap();
    let head_before = head(&env);
    let set = env.run_stdin(Op::Change.args(), Op::Change.stdin());
    assert_eq!(set.code, 0, "{}", snapshot_text(&set));
    assert!(
        set.stderr.contains("staged but not committed") && set.stderr.contains(".lock"),
        "{}",
        snapshot_text(&set)
    );
    assert_eq!(head(&env), head_before);
    let after = Op::Change.apply(&before);
    assert_eq!(read_contents(&env), after);
    let staged = git_lines(&env, &["diff", "--cached", "--name-only"]);
    assert!(!staged.is_empty(), "the change is staged");

    fs::remove_file(&lock).unwrap();
    env.run_stdin(&["set", "next/write"], b"next-value")
        .assert_success();
    let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
    assert!(status.is_empty(), "{status:?}");
    assert_eq!(
        git_lines(&env, &["rev-list", &format!("{head_before}..HEAD")]).len(),
        2,
        "the earlier change is committed first, then the new one"
    );
    assert_fsck_clean(&env, "after the lock is gone and a write");
}

/// Secrets in the large store: enough that a rotation of them all is written
/// in place from the journal (more than `sesto::store::journal::IN_PLACE_FROM` files).
const LARGE: usize = 300;

/// A store of [`LARGE`] secrets in three folders, built through the library
/// (one commit), with bob granted the root; returns bob's key.
fn setup_large() -> (TestEnv, std::path::PathBuf) {
    const { assert!(LARGE > sesto::store::journal::IN_PLACE_FROM) };
    let env = TestEnv::new();
    env.init_repo();
    let alice = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    let ids = sesto::identities_from_text(&fs::read_to_string(&alice).unwrap()).unwrap();
    let store = sesto::Store::open(
        &sesto::OpenOptions {
            start: Some(env.repo.clone()),
            // The test's trust state lives in its sealed XDG_STATE_HOME.
            trust: sesto::store::trust::TrustMode::Skip,
        },
        ids,
    )
    .unwrap();
    let mut tx = store.transaction().unwrap();
    for n in 0..LARGE {
        let path = sesto::SPath::parse(&format!("f{}/s{n:03}", n % 3)).unwrap();
        tx.set(&path, format!("value-{n}").as_bytes()).unwrap();
    }
    tx.commit().unwrap();
    drop(store);
    let bob_pub = format!("{}.pub", bob.display());
    env.run(&["member", "add", "bob", "--key-file", &bob_pub])
        .assert_success();
    env.run(&["grant", "bob", "/"]).assert_success();
    (env, bob)
}

/// Every node file's bytes, by path.
fn node_files(env: &TestEnv) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(env.repo.join(".sesto/nodes"))
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(&env.repo).unwrap();
            (rel.display().to_string(), fs::read(e.path()).unwrap())
        })
        .collect()
}

/// A rotation over hundreds of nodes writes them in place from the journal
/// instead of through temp files. Killed at each step, it leaves the old state
/// (before the journal) or the new one (after), no temp file ever, and the
/// next reader finishes it: bob gone, every node rewritten under a new key,
/// one commit, fsck clean.
#[test]
fn a_large_rotation_killed_at_each_step_is_old_or_new() {
    for failpoint in FAILPOINTS {
        let (env, bob) = setup_large();
        let head_before = head(&env);
        let files_before = node_files(&env);
        let tree_before = env.run(&["tree", "--json"]);
        tree_before.assert_success();
        let journaled = failpoint != "after-temp";

        let mut cmd = sesto_no_core(&env, &["member", "remove", "bob"]);
        cmd.env("SESTO_FAILPOINT", failpoint);
        let out = common::run_cmd_stdin(cmd, b"");
        assert_eq!(out.code, ABORTED, "{failpoint}:\n{}", snapshot_text(&out));
        assert_eq!(
            journal_pending(&env),
            journaled,
            "journal after {failpoint}"
        );
        assert!(temp_files(&env).is_empty(), "{failpoint}: no temp files");
        if !journaled {
            assert_eq!(node_files(&env), files_before, "nothing written yet");
        }

        // The next reader replays the journal and sees all of one state.
        let members = env.run(&["member", "list", "--json"]);
        members.assert_success();
        assert!(
            !journal_pending(&env),
            "{failpoint}: the reader replayed it"
        );
        assert_eq!(
            members.stdout.contains("\"bob\""),
            !journaled,
            "{failpoint}: bob is a member only in the old state"
        );
        let tree = env.run(&["tree", "--json"]);
        assert_eq!(tree.stdout, tree_before.stdout, "{failpoint}: same tree");
        for n in [0, 149, LARGE - 1] {
            let got = env.run(&["get", &format!("f{}/s{n:03}", n % 3)]);
            assert_eq!(got.stdout, format!("value-{n}"), "{failpoint}");
        }
        assert_fsck_clean(&env, &format!("after {failpoint}"));
        assert!(temp_files(&env).is_empty(), "{failpoint}: no temp files");

        if journaled {
            // Every node has a new key: no file is as it was, and bob's key
            // opens nothing.
            let after = node_files(&env);
            assert_eq!(after.len(), files_before.len());
            for (path, bytes) in &after {
                assert_ne!(Some(bytes), files_before.get(path), "{path} unchanged");
            }
            let as_bob = env.run(&["-i", &bob.display().to_string(), "ls"]);
            assert_ne!(as_bob.code, 0, "{failpoint}: bob still reads");
            let status = git_lines(&env, &["status", "--porcelain", "--untracked-files=all"]);
            assert!(status.is_empty(), "{failpoint}: {status:?}");
            let commits = git_lines(&env, &["rev-list", &format!("{head_before}..HEAD")]);
            assert_eq!(commits.len(), 1, "{failpoint}: one commit");
        } else {
            assert_eq!(head(&env), head_before, "{failpoint}");
            assert_eq!(node_files(&env), files_before, "{failpoint}");
        }
    }
}
