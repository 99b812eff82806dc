//! git2 plumbing: finding the repository, staging what sesto wrote, committing.
//!
//! Transport (fetch, push) is left to the system `git`, so users' ssh config,
//! agents and credential helpers apply; this module only touches the local
//! repository.
//!
//! The git layer owns everything that works with history and with more than
//! one commit: merging nodes ([`merge`], the driver git runs) and rosters
//! (`roster_merge`), reading each side of a merge under the roster its own
//! commit trusts (`sides`), settling what a merge left and `sync`
//! ([`resolve`]), and a secret's history ([`history`]).
//!
//! May use: [`crate::format`] and [`crate::store`].

pub mod history;
pub mod merge;
pub(crate) mod node_files;
pub mod resolve;
pub(crate) mod roster_merge;
pub(crate) mod sides;

use std::path::{Path, PathBuf};

use git2::{Repository, Signature};

use crate::error::{Error, Result};

/// Where a clone's `HEAD` is, as far as reading the store is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadState {
    /// On a branch, nothing under way: the store as the user works on it.
    Branch,
    /// Detached at a commit (its id): the user is looking at history.
    Detached(String),
    /// A merge, rebase or cherry-pick is under way (or git is running the
    /// merge driver): sides come and go.
    Moving,
}

/// The clone's [`HeadState`], from git's files alone (cheap enough for
/// every command).
pub fn head_state(work: &Path) -> HeadState {
    let driver = std::env::var_os("SESTO_MERGE_THEIRS").is_some()
        || std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("GITHEAD_"));
    let Ok(dir) = git_dir(work) else {
        return HeadState::Branch;
    };
    // Not `REBASE_HEAD`: git leaves it behind after a rebase that stopped
    // on a conflict has finished, and a clone taken for mid-rebase would
    // skip the rollback check for good.
    let moving = [
        "MERGE_HEAD",
        "CHERRY_PICK_HEAD",
        "rebase-merge",
        "rebase-apply",
    ]
    .iter()
    .any(|f| dir.join(f).exists());
    if driver || moving {
        return HeadState::Moving;
    }
    match std::fs::read_to_string(dir.join("HEAD")) {
        Ok(text) if !text.starts_with("ref:") && behind_a_ref(work, text.trim()) => {
            HeadState::Detached(text.trim().to_string())
        }
        _ => HeadState::Branch,
    }
}

/// Whether `commit` is older than the tip of some branch or remote branch:
/// a detached `HEAD` there looks at history (a CI checkout of a tip does
/// not).
fn behind_a_ref(work: &Path, commit: &str) -> bool {
    let Ok(repo) = open(work) else { return false };
    let Ok(oid) = git2::Oid::from_str(commit) else {
        return false;
    };
    let Ok(refs) = repo.references() else {
        return false;
    };
    let tips: Vec<git2::Oid> = refs
        .flatten()
        .filter(|r| {
            r.name()
                .is_some_and(|n| n.starts_with("refs/heads/") || n.starts_with("refs/remotes/"))
        })
        .filter_map(|r| r.target())
        .collect();
    tips.into_iter()
        .any(|tip| tip != oid && repo.graph_descendant_of(tip, oid).unwrap_or(false))
}

