//! The system clipboard, through the standard tools as pass uses them: `wl-copy` and
//! `wl-paste` on Wayland, `xclip` (or `xsel`) on X11, `pbcopy` and `pbpaste` on macOS.
//!
//! A value goes to the tool on its stdin, never on a command line or in the
//! environment. Clearing later is the caller's to schedule (the `sesto` binary runs
//! a detached helper); this module gives it [`Digest`] and [`clear_if_unchanged`],
//! which clears the clipboard only while it still holds the value copied, so
//! whatever the user copied since is left alone.

use std::ffi::OsStr;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Seconds a copied value stays on the clipboard unless `SESTO_CLIP_TIME` says otherwise.
pub const DEFAULT_CLEAR_SECONDS: u64 = 45;

/// Longest `SESTO_CLIP_TIME` accepted: a day.
pub const MAX_CLEAR_SECONDS: u64 = 86_400;

/// The environment variable that sets how long a copied value stays.
pub const CLIP_TIME_VAR: &str = "SESTO_CLIP_TIME";

/// Most bytes read back from the clipboard; a larger content (an image, say) is not
/// a value sesto copied, which is at most 11 MiB.
const MAX_PASTE: u64 = 16 * 1024 * 1024;

/// A tool that reaches the clipboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `wl-copy` / `wl-paste` (wl-clipboard), for Wayland (`WAYLAND_DISPLAY`).
    WlClipboard,
    /// `xclip -selection clipboard`, for X11 (`DISPLAY`).
    Xclip,
    /// `xsel --clipboard`, for X11 where xclip is missing.
    Xsel,
    /// `pbcopy` / `pbpaste`, on macOS.
    Pasteboard,
}

/// Why the clipboard could not be used. No variant holds any part of a value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Neither `WAYLAND_DISPLAY` nor `DISPLAY` is set.
    #[error(
        "there is no clipboard here: neither WAYLAND_DISPLAY nor DISPLAY is set \
         (copying needs a graphical session; `sesto get` prints the value instead)"
    )]
    NoDisplay,
    /// `WAYLAND_DISPLAY` is set, `wl-copy` is missing, and there is no X11 fallback.
    #[error(
        "WAYLAND_DISPLAY is set but wl-copy is not installed; install wl-clipboard \
         (`apt install wl-clipboard`)"
    )]
    NoWlClipboard,
    /// `DISPLAY` is set but neither `xclip` nor `xsel` is installed.
    #[error(
        "DISPLAY is set but neither xclip nor xsel is installed; install one \
         (`apt install xclip`)"
    )]
    NoX11Tool,
    /// On macOS, `pbcopy` or `pbpaste` is missing from PATH.
    #[error("pbcopy and pbpaste are not on PATH (they come with macOS, in /usr/bin)")]
    NoPasteboard,
    /// The tool could not be started or talked to.
    #[error("cannot run {tool}: {source}")]
    Run {
        /// The program.
        tool: &'static str,
        /// What the system said.
        source: std::io::Error,
    },
    /// The tool ran and failed; `message` is the first line of its stderr.
    #[error("{tool} failed ({status}){}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Failed {
        /// The program.
        tool: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The first line of what it printed on stderr (never the value: that went
        /// to its stdin, which no tool echoes).
        message: String,
    },
    /// `SESTO_CLIP_TIME` is not a whole number of seconds in range.
    #[error(
        "SESTO_CLIP_TIME={0:?} is not a whole number of seconds from 1 to {MAX_CLEAR_SECONDS}"
    )]
    ClipTime(String),
}

impl Backend {
    /// The clipboard of this session, from `WAYLAND_DISPLAY` and `DISPLAY` and the
    /// tools on PATH: Wayland first, then X11 (also where a Wayland session lacks
    /// wl-clipboard but runs Xwayland), and `pbcopy` on macOS.
    pub fn detect() -> Result<Backend, Error> {
        if cfg!(target_os = "macos") {
            return if find_program("pbcopy").is_some() && find_program("pbpaste").is_some() {
                Ok(Backend::Pasteboard)
            } else {
                Err(Error::NoPasteboard)
            };
        }
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        let wayland = set("WAYLAND_DISPLAY");
        let x11 = set("DISPLAY");
        if wayland && find_program("wl-copy").is_some() && find_program("wl-paste").is_some() {
            return Ok(Backend::WlClipboard);
        }
        if x11 {
            if find_program("xclip").is_some() {
                return Ok(Backend::Xclip);
            }
            if find_program("xsel").is_some() {
                return Ok(Backend::Xsel);
            }
        }
        match (wayland, x11) {
            (true, _) => Err(Error::NoWlClipboard),
            (false, true) => Err(Error::NoX11Tool),
            (false, false) => Err(Error::NoDisplay),
        }
    }

