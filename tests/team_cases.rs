//! Regressions from team use (issues 10 and 16), one test per case, each named
//! after what broke: members with their own keys and clones of one bare remote,
//! the real `git` running sesto's merge driver, and the `age` CLI playing
//! whoever keeps keys they should not use.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use common::team::{node_rel, Member, Mode, Team, Way, FUTURE};
use common::{require_tool, snapshot_text, Output, NOW};
use sesto::format::crypto;
use sesto::format::node::{Body, Entry, Kind, NodeId, NodeKey, Value};

/// mallory's value: it must never come back to anyone else.
const FORGED: &str = "v-mallory-1";
const PASSWORD: &str = "prod/db/password";

#[track_caller]
fn assert_ok(what: &str, out: &Output) {
    assert!(out.success(), "{what} failed:\n{}", snapshot_text(out));
}

/// The fingerprint of a member's key: signers compare by it.
fn fpr(key: &str) -> String {
    crypto::fingerprint(key)
}

// ---------------------------------------------------------------------------------
// Issue 10, cases 1 and 2: a writer of one folder forges a node of another

/// alice (admin) with `prod/db/password` and `staging/app/token`, and mallory,
/// who may write `staging` only, with her own clone.
fn forgery_setup() -> (Team, Member, Member) {
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-0");
    team.set_ok(&alice, "staging/app/token", "v-staging-0");
    assert_ok("push", &team.push(&alice));
    let mallory = team.join(&alice, "mallory", Some(("staging", true)));
    team.ok(&mallory, &["ls", "staging"]);
    (team, alice, mallory)
}

/// mallory pushes (b) to `main` a new version of `prod/db/password`'s file,
/// holding her value, signed by her, encrypted to her keys; and (a) a branch
/// `evil` dated 2030 whose tree holds the same file under a root and a
/// `staging` folder she made, which list that id with a key she chose. Returns
/// the node keys she planted.
fn mallory_forges(team: &Team, alice: &Member, mallory: &Member) -> BTreeSet<String> {
    let roster = team.roster(mallory);
    let store = roster.store.clone();
    // A pusher sees which file a commit changes; the test just tells her.
    let (password, _) = team.locate(alice, &team.clone_nodes(alice), PASSWORD);
    let password: NodeId = password.parse().unwrap();
    let staging = *roster
        .grants
        .iter()
        .find(|(_, g)| g.contains_key("mallory"))
        .unwrap()
        .0;
    let (ks, ks_pub) = team.age_key("mallory-staging");
    let (kp, kp_pub) = team.age_key("mallory-password");

    let mut secret = Body::new(&store, password, Kind::Secret, "password");
    secret.version = 1000;
    secret.value = Some(Value::new(FORGED.as_bytes().to_vec()));
    secret.updated = Some(NOW.to_string());
    secret.updated_by = Some("mallory".into());
    let forged = team.forge(&mallory.key, &store, &secret, &[&kp_pub, &mallory.public]);
    team.plant(mallory, &password.to_string(), &forged);
    team.commit(mallory, "update");
    assert_ok("mallory's push", &team.push(mallory));

    // Her staging folder: the real one (she reads it) plus an entry for the id.
    let nodes = team.clone_nodes(mallory);
    let plain = team
        .age_open(
            &[&mallory.key],
            &BTreeSet::new(),
            &nodes[&staging.to_string()],
        )
        .expect("mallory reads staging");
    let real = sesto::format::node::split(plain.as_bytes())
        .unwrap()
        .body
        .to_vec();
    let mut folder = sesto::format::node::decode_body(&real).unwrap();
    folder.version += 1000;
    folder.recipient = Some(ks_pub.clone());
    folder.children.push(Entry {
        name: "password".into(),
        kind: Kind::Secret,
        id: password,
        key: NodeKey::new(kp.clone()),
    });
    folder.children.sort_by(|a, b| a.name.cmp(&b.name));
    let mut root = Body::new(&store, roster.root, Kind::Folder, "");
    root.version = 1000;
    root.children.push(Entry {
        name: "staging".into(),
        kind: Kind::Folder,
        id: staging,
        key: NodeKey::new(ks.clone()),
    });
    let to = [ks_pub.as_str(), &mallory.public, &alice.public];
    let folder = team.forge(&mallory.key, &store, &folder, &to);
    let root = team.forge(&mallory.key, &store, &root, &[&alice.public]);
    team.git_ok(mallory, &["checkout", "-q", "-b", "evil"]);
    team.plant(mallory, &staging.to_string(), &folder);
    team.plant(mallory, &roster.root.to_string(), &root);
    team.commit_dated(mallory, "evil", FUTURE);
    team.git_ok(mallory, &["push", "-q", "origin", "evil"]);
    team.git_ok(mallory, &["checkout", "-q", "main"]);
    BTreeSet::from([ks, kp])
}

/// No path gives alice mallory's value, and no node on the remote's `main`
/// holding it is signed by alice.
#[track_caller]
fn assert_not_laundered(team: &Team, alice: &Member, mallory: &Member, planted: &BTreeSet<String>) {
    for (path, value) in team.values(alice) {
        assert!(
            value != FORGED,
            "alice's get {path} returned mallory's forged value"
        );
    }
    let store = team.roster(alice).store;
    let nodes = team.remote_nodes("main");
    for o in team.opened(&[&alice.key, &mallory.key], planted, &store, &nodes) {
        if o.value() == Some(FORGED.as_bytes()) {
            assert!(
                o.signer.as_deref().map(fpr) != Some(fpr(&alice.public)),
                "node {} on the remote holds mallory's value signed by alice",
                o.id
            );
        }
    }
}