/// Finds the git directory of a work tree without opening the repository:
/// `.git` as a directory, or a `.git` file pointing elsewhere (worktrees).
pub fn git_dir(work: &Path) -> Result<PathBuf> {
    let dot_git = work.join(".git");
    let meta =
        std::fs::symlink_metadata(&dot_git).map_err(|_| Error::NotGit(work.to_path_buf()))?;
    if meta.is_dir() {
        return Ok(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).map_err(Error::io("cannot read", &dot_git))?;
    let target = text
        .strip_prefix("gitdir:")
        .map(str::trim)
        .ok_or_else(|| Error::NotGit(work.to_path_buf()))?;
    Ok(work.join(target))
}

/// Opens the repository whose work tree is `work`.
pub fn open(work: &Path) -> Result<Repository> {
    // Writing a tree from the index would otherwise look up every one of a
    // large store's objects to check it exists; sesto adds each object it
    // stages itself, so the check buys nothing and costs a syscall per file.
    static RELAXED: std::sync::Once = std::sync::Once::new();
    RELAXED.call_once(|| git2::opts::strict_object_creation(false));
    Repository::open(work).map_err(|_| Error::NotGit(work.to_path_buf()))
}

/// Whether sesto should commit its changes (`git config sesto.commit`).
pub fn auto_commit(repo: &Repository) -> bool {
    repo.config()
        .and_then(|c| c.get_bool("sesto.commit"))
        .unwrap_or(false)
}

/// Blob ids that staging learnt, by path, so a commit need not read and hash
/// those files again.
pub type Blobs = std::collections::HashMap<String, git2::Oid>;

/// Stages the given work-tree paths: present files are added, missing ones
/// removed. Runs `git update-index`: git reads and writes a large index (a
/// store of 100,000 secrets) many times faster than libgit2, which hashes the
/// whole file on every read.
pub fn stage(repo: &Repository, paths: &[String]) -> Result<()> {
    start_stage(repo, paths, &Blobs::new())?.wait()
}

/// Staging under way: `git update-index` running in the background for a
/// small change (so a commit can be built meanwhile), or done for a large one.
pub struct Staging {
    running: Option<Running>,
    blobs: Blobs,
}

impl Staging {
    /// Blob ids known already (those of a large change).
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Waits for git to have written the index.
    pub fn wait(self) -> Result<()> {
        if let Some(running) = self.running {
            running.finish()?;
        }
        Ok(())
    }
}

/// Starts staging `paths` (see [`stage`]); [`Staging::wait`] finishes it.
/// A large change takes the blob ids in `known` (stored already by
/// [`store_blobs`]) as they are.
pub fn start_stage(repo: &Repository, paths: &[String], known: &Blobs) -> Result<Staging> {
    let work = workdir(repo)?;
    if paths.len() >= PACK_FROM {
        return stage_packed(&work, paths, known);
    }
    let mut input = Vec::new();
    for p in paths {
        input.extend_from_slice(p.as_bytes());
        input.push(0);
    }
    let running = Running::spawn(
        &work,
        &["update-index", "--add", "--remove", "-z", "--stdin"],
        input,
        &[],
    )?;
    Ok(Staging {
        running: Some(running),
        blobs: Blobs::new(),
    })
}

/// From this many paths on, staging writes one pack instead of a loose
/// object (a file) per path: rotating a store's keys rewrites every node.
const PACK_FROM: usize = 256;

/// Stages many paths at once: `git fast-import` writes the blobs not in
/// `known` into one pack, and `git update-index --index-info` (left running)
/// points the index at them all.
fn stage_packed(work: &Path, paths: &[String], known: &Blobs) -> Result<Staging> {
    let mut blobs: Blobs = paths
        .iter()
        .filter_map(|p| known.get(p).map(|oid| (p.clone(), *oid)))
        .collect();
    let mut read = Vec::new();
    for p in paths.iter().filter(|p| !blobs.contains_key(*p)) {
        let file = work.join(p);
        match std::fs::read(&file) {
            Ok(bytes) => read.push((p.as_str(), bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot read", &file)(e)),
        }
    }
    let files: Vec<(&str, &[u8])> = read.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    blobs.extend(store_blobs(work, &files)?);
    let mut info = Vec::new();
    for p in paths {
        match blobs.get(p) {
            Some(oid) => info.extend_from_slice(format!("100644 {oid}\t{p}").as_bytes()),
            // Mode 0 removes the entry.
            None => info.extend_from_slice(format!("0 {}\t{p}", git2::Oid::zero()).as_bytes()),
        }
        info.push(0);
    }
    let running = Running::spawn(work, &["update-index", "-z", "--index-info"], info, &[])?;
    Ok(Staging {
        running: Some(running),
        blobs,
    })
}

/// Writes `files` (work-tree path, content) into the object database as one
/// pack with `git fast-import`, and returns their blob ids.
pub fn store_blobs(work: &Path, files: &[(&str, &[u8])]) -> Result<Blobs> {
    if files.is_empty() {
        return Ok(Blobs::new());
    }
    let mut stream = Vec::new();
    for (n, (_, bytes)) in files.iter().enumerate() {
        stream
            .extend_from_slice(format!("blob\nmark :{}\ndata {}\n", n + 1, bytes.len()).as_bytes());
        stream.extend_from_slice(bytes);
        stream.push(b'\n');
    }
    let mut oids: Vec<Option<git2::Oid>> = vec![None; files.len()];
    for (mark, oid) in fast_import(work, stream)? {
        if let Some(slot) = mark.checked_sub(1).and_then(|m| oids.get_mut(m)) {
            *slot = Some(oid);
        }
    }
    files
        .iter()
        .zip(oids)
        .map(|((p, _), oid)| {
            let oid =
                oid.ok_or_else(|| Error::Value(format!("git fast-import did not store {p}")))?;
            Ok((p.to_string(), oid))
        })
        .collect()
}

/// Runs `git fast-import` on `stream`, writing what it holds into one pack
/// (or loose objects, for a few), and returns its marks: mark number → id.
fn fast_import(work: &Path, mut stream: Vec<u8>) -> Result<Vec<(usize, git2::Oid)>> {
    // With `--done`, a stream cut short (this process killed while feeding
    // it) is an error to git, which then updates no ref.
    stream.extend_from_slice(b"done\n");
    let marks = tempfile::NamedTempFile::new_in(git_dir(work)?)
        .map_err(Error::io("cannot create a temporary file in", work))?;
    let export = format!("--export-marks={}", marks.path().display());
    // Age files are random bytes: neither zlib nor deltas make them smaller,
    // and trying both was two thirds of the time a rotation spent in git.
    Running::spawn(
        work,
        &[
            "-c",
            "pack.compression=0",
            "fast-import",
            "--quiet",
            "--depth=0",
            "--done",
            &export,
        ],
        stream,
        // glibc hands each blob's 256 KiB zlib state back to the kernel and
        // faults it in again; keeping freed memory in the process makes
        // fast-import three times faster on a rotation. Other libcs ignore it.
        &[
            ("MALLOC_TRIM_THRESHOLD_", "268435456"),
            ("MALLOC_MMAP_THRESHOLD_", "268435456"),
        ],
    )?
    .finish()?;
    let text =
        std::fs::read_to_string(marks.path()).map_err(Error::io("cannot read", marks.path()))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let (mark, oid) = line.strip_prefix(':')?.split_once(' ')?;
            Some((mark.parse().ok()?, git2::Oid::from_str(oid).ok()?))
        })
        .collect())
}

