//! Git collaboration: two clones of one bare repository change the store at
//! once, and real `git merge` / `git rebase` (with sesto's merge driver) or
//! `sesto sync` bring them together by DESIGN.md's rules. After each scenario
//! both `fsck` and `verify` are clean and no secret is lost.

mod common;

use std::path::{Path, PathBuf};

use common::{path_with_sesto, run_cmd, run_cmd_stdin, KeyKind, Output, TestEnv};

/// How the second clone takes in the first one's changes.
#[derive(Clone, Copy, Debug)]
enum Way {
    Merge,
    Rebase,
    Sync,
}

const WAYS: [Way; 3] = [Way::Merge, Way::Rebase, Way::Sync];

/// alice's store pushed to a bare remote, cloned twice: `a` and `b`.
struct Clones {
    env: TestEnv,
    a: PathBuf,
    b: PathBuf,
}

impl Clones {
    fn new(secrets: &[(&str, &str)]) -> Clones {
        let env = TestEnv::new();
        env.ssh_keygen("id_ed25519", KeyKind::Ed25519, None);
        let remote = env.bare_repo("remote.git");
        env.init_repo();
        env.run(&["init", "--name", "alice"]).assert_success();
        for (path, value) in secrets {
            env.run_stdin(&["set", path], value.as_bytes())
                .assert_success();
        }
        env.git(&["remote", "add", "origin", remote.to_str().unwrap()])
            .assert_success();
        env.git(&["push", "--quiet", "-u", "origin", "HEAD"])
            .assert_success();
        let clones = Clones {
            a: env.root.join("a"),
            b: env.root.join("b"),
            env,
        };
        for dir in [&clones.a, &clones.b] {
            clones.git_in(
                &clones.env.root,
                &[
                    "clone",
                    "--quiet",
                    remote.to_str().unwrap(),
                    dir.to_str().unwrap(),
                ],
            );
            clones.sesto_ok(dir, &["setup-git"]);
        }
        clones
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> Output {
        let mut cmd = self.env.command("git");
        cmd.current_dir(dir).args(args);
        // git runs the merge driver: it must find sesto on PATH.
        cmd.env("PATH", path_with_sesto());
        run_cmd(cmd)
    }

    fn sesto(&self, dir: &Path, args: &[&str], input: Option<&[u8]>) -> Output {
        let mut cmd = self.env.sesto(args);
        cmd.current_dir(dir);
        match input {
            Some(i) => run_cmd_stdin(cmd, i),
            None => run_cmd(cmd),
        }
    }

    #[track_caller]
    fn sesto_ok(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.sesto(dir, args, None);
        out.assert_success();
        out.stdout
    }

    #[track_caller]
    fn set(&self, dir: &Path, path: &str, value: &str) {
        self.sesto(dir, &["set", path], Some(value.as_bytes()))
            .assert_success();
    }

    fn get(&self, dir: &Path, path: &str) -> String {
        self.sesto_ok(dir, &["get", path])
    }

    fn paths(&self, dir: &Path) -> Vec<String> {
        let out = self.sesto_ok(dir, &["find", ""]);
        out.lines().map(str::to_string).collect()
    }

    /// The values of every secret whose path starts with `prefix`: a name
    /// and the values kept beside it (`name (conflict N)`).
    fn values_of(&self, dir: &Path, prefix: &str) -> Vec<String> {
        self.paths(dir)
            .iter()
            .filter(|p| p.starts_with(prefix))
            .map(|p| self.get(dir, p))
            .collect()
    }

    /// [`Clones::new`] where `b` does not commit sesto's changes (an
    /// infrastructure repository), so that they can be stashed.
    fn with_b_staging(secrets: &[(&str, &str)]) -> Clones {
        let c = Clones::new(secrets);
        c.git_in(&c.b, &["config", "sesto.commit", "false"])
            .assert_success();
        c
    }

    /// `a` pushes; `b` takes it in by `way`, settles, and pushes the result.
    #[track_caller]
    fn combine(&self, way: Way) {
        self.git_in(&self.a, &["push", "--quiet"]).assert_success();
        match way {
            Way::Merge => {
                let out = self.git_in(&self.b, &["pull", "--no-rebase", "--no-edit", "--quiet"]);
                if !out.success() {
                    // What git leaves (delete/modify) sesto settles.
                    self.sesto_ok(&self.b, &["resolve"]);
                    self.git_in(&self.b, &["commit", "--quiet", "--no-edit"])
                        .assert_success();
                }
                self.sesto_ok(&self.b, &["resolve"]);
            }
            Way::Rebase => {
                let mut out = self.git_in(&self.b, &["pull", "--rebase", "--quiet"]);
                let mut rounds = 0;
                while !out.success() {
                    rounds += 1;
                    assert!(
                        rounds < 10,
                        "rebase does not finish:\n{}",
                        common::snapshot_text(&out)
                    );
                    self.sesto_ok(&self.b, &["resolve"]);
                    let mut cmd = self.env.command("git");
                    cmd.current_dir(&self.b)
                        .env("PATH", path_with_sesto())
                        .env("GIT_EDITOR", "true")
                        .args(["rebase", "--continue"]);
                    out = run_cmd(cmd);
                }
                self.sesto_ok(&self.b, &["resolve"]);
            }
            Way::Sync => {
                let mut cmd = self.env.sesto(&["sync"]);
                cmd.current_dir(&self.b).env("PATH", path_with_sesto());
                run_cmd(cmd).assert_success();
            }
        }
        for dir in [&self.a, &self.b] {
            self.sesto_ok(dir, &["fsck"]);
            self.sesto_ok(dir, &["verify"]);
        }
    }
}

#[test]
fn both_add_different_entries_to_one_folder() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw")]);
        c.set(&c.a, "prod/a", "from a");
        c.set(&c.b, "prod/b", "from b");
        c.combine(way);
        assert_eq!(c.get(&c.b, "prod/a"), "from a", "{way:?}");
        assert_eq!(c.get(&c.b, "prod/b"), "from b", "{way:?}");
        assert_eq!(c.get(&c.b, "prod/db/password"), "pw", "{way:?}");
    }
}

