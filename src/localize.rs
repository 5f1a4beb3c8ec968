//! Weakly-supervised localization: threshold, largest 8-connected component, bounding box; IoU and
//! the evaluation protocol (GT-known and top-1 localization accuracy, mean IoU, pointing game).
use crate::error::Result;
use std::path::Path;

/// Inclusive pixel corners, x right, y down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BBox { pub x1: u32, pub y1: u32, pub x2: u32, pub y2: u32 }

pub const DEFAULT_THRESHOLD: f32 = 0.25;

/// Box of the largest 8-connected component of {map ≥ t·max}; None when the map is all ≤ 0 or has NaN.
pub fn localize(map: &[f32], width: usize, height: usize, threshold: f32) -> Option<BBox> { todo!() }

pub fn iou(a: &BBox, b: &BBox) -> f64 { todo!() }

/// Position of the map's maximum (x, y).
pub fn argmax(map: &[f32], width: usize) -> (u32, u32) { todo!() }

/// One ground-truth entry: `{"file","width","height","class","boxes":[[x1,y1,x2,y2],...]}` (extra keys ignored).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GtEntry {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub class: Option<usize>,
    pub boxes: Vec<[u32; 4]>,
}

pub fn load_gt(path: &Path) -> Result<Vec<GtEntry>> { todo!() }

/// One evaluated image: its map for the ground-truth class (original size), predicted top-1 class.
pub struct EvalItem<'a> {
    pub gt: &'a GtEntry,
    pub map: &'a [f32],
    pub top1: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocReport {
    pub images: usize,
    pub best_threshold: f32,
    pub gt_known_accuracy: f64,
    pub top1_accuracy: f64,
    pub mean_iou: f64,
    pub pointing_game: f64,
    /// Per image IoU (best over GT boxes) at the best threshold.
    pub ious: Vec<f64>,
}

/// Evaluates over a grid of thresholds and reports the one with the best GT-known accuracy.
pub fn evaluate(items: &[EvalItem], thresholds: &[f32]) -> LocReport { todo!() }