/// Commits `paths` as they are in the work tree on top of `HEAD`, with a
/// message that names no path; present files are their content, missing
/// ones are removed. The tree is built from `HEAD`'s by changing only the
/// trees above those paths, so a store of 100,000 secrets costs a few small
/// trees, not a pass over the whole index. No hook runs (sesto checks for
/// plaintext itself). `HEAD` moves only if it still points where it did.
/// Returns the commit id.
pub fn commit(repo: &Repository, paths: &[String], message: &str) -> Result<git2::Oid> {
    let prepared = prepare_commit(repo, paths, &Blobs::new(), message)?;
    finish_commit(repo, prepared)
}

/// A commit object written but not yet on `HEAD`.
pub struct Prepared {
    /// `HEAD`'s commit when the tree was built, if any.
    pub parent: Option<git2::Oid>,
    /// The new commit, or none when the tree did not change.
    commit: Option<git2::Oid>,
    /// What the reflog says of the move, as `git commit` writes it.
    reflog: String,
}

/// Writes the trees and the commit object of [`commit`] without moving
/// `HEAD`, so it can be done while git writes the index. Blob ids in `known`
/// (from [`store_blobs`]) are taken as they are; other files are read and
/// hashed, and their blobs need not exist yet: [`finish_commit`] must come
/// after they do.
pub fn prepare_commit(
    repo: &Repository,
    paths: &[String],
    known: &Blobs,
    message: &str,
) -> Result<Prepared> {
    let work = workdir(repo)?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let base = parent.as_ref().map(|p| p.tree()).transpose()?;
    let mut changes: Vec<Change> = Vec::new();
    // Whether every blob is stored already (not merely hashed here).
    let mut stored = true;
    for p in paths {
        if let Some(oid) = known.get(p) {
            changes.push((p.split('/').collect(), Some(*oid)));
            continue;
        }
        let file = work.join(p);
        let blob = match std::fs::read(&file) {
            // Staging stored the blob already; only its id is needed here.
            Ok(bytes) => Some(git2::Oid::hash_object(git2::ObjectType::Blob, &bytes)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", &file)(e)),
        };
        stored &= blob.is_none();
        changes.push((p.split('/').collect(), blob));
    }
    let sig = signature(repo)?;
    let imported = if paths.len() >= PACK_FROM && stored {
        import_commit(&work, parent.as_ref(), paths, &changes, &sig, message)?
    } else {
        None
    };
    let commit = match imported {
        Some(commit) => {
            let tree_id = repo.find_commit(commit)?.tree_id();
            (parent.as_ref().map(git2::Commit::tree_id) != Some(tree_id)).then_some(commit)
        }
        None => {
            let tree_id = edit_tree(repo, base.as_ref(), &changes)?;
            if parent.as_ref().is_some_and(|p| p.tree_id() == tree_id) {
                None
            } else {
                let tree = repo.find_tree(tree_id)?;
                let parents: Vec<&git2::Commit> = parent.iter().collect();
                Some(repo.commit(None, &sig, &sig, message, &tree, &parents)?)
            }
        }
    };
    Ok(Prepared {
        parent: parent.as_ref().map(git2::Commit::id),
        commit,
        reflog: format!(
            "commit{}: {}",
            if parent.is_none() { " (initial)" } else { "" },
            message.lines().next().unwrap_or_default()
        ),
    })
}

/// Writes the commit of a large change (a rotation rewrites thousands of
/// files) with `git fast-import`: the trees above `paths` and the commit go
/// into one pack, where libgit2 writes each of thousands of small format 2
/// trees as a loose object, a dozen system calls apiece. `changes` are
/// `paths`' blobs (none: removed), each stored already. `None` where a name
/// or path cannot be written in fast-import's plain syntax (the caller
/// builds the trees itself then). No ref is left behind.
fn import_commit(
    work: &Path,
    parent: Option<&git2::Commit>,
    paths: &[String],
    changes: &[Change],
    sig: &Signature,
    message: &str,
) -> Result<Option<git2::Oid>> {
    let plain = |s: &str| !s.contains(['<', '>', '\n'].as_slice());
    let (Some(name), Some(email)) = (sig.name(), sig.email()) else {
        return Ok(None);
    };
    if !plain(name) || !plain(email) || paths.iter().any(|p| p.contains('\n') || p.starts_with('"'))
    {
        return Ok(None);
    }
    let when = sig.when();
    let offset = when.offset_minutes();
    let ident = format!(
        "{name} <{email}> {} {}{:02}{:02}",
        when.seconds(),
        if offset < 0 { '-' } else { '+' },
        offset.unsigned_abs() / 60,
        offset.unsigned_abs() % 60
    );
    // A ref of this process's own, deleted again by the `reset` at the end.
    let branch = format!("refs/sesto/import-{}", std::process::id());
    let mut stream = format!(
        "commit {branch}\nmark :1\nauthor {ident}\ncommitter {ident}\ndata {}\n{message}\n",
        message.len()
    );
    if let Some(parent) = parent {
        stream.push_str(&format!("from {}\n", parent.id()));
    }
    for (p, (_, blob)) in paths.iter().zip(changes) {
        match blob {
            Some(oid) => stream.push_str(&format!("M 100644 {oid} {p}\n")),
            None => stream.push_str(&format!("D {p}\n")),
        }
    }
    stream.push_str(&format!("\nreset {branch}\n\n"));
    let marks = fast_import(work, stream.into_bytes())?;
    let commit = marks
        .into_iter()
        .find(|(mark, _)| *mark == 1)
        .map(|(_, oid)| oid);
    commit
        .map(Some)
        .ok_or_else(|| Error::Value("git fast-import did not write the commit".into()))
}

/// Moves `HEAD` (through the branch it names) to a prepared commit, only if
/// it still points where it did when the commit was built. Returns `HEAD`'s
/// commit id.
pub fn finish_commit(repo: &Repository, prepared: Prepared) -> Result<git2::Oid> {
    let Some(commit) = prepared.commit else {
        return Ok(prepared.parent.unwrap_or_else(git2::Oid::zero));
    };
    let head = repo.find_reference("HEAD")?;
    // HEAD names a branch, born or not; a detached HEAD is moved itself.
    let name = match head.symbolic_target() {
        Some(branch) => branch.to_string(),
        None => "HEAD".to_string(),
    };
    match prepared.parent {
        Some(parent) => repo.reference_matching(&name, commit, true, parent, &prepared.reflog)?,
        None => repo.reference(&name, commit, false, &prepared.reflog)?,
    };
    Ok(commit)
}

/// Changes of at least this many paths build their trees on every core.
const PARALLEL_TREES_FROM: usize = 256;

/// One path to change in a tree: its names, and its new blob (or none, to
/// remove it).
type Change<'p> = (Vec<&'p str>, Option<git2::Oid>);