/// After `git pull`: a merge left unfinished is settled as the README says.
fn settle_pull(team: &Team, m: &Member, pull: &Output) {
    if pull.success() {
        team.sesto(m, &["resolve"]);
    } else {
        team.finish_merge(m);
    }
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn issue10_case1_forged_value_through_git_pull_is_not_taken() {
    // issue 10 case 1: a staging writer's node for a prod secret was merged in
    // through a fake path found on another ref, and re-signed by alice.
    require_tool("age");
    let (team, alice, mallory) = forgery_setup();
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    let planted = mallory_forges(&team, &alice, &mallory);
    let pull = team.pull(&alice);
    if pull.success() {
        let got = team.get(&alice, PASSWORD);
        assert_eq!(
            got.as_deref(),
            Some("v-alice-1"),
            "alice's value after the pull"
        );
    }
    assert_not_laundered(&team, &alice, &mallory, &planted);
    settle_pull(&team, &alice, &pull);
    team.push(&alice);
    assert_not_laundered(&team, &alice, &mallory, &planted);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn issue10_case1_forged_value_through_sesto_sync_is_not_taken() {
    // issue 10 case 1, with `sesto sync` in place of `git pull`.
    require_tool("age");
    let (team, alice, mallory) = forgery_setup();
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    let planted = mallory_forges(&team, &alice, &mallory);
    // Her branch is in alice's clone as any fetch (an editor's, say) brings it.
    team.git_ok(&alice, &["fetch", "-q"]);
    let sync = team.sync(&alice);
    if sync.success() {
        let got = team.get(&alice, PASSWORD);
        assert_eq!(
            got.as_deref(),
            Some("v-alice-1"),
            "alice's value after the sync"
        );
    }
    assert_not_laundered(&team, &alice, &mallory, &planted);
    // Where sync stops and says what to run, alice runs it, settles and pushes.
    if let Some(file) = checkout_hint(&sync.stderr) {
        team.git(&alice, &["checkout", "-m", "--", &file]);
        team.finish_merge(&alice);
        team.push(&alice);
    }
    team.sync(&alice);
    assert_not_laundered(&team, &alice, &mallory, &planted);
}

/// The file in a "run `git checkout -m -- FILE`" hint.
fn checkout_hint(stderr: &str) -> Option<String> {
    let rest = &stderr[stderr.find("git checkout -m -- ")? + "git checkout -m -- ".len()..];
    Some(rest.split(['`', ' ', '\n']).next()?.to_string())
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn issue10_case2_new_value_is_not_encrypted_to_the_forgers_key() {
    // issue 10 case 2: the merged node took the key from mallory's fake tree,
    // so alice's next value was readable by mallory.
    require_tool("age");
    let (team, alice, mallory) = forgery_setup();
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    let planted = mallory_forges(&team, &alice, &mallory);
    team.set_ok(&alice, PASSWORD, "v-alice-2");
    let pull = team.pull(&alice);
    settle_pull(&team, &alice, &pull);
    team.push(&alice);
    let store = team.roster(&alice).store;
    for (place, nodes) in [
        ("alice's clone", team.clone_nodes(&alice)),
        ("the remote", team.remote_nodes("main")),
    ] {
        for o in team.opened(&[&mallory.key], &planted, &store, &nodes) {
            let v = o.value().unwrap_or_default();
            assert!(
                ![&b"v-alice-0"[..], b"v-alice-1", b"v-alice-2"].contains(&v),
                "mallory's keys open node {} in {place}, which holds alice's prod value",
                o.id
            );
        }
    }
    assert_eq!(team.get(&alice, PASSWORD).as_deref(), Some("v-alice-2"));
}

// ---------------------------------------------------------------------------------
// Issue 10, case 3: a member who cannot read the root merges

#[test]
fn issue10_case3_member_merges_a_concurrent_edit_without_losing_it() {
    // issue 10 case 3: bob (write on prod, no root) synced over alice's edit of
    // the same secret: a panic, or his value lost.
    for way in [Way::Sync, Way::Pull, Way::Rebase] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, "prod/notes", "v-notes-0");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        team.set_ok(&alice, "prod/notes", "v-alice-1");
        assert_ok("alice's sync", &team.sync(&alice));
        let remote = team.remote_head();
        team.set_ok(&bob, "prod/notes", "v-bob-1");
        match team.take_in(&bob, way) {
            Err(out) => {
                assert!(
                    !out.stderr.trim().is_empty(),
                    "{way:?}: bob's merge failed with no message"
                );
                assert_eq!(
                    team.remote_head(),
                    remote,
                    "{way:?}: bob's failed merge pushed"
                );
            }
            Ok(()) => {
                for m in [&alice, &bob, &alice] {
                    assert_ok(&format!("{way:?}: {}'s sync", m.name), &team.sync(m));
                }
                for m in [&alice, &bob] {
                    let values = team.values(m);
                    let notes: BTreeSet<&str> = values
                        .iter()
                        .filter(|(p, _)| p.starts_with("prod/notes"))
                        .map(|(_, v)| v.as_str())
                        .collect();
                    for v in ["v-alice-1", "v-bob-1"] {
                        assert!(notes.contains(v), "{way:?}: {} lost {v}: {notes:?}", m.name);
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Issue 10, cases 4, 5, 7, 8: trust, history, forged rosters, fresh clones

#[test]
fn issue10_case4_roster_changes_in_one_commit_are_trusted() {
    // issue 10 case 4: in an infrastructure repo, member add + grant in one
    // commit left a roster bob's clone could not follow without --accept.
    let (team, alice) = Team::new(Mode::Infra);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.commit(&alice, "secrets");
    assert_ok("push", &team.push(&alice));
    let bob = team.person("bob");
    team.clone_for(&bob, true);
    team.sesto(&bob, &["ls"]); // not a member yet: an error, not a panic
    team.add(&alice, &bob, Some(("prod", true)));
    assert_ok("push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    let ls = team.sesto(&bob, &["ls", "prod"]);
    assert_ok("bob's ls prod", &ls);
    // The notice says what changed, and nothing about new admins.
    assert!(
        ls.stderr.contains("admins unchanged; bob added"),
        "bob was not told what changed:\n{}",
        snapshot_text(&ls)
    );
    assert_eq!(team.get(&bob, PASSWORD).as_deref(), Some("v-alice-1"));
    assert_ok("alice's verify", &team.sesto(&alice, &["verify"]));
    assert_ok("bob's verify", &team.sesto(&bob, &["verify"]));
}

#[test]
fn issue10_case5_older_commits_read_and_accept_sets_the_pin() {
    // issue 10 case 5: a detached checkout of an older commit was refused as
    // "rolled back?" for good, and `trust --accept` did not unstick it.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/a", "v-a-1");
    team.set_ok(&alice, "prod/a", "v-a-2");
    let bob = team.person("bob");
    team.add(&alice, &bob, None);
    team.set_ok(&alice, "prod/a", "v-a-3");
    team.ok(&alice, &["ls"]);
    team.git_ok(&alice, &["checkout", "-q", "HEAD~2"]);
    let out = team.sesto(&alice, &["get", "prod/a"]);
    assert_ok("get at HEAD~2", &out);
    assert_eq!(out.stdout, "v-a-2");
    team.git_ok(&alice, &["checkout", "-q", "main"]);
    assert_eq!(team.get(&alice, "prod/a").as_deref(), Some("v-a-3"));

    // A real refusal: the older roster put back in the work tree.
    let old = team.git_ok(&alice, &["show", "HEAD~2:.sesto/roster.yaml"]) + "\n";
    let old_sig = team.git_ok(&alice, &["show", "HEAD~2:.sesto/roster.sig"]) + "\n";
    fs::write(alice.clone.join(".sesto/roster.yaml"), old).unwrap();
    fs::write(alice.clone.join(".sesto/roster.sig"), old_sig).unwrap();
    let out = team.sesto(&alice, &["ls"]);
    assert!(
        !out.success(),
        "an older roster in the work tree was taken silently"
    );
    assert_ok(
        "trust --accept",
        &team.sesto(&alice, &["trust", "--accept"]),
    );
    assert_ok("ls after trust --accept", &team.sesto(&alice, &["ls"]));
    team.git_ok(&alice, &["checkout", "--", ".sesto"]);
    assert_ok("ls at main again", &team.sesto(&alice, &["ls"]));
}

/// Commands a member runs after pulling a forged roster, with stdin for `set`.
const AFTER_PULL: &[&[&str]] = &[
    &["ls"],
    &["get", PASSWORD],
    &["set", "prod/x"],
    &["find", ""],
    &["tree"],
    &["member", "list"],
    &["whoami"],
    &["log", PASSWORD],
    &["verify"],
    &["fsck"],
    &["resolve"],
    &["sync"],
];

#[test]
fn issue10_case7_orphan_roster_is_refused_without_a_panic() {
    // issue 10 case 7: a pushed roster with no `previous` (a rival history with
    // the same store id, its signer an admin of it) made commands panic.
    for later in [false, true] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        team.ok(&bob, &["ls"]);
        let ci = team.person("ci");
        team.clone_for(&ci, true);
        let mallory = team.person("mallory");
        team.clone_for(&mallory, false);

        let real = team.roster(&mallory);
        let mut rival = team.rival_roster(&mallory);
        if later {
            // Past every pin's high-water mark, still with no `previous`.
            rival.version = real.version + 1;
        }
        let root = Body::new(&rival.store, rival.root, Kind::Folder, "");
        let root_file = team.forge(&mallory.key, &rival.store, &root, &[&mallory.public]);
        team.plant(&mallory, &rival.root.to_string(), &root_file);
        team.plant_roster(&mallory, &rival, &mallory.key);
        team.commit(&mallory, "rival history");
        assert_ok("mallory's push", &team.push(&mallory));
        let pushed = team.remote_head();

        // alice fast-forwards; bob has a change of his own, so his pull merges;
        // ci is a fresh clone pinned by SESTO_TRUST.
        assert_ok("alice's pull", &team.pull(&alice));
        team.set_ok(&bob, "prod/bob", "v-bob-1");
        let pull = team.pull(&bob);
        settle_pull(&team, &bob, &pull);
        assert_ok("ci's pull", &team.pull(&ci));
        let trust = fpr(&alice.public);
        for m in [&alice, &bob, &ci] {
            let env: &[(&str, &str)] = if m.name == "ci" {
                &[("SESTO_TRUST", &trust)]
            } else {
                &[]
            };
            for args in AFTER_PULL {
                let out = team.sesto_env(m, args, b"v-after", env);
                assert!(
                    !out.success(),
                    "version {}: {}: sesto {args:?} took the orphan roster:\n{}",
                    rival.version,
                    m.name,
                    snapshot_text(&out)
                );
                assert!(
                    !out.stderr.trim().is_empty(),
                    "{}: {args:?} gave no reason",
                    m.name
                );
            }
            team.sesto_env(m, &["trust"], b"", env);
        }
        assert_eq!(
            team.remote_head(),
            pushed,
            "a member pushed over the orphan roster"
        );
    }
}

#[test]
fn issue10_case7_after_an_admin_undoes_an_orphan_roster_a_merge_took_in_the_member_syncs() {
    // Found by tests/team_sim.rs (seed 4, infra mode): bob's plain `git pull`
    // merged mallory's orphan roster into his HEAD (git takes a file only one
    // side changed without asking). An admin then put the real roster back on
    // the remote, but bob's next merge read his own commit and the base under
    // nothing trusted and failed, for good.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let mallory = team.person("mallory");
    team.clone_for(&mallory, false);
    let real = team.roster(&mallory);
    let before: Vec<(String, Vec<u8>)> = ["roster.yaml", "roster.sig"]
        .iter()
        .map(|f| {
            let file = format!(".sesto/{f}");
            let bytes = fs::read(mallory.clone.join(&file)).unwrap();
            (file, bytes)
        })
        .collect();
    let mut rival = team.rival_roster(&mallory);
    rival.version = real.version + 1;
    team.plant_roster(&mallory, &rival, &mallory.key);
    team.commit(&mallory, "rival roster");
    assert_ok("mallory's push", &team.push(&mallory));

    // A clone that never trusted the store does not pin mallory's roster on
    // first use: it does not descend from the store's first one.
    let dave = team.person("dave");
    team.clone_for(&dave, false);
    let first = team.sesto(&dave, &["ls"]);
    assert!(
        !first.success() && first.stderr.contains("the store's first roster"),
        "a fresh clone trusted mallory's roster:\n{}",
        snapshot_text(&first)
    );

    // bob has a change of his own, so his pull merges mallory's roster in.
    team.set_ok(&bob, "prod/bob", "v-bob-1");
    let pull = team.pull(&bob);
    settle_pull(&team, &bob, &pull);
    assert!(
        team.get(&bob, PASSWORD).is_none(),
        "bob read the store under mallory's roster"
    );

    // alice undoes it with plain git, and changes prod meanwhile.
    team.git_ok(&alice, &["pull", "-q", "--no-rebase"]);
    for (file, bytes) in &before {
        fs::write(alice.clone.join(file), bytes).unwrap();
    }
    team.git_ok(&alice, &["add", ".sesto"]);
    team.commit(&alice, "undo mallory's roster");
    team.set_ok(&alice, PASSWORD, "v-alice-2");
    assert_ok("alice's push", &team.push(&alice));

    // bob's way back is the one the error pointed at: git pull, resolve.
    let pull = team.pull(&bob);
    settle_pull(&team, &bob, &pull);
    assert!(!team.merging(&bob), "bob's merge was left unfinished");
    assert_eq!(team.get(&bob, PASSWORD).as_deref(), Some("v-alice-2"));
    assert_eq!(team.get(&bob, "prod/bob").as_deref(), Some("v-bob-1"));
    assert_ok("bob's sync", &team.sync(&bob));
    team.ok(&bob, &["fsck"]);
    assert_ok("alice's sync", &team.sync(&alice));
    assert_eq!(team.get(&alice, "prod/bob").as_deref(), Some("v-bob-1"));
    team.ok(&alice, &["fsck"]);
    team.ok(&alice, &["verify"]);
    // The history still holds mallory's roster, and says so.
    let history = team.sesto(&alice, &["verify", "--history"]);
    assert!(
        !history.success() && history.stdout.contains("names no previous roster"),
        "verify --history passed over mallory's roster:\n{}",
        snapshot_text(&history)
    );
}

#[test]
fn issue10_case8_fresh_clone_registers_the_merge_driver() {
    // issue 10 case 8: without `sesto setup-git`, a clone had no merge driver
    // and a conflicting pull failed on "binary" node files.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/x", "v-x-0");
    assert_ok("push", &team.push(&alice));
    let bob = team.person("bob");
    team.add(&alice, &bob, Some(("prod", true)));
    assert_ok("push", &team.push(&alice));
    team.clone_for(&bob, false);
    team.ok(&bob, &["ls"]);
    let driver = team.git(&bob, &["config", "merge.sesto.driver"]);
    assert!(
        driver.success() && driver.stdout.contains("merge-driver"),
        "no merge driver after a sesto command in a fresh clone:\n{}",
        snapshot_text(&driver)
    );

    team.set_ok(&alice, "prod/x", "v-alice-1");
    assert_ok("alice's push", &team.push(&alice));
    team.set_ok(&bob, "prod/x", "v-bob-1");
    team.commit(&bob, "bob's change");
    assert_ok("bob's conflicting pull", &team.pull(&bob));
    team.ok(&bob, &["resolve"]);
    let values = team.values(&bob);
    let xs: BTreeSet<&str> = values
        .iter()
        .filter(|(p, _)| p.starts_with("prod/x"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xs, BTreeSet::from(["v-alice-1", "v-bob-1"]));
}

// ---------------------------------------------------------------------------------
// Issue 16: merges across roster changes

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn issue16_case1_merge_does_not_undo_a_revoke() {
    // issue 16 case 1: bob's concurrent write in prod, merged after alice's
    // revoke of carol, was encrypted again to what carol holds.
    require_tool("age");
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.set_ok(&alice, "prod/api/token", "v-token-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let carol = team.join(&alice, "carol", Some(("prod", false)));
    for m in [&bob, &carol] {
        assert_ok("pull", &team.pull(m));
        team.ok(m, &["ls", "prod"]);
    }
    let learned = team.learned_keys(&[&carol.key], &BTreeSet::new(), &team.remote_nodes("main"));
    assert!(!learned.is_empty(), "carol read prod before the revoke");

    team.ok(&alice, &["revoke", "carol", "prod"]);
    team.ok(&bob, &["mkdir", "-p", "prod/new"]);
    team.set_ok(&bob, "prod/new/x", "v-bob-1");
    assert_ok("alice's sync", &team.sync(&alice));
    let bob_synced = team.sync(&bob).success();
    team.sync(&alice);

    for (id, bytes) in team.remote_nodes("main") {
        assert!(
            team.age_open(&[&carol.key], &learned, &bytes).is_none(),
            "after the revoke, carol's key or a node key she had opens node {id}"
        );
    }
    // Nor may the merge cost alice what is in prod.
    let got = team.get(&alice, PASSWORD);
    assert_eq!(
        got.as_deref(),
        Some("v-alice-1"),
        "alice's read of {PASSWORD}"
    );
    if bob_synced {
        assert_eq!(team.get(&alice, "prod/new/x").as_deref(), Some("v-bob-1"));
    }
    team.ok(&alice, &["fsck"]);
}

#[test]
fn member_merge_over_a_rotation_keeps_the_folder_readable() {
    // Found by tests/team_sim.rs (seed 2, commit mode, no attacks): bob's merge
    // of prod across alice's rotation (carol removed) wrote prod to a key the
    // root does not hold; everything in prod was gone for alice, and sync said ok.
    let (team, alice, bob, carol) = prod_team(Mode::Commit, &[(PASSWORD, "v-alice-1")]);
    team.ok(&alice, &["member", "remove", "carol"]);
    team.set_ok(&bob, "prod/b", "v-bob-1");
    assert_ok("alice's sync", &team.sync(&alice));
    let bob_synced = team.sync(&bob).success();
    team.sync(&alice);
    let got = team.get(&alice, PASSWORD);
    assert_eq!(
        got.as_deref(),
        Some("v-alice-1"),
        "alice's read of {PASSWORD}"
    );
    if bob_synced {
        assert_eq!(team.get(&alice, "prod/b").as_deref(), Some("v-bob-1"));
        assert_eq!(team.get(&bob, PASSWORD).as_deref(), Some("v-alice-1"));
    }
    team.ok(&alice, &["fsck"]);
    team.ok(&alice, &["verify"]);
    drop(carol);
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_folder_added_before_a_removal_an_admin_made_while_behind_is_rekeyed_in_the_merge() {
    // Found by tests/team_sim.rs (seed 10062, infra mode) once the simulation
    // checked with the `age` CLI: bob added prod/new and pushed; carol pulled
    // and could read it; alice, behind, removed carol, rotating only what her
    // clone had. The merge kept prod/new and prod/new/z under keys carol
    // held, so bob's next value there was hers to read.
    require_tool("age");
    for way in ["member remove", "revoke"] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        let carol = team.join(&alice, "carol", Some(("prod", false)));
        for m in [&bob, &carol] {
            assert_ok("pull", &team.pull(m));
        }
        team.set_ok(&bob, "prod/new/z", "v-bob-1");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        assert_eq!(team.get(&carol, "prod/new/z").as_deref(), Some("v-bob-1"));
        let learned =
            team.learned_keys(&[&carol.key], &BTreeSet::new(), &team.remote_nodes("main"));

        // alice has not pulled bob's folder.
        match way {
            "revoke" => team.ok(&alice, &["revoke", "carol", "prod"]),
            _ => team.ok(&alice, &["member", "remove", "carol"]),
        };
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("bob's sync", &team.sync(&bob));
        team.set_ok(&bob, "prod/new/z", "v-bob-2");
        assert_ok("bob's sync", &team.sync(&bob));

        for (id, bytes) in team.remote_nodes("main") {
            assert!(
                team.age_open(&[&carol.key], &learned, &bytes).is_none(),
                "{way}: after it, carol's key or a node key she had opens node {id}"
            );
        }
        assert_ok("alice's sync", &team.sync(&alice));
        assert_eq!(team.get(&alice, "prod/new/z").as_deref(), Some("v-bob-2"));
        assert_eq!(team.get(&alice, PASSWORD).as_deref(), Some("v-alice-1"));
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify"]);
    }
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_folder_the_revoking_side_removed_and_the_other_side_changed_comes_back_rekeyed() {
    // Found by tests/team_sim.rs (seeds 10114, 10166, 10288, infra mode):
    // alice revoked carol's prod, then removed prod and made a new one; bob,
    // behind, changed a secret in the old prod. The merge kept the old prod
    // for bob's edit (an edit beats a delete), under the keys carol held.
    require_tool("age");
    for way in ["revoke", "member remove"] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        let carol = team.join(&alice, "carol", Some(("prod", false)));
        for m in [&bob, &carol] {
            assert_ok("pull", &team.pull(m));
        }
        match way {
            "revoke" => team.ok(&alice, &["revoke", "carol", "prod"]),
            _ => team.ok(&alice, &["member", "remove", "carol"]),
        };
        team.ok(&alice, &["rm", "-r", "-f", "prod"]);
        team.set_ok(&alice, "prod/other", "v-alice-2");
        team.set_ok(&bob, PASSWORD, "v-bob-1");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        let learned =
            team.learned_keys(&[&carol.key], &BTreeSet::new(), &team.remote_nodes("main"));
        assert!(!learned.is_empty(), "carol read prod before");

        // alice's merge is what reaches the remote first: nothing in it may
        // open with what carol held.
        assert_ok("alice's sync", &team.sync(&alice));
        for (id, bytes) in team.remote_nodes("main") {
            assert!(
                team.age_open(&[&carol.key], &learned, &bytes).is_none(),
                "{way}: after alice's merge, carol's key or a node key she had opens node {id}"
            );
        }
        // bob's value was there for carol to read: `stale` says so.
        let stale = team.sesto(&alice, &["stale", "--json"]);
        assert_eq!(stale.code, 1, "{way}: {}{}", stale.stdout, stale.stderr);
        assert!(
            stale.stdout.contains("db/password") && stale.stdout.contains("\"carol\""),
            "{way}: {}",
            stale.stdout
        );
        let _ = team.sync(&bob);
        let _ = team.sync(&alice);
        let values = team.values(&alice);
        assert!(
            values.iter().any(|(_, v)| v == "v-bob-1"),
            "{way}: bob's edit is kept: {values:?}"
        );
        team.ok(&alice, &["fsck"]);
    }
}

#[test]
fn a_merge_settled_once_is_not_settled_again_by_the_next_sync() {
    // Found by tests/team_sim.rs (seed 10698, infra mode): alice, behind,
    // removed carol; bob had added prod/new and deleted a secret alice's
    // rotation rewrote. alice's sync merged with a conflict, re-keyed
    // prod/new and committed the merge. Her next `resolve` (every `sync`
    // starts with one) re-keyed prod/new again and left it staged, so each
    // later sync stopped, or pushed a branch behind the remote.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.set_ok(&alice, "prod/a", "v-alice-a");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let carol = team.join(&alice, "carol", Some(("prod", false)));
    for m in [&bob, &carol] {
        assert_ok("pull", &team.pull(m));
    }
    team.set_ok(&bob, "prod/new/z", "v-bob-1");
    team.ok(&bob, &["rm", "prod/a"]);
    assert_ok("bob's sync", &team.sync(&bob));

    team.ok(&alice, &["member", "remove", "carol"]);
    assert_ok("alice's sync", &team.sync(&alice));
    assert!(
        team.git_ok(&alice, &["log", "-1", "--format=%p"])
            .contains(' '),
        "alice's sync ends on the merge commit, which this case needs"
    );
    let again = team.ok(&alice, &["resolve"]);
    assert!(again.contains("Nothing to resolve."), "{again}");
    assert_eq!(team.git_ok(&alice, &["status", "--porcelain"]), "");
    assert_ok("alice's next sync", &team.sync(&alice));
    assert_ok("bob's sync", &team.sync(&bob));
    assert_eq!(team.head(&alice), team.remote_head());
    assert_eq!(team.get(&alice, "prod/new/z").as_deref(), Some("v-bob-1"));
    team.ok(&alice, &["fsck"]);
}

#[test]
fn a_members_merge_that_re_keys_and_keeps_both_values_loses_nothing() {
    // Found by tests/team_sim.rs (seed 12258, infra mode): bob, a writer of
    // prod and behind alice's removal of carol, changed prod/a (alice did
    // too) and added prod/b. His sync re-keyed prod/b in one transaction,
    // then wrote the conflict copy of prod/a into prod as his clone had
    // read it before: prod/b's new key was lost and bob's value with it.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice) = Team::new(mode);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        team.set_ok(&alice, "prod/a", "v-alice-a1");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        let carol = team.join(&alice, "carol", Some(("prod", false)));
        for m in [&bob, &carol] {
            assert_ok("pull", &team.pull(m));
        }
        team.ok(&alice, &["member", "remove", "carol"]);
        team.set_ok(&alice, "prod/a", "v-alice-a2");
        team.commit(&alice, "remove carol");
        assert_ok("alice's push", &team.push(&alice));

        team.set_ok(&bob, "prod/a", "v-bob-a");
        team.set_ok(&bob, "prod/b", "v-bob-b");
        team.commit(&bob, "bob's values");
        let synced = team.sync(&bob);
        assert_ok("bob's sync", &synced);
        assert!(
            synced.stdout.contains("kept both values"),
            "{}",
            synced.stdout
        );
        for m in [&bob, &alice] {
            if m.name == "alice" {
                assert_ok("alice's sync", &team.sync(&alice));
            }
            let values = team.values(m);
            assert_eq!(
                values.get("prod/b").map(String::as_str),
                Some("v-bob-b"),
                "{}: {values:?}",
                m.name
            );
            let a: BTreeSet<&str> = values
                .iter()
                .filter(|(p, _)| p.starts_with("prod/a"))
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(a, BTreeSet::from(["v-alice-a2", "v-bob-a"]), "{}", m.name);
            team.ok(m, &["fsck"]);
        }
    }
}

#[test]
fn a_folder_and_a_secret_in_it_both_kept_from_a_delete_come_back_together() {
    // Found by tests/team_sim.rs (seeds 10398 and 12078 infra, 10621
    // commit): alice removed a folder while bob, behind, changed things two
    // levels inside it. The merge kept bob's changes (an edit beats a
    // delete): prod/db came back, listing prod/db/conf, which was not read
    // when prod/db/conf/port was put back in it, and `sync` and `resolve`
    // exited 101.
    for first in ["alice", "bob"] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        team.set_ok(&alice, "prod/db/conf/port", "v-alice-port");
        team.set_ok(&alice, "prod/a", "v-alice-a");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        assert_ok("bob's pull", &team.pull(&bob));
        team.ok(&alice, &["rm", "-r", "-f", "prod/db"]);
        team.set_ok(&bob, "prod/db/user", "v-bob-user");
        team.set_ok(&bob, "prod/db/conf/host", "v-bob-host");
        team.set_ok(&bob, "prod/db/conf/port", "v-bob-port");
        let (one, other) = if first == "alice" {
            (&alice, &bob)
        } else {
            (&bob, &alice)
        };
        assert_ok("the first sync", &team.sync(one));
        assert_ok("the merging sync", &team.sync(other));
        assert_ok("the first's next sync", &team.sync(one));
        for m in [&alice, &bob] {
            let values = team.values(m);
            let expected = [
                ("prod/a", "v-alice-a"),
                ("prod/db/conf/host", "v-bob-host"),
                ("prod/db/conf/port", "v-bob-port"),
                ("prod/db/user", "v-bob-user"),
            ];
            assert_eq!(
                values,
                expected
                    .iter()
                    .map(|(p, v)| (p.to_string(), v.to_string()))
                    .collect(),
                "{first} synced first; {} sees",
                m.name
            );
            team.ok(m, &["fsck"]);
        }
    }
}

#[test]
fn issue16_case2_rebase_over_a_roster_change_resolves() {
    // issue 16 case 2: `git pull --rebase` with an unpushed roster change
    // stopped, and `sesto resolve` refused it as "rolled back?".
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-0");
    team.set_ok(&alice, "prod/api/token", "v-token-0");
    assert_ok("push", &team.push(&alice));
    let erin = team.person("erin");
    let erin_pub = format!("{}.pub", erin.key.display());
    team.ok(
        &alice,
        &["member", "add", "erin", "--key-file", &erin_pub, "--admin"],
    );
    assert_ok("push", &team.push(&alice));
    team.clone_for(&erin, true);

    // alice: two values, then the roster change, none pushed. erin, another
    // admin: the same secret, and a delete git leaves to `sesto resolve`.
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.set_ok(&alice, "prod/api/token", "v-token-1");
    team.add(&alice, &team.person("dave"), None);
    team.ok(&alice, &["ls"]);
    team.set_ok(&erin, PASSWORD, "v-erin-1");
    team.ok(&erin, &["rm", "prod/api/token"]);
    assert_ok("erin's push", &team.push(&erin));

    let mut out = team.git(&alice, &["pull", "-q", "--rebase"]);
    let mut rounds = 0;
    while !out.success() {
        rounds += 1;
        assert!(
            rounds < 10,
            "the rebase does not finish:\n{}",
            snapshot_text(&out)
        );
        let resolve = team.sesto(&alice, &["resolve"]);
        assert!(
            !resolve.stderr.contains("rolled back"),
            "resolve refused the rebase:\n{}",
            snapshot_text(&resolve)
        );
        assert_ok("resolve", &resolve);
        out = team.git(&alice, &["rebase", "--continue"]);
    }
    team.ok(&alice, &["resolve"]);
    team.ok(&alice, &["fsck"]);
    team.ok(&alice, &["verify"]);
    assert!(team.ok(&alice, &["member", "list"]).contains("dave"));
    assert_eq!(
        team.get(&alice, "prod/api/token").as_deref(),
        Some("v-token-1")
    );
    let values = team.values(&alice);
    let pw: BTreeSet<&str> = values
        .iter()
        .filter(|(p, _)| p.starts_with(PASSWORD))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(pw, BTreeSet::from(["v-alice-1", "v-erin-1"]));
}

#[test]
fn issue16_case3_admin_merges_a_shared_folder_changed_on_both_sides() {
    // issue 16 case 3: alice's merge of prod, changed by her and by bob, failed
    // with "not encrypted to alice's key".
    for way in [Way::Pull, Way::Sync, Way::Rebase] {
        let (team, alice) = Team::new(Mode::Commit);
        team.set_ok(&alice, PASSWORD, "v-alice-0");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        team.set_ok(&alice, "prod/from-alice", "v-alice-1");
        team.set_ok(&bob, "prod/from-bob", "v-bob-1");
        assert_ok("bob's push", &team.push(&bob));
        let out = match way {
            Way::Pull => team.pull(&alice),
            Way::Sync => team.sync(&alice),
            Way::Rebase => team.git(&alice, &["pull", "-q", "--rebase"]),
        };
        assert_ok(&format!("{way:?}: alice's merge"), &out);
        assert!(
            !out.stderr.contains("not encrypted"),
            "{way:?}: {}",
            out.stderr
        );
        team.ok(&alice, &["resolve"]);
        let get = |p| team.get(&alice, p);
        assert_eq!(
            get("prod/from-alice").as_deref(),
            Some("v-alice-1"),
            "{way:?}"
        );
        assert_eq!(get("prod/from-bob").as_deref(), Some("v-bob-1"), "{way:?}");
        assert_eq!(get(PASSWORD).as_deref(), Some("v-alice-0"), "{way:?}");
        assert_ok("alice's push", &team.push(&alice));
    }
}

#[test]
fn member_edit_inside_a_folder_an_admin_removed_is_not_lost() {
    // Found by team_sim (seed 101, infra mode): alice removed the shared folder
    // prod while bob, who cannot read the root, wrote inside it; bob's sync
    // said "Synced." and his value was gone.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice) = Team::new(mode);
        team.set_ok(&alice, "prod/db/x", "v-x-0");
        if mode == Mode::Infra {
            team.commit(&alice, "x");
        }
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        team.ok(&alice, &["rm", "-r", "prod"]);
        if mode == Mode::Infra {
            team.commit(&alice, "rm prod");
        }
        assert_ok("alice's sync", &team.sync(&alice));
        let remote = team.remote_head();
        team.set_ok(&bob, "prod/db/y", "v-bob-1");
        if mode == Mode::Infra {
            team.commit(&bob, "y");
        }
        let out = team.sync(&bob);
        if out.success() {
            // Kept: bob still reads it, and so does alice after her sync.
            assert_eq!(
                team.get(&bob, "prod/db/y").as_deref(),
                Some("v-bob-1"),
                "{mode:?}"
            );
            assert_ok("alice's sync", &team.sync(&alice));
            assert_eq!(
                team.get(&alice, "prod/db/y").as_deref(),
                Some("v-bob-1"),
                "{mode:?}"
            );
        } else {
            // Stopped: says who can finish, pushed nothing, value still local.
            assert!(out.stderr.contains("alice"), "{mode:?}: {}", out.stderr);
            assert_eq!(team.remote_head(), remote, "{mode:?}: a failed sync pushed");
        }
    }
}

#[test]
fn issue10_case6_a_node_put_back_to_an_older_version_is_refused_by_a_clone_that_saw_the_newer() {
    // issue 10 case 6: a clone that had read version 2 of a secret took version
    // 1, copied back by a push, without a word.
    let r = replay_setup();
    // mallory, who may write nothing, pushes the older, validly signed file.
    r.put_back_old();
    let Replay {
        team,
        alice,
        bob,
        mallory,
        ..
    } = r;
    assert_ok("mallory's push", &team.push(&mallory));
    let replay = team.remote_head();
    assert_ok("bob's pull", &team.pull(&bob));
    let out = team.sesto(&bob, &["get", "prod/db/x"]);
    assert_eq!(
        out.code, 1,
        "bob read the rolled-back value: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("went back from version 2 to version 1")
            && out.stderr.contains(&replay[..12]),
        "{}",
        out.stderr
    );
    // Every later command says so too, until bob takes it knowingly.
    assert_eq!(team.sesto(&bob, &["ls"]).code, 1);
    team.ok(&bob, &["trust", "--accept"]);
    assert_eq!(team.get(&bob, "prod/db/x").as_deref(), Some("v-x-1"));
    // alice, whose clone saw version 2 as well, is stopped by her pull too.
    assert_ok("alice's pull", &team.pull(&alice));
    assert_eq!(team.sesto(&alice, &["ls"]).code, 1);
}

#[test]
fn issue10_case8_keys_given_with_i_reach_what_git_runs_during_sync() {
    // issue 10 case 8: `-i FILE` did not reach the merge driver git launches
    // during `sesto sync`, which then found no key. The driver gets git's
    // environment, as every process git runs does: a post-merge hook records
    // what the merge passed on.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    assert_ok("bob's pull", &team.pull(&bob));
    team.set_ok(&alice, "prod/a", "v-alice-2");
    assert_ok("alice's sync", &team.sync(&alice));
    team.set_ok(&bob, "prod/b", "v-bob-1");

    let seen = team.env.root.join("seen-by-hook");
    let hook = bob.clone.join(".git/hooks/post-merge");
    fs::write(
        &hook,
        format!(
            "#!/bin/sh\nprintf '%s' \"$SESTO_IDENTITY_FILE\" > '{}'\n",
            seen.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // No key where sesto looks by default: only -i names bob's, relative.
    let empty = team.env.root.join("no-keys");
    fs::create_dir_all(&empty).unwrap();
    let key_dir = bob.key.parent().unwrap();
    let mut cmd = team.command(&bob, env!("CARGO_BIN_EXE_sesto"));
    cmd.current_dir(key_dir)
        .env("HOME", &empty)
        .env_remove("SESTO_IDENTITY_FILE")
        .arg("--store")
        .arg(&bob.clone)
        .arg("-i")
        .arg(bob.key.file_name().unwrap())
        .arg("sync");
    let out = common::team::no_panic("bob: sesto -i KEY sync", common::run_cmd(cmd));
    assert_ok("bob's sync with -i", &out);
    assert_eq!(
        fs::read_to_string(&seen).ok().map(std::path::PathBuf::from),
        Some(bob.key.clone()),
        "the merge git ran did not get bob's -i key, as an absolute path"
    );
    assert_ok("alice's sync", &team.sync(&alice));
    assert_eq!(team.get(&alice, "prod/b").as_deref(), Some("v-bob-1"));
    assert_eq!(team.get(&bob, "prod/a").as_deref(), Some("v-alice-2"));
}

#[test]
fn a_branch_with_an_older_roster_is_the_users_own_checkout_but_a_pull_of_one_is_refused() {
    // Checking out another branch (or resetting) is the user's own move: its
    // roster may be older than one this clone used. A pull that takes the
    // branch's roster back is refused, naming the commits.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    assert_ok("push", &team.push(&alice));
    let old: Vec<(String, Vec<u8>)> = ["roster.yaml", "roster.sig"]
        .iter()
        .map(|f| {
            let file = format!(".sesto/{f}");
            (file.clone(), fs::read(alice.clone.join(&file)).unwrap())
        })
        .collect();
    team.git_ok(&alice, &["checkout", "-q", "-b", "onboarding"]);
    let bob = team.person("bob");
    team.add(&alice, &bob, Some(("prod", false)));
    team.ok(&alice, &["ls", "prod"]);
    team.git_ok(&alice, &["checkout", "-q", "main"]);
    assert_eq!(team.get(&alice, PASSWORD).as_deref(), Some("v-alice-1"));
    team.set_ok(&alice, "prod/other", "v-alice-2");
    let merge = team.git(&alice, &["merge", "-q", "--no-edit", "onboarding"]);
    if !merge.success() {
        assert!(team.finish_merge(&alice), "alice's merge of onboarding");
    }
    team.ok(&alice, &["ls", "prod"]);
    assert_ok("alice's push", &team.push(&alice));

    // mallory puts the older, validly signed roster back (bob's grant gone).
    let mallory = team.person("mallory");
    team.clone_for(&mallory, false);
    for (file, bytes) in &old {
        fs::write(mallory.clone.join(file), bytes).unwrap();
    }
    team.git_ok(&mallory, &["add", ".sesto"]);
    team.commit(&mallory, "innocent");
    assert_ok("mallory's push", &team.push(&mallory));
    assert_ok("alice's pull", &team.pull(&alice));
    let ls = team.sesto(&alice, &["ls"]);
    assert!(
        !ls.success()
            && ls.stderr.contains("went back to version")
            && ls.stderr.contains("git log -p"),
        "the pulled older roster was not refused with its commits:\n{}",
        snapshot_text(&ls)
    );
}

#[test]
fn issue16_case4_revoke_remove_and_re_add_beside_concurrent_edits_leave_a_readable_store() {
    // issue 16 case 4: after a revoke, `member remove` and a re-add, with
    // edits and moves merged beside them, `sesto tree` failed: "the key in
    // its parent folder does not open it".
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice) = Team::new(mode);
        team.set_ok(&alice, PASSWORD, "v-alice-1");
        team.set_ok(&alice, "prod/a", "v-alice-a");
        team.commit(&alice, "secrets");
        assert_ok("push", &team.push(&alice));
        let bob = team.join(&alice, "bob", Some(("prod", true)));
        let carol = team.join(&alice, "carol", Some(("prod", false)));
        for m in [&bob, &carol] {
            assert_ok("pull", &team.pull(m));
            team.ok(m, &["ls", "prod"]);
        }
        // alice: revoke, remove, re-add; bob meanwhile edits and moves.
        team.ok(&alice, &["revoke", "carol", "prod"]);
        team.commit(&alice, "revoke carol");
        team.ok(&alice, &["member", "remove", "carol"]);
        team.commit(&alice, "remove carol");
        team.ok(&bob, &["mkdir", "-p", "prod/new"]);
        team.ok(&bob, &["mv", "prod/a", "prod/new/a"]);
        team.set_ok(&bob, "prod/b", "v-bob-b");
        team.commit(&bob, "bob's work");
        assert_ok("alice's sync", &team.sync(&alice));
        team.add(&alice, &carol, Some(("prod", false)));
        team.set_ok(&alice, PASSWORD, "v-alice-2");
        team.commit(&alice, "re-add carol");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        for m in [&alice, &bob, &carol] {
            assert_ok(&format!("{}'s tree", m.name), &team.sesto(m, &["tree"]));
        }
        assert_eq!(team.get(&carol, "prod/new/a").as_deref(), Some("v-alice-a"));
        // bob's move wins over alice's re-encryption of what he moved.
        assert_eq!(team.get(&alice, "prod/a"), None, "prod/a was moved");
        assert_eq!(team.get(&carol, "prod/b").as_deref(), Some("v-bob-b"));
        assert_eq!(team.get(&bob, PASSWORD).as_deref(), Some("v-alice-2"));
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify", "--history"]);
    }
}

#[test]
fn issue16_case5_concurrent_roster_changes_merge_into_a_store_fsck_and_verify_accept() {
    // issue 16 case 5: after merges, fsck found a secret's file "missing"
    // and `verify --history` a merged roster "not in canonical form".
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    assert_ok("push", &team.push(&alice));
    let dave = team.person("dave");
    let key_file = format!("{}.pub", dave.key.display());
    team.ok(
        &alice,
        &["member", "add", "dave", "--admin", "--key-file", &key_file],
    );
    assert_ok("push", &team.push(&alice));
    team.clone_for(&dave, true);
    team.ok(&dave, &["ls"]);
    // Two admins change the roster and secrets at once.
    let bob = team.person("bob");
    let carol = team.person("carol");
    team.add(&alice, &bob, Some(("prod", true)));
    team.set_ok(&alice, "prod/a", "v-alice-a");
    team.add(&dave, &carol, Some(("prod", false)));
    team.set_ok(&dave, "prod/d", "v-dave-d");
    team.ok(&dave, &["rm", PASSWORD]);
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("dave's sync", &team.sync(&dave));
    assert_ok("alice's sync", &team.sync(&alice));
    for m in [&alice, &dave] {
        let roster = team.roster(m);
        assert!(
            roster.members.contains_key("bob") && roster.members.contains_key("carol"),
            "{}'s roster lost a member",
            m.name
        );
        team.ok(m, &["fsck"]);
        team.ok(m, &["verify", "--history"]);
    }
    assert_eq!(team.get(&alice, "prod/d").as_deref(), Some("v-dave-d"));
    assert_eq!(team.get(&dave, "prod/a").as_deref(), Some("v-alice-a"));
    assert_eq!(team.get(&alice, PASSWORD), None);
}

#[test]
fn removing_a_shared_folder_locks_no_one_out_of_the_rest() {
    // Found by tests/team_sim.rs (seed 49): alice's `rm -r prod` left bob's
    // grant on prod, and every command of bob's and carol's failed: "the file
    // is missing". The grant stays (a merge may bring the folder back for a
    // change inside it); its grantee sees nothing there, and the rest opens.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.set_ok(&alice, "staging/app/token", "v-token-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let carol = team.join(&alice, "carol", Some(("prod/db", false)));
    team.ok(&alice, &["grant", "carol", "staging"]);
    assert_ok("push", &team.push(&alice));
    for m in [&bob, &carol] {
        assert_ok("pull", &team.pull(m));
        team.ok(m, &["ls"]);
    }
    // bob (write on prod) removes the folder shared with carol.
    team.ok(&bob, &["rm", "-r", "prod/db"]);
    assert_ok("bob's sync", &team.sync(&bob));
    assert_ok("carol's pull", &team.pull(&carol));
    assert_eq!(
        team.get(&carol, "staging/app/token").as_deref(),
        Some("v-token-1")
    );
    assert_eq!(team.get(&carol, PASSWORD), None);
    // alice removes prod, bob's only folder: bob sees nothing, and no error.
    assert_ok("alice's pull", &team.pull(&alice));
    team.ok(&alice, &["rm", "-r", "prod"]);
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    let ls = team.sesto(&bob, &["ls"]);
    assert!(
        ls.stderr.contains("not granted") && !ls.stderr.contains("missing"),
        "{}",
        snapshot_text(&ls)
    );
    team.ok(&carol, &["ls"]);
    team.ok(&alice, &["fsck"]);
}

#[test]
fn a_replay_is_refused_after_a_rebase_and_when_it_undoes_a_version_the_clone_never_saw() {
    // Found by tests/team_sim.rs (seed 142): bob's `git pull --rebase` moved
    // HEAD onto mallory's replay of an older folder file, which was not a
    // forward move and went unchecked; bob wrote on top of it and alice's
    // newer secret was gone. And a replay of exactly the file a clone last
    // saw, after a newer one it never saw, changes nothing between the two.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/db/x", "v-x-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let mallory = team.join(&alice, "mallory", None);
    assert_ok("bob's pull", &team.pull(&bob));
    assert_eq!(team.get(&bob, "prod/db/x").as_deref(), Some("v-x-1"));
    let seen = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &seen, "prod/db/x");
    // alice writes version 2; mallory puts version 1 back on top.
    team.set_ok(&alice, "prod/db/x", "v-x-2");
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("mallory's pull", &team.pull(&mallory));
    team.plant(&mallory, &id, &seen[&id]);
    team.commit(&mallory, "update");
    assert_ok("mallory's push", &team.push(&mallory));
    let replay = team.remote_head();
    // bob has a change of his own and rebases onto the remote.
    team.set_ok(&bob, "prod/b", "v-bob-1");
    team.git_ok(&bob, &["pull", "-q", "--rebase"]);
    let out = team.sesto(&bob, &["get", "prod/db/x"]);
    assert!(
        !out.success()
            && out.stderr.contains("went back from version 2 to version 1")
            && out.stderr.contains(&replay[..12]),
        "bob's rebase took the replay:\n{}",
        snapshot_text(&out)
    );
    // sync refuses it before merging, and leaves the clone where it was.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/db/x", "v-x-1");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let mallory = team.join(&alice, "mallory", None);
    assert_ok("bob's pull", &team.pull(&bob));
    team.ok(&bob, &["ls", "prod"]);
    let seen = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &seen, "prod/db/x");
    team.set_ok(&alice, "prod/db/x", "v-x-2");
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("mallory's pull", &team.pull(&mallory));
    team.plant(&mallory, &id, &seen[&id]);
    team.commit(&mallory, "update");
    assert_ok("mallory's push", &team.push(&mallory));
    let before = team.head(&bob);
    let sync = team.sync(&bob);
    assert!(
        !sync.success()
            && sync
                .stderr
                .contains("went back from version 2 to version 1"),
        "bob's sync took the replay:\n{}",
        snapshot_text(&sync)
    );
    assert_eq!(
        team.head(&bob),
        before,
        "the refused sync moved bob's branch"
    );
    team.ok(&bob, &["ls", "prod"]);
}

#[test]
fn a_grant_merged_beside_a_change_in_the_folder_keeps_its_path() {
    // Found by tests/team_sim.rs (seed 122, infra): one admin granted bob
    // staging while alice added to staging; the merged folder lost the path
    // a shared folder records, and bob's every command failed.
    let (team, alice) = Team::new(Mode::Infra);
    team.set_ok(&alice, "staging/app/token", "v-token-1");
    team.commit(&alice, "secrets");
    assert_ok("push", &team.push(&alice));
    let dave = team.person("dave");
    let key_file = format!("{}.pub", dave.key.display());
    team.ok(
        &alice,
        &["member", "add", "dave", "--admin", "--key-file", &key_file],
    );
    let bob = team.person("bob");
    team.add(&alice, &bob, None);
    assert_ok("push", &team.push(&alice));
    team.clone_for(&dave, true);
    team.clone_for(&bob, true);
    team.ok(&dave, &["grant", "bob", "staging"]);
    team.commit(&dave, "grant bob staging");
    assert_ok("dave's sync", &team.sync(&dave));
    team.set_ok(&alice, "staging/db/url", "v-url-1");
    team.commit(&alice, "url");
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    assert_eq!(team.get(&bob, "staging/db/url").as_deref(), Some("v-url-1"));
    assert_eq!(
        team.get(&bob, "staging/app/token").as_deref(),
        Some("v-token-1")
    );
    team.ok(&alice, &["fsck"]);
}

/// bob moves a secret out of a folder alice re-keys (carol's read on it is
/// revoked) without having pulled; bob then takes alice's change in `way`.
/// The moved secret must open for everyone entitled to it, under the new
/// key only.
fn move_beside_a_rotation(way: Way, to: &str) {
    require_tool("age");
    let (team, alice) = Team::new(Mode::Infra);
    team.set_ok(&alice, PASSWORD, "v-alice-1");
    team.set_ok(&alice, "prod/other", "v-other-1");
    team.commit(&alice, "secrets");
    assert_ok("push", &team.push(&alice));
    team.set_ok(&alice, "staging/web", "v-web-1");
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    team.ok(&alice, &["grant", "bob", "staging", "--write"]);
    let carol = team.join(&alice, "carol", Some(("prod/db", false)));
    team.commit(&alice, "members");
    assert_ok("push", &team.push(&alice));
    for m in [&bob, &carol] {
        assert_ok("pull", &team.pull(m));
        team.ok(m, &["ls"]);
    }
    let learned = team.learned_keys(&[&carol.key], &BTreeSet::new(), &team.remote_nodes("main"));

    team.ok(&alice, &["revoke", "carol", "prod/db"]);
    team.commit(&alice, "revoke carol");
    assert_ok("alice's push", &team.push(&alice));
    team.ok(&bob, &["mv", PASSWORD, to]);
    team.commit(&bob, "move");
    if to.starts_with("prod/") {
        // The driver merges `prod`, changed on both sides: the merge commit
        // itself holds the new key, with nothing left for `sesto resolve`.
        let mut cmd = team.command(&bob, "git");
        cmd.args(["fetch", "-q"]);
        assert!(cmd.status().unwrap().success());
        let merged = team.git(&bob, &["merge", "-q", "--no-edit", "@{u}"]);
        assert_ok("bob's merge", &merged);
        assert_eq!(team.get(&bob, to).as_deref(), Some("v-alice-1"));
    }
    team.take_in(&bob, way)
        .unwrap_or_else(|out| panic!("bob takes alice's revoke in:\n{}", snapshot_text(&out)));
    // What `sesto resolve` settled is staged, for bob to commit and push.
    team.commit(&bob, "settle");
    assert_ok("bob's push", &team.push(&bob));
    assert_ok("alice's pull", &team.pull(&alice));
    for m in [&alice, &bob] {
        assert_eq!(team.get(m, to).as_deref(), Some("v-alice-1"), "{}", m.name);
        team.ok(m, &["fsck"]);
    }
    for (id, bytes) in team.remote_nodes("main") {
        assert!(
            team.age_open(&[&carol.key], &learned, &bytes).is_none(),
            "after the revoke, carol's key or a node key she had opens node {id}"
        );
    }
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_move_out_of_a_folder_rekeyed_meanwhile_merges_to_the_new_key() {
    // Found by tests/team_sim.rs (seed 1318, infra mode): the folder bob moved
    // the secret into was merged by the driver with the key from before the
    // rotation; the secret's file (re-keyed) no longer opened.
    move_beside_a_rotation(Way::Pull, "prod/moved");
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_move_rebased_over_a_rotation_settles_to_the_new_key() {
    // Into a folder the rotation left alone, through `git pull --rebase`:
    // git takes bob's `staging` with the old key and alice's re-keyed file,
    // with no merge commit to tell the sides; `sesto resolve` settles it.
    move_beside_a_rotation(Way::Rebase, "staging/moved");
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_move_merged_over_a_rotation_into_a_folder_it_left_alone_settles() {
    move_beside_a_rotation(Way::Pull, "staging/moved");
}

#[test]
#[cfg_attr(missing_age, ignore = "needs age, age-keygen: apt-get install age")]
fn a_members_sync_from_a_merge_commit_settles_under_the_merged_roster() {
    // Found by tests/team_sim.rs (seed 1678, infra mode): bob's `HEAD` was a
    // merge, so `sync` read his folders before merging alice's removal of
    // carol, then settled the merge on that stale copy: `prod` went out
    // re-signed but encrypted to its old key, and alice lost all of `prod`.
    require_tool("age");
    let (team, alice, bob, carol) = prod_team(Mode::Commit, &[(PASSWORD, "v-alice-1")]);
    let learned = team.learned_keys(&[&carol.key], &BTreeSet::new(), &team.remote_nodes("main"));

    team.set_ok(&alice, "staging/web", "v-web-1");
    assert_ok("alice's push", &team.push(&alice));
    team.set_ok(&bob, "prod/b", "v-bob-1");
    assert_ok("bob's merge", &team.pull(&bob));
    team.ok(&alice, &["member", "remove", "carol"]);
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's sync", &team.sync(&bob));
    assert_ok("alice's pull", &team.pull(&alice));

    assert_eq!(team.get(&alice, PASSWORD).as_deref(), Some("v-alice-1"));
    assert_eq!(team.get(&alice, "prod/b").as_deref(), Some("v-bob-1"));
    assert_eq!(team.get(&bob, PASSWORD).as_deref(), Some("v-alice-1"));
    team.ok(&alice, &["fsck"]);
    for (id, bytes) in team.remote_nodes("main") {
        assert!(
            team.age_open(&[&carol.key], &learned, &bytes).is_none(),
            "after carol's removal, her key or a node key she had opens node {id}"
        );
    }
}

/// alice (admin) with `secrets` set, committed and pushed, and bob (write on
/// `prod`) and carol (read on `prod`), each with a clone that has all of it.
fn prod_team(mode: Mode, secrets: &[(&str, &str)]) -> (Team, Member, Member, Member) {
    let (team, alice) = Team::new(mode);
    for (path, value) in secrets {
        team.set_ok(&alice, path, value);
    }
    team.commit(&alice, "secrets");
    assert_ok("push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    let carol = team.join(&alice, "carol", Some(("prod", false)));
    assert_ok("bob's pull", &team.pull(&bob));
    (team, alice, bob, carol)
}

#[test]
fn a_folder_replayed_as_the_merge_base_does_not_hide_an_entry_behind_a_concurrent_change() {
    // Found by tests/team_sim.rs (seed 540280, attack): bob added prod/new;
    // mallory put back the prod folder's file from before, which is also
    // the merge base's, so alice's merge of her own change to prod took her
    // folder without merging (git saw nothing change on the other side), and
    // prod/new was gone. Her folder is concurrent, never newer than bob's,
    // whatever its version number says.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(mode, &[("prod/a", "v-alice-a")]);
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        let old_nodes = team.clone_nodes(&alice);
        let (prod, _) = team.locate(&alice, &old_nodes, "prod");
        team.ok(&alice, &["mv", "prod/a", "prod/b"]);
        team.set_ok(&alice, "prod/c", "v-alice-c");
        team.commit(&alice, "alice's");
        team.set_ok(&bob, "prod/new/z", "v-bob-z");
        team.commit(&bob, "bob's");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("mallory's pull", &team.pull(&mallory));
        mallory_pushes_file(&team, &mallory, &prod, &old_nodes[&prod]);
        pull_is_refused(&team, &alice, "went back", mode);
    }
}

#[test]
fn a_newer_write_from_a_line_that_held_the_replayed_file_is_taken() {
    // Found by tests/team_sim.rs (seed 560184, attack: a lockout from the fix
    // of 540280). mallory put prod/a's first file back over its second; bob's
    // plain pull took it into a merge before carol's repair. alice, behind,
    // had written prod/a again on top of the second file, and merged the
    // repair. bob's next pull took alice's file over his merge: it came from
    // a line that never had bob's merge, but that did hold the second file,
    // so it is a newer write, not a concurrent one that never saw it.
    let (team, alice, bob, carol) = prod_team(Mode::Commit, &[("prod/a", "v-alice-1")]);
    let mallory = team.join(&alice, "mallory", None);
    let first = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &first, "prod/a");
    team.set_ok(&alice, "prod/a", "v-alice-2");
    assert_ok("alice's push", &team.push(&alice));
    for m in [&bob, &carol, &mallory] {
        assert_ok("pull", &team.pull(m));
    }
    let second = team.clone_nodes(&alice);
    team.set_ok(&bob, "prod/b", "v-bob-b");
    team.set_ok(&alice, "prod/a", "v-alice-3");
    team.plant(&mallory, &id, &first[&id]);
    team.commit(&mallory, "update");
    assert_ok("mallory's push", &team.push(&mallory));
    team.git_ok(&bob, &["pull", "-q", "--no-rebase", "--no-edit"]);
    team.git_ok(&carol, &["pull", "-q", "--no-rebase", "--no-edit"]);
    team.plant(&carol, &id, &second[&id]);
    team.commit(&carol, "repair");
    team.git_ok(&carol, &["push", "-q", "origin", "HEAD:main"]);
    team.git_ok(&alice, &["pull", "-q", "--no-rebase", "--no-edit"]);
    assert_ok("alice's push", &team.push(&alice));
    team.git_ok(&bob, &["pull", "-q", "--no-rebase", "--no-edit"]);
    assert_eq!(
        team.get(&bob, "prod/a").as_deref(),
        Some("v-alice-3"),
        "{}",
        snapshot_text(&team.sesto(&bob, &["get", "prod/a"]))
    );
    assert_ok("bob's sync", &team.sync(&bob));
    team.ok(&alice, &["fsck"]);
}

#[test]
fn an_older_copy_replayed_on_the_edit_side_is_not_signed_above_a_delete() {
    // Found by tests/team_sim.rs (seed 500274, attack): alice, behind, had
    // removed prod. bob wrote prod/a twice; mallory removed its file and put
    // the first of bob's versions back. alice's merge kept that edit against
    // her delete and, to keep it above what was removed, signed bob's older
    // value at version 4: the replay passed for a newer write everywhere,
    // and bob's last value was gone.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(mode, &[("prod/a", "v-alice-1")]);
        let mallory = team.join(&alice, "mallory", None);
        team.ok(&alice, &["rm", "-r", "prod"]);
        team.commit(&alice, "no more prod");
        assert_ok("bob's pull", &team.pull(&bob));
        team.set_ok(&bob, "prod/a", "v-bob-2");
        team.commit(&bob, "a 2");
        assert_ok("bob's push", &team.push(&bob));
        let old_nodes = team.clone_nodes(&bob);
        team.set_ok(&bob, "prod/a", "v-bob-3");
        team.commit(&bob, "a 3");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("mallory's pull", &team.pull(&mallory));
        let (id, _) = team.locate(&alice, &old_nodes, "prod/a");
        let file = node_rel(&mallory, &id);
        team.git_ok(&mallory, &["rm", "-q", &file]);
        team.commit(&mallory, "tidy");
        mallory_pushes_file(&team, &mallory, &id, &old_nodes[&id]);
        pull_is_refused(&team, &alice, "a replay", mode);
        assert_ne!(
            team.get(&alice, "prod/a").as_deref(),
            Some("v-bob-2"),
            "{mode:?}: alice took the replay"
        );
    }
}

#[test]
fn a_file_put_back_above_a_removal_is_raised_where_the_removing_line_had_a_forged_root() {
    // Found by tests/team_sim.rs (seed 600115, attack: a lockout). mallory
    // pushed a root of her own; bob, who cannot read the root, built on it:
    // wrote prod/db/x again, then removed prod/db. alice, behind, added
    // prod/db/y and prod/z; carol undid mallory's commit. alice's merge
    // kept prod/db (her change against bob's delete) and put x back from
    // her side, but could not read the version bob's line removed (no
    // commit on that line verified from the root), so x stayed below it
    // and every clone that saw bob's write refused the merge as a rollback.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, carol) = prod_team(mode, &[("prod/db/x", "v-alice-1")]);
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        // mallory's root: encrypted to alice, signed by mallory.
        let roster = team.roster(&mallory);
        let mut root = Body::new(&roster.store, roster.root, Kind::Folder, "");
        root.version = 1000;
        let forged = team.forge(&mallory.key, &roster.store, &root, &[&alice.public]);
        assert_ok("mallory's pull", &team.pull(&mallory));
        mallory_pushes_file(&team, &mallory, &roster.root.to_string(), &forged);
        let forgery = team.git_ok(&mallory, &["rev-parse", "HEAD"]);
        // bob builds on it without noticing: he starts reading at prod.
        assert_ok("bob's pull", &team.pull(&bob));
        team.set_ok(&bob, "prod/db/x", "v-bob-2");
        team.commit(&bob, "x 2");
        team.ok(&bob, &["rm", "-r", "prod/db"]);
        team.commit(&bob, "no more db");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        team.git_ok(&carol, &["revert", "--no-edit", forgery.trim()]);
        assert_ok("carol's push", &team.push(&carol));
        team.set_ok(&alice, "prod/db/y", "v-alice-y");
        team.set_ok(&alice, "prod/z", "v-alice-z");
        team.commit(&alice, "y and z");
        assert_ok("alice's sync", &team.sync(&alice));
        for m in [&carol, &bob] {
            assert_ok(&format!("{}'s sync", m.name), &team.sync(m));
            assert_eq!(
                team.get(m, "prod/db/y").as_deref(),
                Some("v-alice-y"),
                "{mode:?}: {}",
                snapshot_text(&team.sesto(m, &["get", "prod/db/y"]))
            );
            team.ok(m, &["get", "prod/db/x"]);
        }
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify", "--history"]);
    }
}

#[test]
fn verify_history_in_a_fresh_clone_finds_a_replay_on_a_line_a_merge_took_in() {
    // mallory put prod/a's first file back over alice's second on main; bob,
    // whose own line still had the first file, merged it with a plain `git
    // pull` and pushed. His first-parent line never held the second file,
    // so a walk of first parents saw prod/a unchanged; a fresh clone reads
    // alice's lost write as current. The replay is on the merge's second
    // parent, and `verify --history` judges every line.
    let (team, alice, bob, carol) = prod_team(Mode::Commit, &[("prod/a", "v-alice-1")]);
    let mallory = team.join(&alice, "mallory", None);
    assert_ok("bob's pull", &team.pull(&bob));
    let first = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &first, "prod/a");
    team.set_ok(&bob, "prod/b", "v-bob-b");
    team.set_ok(&alice, "prod/a", "v-alice-2");
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("mallory's pull", &team.pull(&mallory));
    mallory_pushes_file(&team, &mallory, &id, &first[&id]);
    let replay = team.remote_head();
    assert_ok("bob's pull", &team.pull(&bob));
    assert_ok("bob's push", &team.push(&bob));
    fs::remove_dir_all(&carol.clone).unwrap();
    team.clone_for(&carol, true);
    assert_eq!(team.get(&carol, "prod/a").as_deref(), Some("v-alice-1"));
    let out = team.sesto(&carol, &["verify", "--history"]);
    assert_eq!(out.code, 1, "{}", snapshot_text(&out));
    assert!(
        out.stdout.contains("went back from version 2 to version 1")
            && out.stdout.contains(&replay[..12]),
        "{}",
        snapshot_text(&out)
    );
    // Without the replay, the same shape of history is clean.
    let (team, alice, bob, carol) = prod_team(Mode::Commit, &[("prod/a", "v-alice-1")]);
    team.set_ok(&bob, "prod/b", "v-bob-b");
    team.set_ok(&alice, "prod/a", "v-alice-2");
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    assert_ok("bob's push", &team.push(&bob));
    fs::remove_dir_all(&carol.clone).unwrap();
    team.clone_for(&carol, true);
    let out = team.sesto(&carol, &["verify", "--history"]);
    assert_eq!(out.code, 0, "{}", snapshot_text(&out));
}

#[test]
fn an_edit_merged_into_a_move_out_of_the_writers_folder_stays_readable() {
    // alice moves bob's prod/x to staging/x while bob, not pulled, edits
    // prod/x. Whoever merges, the value must stay readable where it went;
    // bob may not write staging, so an admin finishes the merge.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) =
            prod_team(mode, &[("prod/keep", "v-keep"), ("staging/keep", "v-keep")]);
        team.set_ok(&bob, "prod/x", "v-bob-1");
        team.commit(&bob, "x");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        team.ok(&alice, &["mv", "prod/x", "staging/x"]);
        team.commit(&alice, "moved");
        assert_ok("alice's sync", &team.sync(&alice));
        team.set_ok(&bob, "prod/x", "v-bob-2");
        team.commit(&bob, "x 2");
        // bob cannot follow x out of prod: he stops, names alice and pushes
        // nothing; he hands her his branch, and she merges it.
        let remote = team.remote_head();
        let bobs = team.sync(&bob);
        assert!(!bobs.success(), "{mode:?}");
        assert!(
            bobs.stderr.contains("alice") && bobs.stderr.contains("HEAD:refs/heads/for-admin"),
            "{}",
            snapshot_text(&bobs)
        );
        assert_eq!(team.remote_head(), remote, "{mode:?}: bob pushed");
        team.abort(&bob);
        team.git_ok(&bob, &["push", "-q", "origin", "HEAD:refs/heads/for-admin"]);
        team.git_ok(&alice, &["fetch", "-q"]);
        if !team
            .git(&alice, &["merge", "-q", "--no-edit", "origin/for-admin"])
            .success()
        {
            team.ok(&alice, &["resolve"]);
            team.git_ok(&alice, &["commit", "-q", "--no-edit"]);
        }
        team.ok(&alice, &["resolve"]);
        team.commit(&alice, "bob's x");
        assert_ok("alice's push", &team.push(&alice));
        team.git_ok(&bob, &["fetch", "-q"]);
        team.git_ok(&bob, &["reset", "-q", "--hard", "origin/main"]);
        assert_ok("bob's sync", &team.sync(&bob));
        let x = team.get(&alice, "staging/x");
        let conflict = team.get(&alice, "staging/x (conflict 1)");
        assert!(
            [x.as_deref(), conflict.as_deref()].contains(&Some("v-bob-2")),
            "{mode:?}: bob's edit is gone: {x:?} {conflict:?} {}",
            team.ok(&alice, &["tree"])
        );
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify", "--history"]);
    }
}

#[test]
fn what_an_admin_moves_out_of_its_writers_folder_stays_readable() {
    // Found by tests/team_sim.rs (seed 500246, attack run, an honest move):
    // alice moved a secret bob wrote in prod into staging. The node kept
    // bob's signature, and bob may not write staging, so every reader
    // refused it: the value was there and nobody could read it.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, carol) =
            prod_team(mode, &[("prod/keep", "v-keep"), ("staging/keep", "v-keep")]);
        team.set_ok(&bob, "prod/x", "v-bob-x");
        team.set_ok(&bob, "prod/app/db/y", "v-bob-y");
        team.commit(&bob, "bob's");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        team.ok(&alice, &["mv", "prod/x", "staging/x"]);
        team.ok(&alice, &["mv", "prod/app", "staging/app"]);
        // Within bob's folder, his signature still holds: nothing to sign.
        team.ok(&alice, &["mv", "staging/app", "prod/app"]);
        team.ok(&alice, &["mv", "prod/app", "staging/app"]);
        team.commit(&alice, "moved");
        assert_ok("alice's sync", &team.sync(&alice));
        assert_eq!(
            team.get(&alice, "staging/x").as_deref(),
            Some("v-bob-x"),
            "{mode:?}"
        );
        assert_eq!(
            team.get(&alice, "staging/app/db/y").as_deref(),
            Some("v-bob-y"),
            "{mode:?}"
        );
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify", "--history"]);
        // bob and carol no longer read what left prod.
        for m in [&bob, &carol] {
            assert_ok("sync", &team.sync(m));
            assert_eq!(team.get(m, "staging/x"), None, "{mode:?}");
            team.ok(m, &["fsck"]);
        }
    }
}

/// mallory commits `bytes` as node `id`'s file and pushes it to main.
fn mallory_pushes_file(team: &Team, mallory: &Member, id: &str, bytes: &[u8]) {
    team.plant(mallory, id, bytes);
    team.commit(mallory, "update");
    assert_ok("mallory's push", &team.push(mallory));
}

/// `m`'s pull (git pull, then `sesto resolve`) fails saying `says`, and the
/// remote does not move.
#[track_caller]
fn pull_is_refused(team: &Team, m: &Member, says: &str, mode: Mode) {
    let remote = team.remote_head();
    let out = team.take_in(m, Way::Pull).unwrap_err();
    assert!(
        out.stderr.contains(says),
        "{mode:?}: {}",
        snapshot_text(&out)
    );
    assert_eq!(team.remote_head(), remote, "{mode:?}: {} pushed", m.name);
}

/// [`prod_team`] in commit mode with mallory, a member who may write
/// nothing, and bob pulled: also alice's node files as they are now and the
/// id of `path` among them.
fn prod_team_and_mallory(
    secrets: &[(&str, &str)],
    path: &str,
) -> (Team, Member, Member, Member, common::team::Nodes, String) {
    let (team, alice, bob, _carol) = prod_team(Mode::Commit, secrets);
    let mallory = team.join(&alice, "mallory", None);
    assert_ok("bob's pull", &team.pull(&bob));
    let nodes = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &nodes, path);
    (team, alice, bob, mallory, nodes, id)
}

