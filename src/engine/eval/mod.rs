//! Scoring saliency maps on three axes, with bootstrap intervals:
//! - localization: energy of the map inside the ground-truth boxes (plus the box protocol of
//!   [`crate::math::localize::evaluate`] and the pointing game),
//! - class discrimination: on a 2×2 mosaic of photos of different classes, the share of the target
//!   class's map energy inside that class's tile,
//! - faithfulness: deletion and insertion curves (the class probability as the most salient pixels are
//!   removed from the photo, or restored into a blurred copy, in equal steps), summarised by their areas.
//!
//! Everything here but [`faithfulness`] is pure; the baselines (centre prior, constant map) live here too.
pub mod harness;

use crate::error::Result;
use crate::util::rng::Rng;
use crate::math::localize::BBox;
use crate::runtime::model::Model;

/// Positive values of a map summed (negative and non-finite values count as 0).
fn positive_sum(values: impl Iterator<Item = f32>) -> f64 {
    values.filter(|v| v.is_finite() && *v > 0.0).map(|v| v as f64).sum()
}

/// The share of a map's positive energy inside the union of `boxes` (inclusive pixel corners);
/// 0 for a map with no positive value.
pub fn energy_share(map: &[f32], width: usize, boxes: &[BBox]) -> f64 {
    let total = positive_sum(map.iter().copied());
    if total == 0.0 || width == 0 {
        return 0.0;
    }
    let inside = positive_sum(map.iter().enumerate().filter_map(|(i, &v)| {
        let (x, y) = ((i % width) as u32, (i / width) as u32);
        boxes.iter().any(|b| b.contains(x, y)).then_some(v)
    }));
    inside / total
}

/// The tile of a 2×2 grid over width×height (tile 0 top left, 1 top right, 2 bottom left, 3 bottom
/// right), as an inclusive box.
pub fn grid_tile(width: usize, height: usize, tile: usize) -> BBox {
    let (hw, hh) = (width / 2, height / 2);
    let (col, row) = (tile % 2, tile / 2);
    let x1 = if col == 0 { 0 } else { hw };
    let y1 = if row == 0 { 0 } else { hh };
    let x2 = if col == 0 { hw } else { width } - 1;
    let y2 = if row == 0 { hh } else { height } - 1;
    BBox { x1: x1 as u32, y1: y1 as u32, x2: x2 as u32, y2: y2 as u32 }
}

/// Pixel indices by decreasing map value; equal values in a seeded random order, so that a flat map
/// deletes pixels at random rather than from the top row down.
pub fn salience_order(map: &[f32], seed: u64) -> Vec<usize> {
    let mut r = Rng::new(seed);
    let mut keyed: Vec<(f32, u64, usize)> =
        map.iter().enumerate().map(|(i, &v)| (if v.is_finite() { v } else { f32::NEG_INFINITY }, r.next_u64(), i)).collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, i)| i).collect()
}

/// steps+1 images (C×plane each): image j is `from` with its first round(j·plane/steps) pixels in
/// `order` (all channels) taken from `to`.
pub fn perturbation_series(from: &[f32], to: &[f32], channels: usize, order: &[usize], steps: usize) -> Vec<f32> {
    let plane = order.len();
    assert!(from.len() == channels * plane && to.len() == from.len() && steps > 0, "perturbation_series: sizes");
    let mut out = Vec::with_capacity((steps + 1) * from.len());
    let mut cur = from.to_vec();
    let mut done = 0usize;
    for j in 0..=steps {
        let upto = (j * plane + steps / 2) / steps;
        for &p in &order[done..upto] {
            for c in 0..channels {
                cur[c * plane + p] = to[c * plane + p];
            }
        }
        done = upto;
        out.extend_from_slice(&cur);
    }
    out
}

/// Area under a curve sampled at equal steps over [0, 1] (trapezoid rule).
pub fn auc(values: &[f64]) -> f64 {
    match values.len() {
        0 => 0.0,
        1 => values[0],
        n => {
            let inner: f64 = values[1..n - 1].iter().sum();
            (inner + 0.5 * (values[0] + values[n - 1])) / (n - 1) as f64
        }
    }
}

