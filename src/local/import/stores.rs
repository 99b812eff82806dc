//! pass, gopass and passage stores: finding their entries on disk, and
//! decrypting each one, with the user's own `gpg` for pass and gopass, and
//! in-process with the age crate for passage.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::node;

/// Directories never imported: the store's own git repository, and pass's
/// extensions (scripts, not secrets).
const SKIPPED_DIRS: &[&str] = &[".git", ".extensions"];

/// One entry file found in a store: its path of names below the store's top
/// (`a/b/c.gpg` → `[a, b, c]`) and the file.
pub(crate) struct Found {
    pub(crate) names: Vec<String>,
    pub(crate) file: PathBuf,
}

/// Lists the entries of a store under `dir`: files ending in `.{ext}`, in
/// name order. Everything else is returned as skipped, shown relative to
/// `dir` (a skipped directory once, with a trailing `/`). Symlinks are
/// skipped, never followed. A file or folder name that is not a valid sesto
/// name is an error naming the file.
pub(crate) fn scan(dir: &Path, ext: &str) -> Result<(Vec<Found>, Vec<String>)> {
    let meta = std::fs::metadata(dir).map_err(Error::io("cannot read the store", dir))?;
    if !meta.is_dir() {
        return Err(Error::Value(format!(
            "{} is not a directory; give the store's directory",
            dir.display()
        )));
    }
    let suffix = format!(".{ext}");
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    let mut skipped_dirs = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .min_depth(1)
        .max_depth(node::MAX_DEPTH + 1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let skip = e.file_type().is_dir() && SKIPPED_DIRS.iter().any(|s| e.file_name() == *s);
            if skip {
                let rel = e.path().strip_prefix(dir).unwrap_or(e.path());
                skipped_dirs.push(format!("{}/", rel.display()));
            }
            !skip
        });
    for entry in walker {
        let entry = entry.map_err(|e| {
            let at = e.path().unwrap_or(dir).to_path_buf();
            Error::Value(format!("cannot read {}: {e}", at.display()))
        })?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let shown = rel.display().to_string();
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        let Some(stem) = shown.strip_suffix(&suffix).filter(|_| kind.is_file()) else {
            skipped.push(shown);
            continue;
        };
        let text = rel.to_str().ok_or_else(|| {
            Error::Value(format!(
                "{}: the file name is not UTF-8, which sesto names cannot hold; rename it",
                entry.path().display()
            ))
        })?;
        let stem = &text[..stem.len()];
        let mut names = Vec::new();
        for name in stem.split('/') {
            node::check_name(name).map_err(|e| {
                Error::Value(format!(
                    "{}: {e}; rename it in the source store (nothing was imported)",
                    entry.path().display()
                ))
            })?;
            names.push(name.to_string());
        }
        found.push(Found {
            names,
            file: entry.path().to_path_buf(),
        });
    }
    skipped.extend(skipped_dirs);
    Ok((found, skipped))
}

/// The stores gopass's config names: `[mounts]` with `path = DIR` is the
/// root store, `[mounts "NAME"]` with `path = DIR` a mount (gopass 1.15 and
/// later keep their config in git's format at `~/.config/gopass/config`).
/// Other sections and keys are ignored; a value may be in double quotes.
pub(crate) fn gopass_mounts(text: &str) -> (Option<PathBuf>, Vec<(String, PathBuf)>) {
    let mut root = None;
    let mut mounts = Vec::new();
    // None: outside [mounts]; Some(None): [mounts]; Some(Some(name)): a mount.
    let mut section: Option<Option<String>> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let header = header.split(']').next().unwrap_or("").trim();
            section = match header.split_once(char::is_whitespace) {
                None if header == "mounts" => Some(None),
                Some(("mounts", name)) => {
                    let name = name.trim().trim_matches('"');
                    Some(Some(name.to_string()))
                }
                _ => None,
            };
            continue;
        }
        let Some(current) = &section else { continue };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("path") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let dir = PathBuf::from(value);
        match current {
            None => root = Some(dir),
            Some(name) => {
                mounts.retain(|(n, _): &(String, PathBuf)| n != name);
                mounts.push((name.clone(), dir));
            }
        }
    }
    (root, mounts)
}

/// Largest gpg error text shown.
const MAX_STDERR: u64 = 4 << 10;