/// bob writes `prod/db/x` twice (versions 2 and 3) and removes `prod/db`,
/// each in a commit of its own.
fn bob_writes_twice_and_deletes(team: &Team, bob: &Member) {
    team.set_ok(bob, "prod/db/x", "v-bob-2");
    team.commit(bob, "x 2");
    team.set_ok(bob, "prod/db/x", "v-bob-3");
    team.commit(bob, "x 3");
    team.ok(bob, &["rm", "-r", "prod/db"]);
    team.commit(bob, "no more db");
}

/// bob (write on prod) writes `prod/db/x` twice and removes `prod/db`, behind
/// alice, who meanwhile pushed `alice_does` touching that secret; then bob
/// syncs, merging alice's line into his. Returns the team, alice and bob.
fn delete_beside(mode: Mode, alice_does: &dyn Fn(&Team, &Member)) -> (Team, Member, Member) {
    let (team, alice, bob, _) = prod_team(
        mode,
        &[("prod/db/x", "v-alice-1"), ("prod/keep", "v-keep-1")],
    );
    bob_writes_twice_and_deletes(&team, &bob);
    alice_does(&team, &alice);
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's sync", &team.sync(&bob));
    assert_ok("alice's sync", &team.sync(&alice));
    (team, alice, bob)
}