/// A box blur of radius `radius`, applied `passes` times per channel (three passes approximate a
/// Gaussian), borders clamped.
pub fn box_blur(image: &[f32], channels: usize, height: usize, width: usize, radius: usize, passes: usize) -> Vec<f32> {
    let plane = height * width;
    assert_eq!(image.len(), channels * plane, "box_blur: size");
    let mut cur = image.to_vec();
    let mut tmp = vec![0f32; plane];
    let blur_line = |src: &[f32], dst: &mut [f32], len: usize, stride: usize, offset: usize| {
        for i in 0..len {
            let lo = i.saturating_sub(radius);
            let hi = (i + radius).min(len - 1);
            let mut s = 0.0f64;
            for j in lo..=hi {
                s += src[offset + j * stride] as f64;
            }
            // Clamped border: the missing samples repeat the edge value.
            let missing_lo = radius.saturating_sub(i);
            let missing_hi = (i + radius).saturating_sub(len - 1);
            s += missing_lo as f64 * src[offset] as f64 + missing_hi as f64 * src[offset + (len - 1) * stride] as f64;
            dst[offset + i * stride] = (s / (2 * radius + 1) as f64) as f32;
        }
    };
    for c in 0..channels {
        let chan = &mut cur[c * plane..(c + 1) * plane];
        for _ in 0..passes {
            for y in 0..height {
                blur_line(chan, &mut tmp, width, 1, y * width);
            }
            for x in 0..width {
                blur_line(&tmp, chan, height, width, x);
            }
        }
    }
    cur
}

/// Deletion and insertion areas for one image and map at the model's input size (class probability,
/// `steps` equal steps): deletion replaces pixels by 0 (the mean of the normalised input), insertion
/// starts from a blurred copy. Lower deletion and higher insertion mean a more faithful map.
pub fn faithfulness(model: &Model, image: &[f32], map: &[f32], class: usize, steps: usize, seed: u64) -> Result<(f64, f64)> {
    let (w, h) = model.input_size().as_usize();
    let channels = model.input.channels;
    let order = salience_order(map, seed);
    let zeros = vec![0f32; image.len()];
    let blurred = box_blur(image, channels, h, w, BLUR_RADIUS, 3);
    let mut batch = perturbation_series(image, &zeros, channels, &order, steps);
    batch.extend(perturbation_series(&blurred, image, channels, &order, steps));
    let n = 2 * (steps + 1);
    let probs = model.predict(&batch, n)?;
    let curve = |i0: usize| -> Vec<f64> { (i0..i0 + steps + 1).map(|i| probs[i * model.classes + class] as f64).collect() };
    Ok((auc(&curve(0)), auc(&curve(steps + 1))))
}

/// Radius (input pixels) of the insertion baseline's blur: about a tenth of a 224-pixel input.
pub const BLUR_RADIUS: usize = 11;

/// The centre prior: an isotropic Gaussian bump (σ a quarter of each side) in the middle of the image.
pub fn centre_prior(width: usize, height: usize) -> Vec<f32> {
    let (cx, cy) = ((width as f64 - 1.0) / 2.0, (height as f64 - 1.0) / 2.0);
    let (sx, sy) = (0.25 * width as f64, 0.25 * height as f64);
    (0..height * width)
        .map(|i| {
            let (dx, dy) = (((i % width) as f64 - cx) / sx, ((i / width) as f64 - cy) / sy);
            (-0.5 * (dx * dx + dy * dy)).exp() as f32
        })
        .collect()
}

/// The constant map.
pub fn constant_map(width: usize, height: usize) -> Vec<f32> { vec![1.0; width * height] }

