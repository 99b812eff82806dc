//! A team around one bare remote, for tests that replay how teams use sesto: each
//! member has their own home, SSH key, git identity, trust state and clone, and
//! reaches the remote with the real `git`. git runs sesto's merge driver itself, so
//! every command gets the member's key through `SESTO_IDENTITY_FILE` and sesto on
//! `PATH`.
//!
//! Every sesto run is checked not to have panicked (exit 101), and every git run
//! not to have shown a driver's panic. Outsiders' views of the store (what a key,
//! and every node key it learns, opens) go through the reference `age` CLI.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sesto::format::crypto;
use sesto::format::node::{self, Body, NodeId, Roster};

use super::{path_with_sesto, pub_key, run_cmd, run_cmd_stdin, snapshot_text, Output, TestEnv};

/// A commit date later than every honest one (`GIT_COMMITTER_DATE`).
pub const FUTURE: &str = "2030-01-01T00:00:00Z";

/// Whether sesto commits its own changes, or people commit them (an
/// infrastructure repository: `sesto.commit` false).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Commit,
    Infra,
}

/// How a member takes in what others pushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// `sesto sync`.
    Sync,
    /// `git pull` (a merge), settled by `sesto resolve`, then `git push`.
    Pull,
    /// `git pull --rebase`, `sesto resolve` + `git rebase --continue` while it
    /// stops, then `git push`.
    Rebase,
}

/// One person: their home, key and clone. Made by [`Team::person`].
pub struct Member {
    pub name: String,
    pub home: PathBuf,
    /// The private SSH key (ed25519, from `ssh-keygen`); `.pub` beside it.
    pub key: PathBuf,
    pub public: String,
    pub clone: PathBuf,
    config: PathBuf,
    state: PathBuf,
}

/// Node files by id (32 hex digits), as bytes.
pub type Nodes = BTreeMap<String, Vec<u8>>;

/// A node some keys open: its body and who signed it (`None`: no valid signature).
pub struct Opened {
    pub id: String,
    pub body: Body,
    pub signer: Option<String>,
}

impl Opened {
    pub fn value(&self) -> Option<&[u8]> {
        self.body.value.as_ref().map(|v| v.expose_secret())
    }
}

pub struct Team {
    pub env: TestEnv,
    pub remote: PathBuf,
    pub mode: Mode,
}

/// Panics unless `out` is free of panics: exit 101 or a panic message (git shows
/// its merge driver's stderr).
#[track_caller]
pub fn no_panic(what: &str, out: Output) -> Output {
    assert!(
        out.code != 101 && !out.stderr.contains("panicked at"),
        "{what} panicked:\n{}",
        snapshot_text(&out)
    );
    out
}

impl Team {
    /// The remote and alice, its admin, with a store pushed to `main`. In
    /// [`Mode::Infra`] the repository also holds infrastructure code.
    pub fn new(mode: Mode) -> (Team, Member) {
        Team::new_in(mode, node::FORMAT)
    }

    /// [`Team::new`] with a store made in `format` (`sesto init --format`).
    pub fn new_in(mode: Mode, format: u32) -> (Team, Member) {
        let env = TestEnv::new();
        let remote = env.bare_repo("remote.git");
        let team = Team { env, remote, mode };
        let alice = team.person("alice");
        team.git_at(&team.env.root, &["init", "-q", path_str(&alice.clone)]);
        if mode == Mode::Infra {
            fs::write(alice.clone.join("main.tf"), "# infrastructure\n").unwrap();
            team.git_ok(&alice, &["add", "main.tf"]);
            team.git_ok(&alice, &["commit", "-qm", "infrastructure"]);
        }
        let format = format.to_string();
        team.ok(&alice, &["init", "--name", "alice", "--format", &format]);
        team.configure(&alice);
        team.commit(&alice, "sesto init");
        team.git_ok(&alice, &["remote", "add", "origin", path_str(&team.remote)]);
        team.git_ok(&alice, &["push", "-q", "-u", "origin", "HEAD"]);
        (team, alice)
    }