#[test]
fn a_delete_beats_a_concurrent_rotation_and_brings_no_overwritten_value_back() {
    // Found by tests/team_sim.rs (seed 50029, honest): alice's `member
    // remove carol` re-encrypted prod/db/x at its first value while bob, who
    // had written it twice since, removed prod/db. The merge brought the
    // secret back with the value bob had overwritten twice (a re-encryption
    // beat his delete), and `verify --history` called it rolled back.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob) = delete_beside(mode, &|team, alice| {
            team.ok(alice, &["member", "remove", "carol"]);
            team.commit(alice, "remove carol");
        });
        for m in [&alice, &bob] {
            assert_eq!(
                team.get(m, "prod/db/x"),
                None,
                "{}: the delete lost",
                m.name
            );
            assert_eq!(team.get(m, "prod/keep").as_deref(), Some("v-keep-1"));
            team.ok(m, &["fsck"]);
            team.ok(m, &["verify", "--history"]);
        }
    }
}

#[test]
fn an_edit_kept_against_a_delete_is_written_above_the_deleted_version() {
    // The other half of seed 50029: where alice really changed the value, the
    // edit beats bob's delete. Her edit is version 2, bob's line had reached
    // 3 before it deleted; the merge writes x again above that, so
    // `verify --history`, which keeps a node's highest version across a
    // delete (an older copy put back is a rollback), passes.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob) = delete_beside(mode, &|team, alice| {
            team.set_ok(alice, "prod/db/x", "v-alice-2");
            team.commit(alice, "x");
        });
        for m in [&alice, &bob] {
            assert_eq!(team.get(m, "prod/db/x").as_deref(), Some("v-alice-2"));
            team.ok(m, &["fsck"]);
            team.ok(m, &["verify", "--history"]);
        }
    }
}

