//! Boxes: localizing a map, and intersection over union.
use super::boundary::*;
use super::status::chip_status;
use crate::localize::BBox;
use std::ffi::c_int;

/// A bounding box with inclusive pixel corners, x to the right, y down. Thread safety: a plain struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct chip_box {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

pub(super) unsafe fn write_box(b: Option<BBox>, out_box: *mut chip_box, out_found: *mut c_int) -> FfiResult {
    let ob = deref_mut(out_box, "out_box")?;
    let of = deref_mut(out_found, "out_found")?;
    *of = c_int::from(b.is_some());
    *ob = b.map_or_else(chip_box::default, |b| chip_box { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 });
    Ok(())
}

/// Box of the largest 8-connected region of {map >= threshold * max} of a map.
/// \param map A row-major height x width map.
/// \param width The map's width.
/// \param height The map's height.
/// \param threshold Relative to the map's maximum, in 0..1.
/// \param out_box Receives the box.
/// \param out_found Receives 1, or 0 (and the box zeroed) when the map has no positive value or holds NaN.
#[no_mangle]
pub unsafe extern "C" fn chip_localize(
    map: *const f32,
    width: usize,
    height: usize,
    threshold: f32,
    out_box: *mut chip_box,
    out_found: *mut c_int,
) -> chip_status {
    guard(|| {
        let Some(len) = width.checked_mul(height) else {
            return invalid(format!("map size {width}×{height} is too large"));
        };
        if !(0.0..=1.0).contains(&threshold) {
            return invalid(format!("threshold {threshold} is not in 0..1"));
        }
        let data = slice_arg(map, len, "map")?;
        write_box(crate::localize::localize(data, width, height, threshold), out_box, out_found)
    })
}

/// Intersection over union of two boxes (inclusive corners).
/// \param a, b The boxes.
/// \param out Receives the IoU, in 0..1.
#[no_mangle]
pub unsafe extern "C" fn chip_iou(a: *const chip_box, b: *const chip_box, out: *mut f64) -> chip_status {
    guard(|| {
        let conv = |b: &chip_box| BBox { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 };
        let (a, b) = (conv(deref(a, "a")?), conv(deref(b, "b")?));
        set(out, "out", crate::localize::iou(&a, &b))
    })
}