    /// A person with a home, an ed25519 key and a git identity; no clone yet.
    pub fn person(&self, name: &str) -> Member {
        let base = self.env.root.join("people").join(name);
        let m = Member {
            name: name.to_string(),
            home: base.join("home"),
            key: base.join("home/.ssh/id_ed25519"),
            public: String::new(),
            clone: self.env.root.join(name),
            config: base.join("config"),
            state: base.join("state"),
        };
        for dir in [&m.home.join(".ssh"), &m.config, &m.state] {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(
            m.home.join(".gitconfig"),
            format!(
                "[user]\n\tname = {name}\n\temail = {name}@example.com\n\
                 [init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
            ),
        )
        .unwrap();
        let mut cmd = self.env.command("ssh-keygen");
        cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&m.key);
        run_cmd(cmd).assert_success();
        Member {
            public: pub_key(&m.key),
            ..m
        }
    }

    /// Clones the remote for `m`, with the team's `sesto.commit`; `setup_git`
    /// registers the merge driver as the README tells members to.
    pub fn clone_for(&self, m: &Member, setup_git: bool) {
        self.git_at(
            &self.env.root,
            &["clone", "-q", path_str(&self.remote), path_str(&m.clone)],
        )
        .assert_success();
        self.configure(m);
        if setup_git {
            self.ok(m, &["setup-git"]);
        }
    }

    fn configure(&self, m: &Member) {
        let on = if self.mode == Mode::Commit {
            "true"
        } else {
            "false"
        };
        self.git_ok(m, &["config", "sesto.commit", on]);
    }

    /// alice adds `name` (with `grant`: a folder and whether to write), pushes,
    /// and the new member clones.
    pub fn join(&self, admin: &Member, name: &str, grant: Option<(&str, bool)>) -> Member {
        let m = self.person(name);
        self.add(admin, &m, grant);
        self.push(admin).assert_success();
        self.clone_for(&m, true);
        m
    }

    /// A second admin called `name`, added by `admin`, committed and pushed,
    /// with a clone of their own.
    pub fn join_admin(&self, admin: &Member, name: &str) -> Member {
        let m = self.person(name);
        let key_file = format!("{}.pub", m.key.display());
        self.ok(
            admin,
            &["member", "add", name, "--admin", "--key-file", &key_file],
        );
        self.commit(admin, &format!("add {name}"));
        self.push(admin).assert_success();
        self.clone_for(&m, true);
        m
    }

    /// `member add` and `grant` by `admin`, committed in either mode.
    pub fn add(&self, admin: &Member, m: &Member, grant: Option<(&str, bool)>) {
        let key_file = format!("{}.pub", m.key.display());
        self.ok(admin, &["member", "add", &m.name, "--key-file", &key_file]);
        if let Some((folder, write)) = grant {
            let mut args = vec!["grant", m.name.as_str(), folder];
            if write {
                args.push("--write");
            }
            self.ok(admin, &args);
        }
        self.commit(admin, &format!("add {}", m.name));
    }

    /// `program` sealed, as `m`, in their clone.
    pub fn command(&self, m: &Member, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = self.env.command(program);
        cmd.current_dir(&m.clone)
            .env("HOME", &m.home)
            .env("XDG_CONFIG_HOME", &m.config)
            .env("XDG_STATE_HOME", &m.state)
            .env("GIT_CONFIG_GLOBAL", m.home.join(".gitconfig"))
            .env("SESTO_IDENTITY_FILE", &m.key)
            .env("GIT_EDITOR", "true")
            .env("PATH", path_with_sesto());
        cmd
    }

    pub fn sesto(&self, m: &Member, args: &[&str]) -> Output {
        let mut cmd = self.command(m, env!("CARGO_BIN_EXE_sesto"));
        cmd.args(args);
        no_panic(&format!("{}: sesto {args:?}", m.name), run_cmd(cmd))
    }

    pub fn sesto_stdin(&self, m: &Member, args: &[&str], input: &[u8]) -> Output {
        self.sesto_env(m, args, input, &[])
    }

