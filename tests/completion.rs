//! Shell completion as a user meets it: a real bash, zsh and fish, started
//! interactively on a pseudo-terminal with the script `sesto completions`
//! prints, typed at with TAB. A shell function named `sesto` prints the words
//! the line ran with (the scripts call the real binary with `command sesto`),
//! so each case checks the exact arguments the completed line would pass.
//! zsh and fish cases run where they are installed (CI installs them).

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{path_with_sesto, require_tools, run_cmd, without_terminal, KeyKind, TestEnv};

/// How long a shell may take to show what a case waits for.
const WAIT: Duration = Duration::from_secs(20);

/// The store every case completes in:
///
/// ```text
/// prod/db/password   prod/db/login   prod/deploy-key   prod/my secret   staging/x
/// ```
///
/// with members alice (admin, the user) and bob.
fn store() -> TestEnv {
    let env = TestEnv::new();
    env.init_repo();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.run(&["init", "--name", "alice"]).assert_success();
    for path in [
        "prod/db/password",
        "prod/db/login",
        "prod/deploy-key",
        "prod/my secret",
        "staging/x",
    ] {
        env.run_stdin(&["set", path], b"value-that-must-not-show")
            .assert_success();
    }
    let bob = env.ssh_keygen("bob", KeyKind::Ed25519, None);
    let bob_pub = bob.with_extension("pub");
    let bob_pub = bob_pub.to_str().unwrap();
    env.run(&["member", "add", "bob", "--key-file", bob_pub])
        .assert_success();
    env
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

impl Shell {
    fn name(self) -> &'static str {
        match self {
            Shell::Bash => "bash",
            Shell::Zsh => "zsh",
            Shell::Fish => "fish",
        }
    }

    /// The shells to test: a test using them is ignored where zsh or fish is missing.
    fn all() -> Vec<Shell> {
        require_tools(&["bash", "zsh", "fish"]);
        vec![Shell::Bash, Shell::Zsh, Shell::Fish]
    }
}

/// The prompt every shell shows, to know when it is ready.
const PROMPT: &str = "READY> ";

/// An interactive shell on a pseudo-terminal.
struct Session {
    master: std::fs::File,
    child: Child,
    screen: String,
    shell: Shell,
}

impl Session {
    /// Starts `shell` in `env`'s repository with sesto's completion sourced.
    fn start(env: &TestEnv, shell: Shell) -> Session {
        Session::start_with(env, shell, false)
    }

