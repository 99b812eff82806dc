//! The library's error type: what callers act on, each with a hint for people.
//!
//! No variant ever carries a secret value; paths and names are shown because the
//! person who typed them can already see them.

use std::path::PathBuf;

use crate::format::node::{BadId, BadName, NodeId};

/// Errors of store operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No store was found from the working directory upwards.
    #[error("no sesto store found in {searched} or any parent directory")]
    NoStore {
        /// Where the search started.
        searched: PathBuf,
    },
    /// `init` in a directory that already has a store.
    #[error("a sesto store already exists: {0}")]
    AlreadyInitialized(PathBuf),
    /// The directory is not inside a git work tree.
    #[error("{0} is not inside a git work tree")]
    NotGit(PathBuf),
    /// A path that does not exist.
    #[error("no such secret or folder: {path} ({nearest})")]
    NotFound {
        /// The path asked for.
        path: String,
        /// The nearest existing parent, described.
        nearest: String,
    },
    /// A secret where a folder is needed.
    #[error("{path} is a secret, not a folder")]
    NotAFolder {
        /// The path.
        path: String,
    },
    /// A folder where a secret is needed.
    #[error("{path} is a folder, not a secret")]
    NotASecret {
        /// The path.
        path: String,
    },
    /// The target of a create or move already exists.
    #[error("{path} already exists")]
    Exists {
        /// The path.
        path: String,
    },
    /// Removing a folder that has entries, without `-r`.
    #[error("{path} is a folder with {count} {}", if *.count == 1 { "entry" } else { "entries" })]
    NotEmpty {
        /// The path.
        path: String,
        /// How many entries it has.
        count: usize,
    },
    /// An operation on the root that cannot apply to it.
    #[error("the root folder cannot be {0}")]
    Root(&'static str),
    /// A move into the node's own subtree.
    #[error("cannot move {from} into itself ({to})")]
    IntoItself {
        /// Source path.
        from: String,
        /// Destination path.
        to: String,
    },
    /// A path component breaks the naming rules.
    #[error(transparent)]
    Name(#[from] BadName),
    /// An id that is not 32 hex digits.
    #[error(transparent)]
    Id(#[from] BadId),
    /// None of the identities can read the store.
    #[error("{}", no_identity(.tried, .public.as_deref()))]
    NoIdentity {
        /// Sources that were read.
        tried: Vec<String>,
        /// The public key to send an admin (an SSH key where there is one).
        public: Option<String>,
    },
    /// The current identity is not allowed to do this.
    #[error("{0}")]
    Denied(String),
    /// A path outside every folder granted to the current member.
    #[error("{path} is not granted to {member}")]
    NotGranted {
        /// The path asked for.
        path: String,
        /// The current member.
        member: String,
        /// The admins, who can grant it.
        admins: Vec<String>,
    },
    /// The roster is not one the user has trusted, and no signed chain leads
    /// to it from the one they did.
    #[error("roster .sesto/roster.yaml is not trusted: {reason}")]
    Untrusted {
        /// Why.
        reason: String,
        /// The trust file.
        file: PathBuf,
    },
    /// A key could not be read or used.
    #[error(transparent)]
    Key(#[from] crate::format::crypto::KeyError),
    /// A node file was rejected.
    #[error("node {id} (.sesto/{file}) rejected: {reason}")]
    Node {
        /// The node id.
        id: NodeId,
        /// Its file under `.sesto/`.
        file: String,
        /// Why.
        reason: String,
    },
    /// The roster was rejected.
    #[error("roster .sesto/roster.yaml rejected: {0}")]
    Roster(String),
    /// A file under `.sesto/` that has no business being there.
    #[error("{path} refused: {reason}")]
    Refused {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A secret's value is not what the operation needs (no field, not YAML).
    #[error("{0}")]
    Value(String),
    /// I/O on a named file.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// libgit2 failed.
    #[error("git: {}", .0.message())]
    Git(git2::Error),
}

fn no_identity(tried: &[String], public: Option<&str>) -> String {
    match public {
        Some(_) => format!(
            "you are not a member of this store: none of your keys opens it (tried: {})",
            tried_list(tried)
        ),
        None => format!(
            "no identity can decrypt this store; tried: {}",
            tried_list(tried)
        ),
    }
}

fn tried_list(tried: &[String]) -> String {
    if tried.is_empty() {
        "nothing (no -i, SESTO_IDENTITY, SESTO_IDENTITY_FILE, ~/.config/sesto/identity, ~/.ssh/id_ed25519 or ~/.ssh/id_rsa)".into()
    } else {
        tried.join(", ")
    }
}

impl Error {
    /// A line telling the user what to do next, where there is one.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::NoStore { .. } => {
                "run `sesto init` in a git repository, or pass --store DIR".into()
            }
            Error::NotGit(_) => "run `git init` first".into(),
            Error::AlreadyInitialized(_) => {
                "use the existing store; `sesto ls` shows what it holds".into()
            }
            Error::NotFound { .. } => "`sesto ls` or `sesto find` shows what exists".into(),
            Error::NotEmpty { .. } => "use `sesto rm -r` to remove it with everything in it".into(),
            Error::NoIdentity { public: Some(key), .. } => format!(
                "send an admin your public key and ask them to add you:\n  sesto member add YOUR-NAME --key '{key}'\n\
                 or pass the key that was added with -i FILE"
            ),
            Error::NoIdentity { public: None, .. } => {
                "pass the key that was added to the store with -i FILE, or set SESTO_IDENTITY; \
                 without a key, make one with `ssh-keygen -t ed25519` and send an admin its .pub line"
                    .into()
            }
            Error::Node { .. } | Error::Refused { .. } => {
                "`sesto fsck` checks the whole store; `git log -- .sesto` shows who changed it"
                    .into()
            }
            Error::Roster(_) => "compare with `git log -p -- .sesto/roster.yaml`".into(),
            Error::NotGranted { path, member, admins } => format!(
                "an admin ({}) can grant the folder that holds it: sesto grant {member} {}; \
                 `sesto ls` shows what you can read",
                admins.join(", "),
                // Grants are on folders: the path's folder (a folder path's
                // parent serves as well).
                path.rsplit_once('/').map_or(path.as_str(), |(folder, _)| folder)
            ),
            Error::Untrusted { file, .. } => format!(
                "sesto follows roster changes only through admin signatures from a roster you \
                 trusted; ask an admin what changed, compare with `sesto trust`, and only then \
                 run `sesto trust --accept`; your pin is {}",
                file.display()
            ),
            _ => return None,
        })
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// Result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<git2::Error> for Error {
    fn from(e: git2::Error) -> Error {
        // Not a `source`: the message is shown once, not again as a cause.
        Error::Git(e)
    }
}
