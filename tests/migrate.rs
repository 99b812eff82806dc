//! `sesto migrate`: a store made in format 1 is read by this sesto, moves to
//! format 2 in one signed step that git sees as renames, and the team goes
//! on across it. Killed at every step: `tests/crash.rs` (`Op::Migrate`).

mod common;

use common::team::{Member, Mode, Team, Way};
use common::{snapshot_text, Output};
use sesto::format::node::{self, Roster};

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(out.success(), "{what} failed:\n{}", snapshot_text(out));
}

/// The store format of `m`'s clone and whether every node file is in place.
fn layout(_team: &Team, m: &Member) -> (u32, bool) {
    common::store_layout(&m.clone)
}

/// alice's format 1 store with prod (bob writes it) and staging, pushed and
/// pulled by bob.
fn format_1_team(mode: Mode) -> (Team, Member, Member) {
    let (team, alice) = Team::new_in(mode, 1);
    team.set_ok(&alice, "prod/a", "v-a");
    team.set_ok(&alice, "staging/b", "v-b");
    team.commit(&alice, "secrets");
    assert_ok("alice's push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    assert_eq!(layout(&team, &bob), (1, true));
    (team, alice, bob)
}

#[test]
fn a_format_1_store_is_read_then_moved_by_renames_alone_and_the_team_goes_on() {
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob) = format_1_team(mode);
        // This sesto reads and writes format 1 as it is.
        assert_eq!(team.get(&bob, "prod/a").as_deref(), Some("v-a"));
        team.set_ok(&bob, "prod/c", "v-c");
        team.commit(&bob, "bob's");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("alice's pull", &team.pull(&alice));
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));

        // Only an admin migrates.
        let refused = team.sesto(&bob, &["migrate"]);
        assert!(!refused.success(), "{}", snapshot_text(&refused));
        assert!(refused.stderr.contains("only admins"), "{}", refused.stderr);
        assert_eq!(layout(&team, &bob), (1, true), "nothing moved");

        let files_before = team.clone_nodes(&alice);
        let out = team.sesto(&alice, &["migrate", "--json"]);
        assert_ok("alice's migrate", &out);
        let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(json["from"], 1);
        assert_eq!(json["to"], 2);
        assert_eq!(json["moved"], files_before.len());
        assert_eq!(layout(&team, &alice), (2, true));
        assert_eq!(
            team.clone_nodes(&alice),
            files_before,
            "the same bytes, moved"
        );
        team.commit(&alice, "migrate");

        // git sees renames of unchanged files: no node file's content is new.
        let changes = team.git_ok(
            &alice,
            &[
                "diff",
                "--name-status",
                "-M100%",
                "HEAD~1",
                "HEAD",
                "--",
                ".sesto/nodes",
            ],
        );
        let lines: Vec<&str> = changes.lines().collect();
        assert_eq!(lines.len(), files_before.len(), "{changes}");
        assert!(lines.iter().all(|l| l.starts_with("R100")), "{changes}");

        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
        assert_ok(
            "alice's verify",
            &team.sesto(&alice, &["verify", "--history"]),
        );
        assert_ok("alice's push", &team.push(&alice));

        // bob pulls it and goes on in format 2.
        assert_ok("bob's pull", &team.pull(&bob));
        assert_eq!(layout(&team, &bob), (2, true));
        assert_eq!(team.get(&bob, "prod/c").as_deref(), Some("v-c"));
        team.set_ok(&bob, "prod/d", "v-d");
        team.commit(&bob, "bob's after");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("alice's pull", &team.pull(&alice));
        assert_eq!(
            team.values(&alice).into_iter().collect::<Vec<_>>(),
            [
                ("prod/a", "v-a"),
                ("prod/c", "v-c"),
                ("prod/d", "v-d"),
                ("staging/b", "v-b")
            ]
            .map(|(p, v)| (p.to_string(), v.to_string()))
        );
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
        assert_ok("bob's verify", &team.sesto(&bob, &["verify", "--history"]));

        // Again: nothing to do.
        let again = team.ok(&alice, &["migrate"]);
        assert!(again.contains("format 2 already"), "{again}");
    }
}