    /// A short name, for the helper that clears later: see [`Backend::from_name`].
    pub fn name(self) -> &'static str {
        match self {
            Backend::WlClipboard => "wayland",
            Backend::Xclip => "xclip",
            Backend::Xsel => "xsel",
            Backend::Pasteboard => "pasteboard",
        }
    }

    /// The backend of a [`Backend::name`].
    pub fn from_name(name: &str) -> Option<Backend> {
        [
            Backend::WlClipboard,
            Backend::Xclip,
            Backend::Xsel,
            Backend::Pasteboard,
        ]
        .into_iter()
        .find(|b| b.name() == name)
    }

    fn copy_command(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Backend::WlClipboard => ("wl-copy", &[]),
            Backend::Xclip => ("xclip", &["-selection", "clipboard", "-in"]),
            Backend::Xsel => ("xsel", &["--clipboard", "--input"]),
            Backend::Pasteboard => ("pbcopy", &[]),
        }
    }

    fn paste_command(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Backend::WlClipboard => ("wl-paste", &["--no-newline"]),
            Backend::Xclip => ("xclip", &["-selection", "clipboard", "-out"]),
            Backend::Xsel => ("xsel", &["--clipboard", "--output"]),
            Backend::Pasteboard => ("pbpaste", &[]),
        }
    }
}

/// How long a copied value stays: `SESTO_CLIP_TIME` seconds (1 to
/// [`MAX_CLEAR_SECONDS`]) when set and not empty, else [`DEFAULT_CLEAR_SECONDS`].
pub fn clear_after_from_env() -> Result<Duration, Error> {
    match std::env::var_os(CLIP_TIME_VAR) {
        None => Ok(Duration::from_secs(DEFAULT_CLEAR_SECONDS)),
        Some(v) if v.is_empty() => Ok(Duration::from_secs(DEFAULT_CLEAR_SECONDS)),
        Some(v) => parse_clear_after(&v.to_string_lossy()),
    }
}

/// Parses a number of seconds as `SESTO_CLIP_TIME` holds it.
pub fn parse_clear_after(text: &str) -> Result<Duration, Error> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|s| (1..=MAX_CLEAR_SECONDS).contains(s))
        .map(Duration::from_secs)
        .ok_or_else(|| Error::ClipTime(text.chars().take(40).collect()))
}

/// Puts `value` on the clipboard, written to the tool's stdin.
pub fn copy(backend: Backend, value: &[u8]) -> Result<(), Error> {
    let (tool, args) = backend.copy_command();
    run_with_input(tool, args, value)
}

/// Empties the clipboard, whatever it holds.
pub fn clear(backend: Backend) -> Result<(), Error> {
    match backend {
        Backend::WlClipboard => run_with_input("wl-copy", &["--clear"], b""),
        Backend::Xsel => run_with_input("xsel", &["--clipboard", "--clear"], b""),
        // Copying nothing replaces the value with an empty text.
        Backend::Xclip | Backend::Pasteboard => copy(backend, b""),
    }
}

/// What the clipboard holds now, as text; an error where it holds nothing the tool
/// can give as text (or more than 16 MiB).
pub fn paste(backend: Backend) -> Result<Zeroizing<Vec<u8>>, Error> {
    let (tool, args) = backend.paste_command();
    let (mut child, mut errors) = spawn(tool, args, Stdio::null(), Stdio::piped())?;
    let mut text = Zeroizing::new(Vec::new());
    let read = child
        .stdout
        .take()
        .map(|out| out.take(MAX_PASTE + 1).read_to_end(&mut text))
        .unwrap_or(Ok(0));
    let status = child.wait().map_err(|source| Error::Run { tool, source })?;
    read.map_err(|source| Error::Run { tool, source })?;
    if !status.success() {
        return Err(failed(tool, status, &mut errors));
    }
    if text.len() as u64 > MAX_PASTE {
        return Err(Error::Run {
            tool,
            source: std::io::Error::other("the clipboard holds more than 16 MiB"),
        });
    }
    Ok(text)
}