#[test]
fn sync_commits_what_it_settles_in_a_merge_it_fast_forwarded_to() {
    // Found by tests/team_sim.rs (seed 50106, honest, infra): bob merged
    // alice's `member remove carol` beside his new folder with a plain
    // `git pull`; alice's sync fast-forwarded to his merge, and her next
    // sync settled keys in it (staged, as resolve leaves them where people
    // commit) and then refused to go on: "commit the changes in .sesto/
    // first". Every later sync of hers failed the same way.
    let (team, alice, bob, _) = prod_team(Mode::Infra, &[("prod/a", "v-alice-a")]);
    team.ok(&alice, &["member", "remove", "carol"]);
    team.commit(&alice, "remove carol");
    assert_ok("alice's push", &team.push(&alice));
    team.ok(&bob, &["mkdir", "-p", "prod/new/f"]);
    team.set_ok(&bob, "prod/new/f/s", "v-bob-s");
    team.commit(&bob, "bob's folder");
    team.take_in(&bob, Way::Pull)
        .unwrap_or_else(|out| panic!("bob's pull:\n{}", snapshot_text(&out)));
    for round in 0..3 {
        assert_ok(&format!("alice's sync {round}"), &team.sync(&alice));
        let staged = team.git_ok(&alice, &["status", "--porcelain", "--", ".sesto"]);
        assert!(staged.trim().is_empty(), "sync {round} left {staged}");
    }
    assert_eq!(team.get(&alice, "prod/new/f/s").as_deref(), Some("v-bob-s"));
    team.ok(&alice, &["fsck"]);
    team.ok(&alice, &["verify", "--history"]);
}