/// `base` (or an empty tree) with each path set to its blob or removed;
/// returns the new tree's id. Trees no change touches are reused as they are.
fn edit_tree(
    repo: &Repository,
    base: Option<&git2::Tree>,
    changes: &[Change],
) -> Result<git2::Oid> {
    let mut builder = repo.treebuilder(base)?;
    let mut below: std::collections::BTreeMap<&str, Vec<Change>> = Default::default();
    for (parts, blob) in changes {
        match parts.as_slice() {
            [name] => match blob {
                Some(oid) => {
                    builder.insert(name, *oid, 0o100644)?;
                }
                None => {
                    if builder.get(name)?.is_some() {
                        builder.remove(name)?;
                    }
                }
            },
            [dir, rest @ ..] => below.entry(dir).or_default().push((rest.to_vec(), *blob)),
            [] => {}
        }
    }
    // Each directory's tree as it was, by id (so another handle can read it).
    let below: Vec<(&str, Option<git2::Oid>, Vec<Change>)> = below
        .into_iter()
        .map(|(dir, changes)| {
            let sub = base
                .and_then(|t| t.get_name(dir))
                .filter(|e| e.kind() == Some(git2::ObjectType::Tree))
                .map(|e| e.id());
            (dir, sub, changes)
        })
        .collect();
    let edit = |repo: &Repository, sub: Option<git2::Oid>, changes: &[Change]| {
        let sub = sub.map(|id| repo.find_tree(id)).transpose()?;
        edit_tree(repo, sub.as_ref(), changes)
    };
    // A large change (a rotation) rewrites thousands of small trees in
    // format 2, and libgit2 writes each as a loose object, a dozen system
    // calls apiece: the directories below this one are built on every core,
    // each with a handle of its own.
    let ids: Vec<Result<git2::Oid>> = if changes.len() >= PARALLEL_TREES_FROM && below.len() > 1 {
        let git_dir = repo.path().to_path_buf();
        crate::par::map(&below, |(_, sub, changes)| {
            edit(&Repository::open(&git_dir)?, *sub, changes)
        })
    } else {
        below
            .iter()
            .map(|(_, sub, changes)| edit(repo, *sub, changes))
            .collect()
    };
    for ((dir, _, _), id) in below.iter().zip(ids) {
        let (dir, id) = (*dir, id?);
        if repo.find_tree(id)?.is_empty() {
            if builder.get(dir)?.is_some() {
                builder.remove(dir)?;
            }
        } else {
            builder.insert(dir, id, 0o040000)?;
        }
    }
    Ok(builder.write()?)
}

