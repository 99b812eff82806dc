//! Deploy keys end to end, and the CI examples run for real. An admin makes a store,
//! adds a deploy key made by `ssh-keygen` as a member granted `prod`, and pushes; a
//! runner with nothing but that key clones over SSH from the system `sshd` on
//! 127.0.0.1 and reads `prod` with no terminal, while `staging` stays closed.
//!
//! The GitHub Actions workflow and the GitLab CI job in `examples/ci/` are executed
//! step by step as their runners would (every `run:` and script line, with the
//! variables the runner sets), with sesto downloaded by the workflow itself from a
//! loopback HTTP server and checked against its SHA-256. The render example's command
//! is run on its template.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::sshd::Sshd;
use common::{require_tools, run_cmd, snapshot_text, KeyKind, TestEnv};

const DB_PASSWORD: &str = "prod-db-pw-9f3k2";
const API_KEY: &str = "prod-api-key-77x\nsecond line";
const STAGING_PASSWORD: &str = "staging-pw-should-stay-closed";

/// An admin's store with `prod` and `staging`, a deploy key granted `prod`, pushed to
/// a bare repository served by sshd to that key alone.
struct Setup {
    env: TestEnv,
    server: Sshd,
    url: String,
    deploy_key: PathBuf,
    admin_fingerprint: String,
}

fn setup() -> Setup {
    let env = TestEnv::new();
    let admin = env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    for (path, value) in [
        ("prod/app/db-password", DB_PASSWORD),
        ("prod/app/api-key", API_KEY),
        (
            "prod/db",
            "url: postgres://db.internal:5432/app\npassword: prod-db-pw-9f3k2\n",
        ),
        ("staging/app/db-password", STAGING_PASSWORD),
    ] {
        env.run_stdin(&["set", path], value.as_bytes())
            .assert_success();
    }
    // The setup the examples' comments give, word for word.
    let deploy_key = env.ssh_keygen("ci-deploy", KeyKind::Ed25519, None);
    let pub_file = format!("{}.pub", deploy_key.display());
    env.run(&["member", "add", "ci-deploy", "--key-file", &pub_file])
        .assert_success();
    env.run(&["grant", "ci-deploy", "prod"]).assert_success();
    env.git(&["status", "--porcelain"]).assert_success();

    let remote = env.bare_repo("secrets.git");
    env.git(&[
        "push",
        "--quiet",
        remote.to_str().unwrap(),
        "HEAD:refs/heads/main",
    ])
    .assert_success();
    // sshd knows the deploy key and nothing else: the admin pushed on disk.
    let server = Sshd::start(&env, &[&deploy_key]);
    let url = server.url(&remote);
    let admin_fingerprint = fingerprint(&env, &admin);
    Setup {
        env,
        server,
        url,
        deploy_key,
        admin_fingerprint,
    }
}

/// `ssh-keygen -lf`'s SHA256 fingerprint of a key, as SESTO_TRUST takes it.
fn fingerprint(env: &TestEnv, key: &Path) -> String {
    let mut cmd = env.command("ssh-keygen");
    cmd.arg("-lf").arg(format!("{}.pub", key.display()));
    let out = run_cmd(cmd);
    out.assert_success();
    out.stdout.split_whitespace().nth(1).unwrap().to_string()
}

/// A runner's environment: its own home with no key of the admin's, the system PATH
/// (no sesto on it), no terminal.
fn runner_command(env: &TestEnv, home: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_GLOBAL", env.gitconfig())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LANG", "C")
        .stdin(std::process::Stdio::null());
    common::without_terminal(&mut cmd);
    cmd
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_sshd, ignore = "needs sshd: apt-get install openssh-server")]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn a_deploy_key_clones_over_ssh_and_reads_prod_only_without_a_terminal() {
    require_tools(&["sshd", "ssh", "ssh-keygen", "git"]);
    let s = setup();
    let home = s.env.root.join("runner");
    std::fs::create_dir(&home).unwrap();
    let clone = home.join("secrets");
    let mut git = runner_command(&s.env, &home, "git");
    git.args(["clone", "--quiet", &s.url])
        .arg(&clone)
        .env("GIT_SSH_COMMAND", s.server.git_ssh_command(&s.deploy_key));
    run_cmd(git).assert_success();

    let key_text = std::fs::read_to_string(&s.deploy_key).unwrap();
    let sesto = |args: &[&str]| {
        let mut cmd = runner_command(&s.env, &home, env!("CARGO_BIN_EXE_sesto"));
        cmd.args(args)
            .current_dir(&clone)
            .env("SESTO_IDENTITY", &key_text);
        run_cmd(cmd)
    };
    let out = sesto(&["exec", "prod/app", "--", "env"]);
    out.assert_success();
    assert!(
        out.stdout.contains(&format!("DB_PASSWORD={DB_PASSWORD}\n")),
        "{}",
        snapshot_text(&out)
    );
    assert!(out.stdout.contains(&format!("API_KEY={API_KEY}\n")));
    // The deploy key opened the store; the deploy script does not get it.
    assert!(
        !out.stdout.contains("SESTO_IDENTITY="),
        "the command saw SESTO_IDENTITY"
    );
    assert!(!out.stdout.contains("OPENSSH PRIVATE KEY"));
    // First use of the store: the admins are shown and pinned, nothing is asked.
    assert!(out.stderr.contains("alice"), "{}", out.stderr);
    assert!(!out.stderr.to_lowercase().contains("passphrase"));

    for args in [
        &["exec", "staging/app", "--", "env"][..],
        &["get", "staging/app/db-password"],
        &["export", "staging/app"],
    ] {
        let out = sesto(args);
        out.assert_code(1);
        assert!(
            out.stderr.contains("not granted"),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stdout.contains(STAGING_PASSWORD) && !out.stderr.contains(STAGING_PASSWORD));
    }
    // The deploy key's login could run git and nothing else.
    assert!(s.server.log().contains("Accepted publickey"));
}

