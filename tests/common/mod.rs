//! Shared harness for the integration tests: a sealed environment per test, helpers
//! that run `sesto`, `git`, `ssh-keygen` and `age-keygen` inside it, and redaction of
//! random ids and keys for insta snapshots.
//!
//! Every test binary uses a different subset of these helpers, hence the allow below.
#![allow(dead_code)]

pub mod sshd;
pub mod team;
/// The table of tools and their packages, shared with the build script that sets the
/// `missing_<group>` cfgs.
#[path = "../../build.rs"]
pub mod tools;

pub use tools::tool_path;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The fixed clock of every test: git dates and sesto's `updated:` fields.
pub const NOW: &str = "2026-01-01T00:00:00Z";

/// Prefix of every TestEnv's temporary directory; the `[TMP]` filter looks for it.
const TMP_PREFIX: &str = "sesto-test-";

/// A child that runs longer than this is killed and the test fails: sesto must never
/// wait for a terminal that is not there. `SESTO_TEST_TIMEOUT` (seconds) overrides.
const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// One test's private world: a temporary directory holding the home, the repository,
/// the XDG directories and the edit directory. Removed when dropped.
pub struct TestEnv {
    tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    pub repo: PathBuf,
    pub xdg_config: PathBuf,
    pub xdg_state: PathBuf,
    pub xdg_runtime: PathBuf,
    pub edit: PathBuf,
    pub bin: PathBuf,
}

/// What a finished command printed and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The exit code; 128 + N for a child killed by signal N.
    pub code: i32,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Panics, showing everything the command printed, unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed:\n{}", snapshot_text(self));
        self
    }

    /// Panics, showing everything the command printed, unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code:\n{}",
            snapshot_text(self)
        );
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    /// RSA, 3072 bits.
    Rsa,
}

impl TestEnv {
    pub fn new() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir()
            .expect("failed to create the test's temporary directory");
        let root = tmp.path().to_path_buf();
        let env = TestEnv {
            home: root.join("home"),
            repo: root.join("repo"),
            xdg_config: root.join("xdg_config"),
            xdg_state: root.join("xdg_state"),
            xdg_runtime: root.join("xdg_runtime"),
            edit: root.join("edit"),
            bin: root.join("bin"),
            root,
            tmp,
        };
        for dir in [
            &env.home,
            &env.repo,
            &env.xdg_config,
            &env.xdg_state,
            &env.xdg_runtime,
            &env.edit,
            &env.bin,
        ] {
            std::fs::create_dir(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        }
        for dir in [&env.xdg_runtime, &env.edit] {
            set_mode(dir, 0o700);
        }
        std::fs::write(
            env.gitconfig(),
            "[user]\n\tname = Test User\n\temail = test@example.com\n\
             [init]\n\tdefaultBranch = main\n",
        )
        .expect("failed to write the test's .gitconfig");
        env
    }

    /// The global git config every sealed command sees.
    pub fn gitconfig(&self) -> PathBuf {
        self.home.join(".gitconfig")
    }

