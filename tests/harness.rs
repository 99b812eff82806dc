//! Tests of the test harness itself (tests/common): redaction, the sealed
//! environment, and the lint that keeps tests needing a tool ignored where it is
//! missing. They run no `sesto` command.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{
    insta_settings, pub_key, redact, require_tool, snapshot_text, tools, KeyKind, TestEnv,
};
use regex::Regex;

#[test]
fn redact_replaces_ids_keys_dates_and_commits() {
    // Made of two halves so that `sesto scan` of this file finds no age key.
    let age_key = concat!(
        "AGE-SECRET-",
        "KEY-1QQPQZRY9X8GF2TVDW0S3JN54KHCE6MUA7LQQPQZRY9X8GF2TVDW0S3JN54K"
    );
    let text = format!(
        "\
node 3f2a9c0d1e2f3a4b5c6d7e8f90a1b2c3 in store 6f1c00112233445566778899aabbccdd
fpr SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s ok
key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop
key ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC+/x== bob
recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
identity {age_key}
updated: 2026-11-23T10:00:00Z, also 2026-01-01T00:00:00+00:00 and 2026-01-01 00:00:00 +0000
commit 0123456789abcdef0123456789abcdef01234567 and abc12345 and (fedcba9876)
previous: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
path /tmp/sesto-test-Ab12Cd/repo/.sesto and '/var/tmp/x/sesto-test-zz99ZZ'
"
    );
    insta::assert_snapshot!(redact(&text), @r"
    node [ID] in store [ID]
    fpr [FPR] ok
    key [SSH-KEY] alice@laptop
    key [SSH-KEY] bob
    recipient [AGE-RECIPIENT]
    identity [AGE-SECRET-KEY]
    updated: [DATE], also [DATE] and [DATE]
    commit [COMMIT] and [COMMIT] and ([COMMIT])
    previous: [SHA256]
    path [TMP]/repo/.sesto and '[TMP]'
    ");
}

#[test]
fn redact_leaves_ordinary_text_alone() {
    // Short hex runs, hex inside longer words, upper case and ordinary numbers stay.
    let text = "deadline facade cafe abcdef 123456 ABCDEF0123 xdeadbeef0 deadbeef0x \
                v1.2.3 prod/db 0600 exit: 2";
    assert_eq!(redact(text), text);
}

#[test]
fn insta_settings_apply_the_same_filters_as_redact() {
    let out = common::Output {
        stdout: "id 3f2a9c0d1e2f3a4b5c6d7e8f90a1b2c3\n".into(),
        stderr: "at 2026-01-01T00:00:00Z by age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
        code: 1,
    };
    let text = snapshot_text(&out);
    insta_settings().bind(|| {
        insta::assert_snapshot!(text, @r"
        exit: 1
        --- stdout
        id [ID]

        --- stderr
        at [DATE] by [AGE-RECIPIENT]
        ");
    });
    assert_eq!(
        redact(&text),
        "exit: 1\n--- stdout\nid [ID]\n\n--- stderr\nat [DATE] by [AGE-RECIPIENT]"
    );
}

#[test]
fn sealed_env_hides_the_host_environment() {
    let env = TestEnv::new();
    let out = common::run_cmd(env.command("env"));
    out.assert_success();
    let mut names: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "GIT_AUTHOR_DATE",
            "GIT_COMMITTER_DATE",
            "GIT_CONFIG_GLOBAL",
            "GIT_CONFIG_NOSYSTEM",
            "GIT_TERMINAL_PROMPT",
            "HOME",
            "LANG",
            "PATH",
            "SESTO_EDIT_DIR",
            "SESTO_NOW",
            "TZ",
            "XDG_CONFIG_HOME",
            "XDG_RUNTIME_DIR",
            "XDG_STATE_HOME",
        ]
    );
    let home = format!("HOME={}", env.home.display());
    assert!(
        out.stdout.lines().any(|line| line == home),
        "{}",
        out.stdout
    );
    if let Some(host_home) = std::env::var_os("HOME") {
        let host_home = format!("={}\n", host_home.to_string_lossy());
        assert!(
            !out.stdout.contains(&host_home),
            "host HOME leaked:\n{}",
            out.stdout
        );
    }
    // The working directory is the repository, and the private directories are private.
    let pwd = common::run_cmd(env.command("pwd"));
    assert_eq!(pwd.stdout.trim_end(), env.repo.to_str().unwrap());
    for dir in [&env.xdg_runtime, &env.edit] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
}

