//! Secrets into processes and files: `sesto exec`, `export` and `render`, run as a
//! deploy script would run them. Values come back byte for byte (read with `env -0`
//! and a shell's `eval`, not by sesto itself), the child's exit code and signals pass
//! through, bad names and NUL bytes are errors naming what is wrong, and no error or
//! masked output holds a value.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{insta_settings, run_cmd, run_cmd_stdin, snapshot_text, KeyKind, Output, TestEnv};

/// Values that must arrive exactly: trailing newline, multi-line, quotes of both
/// kinds, `$`, backslashes, non-ASCII, invalid UTF-8 (shell and env carry bytes).
const APP: &[(&str, &[u8])] = &[
    ("db-password", b"p@ss'w\"rd $HOME \\n`x`\n"),
    ("apiKey", b"line one\nline two"),
    ("tls.cert", "grüß 🔑".as_bytes()),
    ("RAW_BYTES", b"\xff\xfe\x01end"),
];

fn store() -> TestEnv {
    let env = TestEnv::new();
    env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
    env.init_repo();
    env.run(&["init", "--name", "alice"]).assert_success();
    for (name, value) in APP {
        env.run_stdin(&["set", &format!("prod/app/{name}")], value)
            .assert_success();
    }
    env.run_stdin(
        &["set", "prod/db"],
        b"url: postgres://db:5432/app\nuser: app\n",
    )
    .assert_success();
    env.run_stdin(&["set", "prod/app/sub/hidden"], b"not exported")
        .assert_success();
    env
}

#[track_caller]
fn snap(name: &str, out: &Output) {
    insta_settings().bind(|| insta::assert_snapshot!(name, snapshot_text(out)));
}

/// Runs `sesto args` and returns stdout as bytes (the harness's Output is text).
fn stdout_bytes(env: &TestEnv, args: &[&str]) -> Vec<u8> {
    let out = env.sesto(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The environment `env -0` printed, by name.
fn parse_env0(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    bytes
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let eq = e.iter().position(|&b| b == b'=').unwrap();
            (
                String::from_utf8(e[..eq].to_vec()).unwrap(),
                e[eq + 1..].to_vec(),
            )
        })
        .collect()
}

fn expected() -> BTreeMap<String, Vec<u8>> {
    [
        ("DB_PASSWORD", APP[0].1),
        ("API_KEY", APP[1].1),
        ("TLS_CERT", APP[2].1),
        ("RAW_BYTES", APP[3].1),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_vec()))
    .collect()
}

#[test]
fn exec_passes_every_secret_of_the_folder_byte_for_byte() {
    let env = store();
    let got = parse_env0(&stdout_bytes(
        &env,
        &["exec", "prod/app", "--", "env", "-0"],
    ));
    for (name, value) in expected() {
        assert_eq!(got.get(&name), Some(&value), "{name}");
    }
    // Subfolders are not part of the folder's variables; the rest of the
    // environment is inherited.
    assert!(!got.contains_key("HIDDEN") && !got.contains_key("SUB_HIDDEN"));
    assert_eq!(got["LANG"], b"C");
}

#[test]
fn exec_gives_the_command_the_umask_sesto_was_started_with() {
    let env = store();
    let mut cmd = env.sesto(&["exec", "prod/app", "--", "sh", "-c", "umask"]);
    // SAFETY: umask in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::umask(0o027);
            Ok(())
        });
    }
    let out = run_cmd(cmd);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "0027");
}