#[test]
fn a_rebase_that_replays_a_delete_of_a_folder_renamed_in_the_merge_leaves_no_dangling_entry() {
    // Found by tests/team_sim.rs (seed 50169, honest): bob made prod/new
    // (`set prod/new/z`) and then removed it, in two commits; alice, ahead
    // of him, had made her own prod/new and removed carol. bob's
    // `git pull --rebase` replayed his first commit as `new (conflict 1)`
    // beside hers, then his delete: the driver kept the entry (its name
    // differed from the base's) while git deleted the file, which bob had
    // left alone. Every later `sesto resolve`, `find` and `fsck` failed on
    // the missing file, and alice's sync spread it.
    for way in [Way::Rebase, Way::Pull] {
        let (team, alice, bob, _) = prod_team(Mode::Commit, &[("prod/a", "v-alice-a")]);
        team.set_ok(&bob, "prod/new/z", "v-bob-z");
        team.ok(&bob, &["rm", "-r", "prod/new"]);
        team.ok(&alice, &["member", "remove", "carol"]);
        team.set_ok(&alice, "prod/new/z", "v-alice-z");
        assert_ok("alice's push", &team.push(&alice));
        team.take_in(&bob, way)
            .unwrap_or_else(|out| panic!("bob's {way:?}:\n{}", snapshot_text(&out)));
        assert_ok("alice's sync", &team.sync(&alice));
        for m in [&alice, &bob] {
            team.ok(m, &["fsck"]);
            let values = team.values(m);
            assert_eq!(values.get("prod/a").map(String::as_str), Some("v-alice-a"));
            assert_eq!(
                values.get("prod/new/z").map(String::as_str),
                Some("v-alice-z"),
                "{}: {values:?}",
                m.name
            );
        }
    }
}

#[test]
fn a_node_file_removed_and_added_back_older_is_refused_by_a_clone_that_saw_the_newer() {
    // The rollback the checks of issue 10 missed at first: mallory, who may
    // write nothing, removes a secret's file in one commit and adds its
    // older, validly signed copy in a later one, so that no commit on its
    // own changes a file to an older one. bob, who read version 2, pulls
    // both at once, or each on its own, or the copy inside a merge.
    for how in ["one pull", "two pulls", "a merge"] {
        let Replay {
            team,
            bob,
            mallory,
            id,
            old_nodes,
            old_commit,
            ..
        } = replay_setup();
        let rel = node_rel(&mallory, &id);
        team.git_ok(&mallory, &["rm", "-q", &rel]);
        team.commit(&mallory, "tidy");
        if how == "two pulls" {
            assert_ok("mallory's push", &team.push(&mallory));
            assert_ok("bob's pull", &team.pull(&bob));
            // A file gone is no rollback: bob's clone goes on (and notes it).
            assert_eq!(team.sesto(&bob, &["ls", "prod"]).code, 0, "{how}");
        }
        if how == "a merge" {
            // The copy rides in a merge with a branch that still has it.
            team.git_ok(&mallory, &["checkout", "-q", "-b", "old", &old_commit]);
            fs::write(mallory.clone.join("README"), "old\n").unwrap();
            team.git_ok(&mallory, &["add", "README"]);
            team.commit(&mallory, "readme");
            team.git_ok(&mallory, &["checkout", "-q", "main"]);
            team.git_ok(&mallory, &["merge", "-q", "--no-commit", "old"]);
        }
        team.plant(&mallory, &id, &old_nodes[&id]);
        team.commit(&mallory, "restore");
        assert_ok("mallory's push", &team.push(&mallory));
        let replay = team.remote_head();
        assert_ok("bob's pull", &team.pull(&bob));
        let out = team.sesto(&bob, &["get", "prod/db/x"]);
        assert_eq!(out.code, 1, "{how}: bob read the rolled-back value");
        assert!(
            out.stderr.contains("went back from version 2 to version 1")
                && out.stderr.contains("an older copy added back")
                && out.stderr.contains(&replay[..12]),
            "{how}: {}",
            out.stderr
        );
        assert_eq!(team.sesto(&bob, &["ls"]).code, 1, "{how}");
        // Taken knowingly, it stays taken.
        team.ok(&bob, &["trust", "--accept"]);
        assert_eq!(team.get(&bob, "prod/db/x").as_deref(), Some("v-x-1"));
        // A fresh clone saw nothing, but `verify --history` reads it all.
        fs::remove_dir_all(&bob.clone).unwrap();
        team.clone_for(&bob, true);
        let out = team.sesto(&bob, &["verify", "--history"]);
        assert_eq!(out.code, 1, "{how}: {}", snapshot_text(&out));
        assert!(
            out.stdout.contains("rolled back") || out.stderr.contains("rolled back"),
            "{how}: {}",
            snapshot_text(&out)
        );
    }
}

#[test]
fn a_repaired_replay_does_not_lock_out_a_member_who_no_longer_reads_the_node() {
    // Found by tests/team_sim.rs (seed 350039, attack): mallory removed a
    // prod secret's file and put its older copy back; bob, who had read the
    // newer one, refused it in his sync, as he should. alice put the newer
    // file back, then revoked bob's prod, which rotated the secret above it.
    // bob's sync then refused the copy for good: the tip's newer version no
    // longer opens for him, and the repair beneath it did not count.
    let Replay {
        team,
        alice,
        bob,
        mallory,
        id,
        old_nodes,
        ..
    } = replay_setup();
    let newer = team.clone_nodes(&alice)[&id].clone();
    remove_and_put_back(&team, &mallory, &id, &old_nodes[&id]);
    let out = team.sync(&bob);
    assert_eq!(out.code, 1, "bob took the copy: {}", snapshot_text(&out));
    assert!(
        out.stderr.contains("an older copy added back"),
        "{}",
        out.stderr
    );
    // The repair, by hand: the newer file back.
    assert_ok("alice's pull", &team.pull(&alice));
    team.plant(&alice, &id, &newer);
    team.commit(&alice, "undo mallory's pushes");
    team.ok(&alice, &["revoke", "bob", "prod"]);
    assert_ok("alice's push", &team.push(&alice));
    let out = team.sync(&bob);
    assert_ok("bob's sync after the repair and the revoke", &out);
    let out = team.sesto(&bob, &["whoami"]);
    assert_eq!(out.code, 0, "{}", snapshot_text(&out));
    // What bob may still read, he reads; prod he may not.
    assert_eq!(team.get(&bob, "prod/db/x"), None);
}

#[test]
fn a_folder_replayed_under_a_rebased_delete_is_refused() {
    // Found by tests/team_sim.rs (seed 350053, attack): bob removed prod/db
    // in a commit of his own, behind alice, who added prod/db/y. mallory put
    // back the db folder's older file, the one bob's delete was made
    // against, so `git pull --rebase` took bob's delete without a conflict
    // and y was gone. The folder is gone at the tip, and a drop of a node
    // gone since was forgiven.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, _alice, bob) = a_delete_rebased_onto_a_replay(false, mode);
        let out = team.sesto(&bob, &["ls", "prod"]);
        assert_eq!(
            out.code,
            1,
            "{mode:?}: bob's clone took the replay: {}",
            snapshot_text(&out)
        );
        assert!(out.stderr.contains("went back"), "{mode:?}: {}", out.stderr);
    }
}

#[test]
fn the_pre_push_hook_keeps_a_delete_made_against_a_replay_off_the_remote() {
    // The case above, with `sesto hooks install` in bob's clone: nothing runs
    // sesto between git's rebase and git's push but the pre-push hook; in an
    // infrastructure repository (`sesto.commit` off) too, where bob commits
    // with git.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, _alice, bob) = a_delete_rebased_onto_a_replay(true, mode);
        let remote = team.remote_head();
        let out = team.push(&bob);
        assert!(
            !out.success(),
            "{mode:?}: bob pushed the delete: {}",
            snapshot_text(&out)
        );
        let text = snapshot_text(&out);
        assert!(out.stderr.contains("went back"), "{mode:?}: {text}");
        // The remote still holds y's file, for an admin's repair of the replay.
        assert_eq!(team.remote_head(), remote, "{mode:?}: the remote moved");
    }
}

/// bob (write on prod) removes prod/db, behind alice, who adds prod/db/y;
/// mallory puts back the db folder's older file, the one bob's delete was
/// made against; bob's `git pull --rebase` takes his delete without a
/// conflict. With `hooks`, bob installed sesto's hooks first.
fn a_delete_rebased_onto_a_replay(hooks: bool, mode: Mode) -> (Team, Member, Member) {
    let (team, alice, bob, _carol) = prod_team(mode, &[("prod/db/x", "v-x")]);
    let mallory = team.join(&alice, "mallory", None);
    assert_ok("bob's pull", &team.pull(&bob));
    let old_nodes = team.clone_nodes(&alice);
    let (db, _) = team.locate(&alice, &old_nodes, "prod/db");
    if hooks {
        team.ok(&bob, &["hooks", "install"]);
    }
    team.ok(&bob, &["rm", "-r", "prod/db"]);
    team.commit(&bob, "bob's delete");
    team.set_ok(&alice, "prod/db/y", "v-y");
    team.commit(&alice, "alice's");
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("mallory's pull", &team.pull(&mallory));
    mallory_pushes_file(&team, &mallory, &db, &old_nodes[&db]);
    let out = team.git(&bob, &["pull", "-q", "--rebase"]);
    assert!(
        out.success(),
        "git took the delete: {}",
        snapshot_text(&out)
    );
    (team, alice, bob)
}

#[test]
fn the_pre_push_hook_refuses_to_pass_on_a_replayed_branch() {
    // mallory pushes her older copy of prod/db/x to a branch of its own; bob,
    // who read version 2 and is on main, pushes that branch to main. His
    // clone never had it checked out, so only the commits the push sends
    // are there to judge.
    let r = replay_setup();
    r.put_back_old();
    let Replay {
        team, bob, mallory, ..
    } = r;
    assert_ok(
        "mallory's push",
        &team.git(&mallory, &["push", "-q", "origin", "HEAD:evil"]),
    );
    team.ok(&bob, &["hooks", "install"]);
    team.git_ok(&bob, &["fetch", "-q"]);
    let remote = team.remote_head();
    let out = team.git(&bob, &["push", "-q", "origin", "origin/evil:main"]);
    assert!(
        !out.success(),
        "bob passed the replay on: {}",
        snapshot_text(&out)
    );
    assert!(
        out.stdout.contains("went back from version 2 to version 1")
            || out.stderr.contains("went back from version 2 to version 1"),
        "{}",
        snapshot_text(&out)
    );
    assert_eq!(team.remote_head(), remote, "the remote moved");
    // An honest history goes, judged whole as a new branch.
    assert_ok(
        "bob's push of a new branch",
        &team.git(&bob, &["push", "-q", "origin", "HEAD:bob"]),
    );
}

