//! Bounded reads of regular files: the loaders of models, fits, statistics, image lists and images
//! refuse folders, FIFOs and devices (which would hang or never end) and files larger than what they
//! can hold, before reading them.
use crate::error::{Error, Result};
use std::io::Read;
use std::path::Path;

/// What a path that is not a regular file is, for the message.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() || ft.is_block_device() {
            return "a device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, what: &str, kind: &str) -> Error {
    Error::io(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("the {what} is {kind}, not a regular file; give a file")),
    )
}

/// Opens `path` for reading when it is a regular file (following links), without blocking on a
/// FIFO; returns the file and its length. `what` names the file in errors ("fit file", "image").
pub fn open_regular(path: &Path, what: &str) -> Result<(std::fs::File, u64)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading would wait for a writer; with O_NONBLOCK it returns at once.
        opts.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = match opts.open(path) {
        Ok(f) => f,
        Err(e) => {
            // A folder (or a device the kernel refuses) fails to open: say what it is.
            if let Ok(meta) = std::fs::metadata(path) {
                if !meta.is_file() {
                    return Err(not_regular(path, what, kind_of(&meta.file_type())));
                }
            }
            return Err(Error::io(path, e));
        }
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, what, kind_of(&meta.file_type())));
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // Back to blocking reads (a regular file never blocks, but a later reader should not see EAGAIN).
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let fd = file.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
            }
        }
    }
    Ok((file, meta.len()))
}

/// The whole of a regular file of at most `max` bytes. A longer file is refused before any read
/// (and a file that grows while read stops at `max` + 1 bytes and is refused too).
pub fn read_regular(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, what)?;
    let too_big = |len: String| {
        Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the {what} is {len} bytes, more than the {max} bytes a {what} may have"),
            ),
        )
    };
    if len > max {
        return Err(too_big(len.to_string()));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(too_big(format!("more than {max}")));
    }
    Ok(bytes)
}

/// Reads up to `n` more bytes of `file` onto `buf` (fewer at the end of the file).
pub fn read_more(file: &mut std::fs::File, n: u64, buf: &mut Vec<u8>, path: &Path) -> Result<()> {
    file.take(n).read_to_end(buf).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Largest model file read whole (ONNX's protobuf limit is 2 GiB; larger models keep their
/// weights in external data files).
pub const MAX_MODEL_BYTES: u64 = 2 << 30;
/// Largest image file read whole.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;
/// Largest image list, label or other text file read whole.
pub const MAX_TEXT_BYTES: u64 = 64 << 20;
/// Largest statistics file read whole.
pub const MAX_STATS_BYTES: u64 = 16 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_folders_and_fifos_are_refused_by_kind() {
        let e = read_regular(Path::new("/dev/zero"), 100, "fit file").unwrap_err().to_string();
        assert!(e.contains("is a device"), "{e}");
        let e = read_regular(Path::new("/"), 100, "image").unwrap_err().to_string();
        assert!(e.contains("is a folder"), "{e}");
        let dir = std::env::temp_dir().join(format!("chip-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("f");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 100, "fit file").unwrap_err().to_string();
        assert!(e.contains("is a FIFO"), "{e}");
        let file = dir.join("x");
        std::fs::write(&file, [1u8; 10]).unwrap();
        assert_eq!(read_regular(&file, 10, "x").unwrap().len(), 10);
        let e = read_regular(&file, 9, "list").unwrap_err().to_string();
        assert!(e.contains("10 bytes, more than the 9 bytes"), "{e}");
        let e = read_regular(&dir.join("missing"), 9, "list").unwrap_err().to_string();
        assert!(e.contains("No such file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
