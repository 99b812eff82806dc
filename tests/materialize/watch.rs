//! `--watch`: a real `git pull` from a bare remote reaches the files, a failed
//! re-read keeps the last good ones, the periodic re-read restores what was
//! deleted, and SIGTERM and SIGINT end it with exit 0, the files in place.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::{path_with_sesto, require_tool, run_cmd, snapshot_text, Output, TestEnv};
use super::{assert_no_values, mode, names, s, tls_store, CERT, KEY, NEW_KEY};

/// A process left running, its output going to files (no pipe can fill).
pub struct Running {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Running {
    pub fn start(mut cmd: Command, logs: &Path, name: &str) -> Running {
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

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill on our own child, which has not been reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM and waits (at most 10 s); the output and how long it took.
    pub fn terminate(self) -> (Output, Duration) {
        self.stop(libc::SIGTERM)
    }

    /// Sends `sig` and waits (at most 10 s); the output and how long it took.
    pub fn stop(mut self, sig: libc::c_int) -> (Output, Duration) {
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

    pub fn stderr_now(&self) -> String {
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
pub fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> Duration {
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
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn watch_follows_a_pull_from_another_clone_and_stops_on_sigterm() {
    require_tool("git");
    let env = TestEnv::new();
    tls_store(&env);
    let remote = env.publish("remote.git");
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
