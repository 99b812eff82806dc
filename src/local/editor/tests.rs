use super::run::{editor_command, ignored, is_vim, resolve, HANDLED_SIGNALS, VIM_OPTIONS};
use super::workspace::sanitize_file_name;
use super::*;
use std::ffi::OsStr;
use std::fs::{self, Permissions};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::os::unix::fs::PermissionsExt;

/// A fake editor: a shell script the test writes, as Jujutsu's tests do.
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, Permissions::from_mode(0o755)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Run `body` as the editor on `initial`; check the base directory is left empty.
fn run(initial: &[u8], body: &str) -> (Result<Edited, EditError>, tempfile::TempDir) {
    let scripts = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let editor = script(scripts.path(), "editor", body);
    let result = edit_with(initial, "password", &editor, Some(base.path()));
    assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0, "left behind");
    (result, scripts)
}

fn changed(result: Result<Edited, EditError>) -> Vec<u8> {
    match result.unwrap().edit {
        Edit::Changed(content) => content.to_vec(),
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn appending_a_line_is_a_change() {
    let (result, _s) = run(b"hunter2\n", r#"echo more >> "$1""#);
    assert_eq!(changed(result), b"hunter2\nmore\n");
}

#[test]
fn doing_nothing_is_unchanged() {
    let (result, _s) = run(b"hunter2", "exit 0");
    let edited = result.unwrap();
    assert!(matches!(edited.edit, Edit::Unchanged));
    assert!(edited.warning.is_none());
}

#[test]
fn adding_only_a_final_newline_is_unchanged() {
    let (result, _s) = run(b"hunter2", r#"echo >> "$1""#);
    assert!(matches!(result.unwrap().edit, Edit::Unchanged));
    let (result, _s) = run(b"hunter2\n", r#"echo >> "$1""#);
    assert_eq!(changed(result), b"hunter2\n\n");
}

#[test]
fn truncating_or_blanking_is_emptied() {
    let (result, _s) = run(b"hunter2", r#": > "$1""#);
    assert!(matches!(result.unwrap().edit, Edit::Emptied));
    let (result, _s) = run(b"hunter2", r#"printf ' \n\t\n' > "$1""#);
    assert!(matches!(result.unwrap().edit, Edit::Emptied));
}

#[test]
fn saving_by_rename_is_read_back() {
    let body = r#"printf 'new value' > "$1.tmp" && mv "$1.tmp" "$1""#;
    let (result, _s) = run(b"old", body);
    assert_eq!(changed(result), b"new value");
}

#[test]
fn bytes_an_editor_writes_are_read_back_as_they_are() {
    let (result, _s) = run(b"text", r#"printf '\000\377' >> "$1""#);
    assert_eq!(changed(result), [b't', b'e', b'x', b't', 0, 255]);
}

#[test]
fn failing_editor_is_an_error_and_cleans_up() {
    let (result, _s) = run(b"hunter2", r#"echo changed > "$1"; exit 1"#);
    match result {
        Err(EditError::EditorFailed { status, .. }) => assert_eq!(status.code(), Some(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_editor_is_not_found() {
    let base = tempfile::tempdir().unwrap();
    let result = edit_with(b"x", "password", "/nonexistent/editor", Some(base.path()));
    assert!(
        matches!(result, Err(EditError::EditorNotFound { .. })),
        "{result:?}"
    );
    assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
}

#[test]
fn editor_command_with_arguments_works() {
    let scripts = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let editor = script(scripts.path(), "editor", r#"printf '%s' "$1" >> "$2""#);
    let result = edit_with(b"a", "x", &format!("{editor} --wait"), Some(base.path()));
    assert_eq!(changed(result), b"a--wait");
}

// GNU stat.
#[cfg(target_os = "linux")]
#[test]
fn private_file_modes_and_removal() {
    let scripts = tempfile::tempdir().unwrap();
    let side = scripts.path().join("side");
    let body = format!(
        r#"printf '%s\n' "$1" > '{side}'
stat -c %a "$1" >> '{side}'
stat -c %a "$(dirname "$1")" >> '{side}'
cat "$1" >> '{side}'
touch "$1~""#,
        side = side.display()
    );
    let editor = script(scripts.path(), "editor", &body);
    let base = tempfile::tempdir().unwrap();
    let result = edit_with(
        b"\nvalue",
        "db/../../pass\nword",
        &editor,
        Some(base.path()),
    );
    assert!(matches!(result.unwrap().edit, Edit::Unchanged));
    let side = fs::read_to_string(side).unwrap();
    let lines: Vec<&str> = side.lines().collect();
    let file = Path::new(lines[0]);
    assert_eq!(file.parent().unwrap().parent().unwrap(), base.path());
    assert_eq!(file.file_name().unwrap(), "db_.._.._pass_word");
    assert_eq!(&lines[1..], ["600", "700", "", "value"]);
    assert!(!file.exists());
    assert!(!file.parent().unwrap().exists());
}

#[test]
fn too_large_is_an_error() {
    let body = format!("head -c {} /dev/zero > \"$1\"", MAX_EDIT_BYTES + 1);
    let (result, _s) = run(b"x", &body);
    assert!(matches!(result, Err(EditError::TooLarge)), "{result:?}");
    let body = format!("head -c {} /dev/zero | tr '\\0' a > \"$1\"", MAX_EDIT_BYTES);
    let (result, _s) = run(b"x", &body);
    assert_eq!(changed(result).len(), MAX_EDIT_BYTES);
}

#[test]
fn replaced_by_a_symlink_or_removed_is_an_error() {
    let (result, _s) = run(b"x", r#"rm "$1" && ln -s /etc/passwd "$1""#);
    assert!(
        matches!(result, Err(EditError::ReadBack { .. })),
        "{result:?}"
    );
    let (result, _s) = run(b"x", r#"rm "$1""#);
    assert!(
        matches!(result, Err(EditError::ReadBack { .. })),
        "{result:?}"
    );
}

#[test]
fn unwritable_base_dir_is_an_error() {
    let base = tempfile::tempdir().unwrap();
    let missing = base.path().join("missing");
    let result = edit_with(b"x", "p", "true", Some(&missing));
    assert!(
        matches!(result, Err(EditError::PrivateDir { .. })),
        "{result:?}"
    );
}

#[test]
fn disk_fallback_warns() {
    let disk = tempfile::tempdir().unwrap();
    let not_a_dir = disk.path().join("file");
    fs::write(&not_a_dir, "").unwrap();
    let candidates = [PathBuf::from("/nonexistent/shm"), not_a_dir];
    let (workspace, warning) = Workspace::create_on_tmpfs(&candidates, disk.path(), "p").unwrap();
    assert!(workspace.file.starts_with(disk.path()));
    assert!(warning.unwrap().contains("persistent disk"));
    let tmpfs = tempfile::tempdir().unwrap();
    let candidates = [tmpfs.path().to_owned()];
    let (workspace, warning) = Workspace::create_on_tmpfs(&candidates, disk.path(), "p").unwrap();
    assert!(workspace.file.starts_with(tmpfs.path()));
    assert!(warning.is_none());
}

#[test]
fn workspace_is_wiped_on_drop() {
    let base = tempfile::tempdir().unwrap();
    let workspace = Workspace::create(base.path(), "p").unwrap();
    workspace.write(b"secret").unwrap();
    // Keep a second name for the file so its content can be checked after.
    let other = base.path().join("other-name");
    fs::hard_link(&workspace.file, &other).unwrap();
    // With two links the file is skipped, as a hard link out must not be zeroed.
    drop(workspace);
    assert_eq!(fs::read(&other).unwrap(), b"secret");
    let workspace = Workspace::create(base.path(), "p").unwrap();
    workspace.write(b"secret").unwrap();
    let file = fs::File::open(&workspace.file).unwrap();
    drop(workspace);
    let mut content = Vec::new();
    (&file).read_to_end(&mut content).unwrap();
    assert_eq!(content, [0; 6]);
}

fn dispositions() -> Vec<libc::sighandler_t> {
    HANDLED_SIGNALS
        .iter()
        .map(|&signal| unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(signal, std::ptr::null(), &mut current);
            current.sa_sigaction
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_reaches_only_the_editor_and_dispositions_come_back() {
    let before = {
        let _lock = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        dispositions()
    };
    let scripts = tempfile::tempdir().unwrap();
    let side = scripts.path().join("side");
    // SIGINT to sesto while the editor runs: passed on, or the test binary
    // dies. The editor itself must not inherit sesto's dispositions.
    let body = format!(
        "trap '' INT; kill -INT {pid}; kill -QUIT {pid}\n\
             grep SigIgn /proc/$$/status > '{side}'\necho x >> \"$1\"",
        pid = std::process::id(),
        side = side.display()
    );
    let editor = script(scripts.path(), "editor", &body);
    let base = tempfile::tempdir().unwrap();
    let result = edit_with(b"v", "p", &editor, Some(base.path()));
    assert_eq!(changed(result), b"vx");
    let side = fs::read_to_string(side).unwrap();
    let mask = u64::from_str_radix(side.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    for signal in [libc::SIGQUIT, libc::SIGHUP, libc::SIGTERM] {
        let ignored_before =
            before[HANDLED_SIGNALS.iter().position(|&s| s == signal).unwrap()] == libc::SIG_IGN;
        assert_eq!(
            mask & (1 << (signal - 1)) != 0,
            ignored_before,
            "signal {signal}"
        );
    }
    let _lock = EDIT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    assert_eq!(dispositions(), before);
}

/// issue 11 case 6: SIGTERM to sesto reaches the editor, and the edit ends
/// with nothing saved and nothing left (`run` checks the directory).
#[cfg(target_os = "linux")]
#[test]
fn sigterm_and_sighup_stop_the_editor_and_leave_nothing() {
    for (signal, number) in [("TERM", libc::SIGTERM), ("HUP", libc::SIGHUP)] {
        if ignored(number) {
            // Run under `nohup` (or with SIGTERM ignored): the signal
            // stays ignored, and the edit ends as the editor does.
            let body = format!(
                "echo changed > \"$1\"; kill -{signal} {pid}; sleep 1; echo late >> \"$1\"",
                pid = std::process::id()
            );
            let (result, _s) = run(b"v", &body);
            // The editor finished; its final newline goes, as the value had none.
            assert_eq!(changed(result), b"changed\nlate", "SIG{signal} ignored");
            continue;
        }
        let body = format!(
            "echo changed > \"$1\"; kill -{signal} {pid}; sleep 30; echo late >> \"$1\"",
            pid = std::process::id()
        );
        let started = std::time::Instant::now();
        let (result, _s) = run(b"v", &body);
        match result {
            Err(EditError::Interrupted { signal: name }) => {
                assert_eq!(name, format!("SIG{signal}"))
            }
            other => panic!("SIG{signal}: expected an interrupted edit, got {other:?}"),
        }
        // The editor was stopped, not waited out.
        assert!(started.elapsed() < std::time::Duration::from_secs(25));
    }
}

/// issue 11 case 6: edit directories whose sesto is gone are removed;
/// a live one's (this process) and a recent one without a pid are kept.
#[test]
fn stale_edit_directories_are_removed_at_start() {
    let base = tempfile::tempdir().unwrap();
    let dir = |name: &str| {
        let d = base.path().join(name);
        fs::create_dir(&d).unwrap();
        fs::write(d.join("password"), b"left behind").unwrap();
        d
    };
    // pid_max is at most 2^22: this pid cannot exist.
    let gone = dir("sesto-edit-4194305-abc123");
    let live = dir(&format!("sesto-edit-{}-abc123", std::process::id()));
    let legacy = dir("sesto-edit-Ab12Cd");
    let other = dir("not-sesto-4194305-x");
    let scripts = tempfile::tempdir().unwrap();
    let editor = script(scripts.path(), "editor", "true");
    edit_with(b"v", "p", &editor, Some(base.path())).unwrap();
    assert!(!gone.exists());
    assert!(live.exists() && legacy.exists() && other.exists());
}

/// issue 11 case 7: a value without a final newline keeps having none,
/// and a binary value is refused before any editor runs.
#[test]
fn values_keep_their_bytes() {
    let (result, _s) = run(b"bob-pw", r#"printf 'bob-pw-x\n' > "$1""#);
    assert_eq!(changed(result), b"bob-pw-x");
    let (result, _s) = run(b"bob-pw", r#"printf 'bob-pw\n\n' > "$1""#);
    assert_eq!(changed(result), b"bob-pw\n\n");
    let (result, _s) = run(b"a\nb\n", r#"printf 'a\nc\n' > "$1""#);
    assert_eq!(changed(result), b"a\nc\n");
    let scripts = tempfile::tempdir().unwrap();
    let marker = scripts.path().join("ran");
    let editor = script(
        scripts.path(),
        "editor",
        &format!("touch '{}'", marker.display()),
    );
    for binary in [&b"\xff\xfe"[..], b"a\0b"] {
        let base = tempfile::tempdir().unwrap();
        let result = edit_with(binary, "p", &editor, Some(base.path()));
        assert!(matches!(result, Err(EditError::Binary)), "{result:?}");
    }
    assert!(!marker.exists(), "the editor ran on a binary value");
}

#[test]
fn choose_editor_order() {
    let s = |v: &str| Some(OsString::from(v));
    assert_eq!(choose_editor(s("code -w"), s("nano"), false), "code -w");
    assert_eq!(choose_editor(s("code -w"), s("nano"), true), "nano");
    assert_eq!(choose_editor(s(" "), s("nano"), false), "nano");
    assert_eq!(choose_editor(None, s(""), false), "vi");
    assert_eq!(choose_editor(None, None, false), "vi");
}

#[test]
fn sanitized_names_are_one_safe_component() {
    assert_eq!(sanitize_file_name("password"), "password");
    assert_eq!(sanitize_file_name("config.yaml"), "config.yaml");
    assert_eq!(sanitize_file_name("mot de passé"), "mot_de_passé");
    for (hostile, want) in [
        ("", "secret"),
        (".", "secret"),
        ("..", "secret"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("/etc/passwd", "_etc_passwd"),
        ("a\0b\nc\u{1b}[31m", "a_b_c__31m"),
        ("\u{202e}gpj.exe", "_gpj.exe"),
        ("-rf", "-rf"),
    ] {
        assert_eq!(sanitize_file_name(hostile), want, "{hostile:?}");
    }
    let long = format!("{}.yaml", "é".repeat(100));
    let name = sanitize_file_name(&long);
    assert!(
        name.len() <= MAX_FILE_NAME && name.ends_with(".yaml"),
        "{name}"
    );
    let name = sanitize_file_name(&"x".repeat(1000));
    assert_eq!(name.len(), MAX_FILE_NAME);
    let name = sanitize_file_name(&format!("a.{}", "b".repeat(100)));
    assert_eq!(name.len(), MAX_FILE_NAME);
}

#[test]
fn vim_detection() {
    let bin = tempfile::tempdir().unwrap();
    let path = bin.path().as_os_str();
    assert!(is_vim("vim", None));
    assert!(is_vim("/usr/local/bin/nvim -p", None));
    assert!(is_vim("'/opt/x y/gvim'", None));
    assert!(!is_vim("code --wait", None));
    assert!(!is_vim("nano", None));
    assert!(!is_vim("vimish", None));
    assert!(!is_vim("", None));
    assert!(!is_vim("vi", None));
    // vi counts only when it resolves to vim.
    fs::write(bin.path().join("vim.basic"), "").unwrap();
    fs::write(bin.path().join("busybox"), "").unwrap();
    symlink(bin.path().join("vim.basic"), bin.path().join("vi")).unwrap();
    symlink(bin.path().join("busybox"), bin.path().join("view")).unwrap();
    assert!(is_vim("vi", Some(path)));
    assert!(!is_vim("view", Some(path)));
    assert!(!is_vim("vi", Some(OsStr::new("/nonexistent"))));
}

#[test]
fn vim_gets_its_options_before_the_file() {
    let file = Path::new("/dev/shm/x/password");
    let args = |editor: &str| -> Vec<String> {
        editor_command(editor, file, None)
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    };
    let mut want = vec!["-c".to_owned(), "exec vim \"$@\"".into(), "vim".into()];
    want.extend(VIM_OPTIONS.iter().map(|s| s.to_string()));
    want.push(file.display().to_string());
    assert_eq!(args("vim"), want);
    assert_eq!(args("gvim")[3], "-f");
    assert_eq!(
        args("code --wait"),
        [
            "-c",
            "exec code --wait \"$@\"",
            "code --wait",
            "/dev/shm/x/password"
        ]
    );
}

/// The real vim and neovim accept the options, and leave no swap, backup, undo
/// or viminfo/shada file even when a vimrc asks for all of them.
#[test]
fn real_vim_and_neovim() {
    for (program, flags) in [("vim", "-es"), ("nvim", "--headless")] {
        let Some(real) = resolve(program, std::env::var_os("PATH").as_deref()) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{program} is required under CI (install it in .ci/run)"
            );
            eprintln!("skipping {program}: not installed (apt-get install vim neovim)");
            continue;
        };
        let home = tempfile::tempdir().unwrap();
        let h = home.path().display();
        fs::write(
            home.path().join("rc"),
            format!(
                "set nocompatible viminfo='100,<50 viminfofile={h}/info swapfile \
                     directory={h} backup backupdir={h} undofile undodir={h}\n"
            ),
        )
        .unwrap();
        let scripts = tempfile::tempdir().unwrap();
        // Named like the real thing so that it gets vim's options.
        let body = format!(
            "export HOME='{h}' XDG_STATE_HOME='{h}/state' XDG_DATA_HOME='{h}/data'\n\
                 exec '{real}' -u '{h}/rc' {flags} \"$@\" \
                 -c 'normal! Goadded' -c 'let @a=\"yank\"' -c 'silent wq'",
            real = real.display()
        );
        let editor = script(scripts.path(), program, &body);
        let base = tempfile::tempdir().unwrap();
        let result = edit_with(b"first\n", "p.txt", &editor, Some(base.path()));
        assert_eq!(changed(result), b"first\nadded\n", "{program}");
        let leftovers: Vec<PathBuf> = walk(home.path())
            .into_iter()
            .filter(|p| {
                p.is_file() && !p.ends_with("rc") && !p.starts_with(home.path().join(".cache"))
            })
            .collect();
        assert!(leftovers.is_empty(), "{program}: {leftovers:?}");
        assert_eq!(fs::read_dir(base.path()).unwrap().count(), 0);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn debug_hides_content() {
    let edited = Edited {
        edit: Edit::Changed(Zeroizing::new(b"hunter2".to_vec())),
        warning: None,
    };
    assert!(!format!("{edited:?}").contains("hunter2"));
    assert!(!format!("{edited:?}").contains("104"));
}
