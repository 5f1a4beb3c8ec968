//! Boxes: localizing a map, and intersection over union.
use super::boundary::*;
use super::status::chip_status;
use crate::math::localize::BBox;

/// A bounding box with inclusive pixel corners, x to the right, y down. No box (a map without a
/// positive value) is all four corners -1, everywhere in the API. Thread safety: a plain struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct chip_box {
    pub x1: i32,
    pub y1: i32,
    pub x2: i32,
    pub y2: i32,
}

/// The box that stands for no box.
const NO_BOX: chip_box = chip_box { x1: -1, y1: -1, x2: -1, y2: -1 };

impl From<Option<BBox>> for chip_box {
    fn from(b: Option<BBox>) -> Self {
        // Corners are below MAX_SIDE, so they fit an i32.
        b.map_or(NO_BOX, |b| chip_box { x1: b.x1 as i32, y1: b.y1 as i32, x2: b.x2 as i32, y2: b.y2 as i32 })
    }
}

/// A caller's box: None for no box; other negative corners or reversed ones are refused.
fn box_arg(b: &chip_box, name: &str) -> FfiResult<Option<BBox>> {
    if *b == NO_BOX {
        return Ok(None);
    }
    if b.x1 < 0 || b.y1 < 0 || b.x2 < b.x1 || b.y2 < b.y1 {
        return invalid(format!(
            "{name} is [{}, {}, {}, {}]: corners must be >= 0 with x1 <= x2 and y1 <= y2, or all -1 for no box",
            b.x1, b.y1, b.x2, b.y2
        ));
    }
    Ok(Some(BBox { x1: b.x1 as u32, y1: b.y1 as u32, x2: b.x2 as u32, y2: b.y2 as u32 }))
}

/// Box of the largest 8-connected region of {map >= threshold * max} of a map.
/// \param map A row-major height x width map.
/// \param width The map's width.
/// \param height The map's height.
/// \param threshold Relative to the map's maximum, in 0..1.
/// \param out Receives the box; no box (all corners -1) when the map has no positive value or holds NaN.
#[no_mangle]
pub unsafe extern "C" fn chip_localize(
    map: *const f32,
    width: usize,
    height: usize,
    threshold: f32,
    out: *mut chip_box,
) -> chip_status {
    guard(|| {
        let Some(len) = width.checked_mul(height) else {
            return invalid(format!("map size {width}×{height} is too large"));
        };
        if !(0.0..=1.0).contains(&threshold) {
            return invalid(format!("threshold {threshold} is not in 0..1"));
        }
        let data = slice_arg(map, len, "map")?;
        set(out, "out", crate::math::localize::localize(data, width, height, threshold).into())
    })
}

/// Intersection over union of two boxes (inclusive corners). No box (all corners -1) overlaps
/// nothing: its IoU with any box, no box included, is 0.
/// \param a, b The boxes; other negative corners, or x2 < x1 or y2 < y1, give
///        CHIP_STATUS_INVALID_ARGUMENT.
/// \param out Receives the IoU, in 0..1.
#[no_mangle]
pub unsafe extern "C" fn chip_iou(a: *const chip_box, b: *const chip_box, out: *mut f64) -> chip_status {
    guard(|| {
        let a = box_arg(deref(a, "a")?, "a")?;
        let b = box_arg(deref(b, "b")?, "b")?;
        let iou = match (a, b) {
            (Some(a), Some(b)) => crate::math::localize::iou(&a, &b),
            _ => 0.0,
        };
        set(out, "out", iou)
    })
}
