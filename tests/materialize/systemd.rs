//! The systemd units of `examples/materialize/` run as systemd would run them:
//! every `ExecStartPre=`, `ExecStart=` and `ExecReload=` line, split on spaces (the units use no
//! quoting, which is checked), with the unit's `Environment=`, `EnvironmentFile=`,
//! `LoadCredential=` (`%d`), `RuntimeDirectory=` and `WorkingDirectory=`, the
//! server's paths replaced by a temporary directory and the binaries by the ones
//! under test. The server reads with a deploy key granted `prod` only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{run_cmd, tool_path, without_terminal, KeyKind, TestEnv};
use super::watch::{wait_for, Running};
use super::{s, CERT, KEY, NEW_KEY};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/materialize")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `[Service]` settings of a unit, in order, repeated keys kept.
fn service(unit: &str) -> Vec<(String, String)> {
    let mut section = "";
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section == "[Service]" {
            let (k, v) = line.split_once('=').expect("key=value");
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

fn values<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Where the server's paths go in the test.
struct Server {
    subst: Vec<(String, String)>,
    home: PathBuf,
}

impl Server {
    fn fill(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (from, to) in &self.subst {
            text = text.replace(from.as_str(), to);
        }
        text
    }

    /// A command line of a unit, ready to run as the service would.
    fn command(&self, settings: &[(String, String)], line: &str) -> Command {
        assert!(
            !line.contains(['"', '\'', '\\']),
            "the test splits on spaces; quoting would need systemd's rules: {line}"
        );
        let line = self.fill(line);
        let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
        let mut cmd = Command::new(words[0]);
        cmd.args(&words[1..])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LANG", "C");
        for env in values(settings, "Environment") {
            let (k, v) = env.split_once('=').unwrap();
            cmd.env(k, self.fill(v));
        }
        for file in values(settings, "EnvironmentFile") {
            let text = std::fs::read_to_string(self.fill(file)).unwrap();
            for line in text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                let (k, v) = line.split_once('=').unwrap();
                cmd.env(k, v);
            }
        }
        if let Some(dir) = values(settings, "WorkingDirectory").first() {
            cmd.current_dir(self.fill(dir));
        }
        // A service has no controlling terminal.
        without_terminal(&mut cmd);
        cmd
    }
}

#[test]
#[cfg_attr(missing_git, ignore = "needs git: apt-get install git")]
fn systemd_examples_run_for_real() {
    super::require_tool("git");
    let env = TestEnv::new();
    super::tls_store(&env);
    let deploy_key = env.ssh_keygen("web1-deploy", KeyKind::Ed25519, None);
    let pub_file = format!("{}.pub", deploy_key.display());
    env.run(&["member", "add", "web1-deploy", "--key-file", &pub_file])
        .assert_success();
    env.run(&["grant", "web1-deploy", "prod"]).assert_success();
    let remote = env.publish("secrets.git");
    let trust = env.run(&["trust"]);
    trust.assert_success();
    let fingerprint = trust
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .expect("an admin fingerprint")
        .to_string();

    // The server: its own home, a clone, /etc/sesto, credentials, /run.
    let root = env.root.join("server");
    let server = Server {
        subst: vec![
            ("/srv/secrets".into(), s(&root.join("srv/secrets")).into()),
            (
                "/run/secrets/app".into(),
                s(&root.join("run/secrets/app")).into(),
            ),
            ("/etc/sesto".into(), s(&root.join("etc/sesto")).into()),
            ("%d".into(), s(&root.join("credentials")).into()),
            (
                "/usr/local/bin/sesto".into(),
                env!("CARGO_BIN_EXE_sesto").into(),
            ),
            ("/usr/bin/git".into(), s(&tool_path("git").unwrap()).into()),
            ("/bin/kill".into(), s(&tool_path("kill").unwrap()).into()),
        ],
        home: root.join("home"),
    };
    for d in ["home", "srv", "etc/sesto", "credentials", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(env.gitconfig(), server.home.join(".gitconfig")).unwrap();
    run_cmd({
        let mut c = env.command("git");
        c.args(["clone", "--quiet", s(&remote), &server.fill("/srv/secrets")]);
        c
    })
    .assert_success();
    // The setup the README gives.
    std::fs::copy(&deploy_key, server.fill("/etc/sesto/deploy-key")).unwrap();
    std::fs::write(
        server.fill("/etc/sesto/materialize.env"),
        format!("SESTO_TRUST={fingerprint}\n"),
    )
    .unwrap();

    // systemd's own check of the units, where systemd is installed.
    if let Some(analyze) = tool_path("systemd-analyze") {
        let units = root.join("units");
        std::fs::create_dir_all(&units).unwrap();
        let mut cmd = Command::new(analyze);
        cmd.args(["verify", "--man=no"]);
        for name in [
            "sesto-pull.service",
            "sesto-pull.timer",
            "sesto-materialize.service",
        ] {
            let text = example(name).replace("/usr/local/bin/sesto", env!("CARGO_BIN_EXE_sesto"));
            std::fs::write(units.join(name), text).unwrap();
            cmd.arg(units.join(name));
        }
        let out = run_cmd(cmd);
        out.assert_success();
        assert_eq!(out.stderr, "", "systemd-analyze verify");
    }

    let pull = service(&example("sesto-pull.service"));
    let materialize = service(&example("sesto-materialize.service"));
    assert!(example("sesto-pull.timer").contains("OnUnitActiveSec="));
    // Every command line of the units is one this test runs.
    for (unit, ran) in [
        (&pull, &["ExecStart"][..]),
        (&materialize, &["ExecStartPre", "ExecStart", "ExecReload"]),
    ] {
        for (key, _) in unit.iter().filter(|(k, _)| k.starts_with("Exec")) {
            assert!(
                ran.contains(&key.as_str()),
                "{key}= is not run by this test"
            );
        }
    }

    // What systemd does before ExecStart: the credential, the runtime directory.
    for cred in values(&materialize, "LoadCredential") {
        let (name, from) = cred.split_once(':').unwrap();
        std::fs::copy(server.fill(from), root.join("credentials").join(name)).unwrap();
    }
    let mode = u32::from_str_radix(values(&materialize, "RuntimeDirectoryMode")[0], 8).unwrap();
    for dir in values(&materialize, "RuntimeDirectory") {
        let dir = root.join("run").join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let files = PathBuf::from(server.fill("/run/secrets/app"));

    let pre = values(&materialize, "ExecStartPre");
    assert_eq!(pre.len(), 1);
    let out = run_cmd(server.command(&materialize, pre[0]));
    out.assert_success();
    super::assert_no_values(&super::common::snapshot_text(&out));
    assert_eq!(std::fs::read(files.join("key.pem")).unwrap(), KEY);

    let start = values(&materialize, "ExecStart");
    assert_eq!(start.len(), 1);
    assert!(start[0].contains("--watch"), "{}", start[0]);
    let mut running = Running::start(server.command(&materialize, start[0]), &root, "unit");
    wait_for("the unit's first write", || files.join("old.pem").exists());
    assert_eq!(std::fs::read(files.join("cert.pem")).unwrap(), CERT);
    assert_eq!(std::fs::read(files.join("key.pem")).unwrap(), KEY);
    assert!(
        !files.join("password").exists(),
        "prod/db is not the unit's folder"
    );

    // An admin rotates the key and pushes; the timer's pull brings it.
    env.run_stdin(&["set", "prod/tls/key.pem"], NEW_KEY)
        .assert_success();
    env.run(&["rm", "prod/tls/old.pem"]).assert_success();
    env.git(&["push", "--quiet"]).assert_success();
    for line in values(&pull, "ExecStart") {
        run_cmd(server.command(&pull, line)).assert_success();
    }
    let latency = wait_for("the pulled change", || {
        std::fs::read(files.join("key.pem")).unwrap() == NEW_KEY && !files.join("old.pem").exists()
    });
    eprintln!("systemd example: files updated {latency:?} after the pull unit's git pull");

    // systemctl reload: SIGHUP re-reads and keeps running.
    let reload = values(&materialize, "ExecReload");
    assert_eq!(reload.len(), 1);
    let line = reload[0].replace("$MAINPID", &running.pid().to_string());
    run_cmd(server.command(&materialize, &line)).assert_success();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(running.alive(), "SIGHUP must not stop it");

    // systemctl stop: SIGTERM, exit 0, files in place.
    let (out, took) = running.terminate();
    eprintln!("systemd example: stopped {took:?} after SIGTERM");
    out.assert_success();
    super::assert_no_values(&super::common::snapshot_text(&out));
    assert_eq!(std::fs::read(files.join("key.pem")).unwrap(), NEW_KEY);
}