fn workdir(repo: &Repository) -> Result<PathBuf> {
    repo.workdir()
        .map(Path::to_path_buf)
        .ok_or_else(|| Error::NotGit(repo.path().to_path_buf()))
}

/// Runs the system `git` in `work` with `input` on stdin; returns its trimmed
/// stdout, or an error quoting what git said (its hints left out).
pub(crate) fn run(
    work: &Path,
    args: &[&str],
    input: &[u8],
    env: &[(&str, &str)],
) -> Result<String> {
    Running::spawn(work, args, input.to_vec(), env)?.finish()
}

/// The system `git` running, its stdin fed from a thread.
pub(crate) struct Running {
    child: std::process::Child,
    feeder: std::thread::JoinHandle<std::io::Result<()>>,
    command: String,
}

impl Running {
    /// Starts `git args` in `work` with `input` on its stdin.
    pub(crate) fn spawn(
        work: &Path,
        args: &[&str],
        input: Vec<u8>,
        env: &[(&str, &str)],
    ) -> Result<Running> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new("git")
            .args(args)
            .current_dir(work)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io("cannot run", "git"))?;
        let mut stdin = child.stdin.take().expect("piped");
        // A thread, so that input larger than a pipe cannot deadlock against
        // git's output filling the other pipes.
        let feeder = std::thread::spawn(move || stdin.write_all(&input));
        Ok(Running {
            child,
            feeder,
            command: args.join(" "),
        })
    }

    /// Waits for git; returns its trimmed stdout, or an error quoting what
    /// it said (its hints left out).
    pub(crate) fn finish(self) -> Result<String> {
        let out = self
            .child
            .wait_with_output()
            .map_err(Error::io("cannot run", "git"))?;
        let written = self.feeder.join().expect("the stdin thread does not panic");
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = said
                .lines()
                .filter(|l| !l.starts_with("hint:") && !l.starts_with("Auto-merging"))
                .collect();
            return Err(Error::Value(format!(
                "git {} failed: {}",
                self.command,
                said.join("; ").trim()
            )));
        }
        written.map_err(Error::io("cannot write to", "git"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn signature(repo: &Repository) -> Result<Signature<'static>> {
    let config = repo.config()?;
    let name = config
        .get_string("user.name")
        .unwrap_or_else(|_| "sesto".into());
    let email = config
        .get_string("user.email")
        .unwrap_or_else(|_| "sesto@localhost".into());
    let when = match std::env::var("GIT_COMMITTER_DATE")
        .ok()
        .and_then(|d| crate::format::time::parse_rfc3339(&d))
    {
        Some(secs) => git2::Time::new(secs, 0),
        None => return Ok(Signature::now(&name, &email)?),
    };
    Ok(Signature::new(&name, &email, &when)?)
}

/// Whether the repository holds nothing but sesto's files: no commits, nothing
/// staged, and an empty work tree apart from `.git` and `.sesto`.
pub fn is_empty_repo(repo: &Repository) -> bool {
    if repo.head().is_ok() {
        return false;
    }
    if repo.index().map(|i| !i.is_empty()).unwrap_or(true) {
        return false;
    }
    let Some(work) = repo.workdir() else {
        return false;
    };
    match std::fs::read_dir(work) {
        Ok(entries) => entries.flatten().all(|e| {
            let n = e.file_name();
            n == ".git" || n == ".sesto"
        }),
        Err(_) => false,
    }
}
