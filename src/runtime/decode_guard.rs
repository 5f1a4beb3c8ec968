//! Checks on encoded images before a decoder sees them: the memory the decoded pixels need, and
//! TIFF tags that claim more data than the file holds (the TIFF decoder prints a debug line on
//! stderr for those before it fails).
use crate::error::{Error, Result};
use image::ImageDecoder;

/// The most bytes the decoded pixels of one image may take, in the file's own colour type: an
/// 8-bit RGBA image at the largest accepted side (16384²·4 = 1 GiB). A 16-bit RGBA image of that
/// side (2 GiB, then 768 MiB more as RGB8) is refused before anything is allocated.
pub const MAX_DECODED_BYTES: u64 = 16384 * 16384 * 4;

fn image_err(what: &str, msg: String) -> Error {
    Error::Image { what: what.to_string(), msg }
}

/// Refuses an image whose decoded pixels (plus the RGB8 copy made from them) exceed
/// [`MAX_DECODED_BYTES`] or the memory available, from its header alone.
pub(crate) fn check_decoded_size<R: std::io::BufRead + std::io::Seek>(reader: image::ImageReader<R>, what: &str) -> Result<()> {
    let format = reader.format().map(|f| format!("{f:?}")).unwrap_or_default();
    let decoder = reader.into_decoder().map_err(|e| image_err(what, format!("corrupt or truncated {format} header: {e}")))?;
    let (w, h) = decoder.dimensions();
    let decoded = decoder.total_bytes();
    let need = decoded.saturating_add(w as u64 * h as u64 * 3);
    if decoded > MAX_DECODED_BYTES {
        return Err(image_err(
            what,
            format!(
                "{w}x{h} {:?} pixels would take {decoded} bytes decoded, more than the {MAX_DECODED_BYTES} bytes an image may take; \
                 use a smaller image or fewer bits per channel",
                decoder.color_type()
            ),
        ));
    }
    if let Some(avail) = crate::util::mem::available_memory() {
        if need > avail {
            return Err(image_err(
                what,
                format!("{w}x{h} pixels need {need} bytes to decode, more than the {avail} bytes of memory available"),
            ));
        }
    }
    Ok(())
}

/// Size in bytes of one value of a TIFF field type (unknown types count as 1).
fn tiff_type_size(t: u16) -> u64 {
    match t {
        3 | 8 => 2,
        4 | 9 | 11 | 13 => 4,
        5 | 10 | 12 | 16 | 17 | 18 => 8,
        _ => 1,
    }
}

/// Refuses a TIFF whose first directory has a tag with more data than the whole file. Anything
/// else (not a TIFF, offsets out of range) is left to the decoder.
pub(crate) fn check_tiff_tags(b: &[u8], what: &str) -> Result<()> {
    let le = match b.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return Ok(()),
    };
    let int = |at: usize, n: usize| -> Option<u64> {
        let s = b.get(at..at.checked_add(n)?)?;
        Some(if le { s.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64) } else { s.iter().fold(0u64, |a, &x| a << 8 | x as u64) })
    };
    let (ifd, count_len, entry_len, value_count_len) = match int(2, 2) {
        Some(42) => (int(4, 4), 2, 12, 4),
        Some(43) => (int(8, 8), 8, 20, 8),
        _ => return Ok(()),
    };
    let Some(ifd) = ifd.and_then(|v| usize::try_from(v).ok()) else { return Ok(()) };
    let Some(n) = int(ifd, count_len) else { return Ok(()) };
    for i in 0..n.min(4096) as usize {
        let e = ifd + count_len + entry_len * i;
        let (Some(tag), Some(t), Some(count)) = (int(e, 2), int(e + 2, 2), int(e + 4, value_count_len)) else { break };
        let bytes = count.saturating_mul(tiff_type_size(t as u16));
        if bytes > b.len() as u64 {
            return Err(image_err(
                what,
                format!("corrupt TIFF: tag {tag} declares {count} values ({bytes} bytes), more than the {} bytes of the file", b.len()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiff_tags_longer_than_the_file_are_refused() {
        // Little-endian TIFF, first directory at 8 with one ASCII tag (270) of 2^31 values.
        let mut t = b"II*\0\x08\0\0\0".to_vec();
        t.extend_from_slice(&1u16.to_le_bytes());
        t.extend_from_slice(&270u16.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&(1u32 << 31).to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        let e = check_tiff_tags(&t, "t.tif").unwrap_err().to_string();
        assert!(e.contains("tag 270 declares 2147483648 values"), "{e}");
        t[14..18].copy_from_slice(&4u32.to_le_bytes());
        assert!(check_tiff_tags(&t, "t.tif").is_ok());
        assert!(check_tiff_tags(b"\x89PNG", "p").is_ok());
    }
}