    /// `program` with the sealed environment, run in the repository, stdin null.
    /// Everything the host had in its environment is gone except PATH.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.xdg_config)
            .env("XDG_STATE_HOME", &self.xdg_state)
            .env("XDG_RUNTIME_DIR", &self.xdg_runtime)
            .env("GIT_CONFIG_GLOBAL", self.gitconfig())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_DATE", NOW)
            .env("GIT_COMMITTER_DATE", NOW)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LANG", "C")
            .env("TZ", "UTC")
            .env("SESTO_EDIT_DIR", &self.edit)
            .env("SESTO_NOW", NOW)
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        cmd
    }

    /// The `sesto` binary under test, sealed, with `args`.
    pub fn sesto(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(env!("CARGO_BIN_EXE_sesto"));
        cmd.args(args);
        cmd
    }

    /// Runs `sesto args` with no stdin.
    pub fn run(&self, args: &[&str]) -> Output {
        run_cmd(self.sesto(args))
    }

    /// Runs `sesto args` with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        run_cmd_stdin(self.sesto(args), input)
    }

    /// Runs the system `git` in the repository with the sealed environment.
    pub fn git(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("git");
        cmd.args(args);
        run_cmd(cmd)
    }

    /// `git init` in the repository; panics on failure.
    pub fn init_repo(&self) {
        self.git(&["init", "--quiet"]).assert_success();
    }

    /// A bare repository at `<root>/<name>`; returns its absolute path.
    pub fn bare_repo(&self, name: &str) -> PathBuf {
        let path = self.root.join(name);
        let path_text = path.to_str().expect("a UTF-8 temp path");
        self.git(&["init", "--quiet", "--bare", path_text])
            .assert_success();
        path
    }

    /// Pushes the repository to a new bare `<root>/<name>` as `origin`, with
    /// the current branch tracking it; returns the bare repository's path.
    pub fn publish(&self, name: &str) -> PathBuf {
        let remote = self.bare_repo(name);
        let remote_text = remote.to_str().expect("a UTF-8 temp path");
        self.git(&["remote", "add", "origin", remote_text])
            .assert_success();
        self.git(&["push", "--quiet", "-u", "origin", "HEAD"])
            .assert_success();
        remote
    }

    /// Makes an SSH key with the real `ssh-keygen` at `~/.ssh/<name>` (comment `name`)
    /// and returns the private key's path; the public key is beside it as `.pub`.
    pub fn ssh_keygen(&self, name: &str, kind: KeyKind, passphrase: Option<&str>) -> PathBuf {
        let dir = self.home.join(".ssh");
        if !dir.exists() {
            std::fs::create_dir(&dir).expect("failed to create ~/.ssh");
            set_mode(&dir, 0o700);
        }
        let path = dir.join(name);
        let mut cmd = self.command("ssh-keygen");
        cmd.arg("-q");
        match kind {
            KeyKind::Ed25519 => cmd.args(["-t", "ed25519"]),
            KeyKind::Rsa => cmd.args(["-t", "rsa", "-b", "3072"]),
        };
        cmd.args(["-N", passphrase.unwrap_or(""), "-C", name, "-f"])
            .arg(&path);
        run_cmd(cmd).assert_success();
        path
    }

    /// Makes an age identity with the real `age-keygen` at `~/.age/<name>` and returns
    /// its path and its recipient (`age1…`).
    pub fn age_keygen(&self, name: &str) -> (PathBuf, String) {
        let dir = self.home.join(".age");
        if !dir.exists() {
            std::fs::create_dir(&dir).expect("failed to create ~/.age");
            set_mode(&dir, 0o700);
        }
        let path = dir.join(name);
        let mut cmd = self.command("age-keygen");
        cmd.arg("-o").arg(&path);
        run_cmd(cmd).assert_success();
        let text = std::fs::read_to_string(&path).expect("failed to read the age identity");
        let recipient = text
            .lines()
            .find_map(|line| line.strip_prefix("# public key: "))
            .unwrap_or_else(|| panic!("no '# public key:' line in {}", path.display()))
            .trim()
            .to_owned();
        (path, recipient)
    }

    /// Writes an executable `sh` script to `<tmp>/bin/<name>` and returns its path, for
    /// `$EDITOR` and similar. `body` follows the `#!/bin/sh` line; `$1` is the file.
    pub fn write_script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\nset -eu\n{body}\n"))
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        set_mode(&path, 0o755);
        path
    }

    /// Names of the files left in the edit directory (plaintext must never stay).
    pub fn edit_dir_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.edit)
            .expect("failed to list the edit directory")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Makes `cmd`'s child a session leader with no controlling terminal, as a
