//! Image decoding and preprocessing to NCHW float32 (the `image` crate).
use crate::error::Result;
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

/// A preprocessed image: 3×H×W floats and the original size.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    pub data: Vec<f32>,
    pub orig_width: u32,
    pub orig_height: u32,
}

impl Preprocess {
    pub fn load(&self, path: &Path) -> Result<Prepared> { todo!() }
    /// Encoded bytes (PNG, JPEG, BMP, TIFF, WebP). Grey, RGBA and 16-bit are converted to RGB8.
    pub fn decode(&self, bytes: &[u8]) -> Result<Prepared> { todo!() }
    pub fn from_rgb8(&self, img: &image::RgbImage) -> Result<Prepared> { todo!() }
}
