//! The atomic writer behind fit, statistics, PNG and .npy outputs, against a hostile folder:
//! links planted at every name it could choose and at the destination, and stale temporaries.
use chip::util::atomic::{write_atomic, write_atomic_with, TMP_MARK};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-atomic-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A folder `dir` to write into and a folder `outside` holding the files links point at.
fn setup(name: &str) -> (PathBuf, PathBuf) {
    let base = tmp(name);
    let (dir, outside) = (base.join("dir"), base.join("outside"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    (dir, outside)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn assert_outside_untouched(outside: &Path, victims: usize) {
    for i in 0..victims {
        let p = outside.join(format!("victim{i}"));
        assert_eq!(std::fs::read(&p).unwrap(), b"precious", "{} was written through a link", p.display());
    }
    assert_eq!(listing(outside).len(), victims, "a file was created outside the folder: {:?}", listing(outside));
}

/// Links at every name the writer can choose (the random part limited to 8 values here) and at
/// the destination: the write fails, and nothing outside the folder changes.
#[test]
fn links_at_every_temporary_name_are_never_followed() {
    let (dir, outside) = setup("every");
    let dest = dir.join("z.chip");
    let pid = std::process::id();
    for i in 0..8 {
        std::fs::write(outside.join(format!("victim{i}")), b"precious").unwrap();
        symlink(outside.join(format!("victim{i}")), dir.join(format!(".z.chip{TMP_MARK}{pid}-{i}"))).unwrap();
    }
    let n = std::cell::Cell::new(0u32);
    let mut names = || {
        n.set(n.get() + 1);
        (n.get() % 8).to_string()
    };
    let err = write_atomic_with(&dest, b"new contents", &mut names).unwrap_err().to_string();
    assert!(err.contains("z.chip") && err.contains("no free name"), "{err}");
    assert!(n.get() >= 8, "the writer gave up after {} names", n.get());
    assert_outside_untouched(&outside, 8);
    assert!(!dest.exists() && dest.symlink_metadata().is_err(), "destination created");

    // One name left free: the write succeeds through it, still without touching the links' targets.
    std::fs::remove_file(dir.join(format!(".z.chip{TMP_MARK}{pid}-5"))).unwrap();
    write_atomic_with(&dest, b"new contents", &mut names).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"new contents");
    assert_outside_untouched(&outside, 8);
    assert_eq!(listing(&dir).len(), 8, "a temporary was left: {:?}", listing(&dir));
}

/// The real name generator with links planted at the old predictable names (`.z.chip.tmp<pid>`
/// for this and nearby pids) and at the destination: the destination link is replaced by a
/// regular file, its target and every other target keep their contents.
#[test]
fn planted_links_and_destination_link_do_not_redirect_the_write() {
    let (dir, outside) = setup("planted");
    let dest = dir.join("z.chip");
    let pid = std::process::id();
    let mut victims = 0;
    for p in pid.saturating_sub(50)..pid + 50 {
        std::fs::write(outside.join(format!("victim{victims}")), b"precious").unwrap();
        symlink(outside.join(format!("victim{victims}")), dir.join(format!(".z.chip.tmp{p}"))).unwrap();
        victims += 1;
    }
    std::fs::write(outside.join(format!("victim{victims}")), b"precious").unwrap();
    symlink(outside.join(format!("victim{victims}")), &dest).unwrap();
    victims += 1;
    // A dangling link at the destination must not create its target either.
    let dangling = dir.join("y.png");
    symlink(outside.join("created-through-link"), &dangling).unwrap();

    write_atomic(&dest, b"fit bytes").unwrap();
    write_atomic(&dangling, b"png bytes").unwrap();
    for (p, want) in [(&dest, &b"fit bytes"[..]), (&dangling, &b"png bytes"[..])] {
        let meta = p.symlink_metadata().unwrap();
        assert!(meta.file_type().is_file(), "{} is still a link", p.display());
        assert_eq!(std::fs::read(p).unwrap(), want);
    }
    assert_outside_untouched(&outside, victims);
    assert!(listing(&dir).iter().all(|n| !n.contains(TMP_MARK)), "temporary left: {:?}", listing(&dir));
}

/// The written file gets the mode `File::create` would give (0666 minus the umask), not the
/// temporary's 0600.
#[test]
fn written_file_has_the_usual_mode() {
    let (dir, _) = setup("mode");
    let dest = dir.join("m.npy");
    write_atomic(&dest, b"x").unwrap();
    let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).map(|v| u32::from_str_radix(v.trim(), 8).unwrap()).unwrap();
    assert_eq!(mode, 0o666 & !umask, "mode {mode:o} with umask {umask:o}");
}

/// A failed rename (destination is a non-empty folder) removes the temporary.
#[test]
fn failure_leaves_no_temporary() {
    let (dir, _) = setup("fail");
    let dest = dir.join("busy");
    std::fs::create_dir_all(dest.join("inside")).unwrap();
    let err = write_atomic(&dest, b"x").unwrap_err().to_string();
    assert!(err.contains("busy"), "{err}");
    assert_eq!(listing(&dir), vec!["busy".to_string()]);
    // A missing folder fails cleanly too.
    let err = write_atomic(&dir.join("missing/z.chip"), b"x").unwrap_err().to_string();
    assert!(err.contains("missing/z.chip"), "{err}");
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

/// Temporaries left by a killed writer are removed by the next write of the same file: those of a
/// dead process, and those older than an hour whatever their pid; a live writer's fresh temporary,
/// other files' temporaries, links and look-alike names stay.
#[test]
fn stale_temporaries_are_removed_by_the_next_write() {
    let (dir, outside) = setup("stale");
    let (dead, me) = (dead_pid(), std::process::id());
    let file = |n: &str| {
        std::fs::write(dir.join(n), b"partial").unwrap();
        n.to_string()
    };
    let dead_tmp = file(&format!(".y.chip{TMP_MARK}{dead}-0123abcd"));
    let old_tmp = file(&format!(".y.chip{TMP_MARK}{me}-feedbeef"));
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options().write(true).open(dir.join(&old_tmp)).unwrap().set_modified(two_hours_ago).unwrap();
    let live_tmp = file(&format!(".y.chip{TMP_MARK}{me}-cafe"));
    let other_file = file(&format!(".x.chip{TMP_MARK}{dead}-0123"));
    let lookalike = file(&format!(".y.chip{TMP_MARK}{dead}-not-hex"));
    std::fs::write(outside.join("victim0"), b"precious").unwrap();
    let link = format!(".y.chip{TMP_MARK}{dead}-dd");
    symlink(outside.join("victim0"), dir.join(&link)).unwrap();

    write_atomic(&dir.join("y.chip"), b"complete").unwrap();
    let left = listing(&dir);
    assert!(!left.contains(&dead_tmp), "dead writer's temporary kept: {left:?}");
    assert!(!left.contains(&old_tmp), "old temporary kept: {left:?}");
    for keep in [&live_tmp, &other_file, &lookalike, &link, &"y.chip".to_string()] {
        assert!(left.contains(keep), "{keep} removed: {left:?}");
    }
    assert_outside_untouched(&outside, 1);
}