#[test]
fn a_roster_that_takes_the_store_back_to_format_1_is_refused() {
    let (team, alice, bob) = format_1_team(Mode::Commit);
    team.ok(&alice, &["migrate"]);
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    // Someone with alice's key signs a next roster that says format 1 (the
    // files stay where format 2 keeps them): readers would look for every
    // node where none is.
    let now = team.roster(&alice);
    let bytes = std::fs::read(alice.clone.join(".sesto/roster.yaml")).unwrap();
    let back = Roster {
        sesto: 1,
        version: now.version + 1,
        previous: Some(node::sha256_hex(&bytes)),
        ..now
    };
    team.plant_roster(&alice, &back, &alice.key);
    team.commit(&alice, "back");
    assert_ok("alice's push", &team.push(&alice));
    let before = team.head(&bob);
    let out = team.pull(&bob);
    let read = team.sesto(&bob, &["get", "prod/a"]);
    assert!(
        !read.success() && read.stderr.contains("goes back to store format 1"),
        "pull:\n{}\nget:\n{}",
        snapshot_text(&out),
        snapshot_text(&read)
    );
    let _ = before;
}

#[test]
fn a_member_with_unpushed_format_1_commits_takes_in_the_migration_without_loss() {
    for way in [Way::Sync, Way::Pull, Way::Rebase] {
        for mode in [Mode::Commit, Mode::Infra] {
            let case = format!("{way:?} in {mode:?}");
            let (team, alice, bob) = format_1_team(mode);
            team.set_ok(&alice, "prod/gone", "v-gone");
            team.commit(&alice, "gone");
            assert_ok("alice's push", &team.push(&alice));
            assert_ok("bob's pull", &team.pull(&bob));
            // bob, unpushed, in format 1: a change, an add and a removal in
            // prod (so prod's folder file changes too).
            team.set_ok(&bob, "prod/a", "v-a-bob");
            team.set_ok(&bob, "prod/new", "v-new-bob");
            team.ok(&bob, &["rm", "prod/gone"]);
            team.commit(&bob, "bob's, in format 1");
            // Meanwhile alice migrates, then changes prod (its folder file is
            // moved and changed: git sees no rename) and staging.
            team.ok(&alice, &["migrate"]);
            team.commit(&alice, "migrate");
            team.set_ok(&alice, "prod/alice", "v-alice");
            team.set_ok(&alice, "staging/b", "v-b-alice");
            team.commit(&alice, "alice's, in format 2");
            assert_ok("alice's push", &team.push(&alice));

            if let Err(out) = team.take_in(&bob, way) {
                panic!(
                    "{case}: bob's take-in failed:\n{}\nstatus:\n{}\nunmerged:\n{}",
                    snapshot_text(&out),
                    team.git_ok(&bob, &["status", "--short"]),
                    team.git_ok(&bob, &["ls-files", "-u"])
                );
            }
            assert_eq!(layout(&team, &bob), (2, true), "{case}");
            assert_ok("alice's pull", &team.pull(&alice));
            let expected = [
                ("prod/a", "v-a-bob"),
                ("prod/alice", "v-alice"),
                ("prod/new", "v-new-bob"),
                ("staging/b", "v-b-alice"),
            ]
            .map(|(p, v)| (p.to_string(), v.to_string()));
            assert_eq!(
                team.values(&alice).into_iter().collect::<Vec<_>>(),
                expected,
                "{case}: what alice reads"
            );
            // bob reads prod only.
            assert_eq!(
                team.values(&bob).into_iter().collect::<Vec<_>>(),
                expected[..3],
                "{case}: what bob reads"
            );
            assert_ok(
                &format!("{case}: alice's fsck"),
                &team.sesto(&alice, &["fsck"]),
            );
            assert_ok(
                &format!("{case}: alice's verify"),
                &team.sesto(&alice, &["verify", "--history"]),
            );
        }
    }
}

