//! Image decoding (the `image` crate) and the pixel pipeline of a preprocessing spec: resample
//! (`fast_image_resize`, PIL-like filters with antialiasing or OpenCV-like fixed kernels), centre
//! crop, channel order, scale, mean and std, to NCHW float32.
use crate::error::{Error, Result};
use crate::runtime::spec::{ChannelOrder, Interpolation, ResizeMode};
use std::path::Path;

/// The pixel pipeline of a model, complete: every step of the preprocessing spec that changes the
/// floats (see [`crate::runtime::spec`]). Built by the model from its resolved spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    pub height: usize,
    pub width: usize,
    pub resize: ResizeMode,
    /// The share of the resized image the centre crop keeps (1: no crop). With [`ResizeMode::Stretch`]
    /// the image is stretched to input / crop_ratio first, with [`ResizeMode::Crop`] its shorter side.
    pub crop_ratio: f64,
    pub interpolation: Interpolation,
    /// Widen the filter when downscaling (PIL, torchvision); false: a fixed kernel (OpenCV).
    pub antialias: bool,
    pub channel_order: ChannelOrder,
    /// x = (pixel · scale − mean) / std, pixel in 0..255, per channel in the model's channel order.
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Default for Preprocess {
    /// 224×224, stretch, bilinear with antialiasing, RGB, ImageNet mean/std on 0–1 values.
    fn default() -> Self {
        Preprocess {
            height: 224,
            width: 224,
            resize: ResizeMode::Stretch,
            crop_ratio: 1.0,
            interpolation: Interpolation::Bilinear,
            antialias: true,
            channel_order: ChannelOrder::RGB,
            scale: 1.0 / 255.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
        }
    }
}

/// ImageNet mean and std on 0–1 values (RGB), the usual torchvision normalisation.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The part of the original image the model input shows, in original pixels (x, y of the top-left
/// corner, width, height; fractional where a resize does not divide evenly).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
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