#[test]
fn an_edit_kept_against_a_delete_is_no_rollback_to_a_clone_that_saw_the_delete() {
    // The honest twin of the case above: bob wrote prod/db/x twice and
    // removed prod/db; carol pulled all of it. alice, behind, changed x, and
    // her edit beats the delete. The merge puts x back, so it writes x above
    // the version bob removed: carol takes it as newer, not as an older copy.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, carol) = prod_team(
            mode,
            &[("prod/db/x", "v-alice-1"), ("prod/keep", "v-keep-1")],
        );
        assert_ok("carol's pull", &team.pull(&carol));
        bob_writes_twice_and_deletes(&team, &bob);
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        assert_eq!(team.get(&carol, "prod/db/x"), None, "{mode:?}");
        team.set_ok(&alice, "prod/db/x", "v-alice-2");
        team.commit(&alice, "x");
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("carol's pull", &team.pull(&carol));
        assert_eq!(
            team.get(&carol, "prod/db/x").as_deref(),
            Some("v-alice-2"),
            "{mode:?}"
        );
        assert_ok("bob's sync", &team.sync(&bob));
        for m in [&alice, &bob, &carol] {
            team.ok(m, &["fsck"]);
            team.ok(m, &["verify", "--history"]);
        }
    }
}

#[test]
fn a_replay_more_commits_back_than_a_check_walks_is_refused_all_the_same() {
    // A clone checks each new commit, up to the newest 500: mallory puts an
    // older copy of a secret back and then pushes 500 more commits, so that
    // the replay lies beyond the walk. bob, who read version 2, compares
    // what he had with what he gets as well.
    let r = replay_setup();
    r.put_back_old();
    let Replay {
        team, bob, mallory, ..
    } = r;
    let script =
        "for i in $(seq 500); do git commit -q --allow-empty -m \"filler $i\" || exit 1; done";
    let mut filler = team.command(&mallory, "sh");
    filler.args(["-c", script]);
    common::run_cmd(filler).assert_success();
    assert_ok("mallory's push", &team.push(&mallory));
    assert_ok("bob's pull", &team.pull(&bob));
    let out = team.sesto(&bob, &["get", "prod/db/x"]);
    assert_eq!(out.code, 1, "bob read the rolled-back value");
    assert!(
        out.stderr.contains("went back from version 2 to version 1"),
        "{}",
        out.stderr
    );
}

/// The start of the replay cases: alice (admin) wrote `prod/db/x` twice and
/// pushed; bob (read on `prod`) pulled and read version 2; mallory (no
/// grant) pulled. `old_nodes` are the node files at version 1, in commit
/// `old_commit`; `id` is the secret's node.
struct Replay {
    team: Team,
    alice: Member,
    bob: Member,
    mallory: Member,
    id: String,
    old_nodes: common::team::Nodes,
    old_commit: String,
}

impl Replay {
    /// mallory commits the version 1 file of `prod/db/x` over version 2.
    fn put_back_old(&self) {
        self.team
            .plant(&self.mallory, &self.id, &self.old_nodes[&self.id]);
        self.team.commit(&self.mallory, "update");
    }
}

fn replay_setup() -> Replay {
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/db/x", "v-x-1");
    assert_ok("push", &team.push(&alice));
    let old_nodes = team.clone_nodes(&alice);
    let (id, _) = team.locate(&alice, &old_nodes, "prod/db/x");
    let old_commit = team.head(&alice);
    let bob = team.join(&alice, "bob", Some(("prod", false)));
    let mallory = team.join(&alice, "mallory", None);
    team.set_ok(&alice, "prod/db/x", "v-x-2");
    assert_ok("alice's sync", &team.sync(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    assert_eq!(team.get(&bob, "prod/db/x").as_deref(), Some("v-x-2"));
    assert_ok("mallory's pull", &team.pull(&mallory));
    Replay {
        team,
        alice,
        bob,
        mallory,
        id,
        old_nodes,
        old_commit,
    }
}

#[test]
fn a_folder_a_merge_restores_after_its_delete_is_written_above_the_deleted_version() {
    // Found by tests/team_sim.rs (seed 100639, honest): bob and alice each
    // made a prod/new; bob's sync kept alice's as `new (conflict 1)`. alice,
    // not yet pulled, wrote into her prod/new (version 2) and removed it.
    // Her sync kept the renamed entry and restored its file from bob's side,
    // at version 1; bob's and carol's clones, which took in her version 2
    // and its removal in the same pull, refused it as an older copy put back.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, carol) = prod_team(mode, &[("prod/a", "v-alice-a")]);
        assert_ok("carol's pull", &team.pull(&carol));
        team.set_ok(&bob, "prod/new/z", "v-bob-z");
        team.commit(&bob, "bob's new");
        team.ok(&alice, &["mkdir", "-p", "prod/new/f"]);
        team.commit(&alice, "alice's new");
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("bob's sync", &team.sync(&bob));
        team.set_ok(&alice, "prod/new/y", "v-alice-y");
        team.commit(&alice, "y");
        team.ok(&alice, &["rm", "-r", "prod/new"]);
        team.commit(&alice, "no more new");
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("carol's pull", &team.pull(&carol));
        assert_eq!(
            team.get(&carol, "prod/new/z").as_deref(),
            Some("v-bob-z"),
            "{mode:?}"
        );
        for m in [&alice, &bob, &carol] {
            team.ok(m, &["fsck"]);
            team.ok(m, &["verify", "--history"]);
        }
    }
}

#[test]
fn a_folder_put_back_from_before_a_rotation_is_refused_by_a_clone_behind_the_rotation() {
    // Found by tests/team_sim.rs (seed 140091) once replays happened:
    // alice removed carol, which re-keyed prod/new; mallory removed its
    // file and added back the one from before. bob, behind the rotation,
    // had written into prod/new; his `git pull --rebase` applied his change
    // cleanly on mallory's copy, so his folder stayed under the key carol
    // knew, and neither the tip's keys nor those of mallory's commit open
    // it: the check skipped it, a later resolve said nothing, and bob
    // pushed a folder that locked alice out.
    let (team, alice, bob, mallory, before, folder) =
        prod_team_and_mallory(&[("prod/new/a", "v-alice-a")], "prod/new");
    team.ok(&alice, &["member", "remove", "carol"]);
    assert_ok("alice's push", &team.push(&alice));
    remove_and_put_back(&team, &mallory, &folder, &before[&folder]);
    team.set_ok(&bob, "prod/new/z", "v-bob-z");
    assert_ok("bob's rebase", &team.git(&bob, &["pull", "-q", "--rebase"]));
    for _ in 0..2 {
        let out = team.sesto(&bob, &["resolve"]);
        assert_eq!(out.code, 1, "{}", snapshot_text(&out));
        assert!(
            out.stderr.contains("an older copy added back"),
            "{}",
            snapshot_text(&out)
        );
        team.git(&bob, &["pull", "-q"]);
    }
}

#[test]
fn a_copy_put_back_as_the_base_file_cannot_let_a_delete_take_a_newer_write() {
    // Found by tests/team_sim.rs (seed 180079): alice removed prod, not yet
    // pushed; bob wrote prod/db/x and synced; mallory removed x's file and
    // added back the one alice's branch started from. alice's plain
    // `git pull` saw no change to x on the remote side and took her delete;
    // the check skipped x (the tip no longer lists it), and bob's value was
    // gone once she pushed.
    let (team, alice, bob, _carol) = prod_team(
        Mode::Commit,
        &[("prod/db/x", "v-alice-1"), ("prod/keep", "v-keep-1")],
    );
    let mallory = team.join(&alice, "mallory", None);
    let before = team.clone_nodes(&alice);
    let (x, _) = team.locate(&alice, &before, "prod/db/x");
    team.ok(&alice, &["rm", "-r", "prod"]);
    assert_ok("bob's pull", &team.pull(&bob));
    team.set_ok(&bob, "prod/db/x", "v-bob-2");
    assert_ok("bob's sync", &team.sync(&bob));
    remove_and_put_back(&team, &mallory, &x, &before[&x]);
    let remote = team.remote_head();
    team.pull(&alice);
    let out = team.sesto(&alice, &["resolve"]);
    assert_eq!(out.code, 1, "{}", snapshot_text(&out));
    assert!(
        out.stderr.contains("an older copy added back"),
        "{}",
        snapshot_text(&out)
    );
    assert_eq!(team.remote_head(), remote, "nothing was pushed");
}

/// mallory pulls, removes node `id`'s file in one commit, adds `old` back
/// as its file in the next, and pushes.
fn remove_and_put_back(team: &Team, mallory: &Member, id: &str, old: &[u8]) {
    assert_ok("mallory's pull", &team.pull(mallory));
    let rel = node_rel(mallory, id);
    team.git_ok(mallory, &["rm", "-q", &rel]);
    team.commit(mallory, "tidy");
    team.plant(mallory, id, old);
    team.commit(mallory, "update");
    assert_ok("mallory's push", &team.push(mallory));
}

#[test]
fn a_secret_moved_out_of_a_folder_removed_meanwhile_changed_is_listed_once() {
    // Found by tests/team_sim.rs (seed 610336, infra): bob moved prod/db/x
    // to prod/b and removed prod/db, while alice added a folder in prod/db.
    // Her change beat his delete and prod/db came back, still listing x,
    // which prod/b listed too: one file under two names, `fsck` failed.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(
            mode,
            &[("prod/db/x", "v-alice-x"), ("prod/db/y", "v-alice-y")],
        );
        team.ok(&alice, &["mkdir", "-p", "prod/db/f1"]);
        team.commit(&alice, "alice's");
        assert_ok("alice's push", &team.push(&alice));
        team.ok(&bob, &["mv", "prod/db/x", "prod/b"]);
        team.ok(&bob, &["rm", "-r", "-f", "prod/db"]);
        team.commit(&bob, "bob's");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        for m in [&alice, &bob] {
            let values = team.values(m);
            assert_eq!(
                values.get("prod/b").map(String::as_str),
                Some("v-alice-x"),
                "{}",
                m.name
            );
            assert!(!values.contains_key("prod/db/x"), "{}: {values:?}", m.name);
            team.ok(m, &["fsck"]);
        }
    }
}

#[test]
fn a_replay_pulled_after_a_rebase_that_stopped_on_a_conflict_is_refused() {
    // Found by tests/team_sim.rs (seed 610504, infra): git leaves
    // REBASE_HEAD behind when a rebase that stopped on a conflict finishes.
    // alice's clone took that for a rebase under way, which skips the
    // rollback check, so she took mallory's older copy in, built on it and
    // pushed it, and every other clone was refused from then on.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) =
            prod_team(mode, &[("prod/a", "v-alice-a"), ("prod/b", "v-alice-b")]);
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        let old_nodes = team.clone_nodes(&alice);
        let (b, _) = team.locate(&alice, &old_nodes, "prod/b");
        team.ok(&bob, &["rm", "prod/a"]);
        team.commit(&bob, "bob's");
        assert_ok("bob's push", &team.push(&bob));
        // The conflicting write last: git removes REBASE_HEAD when it
        // picks a commit after the one it stopped at.
        team.set_ok(&alice, "prod/b", "v-alice-b2");
        team.set_ok(&alice, "prod/a", "v-alice-a2");
        team.commit(&alice, "alice's");
        if let Err(out) = team.take_in(&alice, Way::Rebase) {
            panic!("{mode:?}: alice's rebase: {}", snapshot_text(&out));
        }
        assert!(
            alice.clone.join(".git/REBASE_HEAD").exists(),
            "{mode:?}: the rebase did not stop on a conflict, so this tests nothing"
        );
        assert_ok("mallory's pull", &team.pull(&mallory));
        mallory_pushes_file(&team, &mallory, &b, &old_nodes[&b]);
        pull_is_refused(&team, &alice, "went back", mode);
    }
}

#[test]
fn a_merge_numbered_above_a_replayed_folder_does_not_forgive_what_the_replay_dropped() {
    // Found by tests/team_sim.rs (seeds 621072 infra, 621867 commit): bob
    // wrote prod/db twice; mallory put back his first file. alice, who had
    // written prod/db twice on her own line, merged it: her merge numbered
    // its file above bob's second, yet held nothing his second added, and
    // the higher number was taken as a repair. Only a line that had bob's
    // second file may forgive its loss.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(mode, &[("prod/db/x", "v-alice-x")]);
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        team.set_ok(&alice, "prod/db/y1", "v-alice-y1");
        team.set_ok(&alice, "prod/db/y2", "v-alice-y2");
        team.commit(&alice, "alice's");
        team.set_ok(&bob, "prod/db/z1", "v-bob-z1");
        team.commit(&bob, "bob's first");
        let first = team.clone_nodes(&bob);
        let (db, _) = team.locate(&alice, &first, "prod/db");
        team.set_ok(&bob, "prod/db/z2", "v-bob-z2");
        team.commit(&bob, "bob's second");
        assert_ok("bob's push", &team.push(&bob));
        assert_ok("mallory's pull", &team.pull(&mallory));
        mallory_pushes_file(&team, &mallory, &db, &first[&db]);
        pull_is_refused(&team, &alice, "went back", mode);
    }
}

#[test]
fn a_member_moves_a_secret_between_two_folders_they_write_beside_concurrent_edits() {
    // bob writes prod and staging but reads neither the root nor anything
    // else: his move rewrites both shared folders, each under its own key,
    // and merges with alice's edits in both without losing either side.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, carol) = prod_team(
            mode,
            &[
                ("prod/a", "v-alice-a"),
                ("prod/c", "v-alice-c"),
                ("staging/b", "v-alice-b"),
                ("other/z", "v-alice-z"),
            ],
        );
        team.ok(&alice, &["grant", "bob", "staging", "--write"]);
        team.commit(&alice, "bob writes staging");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's pull", &team.pull(&bob));
        team.ok(&bob, &["mv", "prod/a", "staging/a"]);
        team.commit(&bob, "bob's move");
        team.set_ok(&alice, "prod/c", "v-alice-c2");
        team.set_ok(&alice, "staging/b", "v-alice-b2");
        team.commit(&alice, "alice's edits");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        assert_ok("carol's pull", &team.pull(&carol));
        let expected: BTreeMap<String, String> = [
            ("other/z", "v-alice-z"),
            ("prod/c", "v-alice-c2"),
            ("staging/a", "v-alice-a"),
            ("staging/b", "v-alice-b2"),
        ]
        .iter()
        .map(|(p, v)| (p.to_string(), v.to_string()))
        .collect();
        assert_eq!(team.values(&alice), expected, "{mode:?}");
        let bobs: BTreeMap<String, String> = expected
            .iter()
            .filter(|(p, _)| !p.starts_with("other/"))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect();
        assert_eq!(team.values(&bob), bobs, "{mode:?}");
        let carols: BTreeMap<String, String> = [("prod/c", "v-alice-c2")]
            .iter()
            .map(|(p, v)| (p.to_string(), v.to_string()))
            .collect();
        assert_eq!(team.values(&carol), carols, "{mode:?}");
        for m in [&alice, &bob] {
            team.ok(m, &["fsck"]);
        }
        team.ok(&alice, &["verify", "--history"]);
    }
}