    /// `sesto args` as `m` with `input` on stdin and extra environment.
    pub fn sesto_env(
        &self,
        m: &Member,
        args: &[&str],
        input: &[u8],
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = self.command(m, env!("CARGO_BIN_EXE_sesto"));
        cmd.args(args).envs(env.iter().copied());
        no_panic(
            &format!("{}: sesto {args:?}", m.name),
            run_cmd_stdin(cmd, input),
        )
    }

    #[track_caller]
    pub fn ok(&self, m: &Member, args: &[&str]) -> String {
        let out = self.sesto(m, args);
        assert!(
            out.success(),
            "{}: sesto {args:?} failed:\n{}",
            m.name,
            snapshot_text(&out)
        );
        out.stdout
    }

    pub fn set(&self, m: &Member, path: &str, value: &str) -> Output {
        self.sesto_stdin(m, &["set", path], value.as_bytes())
    }

    #[track_caller]
    pub fn set_ok(&self, m: &Member, path: &str, value: &str) {
        let out = self.set(m, path, value);
        assert!(
            out.success(),
            "{}: set {path} failed:\n{}",
            m.name,
            snapshot_text(&out)
        );
    }

    /// What `get` gives `m`, or `None` where it fails.
    pub fn get(&self, m: &Member, path: &str) -> Option<String> {
        let out = self.sesto(m, &["get", path]);
        out.success().then_some(out.stdout)
    }

    /// Every secret `m` can list, with the value `get` gives (folders left out).
    pub fn values(&self, m: &Member) -> BTreeMap<String, String> {
        let out = self.sesto(m, &["find", ""]);
        if !out.success() {
            return BTreeMap::new();
        }
        out.stdout
            .lines()
            .filter(|p| !p.ends_with('/'))
            .filter_map(|p| self.get(m, p).map(|v| (p.to_string(), v)))
            .collect()
    }

    /// The system git as `m` in their clone.
    pub fn git(&self, m: &Member, args: &[&str]) -> Output {
        let mut cmd = self.command(m, "git");
        cmd.args(args);
        no_panic(&format!("{}: git {args:?}", m.name), run_cmd(cmd))
    }

    #[track_caller]
    pub fn git_ok(&self, m: &Member, args: &[&str]) -> String {
        let out = self.git(m, args);
        assert!(
            out.success(),
            "{}: git {args:?} failed:\n{}",
            m.name,
            snapshot_text(&out)
        );
        out.stdout.trim().to_string()
    }

    /// git in `dir` with the test's own environment.
    pub fn git_at(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.env.command("git");
        cmd.current_dir(dir)
            .env("PATH", path_with_sesto())
            .args(args);
        no_panic(&format!("git {args:?}"), run_cmd(cmd))
    }

    /// Commits what is staged, where people commit (infra mode) or where sesto
    /// left something staged; nothing staged is not an error.
    pub fn commit(&self, m: &Member, message: &str) {
        if self.git(m, &["diff", "--cached", "--quiet"]).success() {
            return;
        }
        self.git_ok(m, &["commit", "-qm", message]);
    }

    pub fn push(&self, m: &Member) -> Output {
        self.git(m, &["push", "-q", "origin", "HEAD:main"])
    }

    /// `git pull` with a merge (never a rebase).
    pub fn pull(&self, m: &Member) -> Output {
        self.git(m, &["pull", "-q", "--no-rebase", "--no-edit"])
    }

    pub fn sync(&self, m: &Member) -> Output {
        self.sesto(m, &["sync"])
    }

    /// What a member does after `git pull` stops: `sesto resolve`, then commit
    /// the merge. Returns whether each step worked.
    pub fn finish_merge(&self, m: &Member) -> bool {
        if !self.sesto(m, &["resolve"]).success() {
            return false;
        }
        if self.merging(m) {
            return self.git(m, &["commit", "-q", "--no-edit"]).success();
        }
        true
    }

