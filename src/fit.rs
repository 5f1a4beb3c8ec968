//! The fit: gates, prefix once per image, suffix per (image, gate) batched over gates, sufficient
//! statistics, ADMM. Progress and cancellation through a callback.
use crate::admm::AdmmParams;
use crate::error::Result;
use crate::fitfile::LayerFit;
use crate::model::Model;
use crate::stats::Stats;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct FitParams {
    pub gates: usize,
    /// σ² relative to K.
    pub sigma2_rel: f64,
    pub seed: u64,
    /// Gates per suffix run.
    pub gate_batch: usize,
    /// Images per prefix run.
    pub image_batch: usize,
    pub admm: AdmmParams,
    /// Solve only these classes (all when None).
    pub classes: Option<Vec<usize>>,
}

impl Default for FitParams {
    fn default() -> Self {
        FitParams { gates: 256, sigma2_rel: 0.5, seed: 0, gate_batch: 64, image_batch: 8, admm: AdmmParams::default(), classes: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Images { done: usize, total: usize },
    SuffixRuns { done: usize, total: usize },
    Classes { done: usize, total: usize },
}

/// Returns false to cancel; the fit then ends with Error::Cancelled and writes nothing.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) -> bool + Sync);

pub fn no_progress(_: Progress) -> bool { true }

/// Images for a fit.
pub enum Images<'a> {
    /// Every image file in a folder (sorted by name), or a text file listing one path per line.
    Dir(PathBuf),
    Paths(Vec<PathBuf>),
    /// Preprocessed n×3×H×W floats.
    Tensor { data: &'a [f32], n: usize },
}

/// Sorted image files (jpg, jpeg, png, bmp, tif, tiff, webp) in a folder, or the lines of a list file.
pub fn list_images(path: &std::path::Path) -> Result<Vec<PathBuf>> { todo!() }

/// Gathers the statistics of one layer (shardable: merge the results of several calls).
pub fn collect_stats(model: &Model, layer: &str, images: &Images, params: &FitParams, progress: ProgressFn) -> Result<Stats> { todo!() }

/// Solves statistics into a fitted layer.
pub fn solve(model: &Model, layer: &str, stats: &Stats, params: &FitParams, progress: ProgressFn) -> Result<LayerFit> { todo!() }

/// collect_stats then solve.
pub fn fit_layer(model: &Model, layer: &str, images: &Images, params: &FitParams, progress: ProgressFn) -> Result<LayerFit> { todo!() }