/// Serves one file over HTTP on 127.0.0.1 until dropped.
struct FileServer {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FileServer {
    fn start(file: &Path) -> FileServer {
        let body = std::fs::read(file).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/sesto", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let mut request = [0u8; 4096];
                        let _ = conn.read(&mut request);
                        let head = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = conn.write_all(head.as_bytes());
                        let _ = conn.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        FileServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sha256_hex(file: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(file).unwrap());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The application checkout a CI job runs in: a deploy script and a smoke test
/// (the user's own, not part of the examples) that record what they were given.
fn workspace(root: &Path) -> (PathBuf, PathBuf) {
    let ws = root.join("workspace");
    let results = root.join("results");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    for (name, prefix) in [("deploy.sh", "deploy"), ("smoke-test.sh", "smoke")] {
        let path = ws.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nset -eu\nprintf '%s' \"$DB_PASSWORD\" > '{r}/{prefix}-db'\n\
                 printf '%s' \"$API_KEY\" > '{r}/{prefix}-api'\n\
                 echo \"{prefix} with $DB_PASSWORD\"\n",
                r = results.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (ws, results)
}

#[track_caller]
fn assert_received(results: &Path, prefix: &str) {
    let read = |what: &str| std::fs::read_to_string(results.join(format!("{prefix}-{what}")));
    assert_eq!(read("db").unwrap(), DB_PASSWORD, "{prefix}");
    assert_eq!(read("api").unwrap(), API_KEY, "{prefix}");
}

/// Replaces `${{ expr }}` as the Actions runner does, from `values`; an expression
/// the test does not know fails the test.
fn expand(text: &str, values: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closed expression") + start;
        let expr = rest[start + 3..end].trim();
        out.push_str(
            values
                .get(expr)
                .unwrap_or_else(|| panic!("the workflow uses ${{{{ {expr} }}}}, unknown here")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Reads `$GITHUB_ENV` as the runner does: NAME=value lines and NAME<<DELIM blocks.
fn read_github_env(text: &str) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((name, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            vars.push((name.to_string(), value.join("\n")));
        } else if let Some((name, value)) = line.split_once('=') {
            vars.push((name.to_string(), value.to_string()));
        }
    }
    vars
}

/// Panics unless what a CI example job runs besides sesto is installed.
fn require_ci_job_tools() {
    require_tools(&[
        "sshd",
        "ssh",
        "ssh-keygen",
        "git",
        "curl",
        "sha256sum",
        "bash",
    ]);
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_sshd, ignore = "needs sshd: apt-get install openssh-server")]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
#[cfg_attr(
    missing_coreutils,
    ignore = "needs sha256sum, base64: apt-get install coreutils"
)]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
#[cfg_attr(missing_curl, ignore = "needs curl: apt-get install curl")]
fn the_github_actions_example_runs_step_by_step() {
    require_ci_job_tools();
    let s = setup();
    let http = FileServer::start(Path::new(env!("CARGO_BIN_EXE_sesto")));
    let runner = s.env.root.join("gh");
    let home = runner.join("home");
    let temp = runner.join("temp");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&temp).unwrap();
    let (ws, results) = workspace(&runner);
    let github_env = runner.join("github_env");
    let github_path = runner.join("github_path");
    std::fs::write(&github_env, "").unwrap();
    std::fs::write(&github_path, "").unwrap();

    let key_text = std::fs::read_to_string(&s.deploy_key).unwrap();
    let host_key = std::fs::read_to_string(s.server.known_hosts()).unwrap();
    let values: BTreeMap<&str, String> = [
        ("runner.temp", temp.display().to_string()),
        ("secrets.SESTO_DEPLOY_KEY", key_text.clone()),
        ("vars.SECRETS_REPO", s.url.clone()),
        ("vars.SECRETS_HOST_KEY", host_key.trim().to_string()),
        ("vars.SESTO_TRUST", s.admin_fingerprint.clone()),
        ("vars.SESTO_URL", http.url.clone()),
        (
            "vars.SESTO_SHA256",
            sha256_hex(Path::new(env!("CARGO_BIN_EXE_sesto"))),
        ),
    ]
    .into_iter()
    .collect();

    let text = std::fs::read_to_string(examples().join("ci/github-actions.yml")).unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let job = &workflow["jobs"]["deploy"];
    let env_map = |v: &serde_yaml::Value| -> Vec<(String, String)> {
        v.as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap().to_string(),
                            expand(v.as_str().unwrap(), &values),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let job_env = env_map(&job["env"]);
    let mut extra_path: Vec<String> = Vec::new();
    let mut ran = 0;
    for step in job["steps"].as_sequence().unwrap() {
        if let Some(uses) = step["uses"].as_str() {
            // The runner's checkout: the workspace already holds the application.
            assert!(uses.starts_with("actions/checkout@"), "cannot run {uses}");
            continue;
        }
        let script = expand(step["run"].as_str().expect("a run step"), &values);
        let name = step["name"].as_str().unwrap_or("step");
        let file = runner.join("step.sh");
        std::fs::write(&file, &script).unwrap();
        let mut cmd = runner_command(&s.env, &home, "bash");
        cmd.args(["--noprofile", "--norc", "-eo", "pipefail"])
            .arg(&file)
            .current_dir(&ws)
            .env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &ws)
            .env("RUNNER_TEMP", &temp)
            .env("GITHUB_ENV", &github_env)
            .env("GITHUB_PATH", &github_path);
        let mut path = extra_path.clone();
        path.push(std::env::var("PATH").unwrap());
        cmd.env("PATH", path.join(":"));
        for (k, v) in read_github_env(&std::fs::read_to_string(&github_env).unwrap()) {
            cmd.env(k, v);
        }
        for (k, v) in job_env.iter().chain(&env_map(&step["env"])) {
            cmd.env(k, v);
        }
        let out = run_cmd(cmd);
        assert!(
            out.success(),
            "step {name:?} failed:\n{}",
            snapshot_text(&out)
        );
        for secret in [DB_PASSWORD, "prod-api-key-77x"] {
            if name == "Export for the next steps" {
                // Only as mask commands: the runner hides the value from then on.
                assert!(out
                    .stdout
                    .lines()
                    .filter(|l| l.contains(secret))
                    .all(|l| l.starts_with("::add-mask::")));
            } else if name != "Smoke test" {
                assert!(!out.stdout.contains(secret), "{name}: {}", out.stdout);
            }
            assert!(!out.stderr.contains(secret), "{name}: {}", out.stderr);
        }
        if name == "Deploy" {
            assert_eq!(out.stdout, "deploy with ***\n");
        }
        extra_path = std::fs::read_to_string(&github_path)
            .unwrap()
            .lines()
            .rev()
            .map(str::to_string)
            .collect();
        ran += 1;
    }
    assert_eq!(ran, 5, "every run step ran");
    assert_received(&results, "deploy");
    assert_received(&results, "smoke");
    // sesto came from the download, not from the test's build directory.
    assert!(home.join(".local/bin/sesto").is_file());
    drop(http);
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
#[cfg_attr(missing_sshd, ignore = "needs sshd: apt-get install openssh-server")]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
#[cfg_attr(
    missing_coreutils,
    ignore = "needs sha256sum, base64: apt-get install coreutils"
)]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
#[cfg_attr(missing_curl, ignore = "needs curl: apt-get install curl")]
fn the_gitlab_ci_example_runs_line_by_line() {
    require_ci_job_tools();
    let s = setup();
    let http = FileServer::start(Path::new(env!("CARGO_BIN_EXE_sesto")));
    let runner = s.env.root.join("gl");
    let home = runner.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (ws, results) = workspace(&runner);
    // A variable of type File: GitLab writes it to a file and passes the path.
    let key_file = runner.join("SESTO_DEPLOY_KEY");
    std::fs::copy(&s.deploy_key, &key_file).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let host_key = std::fs::read_to_string(s.server.known_hosts()).unwrap();

    let text = std::fs::read_to_string(examples().join("ci/gitlab-ci.yml")).unwrap();
    let config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let job = &config["deploy"];
    let mut script = String::from("set -eo pipefail\n");
    for (k, v) in job["variables"].as_mapping().unwrap() {
        // GitLab expands variables inside variables, as double quotes do here.
        script.push_str(&format!(
            "export {}=\"{}\"\n",
            k.as_str().unwrap(),
            v.as_str().unwrap()
        ));
    }
    let mut lines = 0;
    for section in ["before_script", "script"] {
        for line in job[section].as_sequence().unwrap() {
            script.push_str(line.as_str().unwrap());
            script.push('\n');
            lines += 1;
        }
    }
    assert!(lines >= 9, "{script}");
    let file = runner.join("job.sh");
    std::fs::write(&file, &script).unwrap();
    let mut cmd = runner_command(&s.env, &home, "bash");
    cmd.args(["--noprofile", "--norc"])
        .arg(&file)
        .current_dir(&ws)
        .env("CI", "true")
        .env("GITLAB_CI", "true")
        .env("CI_PROJECT_DIR", &ws)
        .env("SESTO_URL", &http.url)
        .env(
            "SESTO_SHA256",
            sha256_hex(Path::new(env!("CARGO_BIN_EXE_sesto"))),
        )
        .env("SESTO_DEPLOY_KEY", &key_file)
        .env("SECRETS_REPO", &s.url)
        .env("SECRETS_HOST_KEY", host_key.trim())
        .env("SESTO_TRUST", &s.admin_fingerprint);
    let out = run_cmd(cmd);
    assert!(out.success(), "the job failed:\n{}", snapshot_text(&out));
    assert_eq!(out.stdout, "deploy with ***\n");
    assert!(!out.stderr.contains(DB_PASSWORD));
    assert_received(&results, "deploy");
    assert!(ws.join(".secrets/.sesto/roster.yaml").is_file());
    drop(http);
}

#[test]
#[cfg_attr(
    missing_coreutils,
    ignore = "needs sha256sum, base64: apt-get install coreutils"
)]
#[cfg_attr(missing_bash, ignore = "needs bash: apt-get install bash")]
fn a_tampered_download_stops_the_github_job() {
    // The checksum line of the install step is what keeps a swapped binary out.
    require_tools(&["sha256sum", "bash"]);
    let env = TestEnv::new();
    let text = std::fs::read_to_string(examples().join("ci/github-actions.yml")).unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let install = workflow["jobs"]["deploy"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|s| s["name"].as_str() == Some("Install sesto"))
        .unwrap()["run"]
        .as_str()
        .unwrap();
    let check = install
        .lines()
        .find(|l| l.contains("sha256sum"))
        .expect("the install step checks a checksum");
    let temp = env.root.join("temp");
    std::fs::create_dir(&temp).unwrap();
    std::fs::write(temp.join("sesto"), b"not the binary").unwrap();
    let mut cmd = env.command("bash");
    cmd.args(["-eo", "pipefail", "-c", check])
        .env("RUNNER_TEMP", &temp)
        .env(
            "SESTO_SHA256",
            sha256_hex(Path::new(env!("CARGO_BIN_EXE_sesto"))),
        );
    let out = run_cmd(cmd);
    assert_ne!(
        out.code,
        0,
        "a wrong checksum passed: {}",
        snapshot_text(&out)
    );
}