/// A mean with its 95% bootstrap interval.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Interval {
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// Resampling units with replacement, `resamples` times: the same draws for every call with the same
/// seed, so that intervals of different metrics over the same units are comparable.
fn resample_means(values: &[f64], resamples: usize, seed: u64) -> Vec<f64> {
    let n = values.len();
    let mut r = Rng::new(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[r.below(n as u64) as usize]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    means
}

/// Mean and percentile 95% interval of the mean over `resamples` bootstrap resamples.
pub fn bootstrap_mean(values: &[f64], resamples: usize, seed: u64) -> Interval {
    let n = values.len();
    if n == 0 {
        return Interval { mean: f64::NAN, low: f64::NAN, high: f64::NAN };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if resamples == 0 {
        return Interval { mean, low: mean, high: mean };
    }
    let means = resample_means(values, resamples, seed);
    let at = |q: f64| means[((q * (resamples - 1) as f64).round() as usize).min(resamples - 1)];
    Interval { mean, low: at(0.025), high: at(0.975) }
}

/// The paired difference a − b (same units in the same order), with its bootstrap interval.
pub fn bootstrap_paired(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Interval {
    assert_eq!(a.len(), b.len(), "bootstrap_paired: the two methods were scored on different units");
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    bootstrap_mean(&d, resamples, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_share_by_hand() {
        // 4×2 map: row 0 = 1 2 0 -5, row 1 = 3 0 0 4; positive total 10.
        let map = [1.0, 2.0, 0.0, -5.0, 3.0, 0.0, 0.0, 4.0];
        let left = BBox { x1: 0, y1: 0, x2: 1, y2: 1 };
        assert!((energy_share(&map, 4, &[left]) - 0.6).abs() < 1e-12);
        let right_col = BBox { x1: 3, y1: 0, x2: 3, y2: 1 };
        assert!((energy_share(&map, 4, &[right_col]) - 0.4).abs() < 1e-12);
        // Overlapping boxes count each pixel once.
        assert!((energy_share(&map, 4, &[left, left, right_col]) - 1.0).abs() < 1e-12);
        assert_eq!(energy_share(&[0.0, -1.0], 2, &[left]), 0.0);
    }

    #[test]
    fn grid_tiles_cover_the_image_once() {
        let (w, h) = (7, 5);
        let mut count = vec![0; w * h];
        for t in 0..4 {
            let b = grid_tile(w, h, t);
            for y in 0..h {
                for x in 0..w {
                    if b.contains(x as u32, y as u32) {
                        count[y * w + x] += 1;
                    }
                }
            }
        }
        assert!(count.iter().all(|&c| c == 1));
        assert_eq!(grid_tile(4, 4, 3), BBox { x1: 2, y1: 2, x2: 3, y2: 3 });
        // A map with all its energy in tile 1 scores 1 there and 0 elsewhere.
        let mut map = vec![0.0f32; 16];
        map[2] = 1.0;
        map[7] = 3.0;
        assert_eq!(energy_share(&map, 4, &[grid_tile(4, 4, 1)]), 1.0);
        assert_eq!(energy_share(&map, 4, &[grid_tile(4, 4, 0)]), 0.0);
    }

    #[test]
    fn deletion_series_and_auc_by_hand() {
        // 1 channel, 4 pixels, map order 2, 0, 3, 1; 2 steps delete 0, 2, then 4 pixels.
        let map = [0.5, 0.1, 0.9, 0.3];
        let order = salience_order(&map, 0);
        assert_eq!(order, vec![2, 0, 3, 1]);
        let img = [1.0, 2.0, 3.0, 4.0];
        let s = perturbation_series(&img, &[0.0; 4], 1, &order, 2);
        assert_eq!(s, vec![1.0, 2.0, 3.0, 4.0, 0.0, 2.0, 0.0, 4.0, 0.0, 0.0, 0.0, 0.0]);
        // Trapezoid over [0, 1]: (1 + 2·0.5 + 0)/2 / 2 = 0.5; a constant curve has its value as area.
        assert!((auc(&[1.0, 0.5, 0.0]) - 0.5).abs() < 1e-12);
        assert!((auc(&[0.3; 21]) - 0.3).abs() < 1e-12);
        assert!((auc(&[0.0, 1.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn flat_maps_delete_in_random_order() {
        let a = salience_order(&[1.0; 100], 1);
        let b = salience_order(&[1.0; 100], 2);
        assert_ne!(a, b);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn blur_keeps_constants_and_mass() {
        let flat = vec![2.5f32; 3 * 6 * 9];
        assert!(box_blur(&flat, 3, 6, 9, 2, 3).iter().all(|v| (v - 2.5).abs() < 1e-6));
        // An impulse far from the borders spreads over (2r+1)² pixels with its mass kept.
        let mut img = vec![0f32; 15 * 15];
        img[7 * 15 + 7] = 25.0;
        let b = box_blur(&img, 1, 15, 15, 2, 1);
        assert!((b.iter().sum::<f32>() - 25.0).abs() < 1e-4);
        assert!((b[7 * 15 + 7] - 1.0).abs() < 1e-6 && (b[5 * 15 + 5] - 1.0).abs() < 1e-6 && b[4 * 15 + 7] == 0.0);
    }

    #[test]
    fn bootstrap_intervals() {
        let v: Vec<f64> = (0..200).map(|i| (i % 10) as f64).collect();
        let iv = bootstrap_mean(&v, 2000, 3);
        assert!((iv.mean - 4.5).abs() < 1e-12);
        // Standard error 2.87/√200 ≈ 0.203: the 95% interval is about ±0.4.
        assert!(iv.low < 4.5 && iv.high > 4.5 && iv.high - iv.low > 0.6 && iv.high - iv.low < 1.0, "{iv:?}");
        let c = bootstrap_mean(&[3.0; 10], 100, 1);
        assert_eq!((c.low, c.high), (3.0, 3.0));
        // Paired: a constant shift has a zero-width interval even when the units vary a lot.
        let b: Vec<f64> = v.iter().map(|x| x * 10.0).collect();
        let a: Vec<f64> = b.iter().map(|x| x + 0.25).collect();
        let d = bootstrap_paired(&a, &b, 500, 9);
        assert!((d.mean - 0.25).abs() < 1e-9 && (d.low - 0.25).abs() < 1e-9 && (d.high - 0.25).abs() < 1e-9);
    }

    #[test]
    fn centre_prior_peaks_in_the_middle() {
        let m = centre_prior(9, 7);
        let (x, y) = crate::math::localize::argmax(&m, 9);
        assert_eq!((x, y), (4, 3));
        let corner = (-0.5 * ((4.0f64 / 2.25).powi(2) + (3.0f64 / 1.75).powi(2))).exp();
        assert!((m[0] as f64 - corner).abs() < 1e-6 && m.iter().all(|&v| v > 0.0 && v <= 1.0));
    }
}
