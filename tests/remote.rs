//! Remotes: the store travels over real transports, as a team's would. A bare
//! repository served by the system `sshd` (login keys from `ssh-keygen`, the host key
//! checked, logins limited to `git-shell`) and the same bare repository on disk: two
//! clones change different secrets and `sesto sync` brings them to one store. A key
//! the server does not know is refused, and the local store stays as it was.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::sshd::Sshd;
use common::{
    path_with_sesto, require_tools, run_cmd, run_cmd_stdin, snapshot_text, KeyKind, Output, TestEnv,
};

/// alice's first secrets, chosen so that bytes must come back exactly: trailing
/// newlines, an empty line, outer spaces, non-ASCII.
const SECRETS: &[(&str, &str)] = &[
    ("prod/db/password", "hunter2"),
    ("prod/tls/key", "-----BEGIN-----\nline two\n\n"),
    ("dev/note", "  leading and trailing spaces  "),
    ("dev/greeting", "grüß dich 🔑\n"),
];

/// alice's store pushed to a bare repository (`env.repo`, the clone `a`) and cloned
/// again (`b`), both reaching the remote the same way. Declared after the env and the
/// server, so that it goes first, the server next, the temporary directory last.
struct Team<'e> {
    env: &'e TestEnv,
    a: PathBuf,
    b: PathBuf,
    /// `GIT_SSH_COMMAND` for every git and sesto run; `None` for a remote on disk.
    ssh: Option<String>,
}

impl<'e> Team<'e> {
    /// Makes alice's store, pushes it to `url` (the bare repository must exist) and
    /// clones it to `b` through the same remote.
    fn publish(env: &'e TestEnv, url: &str, ssh: Option<String>) -> Team<'e> {
        let team = Team {
            a: env.repo.clone(),
            b: env.root.join("b"),
            env,
            ssh,
        };
        team.env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
        team.env.init_repo();
        team.sesto_ok(&team.a, &["init", "--name", "alice"]);
        for (path, value) in SECRETS {
            team.set(&team.a, path, value);
        }
        team.git_ok(&team.a, &["remote", "add", "origin", url]);
        team.git_ok(&team.a, &["push", "--quiet", "-u", "origin", "HEAD"]);
        team.git_ok(
            &team.env.root,
            &["clone", "--quiet", url, team.b.to_str().unwrap()],
        );
        team.sesto_ok(&team.b, &["setup-git"]);
        team
    }

    /// `program` sealed, in `dir`, with sesto on PATH (git runs the merge driver) and
    /// the team's `GIT_SSH_COMMAND`.
    fn command(&self, dir: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = self.env.command(program);
        cmd.current_dir(dir).env("PATH", path_with_sesto());
        if let Some(ssh) = &self.ssh {
            cmd.env("GIT_SSH_COMMAND", ssh);
        }
        cmd
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.command(dir, "git");
        cmd.args(args);
        run_cmd(cmd)
    }

    #[track_caller]
    fn git_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.git(dir, args);
        out.assert_success();
        out.stdout.trim().to_owned()
    }

    fn sesto(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.command(dir, env!("CARGO_BIN_EXE_sesto"));
        cmd.args(args);
        run_cmd(cmd)
    }

    #[track_caller]
    fn sesto_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.sesto(dir, args);
        out.assert_success();
        out.stdout
    }

    #[track_caller]
    fn set(&self, dir: &Path, path: &str, value: &str) {
        let mut cmd = self.command(dir, env!("CARGO_BIN_EXE_sesto"));
        cmd.args(["set", path]);
        run_cmd_stdin(cmd, value.as_bytes()).assert_success();
    }

    fn get(&self, dir: &Path, path: &str) -> String {
        self.sesto_ok(dir, &["get", path])
    }

    /// Every listed path with the value `get` gives, or `None` for a folder.
    fn contents(&self, dir: &Path) -> BTreeMap<String, Option<String>> {
        self.sesto_ok(dir, &["find", ""])
            .lines()
            .map(|path| {
                let out = self.sesto(dir, &["get", path]);
                (path.to_owned(), out.success().then_some(out.stdout))
            })
            .collect()
    }

    /// fsck and verify are clean in both clones.
    #[track_caller]
    fn check_both(&self) {
        for dir in [&self.a, &self.b] {
            self.sesto_ok(dir, &["fsck"]);
            self.sesto_ok(dir, &["verify"]);
        }
    }

    /// `a` and `b` change different secrets, then sync in turn until both hold one
    /// store, the remote's; the values are the ones written, byte for byte.
    fn both_change_and_sync(&self) {
        self.set(&self.a, "prod/db/password", "rotated by a");
        self.set(&self.a, "prod/a-only", "from a\n");
        self.set(&self.b, "dev/note", "edited by b");
        self.set(&self.b, "dev/b-only", "from b");

        self.sesto_ok(&self.a, &["sync"]);
        let out = self.sesto_ok(&self.b, &["sync"]);
        assert!(out.contains("(merged)"), "b had to merge a's push: {out}");
        self.sesto_ok(&self.a, &["sync"]);

        let head = self.git_ok(&self.a, &["rev-parse", "HEAD"]);
        assert_eq!(self.git_ok(&self.b, &["rev-parse", "HEAD"]), head);
        let remote = self.git_ok(&self.a, &["ls-remote", "origin", "refs/heads/main"]);
        assert!(
            remote.starts_with(&head),
            "remote main is {remote}, not {head}"
        );

        self.check_both();
        let expected = [
            ("prod/db/password", "rotated by a"),
            ("prod/tls/key", "-----BEGIN-----\nline two\n\n"),
            ("prod/a-only", "from a\n"),
            ("dev/note", "edited by b"),
            ("dev/greeting", "grüß dich 🔑\n"),
            ("dev/b-only", "from b"),
        ];
        for dir in [&self.a, &self.b] {
            for (path, value) in expected {
                assert_eq!(self.get(dir, path), value, "{path} in {}", dir.display());
            }
        }
        assert_eq!(self.contents(&self.a), self.contents(&self.b));
    }
}

