//! Image decoding and preprocessing to NCHW float32 (the `image` crate).
use crate::error::{Error, Result};
use image::imageops::FilterType;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    pub height: usize,
    pub width: usize,
    /// In 0..255 pixel units: x = (pixel − mean) / std. ImageNet defaults.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Centre-crop to the input's aspect ratio before resizing (default: stretch the whole image,
    /// so a map lines up with the whole picture).
    pub center_crop: bool,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            height: 224,
            width: 224,
            mean: [123.675, 116.28, 103.53],
            std: [58.395, 57.12, 57.375],
            center_crop: false,
        }
    }
}

/// Largest accepted image side; larger images fail with a clear message instead of exhausting memory.
pub const MAX_SIDE: u32 = 16384;

/// A size in pixels. Width comes first everywhere (C `chip_size`, the CLI's `WxH`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    /// (width, height) as usize, for indexing.
    pub const fn as_usize(self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    pub const fn pixels(self) -> usize {
        self.width as usize * self.height as usize
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A preprocessed image: 3×H×W floats at the model's input size and the original size.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub data: Vec<f32>,
    pub size: Size,
}

impl Preprocess {
    pub fn load(&self, path: &Path) -> Result<Prepared> {
        let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_IMAGE_BYTES, "image")?;
        self.decode_named(&bytes, &path.display().to_string())
    }

    /// Encoded bytes (PNG, JPEG, BMP, TIFF, WebP). Grey, RGBA and 16-bit are converted to RGB8.
    pub fn decode(&self, bytes: &[u8]) -> Result<Prepared> {
        self.decode_named(bytes, &format!("data ({} bytes)", bytes.len()))
    }

    /// `what` names the image in errors (its path, or the size of an in-memory buffer).
    fn decode_named(&self, bytes: &[u8], what: &str) -> Result<Prepared> {
        let img = decode_rgb8(bytes, what)?;
        self.prepare(&img, what)
    }

    pub fn from_rgb8(&self, img: &image::RgbImage) -> Result<Prepared> {
        self.prepare(img, "buffer")
    }

    fn prepare(&self, img: &image::RgbImage, what: &str) -> Result<Prepared> {
        self.validate()?;
        let (w, h) = img.dimensions();
        check_size(w, h, what)?;
        let (ow, oh) = (self.width as u32, self.height as u32);
        let resized = if self.center_crop {
            let (x, y, cw, ch) = center_crop_box(w, h, ow, oh);
            let view = image::imageops::crop_imm(img, x, y, cw, ch);
            image::imageops::resize(&*view, ow, oh, FilterType::Triangle)
        } else {
            image::imageops::resize(img, ow, oh, FilterType::Triangle)
        };
        let plane = self.height * self.width;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in resized.pixels().enumerate() {
            for c in 0..3 {
                data[c * plane + i] = (px[c] as f32 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Prepared { data, size: Size::new(w, h) })
    }

    /// Rejects settings that would give empty or non-finite inputs.
    pub fn validate(&self) -> Result<()> {
        if self.height == 0 || self.width == 0 || self.height > MAX_SIDE as usize || self.width > MAX_SIDE as usize {
            return Err(Error::invalid(format!(
                "preprocess input size {}x{} (height x width) must be within 1..={MAX_SIDE}",
                self.height, self.width
            )));
        }
        for c in 0..3 {
            if !self.mean[c].is_finite() || !self.std[c].is_finite() || self.std[c] <= 0.0 {
                return Err(Error::invalid(format!(
                    "preprocess mean {:?} / std {:?}: every mean must be finite and every std positive",
                    self.mean, self.std
                )));
            }
        }
        Ok(())
    }
}

fn check_size(w: u32, h: u32, what: &str) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(Error::Image { what: what.to_string(), msg: format!("empty image ({w}x{h})") });
    }
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::Image {
            what: what.to_string(),
            msg: format!("{w}x{h} is too large (largest accepted side: {MAX_SIDE})"),
        });
    }
    Ok(())
}

