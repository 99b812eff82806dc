use super::*;

#[test]
fn a_refused_temp_takes_its_written_siblings_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let nodes = work.join(".sesto/nodes");
    fs::create_dir_all(nodes.join("aa")).unwrap();
    fs::create_dir(work.join("outside")).unwrap();
    std::os::unix::fs::symlink(work.join("outside"), nodes.join("bb")).unwrap();
    let files = vec![
        (nodes.join("aa/first.age"), b"one".to_vec()),
        (nodes.join("bb/second.age"), b"two".to_vec()),
    ];
    let err = write_temps(&work.join("state"), work, &files).unwrap_err();
    assert!(
        err.to_string().contains("symlinks are not allowed"),
        "{err}"
    );
    assert_eq!(fs::read_dir(nodes.join("aa")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(work.join("outside")).unwrap().count(), 0);
    assert!(!work.join("state").join(TEMP_LIST).exists());
}

#[test]
fn a_symlink_at_any_level_below_sesto_is_refused_before_anything_is_made_through_it() {
    // `nodes/` itself, and a middle level of format version 2's shards.
    for (planted, target) in [
        ("nodes", ".sesto/nodes/ab/x.age"),
        ("nodes/3", ".sesto/nodes/3/f/2/a/x.age"),
        ("nodes/3/f/2", ".sesto/nodes/3/f/2/a/x.age"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path();
        let outside = work.join("outside");
        fs::create_dir(&outside).unwrap();
        let link = work.join(".sesto").join(planted);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let files = vec![(work.join(target), b"one".to_vec())];
        let err = write_temps(&work.join("state"), work, &files).unwrap_err();
        assert!(
            err.to_string().contains("symlinks are not allowed"),
            "{planted}: {err}"
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "{planted}: something was made through the symlink"
        );
        assert!(prepare_dirs([work.join(target).as_path()]).is_err());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{planted}");
    }
    // Where nothing is planted, every level is made.
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join(".sesto/nodes/3/f/2/a/x.age");
    fs::create_dir(dir.path().join(".sesto")).unwrap();
    prepare_dirs([target.as_path()]).unwrap();
    assert!(target.parent().unwrap().is_dir());
}

/// Records `ops`, reads them back unchanged, and applies them twice:
/// replaying a journal is harmless.
fn record_read_and_apply_twice(work: &Path, ops: &[Op]) {
    let journal = Journal::at(&work.join("state"));
    fs::create_dir_all(work.join("state")).unwrap();
    journal.record(ops).unwrap();
    assert_eq!(journal.read().unwrap(), ops);
    Journal::apply(work, ops).unwrap();
    Journal::apply(work, ops).unwrap();
}

#[test]
fn journal_round_trip_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    fs::create_dir_all(work.join(".sesto/nodes/ab")).unwrap();
    let target = work.join(".sesto/nodes/ab/x.age");
    let tmp = write_temp(&target, b"new").unwrap();
    fs::write(work.join(".sesto/nodes/ab/old.age"), b"old").unwrap();
    let rel = |p: &Path| p.strip_prefix(work).unwrap().to_string_lossy().into_owned();
    let ops = vec![
        Op::Rename {
            from: rel(&tmp),
            to: rel(&target),
        },
        Op::Remove(".sesto/nodes/ab/old.age".into()),
    ];
    record_read_and_apply_twice(work, &ops);
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert!(!work.join(".sesto/nodes/ab/old.age").exists());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn in_place_writes_round_trip_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let nodes = work.join(".sesto/nodes");
    fs::create_dir_all(nodes.join("ab")).unwrap();
    fs::write(nodes.join("ab/x.age"), b"old content, longer than the new").unwrap();
    // Bytes that look like journal lines must stay data.
    let tricky = b"\nend\nwrite\t.sesto/evil\t3\nabc\n\0\xff".to_vec();
    let ops = vec![
        Op::Write {
            path: ".sesto/nodes/ab/x.age".into(),
            bytes: tricky.clone(),
        },
        Op::Write {
            path: ".sesto/nodes/cd/new.age".into(),
            bytes: Vec::new(),
        },
        Op::Remove(".sesto/nodes/ab/gone.age".into()),
    ];
    record_read_and_apply_twice(work, &ops);
    assert_eq!(fs::read(nodes.join("ab/x.age")).unwrap(), tricky);
    assert_eq!(fs::read(nodes.join("cd/new.age")).unwrap(), b"");
    assert!(!work.join(".sesto/evil").exists());
}

#[test]
fn in_place_writes_never_go_through_links_or_special_files() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let shard = dir.path().join("aa");
    fs::create_dir(&shard).unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, b"keep me").unwrap();
    let through_symlink = shard.join("symlink.age");
    std::os::unix::fs::symlink(&outside, &through_symlink).unwrap();
    let through_hardlink = shard.join("hardlink.age");
    fs::hard_link(&outside, &through_hardlink).unwrap();
    let fifo = shard.join("fifo.age");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let loose = shard.join("loose.age");
    fs::write(&loose, b"old").unwrap();
    fs::set_permissions(&loose, fs::Permissions::from_mode(0o644)).unwrap();

    let short = shard.join("short.age");
    fs::write(&short, b"x").unwrap();

    for path in [&through_symlink, &through_hardlink, &fifo, &loose, &short] {
        write_in_place(path, b"new", false).unwrap();
        let meta = fs::symlink_metadata(path).unwrap();
        assert!(meta.is_file(), "{}", path.display());
        assert_eq!(meta.nlink(), 1, "{}", path.display());
        assert_eq!(meta.mode() & 0o7777, 0o600, "{}", path.display());
        assert_eq!(fs::read(path).unwrap(), b"new");
    }
    assert_eq!(fs::read(&outside).unwrap(), b"keep me");
}

#[test]
fn hostile_journals_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::at(dir.path());
    for text in [
        "",
        "sesto-journal-v1\nrename\ta\tb\n",
        "sesto-journal-v1\nremove\t../../etc/passwd\nend\n",
        "sesto-journal-v1\nrename\t.sesto/x\t.sesto/../../y\nend\n",
        "sesto-journal-v1\nexplode\nend\n",
        // A write whose length runs past the data, or stops short of it.
        "sesto-journal-v1\nwrite\t.sesto/x\t99\nabc\nend\n",
        "sesto-journal-v1\nwrite\t.sesto/x\t2\nabc\nend\n",
        "sesto-journal-v1\nwrite\t.sesto/x\t-1\nabc\nend\n",
        "sesto-journal-v1\nwrite\t.sesto/x\t18446744073709551615\nabc\nend\n",
        "sesto-journal-v1\nwrite\t.sesto/../x\t3\nabc\nend\n",
        "sesto-journal-v1\nend\nremove\t.sesto/x\nend\n",
    ] {
        fs::write(dir.path().join("journal"), text).unwrap();
        assert!(journal.read().is_err(), "{text:?}");
    }
}