#[test]
fn a_file_in_the_other_formats_layout_is_never_read_and_fsck_names_it() {
    let (team, alice, _bob) = format_1_team(Mode::Commit);
    let nodes = team.clone_nodes(&alice);
    team.ok(&alice, &["migrate"]);
    // Someone who can push puts a node's old file back where format 1 kept
    // it, with other bytes: readers of a format 2 store never open it.
    let (id, _) = team.locate(&alice, &nodes, "prod/a");
    let other = nodes.keys().find(|k| **k != id).unwrap().clone();
    let old_path = alice
        .clone
        .join(".sesto")
        .join(id.parse::<node::NodeId>().unwrap().rel_path(1));
    std::fs::create_dir_all(old_path.parent().unwrap()).unwrap();
    std::fs::write(&old_path, &nodes[&other]).unwrap();
    assert_eq!(team.get(&alice, "prod/a").as_deref(), Some("v-a"));
    let fsck = team.sesto(&alice, &["fsck"]);
    assert!(!fsck.success(), "{}", snapshot_text(&fsck));
    assert!(
        fsck.stdout.contains("where format 1 keeps it")
            || fsck.stderr.contains("where format 1 keeps it"),
        "{}",
        snapshot_text(&fsck)
    );
    // Once that file is gone, the store is whole again.
    std::fs::remove_file(&old_path).unwrap();
    assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
}

/// [`format_1_team`] and dana, a second admin, with her clone.
fn format_1_team_and_dana(mode: Mode) -> (Team, Member, Member, Member) {
    let (team, alice, bob) = format_1_team(mode);
    let dana = team.join_admin(&alice, "dana");
    assert_ok("bob's pull", &team.pull(&bob));
    (team, alice, bob, dana)
}

/// dana, in format 1: grants bob staging and writes there, committed.
fn dana_changes_the_roster(team: &Team, dana: &Member) {
    team.ok(dana, &["grant", "bob", "staging"]);
    team.set_ok(dana, "staging/d", "v-d-dana");
    team.commit(dana, "dana's, in format 1");
}

/// alice migrates, then writes prod/alice and adds erin, committed.
fn alice_migrates_and_changes_the_roster(team: &Team, alice: &Member) {
    team.ok(alice, &["migrate"]);
    team.commit(alice, "migrate");
    let erin = team.person("erin");
    let erin_key = format!("{}.pub", erin.key.display());
    team.set_ok(alice, "prod/alice", "v-alice");
    team.ok(alice, &["member", "add", "erin", "--key-file", &erin_key]);
    team.commit(alice, "alice's, in format 2");
}

/// After either order: the roster is format 2 with dana's grant, every
/// value is there, bob reads what dana granted him, fsck passes.
fn check_both_roster_changes(team: &Team, alice: &Member, bob: &Member) {
    assert_eq!(layout(team, alice), (2, true));
    let roster = team.roster(alice);
    assert_eq!(roster.sesto, 2);
    assert!(roster.members.contains_key("erin"), "alice's member add");
    assert_eq!(team.get(alice, "staging/d").as_deref(), Some("v-d-dana"));
    assert_eq!(team.get(alice, "prod/alice").as_deref(), Some("v-alice"));
    assert_ok("bob's pull", &team.pull(bob));
    assert_eq!(layout(team, bob), (2, true));
    assert_eq!(
        team.get(bob, "staging/d").as_deref(),
        Some("v-d-dana"),
        "dana's grant to bob"
    );
    assert_ok("alice's fsck", &team.sesto(alice, &["fsck"]));
    assert_ok(
        "alice's verify",
        &team.sesto(alice, &["verify", "--history"]),
    );
}