#[test]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn git_sees_only_the_test_identity_and_clock() {
    require_tool("git");
    let env = TestEnv::new();
    env.init_repo();
    assert_eq!(env.git(&["config", "user.name"]).stdout, "Test User\n");
    assert_eq!(
        env.git(&["symbolic-ref", "HEAD"]).stdout,
        "refs/heads/main\n"
    );
    env.git(&["commit", "--quiet", "--allow-empty", "-m", "first"])
        .assert_success();
    // Unix seconds: how git prints an ISO date at UTC changed across versions.
    let log = env.git(&["log", "--format=%an <%ae> %at %ct"]);
    assert_eq!(
        log.stdout,
        "Test User <test@example.com> 1767225600 1767225600\n"
    );
}

#[test]
#[cfg_attr(
    missing_ssh,
    ignore = "needs ssh-keygen, ssh, ssh-add, ssh-agent: apt-get install openssh-client"
)]
fn ssh_keygen_makes_keys_in_the_test_home() {
    require_tool("ssh-keygen");
    let env = TestEnv::new();
    let alice = env.ssh_keygen("alice", KeyKind::Ed25519, None);
    assert_eq!(alice, env.home.join(".ssh/alice"));
    let public = pub_key(&alice);
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert_eq!(redact(&public), "[SSH-KEY] alice");

    let bob = env.ssh_keygen("bob", KeyKind::Rsa, Some("correct horse"));
    assert_eq!(redact(&pub_key(&bob)), "[SSH-KEY] bob");
    let private = std::fs::read_to_string(&bob).unwrap();
    assert!(private.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"));
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn age_keygen_returns_the_recipient() {
    require_tool("age-keygen");
    let env = TestEnv::new();
    let (path, recipient) = env.age_keygen("carol");
    assert!(path.starts_with(&env.home));
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(redact(&recipient), "[AGE-RECIPIENT]");
    let identity = std::fs::read_to_string(&path).unwrap();
    assert!(redact(&identity).contains("[AGE-SECRET-KEY]"));
}

#[test]
fn stdin_reaches_the_child() {
    let env = TestEnv::new();
    let out = common::run_cmd_stdin(env.command("cat"), b"piped\n");
    assert_eq!(out.stdout, "piped\n");
    // And without input a child reading stdin sees end of file at once, never a terminal.
    let out = common::run_cmd(env.command("cat"));
    out.assert_success();
    assert_eq!(out.stdout, "");
}

#[test]
fn scripts_run_with_the_sealed_environment() {
    let env = TestEnv::new();
    let editor = env.write_script("editor", r#"printf 'edited\n' > "$1""#);
    let file = env.edit.join("f");
    let mut cmd = env.command(&editor);
    cmd.arg(&file);
    common::run_cmd(cmd).assert_success();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "edited\n");
    assert_eq!(env.edit_dir_entries(), ["f"]);
}

/// The lint of issue 15: a test that needs a tool must be reported as ignored where
/// the tool is missing. For every `#[test]` fn in tests/, the tools it passes to
/// `require_tool`/`require_tools`, itself or through functions of its own test crate,
/// must each have the annotation of their build.rs group, with that group's reason,
/// and it must have no other such annotation.
#[test]
fn every_test_needing_a_tool_is_ignored_where_the_tool_is_missing() {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut problems = Vec::new();
    let mut checked = 0;
    for entry in fs::read_dir(&tests).unwrap() {
        let file = entry.unwrap().path();
        if file.extension() != Some(OsStr::new("rs")) {
            continue;
        }
        // A test crate: tests/<name>.rs and its modules under tests/<name>/.
        let mut files = vec![file.clone()];
        let dir = file.with_extension("");
        if dir.is_dir() {
            for module in walkdir::WalkDir::new(&dir) {
                let module = module.unwrap().into_path();
                if module.extension() == Some(OsStr::new("rs")) {
                    files.push(module);
                }
            }
        }
        let fns: Vec<TextFn> = files.iter().flat_map(|f| text_fns(f)).collect();
        for f in fns.iter().filter(|f| f.is_test) {
            checked += 1;
            let mut needed = BTreeSet::new();
            for tool in tools_needed(&f.name, &fns, &mut BTreeSet::new()) {
                match tools::group_of(&tool) {
                    Some(group) => needed.insert(group.name),
                    None => {
                        problems.push(format!("{}: {tool} has no group in build.rs", f.place));
                        continue;
                    }
                };
            }
            let mut annotated = BTreeSet::new();
            for (group, reason) in &f.ignored_if_missing {
                match tools::GROUPS.iter().find(|g| g.name == group) {
                    Some(g) if g.reason() == *reason => {}
                    Some(g) => problems.push(format!(
                        "{}: missing_{group} should say {:?}, not {reason:?}",
                        f.place,
                        g.reason()
                    )),
                    None => problems.push(format!("{}: no group {group} in build.rs", f.place)),
                }
                annotated.insert(group.as_str());
            }
            for group in needed.difference(&annotated) {
                let reason = tools::GROUPS
                    .iter()
                    .find(|g| g.name == *group)
                    .unwrap()
                    .reason();
                problems.push(format!(
                    "{}: add #[cfg_attr(missing_{group}, ignore = {reason:?})]",
                    f.place
                ));
            }
            for group in annotated.difference(&needed) {
                problems.push(format!(
                    "{}: ignored when {group} is missing but never requires it",
                    f.place
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "found only {checked} tests in {}",
        tests.display()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A function as the lint sees it in a test source: lines, not syntax.
struct TextFn {
    name: String,
    /// `tests/<file>.rs: <name>`, for messages.
    place: String,
    is_test: bool,
    /// Its `#[cfg_attr(missing_<group>, ignore = "<reason>")]`s: (group, reason).
    ignored_if_missing: Vec<(String, String)>,
    /// String literals passed to `require_tool` and `require_tools` in its body.
    tools: BTreeSet<String>,
    /// Names it calls as `name(` or `Type::name(`, methods excluded.
    calls: BTreeSet<String>,
}

/// The functions in `file`: each starts at a `fn` line and ends at the `}` line of
/// the same indentation (rustfmt's layout); its attributes are the lines above it up
/// to a blank line or the end of the previous item. Comment lines are left out.
fn text_fns(file: &Path) -> Vec<TextFn> {
    let fn_line = Regex::new(r"^(\s*)(?:pub(?:\([\w:]+\))? )?(?:const )?fn (\w+)").unwrap();
    let annotation =
        Regex::new(r#"cfg_attr\(\s*missing_(\w+),\s*ignore\s*=\s*"([^"]*)",?\s*\)"#).unwrap();
    let require = Regex::new(r"require_tools?\(").unwrap();
    let call = Regex::new(r"(?:^|[^.\w])(\w+)\(").unwrap();
    let text = fs::read_to_string(file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut fns = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(m) = fn_line.captures(line) else {
            continue;
        };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let end = format!("{}}}", &m[1]);
        let body_end = (i..lines.len())
            .find(|&j| lines[j] == end)
            .unwrap_or(lines.len());
        let body: String = lines[i + 1..body_end]
            .iter()
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| [l, "\n"])
            .collect();
        let attrs_start = (0..i)
            .rev()
            .find(|&j| {
                let l = lines[j].trim_end();
                l.trim().is_empty() || l.ends_with('}') || l.ends_with(';')
            })
            .map_or(0, |j| j + 1);
        let attrs = lines[attrs_start..i].join("\n");
        let mut tools = BTreeSet::new();
        for m in require.find_iter(&body) {
            let args = &body[m.end()..];
            let mut depth = 1;
            let len = args
                .find(|c| {
                    depth += i32::from(c == '(') - i32::from(c == ')');
                    depth == 0
                })
                .unwrap_or(args.len());
            tools.extend(args[..len].split('"').skip(1).step_by(2).map(String::from));
        }
        fns.push(TextFn {
            name: m[2].to_string(),
            place: format!(
                "{}: {}",
                file.strip_prefix(env!("CARGO_MANIFEST_DIR"))
                    .unwrap_or(file)
                    .display(),
                &m[2]
            ),
            is_test: attrs.lines().any(|l| l.trim() == "#[test]"),
            ignored_if_missing: annotation
                .captures_iter(&attrs)
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect(),
            tools,
            calls: call
                .captures_iter(&body)
                .map(|c| c[1].to_string())
                .collect(),
        });
    }
    fns
}

/// The tools `name` requires, itself or through the functions it calls (every
/// function of that name: the lint does not resolve types).
fn tools_needed(name: &str, fns: &[TextFn], seen: &mut BTreeSet<String>) -> BTreeSet<String> {
    let mut tools = BTreeSet::new();
    if !seen.insert(name.to_string()) {
        return tools;
    }
    for f in fns.iter().filter(|f| f.name == name) {
        tools.extend(f.tools.iter().cloned());
        for callee in &f.calls {
            tools.extend(tools_needed(callee, fns, seen));
        }
    }
    tools
}