#[test]
fn a_members_sync_goes_on_where_a_folder_they_were_granted_was_removed_and_they_changed_nothing_in_it(
) {
    // Found by tests/team_sim.rs (seed 650094, attack): alice removed
    // staging, which bob was granted too, and changed prod/a, as bob did. His
    // merge kept her value beside his, then refused: "the other side removed
    // shared folder …, and you changed what is inside it", though he had
    // changed nothing in staging. The delete stands; only a change inside
    // the removed folder needs an admin.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) =
            prod_team(mode, &[("prod/a", "v-alice-a"), ("staging/s", "v-alice-s")]);
        team.ok(&alice, &["grant", "bob", "staging", "--write"]);
        team.commit(&alice, "bob writes staging");
        assert_ok("alice's push", &team.push(&alice));
        assert_ok("bob's pull", &team.pull(&bob));
        team.ok(&alice, &["rm", "-r", "staging"]);
        team.set_ok(&alice, "prod/a", "v-alice-a2");
        team.commit(&alice, "alice's");
        assert_ok("alice's push", &team.push(&alice));
        team.set_ok(&bob, "prod/a", "v-bob-a");
        team.commit(&bob, "bob's");
        assert_ok("bob's sync", &team.sync(&bob));
        assert_ok("alice's sync", &team.sync(&alice));
        let values = team.values(&alice);
        let mut prod_a: Vec<&str> = values
            .iter()
            .filter(|(p, _)| p.starts_with("prod/a"))
            .map(|(_, v)| v.as_str())
            .collect();
        prod_a.sort();
        assert_eq!(prod_a, ["v-alice-a2", "v-bob-a"], "{mode:?}: {values:?}");
        assert!(
            !values.keys().any(|p| p.starts_with("staging/")),
            "{mode:?}"
        );
        for m in [&alice, &bob] {
            team.ok(m, &["fsck"]);
        }
    }
}

#[test]
fn values_queued_by_a_merge_given_up_are_not_kept_beside_anything() {
    // Found with seed 650094 too: bob's pull merged prod/a, changed on both
    // sides, and the driver queued alice's value to keep beside his. He gave
    // the merge up (`git reset --hard @{u}`, as sesto tells a member who
    // cannot finish), and his next `sync` still found the queue and went on
    // to settle a merge that was no more.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(mode, &[("prod/a", "v-alice-a")]);
        team.set_ok(&alice, "prod/a", "v-alice-a2");
        team.commit(&alice, "alice's");
        assert_ok("alice's push", &team.push(&alice));
        team.set_ok(&bob, "prod/a", "v-bob-a");
        team.commit(&bob, "bob's");
        let pull = team.git(&bob, &["pull", "-q", "--no-rebase", "--no-edit"]);
        assert_ok("bob's git pull", &pull);
        assert!(
            bob.clone.join(".git/sesto/conflicts").exists(),
            "{mode:?}: the driver queued nothing, so this tests nothing"
        );
        team.git_ok(&bob, &["reset", "-q", "--hard", "@{u}"]);
        assert_ok("bob's sync", &team.sync(&bob));
        let values = team.values(&bob);
        assert_eq!(
            values.get("prod/a").map(String::as_str),
            Some("v-alice-a2"),
            "{mode:?}"
        );
        assert!(
            !values.keys().any(|p| p.contains("(conflict")),
            "{mode:?}: a copy from the merge given up: {values:?}"
        );
        assert_eq!(team.head(&bob), team.remote_head(), "{mode:?}");
        team.ok(&bob, &["fsck"]);
    }
}

#[test]
fn a_members_edit_rebased_onto_the_removal_of_their_folder_is_not_lost() {
    // Found by tests/team_sim.rs (seeds 690030, 690218, 690282, honest): the
    // check that stops a member whose folder the other side removed, while
    // they changed something inside it, took the member's changes to be
    // ours. In a rebase they are theirs: bob's `git pull --rebase` put his
    // edit's files back in no folder, pushed, and his value was gone.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(mode, &[("prod/db/x", "v-alice-x")]);
        team.ok(&alice, &["rm", "-r", "prod"]);
        team.commit(&alice, "alice's");
        assert_ok("alice's push", &team.push(&alice));
        team.set_ok(&bob, "prod/db/x", "v-bob-x");
        team.commit(&bob, "bob's");
        let remote = team.remote_head();
        match team.take_in(&bob, Way::Rebase) {
            Ok(()) => {
                assert_ok("alice's sync", &team.sync(&alice));
                assert_eq!(
                    team.get(&alice, "prod/db/x").as_deref(),
                    Some("v-bob-x"),
                    "{mode:?}: bob's rebase went through and lost his value"
                );
            }
            Err(out) => {
                let text = snapshot_text(&out);
                assert!(text.contains("alice"), "{mode:?}: {text}");
                assert_eq!(
                    team.remote_head(),
                    remote,
                    "{mode:?}: a stopped rebase pushed"
                );
            }
        }
    }
}

#[test]
fn writes_built_on_a_folder_put_back_older_do_not_forgive_it() {
    // Found by tests/team_sim.rs (seed 670195, attack): bob added prod/b;
    // mallory removed the prod folder's file and added its older copy back,
    // without b. alice, who never had bob's folder, took that in and wrote
    // in prod twice, which numbered the folder above bob's; the higher
    // number was taken as a repair, and b was gone for everyone. Only a
    // line that had bob's folder may forgive it.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) =
            prod_team(mode, &[("prod/a", "v-alice-a"), ("prod/c", "v-alice-c")]);
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        let old_nodes = team.clone_nodes(&alice);
        let (prod, _) = team.locate(&alice, &old_nodes, "prod");
        team.set_ok(&bob, "prod/b", "v-bob-b");
        team.commit(&bob, "bob's");
        assert_ok("bob's push", &team.push(&bob));
        remove_and_put_back(&team, &mallory, &prod, &old_nodes[&prod]);
        for (i, name) in ["prod/d", "prod/e", "prod/f"].iter().enumerate() {
            team.set_ok(&alice, name, &format!("v-alice-{i}"));
            team.commit(&alice, name);
        }
        match team.take_in(&alice, Way::Rebase) {
            Ok(()) => pull_is_refused(&team, &bob, "went back", mode),
            Err(out) => {
                let text = snapshot_text(&out);
                assert!(text.contains("went back"), "{mode:?}: {text}");
                team.abort(&alice);
            }
        }
        assert_eq!(
            team.get(&bob, "prod/b").as_deref(),
            Some("v-bob-b"),
            "{mode:?}: bob lost prod/b"
        );
    }
}

#[test]
fn an_edit_kept_under_a_replayed_folder_survives_the_repair_of_that_folder() {
    // Found by tests/team_sim.rs (seed 710311, attack): bob removed
    // prod/db/x; mallory put back the db folder's older file, which still
    // listed x; alice, behind, had edited x, and her rebase onto mallory's
    // commits kept the edit (it beats bob's delete) under the replayed
    // folder, which needed no change for it. An admin's repair then put the
    // newer folder back, and alice's merge of it took that folder (hers was
    // the merge base's): x's file stayed, listed nowhere, and her edit,
    // never pushed, was gone. The README says the repair merges unpushed
    // changes in.
    for mode in [Mode::Commit, Mode::Infra] {
        let (team, alice, bob, _carol) = prod_team(
            mode,
            &[("prod/db/x", "v-alice-x"), ("prod/db/y", "v-alice-y")],
        );
        let mallory = team.join(&alice, "mallory", None);
        assert_ok("bob's pull", &team.pull(&bob));
        let old_nodes = team.clone_nodes(&alice);
        let (db, _) = team.locate(&alice, &old_nodes, "prod/db");
        team.ok(&bob, &["rm", "prod/db/x"]);
        team.commit(&bob, "bob's");
        assert_ok("bob's push", &team.push(&bob));
        let newer = team.clone_nodes(&bob);
        assert_ok("mallory's pull", &team.pull(&mallory));
        mallory_pushes_file(&team, &mallory, &db, &old_nodes[&db]);
        team.set_ok(&alice, "prod/db/x", "v-alice-x2");
        team.commit(&alice, "alice's");
        // Her rebase takes mallory's commits in; sesto then refuses them.
        let _ = team.take_in(&alice, Way::Rebase);
        team.abort(&alice);
        // The repair: bob puts his folder back with git alone.
        assert_ok("bob's git pull", &team.pull(&bob));
        team.plant(&bob, &db, &newer[&db]);
        team.commit(&bob, "undo mallory's push");
        assert_ok("the repair's push", &team.push(&bob));
        if let Err(out) = team.take_in(&alice, Way::Pull) {
            panic!(
                "{mode:?}: alice's pull of the repair: {}",
                snapshot_text(&out)
            );
        }
        let values = team.values(&alice);
        assert_eq!(
            values.get("prod/db/x").map(String::as_str),
            Some("v-alice-x2"),
            "{mode:?}: {values:?}"
        );
        team.ok(&alice, &["fsck"]);
    }
}

/// Loose objects in `m`'s clone (`git count-objects`).
fn loose_objects(team: &Team, m: &Member) -> usize {
    let out = team.git_ok(m, &["count-objects", "-v"]);
    out.lines()
        .find_map(|l| l.strip_prefix("count: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("count-objects prints count")
}

#[test]
fn a_change_of_hundreds_of_files_is_committed_through_one_pack_and_leaves_git_clean() {
    // A rotation rewrites every file a member could read; from 256 paths
    // on, the blobs, trees and commit go through `git fast-import` into
    // packs (libgit2 wrote each of thousands of format 2 trees as a loose
    // object). The commit must be the one libgit2 would have made: the
    // index, the work tree and HEAD agree, no temporary ref is left, and
    // removals of hundreds of paths commit as well.
    for format in [1, 2] {
        let (team, alice) = Team::new_in(Mode::Commit, format);
        for i in 0..20 {
            team.set_ok(&alice, &format!("big/x/s{i:02}"), &format!("v-{i}"));
        }
        for n in 1..=14 {
            team.ok(&alice, &["cp", "-r", "big/x", &format!("big/x{n}")]);
        }
        let bob = team.join(&alice, "bob", Some(("big", false)));
        assert_eq!(team.get(&bob, "big/x7/s03").as_deref(), Some("v-3"));
        let head = team.head(&alice);
        let loose = loose_objects(&team, &alice);

        team.ok(&alice, &["member", "remove", "bob"]);
        let log = team.git_ok(&alice, &["log", "--format=%P", "-1"]);
        assert_eq!(
            log.trim(),
            head.trim(),
            "format {format}: one commit on HEAD"
        );
        let changed = team.git_ok(&alice, &["diff", "--name-only", "HEAD~1", "HEAD"]);
        assert!(changed.lines().count() >= 256, "format {format}: {changed}");
        assert_eq!(team.git_ok(&alice, &["status", "--porcelain"]), "");
        assert_eq!(team.git_ok(&alice, &["for-each-ref", "refs/sesto"]), "");
        assert!(
            loose_objects(&team, &alice) < loose + 16,
            "format {format}: the trees went into a pack"
        );
        team.git_ok(&alice, &["fsck", "--no-dangling", "--no-progress"]);
        assert_eq!(team.get(&alice, "big/x14/s19").as_deref(), Some("v-19"));
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify"]);

        team.ok(&alice, &["rm", "-r", "big"]);
        assert_eq!(team.git_ok(&alice, &["status", "--porcelain"]), "");
        let left = team.git_ok(
            &alice,
            &["ls-tree", "-r", "--name-only", "HEAD", ".sesto/nodes"],
        );
        assert!(left.lines().count() < 10, "format {format}: {left}");
        assert_eq!(team.get(&alice, "big/x/s00"), None);
        team.ok(&alice, &["fsck"]);
        team.ok(&alice, &["verify"]);
    }
}

#[test]
fn a_member_who_cannot_read_the_root_reads_history_in_their_folder() {
    // `sesto log`, `show --rev` and `restore` looked each path up from the
    // root, which bob (prod only) cannot open: every secret was "not in
    // this branch's history" for him.
    let (team, alice) = Team::new(Mode::Commit);
    team.set_ok(&alice, "prod/db/pw", "v1");
    let bob = team.join(&alice, "bob", Some(("prod", true)));
    team.set_ok(&alice, "prod/db/pw", "v2");
    assert_ok("alice's push", &team.push(&alice));
    assert_ok("bob's pull", &team.pull(&bob));
    // From the grant on: before it, prod's file was not encrypted to bob.
    let log = team.ok(&bob, &["log", "--json", "prod/db/pw"]);
    let versions: serde_json::Value = serde_json::from_str(&log).unwrap();
    assert_eq!(versions.as_array().map(Vec::len), Some(2), "{log}");
    let first = versions[1]["commit"]
        .as_str()
        .expect("a commit")
        .to_string();
    let old = team.ok(&bob, &["show", "--rev", &first, "prod/db/pw"]);
    assert_eq!(old, "v1");
    team.ok(&bob, &["restore", "--rev", &first, "prod/db/pw"]);
    assert_eq!(team.get(&bob, "prod/db/pw").as_deref(), Some("v1"));
    let missing = team.sesto(&bob, &["log", "prod/db/nope"]);
    assert!(!missing.success(), "{}", snapshot_text(&missing));
    assert!(missing.stderr.contains("not in this branch's history"));
}

#[test]
fn a_stashed_revoke_popped_over_another_admins_roster_change_merges_both() {
    // Team simulation seed 900044: alice's revoke (not committed, infra
    // mode) was stashed while she took in dana's grant; the pop stopped at
    // the roster (both changed it), and `sesto resolve` looked for the
    // stash by a conflicted node file, of which there was none.
    let (team, alice) = Team::new(Mode::Infra);
    team.set_ok(&alice, "prod/a", "v-a");
    team.set_ok(&alice, "staging/b", "v-b");
    team.commit(&alice, "secrets");
    assert_ok("alice's push", &team.push(&alice));
    let bob = team.join(&alice, "bob", Some(("prod", false)));
    let carol = team.join(&alice, "carol", Some(("prod", false)));
    let dana = team.join_admin(&alice, "dana");

    team.ok(&alice, &["revoke", "carol", "prod"]);
    team.git_ok(&alice, &["stash", "--quiet"]);
    team.ok(&dana, &["grant", "bob", "staging"]);
    team.commit(&dana, "bob reads staging");
    assert_ok("dana's push", &team.push(&dana));
    assert_ok("alice's pull", &team.pull(&alice));
    let pop = team.git(&alice, &["stash", "pop"]);
    assert!(
        !pop.success(),
        "both changed the roster: {}",
        snapshot_text(&pop)
    );
    let said = team.ok(&alice, &["resolve"]);
    assert!(said.contains("merged both sides' roster changes"), "{said}");
    team.git_ok(&alice, &["stash", "drop", "--quiet"]);
    team.commit(&alice, "revoke carol, merged");
    assert_ok("alice's push", &team.push(&alice));

    let roster = team.roster(&alice);
    let prod_grants: Vec<&String> = roster.grants.values().flat_map(|g| g.keys()).collect();
    assert!(
        !prod_grants.iter().any(|m| *m == "carol"),
        "{prod_grants:?}"
    );
    assert_ok("alice's fsck", &team.sesto(&alice, &["fsck"]));
    assert_ok("bob's pull", &team.pull(&bob));
    assert_eq!(
        team.get(&bob, "staging/b").as_deref(),
        Some("v-b"),
        "dana's grant"
    );
    assert_ok("carol's pull", &team.pull(&carol));
    assert_eq!(team.get(&carol, "prod/a"), None, "alice's revoke");
}