/// A bare repository at `<tmp>/remote.git`; returns its absolute path.
fn bare_remote(env: &TestEnv) -> PathBuf {
    env.bare_repo("remote.git")
}

fn require_ssh_tools() {
    require_tools(&["sshd", "ssh", "ssh-keygen", "git"]);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_sshd, ignore = "needs sshd: apt-get install openssh-server")]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn sync_over_ssh_brings_two_clones_to_one_store() {
    require_ssh_tools();
    let env = TestEnv::new();
    let login = env.ssh_keygen("git_login", KeyKind::Ed25519, None);
    let remote = bare_remote(&env);
    let server = Sshd::start(&env, &[&login]);
    let team = Team::publish(
        &env,
        &server.url(&remote),
        Some(server.git_ssh_command(&login)),
    );
    team.both_change_and_sync();
    // It was SSH all along, and the key could run git-shell only.
    let log = server.log();
    assert!(
        log.contains(&format!("Accepted publickey for {}", server.user)),
        "{log}"
    );
    assert!(log.contains("forced-command"), "{log}");
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_sshd, ignore = "needs sshd: apt-get install openssh-server")]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn sync_over_ssh_with_an_unauthorized_key_is_refused_and_changes_nothing() {
    require_ssh_tools();
    let env = TestEnv::new();
    let login = env.ssh_keygen("git_login", KeyKind::Ed25519, None);
    let stranger = env.ssh_keygen("stranger", KeyKind::Ed25519, None);
    let remote = bare_remote(&env);
    let server = Sshd::start(&env, &[&login]);
    let mut team = Team::publish(
        &env,
        &server.url(&remote),
        Some(server.git_ssh_command(&login)),
    );
    team.set(&team.a, "prod/local-only", "not pushed");

    let a = team.a.clone();
    let before = (
        team.git_ok(&a, &["rev-parse", "HEAD", "refs/remotes/origin/main"]),
        team.git_ok(&a, &["status", "--porcelain"]),
        team.contents(&a),
    );
    let remote_before = team.git_ok(&remote, &["rev-parse", "main"]);

    team.ssh = Some(server.git_ssh_command(&stranger));
    let out = team.sesto(&a, &["sync"]);
    out.assert_code(1);
    let text = snapshot_text(&out);
    // git's own words pass through: the server refused the key, after the host key
    // was checked.
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{text}"
    );
    assert!(
        out.stderr.contains("Could not read from remote repository"),
        "{text}"
    );
    assert!(
        out.stderr.contains("git fetch"),
        "sesto names the step that failed: {text}"
    );
    assert!(
        !out.stderr.contains("not pushed"),
        "no secret value in errors: {text}"
    );
    let log = server.log();
    assert!(log.contains("Failed publickey for"), "{log}");

    let after = (
        team.git_ok(&a, &["rev-parse", "HEAD", "refs/remotes/origin/main"]),
        team.git_ok(&a, &["status", "--porcelain"]),
        team.contents(&a),
    );
    assert_eq!(after, before, "the refused sync changed the local store");
    assert_eq!(team.git_ok(&remote, &["rev-parse", "main"]), remote_before);
    assert_eq!(team.get(&a, "prod/local-only"), "not pushed");

    // The same sync with the authorized key goes through: it was the key.
    team.ssh = Some(server.git_ssh_command(&login));
    team.sesto_ok(&a, &["sync"]);
    assert_eq!(
        team.git_ok(&remote, &["rev-parse", "main"]),
        team.git_ok(&a, &["rev-parse", "HEAD"])
    );
    team.sesto_ok(&a, &["fsck"]);
    team.sesto_ok(&a, &["verify"]);
}

#[test]
fn sync_through_a_bare_repository_on_disk() {
    let env = TestEnv::new();
    let remote = bare_remote(&env);
    let team = Team::publish(&env, remote.to_str().unwrap(), None);
    team.both_change_and_sync();
}
