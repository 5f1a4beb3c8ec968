//! Augmented views for a fit: seeded random resized crops and horizontal flips of a preprocessed
//! image (C×H×W), resampled bilinearly back to H×W. A view depends only on the image's values, the
//! seed and the view's number, so shards, batches and image order give the same views.
use crate::util::rng::Rng;
use sha2::{Digest, Sha256};

/// Crop area as a fraction of the image, and the crop's aspect ratio (width / height), drawn
/// log-uniformly: the ranges of the usual ImageNet training crop, with a larger smallest area so
/// that a view keeps most of an object.
pub const MIN_AREA: f64 = 0.25;
pub const MAX_AREA: f64 = 1.0;
pub const MIN_ASPECT: f64 = 3.0 / 4.0;
pub const MAX_ASPECT: f64 = 4.0 / 3.0;

/// A crop (x0, y0, width, height in pixels of the source) and whether the view is mirrored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub x0: f64,
    pub y0: f64,
    pub width: f64,
    pub height: f64,
    pub flip: bool,
}

fn unit(r: &mut Rng) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// The seed of an image's views: the fit's seed mixed with a hash of the image's values.
pub fn image_seed(image: &[f32], seed: u64) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for v in image {
        h.update(v.to_le_bytes());
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

/// `count` views of an image of `height`×`width`.
pub fn draw_views(height: usize, width: usize, count: usize, seed: u64) -> Vec<View> {
    let mut r = Rng::new(seed);
    let (h, w) = (height as f64, width as f64);
    (0..count)
        .map(|_| {
            let area = MIN_AREA + (MAX_AREA - MIN_AREA) * unit(&mut r);
            let aspect = (MIN_ASPECT.ln() + (MAX_ASPECT.ln() - MIN_ASPECT.ln()) * unit(&mut r)).exp();
            let cw = ((area * aspect).sqrt() * w).clamp(1.0, w);
            let ch = ((area / aspect).sqrt() * h).clamp(1.0, h);
            let x0 = (w - cw) * unit(&mut r);
            let y0 = (h - ch) * unit(&mut r);
            let flip = r.next_u64() & 1 == 1;
            View { x0, y0, width: cw, height: ch, flip }
        })
        .collect()
}

/// Renders one view of a C×H×W image into `out` (C×H×W): bilinear sampling of the crop at pixel
/// centres, clamped at the borders.
pub fn render_view(image: &[f32], channels: usize, height: usize, width: usize, v: &View, out: &mut [f32]) {
    let plane = height * width;
    assert!(image.len() == channels * plane && out.len() == channels * plane, "render_view: sizes differ");
    let (sx, sy) = (v.width / width as f64, v.height / height as f64);
    let coord = |i: usize, scale: f64, origin: f64, len: usize| {
        let s = (origin + (i as f64 + 0.5) * scale - 0.5).clamp(0.0, (len - 1) as f64);
        let i0 = s.floor() as usize;
        let i1 = (i0 + 1).min(len - 1);
        (i0, i1, (s - i0 as f64) as f32)
    };
    let cols: Vec<(usize, usize, f32)> = (0..width)
        .map(|x| {
            let xs = if v.flip { width - 1 - x } else { x };
            coord(xs, sx, v.x0, width)
        })
        .collect();
    let rows: Vec<(usize, usize, f32)> = (0..height).map(|y| coord(y, sy, v.y0, height)).collect();
    for c in 0..channels {
        let src = &image[c * plane..(c + 1) * plane];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (y, &(y0, y1, ly)) in rows.iter().enumerate() {
            let (r0, r1) = (&src[y0 * width..(y0 + 1) * width], &src[y1 * width..(y1 + 1) * width]);
            for (x, &(x0, x1, lx)) in cols.iter().enumerate() {
                let top = r0[x0] + lx * (r0[x1] - r0[x0]);
                let bottom = r1[x0] + lx * (r1[x1] - r1[x0]);
                dst[y * width + x] = top + ly * (bottom - top);
            }
        }
    }
}

/// For each of `n` images in `batch` (n×C×H×W): the image itself, then `views` augmented views.
pub fn expand(batch: &[f32], n: usize, channels: usize, height: usize, width: usize, views: usize, seed: u64) -> Vec<f32> {
    let per = channels * height * width;
    assert_eq!(batch.len(), n * per, "expand: batch size");
    let mut out = vec![0f32; n * (1 + views) * per];
    for (img, dst) in batch.chunks_exact(per).zip(out.chunks_exact_mut((1 + views) * per)) {
        dst[..per].copy_from_slice(img);
        let vs = draw_views(height, width, views, image_seed(img, seed));
        for (v, o) in vs.iter().zip(dst[per..].chunks_exact_mut(per)) {
            render_view(img, channels, height, width, v, o);
        }
    }
    out
}

/// For each of `count` mosaics, four image indices below `images` (top left, top right, bottom left,
/// bottom right), drawn with `seed`: distinct when there are at least four images, else with repeats.
pub fn mosaic_picks(images: usize, count: usize, seed: u64) -> Vec<[usize; 4]> {
    let mut r = Rng::new(seed ^ 0x4d4f_5341_4943);
    if images == 0 {
        return Vec::new();
    }
    if images < 4 {
        let mut pick = || r.below(images as u64) as usize;
        return (0..count).map(|_| [pick(), pick(), pick(), pick()]).collect();
    }
    let mut idx: Vec<usize> = (0..images).collect();
    (0..count)
        .map(|_| {
            for i in 0..4 {
                let j = i + r.below((images - i) as u64) as usize;
                idx.swap(i, j);
            }
            [idx[0], idx[1], idx[2], idx[3]]
        })
        .collect()
}

/// A 2×2 mosaic of four C×H×W images (concatenated in `tiles`), each shrunk to its quarter by the
/// half-pixel bilinear resize (a 2×2 mean for even sizes), so the mosaic has the input's size.
pub fn mosaic(tiles: &[f32], channels: usize, height: usize, width: usize) -> Vec<f32> {
    let plane = height * width;
    assert_eq!(tiles.len(), 4 * channels * plane, "mosaic: four images expected");
    let (h0, w0) = (height / 2, width / 2);
    let mut out = vec![0f32; channels * plane];
    for t in 0..4 {
        let th = if t / 2 == 0 { h0 } else { height - h0 };
        let tw = if t % 2 == 0 { w0 } else { width - w0 };
        let (y0, x0) = (if t / 2 == 0 { 0 } else { h0 }, if t % 2 == 0 { 0 } else { w0 });
        for c in 0..channels {
            let src = &tiles[(t * channels + c) * plane..(t * channels + c + 1) * plane];
            let small = crate::math::maps::resize_bilinear(src, height, width, th, tw);
            for y in 0..th {
                let dst = &mut out[c * plane + (y0 + y) * width + x0..c * plane + (y0 + y) * width + x0 + tw];
                dst.copy_from_slice(&small[y * tw..(y + 1) * tw]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_view_is_identity_and_flip_mirrors() {
        let (c, h, w) = (2, 5, 7);
        let img: Vec<f32> = (0..c * h * w).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut out = vec![0.0; img.len()];
        let full = View { x0: 0.0, y0: 0.0, width: w as f64, height: h as f64, flip: false };
        render_view(&img, c, h, w, &full, &mut out);
        assert_eq!(out, img);
        render_view(&img, c, h, w, &View { flip: true, ..full }, &mut out);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(out[ch * h * w + y * w + x], img[ch * h * w + y * w + (w - 1 - x)]);
                }
            }
        }
    }

    #[test]
    fn crop_of_a_ramp_is_the_ramp_of_the_crop() {
        // A linear ramp in x is reproduced exactly by bilinear sampling inside the image.
        let (h, w) = (8, 16);
        let img: Vec<f32> = (0..h * w).map(|i| (i % w) as f32).collect();
        let v = View { x0: 4.0, y0: 2.0, width: 8.0, height: 4.0, flip: false };
        let mut out = vec![0.0; h * w];
        render_view(&img, 1, h, w, &v, &mut out);
        for x in 0..w {
            let expected = (4.0 + (x as f64 + 0.5) * 0.5 - 0.5) as f32;
            assert!((out[x] - expected).abs() < 1e-6, "x {x}: {} vs {expected}", out[x]);
        }
    }

    #[test]
    fn views_are_reproducible_and_inside() {
        let a = draw_views(224, 224, 50, 9);
        assert_eq!(a, draw_views(224, 224, 50, 9));
        assert_ne!(a, draw_views(224, 224, 50, 10));
        for v in &a {
            assert!(v.x0 >= 0.0 && v.y0 >= 0.0 && v.x0 + v.width <= 224.0 + 1e-9 && v.y0 + v.height <= 224.0 + 1e-9);
            let area = v.width * v.height / (224.0 * 224.0);
            assert!(area >= MIN_AREA * 0.99 - 1e-9 && area <= MAX_AREA + 1e-9, "area {area}");
        }
        assert!(a.iter().any(|v| v.flip) && a.iter().any(|v| !v.flip));
    }

    #[test]
    fn mosaic_tiles_are_the_images_halved() {
        // Four constant images land in their quadrants; a 2×2 checker averages to its mean.
        let (c, h, w) = (2, 4, 6);
        let plane = h * w;
        let mut tiles = Vec::new();
        for t in 0..4 {
            tiles.extend((0..c * plane).map(|i| (t * 10 + i / plane) as f32));
        }
        let m = mosaic(&tiles, c, h, w);
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let t = (y / 2) * 2 + x / 3;
                    assert_eq!(m[ch * plane + y * w + x], (t * 10 + ch) as f32, "({ch},{y},{x})");
                }
            }
        }
        let checker: Vec<f32> = (0..16).map(|i| if (i / 4 + i % 4) % 2 == 0 { 1.0 } else { 3.0 }).collect();
        let m = mosaic(&[checker.clone(), checker.clone(), checker.clone(), checker].concat(), 1, 4, 4);
        assert!(m.iter().all(|&v| v == 2.0), "{m:?}");
    }

    #[test]
    fn mosaic_picks_are_distinct_and_seeded() {
        let p = mosaic_picks(10, 200, 3);
        assert_eq!(p.len(), 200);
        for q in &p {
            let mut s = q.to_vec();
            s.sort_unstable();
            s.dedup();
            assert_eq!(s.len(), 4);
            assert!(q.iter().all(|&i| i < 10));
        }
        assert_eq!(p, mosaic_picks(10, 200, 3));
        assert_ne!(p, mosaic_picks(10, 200, 4));
        assert!(mosaic_picks(0, 5, 0).is_empty());
        assert!(mosaic_picks(3, 5, 0).iter().all(|q| q.iter().all(|&i| i < 3)));
        // Every image takes part.
        assert!((0..10).all(|i| p.iter().any(|q| q.contains(&i))));
    }

    #[test]
    fn expand_keeps_the_original_first_and_depends_only_on_the_image() {
        let (c, h, w) = (3, 6, 6);
        let a: Vec<f32> = (0..c * h * w).map(|i| (i as f32).sin()).collect();
        let b: Vec<f32> = (0..c * h * w).map(|i| (i as f32).cos()).collect();
        let both: Vec<f32> = a.iter().chain(&b).copied().collect();
        let out = expand(&both, 2, c, h, w, 3, 1);
        let per = c * h * w;
        assert_eq!(out.len(), 2 * 4 * per);
        assert_eq!(&out[..per], &a[..]);
        // The same image alone gets the same views: order and batching do not matter.
        let alone = expand(&b, 1, c, h, w, 3, 1);
        assert_eq!(&out[4 * per..], &alone[..]);
    }
}