    /// Starts `shell` with sesto's completion sourced, or `installed` where
    /// the README says to save it (zsh: `$fpath`, fish: its completions
    /// directory), for the shell to load on its own.
    fn start_with(env: &TestEnv, shell: Shell, installed: bool) -> Session {
        let script = env.run(&["completions", shell.name()]);
        script.assert_success();
        let script_file = match (shell, installed) {
            (Shell::Zsh, true) => env.root.join("zfunc/_sesto"),
            (Shell::Fish, true) => env.xdg_config.join("fish/completions/sesto.fish"),
            _ => env.root.join(format!("completion.{}", shell.name())),
        };
        std::fs::create_dir_all(script_file.parent().unwrap()).unwrap();
        std::fs::write(&script_file, &script.stdout).unwrap();
        let script_file = script_file.to_str().unwrap();
        let mut cmd = env.command(shell.name());
        match shell {
            Shell::Zsh if installed => {
                let dir = env.root.join("zdot");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    dir.join(".zshrc"),
                    format!(
                        "PS1='{PROMPT}'\nunset zle_bracketed_paste\n\
                         fpath=({} $fpath)\nautoload -Uz compinit\ncompinit -u -D\n\
                         sesto() {{ printf '[%s]' \"$@\"; echo }}\n",
                        env.root.join("zfunc").display()
                    ),
                )
                .unwrap();
                cmd.env("ZDOTDIR", &dir).arg("-i");
            }
            Shell::Fish if installed => {
                cmd.args(["-i", "-C"]).arg(format!(
                    "function fish_prompt; printf '{PROMPT}'; end; \
                     function sesto; printf '[%s]' $argv; echo; end"
                ));
            }
            Shell::Bash => {
                let rc = env.root.join("bashrc");
                std::fs::write(
                    &rc,
                    format!(
                        "PS1='{PROMPT}'\nbind 'set enable-bracketed-paste off'\n\
                         source {script_file}\n\
                         sesto() {{ printf '[%s]' \"$@\"; echo; }}\n"
                    ),
                )
                .unwrap();
                cmd.args(["--noprofile", "--rcfile"]).arg(&rc).arg("-i");
            }
            Shell::Zsh => {
                let dir = env.root.join("zdot");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(
                    dir.join(".zshrc"),
                    format!(
                        "PS1='{PROMPT}'\nunset zle_bracketed_paste\n\
                         autoload -Uz compinit\ncompinit -u -D\n\
                         source {script_file}\n\
                         sesto() {{ printf '[%s]' \"$@\"; echo }}\n"
                    ),
                )
                .unwrap();
                cmd.env("ZDOTDIR", &dir).arg("-i");
            }
            Shell::Fish => {
                cmd.args(["--no-config", "-i", "-C"]).arg(format!(
                    "function fish_prompt; printf '{PROMPT}'; end; \
                     source {script_file}; \
                     function sesto; printf '[%s]' $argv; echo; end"
                ));
            }
        }
        cmd.env("PATH", path_with_sesto()).env("TERM", "xterm");
        let (master, slave) = openpty();
        for (set, fd) in [(0, &slave), (1, &slave), (2, &slave)] {
            let copy: OwnedFd = fd.try_clone().unwrap();
            let stdio = Stdio::from(copy);
            match set {
                0 => cmd.stdin(stdio),
                1 => cmd.stdout(stdio),
                _ => cmd.stderr(stdio),
            };
        }
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and ioctl are async-signal-safe, as pre_exec requires;
        // the pty becomes the controlling terminal of the shell's new session.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("failed to start the shell");
        drop(slave);
        let mut session = Session {
            master: std::fs::File::from(master),
            child,
            screen: String::new(),
            shell,
        };
        session.wait_for(PROMPT);
        session
    }

    /// Types `keys`.
    fn type_keys(&mut self, keys: &str) {
        self.master.write_all(keys.as_bytes()).unwrap();
    }

    /// Reads the terminal until its text (escapes removed) contains `want`;
    /// panics with the screen after [`WAIT`].
    #[track_caller]
    fn wait_for(&mut self, want: &str) -> String {
        self.wait_until(want, |text| text.contains(want))
    }

    /// Reads the terminal until every one of `words` is on it as a word (a
    /// listing can arrive in several reads, a row at a time).
    fn wait_for_words(&mut self, words: &[&str]) -> String {
        let want = words.join(" ");
        self.wait_until(&want, |text| {
            let seen = screen_words(text);
            words.iter().all(|w| seen.contains(w))
        })
    }

    /// Reads the terminal until `done` holds for what it shows.
    fn wait_until(&mut self, want: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = plain(&self.screen);
            if done(&text) {
                return text;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: waited {WAIT:?} for {want:?}; the terminal showed:\n{text}",
                self.shell.name()
            );
            let mut poll = libc::pollfd {
                fd: self.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd for our own descriptor.
            let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(500) as i32) };
            if ready > 0 {
                let mut buf = [0u8; 4096];
                match self.master.read(&mut buf) {
                    Ok(n) if n > 0 => self.screen.push_str(&String::from_utf8_lossy(&buf[..n])),
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Types `keys` and Enter, and returns the words the line ran `sesto`
    /// with, as the fake `sesto` prints them: `[get][prod/db/password]`.
    #[track_caller]
    fn run_line(&mut self, keys: &str, expect: &str) -> String {
        self.type_keys(keys);
        self.type_keys("\r");
        self.wait_for(expect)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pseudo-terminal (master, slave), 200 columns by 50 rows so that
/// listings fit on one screen.
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (0, 0);
    let size = libc::winsize {
        ws_row: 50,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty fills two descriptors we then own.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty");
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Terminal output without escape sequences, carriage returns and bells.
fn plain(screen: &str) -> String {
    let mut out = String::new();
    let mut chars = screen.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.next() {
                Some('[') => {
                    for n in chars.by_ref() {
                        if n.is_ascii_alphabetic() || n == '~' {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(n) = chars.next() {
                        if n == '\x07' || (n == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            '\r' | '\x07' | '\x08' => {}
            c => out.push(c),
        }
    }
    out
}

/// The words on the screen, split on blanks.
fn screen_words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// Types `keys` into a fresh `shell` session in `env` and waits for the
/// line to read back as `expect` (see [`Session::run_line`]).
fn completes(env: &TestEnv, shell: Shell, keys: &str, expect: &str) -> String {
    Session::start(env, shell).run_line(keys, expect)
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn subcommands_complete_without_the_plumbing() {
    let env = store();
    for shell in Shell::all() {
        let mut s = Session::start(&env, shell);
        s.type_keys("sesto \t\t");
        // Waits for these, so fails (after a while) if one is not listed.
        let text = s.wait_for_words(&["get", "ls", "member", "completions", "exec", "import"]);
        let words = screen_words(&text);
        for hidden in ["merge-driver", "textconv", "__complete"] {
            assert!(
                !words.contains(&hidden),
                "{shell:?} lists {hidden}:\n{text}"
            );
        }
        drop(s);
        // A unique prefix completes, and options still do.
        completes(&env, shell, "sesto mater\t--js\t", "[materialize][--json]");
    }
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn a_folder_lists_its_entries_and_values_never_show() {
    let env = store();
    for shell in Shell::all() {
        let mut s = Session::start(&env, shell);
        s.type_keys("sesto get prod/\t\t");
        // A listing can arrive in several reads (in CI under load the screen
        // once held zsh's two secrets and not yet the folder): wait for all.
        let text = s.wait_until("db/, deploy-key and my", |t| {
            ["db/", "deploy-key", "my"].iter().all(|w| t.contains(w))
        });
        assert!(!text.contains("staging"), "{shell:?}:\n{text}");
        assert!(
            !text.contains("value-that"),
            "{shell:?} showed a value:\n{text}"
        );
        assert!(!text.contains("error"), "{shell:?}:\n{text}");
    }
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn nested_folders_complete_without_a_space_after_each_folder() {
    let env = store();
    for shell in Shell::all() {
        let mut s = Session::start(&env, shell);
        // `pro` → `prod/` (no space), `d` → `prod/d` (db/ or deploy-key), then
        // `b` → `prod/db/`, `pa` → `prod/db/password` and a space.
        s.run_line("sesto get pro\td\tb\tpa\t", "[get][prod/db/password]");
        completes(&env, shell, "sesto ls st\t", "[ls][staging/]");
    }
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn a_name_with_a_space_is_quoted() {
    let env = store();
    for shell in Shell::all() {
        completes(&env, shell, "sesto get prod/my\t", "[get][prod/my secret]");
        completes(&env, shell, "sesto rm 'prod/my\t", "[rm][prod/my secret]");
        completes(
            &env,
            shell,
            "sesto otp prod/my\\ s\t",
            "[otp][prod/my secret]",
        );
    }
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn scripts_saved_where_the_readme_says_load_on_their_own() {
    let env = store();
    for shell in Shell::all().into_iter().filter(|s| *s != Shell::Bash) {
        let mut s = Session::start_with(&env, shell, true);
        s.run_line("sesto get prod/my\t", "[get][prod/my secret]");
    }
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn member_names_complete_for_member_remove_and_grant() {
    let env = store();
    for shell in Shell::all() {
        completes(
            &env,
            shell,
            "sesto member remove b\t",
            "[member][remove][bob]",
        );
        completes(
            &env,
            shell,
            "sesto grant b\tprod/d\t",
            "[grant][bob][prod/db/]",
        );
    }
}

/// Runs `sesto __complete bash` as the bash script does, with no terminal,
/// and returns what it printed on stdout and stderr and how long it took.
fn complete_without_terminal(env: &TestEnv, line: &str, word: &str) -> (String, String, Duration) {
    let mut cmd = env.sesto(&["__complete", "bash", "--", line, word]);
    without_terminal(&mut cmd);
    let started = Instant::now();
    let out = run_cmd(cmd);
    out.assert_success();
    (out.stdout, out.stderr, started.elapsed())
}

#[test]
#[cfg_attr(missing_zsh, ignore = "needs zsh: apt-get install zsh")]
#[cfg_attr(missing_fish, ignore = "needs fish: apt-get install fish")]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn a_key_with_a_passphrase_and_no_agent_completes_nothing_quickly() {
    let env = store();
    let key = env.home.join(".ssh/id_ed25519");
    let mut cmd = env.command("ssh-keygen");
    cmd.args(["-q", "-p", "-P", "", "-N", "secret phrase", "-f"])
        .arg(&key);
    run_cmd(cmd).assert_success();
    let (stdout, stderr, took) = complete_without_terminal(&env, "sesto get prod/", "prod/");
    assert_eq!((stdout.as_str(), stderr.as_str()), ("names\n", ""));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // Subcommands need no key and still complete.
    let (stdout, _, _) = complete_without_terminal(&env, "sesto ge", "ge");
    assert_eq!(stdout, "names\nget\ngenerate\n");
    // On a terminal the shell shows nothing either: no prompt, no error.
    for shell in Shell::all() {
        let text = completes(&env, shell, "sesto get prod/\t", "[get][prod/]");
        for unwanted in ["assphrase", "error", "deploy-key"] {
            assert!(
                !text.contains(unwanted),
                "{shell:?} showed {unwanted}:\n{text}"
            );
        }
    }
}

#[test]
fn a_store_the_user_cannot_read_completes_nothing() {
    let env = store();
    let stranger = env.ssh_keygen("stranger", KeyKind::Ed25519, None);
    let mut cmd = env.sesto(&["__complete", "bash", "--", "sesto get prod/", "prod/"]);
    cmd.env("SESTO_IDENTITY_FILE", &stranger);
    without_terminal(&mut cmd);
    let out = run_cmd(cmd);
    out.assert_success();
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("names\n", ""));
    // Outside any store: nothing, and no error either.
    let mut cmd = env.sesto(&["__complete", "bash", "--", "sesto get ", ""]);
    cmd.current_dir(&env.home);
    let out = run_cmd(cmd);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("names\n", ""));
}

/// Completion checks trust as `sesto ls` does but records nothing: the
/// first-use notice is left for the next command that can show it.
#[test]
fn completion_leaves_the_first_use_pin_to_a_command_that_can_say_so() {
    let env = store();
    let trust_dir = env.xdg_state.join("sesto/trust");
    std::fs::remove_dir_all(&trust_dir).unwrap();
    let (stdout, stderr, _) = complete_without_terminal(&env, "sesto get prod/d", "prod/d");
    assert_eq!(stdout, "names\nprod/db/\nprod/deploy-key\n");
    assert_eq!(stderr, "");
    assert!(!trust_dir.exists(), "completion pinned the store's admins");
    let out = env.run(&["ls"]);
    out.assert_success();
    assert!(
        out.stderr.contains("trusting this store's admins"),
        "{}",
        out.stderr
    );
}

#[test]
fn hostile_partial_words_complete_nothing() {
    let env = store();
    let long = "a/".repeat(5000);
    for word in [
        "../",
        "prod/../",
        "/../../etc/",
        "prod//db/",
        long.as_str(),
        "prod/db/password/",
    ] {
        let line = format!("sesto get {word}");
        let (stdout, stderr, _) = complete_without_terminal(&env, &line, word);
        assert_eq!(stderr, "", "{word:?}");
        assert!(
            stdout == "names\n" || word == "prod//db/",
            "{word:?} completed to {stdout:?}"
        );
    }
}