    /// `m` takes in the remote by `way` and pushes; on failure, the output of
    /// the step that failed (a merge or rebase may be left under way).
    pub fn take_in(&self, m: &Member, way: Way) -> Result<(), Output> {
        let step = |out: Output| if out.success() { Ok(()) } else { Err(out) };
        match way {
            Way::Sync => return step(self.sync(m)),
            Way::Pull => {
                if !self.pull(m).success() {
                    step(self.sesto(m, &["resolve"]))?;
                    if self.merging(m) {
                        step(self.git(m, &["commit", "-q", "--no-edit"]))?;
                    }
                }
            }
            Way::Rebase => {
                let mut out = self.git(m, &["pull", "-q", "--rebase"]);
                let mut rounds = 0;
                while !out.success() {
                    rounds += 1;
                    if rounds > 10 || !self.merging(m) {
                        return Err(out);
                    }
                    step(self.sesto(m, &["resolve"]))?;
                    out = self.git(m, &["rebase", "--continue"]);
                }
            }
        }
        step(self.sesto(m, &["resolve"]))?;
        // What resolve settled after a merge git finished alone is staged
        // for the member to commit where sesto does not (the README's flow);
        // pushed without it, the others would not see it until later.
        if !self.git(m, &["diff", "--cached", "--quiet"]).success() {
            step(self.git(m, &["commit", "-q", "-m", "settle merge"]))?;
        }
        step(self.push(m))
    }

    /// Gives up a merge or rebase left under way, as a member would.
    pub fn abort(&self, m: &Member) {
        if m.clone.join(".git/MERGE_HEAD").exists() {
            self.git(m, &["merge", "--abort"]);
        }
        if self.merging(m) {
            self.git(m, &["rebase", "--abort"]);
        }
    }

    /// Whether a merge or rebase is under way in `m`'s clone.
    pub fn merging(&self, m: &Member) -> bool {
        let git_dir = m.clone.join(".git");
        ["MERGE_HEAD", "rebase-merge", "rebase-apply"]
            .iter()
            .any(|f| git_dir.join(f).exists())
    }

    pub fn head(&self, m: &Member) -> String {
        self.git_ok(m, &["rev-parse", "HEAD"])
    }

    /// The remote's `main`.
    pub fn remote_head(&self) -> String {
        let out = self.git_at(&self.remote, &["rev-parse", "main"]);
        out.assert_success();
        out.stdout.trim().to_string()
    }

    /// The node files in the remote at `rev`.
    pub fn remote_nodes(&self, rev: &str) -> Nodes {
        let list = self.git_at(
            &self.remote,
            &["ls-tree", "-r", "--name-only", rev, "--", ".sesto/nodes"],
        );
        list.assert_success();
        list.stdout
            .lines()
            .map(|path| {
                let mut cmd = self.env.command("git");
                cmd.current_dir(&self.remote)
                    .args(["cat-file", "blob", &format!("{rev}:{path}")]);
                let bytes = cmd.output().unwrap().stdout;
                (id_of(path), bytes)
            })
            .collect()
    }