#[test]
fn roster_changes_on_both_sides_of_the_migration_merge_in_format_2() {
    for mode in [Mode::Commit, Mode::Infra] {
        // dana changes the roster in format 1 and pushes last: her sync
        // migrates her side first, then merges.
        let (team, alice, bob, dana) = format_1_team_and_dana(mode);
        dana_changes_the_roster(&team, &dana);
        alice_migrates_and_changes_the_roster(&team, &alice);
        assert_ok("alice's push", &team.push(&alice));
        // A plain pull stops at the roster (both sides changed it), and
        // resolve says what to do.
        let pulled = team.pull(&dana);
        assert!(!pulled.success(), "{}", snapshot_text(&pulled));
        let out = team.sesto(&dana, &["resolve"]);
        assert!(
            !out.success() && out.stderr.contains("run `sesto migrate` here"),
            "{}",
            snapshot_text(&out)
        );
        team.abort(&dana);
        assert_ok("dana's sync", &team.sync(&dana));
        assert_ok("alice's pull", &team.pull(&alice));
        check_both_roster_changes(&team, &alice, &bob);

        // The other order: alice migrates and changes the roster, unpushed,
        // while dana's format 1 roster change reaches the remote first.
        let (team, alice, bob, dana) = format_1_team_and_dana(mode);
        dana_changes_the_roster(&team, &dana);
        assert_ok("dana's push", &team.push(&dana));
        alice_migrates_and_changes_the_roster(&team, &alice);
        // A rebase replays alice's migration onto dana's change: resolve
        // says to give it up and merge (there is nothing to migrate "here").
        let rebased = team.git(&alice, &["pull", "--rebase"]);
        assert!(!rebased.success(), "{}", snapshot_text(&rebased));
        let out = team.sesto(&alice, &["resolve"]);
        assert!(
            !out.success() && out.stderr.contains("merge instead (`sesto sync`"),
            "{}",
            snapshot_text(&out)
        );
        team.abort(&alice);
        assert_ok("alice's sync", &team.sync(&alice));
        check_both_roster_changes(&team, &alice, &bob);
    }
}

#[test]
fn an_edit_beats_a_removal_of_its_folder_made_on_the_other_side_of_the_migration() {
    // Found by tests/team_sim.rs (seed 790055): alice changed prod/db/x
    // and migrated; bob removed prod/db in format 1. git sees no conflict
    // (alice's file moved and changed, bob's removed at the old path), so
    // her edit was left in a file no folder listed. As in a modify/delete
    // conflict, the edit stays and its folder comes back.
    for way in [Way::Sync, Way::Pull] {
        let (team, alice, bob) = format_1_team(Mode::Commit);
        team.set_ok(&alice, "prod/db/x", "v-x");
        team.set_ok(&alice, "prod/db/y", "v-y");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's pull", &team.pull(&bob));
        team.ok(&bob, &["rm", "-r", "prod/db"]);
        assert_ok("bob's push", &team.push(&bob));
        team.set_ok(&alice, "prod/db/x", "v-x-alice");
        team.ok(&alice, &["migrate"]);
        if let Err(out) = team.take_in(&alice, way) {
            panic!("{way:?}: alice's take-in failed:\n{}", snapshot_text(&out));
        }
        assert_eq!(layout(&team, &alice), (2, true));
        let values = team.values(&alice);
        assert_eq!(
            values.get("prod/db/x").map(String::as_str),
            Some("v-x-alice"),
            "{way:?}: {values:?}\n{}\n{}",
            snapshot_text(&team.sesto(&alice, &["fsck"])),
            team.git_ok(&alice, &["log", "--stat", "--format=%h %an %s", "-4"])
        );
        assert_eq!(
            values.get("prod/db/y"),
            None,
            "{way:?}: bob's removal of y stands"
        );
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
        assert_ok("bob's pull", &team.pull(&bob));
        assert_eq!(team.get(&bob, "prod/db/x").as_deref(), Some("v-x-alice"));
    }
}

