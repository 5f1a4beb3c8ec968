//! Atomic file writes: a temporary in the same folder, then a rename; stale temporaries of dead
//! writers are cleaned up by the next write.
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Marks the temporaries of [`write_atomic`]: `.<name>.chiptmp-<pid>-<random hex>`.
pub const TMP_MARK: &str = ".chiptmp-";

/// A temporary of a write that died (kill -9, power loss) is removed by a later write of the same
/// file once its process is gone, or once it is this old whatever its pid says (pids are reused,
/// and a pid seen through a network file system may be another machine's).
pub const STALE_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename,
/// so a reader never sees a partial file and a failure leaves nothing behind.
///
/// The temporary is created exclusively, without following links, under an unpredictable name and
/// with mode 0600 until it gets the usual mode just before the rename; so a link planted in the
/// folder cannot redirect the write. A link at `path` itself is replaced, not followed.
pub fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, &mut random_hex)
}

/// [`write_atomic`] with the random part of the temporary's name drawn from `random`
/// (the tests use it to plant links at every name the writer could choose).
#[doc(hidden)]
pub fn write_atomic_with(path: &std::path::Path, bytes: &[u8], random: &mut dyn FnMut() -> String) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::invalid(format!("not a file path: {}", path.display())))?;
    let prefix = format!(".{}{TMP_MARK}", name.to_string_lossy());
    remove_stale_temporaries(&dir, &prefix);
    let (tmp, mut f) = create_temporary(&dir, &prefix, random).map_err(|e| Error::io(path, e))?;
    let result = (|| {
        f.write_all(bytes)?;
        set_default_mode(&f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Fails when [`write_atomic`] could not write `path` (missing or read-only folder, `path` a
/// folder), by creating and removing a temporary there; so long work can check its output first.
pub fn check_writable(path: &std::path::Path) -> Result<()> {
    let cannot = |e: std::io::Error| Error::io(path, std::io::Error::new(e.kind(), format!("cannot create the output file: {e}")));
    if path.is_dir() {
        return Err(cannot(std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder")));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::invalid(format!("not a file path: {}", path.display())))?;
    let prefix = format!(".{}{TMP_MARK}", name.to_string_lossy());
    let (tmp, f) = create_temporary(&dir, &prefix, &mut random_hex).map_err(cannot)?;
    drop(f);
    std::fs::remove_file(&tmp).map_err(cannot)
}

fn create_temporary(
    dir: &std::path::Path,
    prefix: &str,
    random: &mut dyn FnMut() -> String,
) -> std::io::Result<(PathBuf, std::fs::File)> {
    const TRIES: usize = 64;
    let pid = std::process::id();
    for _ in 0..TRIES {
        let tmp = dir.join(format!("{prefix}{pid}-{}", random()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        match opts.open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            // Taken (by a file or a planted link): draw another name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            #[cfg(unix)]
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        format!("no free name for a temporary file in {} after {TRIES} tries", dir.display()),
    ))
}

/// The mode `File::create` would have given (0666 minus the umask).
fn set_default_mode(f: &std::fs::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o666 & !umask()))?;
    }
    let _ = f;
    Ok(())
}

/// The umask, read without changing it (umask(2) can only set it, which races with other threads).
#[cfg(unix)]
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// 16 hex digits from the system's random source, or from the standard library's random hash keys.
fn random_hex() -> String {
    use std::io::Read;
    let mut b = [0u8; 8];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    let v = if ok {
        u64::from_le_bytes(b)
    } else {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.write_u32(std::process::id());
        h.finish()
    };
    format!("{v:016x}")
}

/// Removes `<prefix><pid>-<hex>` regular files left by dead writers (see [`STALE_TMP_AGE`]).
/// Best effort: a failure here never fails the write.
fn remove_stale_temporaries(dir: &std::path::Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = std::time::SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else { continue };
        let Some((pid, hex)) = rest.split_once('-') else { continue };
        let (Ok(pid), true) = (pid.parse::<u32>(), !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())) else {
            continue;
        };
        // symlink_metadata: a planted link is not ours and is left alone.
        let Ok(meta) = entry.path().symlink_metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        let age = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).unwrap_or_default();
        if age >= STALE_TMP_AGE || !process_alive(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else { return false };
        if p <= 0 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}