/// A preprocessed image: 3×H×W floats (NCHW, the model's channel order) at the model's input size,
/// the original size, and the window of the original the input shows (None: all of it).
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub data: Vec<f32>,
    pub size: Size,
    pub window: Option<Window>,
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
        let (rw, rh) = match self.resize {
            // Stretched to input / crop_ratio (the classic Caffe 256×256 then 224 crop), or exactly.
            ResizeMode::Stretch => {
                let r = |v: u32| ((v as f64 / self.crop_ratio).round() as u32).max(v);
                (r(ow), r(oh))
            }
            ResizeMode::Crop => crop_resize_size(w, h, ow, oh, self.crop_ratio),
        };
        // The centre crop of the resized image (floor offsets, as PaddleClas and OpenCV pipelines;
        // torchvision rounds, which differs only where the margin is odd), resampled straight from
        // its window of the original: the same pixel centres and filter as resizing the whole image
        // and cropping, without the large intermediate image.
        let (x0, y0) = ((rw - ow) / 2, (rh - oh) / 2);
        let (sx, sy) = (w as f64 / rw as f64, h as f64 / rh as f64);
        let window = ((rw, rh) != (ow, oh))
            .then(|| Window { x: x0 as f64 * sx, y: y0 as f64 * sy, width: ow as f64 * sx, height: oh as f64 * sy });
        let resized = self.resample_window(img, window, ow, oh).map_err(|e| image_err(what, e))?;
        let plane = self.height * self.width;
        let mut data = vec![0f32; 3 * plane];
        let order: [usize; 3] = match self.channel_order {
            ChannelOrder::RGB => [0, 1, 2],
            ChannelOrder::BGR => [2, 1, 0],
        };
        for (i, px) in resized.chunks_exact(3).enumerate() {
            for (c, &from) in order.iter().enumerate() {
                data[c * plane + i] = (px[from] as f32 * self.scale - self.mean[c]) / self.std[c];
            }
        }
        Ok(Prepared { data, size: Size::new(w, h), window })
    }

    /// The RGB8 image resampled to `rw`×`rh` with this pipeline's filter (interleaved RGB bytes).
    pub fn resample(&self, img: &image::RgbImage, rw: u32, rh: u32) -> std::result::Result<Vec<u8>, String> {
        self.resample_window(img, None, rw, rh)
    }

    /// `window` of the RGB8 image (all of it for None) resampled to `rw`×`rh` with this pipeline's
    /// filter; the filter reads pixels outside the window where its support reaches them.
    pub fn resample_window(&self, img: &image::RgbImage, window: Option<Window>, rw: u32, rh: u32) -> std::result::Result<Vec<u8>, String> {
        use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
        let (w, h) = img.dimensions();
        if (w, h) == (rw, rh) && window.is_none() {
            return Ok(img.as_raw().clone());
        }
        let src = ImageRef::new(w, h, img.as_raw(), PixelType::U8x3).map_err(|e| e.to_string())?;
        let mut dst = Image::new(rw, rh, PixelType::U8x3);
        let alg = match (self.interpolation, self.antialias) {
            (Interpolation::Nearest, _) => ResizeAlg::Nearest,
            (Interpolation::Area, _) => ResizeAlg::Convolution(FilterType::Box),
            (Interpolation::Bilinear, true) => ResizeAlg::Convolution(FilterType::Bilinear),
            (Interpolation::Bilinear, false) => ResizeAlg::Interpolation(FilterType::Bilinear),
            (Interpolation::Bicubic, true) => ResizeAlg::Convolution(FilterType::CatmullRom),
            (Interpolation::Bicubic, false) => ResizeAlg::Interpolation(opencv_cubic()),
            (Interpolation::Lanczos, true) => ResizeAlg::Convolution(FilterType::Lanczos3),
            (Interpolation::Lanczos, false) => ResizeAlg::Interpolation(opencv_lanczos4()),
        };
        let mut options = ResizeOptions::new().resize_alg(alg);
        if let Some(v) = window {
            options = options.crop(v.x, v.y, v.width, v.height);
        }
        Resizer::new().resize(&src, &mut dst, &options).map_err(|e| e.to_string())?;
        Ok(dst.into_vec())
    }

    /// Rejects settings that would give empty or non-finite inputs.
    pub fn validate(&self) -> Result<()> {
        if self.height == 0 || self.width == 0 || self.height > MAX_SIDE as usize || self.width > MAX_SIDE as usize {
            return Err(Error::invalid(format!(
                "preprocess input size {}x{} (height x width) must be within 1..={MAX_SIDE}",
                self.height, self.width
            )));
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(Error::invalid(format!("preprocess scale {} must be a positive number", self.scale)));
        }
        if !(self.crop_ratio.is_finite() && self.crop_ratio > 0.0 && self.crop_ratio <= 1.0) {
            return Err(Error::invalid(format!("preprocess crop_ratio {} must be in (0, 1]", self.crop_ratio)));
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

/// The size the image is resized to before the centre crop of `ow`×`oh`: the side that limits the
/// crop goes to round(side / crop_ratio), the other keeps the aspect ratio (truncated, as
/// torchvision's `Resize(int)`), and neither is smaller than the crop.
pub fn crop_resize_size(w: u32, h: u32, ow: u32, oh: u32, crop_ratio: f64) -> (u32, u32) {
    // Width limits when ow/w ≥ oh/h.
    let (rw, rh) = if ow as u64 * h as u64 >= oh as u64 * w as u64 {
        let rw = (ow as f64 / crop_ratio).round() as u64;
        (rw, rw * h as u64 / w as u64)
    } else {
        let rh = (oh as f64 / crop_ratio).round() as u64;
        (rh * w as u64 / h as u64, rh)
    };
    let cap = |v: u64, min: u32| v.clamp(min as u64, (MAX_SIDE as u64 * 4).max(min as u64)) as u32;
    (cap(rw, ow), cap(rh, oh))
}

/// OpenCV's bicubic kernel (a = −0.75), for `cv2.resize(..., INTER_CUBIC)`.
fn opencv_cubic() -> fast_image_resize::FilterType {
    fn cubic(x: f64) -> f64 {
        let (a, x) = (-0.75, x.abs());
        if x < 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    }
    fast_image_resize::FilterType::Custom(fast_image_resize::Filter::new("opencv-cubic", cubic, 2.0).expect("finite support"))
}

/// OpenCV's 8-tap Lanczos kernel, for `cv2.resize(..., INTER_LANCZOS4)`.
fn opencv_lanczos4() -> fast_image_resize::FilterType {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            1.0
        } else {
            let x = x * std::f64::consts::PI;
            x.sin() / x
        }
    }
    fn lanczos4(x: f64) -> f64 {
        if (-4.0..4.0).contains(&x) { sinc(x) * sinc(x / 4.0) } else { 0.0 }
    }
    fast_image_resize::FilterType::Custom(fast_image_resize::Filter::new("opencv-lanczos4", lanczos4, 4.0).expect("finite support"))
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

fn image_err(what: &str, msg: impl std::fmt::Display) -> Error {
    Error::Image { what: what.to_string(), msg: msg.to_string() }
}

/// Decodes any supported format to RGB8, checking the declared size before allocating pixels.
pub fn decode_rgb8(bytes: &[u8], what: &str) -> Result<image::RgbImage> {
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
