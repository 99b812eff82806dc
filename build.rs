//! Tells the integration tests which outside tools are missing, so that `cargo test`
//! reports the tests needing them as ignored, with the package to install, instead
//! of passing tests that did nothing.
//!
//! For every [`GROUPS`] entry it declares `cfg(missing_<name>)` and sets it when one
//! of the group's executables is found neither on `PATH` nor in an sbin directory.
//! A test that needs the tool carries
//! `#[cfg_attr(missing_<name>, ignore = "<Group::reason>")]`. Under `CI=true` no cfg
//! is set: there every test runs, and a missing tool fails it.
//!
//! `tests/common/mod.rs` includes this file as a module: `require_tool` and the lint
//! in `tests/harness.rs` read the same table.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Executables the tests run, grouped by the package that provides them.
pub struct Group {
    /// The cfg set when the group is missing is `missing_<name>`.
    pub name: &'static str,
    /// The executables; the group is missing when any one of them is.
    pub tools: &'static [&'static str],
    /// How to install them.
    pub install: &'static str,
}

impl Group {
    /// The `ignore` reason every annotation for this group repeats word for word.
    pub fn reason(&self) -> String {
        format!("needs {}: {}", self.tools.join(", "), self.install)
    }
}

/// Every tool passed to `require_tool` in tests/, by Debian package.
pub const GROUPS: &[Group] = &[
    group("age", &["age", "age-keygen"], "apt-get install age"),
    group(
        "ssh",
        &["ssh-keygen", "ssh", "ssh-add", "ssh-agent"],
        "apt-get install openssh-client",
    ),
    group("sshd", &["sshd"], "apt-get install openssh-server"),
    group("git", &["git"], "apt-get install git"),
    group("gpg", &["gpg", "gpgconf"], "apt-get install gnupg"),
    group("pass", &["pass"], "apt-get install pass"),
    group("xvfb", &["Xvfb"], "apt-get install xvfb"),
    group("xclip", &["xclip"], "apt-get install xclip"),
    group("sway", &["sway"], "apt-get install sway"),
    group(
        "wl_clipboard",
        &["wl-copy", "wl-paste"],
        "apt-get install wl-clipboard",
    ),
    group("zbar", &["zbarimg"], "apt-get install zbar-tools"),
    group("zsh", &["zsh"], "apt-get install zsh"),
    group("fish", &["fish"], "apt-get install fish"),
    group("pre_commit", &["pre-commit"], "pip install pre-commit"),
    group("script", &["script"], "apt-get install bsdutils"),
    group(
        "util_linux",
        &["setpriv", "setsid", "unshare"],
        "apt-get install util-linux",
    ),
    group(
        "coreutils",
        &["sha256sum", "base64"],
        "apt-get install coreutils",
    ),
    group("bash", &["bash"], "apt-get install bash"),
    group("sed", &["sed"], "apt-get install sed"),
    group("curl", &["curl"], "apt-get install curl"),
    group("python3", &["python3"], "apt-get install python3"),
];

const fn group(name: &'static str, tools: &'static [&'static str], install: &'static str) -> Group {
    Group {
        name,
        tools,
        install,
    }
}

/// The group `tool` belongs to, if it is in the table.
pub fn group_of(tool: &str) -> Option<&'static Group> {
    GROUPS.iter().find(|g| g.tools.contains(&tool))
}

/// Directories searched after PATH: daemons such as `sshd` live there, and a
/// developer's PATH often leaves them out.
const SBIN_DIRS: &[&str] = &["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Where the executable `name` is: the first on PATH, else in an sbin directory. A
/// tool that may be found only in sbin must be run by this path, not by its name.
pub fn tool_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

fn is_executable(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether this is a CI run, where every test must run.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=CI");
    let ci = is_ci();
    for group in GROUPS {
        println!("cargo::rustc-check-cfg=cfg(missing_{})", group.name);
        if !ci && !group.tools.iter().all(|t| tool_path(t).is_some()) {
            println!("cargo::rustc-cfg=missing_{}", group.name);
        }
    }
}
