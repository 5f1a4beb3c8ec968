//! A loaded classifier: its ONNX graph, sessions (plain, augmented, split), layers, labels and
//! preprocessing. `Model` is Send + Sync: one model serves many threads at once.
use crate::error::Result;
use crate::onnx::OnnxModel;
use crate::preprocess::Preprocess;
use crate::runtime::RuntimeOptions;
use std::path::Path;
use std::sync::Arc;

/// A candidate layer with its activation shape (from one probe run at batch 1).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub op_type: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Whether the output holds logits (softmax is applied for probabilities) or probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OutputKind { Logits, Probabilities }

/// Prefix and suffix sessions of a split. `crossing[0]` is the layer.
pub struct SplitRunner {
    pub prefix: crate::runtime::Runner,
    pub suffix: crate::runtime::Runner,
    pub crossing: Vec<String>,
    pub layer: LayerInfo,
}

pub struct Model {
    pub onnx: OnnxModel,
    /// SHA-256 (hex) of the model file's bytes.
    pub fingerprint: String,
    pub input: crate::onnx::ImageInput,
    pub output: String,
    pub classes: usize,
    pub output_kind: OutputKind,
    pub labels: Option<Vec<String>>,
    pub preprocess: Preprocess,
    pub options: RuntimeOptions,
    // private: plain runner, lazily probed layers, caches of split and augmented runners
    _private: (),
}

impl Model {
    /// Loads an ONNX file. A sidecar `<stem>.json` beside it (keys: input_size [h,w], mean, std in
    /// 0..255 units, labels = file name of a class-name list beside it, logits = bool) sets the
    /// preprocessing, labels and output kind; without it, ImageNet mean/std and detection of logits.
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<Model> { todo!() }
    pub fn from_bytes(bytes: Vec<u8>, options: &RuntimeOptions) -> Result<Model> { todo!() }
    /// All 4-D candidate layers in graph order (probed once, then cached).
    pub fn layers(&self) -> Result<Vec<LayerInfo>> { todo!() }
    pub fn layer(&self, name: &str) -> Result<LayerInfo> { todo!() }
    /// Class probabilities, batch×classes, for a batch of preprocessed images (batch×3×H×W).
    pub fn predict(&self, batch: &[f32], n: usize) -> Result<Vec<f32>> { todo!() }
    /// One run of the augmented model: probabilities (n×C) and each layer's activations (n×K×H×W).
    pub fn run_augmented(&self, batch: &[f32], n: usize, layers: &[&str]) -> Result<(Vec<f32>, Vec<Vec<f32>>)> { todo!() }
    /// The split at a layer (cached).
    pub fn split(&self, layer: &str) -> Result<Arc<SplitRunner>> { todo!() }
    /// Turns raw outputs (n×C) into probabilities according to `output_kind`.
    pub fn to_probabilities(&self, raw: &mut [f32]) { todo!() }
    pub fn input_size(&self) -> (usize, usize) { (self.preprocess.height, self.preprocess.width) }
}