#[test]
fn env_files_name_fields_secrets_and_literals() {
    let env = store();
    std::fs::write(
        env.repo.join("app.env"),
        "# committed next to the code\nDB_URL=sesto://prod/db#url\n\
         export PASSWORD = sesto://prod/app/db-password\nMODE='production'\n",
    )
    .unwrap();
    let got = parse_env0(&stdout_bytes(
        &env,
        &["exec", "--env-file", "app.env", "--", "env", "-0"],
    ));
    assert_eq!(got["DB_URL"], b"postgres://db:5432/app");
    assert_eq!(got["PASSWORD"], APP[0].1);
    assert_eq!(got["MODE"], b"production");
    assert!(!got.contains_key("API_KEY"), "only what the file names");

    // With a folder too, a name given twice is an error naming both sources.
    std::fs::write(env.repo.join("clash.env"), "API_KEY=sesto://prod/db#user\n").unwrap();
    let out = env.run(&["exec", "--env-file", "clash.env", "prod/app", "--", "true"]);
    out.assert_code(1);
    assert!(
        out.stderr
            .contains("prod/app/apiKey and clash.env:1 both set API_KEY"),
        "{}",
        out.stderr
    );
    let out = env.run(&["exec", "--env-file", "missing.env", "--", "true"]);
    out.assert_code(1);
    assert!(out.stderr.contains("missing.env"), "{}", out.stderr);
    std::fs::write(
        env.repo.join("bad.env"),
        "OK=1\nDB_URL=sesto://prod/nope#url\n",
    )
    .unwrap();
    let out = env.run(&["exec", "--env-file", "bad.env", "--", "true"]);
    out.assert_code(1);
    assert!(out.stderr.contains("prod/nope"), "{}", out.stderr);
}

#[test]
fn env_files_together_set_at_most_ten_thousand_variables() {
    let env = store();
    let lines =
        |prefix: &str, n: usize| -> String { (0..n).map(|i| format!("{prefix}{i}=x\n")).collect() };
    std::fs::write(env.repo.join("a.env"), lines("A", 6_000)).unwrap();
    std::fs::write(env.repo.join("b.env"), lines("B", 4_000)).unwrap();
    let args = ["exec", "--env-file", "a.env", "--env-file", "b.env"];
    let out = env.run(&[&args[..], &["--", "true"]].concat());
    out.assert_code(0);
    // One more line in the second file is one too many, and named.
    std::fs::write(env.repo.join("b.env"), lines("B", 4_001)).unwrap();
    let out = env.run(&[&args[..], &["--", "true"]].concat());
    out.assert_code(1);
    assert!(
        out.stderr.contains("b.env:4001") && out.stderr.contains("at most 10000"),
        "{}",
        out.stderr
    );
}

#[test]
fn names_that_collide_or_are_invalid_fail_before_the_command_runs() {
    let env = store();
    env.run_stdin(&["set", "clash/db-password"], b"first-value")
        .assert_success();
    env.run_stdin(&["set", "clash/db_password"], b"second-value")
        .assert_success();
    env.run_stdin(&["set", "digit/2fa"], b"123456")
        .assert_success();
    env.run_stdin(&["set", "nul/blob"], b"a\0b")
        .assert_success();
    let marker = env.root.join("ran");
    let touch = format!("touch {}", marker.display());
    for (folder, name) in [
        ("clash", "errors_exec_collision"),
        ("digit", "errors_exec_invalid_name"),
        ("nul", "errors_exec_nul"),
    ] {
        let out = env.run(&["exec", folder, "--", "sh", "-c", &touch]);
        out.assert_code(1);
        snap(name, &out);
        assert!(!out.stderr.contains("-value") && !out.stderr.contains("123456"));
    }
    assert!(!marker.exists(), "the command ran despite the error");
    let out = env.run(&["exec", "--", "true"]);
    out.assert_code(1);
    assert!(out.stderr.contains("FOLDER"), "{}", out.stderr);
    let out = env.run(&["exec", "prod/app"]);
    out.assert_code(2);
}

#[test]
fn the_exit_code_is_the_commands_own() {
    let env = store();
    for mask in [false, true] {
        let mut args = vec!["exec"];
        if mask {
            args.push("--mask");
        }
        args.extend(["prod/app", "--", "sh", "-c", "exit 7"]);
        env.run(&args).assert_code(7);
        let last = args.len() - 3;
        args.truncate(last);
        args.push("no-such-command-here");
        let out = env.run(&args);
        out.assert_code(127);
        assert!(
            out.stderr.contains("no-such-command-here"),
            "{}",
            out.stderr
        );
        args.pop();
        let not_executable = env.root.join("not-executable");
        std::fs::write(&not_executable, "echo hi\n").unwrap();
        args.push(not_executable.to_str().unwrap());
        env.run(&args).assert_code(126);
    }
}