/// CI job or a service runs: anything that would prompt on /dev/tty cannot.
pub fn without_terminal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Runs a prepared command (stdin as the command has it, null for the TestEnv's), with
/// the harness's time limit.
pub fn run_cmd(cmd: Command) -> Output {
    run_inner(cmd, None)
}

/// Runs a prepared command with `input` on its stdin.
pub fn run_cmd_stdin(cmd: Command, input: &[u8]) -> Output {
    run_inner(cmd, Some(input))
}

fn run_inner(mut cmd: Command, input: Option<&[u8]>) -> Output {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {program}: {e}"));

    // Feed stdin and drain both pipes on threads so that no pipe can fill and block.
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().unwrap();
        let input = input.to_vec();
        std::thread::spawn(move || {
            // The child may exit without reading everything; that is its business.
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());

    let deadline = Instant::now() + timeout();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().expect("failed to wait for child") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{program} ran longer than {}s and was killed (is it waiting for a terminal?)",
                timeout().as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    if let Some(writer) = writer {
        writer.join().unwrap();
    }
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    // A panic is always a bug (issue 10): sesto's own, or the merge driver's
    // under git, fails every test that meets it.
    let text = String::from_utf8_lossy(&stderr);
    assert!(
        status.code() != Some(101) && !text.contains("panicked at"),
        "{program} {:?} panicked (exit {:?}):\n{text}",
        cmd.get_args().collect::<Vec<_>>(),
        status.code()
    );
    Output {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn timeout() -> Duration {
    let secs = std::env::var("SESTO_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    Duration::from_secs(secs)
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The public key beside a private key made by [`TestEnv::ssh_keygen`], trimmed.
pub fn pub_key(private_key: &Path) -> String {
    let mut path = private_key.as_os_str().to_owned();
    path.push(".pub");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", Path::new(&path).display()))
        .trim()
        .to_owned()
}

/// PATH with the directory of the sesto binary under test first, so that git
/// finds it when it runs sesto's merge driver.
pub fn path_with_sesto() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_sesto")).parent().unwrap();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Panics unless `name` is installed (see [`tool_path`]); call it first in a test
/// that runs `name`. A test that needs a tool carries
/// `#[cfg_attr(missing_<group>, ignore = "...")]` with the group of `build.rs`, so
/// `cargo test` reports it as ignored where the tool is missing: reaching here without
/// it is a bug of that annotation or a build older than the tool's removal. Under
/// `CI=true` nothing is ignored and a missing tool fails the test.
pub fn require_tool(name: &str) {
    if tool_path(name).is_some() {
        return;
    }
    if tools::is_ci() {
        panic!("{name} is required under CI: install it in .ci/run");
    }
    match tools::group_of(name) {
        Some(group) => panic!(
            "{name} is missing but this test was not ignored: add \
             #[cfg_attr(missing_{}, ignore = \"{}\")] to it, or rebuild \
             (`touch build.rs`) if you removed {name} since the last build",
            group.name,
            group.reason()
        ),
        None => panic!(
            "{name} is missing and has no group in build.rs: add it to GROUPS there, \
             then #[cfg_attr(missing_<group>, ignore = ...)] to this test"
        ),
    }
}

/// [`require_tool`] for each of `names`.
pub fn require_tools(names: &[&str]) {
    names.iter().for_each(|name| require_tool(name));
}

/// The C2SP age test vectors: `SESTO_CCTV_DIR`, else `tests/data/age-cctv` in the
/// repository (always there; `Option` for callers written when it was not).
pub fn cctv_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SESTO_CCTV_DIR") {
        let dir = PathBuf::from(dir);
        assert!(
            dir.is_dir(),
            "SESTO_CCTV_DIR={} is not a directory",
            dir.display()
        );
        return Some(dir);
    }
    // In the repository, with their license: they always run.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/age-cctv");
    assert!(
        dir.is_dir(),
        "the age test vectors are missing from {}",
        dir.display()
    );
    Some(dir)
}

/// What snapshots show of a command: exit code, stdout and stderr, unredacted (bind
/// [`insta_settings`] or call [`redact`]).
pub fn snapshot_text(out: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.code, out.stdout, out.stderr
    )
}

/// Redactions, in the order they apply: the more specific first. Short hex runs are
/// lowercase hex of 8 or more characters between word boundaries, digits-only included
/// (a commit abbreviation may be all digits, and redacting it only sometimes would make
/// snapshots flaky). Seven is too short: the key type `ed25519` is seven hex digits, so
/// sesto prints commits abbreviated to 12.
const FILTERS: &[(&str, &str)] = &[
    // A TestEnv's directory wherever the system keeps temporary files.
    (r"(?:/[^/\s'`:]+)*/sesto-test-[A-Za-z0-9]+", "[TMP]"),
    (r"AGE-SECRET-KEY-1[0-9A-Z]+", "[AGE-SECRET-KEY]"),
    (r"AGE-PLUGIN-[0-9A-Z-]+-1[0-9A-Z]+", "[AGE-PLUGIN-IDENTITY]"),
    (r"\bage1[0-9a-z]{20,}", "[AGE-RECIPIENT]"),
    (
        r"\b(?:ssh-ed25519|ssh-rsa) AAAA[A-Za-z0-9+/]+={0,2}",
        "[SSH-KEY]",
    ),
    (r"SHA256:[A-Za-z0-9+/]{43}=?", "[FPR]"),
    (
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)? ?(?:Z|[+-]\d{2}:?\d{2})",
        "[DATE]",
    ),
    (r"\b[0-9a-f]{64}\b", "[SHA256]"),
    (r"\b[0-9a-f]{40}\b", "[COMMIT]"),
    (r"\b[0-9a-f]{32}\b", "[ID]"),
    (r"\b[0-9a-f]{8,}\b", "[COMMIT]"),
];

fn compiled_filters() -> &'static [(regex::Regex, &'static str)] {
    static COMPILED: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        FILTERS
            .iter()
            .map(|(re, with)| (regex::Regex::new(re).unwrap(), *with))
            .collect()
    })
}

/// `text` with random ids, keys, fingerprints, dates, commits and temporary paths
/// replaced by placeholders; the same rules as [`insta_settings`].
pub fn redact(text: &str) -> String {
    let mut text = text.to_owned();
    for (re, with) in compiled_filters() {
        text = re.replace_all(&text, *with).into_owned();
    }
    text
}

/// insta settings applying [`redact`]'s rules to every snapshot:
/// `insta_settings().bind(|| insta::assert_snapshot!(snapshot_text(&out)));`
pub fn insta_settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (re, with) in FILTERS {
        settings.add_filter(re, *with);
    }
    settings
}

/// The store format the roster in work tree `work` declares, and whether
/// every file under `.sesto/nodes` is a node file where that format keeps it
/// (temp files of an interrupted write aside).
pub fn store_layout(work: &Path) -> (u32, bool) {
    let sesto = work.join(".sesto");
    let roster = std::fs::read(sesto.join("roster.yaml")).unwrap();
    let format = sesto::format::node::declared_version(&roster).unwrap() as u32;
    let in_place = walkdir::WalkDir::new(sesto.join("nodes"))
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| !e.file_type().is_dir())
        .all(|e| {
            let rel = e.path().strip_prefix(&sesto).unwrap().to_str().unwrap();
            let name = e.file_name().to_string_lossy();
            name.starts_with(sesto::store::journal::TEMP_MARK)
                || sesto::format::node::NodeId::from_rel_path(rel, format).is_some()
        });
    (format, in_place)
}