#[test]
fn the_render_example_renders_its_template() {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    env.run_stdin(
        &["set", "prod/db"],
        b"url: postgres://db/app\npassword: pw-from-store\n",
    )
    .assert_success();
    env.run_stdin(&["set", "prod/app/api-key"], b"key-from-store")
        .assert_success();
    let dir = env.root.join("render");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        examples().join("render/config.tmpl"),
        dir.join("config.tmpl"),
    )
    .unwrap();
    // The commands of the README's sh block, as a user would paste them.
    let readme = std::fs::read_to_string(examples().join("render/README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("an sh block");
    assert!(block.contains("sesto render"), "{block}");
    let mut cmd = env.command("sh");
    cmd.args(["-eu", "-c", block])
        .current_dir(&dir)
        .env("PATH", common::path_with_sesto())
        .env("SESTO_STORE", &env.repo);
    run_cmd(cmd).assert_success();
    let out = dir.join("config.yaml");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("url: \"postgres://db/app\""), "{text}");
    assert!(text.contains("password: \"pw-from-store\""), "{text}");
    assert!(text.contains("key: \"key-from-store\""), "{text}");
    assert!(text.contains("{{ .Values.image }}"), "{text}");
    assert!(!text.contains("{{ sesto://"), "{text}");
    assert_eq!(out.metadata().unwrap().permissions().mode() & 0o777, 0o600);
}