#[test]
fn mask_replaces_values_in_stdout_and_stderr() {
    let env = store();
    let out = env.run(&[
        "exec",
        "--mask",
        "prod/app",
        "--",
        "sh",
        "-c",
        "printf 'pw=%s\\n' \"$DB_PASSWORD\"; printf 'key=%s\\n' \"$API_KEY\" >&2; \
         echo 'just line two'; echo 'done'",
    ]);
    out.assert_success();
    assert_eq!(out.stdout, "pw=***\njust ***\ndone\n");
    assert_eq!(out.stderr, "key=***\n");
}

/// Starts `sesto exec` with a child that reports SIGTERM and exits 42; returns when
/// the child is ready.
fn start_trapping(env: &TestEnv, mask: bool) -> std::process::Child {
    let mut args = vec!["exec"];
    if mask {
        args.push("--mask");
    }
    args.extend([
        "prod/app",
        "--",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let mut child = env
        .sesto(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.as_mut().unwrap());
    reader.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    child
}

#[test]
fn signals_sent_to_sesto_reach_the_command() {
    let env = store();
    for mask in [false, true] {
        let mut child = start_trapping(&env, mask);
        // SAFETY: kill on the pid of a child we own and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "sesto exec ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut rest = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut rest).unwrap();
        assert_eq!(status.code(), Some(42), "mask {mask}");
        assert_eq!(rest, "got TERM\n", "mask {mask}");
    }
}

#[test]
fn export_formats_read_back_exactly() {
    let env = store();
    // shell: sh itself reads the values back.
    let script = stdout_bytes(&env, &["export", "prod/app", "--format", "shell"]);
    std::fs::write(env.root.join("vars.sh"), &script).unwrap();
    let mut cmd = env.command("sh");
    cmd.args(["-c", ". \"$1\"; env -0", "sh"])
        .arg(env.root.join("vars.sh"));
    let got = parse_env0(&cmd.output().unwrap().stdout);
    for (name, value) in expected() {
        assert_eq!(got.get(&name), Some(&value), "{name}");
    }

    // A folder with no secrets of its own (only a folder) gives no
    // variables, and says so on stderr.
    env.run_stdin(&["set", "prod/outer/inner/x"], b"x")
        .assert_success();
    let out = env.run(&["export", "prod/outer", "--format", "json"]);
    out.assert_success();
    assert_eq!(out.stdout.trim(), "{}");
    assert!(
        out.stderr.contains("prod/outer holds no secrets directly"),
        "{}",
        out.stderr
    );

    // JSON and YAML need UTF-8: the folder with raw bytes fails, naming the secret.
    let out = env.run(&["export", "prod/app", "--format", "json"]);
    out.assert_code(1);
    assert!(
        out.stderr.contains("RAW_BYTES (prod/app/RAW_BYTES)"),
        "{}",
        out.stderr
    );
    env.run(&["rm", "prod/app/RAW_BYTES"]).assert_success();
    let mut want = expected();
    want.remove("RAW_BYTES");
    let json: BTreeMap<String, String> =
        serde_json::from_slice(&stdout_bytes(&env, &["export", "prod/app", "-f", "json"])).unwrap();
    let yaml: BTreeMap<String, String> =
        serde_yaml::from_slice(&stdout_bytes(&env, &["export", "prod/app", "-f", "yaml"])).unwrap();
    for map in [json, yaml] {
        let map: BTreeMap<String, Vec<u8>> =
            map.into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
        assert_eq!(map, want);
    }

    // -o writes a private file atomically.
    env.run(&["export", "prod/app", "-o", "app.env"])
        .assert_success();
    let file = env.repo.join("app.env");
    assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("API_KEY=\"line one\\nline two\"\n"),
        "{text}"
    );
}

#[test]
fn export_for_github_actions_masks_then_sets_variables() {
    let env = store();
    env.run(&["rm", "prod/app/RAW_BYTES"]).assert_success();
    let github_env = env.root.join("github_env");
    std::fs::write(&github_env, "EARLIER=1\n").unwrap();
    let mut cmd = env.sesto(&["export", "prod/app", "--format", "github-actions"]);
    cmd.env("GITHUB_ENV", &github_env);
    let out = run_cmd(cmd);
    out.assert_success();
    // stdout holds the mask commands, one per value line, and nothing else.
    let masks: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(masks.len(), 4, "{masks:?}");
    assert!(masks.iter().all(|l| l.starts_with("::add-mask::")));
    assert!(masks.contains(&"::add-mask::line two"));
    assert!(out.stderr.contains("3 variable(s)"), "{}", out.stderr);
    // The file: what was there, then one heredoc block per variable, which the
    // runner reads as NAME<<DELIMITER … DELIMITER.
    let text = std::fs::read_to_string(&github_env).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("EARLIER=1"));
    let mut vars = BTreeMap::new();
    while let Some(head) = lines.next() {
        let (name, delim) = head.split_once("<<").unwrap();
        assert!(delim.starts_with("ghadelimiter_") && delim.len() > 40);
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delim {
                break;
            }
            value.push(l);
        }
        vars.insert(name.to_string(), value.join("\n").into_bytes());
    }
    let mut want = expected();
    want.remove("RAW_BYTES");
    // The runner joins a block's lines with \n: the value with a trailing newline
    // comes back with it.
    assert_eq!(vars, want);
}