#[test]
fn a_folder_both_sides_changed_and_migrated_merges_against_the_merge_base() {
    // Found by tests/team_sim.rs (seed 810049): alice moved staging/b out
    // of staging and migrated; dana granted bob staging (staging's file
    // rewritten) in format 1, and her sync migrated her side before
    // merging. Both sides moved and changed staging's file, so git saw an
    // add/add with no base: merged as a union, b was listed in staging
    // again beside its new place. The merge base's file of the node, found
    // by id, is the base.
    let (team, alice, bob, dana) = format_1_team_and_dana(Mode::Commit);
    team.ok(&alice, &["mv", "staging/b", "prod/b2"]);
    team.ok(&alice, &["migrate"]);
    assert_ok("alice's push", &team.push(&alice));
    team.ok(&dana, &["grant", "bob", "staging"]);
    assert_ok("dana's sync", &team.sync(&dana));
    assert_eq!(layout(&team, &dana), (2, true));
    assert_ok("alice's pull", &team.pull(&alice));
    let values = team.values(&alice);
    assert_eq!(values.get("prod/b2").map(String::as_str), Some("v-b"));
    assert_eq!(values.get("staging/b"), None, "listed twice: {values:?}");
    assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
    assert_ok("bob's pull", &team.pull(&bob));
    assert_ok("bob's fsck", &team.sesto(&bob, &["fsck"]));
}

#[test]
fn a_removal_beats_a_rotation_made_on_the_other_side_of_the_migration() {
    // Found by tests/team_sim.rs (seed 820005): bob removed prod/db in
    // format 1; alice revoked carol's prod (which rotates the keys of
    // prod/db and what it holds, rewriting their files) and migrated. No
    // conflict to git; the rotated files came into the merge as files no
    // folder listed, and alice's next pull refused bob's merge as putting
    // back an older copy of what he had removed. As in a modify/delete
    // conflict, a change of keys alone loses to the removal; an edit
    // below it (`edit`) brings it back.
    for (way, edit) in [(Way::Sync, false), (Way::Pull, false), (Way::Sync, true)] {
        let (team, alice, bob) = format_1_team(Mode::Commit);
        team.join(&alice, "carol", Some(("prod", false)));
        team.set_ok(&alice, "prod/db/x", "v-x");
        team.set_ok(&alice, "prod/db/y", "v-y");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's pull", &team.pull(&bob));
        team.ok(&bob, &["rm", "-r", "prod/db"]);
        team.commit(&bob, "bob's removal, in format 1");
        team.ok(&alice, &["revoke", "carol", "prod"]);
        if edit {
            team.set_ok(&alice, "prod/db/x", "v-x-alice");
        }
        team.ok(&alice, &["migrate"]);
        assert_ok("alice's push", &team.push(&alice));
        if let Err(out) = team.take_in(&bob, way) {
            panic!("{way:?}: bob's take-in failed:\n{}", snapshot_text(&out));
        }
        assert_eq!(layout(&team, &bob), (2, true));
        assert_ok("bob's fsck", &team.sesto(&bob, &["fsck"]));
        let expect_x = edit.then_some("v-x-alice");
        assert_eq!(team.get(&bob, "prod/db/x").as_deref(), expect_x, "{way:?}");
        assert_eq!(team.get(&bob, "prod/a").as_deref(), Some("v-a"));
        assert_ok("alice's pull", &team.pull(&alice));
        assert_eq!(
            team.get(&alice, "prod/db/x").as_deref(),
            expect_x,
            "{way:?}"
        );
        if !edit {
            assert_eq!(team.get(&alice, "prod/db/y"), None, "{way:?}");
        }
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
    }
}

