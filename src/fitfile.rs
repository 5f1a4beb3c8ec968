//! The importance file (`.chip`): a fitted layer's W with everything needed to check that it belongs
//! to a model and layer. Layout: magic `CHIPFIT\0`, u32 version, u32 header length, JSON header,
//! W as little-endian f32 (C×K), SHA-256 of everything before it. Written atomically.
use crate::admm::AdmmParams;
use crate::error::Result;
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"CHIPFIT\0";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitMeta {
    pub layer: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// SHA-256 (hex) of the model file the layer was fitted on.
    pub model_fingerprint: String,
    pub gates: usize,
    pub sigma2_rel: f64,
    pub seed: u64,
    pub images: usize,
    pub admm: AdmmParams,
    /// Classes that were solved (rows of the others are zero).
    pub solved_classes: Vec<usize>,
}

/// A fitted layer: W is C×K row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFit {
    pub meta: FitMeta,
    pub weights: Vec<f32>,
}

impl LayerFit {
    pub fn row(&self, class: usize) -> &[f32] { &self.weights[class * self.meta.channels..(class + 1) * self.meta.channels] }
    pub fn to_bytes(&self) -> Result<Vec<u8>> { todo!() }
    /// Each failure has its own message: bad magic, newer version (Error::FitVersion), truncated,
    /// checksum mismatch (altered), malformed header, size mismatch.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> { todo!() }
    pub fn save(&self, path: &Path) -> Result<()> { todo!() }
    pub fn load(path: &Path) -> Result<Self> { todo!() }
    /// Error::FitMismatch when the file was fitted on another model (fingerprint) or the layer is
    /// missing or has another shape in this model.
    pub fn check_against(&self, model: &crate::model::Model) -> Result<()> { todo!() }
}