#[test]
fn render_fills_references_and_leaves_other_braces() {
    let env = store();
    let tmpl = env.repo.join("config.tmpl");
    std::fs::write(
        &tmpl,
        "db: {{ sesto://prod/db#url }}\nuser: {{sesto://prod/db#user}}\n\
         cert: \"{{ sesto://prod/app/tls.cert }}\"\nhelm: {{ .Values.image }}\n",
    )
    .unwrap();
    let out = env.run(&["render", "config.tmpl"]);
    out.assert_success();
    let first = out.stdout.clone();
    assert_eq!(
        out.stdout,
        "db: postgres://db:5432/app\nuser: app\ncert: \"grüß 🔑\"\nhelm: {{ .Values.image }}\n"
    );
    env.run(&["render", "config.tmpl", "-o", "config.yaml"])
        .assert_success();
    let file = env.repo.join("config.yaml");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), out.stdout);
    assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    let piped = run_cmd_stdin(env.sesto(&["render", "-"]), b"{{ sesto://prod/db#user }}");
    assert_eq!(piped.stdout, "app");

    // A bad reference fails with the file and line, and writes nothing.
    std::fs::write(&tmpl, "ok: 1\nbad: {{ sesto://prod/db#nope }}\n").unwrap();
    let out = env.run(&["render", "config.tmpl", "-o", "config.yaml"]);
    out.assert_code(1);
    snap("errors_render_missing_field", &out);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), first);
    std::fs::write(&tmpl, "a\n\nx: {{ sesto://../etc/passwd }}\n").unwrap();
    let out = env.run(&["render", "config.tmpl"]);
    out.assert_code(1);
    snap("errors_render_bad_reference", &out);
}

#[test]
fn nothing_is_prompted_without_a_terminal_or_key() {
    let env = store();
    std::fs::remove_file(env.home.join(".ssh/id_ed25519")).unwrap();
    for args in [
        &["exec", "prod/app", "--", "true"][..],
        &["export", "prod/app"],
        &["render", "-"],
    ] {
        let mut cmd = env.sesto(args);
        common::without_terminal(&mut cmd);
        let out = run_cmd_stdin(cmd, b"{{ sesto://prod/db#url }}");
        out.assert_code(1);
        assert!(
            out.stderr.contains("no identity"),
            "{args:?}: {}",
            out.stderr
        );
    }
}