#[test]
fn a_member_on_a_forged_roster_keeps_his_edit_against_a_removal_across_the_migration() {
    // Found by tests/team_sim.rs (seed 840013): bob's commit (a new
    // secret in prod/db, format 1) was rebased onto mallory's forged
    // roster; alice undid mallory's push, migrated and removed prod/db.
    // bob's side and the merge base, holding a roster nobody vouched for,
    // are read under alice's format 2 roster, and their node files were
    // looked for in format 2's layout alone: bob's edit looked like no
    // change, the removal won, and his secret was left in a file no
    // folder listed.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob) = format_1_team(mode);
        team.set_ok(&alice, "prod/db/x", "v-x");
        team.commit(&alice, "x");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's pull", &team.pull(&bob));
        team.set_ok(&bob, "prod/db/y", "v-y-bob");
        team.commit(&bob, "bob's y, in format 1");

        let mallory = team.person("mallory");
        team.clone_for(&mallory, false);
        let rival = team.rival_roster(&mallory);
        team.plant_roster(&mallory, &rival, &mallory.key);
        team.commit(&mallory, "update");
        assert_ok("mallory's push", &team.push(&mallory));
        // bob's commit goes on top of the forged roster (git rebases it;
        // sesto then refuses to read the store).
        team.git_ok(&bob, &["pull", "-q", "--rebase"]);

        // alice undoes mallory's push, migrates, removes prod/db.
        team.git_ok(&alice, &["pull", "-q", "--no-rebase", "--no-edit"]);
        team.git_ok(&alice, &["revert", "--no-edit", "HEAD"]);
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
        team.ok(&alice, &["migrate"]);
        team.commit(&alice, "migrate");
        team.ok(&alice, &["rm", "-r", "prod/db"]);
        team.commit(&alice, "remove prod/db");
        assert_ok("alice's push", &team.push(&alice));

        // sync refuses the forged roster in bob's work tree; git pull and
        // resolve read bob's side under the upstream's roster.
        let refused = team.sync(&bob);
        assert!(!refused.success(), "{}", snapshot_text(&refused));
        if let Err(out) = team.take_in(&bob, Way::Pull) {
            panic!("{mode:?}: bob's pull failed:\n{}", snapshot_text(&out));
        }
        assert_eq!(layout(&team, &bob), (2, true));
        assert_ok("bob's fsck", &team.sesto(&bob, &["fsck"]));
        assert_eq!(
            team.get(&bob, "prod/db/y").as_deref(),
            Some("v-y-bob"),
            "{mode:?}: bob's edit beats the removal of its folder"
        );
        assert_eq!(team.get(&bob, "prod/db/x"), None, "{mode:?}");
        assert_ok("alice's pull", &team.pull(&alice));
        assert_eq!(team.get(&alice, "prod/db/y").as_deref(), Some("v-y-bob"));
        assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
    }
}

#[test]
fn history_reads_across_the_migration_and_an_old_commit_checked_out_reads_format_1() {
    // After the migration: a checkout of a commit from before it reads the
    // format 1 layout there (and writes nothing), `sesto log` follows a
    // secret's versions across the move, and back on the branch the store
    // reads format 2.
    let (team, alice, bob) = format_1_team(Mode::Commit);
    team.set_ok(&alice, "prod/a", "v-a2");
    let before = team.head(&alice);
    team.ok(&alice, &["migrate"]);
    team.set_ok(&alice, "prod/a", "v-a3");
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));

    let log = team.ok(&bob, &["log", "--json", "prod/a"]);
    let versions: serde_json::Value = serde_json::from_str(&log).unwrap();
    let versions = versions.as_array().expect("a list");
    assert_eq!(versions.len(), 3, "v-a, v-a2, v-a3: {log}");

    team.git_ok(&bob, &["checkout", "-q", before.trim()]);
    assert_eq!(layout(&team, &bob), (1, true));
    assert_eq!(team.get(&bob, "prod/a").as_deref(), Some("v-a2"));
    let refused = team.set(&bob, "prod/a", "v-old");
    assert!(!refused.success(), "{}", snapshot_text(&refused));
    assert!(
        refused.stderr.contains("detached HEAD"),
        "{}",
        refused.stderr
    );
    team.git_ok(&bob, &["checkout", "-q", "main"]);
    assert_eq!(layout(&team, &bob), (2, true));
    assert_eq!(team.get(&bob, "prod/a").as_deref(), Some("v-a3"));
    assert_ok("bob's fsck", &team.sesto(&bob, &["fsck"]));
    assert_ok("bob's verify", &team.sesto(&bob, &["verify", "--history"]));
}