/// Decrypts one pass file with `gpg --batch --quiet --decrypt FILE`: its
/// output, byte for byte. A failure names the file and shows gpg's own
/// message; an output past sesto's value limit is refused.
pub(crate) fn gpg_decrypt(program: &std::ffi::OsStr, file: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let shown = file.display();
    let mut child = Command::new(program)
        .args(["--batch", "--quiet", "--decrypt", "--"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Value(format!(
                "cannot run {} to decrypt {shown}: {e}; install GnuPG (apt-get install gnupg)",
                Path::new(program).display()
            ))
        })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let mut value = Zeroizing::new(Vec::new());
    let (read, message) = std::thread::scope(|s| {
        let errors = s.spawn(move || {
            let mut message = Vec::new();
            let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut message);
            // Drain the rest so gpg never blocks on a full pipe.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            message
        });
        let read = (&mut stdout)
            .take(node::MAX_VALUE as u64 + 1)
            .read_to_end(&mut value);
        let too_big = value.len() > node::MAX_VALUE;
        if too_big {
            let _ = child.kill();
        }
        drop(stdout);
        (read.map(|_| too_big), errors.join().unwrap_or_default())
    });
    let status = child
        .wait()
        .map_err(|e| Error::Value(format!("gpg on {shown}: {e}")))?;
    match read {
        Err(e) => Err(Error::Value(format!(
            "cannot read gpg's output for {shown}: {e}"
        ))),
        Ok(true) => Err(Error::Value(format!(
            "{shown} decrypts to more than {} MiB, more than a sesto value holds",
            node::MAX_VALUE >> 20
        ))),
        Ok(false) if !status.success() => {
            let text = String::from_utf8_lossy(&message);
            Err(Error::Value(format!(
                "gpg could not decrypt {shown} ({status}): {}",
                if text.trim().is_empty() {
                    "it printed no reason"
                } else {
                    text.trim()
                }
            )))
        }
        Ok(false) => Ok(value),
    }
}

/// Decrypts one passage file (an age file, binary or armored) with the
/// given identities.
pub(crate) fn age_decrypt(
    identities: &[&dyn age::Identity],
    file: &Path,
) -> Result<Zeroizing<Vec<u8>>> {
    let shown = file.display();
    let bytes = crate::format::limits::read_regular(file, node::MAX_NODE_FILE as usize)
        .map_err(|e| Error::Value(format!("cannot read {shown}: {e}")))?;
    let value = crate::format::crypto::decrypt(&bytes, identities).map_err(|e| {
        Error::Value(format!(
            "cannot decrypt {shown}: {e}; is the passage identity file the right one?"
        ))
    })?;
    if value.len() > node::MAX_VALUE {
        return Err(Error::Value(format!(
            "{shown} decrypts to more than {} MiB, more than a sesto value holds",
            node::MAX_VALUE >> 20
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_maps_files_to_names_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for (path, body) in [
            ("a/b/c.gpg", "x"),
            ("top.gpg", "x"),
            (".gpg-id", "KEY"),
            ("a/.gpg-id", "KEY"),
            ("README", "x"),
            (".git/config", "x"),
            (".extensions/x.bash", "x"),
            ("a/.hidden.gpg", "x"),
        ] {
            let p = d.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        std::os::unix::fs::symlink(d.join("top.gpg"), d.join("link.gpg")).unwrap();
        let (found, mut skipped) = scan(d, "gpg").unwrap();
        let names: Vec<String> = found.iter().map(|f| f.names.join("/")).collect();
        assert_eq!(names, ["a/.hidden", "a/b/c", "top"]);
        skipped.sort();
        assert_eq!(
            skipped,
            [
                ".extensions/",
                ".git/",
                ".gpg-id",
                "README",
                "a/.gpg-id",
                "link.gpg"
            ]
        );
    }

    #[test]
    fn gopass_config_names_the_root_and_mounts() {
        let text = "# gopass\n[core]\n  autoclip = true\n  path = /not/a/mount\n\
                    [mounts]\n  path = /home/u/.local/share/gopass/stores/root\n\
                    [mounts \"work\"]\n\tpath = /home/u/stores/work\n\
                    [mounts \"team/ops\"]\n  path = \"/srv/ops store\"\n\
                    [age]\n  usekeychain = false\n";
        let (root, mounts) = gopass_mounts(text);
        assert_eq!(
            root.as_deref(),
            Some(Path::new("/home/u/.local/share/gopass/stores/root"))
        );
        assert_eq!(
            mounts,
            [
                ("work".to_string(), PathBuf::from("/home/u/stores/work")),
                ("team/ops".to_string(), PathBuf::from("/srv/ops store")),
            ]
        );
        assert_eq!(gopass_mounts("garbage [\n=\n[mounts\n"), (None, vec![]));
    }

    #[test]
    fn scan_refuses_bad_names_and_missing_stores() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".gpg"), "x").unwrap();
        let e = scan(dir.path(), "gpg").err().unwrap().to_string();
        assert!(e.contains("names may not be empty"), "{e}");
        let e = scan(&dir.path().join("nope"), "gpg")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot read the store"), "{e}");
    }
}