/// The largest centred box of the output's aspect ratio: (x, y, width, height).
fn center_crop_box(w: u32, h: u32, ow: u32, oh: u32) -> (u32, u32, u32, u32) {
    // Compare w/h with ow/oh without rounding: w*oh vs ow*h.
    let (wide, tall) = (w as u64 * oh as u64, ow as u64 * h as u64);
    if wide > tall {
        let cw = ((h as u64 * ow as u64 + oh as u64 / 2) / oh as u64).clamp(1, w as u64) as u32;
        ((w - cw) / 2, 0, cw, h)
    } else if wide < tall {
        let ch = ((w as u64 * oh as u64 + ow as u64 / 2) / ow as u64).clamp(1, h as u64) as u32;
        (0, (h - ch) / 2, w, ch)
    } else {
        (0, 0, w, h)
    }
}

fn image_err(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::Image { what: what.to_string(), msg: msg.to_string() }
}

/// Decodes any supported format to RGB8, checking the declared size before allocating pixels.
pub(crate) fn decode_rgb8(bytes: &[u8], what: &str) -> Result<image::RgbImage> {
    if bytes.is_empty() {
        return Err(image_err(what, "empty file"));
    }
    super::decode_guard::check_tiff_tags(bytes, what)?;
    let reader = || -> Result<image::ImageReader<std::io::Cursor<&[u8]>>> {
        let r = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| image_err(what, e))?;
        if r.format().is_none() {
            return Err(image_err(what, "unrecognised format (supported: PNG, JPEG, BMP, TIFF, WebP)"));
        }
        Ok(r)
    };
    let format = reader()?.format().map(|f| format!("{f:?}")).unwrap_or_default();
    let (w, h) = reader()?
        .into_dimensions()
        .map_err(|e| image_err(what, format!("corrupt or truncated {format} header: {e}")))?;
    check_size(w, h, what)?;
    super::decode_guard::check_decoded_size(reader()?, what)?;
    let mut r = reader()?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Room for the largest accepted image at 16 bits per channel with alpha.
    limits.max_alloc = Some(MAX_SIDE as u64 * MAX_SIDE as u64 * 8);
    r.limits(limits);
    let img = r.decode().map_err(|e| image_err(what, format!("cannot decode {format} data: {e}")))?;
    // The JPEG decoder fills a cut-off scan with grey instead of failing.
    if format == "Jpeg" && !jpeg_is_complete(bytes) {
        return Err(image_err(what, "truncated or corrupt Jpeg data: no end-of-image marker after the last scan"));
    }
    // The PNG decoder stops after the pixels; a file cut inside its last chunk still decodes.
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    if format == "Png" && !bytes.windows(IEND.len()).rev().any(|w| w == IEND) {
        return Err(image_err(what, "truncated Png data: no IEND chunk"));
    }
    Ok(img.to_rgb8())
}

/// Walks the JPEG's segments and entropy-coded scans: true when an end-of-image marker (FF D9)
/// follows them. Bytes after it (camera trailers, padding) are allowed.
pub fn jpeg_is_complete(b: &[u8]) -> bool {
    if b.len() < 4 || b[0] != 0xFF || b[1] != 0xD8 {
        return false;
    }
    let mut i = 2;
    loop {
        if i >= b.len() || b[i] != 0xFF {
            return false;
        }
        while i < b.len() && b[i] == 0xFF {
            i += 1; // fill bytes
        }
        let Some(&marker) = b.get(i) else { return false };
        i += 1;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => continue, // no length
            _ => {
                let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return false };
                if len < 2 || i + len > b.len() {
                    return false;
                }
                i += len;
                if marker == 0xDA {
                    // Entropy-coded data runs to the next marker other than a stuffed 00 or a restart.
                    loop {
                        let Some(p) = b[i..].iter().position(|&x| x == 0xFF) else { return false };
                        i += p;
                        match b.get(i + 1) {
                            None => return false,
                            Some(0x00 | 0xD0..=0xD7) => i += 2,
                            Some(_) => break,
                        }
                    }
                }
            }
        }
    }
}