#[test]
fn both_add_one_name_with_different_content_keeps_both() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw")]);
        c.set(&c.a, "prod/token", "a's token");
        c.set(&c.b, "prod/token", "b's token");
        c.combine(way);
        let mut values = vec![
            c.get(&c.b, "prod/token"),
            c.get(&c.b, "prod/token (conflict 1)"),
        ];
        values.sort();
        assert_eq!(values, ["a's token", "b's token"], "{way:?}");
    }
}

#[test]
fn both_edit_one_secret_merge_cleanly_or_keep_theirs_beside() {
    for way in WAYS {
        let c = Clones::new(&[("prod/conf", "one\ntwo\nthree\n"), ("prod/pw", "base")]);
        // Different lines: a clean three-way merge.
        c.set(&c.a, "prod/conf", "ONE\ntwo\nthree\n");
        c.set(&c.b, "prod/conf", "one\ntwo\nTHREE\n");
        // The same value changed two ways: no merge; both are kept.
        c.set(&c.a, "prod/pw", "a's pw");
        c.set(&c.b, "prod/pw", "b's pw");
        c.combine(way);
        assert_eq!(c.get(&c.b, "prod/conf"), "ONE\ntwo\nTHREE\n", "{way:?}");
        let mut values = vec![c.get(&c.b, "prod/pw"), c.get(&c.b, "prod/pw (conflict 1)")];
        values.sort();
        assert_eq!(values, ["a's pw", "b's pw"], "{way:?}");
        assert!(
            !c.paths(&c.b).iter().any(|p| p.contains("conf (conflict")),
            "{way:?}"
        );
    }
}

#[test]
fn an_edit_beats_a_delete_and_a_move() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw"), ("prod/api/token", "tok")]);
        c.sesto_ok(&c.a, &["rm", "prod/db/password"]);
        c.sesto_ok(&c.a, &["mv", "prod/api/token", "prod/token"]);
        c.set(&c.b, "prod/db/password", "edited");
        c.set(&c.b, "prod/api/token", "edited token");
        c.combine(way);
        assert_eq!(c.get(&c.b, "prod/db/password"), "edited", "{way:?}");
        // The move and the edit both survive: new name, new content.
        assert_eq!(c.get(&c.b, "prod/token"), "edited token", "{way:?}");
    }
}

#[test]
fn a_rename_and_an_edit_give_the_new_name_and_the_new_content() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw")]);
        c.sesto_ok(&c.a, &["mv", "prod/db", "prod/database"]);
        c.set(&c.b, "prod/db/password", "new pw");
        c.combine(way);
        assert_eq!(c.get(&c.b, "prod/database/password"), "new pw", "{way:?}");
        assert!(!c.paths(&c.b).iter().any(|p| p == "prod/db"), "{way:?}");
    }
}