/// Clears the clipboard if it still holds the value whose digest is `expected`, and
/// says whether it did. A clipboard that cannot be read (emptied, holding an image,
/// its owner gone) is left alone.
pub fn clear_if_unchanged(backend: Backend, expected: &Digest) -> Result<bool, Error> {
    let now = match paste(backend) {
        Ok(now) => now,
        Err(_) => return Ok(false),
    };
    if Digest::of(&now) != *expected {
        return Ok(false);
    }
    clear(backend)?;
    Ok(true)
}

/// The SHA-256 of a copied value: what the clearing helper keeps instead of the value.
///
/// It is still a secret of sorts (a short value can be found from it by trying), so
/// it travels through a pipe, never on a command line, and is not `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `value`.
    pub fn of(value: &[u8]) -> Digest {
        Digest(Sha256::digest(value).into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> Zeroizing<String> {
        let mut s = Zeroizing::new(String::with_capacity(64));
        for b in self.0 {
            s.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            s.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        s
    }

    /// Reads [`Digest::to_hex`]'s form back (surrounding whitespace allowed).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in text.chunks(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Digest(out))
    }
}

impl Drop for Digest {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// Runs `tool args` with `input` on its stdin and waits for it to exit.
///
/// xclip and wl-copy leave a child behind that serves the clipboard until someone
/// else takes it. That child keeps whatever stdout and stderr it was given, so
/// stdout is null and stderr an unnamed temporary file: a pipe would stay open, and
/// whoever reads sesto's own output would wait for the clipboard to change hands.
fn run_with_input(tool: &'static str, args: &[&str], input: &[u8]) -> Result<(), Error> {
    let (mut child, mut errors) = spawn(tool, args, Stdio::piped(), Stdio::null())?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(input))
        .unwrap_or(Ok(()));
    let status = child.wait().map_err(|source| Error::Run { tool, source })?;
    if !status.success() {
        return Err(failed(tool, status, &mut errors));
    }
    written.map_err(|source| Error::Run { tool, source })
}

/// Starts `tool args` with its stderr in an unnamed temporary file, returned
/// beside the child for [`failed`] to quote.
fn spawn(
    tool: &'static str,
    args: &[&str],
    stdin: Stdio,
    stdout: Stdio,
) -> Result<(std::process::Child, std::fs::File), Error> {
    let run = |source| Error::Run { tool, source };
    let errors = tempfile::tempfile().map_err(run)?;
    let child = Command::new(tool)
        .args(args)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(errors.try_clone().map_err(run)?)
        .spawn()
        .map_err(run)?;
    Ok((child, errors))
}

/// The error of a tool that exited with `status`, with the first line of its stderr.
fn failed(
    tool: &'static str,
    status: std::process::ExitStatus,
    errors: &mut std::fs::File,
) -> Error {
    let mut text = Vec::new();
    let _ = errors.rewind();
    let _ = errors.take(4096).read_to_end(&mut text);
    let message = String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    Error::Failed {
        tool,
        status,
        message,
    }
}

/// The first executable `name` on PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(OsStr::new(name)))
        .find(|file| {
            std::fs::metadata(file)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_hex_round_trips() {
        let d = Digest::of(b"value-1");
        let hex = d.to_hex();
        assert_eq!(hex.len(), 64);
        assert!(Digest::from_hex(&hex) == Some(d.clone()));
        assert!(Digest::from_hex(&format!("{}\n", hex.as_str())) == Some(d));
        assert!(Digest::from_hex("zz").is_none());
        assert!(Digest::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn clip_time_is_whole_seconds_in_range() {
        assert_eq!(parse_clear_after("45").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_clear_after(" 1 ").unwrap(), Duration::from_secs(1));
        for bad in ["0", "-1", "1.5", "ten", "", "86401", "99999999999999999999"] {
            let e = parse_clear_after(bad).unwrap_err().to_string();
            assert!(e.contains("SESTO_CLIP_TIME"), "{e}");
        }
    }

    #[test]
    fn backend_names_round_trip() {
        for b in [
            Backend::WlClipboard,
            Backend::Xclip,
            Backend::Xsel,
            Backend::Pasteboard,
        ] {
            assert_eq!(Backend::from_name(b.name()), Some(b));
        }
        assert_eq!(Backend::from_name("nope"), None);
    }
}
