//! Explanations: one run of the augmented model gives the predictions and every fitted layer's
//! activations; maps per requested class and layer, Refined CHIP, boxes.
use crate::error::Result;
use crate::fitfile::LayerFit;
use crate::localize::BBox;
use crate::model::Model;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum ClassSelect {
    /// The k most probable classes (default k = 1).
    Top(usize),
    Ids(Vec<usize>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExplainOptions {
    pub classes: ClassSelect,
    /// Also compute Refined CHIP (first × last fitted layer).
    pub refined: bool,
    /// Localization threshold relative to the map's max.
    pub threshold: f32,
    /// Also give maps at the original image size (else at the model's input size).
    pub original_size: bool,
}

impl Default for ExplainOptions {
    fn default() -> Self { ExplainOptions { classes: ClassSelect::Top(1), refined: false, threshold: crate::localize::DEFAULT_THRESHOLD, original_size: true } }
}

/// A map with its size and box.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
    pub bbox: Option<BBox>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassExplanation {
    pub class: usize,
    pub probability: f32,
    /// One map per fitted layer, in the explainer's layer order.
    pub maps: Vec<Map>,
    pub refined: Option<Map>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageExplanation {
    pub probabilities: Vec<f32>,
    /// Classes by decreasing probability (at most 5).
    pub top: Vec<(usize, f32)>,
    pub classes: Vec<ClassExplanation>,
    pub orig_width: u32,
    pub orig_height: u32,
}

/// A model with fitted layers. Send + Sync; `explain` may be called from many threads at once.
pub struct Explainer {
    pub model: Arc<Model>,
    pub fits: Vec<LayerFit>,
}

impl Explainer {
    /// Checks each fit against the model (fingerprint, layer, shape).
    pub fn new(model: Arc<Model>, fits: Vec<LayerFit>) -> Result<Self> { todo!() }
    pub fn layer_names(&self) -> Vec<&str> { self.fits.iter().map(|f| f.meta.layer.as_str()).collect() }
    /// A batch of preprocessed images (n×3×H×W) with their original sizes.
    pub fn explain(&self, batch: &[f32], sizes: &[(u32, u32)], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> { todo!() }
    pub fn explain_files(&self, paths: &[std::path::PathBuf], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> { todo!() }
    pub fn explain_encoded(&self, images: &[&[u8]], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> { todo!() }
}