#[test]
fn a_folder_deleted_on_one_side_comes_back_for_an_edit_inside_it() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw"), ("prod/db/user", "app")]);
        c.sesto_ok(&c.a, &["rm", "-r", "prod/db"]);
        c.set(&c.b, "prod/db/password", "still needed");
        c.combine(way);
        assert_eq!(c.get(&c.b, "prod/db/password"), "still needed", "{way:?}");
    }
}

#[test]
fn history_log_show_and_restore() {
    let c = Clones::new(&[("prod/pw", "first")]);
    c.set(&c.a, "prod/pw", "second");
    c.set(&c.a, "prod/other", "x");
    c.set(&c.a, "prod/pw", "third");
    let log = c.sesto_ok(&c.a, &["log", "prod/pw"]);
    assert_eq!(log.lines().count(), 3, "{log}");
    assert!(log.lines().next().unwrap().contains("version 3"), "{log}");
    assert!(
        !log.contains("first") && !log.contains("third"),
        "log shows no values"
    );
    assert_eq!(
        c.sesto_ok(&c.a, &["show", "prod/pw", "--rev", "HEAD~2"]),
        "second"
    );
    assert_eq!(
        c.sesto_ok(&c.a, &["show", "prod/pw", "--rev", "HEAD~3"]),
        "first"
    );
    c.sesto_ok(&c.a, &["restore", "prod/pw", "--rev", "HEAD~3"]);
    assert_eq!(c.get(&c.a, "prod/pw"), "first");
    let out = c.sesto(&c.a, &["show", "prod/pw", "--rev", "nonsense"], None);
    out.assert_code(1);
    assert!(
        out.stderr.contains("nonsense is not a commit"),
        "{}",
        out.stderr
    );
    // textconv, for those who opt in: path-named, value shown, keys never.
    c.sesto_ok(&c.a, &["setup-git", "--diff"]);
    let out = c.git_in(&c.a, &["log", "-p", "-1", "--format="]);
    out.assert_success();
    assert!(
        out.stdout.contains("# sesto secret prod/pw"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("+first"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("AGE-SECRET-KEY"),
        "textconv showed a key"
    );
}

#[test]
fn concurrent_grant_and_revoke_merge_to_a_roster_an_admin_signs() {
    for way in WAYS {
        let c = Clones::new(&[("prod/db/password", "pw"), ("staging/db/password", "st")]);
        let bob = c
            .env
            .ssh_keygen(&format!("bob-{way:?}"), KeyKind::Ed25519, None);
        let bob_pub = format!("{}.pub", bob.display());
        // bob joins with staging, everywhere, before the two changes.
        c.sesto_ok(&c.a, &["member", "add", "bob", "--key-file", &bob_pub]);
        c.sesto_ok(&c.a, &["grant", "bob", "staging"]);
        c.git_in(&c.a, &["push", "--quiet"]).assert_success();
        c.git_in(&c.b, &["pull", "--quiet", "--no-rebase", "--no-edit"])
            .assert_success();
        // At once: a grants bob prod; b revokes bob's staging.
        c.sesto_ok(&c.a, &["grant", "bob", "prod"]);
        c.sesto_ok(&c.b, &["revoke", "bob", "staging"]);
        c.combine(way);
        let roster = c.sesto_ok(&c.b, &["member", "list"]);
        assert!(
            roster.contains("bob") && roster.contains("prod (read)"),
            "{way:?}: {roster}"
        );
        assert!(!roster.contains("staging"), "{way:?}: {roster}");
        // bob reads prod, not staging, in the merged store.
        let as_bob = |args: &[&str]| {
            let mut full = vec!["-i", bob.to_str().unwrap()];
            full.extend_from_slice(args);
            c.sesto(&c.b, &full, None)
        };
        assert_eq!(as_bob(&["get", "prod/db/password"]).stdout, "pw", "{way:?}");
        as_bob(&["get", "staging/db/password"]).assert_code(1);
        c.sesto_ok(&c.b, &["verify", "--history"]);
    }
}

#[test]
fn conflicting_roster_changes_stop_and_say_what_to_run() {
    let c = Clones::new(&[("prod/db/password", "pw")]);
    let bob = c.env.ssh_keygen("bob", KeyKind::Ed25519, None);
    let bob_pub = format!("{}.pub", bob.display());
    c.sesto_ok(&c.a, &["member", "add", "bob", "--key-file", &bob_pub]);
    c.git_in(&c.a, &["push", "--quiet"]).assert_success();
    c.git_in(&c.b, &["pull", "--quiet", "--no-rebase", "--no-edit"])
        .assert_success();
    c.sesto_ok(&c.a, &["grant", "bob", "prod"]);
    c.sesto_ok(&c.b, &["grant", "bob", "prod", "--write"]);
    c.git_in(&c.a, &["push", "--quiet"]).assert_success();
    let mut cmd = c.env.sesto(&["sync"]);
    cmd.current_dir(&c.b).env("PATH", path_with_sesto());
    let out = run_cmd(cmd);
    out.assert_code(1);
    assert!(
        out.stderr.contains("grant on folder") && out.stderr.contains("git checkout --ours"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_stash_popped_over_a_change_to_its_folder_merges_through_the_driver() {
    // `git stash pop` merges the stash's commit, which git names nowhere
    // but in refs/stash: the driver could not tell what it was merging,
    // left the folder conflicted, and `sesto resolve` said no merge was
    // under way. Stashing needs changes left uncommitted: sesto.commit off,
    // as in an infrastructure repository.
    let c = Clones::with_b_staging(&[("prod/a", "v-a")]);
    c.set(&c.b, "prod/stashed", "v-stashed");
    c.git_in(&c.b, &["stash", "--quiet"]).assert_success();
    c.set(&c.b, "prod/other", "v-other");
    c.git_in(&c.b, &["commit", "--quiet", "-am", "other"]);
    let out = c.git_in(&c.b, &["stash", "pop"]);
    assert!(out.success(), "{}", common::snapshot_text(&out));
    assert_eq!(c.get(&c.b, "prod/stashed"), "v-stashed");
    assert_eq!(c.get(&c.b, "prod/other"), "v-other");
    assert_eq!(c.get(&c.b, "prod/a"), "v-a");
    c.sesto_ok(&c.b, &["fsck"]);
    c.git_in(&c.b, &["commit", "--quiet", "-m", "popped"]);

    // Both changed one secret's value: nothing would write the stash's
    // value beside this branch's once git dropped the stash (it was lost),
    // so the driver leaves the conflict, git keeps the stash, and `sesto
    // resolve` keeps both values.
    c.set(&c.b, "prod/a", "v-a-stashed");
    c.git_in(&c.b, &["stash", "--quiet"]).assert_success();
    c.set(&c.b, "prod/a", "v-a-committed");
    c.git_in(&c.b, &["commit", "--quiet", "-am", "a"]);
    let out = c.git_in(&c.b, &["stash", "pop"]);
    assert!(!out.success(), "{}", common::snapshot_text(&out));
    let kept = c.git_in(&c.b, &["stash", "list"]).stdout;
    assert_eq!(kept.lines().count(), 1, "the stash is kept: {kept}");
    let said = c.sesto_ok(&c.b, &["resolve"]);
    assert!(said.contains("kept both values"), "{said}");
    let values = c.values_of(&c.b, "prod/a");
    assert!(values.contains(&"v-a-stashed".to_string()), "{values:?}");
    assert!(values.contains(&"v-a-committed".to_string()), "{values:?}");
    c.sesto_ok(&c.b, &["fsck"]);
}

#[test]
fn a_squash_merge_keeps_both_values_of_a_secret_both_lines_changed() {
    // `git merge --squash` runs the driver like a merge but leaves no
    // MERGE_HEAD and does not move HEAD: the value kept beside ours was
    // queued and then dropped as belonging to no merge, so the branch's
    // value was gone from the result. `sesto resolve` before the commit
    // writes it now.
    let c = Clones::new(&[("prod/a", "v-a")]);
    c.git_in(&c.b, &["checkout", "-q", "-b", "feature"])
        .assert_success();
    c.set(&c.b, "prod/a", "v-feature");
    c.git_in(&c.b, &["checkout", "-q", "-"]).assert_success();
    c.set(&c.b, "prod/a", "v-main");
    c.sesto_ok(&c.b, &["hooks", "install"]);
    let out = c.git_in(&c.b, &["merge", "--squash", "feature"]);
    assert!(out.success(), "{}", common::snapshot_text(&out));
    // Committed first, the kept value would be left out: the pre-commit
    // hook stops it.
    let early = c.git_in(&c.b, &["commit", "--quiet", "-m", "squashed"]);
    assert!(!early.success(), "{}", common::snapshot_text(&early));
    assert!(
        early.stderr.contains("run `sesto resolve`"),
        "{}",
        early.stderr
    );
    let said = c.sesto_ok(&c.b, &["resolve"]);
    assert!(said.contains("kept both values"), "{said}");
    let commit = c.git_in(&c.b, &["commit", "--quiet", "-m", "squashed"]);
    assert!(commit.success(), "{}", common::snapshot_text(&commit));
    let values = c.values_of(&c.b, "prod/a");
    assert!(values.contains(&"v-feature".to_string()), "{values:?}");
    assert!(values.contains(&"v-main".to_string()), "{values:?}");
    c.sesto_ok(&c.b, &["fsck"]);
    c.sesto_ok(&c.b, &["verify"]);
}

#[test]
fn an_autostash_over_a_pull_merges_through_the_driver_and_keeps_a_value_both_changed() {
    // `git pull --rebase --autostash` (or rebase.autoStash) stashes what is
    // not committed and applies it after, from a file in the rebase's state
    // directory: the driver could not tell what it merged.
    let c = Clones::with_b_staging(&[("prod/a", "v-a")]);
    c.set(&c.a, "prod/from-a", "v-from-a");
    c.git_in(&c.a, &["push", "--quiet"]).assert_success();
    c.set(&c.b, "prod/from-b", "v-from-b");
    let out = c.git_in(&c.b, &["pull", "--rebase", "--autostash"]);
    assert!(out.success(), "{}", common::snapshot_text(&out));
    assert!(
        !out.stderr.contains("resulted in conflicts"),
        "{}",
        out.stderr
    );
    assert_eq!(c.get(&c.b, "prod/from-a"), "v-from-a");
    assert_eq!(c.get(&c.b, "prod/from-b"), "v-from-b");
    c.sesto_ok(&c.b, &["fsck"]);
    c.git_in(&c.b, &["commit", "--quiet", "-am", "from b"]);

    // Both changed one value: the autostash stops with a conflict and is
    // kept in the stash list; `sesto resolve` keeps both values.
    c.set(&c.a, "prod/a", "v-a-from-a");
    c.git_in(&c.a, &["push", "--quiet"]).assert_success();
    c.set(&c.b, "prod/a", "v-a-from-b");
    let out = c.git_in(&c.b, &["pull", "--rebase", "--autostash"]);
    assert!(
        out.stderr.contains("resulted in conflicts"),
        "{}",
        common::snapshot_text(&out)
    );
    let said = c.sesto_ok(&c.b, &["resolve"]);
    assert!(said.contains("kept both values"), "{said}");
    let values = c.values_of(&c.b, "prod/a");
    assert!(values.contains(&"v-a-from-a".to_string()), "{values:?}");
    assert!(values.contains(&"v-a-from-b".to_string()), "{values:?}");
    c.sesto_ok(&c.b, &["fsck"]);
}

#[test]
fn a_plain_pull_that_kept_a_value_beside_another_says_so_until_resolve() {
    // After a plain `git pull`, the value the driver kept beside ours is
    // written by `sesto resolve`; until then every command says so.
    let c = Clones::new(&[("prod/a", "v-a")]);
    c.set(&c.a, "prod/a", "v-from-a");
    c.git_in(&c.a, &["push", "--quiet"]).assert_success();
    c.set(&c.b, "prod/a", "v-from-b");
    let out = c.git_in(&c.b, &["pull", "--no-rebase", "--no-edit", "--quiet"]);
    assert!(out.success(), "{}", common::snapshot_text(&out));
    let ls = c.sesto(&c.b, &["ls", "prod"], None);
    assert!(ls.success(), "{}", common::snapshot_text(&ls));
    assert!(
        ls.stderr
            .contains("1 value a merge kept beside another waits for `sesto resolve`"),
        "{}",
        ls.stderr
    );
    let said = c.sesto_ok(&c.b, &["resolve"]);
    assert!(said.contains("kept both values"), "{said}");
    let ls = c.sesto(&c.b, &["ls", "prod"], None);
    assert!(!ls.stderr.contains("sesto resolve"), "{}", ls.stderr);
    let values = c.values_of(&c.b, "prod/a");
    assert!(values.contains(&"v-from-a".to_string()), "{values:?}");
    assert!(values.contains(&"v-from-b".to_string()), "{values:?}");
}
