//! `init`: a new store with a signed roster, an empty root and git attributes.
//!
//! The whole `.sesto/` directory is built beside its final place and renamed
//! in one step, so an interrupted init leaves no half-made store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::crypto::{self, Identities};
use crate::format::node::{self, Body, Kind, Member, NodeId, Roster};
use crate::store::journal;
use crate::store::{Node, Store};

/// The attributes that route node files through sesto's merge and diff drivers.
pub const GITATTRIBUTES: &str =
    "*.age binary merge=sesto diff=sesto\nroster.yaml -merge\nroster.sig -merge\nroster.log merge=union\n";

/// Options for [`init`].
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Where to look for the git work tree (default: the current directory).
    pub start: Option<PathBuf>,
    /// The first admin's member name (default: from `$USER`, else `admin`).
    pub name: Option<String>,
    /// The store format to write (default: the newest, [`node::FORMAT`]).
    pub format: Option<u32>,
}

/// What [`init`] did.
#[derive(Debug)]
pub struct Initialized {
    /// The open store.
    pub store: Store,
    /// Whether `sesto.commit` was turned on (the repository held nothing else).
    pub auto_commit: bool,
}

/// Creates a store in the git work tree containing `options.start`. The first
/// SSH key among `ids` becomes the first admin's key.
pub fn init(options: &InitOptions, ids: Identities) -> Result<Initialized> {
    let start = match &options.start {
        Some(p) => p.clone(),
        None => {
            std::env::current_dir().map_err(Error::io("cannot read", "the current directory"))?
        }
    };
    let repo = git2::Repository::discover(&start).map_err(|_| Error::NotGit(start.clone()))?;
    let work = repo
        .workdir()
        .ok_or_else(|| Error::NotGit(start.clone()))?
        .to_path_buf();
    let dir = work.join(".sesto");
    if std::fs::symlink_metadata(&dir).is_ok() {
        return Err(Error::AlreadyInitialized(dir));
    }
    let signer = ids.iter().find(|i| i.can_sign()).ok_or_else(|| {
        Error::Denied(format!(
            "sesto init needs an SSH key to sign with (tried: {}); make one with `ssh-keygen -t ed25519` or pass -i",
            if ids.tried().is_empty() { "none found".to_string() } else { ids.tried().join(", ") }
        ))
    })?;
    let name = match &options.name {
        Some(n) => n.clone(),
        None => default_member_name(&repo, signer.comment()),
    };
    node::check_member_name(&name).map_err(Error::Value)?;
    let public = signer
        .public()
        .expect("SSH identities know their public key")
        .to_string();
    // An agent-derived age identity decrypts as its age key and signs as
    // its SSH key: both go into the roster.
    let signing_key = signer
        .signing_public()
        .filter(|s| *s != public)
        .map(str::to_string);
    let mut members = BTreeMap::new();
    members.insert(
        name.clone(),
        Member {
            key: public,
            admin: true,
            signing_key,
        },
    );
    let mut roster = Roster::new(members);
    if let Some(format) = options.format {
        if !(node::OLDEST_FORMAT..=node::FORMAT).contains(&format) {
            return Err(Error::Value(format!(
                "format {format}: this sesto writes formats {} to {}",
                node::OLDEST_FORMAT,
                node::FORMAT
            )));
        }
        roster.sesto = format;
    }
    let roster_bytes = roster.encode();
    // One prepared key signs the roster and the root.
    let key = signer.signer(ids.prompt())?;
    let roster_sig = key
        .sign(crypto::ROSTER_NAMESPACE, &roster_bytes)
        .map_err(|e| Error::Denied(format!("cannot sign the roster: {e}")))?;

    let staging = work.join(format!("{}init-{}", journal::TEMP_MARK, NodeId::random()));
    let built = build(
        &staging,
        &work,
        &roster,
        &roster_bytes,
        &roster_sig,
        ids,
        &key,
    );
    let store = match built {
        Ok(store) => store,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    std::fs::rename(&staging, &dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        Error::io("cannot create", &dir)(e)
    })?;
    let store = Store { dir, ..store };
    // The creator trusts the admins they just made.
    crate::store::trust::pin(&work, &roster, &roster_bytes)?;

    let auto_commit = crate::git::is_empty_repo(&repo);
    let mut paths = vec![
        ".sesto/roster.yaml".to_string(),
        ".sesto/roster.sig".into(),
        ".sesto/.gitattributes".into(),
    ];
    paths.push(format!(".sesto/{}", roster.root.rel_path(roster.sesto)));
    crate::git::stage(&repo, &paths)?;
    if auto_commit {
        repo.config()?.set_bool("sesto.commit", true)?;
        crate::git::commit(&repo, &paths, "sesto: new store")?;
    }
    Ok(Initialized { store, auto_commit })
}

fn build(
    staging: &Path,
    work: &Path,
    roster: &Roster,
    roster_bytes: &[u8],
    roster_sig: &str,
    ids: Identities,
    key: &crypto::Signer,
) -> Result<Store> {
    std::fs::create_dir(staging).map_err(Error::io("cannot create", staging))?;
    journal::write_atomic(&staging.join("roster.yaml"), roster_bytes)?;
    journal::write_atomic(&staging.join("roster.sig"), roster_sig.as_bytes())?;
    journal::write_atomic(&staging.join(".gitattributes"), GITATTRIBUTES.as_bytes())?;
    let state = crate::git::git_dir(work)?.join("sesto");
    let keys = crate::store::member_keys(roster)?;
    let me = roster.members.keys().next().cloned();
    let store = Store {
        work: work.to_path_buf(),
        dir: staging.to_path_buf(),
        state,
        roster: roster.clone(),
        ids,
        keys,
        me: me.clone(),
        tops: Default::default(),
        notices: vec![],
        head: crate::git::HeadState::Branch,
        trust: Default::default(),
    };
    let root = Node {
        id: roster.root,
        key: None,
        body: Body {
            version: 1,
            ..Body::new(&roster.store, roster.root, Kind::Folder, "")
        },
        signer: me.unwrap_or_default(),
    };
    let bytes = crate::store::tx::encode_node(&store, roster, &root, key)?;
    journal::write_atomic(&staging.join(roster.root.rel_path(roster.sesto)), &bytes)?;
    Ok(store)
}

/// The first member's name when none is given: git's `user.name`, else
/// the key's comment (`alice@laptop`), else `$USER`, made a valid member
/// name (spaces become `-`); `admin` where none of them gives one.
fn default_member_name(repo: &git2::Repository, key_comment: Option<&str>) -> String {
    let git_name = repo
        .config()
        .ok()
        .and_then(|c| c.get_string("user.name").ok());
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok();
    let found = [git_name.as_deref(), key_comment, user.as_deref()]
        .into_iter()
        .flatten()
        .map(member_name_from)
        .find(|n| node::check_member_name(n).is_ok());
    found.unwrap_or_else(|| "admin".into())
}

fn member_name_from(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| if c.is_whitespace() { '-' } else { c })
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
        .collect::<String>()
        .trim_start_matches(['-', '.'])
        .chars()
        .take(64)
        .collect()
}
