//! CHIP maps: map_c = max(0, Σ_k w_ck A_k), bilinear resizing, Refined CHIP.

/// Σ_k w_k A_k over a K×H×W activation (row-major), negative values clipped to 0.
///
/// # Panics
/// When `w` has not `channels` values or `act` not channels·height·width (the caller's shapes).
pub fn class_map(w: &[f32], act: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
    let hw = height * width;
    assert!(w.len() == channels && act.len() == channels * hw, "class_map: shapes do not match");
    // Accumulate in f64 so that long channel sums of mixed signs do not lose the small positive part.
    let mut acc = vec![0.0f64; hw];
    for (k, &wk) in w.iter().enumerate() {
        if wk == 0.0 {
            continue;
        }
        let wk = wk as f64;
        for (a, &v) in acc.iter_mut().zip(&act[k * hw..(k + 1) * hw]) {
            *a += wk * v as f64;
        }
    }
    // `max` returns the other operand for NaN, so a NaN pixel becomes 0.
    acc.into_iter().map(|v| (v as f32).max(0.0)).collect()
}

/// Source coordinate of destination index `i` under half-pixel centres, with PyTorch's clamping.
fn src_index(i: usize, scale: f64, len: usize) -> (usize, usize, f32) {
    let s = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
    let i0 = (s.floor() as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, (s - i0 as f64).clamp(0.0, 1.0) as f32)
}

/// Bilinear resize with half-pixel centres (align_corners = false), clamped at the borders
/// (as PyTorch's `interpolate(mode="bilinear")` and OpenCV's `INTER_LINEAR`, without antialiasing).
/// An empty source gives zeros.
pub fn resize_bilinear(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
    assert_eq!(src.len(), sh * sw, "resize_bilinear: source size does not match");
    if sh == 0 || sw == 0 {
        return vec![0.0; dh * dw];
    }
    if sh == dh && sw == dw {
        return src.to_vec();
    }
    let (sy, sx) = (sh as f64 / dh as f64, sw as f64 / dw as f64);
    let cols: Vec<(usize, usize, f32)> = (0..dw).map(|x| src_index(x, sx, sw)).collect();
    // Separable: each source row is interpolated along x once (held in `a`, `b` while destination
    // rows use it), then destination rows blend two of them. Same arithmetic as per pixel, so the
    // values are identical; an upsampling uses each source row for several destination rows.
    let along_x = |r: usize, buf: &mut Vec<f32>| {
        let row = &src[r * sw..(r + 1) * sw];
        buf.clear();
        buf.extend(cols.iter().map(|&(x0, x1, lx)| row[x0] + lx * (row[x1] - row[x0])));
    };
    let (mut a, mut b) = (Vec::with_capacity(dw), Vec::with_capacity(dw));
    let (mut ra, mut rb) = (usize::MAX, usize::MAX);
    let mut out = Vec::with_capacity(dh * dw);
    for y in 0..dh {
        let (y0, y1, ly) = src_index(y, sy, sh);
        if ra != y0 {
            if rb == y0 {
                std::mem::swap(&mut a, &mut b);
                std::mem::swap(&mut ra, &mut rb);
            } else {
                along_x(y0, &mut a);
                ra = y0;
            }
        }
        if rb != y1 {
            along_x(y1, &mut b);
            rb = y1;
        }
        out.extend(a.iter().zip(&b).map(|(&top, &bottom)| top + ly * (bottom - top)));
    }
    out
}

/// A map of `sh`×`sw` that covers the window `[x, y, width, height]` (original pixels) of a `dh`×`dw`
/// image, at that image's size: resized to the window (rounded to whole pixels) and zero outside it.
pub fn place_in_window(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize, window: [f64; 4]) -> Vec<f32> {
    let [x, y, w, h] = window;
    let clamp = |v: f64, max: usize| (v.round().max(0.0) as usize).min(max);
    let (x0, y0) = (clamp(x, dw), clamp(y, dh));
    let (x1, y1) = (clamp(x + w, dw).max(x0), clamp(y + h, dh).max(y0));
    let (ww, wh) = (x1 - x0, y1 - y0);
    let mut out = vec![0f32; dh * dw];
    if ww == 0 || wh == 0 {
        return out;
    }
    let inner = resize_bilinear(src, sh, sw, wh, ww);
    for (r, row) in inner.chunks(ww).enumerate() {
        out[(y0 + r) * dw + x0..][..ww].copy_from_slice(row);
    }
    out
}

