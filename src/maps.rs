//! CHIP maps: map_c = max(0, Σ_k w_ck A_k), bilinear resizing, Refined CHIP.

/// Σ_k w_k A_k over a K×H×W activation (row-major), negative values clipped to 0.
pub fn class_map(w: &[f32], act: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> { todo!() }

/// Bilinear resize with half-pixel centres (align_corners = false), clamped at the borders.
pub fn resize_bilinear(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> { todo!() }

/// Refined CHIP: the point-wise product of two maps of the same size.
pub fn refine(a: &[f32], b: &[f32]) -> Vec<f32> { todo!() }