    /// The node files in `m`'s work tree, at any depth below `nodes/`.
    pub fn clone_nodes(&self, m: &Member) -> Nodes {
        walkdir::WalkDir::new(m.clone.join(".sesto/nodes"))
            .min_depth(1)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let path = e.path();
                (id_of(&path.to_string_lossy()), fs::read(path).unwrap())
            })
            .collect()
    }

    /// `m`'s roster, parsed.
    pub fn roster(&self, m: &Member) -> Roster {
        Roster::decode(&fs::read(m.clone.join(".sesto/roster.yaml")).unwrap()).unwrap()
    }

    /// Decrypts `bytes` with the `age` CLI given identity files and node keys.
    pub fn age_open(&self, ids: &[&Path], keys: &BTreeSet<String>, bytes: &[u8]) -> Option<String> {
        let dir = self.env.root.join("age");
        fs::create_dir_all(&dir).unwrap();
        let (file, key_file) = (dir.join("node.age"), dir.join("keys.txt"));
        fs::write(&file, bytes).unwrap();
        let mut cmd = self.env.command("age");
        cmd.arg("-d");
        for id in ids {
            cmd.arg("-i").arg(id);
        }
        if !keys.is_empty() {
            let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
            fs::write(&key_file, text).unwrap();
            cmd.arg("-i").arg(&key_file);
        }
        cmd.arg(&file);
        let out = run_cmd(cmd);
        out.success().then_some(out.stdout)
    }

    /// Every node key someone holding `ids` (and `keys`) learns from `nodes` by
    /// decrypting what they can, again and again, as the `age` CLI does it.
    pub fn learned_keys(
        &self,
        ids: &[&Path],
        keys: &BTreeSet<String>,
        nodes: &Nodes,
    ) -> BTreeSet<String> {
        let mut keys = keys.clone();
        loop {
            let before = keys.len();
            for bytes in nodes.values() {
                if let Some(plain) = self.age_open(ids, &keys, bytes) {
                    keys.extend(node_keys(&plain));
                }
            }
            if keys.len() == before {
                return keys;
            }
        }
    }

    /// The nodes of `nodes` that `ids` and every key they lead to open.
    pub fn opened(
        &self,
        ids: &[&Path],
        keys: &BTreeSet<String>,
        store: &str,
        nodes: &Nodes,
    ) -> Vec<Opened> {
        let keys = self.learned_keys(ids, keys, nodes);
        nodes
            .iter()
            .filter_map(|(id, bytes)| {
                let plain = self.age_open(ids, &keys, bytes)?;
                let parts = node::split(plain.as_bytes()).ok()?;
                let body = node::decode_body(parts.body).ok()?;
                let message = node::node_signed_message(store, &id.parse().ok()?, parts.body);
                let signer =
                    crypto::verify(&parts.signature.signature, crypto::NODE_NAMESPACE, &message)
                        .ok();
                Some(Opened {
                    id: id.clone(),
                    body,
                    signer,
                })
            })
            .collect()
    }

    /// The id of the node at `path` and its key, found from the root down with
    /// `m`'s key, the `age` CLI and the node keys on the way (an admin's view).
    pub fn locate(&self, m: &Member, nodes: &Nodes, path: &str) -> (String, Option<String>) {
        let root = self.roster(m).root.to_string();
        let (mut id, mut key): (String, Option<String>) = (root, None);
        for name in path.split('/').filter(|n| !n.is_empty()) {
            let keys: BTreeSet<String> = key.iter().cloned().collect();
            let ids: Vec<&Path> = if key.is_none() {
                vec![m.key.as_path()]
            } else {
                vec![]
            };
            let plain = self
                .age_open(&ids, &keys, &nodes[&id])
                .unwrap_or_else(|| panic!("{} cannot open the folder above {name}", m.name));
            let body = node::decode_body(node::split(plain.as_bytes()).unwrap().body).unwrap();
            let e = body
                .child(name)
                .unwrap_or_else(|| panic!("no {name} in {path}"));
            id = e.id.to_string();
            key = Some(e.key.expose_secret().to_string());
        }
        (id, key)
    }

    /// Every path `viewer` (an admin's key) reaches in `nodes` from `root`, with
    /// its node id: file names are random, paths are not.
    pub fn paths(&self, viewer: &Path, root: &NodeId, nodes: &Nodes) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut todo = vec![(String::new(), root.to_string(), None::<String>)];
        while let Some((path, id, key)) = todo.pop() {
            let keys: BTreeSet<String> = key.into_iter().collect();
            let ids: Vec<&Path> = if keys.is_empty() {
                vec![viewer]
            } else {
                vec![]
            };
            let Some(plain) = nodes.get(&id).and_then(|b| self.age_open(&ids, &keys, b)) else {
                continue;
            };
            let Ok(body) = node::split(plain.as_bytes()).and_then(|p| node::decode_body(p.body))
            else {
                continue;
            };
            for e in &body.children {
                let child = format!("{path}/{}", e.name);
                let key = Some(e.key.expose_secret().to_string());
                todo.push((child, e.id.to_string(), key));
            }
            out.insert(path, id);
        }
        out
    }

    /// A new age identity from `age-keygen`: (secret key text, recipient).
    pub fn age_key(&self, name: &str) -> (String, String) {
        let (path, recipient) = self.env.age_keygen(name);
        let text = fs::read_to_string(path).unwrap();
        let secret = text
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
            .unwrap()
            .to_string();
        (secret, recipient)
    }

    /// A node file as a writer would make it: `body` signed with the SSH key
    /// `signer` and encrypted by the `age` CLI to `recipients` (age1… or SSH keys).
    pub fn forge(&self, signer: &Path, store: &str, body: &Body, recipients: &[&str]) -> Vec<u8> {
        let bytes = node::encode_body(body);
        let message = node::node_signed_message(store, &body.id, &bytes);
        let key = ssh_key::PrivateKey::read_openssh_file(signer).unwrap();
        let signature = crypto::sign(&key, crypto::NODE_NAMESPACE, &message).unwrap();
        let plain = node::assemble(&bytes, &signature);
        let dir = self.env.root.join("age");
        fs::create_dir_all(&dir).unwrap();
        let (recipient_file, out) = (dir.join("recipients.txt"), dir.join("forged.age"));
        fs::write(&recipient_file, recipients.join("\n") + "\n").unwrap();
        let mut cmd = self.env.command("age");
        cmd.arg("-R").arg(&recipient_file).arg("-o").arg(&out);
        run_cmd_stdin(cmd, &plain).assert_success();
        fs::read(&out).unwrap()
    }

    /// Writes `bytes` as node `id` in `m`'s work tree and stages it.
    pub fn plant(&self, m: &Member, id: &str, bytes: &[u8]) {
        let rel = node_rel(m, id);
        let path = m.clone.join(&rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        self.git_ok(m, &["add", &rel]);
    }

    /// A rival roster for the store `m`'s clone holds: `m` its only member
    /// and admin, version 1, naming no earlier roster.
    pub fn rival_roster(&self, m: &Member) -> Roster {
        let mut rival = Roster::new(
            [(
                m.name.clone(),
                node::Member {
                    key: m.public.clone(),
                    admin: true,
                    signing_key: None,
                },
            )]
            .into(),
        );
        rival.store = self.roster(m).store;
        rival
    }

    /// Writes a roster signed by `signer` in `m`'s work tree and stages it.
    pub fn plant_roster(&self, m: &Member, roster: &Roster, signer: &Path) {
        let bytes = roster.encode();
        let key = ssh_key::PrivateKey::read_openssh_file(signer).unwrap();
        let sig = crypto::sign(&key, crypto::ROSTER_NAMESPACE, &bytes).unwrap();
        fs::write(m.clone.join(".sesto/roster.yaml"), &bytes).unwrap();
        fs::write(m.clone.join(".sesto/roster.sig"), sig).unwrap();
        self.git_ok(m, &["add", ".sesto/roster.yaml", ".sesto/roster.sig"]);
    }

    /// Commits what `m` staged with both dates set to `date`.
    pub fn commit_dated(&self, m: &Member, message: &str, date: &str) {
        let mut cmd = self.command(m, "git");
        cmd.env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .args(["commit", "-qm", message]);
        run_cmd(cmd).assert_success();
    }
}

/// The `key:` fields of a decrypted node.
pub fn node_keys(plain: &str) -> Vec<String> {
    plain
        .lines()
        .filter_map(|l| l.trim().strip_prefix("key: "))
        .map(str::to_string)
        .collect()
}

fn id_of(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap();
    name.strip_suffix(".age").unwrap_or(name).to_string()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// Node `id`'s file in `m`'s clone, relative to the repository, where the
/// format its roster declares keeps it.
pub fn node_rel(m: &Member, id: &str) -> String {
    let roster = fs::read(m.clone.join(".sesto/roster.yaml")).unwrap();
    let format = node::declared_version(&roster).expect("a roster declares its format");
    let id = id.parse::<NodeId>().unwrap();
    format!(".sesto/{}", id.rel_path(format as u32))
}