/// Refined CHIP: the point-wise product of two maps of the same size.
pub fn refine(a: &[f32], b: &[f32]) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "refine: maps differ in size");
    a.iter().zip(b).map(|(x, y)| x * y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_map_is_clipped_weighted_sum() {
        // Two channels 2×2: map = max(0, 2·A0 − 1·A1).
        let act = [1.0, 0.0, 3.0, 1.0, /* ch 1 */ 1.0, 1.0, 1.0, 5.0];
        let m = class_map(&[2.0, -1.0], &act, 2, 2, 2);
        assert_eq!(m, vec![1.0, 0.0, 5.0, 0.0]);
        let nan = [f32::NAN, 1.0, 1.0, 1.0];
        assert_eq!(class_map(&[1.0], &nan, 1, 2, 2), vec![0.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn same_size_is_identity_and_constant_stays_constant() {
        let src: Vec<f32> = (0..12).map(|i| (i * i) as f32).collect();
        assert_eq!(resize_bilinear(&src, 3, 4, 3, 4), src);
        let c = vec![2.5f32; 6];
        for (dh, dw) in [(7, 5), (1, 1), (2, 9), (30, 20)] {
            assert!(resize_bilinear(&c, 2, 3, dh, dw).iter().all(|&v| (v - 2.5).abs() < 1e-6));
        }
    }

    #[test]
    fn linear_ramp_stays_linear_inside() {
        // f(x, y) = 3x + 2y + 1 sampled at source pixel centres.
        let (sh, sw, dh, dw) = (5, 6, 13, 17);
        let src: Vec<f32> = (0..sh * sw).map(|i| (3 * (i % sw) + 2 * (i / sw) + 1) as f32).collect();
        let out = resize_bilinear(&src, sh, sw, dh, dw);
        for y in 0..dh {
            for x in 0..dw {
                let sx = (x as f64 + 0.5) * sw as f64 / dw as f64 - 0.5;
                let sy = (y as f64 + 0.5) * sh as f64 / dh as f64 - 0.5;
                // Inside the hull of the source centres the interpolation is exact.
                if sx >= 0.0 && sx <= (sw - 1) as f64 && sy >= 0.0 && sy <= (sh - 1) as f64 {
                    let want = 3.0 * sx + 2.0 * sy + 1.0;
                    assert!((out[y * dw + x] as f64 - want).abs() < 1e-4, "({x},{y}) {} vs {want}", out[y * dw + x]);
                }
            }
        }
    }

    #[test]
    fn upsample_2x_by_hand() {
        // 2×2 → 4×4: source coordinates -0.25, 0.25, 0.75, 1.25 → clamped 0, 0.25, 0.75, 1 (clamped to the last pixel).
        let src = [0.0f32, 4.0, 8.0, 12.0];
        let out = resize_bilinear(&src, 2, 2, 4, 4);
        let along = [0.0f32, 0.25, 0.75, 1.0];
        for y in 0..4 {
            for x in 0..4 {
                let want = 4.0 * along[x] + 8.0 * along[y];
                assert!((out[y * 4 + x] - want).abs() < 1e-6, "({x},{y}) {} vs {want}", out[y * 4 + x]);
            }
        }
        // 1D 3 → 6 row: coordinates -0.25→0, 0.25, 0.75, 1.25, 1.75, 2.25→2.
        let out = resize_bilinear(&[0.0, 10.0, 30.0], 1, 3, 1, 6);
        let want = [0.0, 2.5, 7.5, 15.0, 25.0, 30.0];
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() < 1e-5, "{out:?}");
        }
    }

    #[test]
    fn downsample_by_two_averages_pairs() {
        // Half-pixel 2× downsampling samples exactly between two source pixels.
        let src: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let out = resize_bilinear(&src, 4, 4, 2, 2);
        let want = [2.5f32, 4.5, 10.5, 12.5];
        assert_eq!(out, want);
    }

    /// The per-pixel form of the resize, as first written: the separable one must match it exactly.
    fn resize_per_pixel(src: &[f32], sh: usize, sw: usize, dh: usize, dw: usize) -> Vec<f32> {
        let (sy, sx) = (sh as f64 / dh as f64, sw as f64 / dw as f64);
        let mut out = vec![0.0f32; dh * dw];
        for y in 0..dh {
            let (y0, y1, ly) = src_index(y, sy, sh);
            for x in 0..dw {
                let (x0, x1, lx) = src_index(x, sx, sw);
                let (r0, r1) = (&src[y0 * sw..(y0 + 1) * sw], &src[y1 * sw..(y1 + 1) * sw]);
                let top = r0[x0] + lx * (r0[x1] - r0[x0]);
                let bottom = r1[x0] + lx * (r1[x1] - r1[x0]);
                out[y * dw + x] = top + ly * (bottom - top);
            }
        }
        out
    }

    #[test]
    fn separable_resize_equals_per_pixel() {
        let mut s = 7u64;
        for (sh, sw, dh, dw) in [(7, 7, 224, 224), (112, 112, 224, 224), (224, 224, 375, 500), (224, 224, 100, 61), (5, 9, 5, 20), (1, 1, 3, 4), (9, 3, 2, 1)] {
            let src: Vec<f32> = (0..sh * sw)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 40) as f32 / (1u64 << 20) as f32 - 7.0
                })
                .collect();
            let (got, want) = (resize_bilinear(&src, sh, sw, dh, dw), resize_per_pixel(&src, sh, sw, dh, dw));
            assert!(got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits()), "{sh}x{sw} -> {dh}x{dw}");
            assert_eq!(got.len(), dh * dw);
        }
    }

    #[test]
    fn refine_multiplies() {
        assert_eq!(refine(&[1.0, 2.0, 0.0], &[3.0, 0.5, 9.0]), vec![3.0, 1.0, 0.0]);
    }
}
