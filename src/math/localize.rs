//! Weakly-supervised localization: threshold, largest 8-connected component, bounding box; IoU and
//! the evaluation protocol (GT-known and top-1 localization accuracy, mean IoU, pointing game).
use crate::error::{Error, Result};
use std::path::Path;

/// Inclusive pixel corners, x right, y down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BBox { pub x1: u32, pub y1: u32, pub x2: u32, pub y2: u32 }

impl BBox {
    pub fn contains(&self, x: u32, y: u32) -> bool {
        x >= self.x1 && x <= self.x2 && y >= self.y1 && y <= self.y2
    }
}

/// Localization threshold relative to the map's maximum. On the dev boxes
/// (tests/data/aib_boxes_dev.json, conv-head fits of EfficientNet-Lite0) the best threshold lay
/// between 0.25 and 0.40, at 0.35 with 256 gates.
pub const DEFAULT_THRESHOLD: f32 = 0.35;

/// Box of the largest 8-connected component of {map ≥ t·max}, max taken over the finite values
/// (non-finite pixels never belong to a component). None when the map is empty, has no finite
/// value, or its maximum is ≤ 0. Equal-sized components: the first in row-major order wins.
///
/// Labels runs of pixels rather than flood-filling pixels: several times faster on photo-sized
/// maps, where a flood fill would cost more than the model run itself.
pub fn localize(map: &[f32], width: usize, height: usize, threshold: f32) -> Option<BBox> {
    if width == 0 || height == 0 || map.len() != width * height {
        return None;
    }
    let max = finite_max(map);
    // Also catches a map without any finite value (max stays -inf).
    if max <= 0.0 {
        return None;
    }
    let t = threshold * max;
    let inside = |v: f32| v.is_finite() && v >= t;
    // Runs of inside pixels per row: (x0, x1) inclusive; rows[y]..rows[y + 1] index row y's runs.
    let mut runs: Vec<(u32, u32)> = Vec::new();
    let mut rows: Vec<usize> = Vec::with_capacity(height + 1);
    for y in 0..height {
        rows.push(runs.len());
        let row = &map[y * width..(y + 1) * width];
        // Runs are long on photo-sized maps: blocks wholly inside or outside the current state are
        // skipped with a count that vectorizes, and only blocks with an edge are walked pixel by pixel.
        let mut start: Option<usize> = None;
        let mut x = 0;
        while x < width {
            let end = (x + BLOCK).min(width);
            let block = &row[x..end];
            let n: u32 = block.iter().map(|&v| inside(v) as u32).sum();
            let uniform = if start.is_some() { n as usize == block.len() } else { n == 0 };
            if !uniform {
                for (dx, &v) in block.iter().enumerate() {
                    match (start, inside(v)) {
                        (None, true) => start = Some(x + dx),
                        (Some(s), false) => {
                            runs.push((s as u32, (x + dx - 1) as u32));
                            start = None;
                        }
                        _ => {}
                    }
                }
            }
            x = end;
        }
        if let Some(s) = start {
            runs.push((s as u32, (width - 1) as u32));
        }
    }
    rows.push(runs.len());
    let mut parent: Vec<usize> = (0..runs.len()).collect();
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for y in 1..height {
        let (prev, cur) = (rows[y - 1]..rows[y], rows[y]..rows[y + 1]);
        let mut i = prev.start;
        for j in cur {
            let (c, d) = runs[j];
            // 8-connectivity: runs touch when they overlap or meet at a diagonal.
            while i < prev.end && runs[i].1 + 1 < c {
                i += 1;
            }
            let mut k = i;
            while k < prev.end && runs[k].0 <= d + 1 {
                let (a, b) = (find(&mut parent, k), find(&mut parent, j));
                if a != b {
                    // The earlier run stays the root, so a root is its component's first run.
                    parent[a.max(b)] = a.min(b);
                }
                k += 1;
            }
        }
    }
    let mut size = vec![0usize; runs.len()];
    let mut bbox = vec![BBox { x1: u32::MAX, y1: u32::MAX, x2: 0, y2: 0 }; runs.len()];
    for (y, row) in rows.windows(2).enumerate() {
        for (r, &(x0, x1)) in runs.iter().enumerate().take(row[1]).skip(row[0]) {
            let root = find(&mut parent, r);
            size[root] += (x1 - x0 + 1) as usize;
            let b = &mut bbox[root];
            b.x1 = b.x1.min(x0);
            b.x2 = b.x2.max(x1);
            b.y1 = b.y1.min(y as u32);
            b.y2 = b.y2.max(y as u32);
        }
    }
    // Roots in run order are components in order of their first pixel; strict > keeps the first.
    let mut best: Option<usize> = None;
    for r in 0..runs.len() {
        if parent[r] == r && best.is_none_or(|b| size[r] > size[b]) {
            best = Some(r);
        }
    }
    best.map(|r| bbox[r])
}

/// Pixels per block of the row scan in [`localize`].
const BLOCK: usize = 32;

/// The largest finite value (-inf when there is none), in lanes so that the loop vectorizes.
fn finite_max(map: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = map.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v.is_finite() && v > *a { v } else { *a };
        }
    }
    let rest = chunks.remainder().iter().copied().filter(|v| v.is_finite());
    acc.into_iter().chain(rest).fold(f32::NEG_INFINITY, f32::max)
}

/// Intersection over union of two inclusive boxes.
pub fn iou(a: &BBox, b: &BBox) -> f64 {
    let area = |x1: u32, y1: u32, x2: u32, y2: u32| -> f64 {
        if x2 < x1 || y2 < y1 { 0.0 } else { (x2 - x1 + 1) as f64 * (y2 - y1 + 1) as f64 }
    };
    let inter = area(a.x1.max(b.x1), a.y1.max(b.y1), a.x2.min(b.x2), a.y2.min(b.y2));
    let union = area(a.x1, a.y1, a.x2, a.y2) + area(b.x1, b.y1, b.x2, b.y2) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// Position of the map's maximum (x, y): the first in row-major order, ignoring non-finite values;
/// (0, 0) for an empty map or width 0.
pub fn argmax(map: &[f32], width: usize) -> (u32, u32) {
    if width == 0 {
        return (0, 0);
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in map.iter().enumerate() {
        if v.is_finite() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    let i = best.map_or(0, |(i, _)| i);
    ((i % width) as u32, (i / width) as u32)
}

/// One ground-truth entry: `{"file","width","height","class","boxes":[[x1,y1,x2,y2],...]}` (extra keys ignored).
/// `class` may be null (no ImageNet class applies): callers skip such entries when evaluating.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GtEntry {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub class: Option<usize>,
    pub boxes: Vec<[u32; 4]>,
}

impl GtEntry {
    pub fn bboxes(&self) -> impl Iterator<Item = BBox> + '_ {
        self.boxes.iter().map(|&[x1, y1, x2, y2]| BBox { x1, y1, x2, y2 })
    }
}

/// Reads a ground-truth list. Each entry needs a positive size and boxes with x1 ≤ x2 < width,
/// y1 ≤ y2 < height (inclusive corners); an entry with a class needs at least one box.
pub fn load_gt(path: &Path) -> Result<Vec<GtEntry>> {
    let text = crate::util::read::read_regular(path, crate::util::read::MAX_TEXT_BYTES, "box file")?;
    let bad = |msg: String| Error::invalid(format!("{}: {msg}", path.display()));
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(&text).map_err(|e| bad(format!("not a JSON list of ground-truth entries: {e}")))?;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.into_iter().enumerate() {
        let name = v.get("file").and_then(|f| f.as_str()).map(|s| format!(" ({s})")).unwrap_or_default();
        let e: GtEntry = serde_json::from_value(v).map_err(|e| bad(format!("entry {i}{name}: {e}")))?;
        if e.width == 0 || e.height == 0 {
            return Err(bad(format!("entry {i}{name}: image size {}×{} is empty", e.width, e.height)));
        }
        if e.class.is_some() && e.boxes.is_empty() {
            return Err(bad(format!("entry {i}{name}: no boxes")));
        }
        for b in &e.boxes {
            let [x1, y1, x2, y2] = *b;
            if x2 < x1 || y2 < y1 || x2 >= e.width || y2 >= e.height {
                return Err(bad(format!(
                    "entry {i}{name}: box {b:?} is not inside the {}×{} image with x1 ≤ x2, y1 ≤ y2 (inclusive corners)",
                    e.width, e.height
                )));
            }
        }
        out.push(e);
    }
    Ok(out)
}

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
///
/// Per image and threshold the IoU is the best over its GT boxes (0 without a box). GT-known accuracy:
/// fraction with IoU ≥ 0.5; top-1 accuracy also needs `top1 == gt.class`; mean IoU at the chosen
/// threshold. Ties in GT-known accuracy go to the higher mean IoU, then to the smaller threshold. The
/// pointing game (threshold-free) counts a hit when the map's argmax lies inside a GT box and the map
/// has a positive maximum. Entries with class None are expected to be skipped by the caller; one passed
/// anyway never counts as top-1 correct. A map whose size is not width×height counts as a miss. An
/// empty threshold grid means [`DEFAULT_THRESHOLD`].
pub fn evaluate(items: &[EvalItem], thresholds: &[f32]) -> LocReport {
    let default = [DEFAULT_THRESHOLD];
    let grid = if thresholds.is_empty() { &default[..] } else { thresholds };
    let n = items.len();
    let frac = |c: usize| if n == 0 { 0.0 } else { c as f64 / n as f64 };
    let mut best: Option<LocReport> = None;
    for &t in grid {
        let ious: Vec<f64> = items
            .iter()
            .map(|it| {
                let (w, h) = (it.gt.width as usize, it.gt.height as usize);
                match localize(it.map, w, h, t) {
                    Some(bb) => it.gt.bboxes().map(|g| iou(&bb, &g)).fold(0.0, f64::max),
                    None => 0.0,
                }
            })
            .collect();
        let hits = ious.iter().filter(|&&v| v >= 0.5).count();
        let top1 = items.iter().zip(&ious).filter(|(it, &v)| v >= 0.5 && it.gt.class == Some(it.top1)).count();
        let mean_iou = if n == 0 { 0.0 } else { ious.iter().sum::<f64>() / n as f64 };
        let rep = LocReport {
            images: n,
            best_threshold: t,
            gt_known_accuracy: frac(hits),
            top1_accuracy: frac(top1),
            mean_iou,
            pointing_game: 0.0,
            ious,
        };
        let better = match &best {
            None => true,
            Some(b) => {
                (rep.gt_known_accuracy, rep.mean_iou) > (b.gt_known_accuracy, b.mean_iou)
                    || ((rep.gt_known_accuracy, rep.mean_iou) == (b.gt_known_accuracy, b.mean_iou)
                        && rep.best_threshold < b.best_threshold)
            }
        };
        if better {
            best = Some(rep);
        }
    }
    let mut rep = best.expect("non-empty threshold grid");
    let points = items
        .iter()
        .filter(|it| {
            let w = it.gt.width as usize;
            if it.map.len() != w * it.gt.height as usize || w == 0 {
                return false;
            }
            let max = it.map.iter().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let (x, y) = argmax(it.map, w);
            max > 0.0 && it.gt.bboxes().any(|b| b.contains(x, y))
        })
        .count();
    rep.pointing_game = frac(points);
    rep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_from(rows: &[&str]) -> (Vec<f32>, usize, usize) {
        // Digits are values; '.' is 0.
        let h = rows.len();
        let w = rows[0].len();
        let v = rows
            .iter()
            .flat_map(|r| r.chars().map(|c| c.to_digit(10).map_or(0.0, |d| d as f32)))
            .collect();
        (v, w, h)
    }

    /// Reference: iterative flood fill over pixels, the plain reading of the contract.
    fn flood_fill_box(map: &[f32], width: usize, height: usize, threshold: f32) -> Option<BBox> {
        if width == 0 || height == 0 || map.len() != width * height {
            return None;
        }
        let max = map.iter().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        // Also catches a map without any finite value (max stays -inf).
        if max <= 0.0 {
            return None;
        }
        let t = threshold * max;
        let inside = |v: f32| v.is_finite() && v >= t;
        let mut seen = vec![false; map.len()];
        let mut stack: Vec<usize> = Vec::new();
        let mut best: Option<(usize, BBox)> = None;
        for start in 0..map.len() {
            if seen[start] || !inside(map[start]) {
                continue;
            }
            // Iterative flood fill: maps can be megapixels, recursion would overflow the stack.
            seen[start] = true;
            stack.push(start);
            let (mut size, mut bb) = (0usize, BBox { x1: u32::MAX, y1: u32::MAX, x2: 0, y2: 0 });
            while let Some(p) = stack.pop() {
                size += 1;
                let (x, y) = (p % width, p / width);
                bb.x1 = bb.x1.min(x as u32);
                bb.x2 = bb.x2.max(x as u32);
                bb.y1 = bb.y1.min(y as u32);
                bb.y2 = bb.y2.max(y as u32);
                for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                        let q = ny * width + nx;
                        if !seen[q] && inside(map[q]) {
                            seen[q] = true;
                            stack.push(q);
                        }
                    }
                }
            }
            if best.is_none_or(|(s, _)| size > s) {
                best = Some((size, bb));
            }
        }
        best.map(|(_, bb)| bb)
    }

    /// A small xorshift generator, so the maps are reproducible.
    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32
        }
    }

    #[test]
    fn run_labelling_gives_the_flood_fill_box() {
        // Noise (many small components, many ties), smooth blobs, stripes, NaN and infinities.
        for seed in 0..300u64 {
            let mut r = rng(seed);
            // Some rows span several of the row scan's blocks, with runs across block edges.
            let wide = if seed % 3 == 0 { 140.0 } else { 40.0 };
            let (w, h) = (1 + (r() * wide) as usize, 1 + (r() * 40.0) as usize);
            let kind = seed % 4;
            let (cx, cy) = (r() * w as f32, r() * h as f32);
            let mut map: Vec<f32> = (0..w * h)
                .map(|p| {
                    let (x, y) = ((p % w) as f32, (p / w) as f32);
                    match kind {
                        0 => r() - 0.3,
                        1 => (-((x - cx).powi(2) + (y - cy).powi(2)) / 30.0).exp() + 0.3 * r(),
                        2 => ((x * 0.7 + y * 0.3).sin() + r() * 0.2).max(0.0),
                        _ => if r() < 0.5 { 1.0 } else { 0.0 },
                    }
                })
                .collect();
            if seed % 7 == 0 {
                map[(r() * (w * h) as f32) as usize % (w * h)] = f32::NAN;
                map[(r() * (w * h) as f32) as usize % (w * h)] = f32::INFINITY;
                map[(r() * (w * h) as f32) as usize % (w * h)] = f32::NEG_INFINITY;
            }
            for t in [0.05, 0.25, 0.5, 0.9, 1.0] {
                assert_eq!(localize(&map, w, h, t), flood_fill_box(&map, w, h, t), "seed {seed} {w}x{h} t {t}");
            }
        }
        assert_eq!(localize(&[0.0; 4], 2, 2, 0.5), None);
        assert_eq!(localize(&[f32::NAN; 4], 2, 2, 0.5), None);
        assert_eq!(localize(&[1.0; 3], 2, 2, 0.5), None);
    }

    #[test]
    fn larger_blob_wins() {
        let (m, w, h) = map_from(&[
            "99......",
            "99......",
            "....5555",
            "....5555",
            "....5555",
        ]);
        assert_eq!(localize(&m, w, h, 0.5), Some(BBox { x1: 4, y1: 2, x2: 7, y2: 4 }));
        // Above 5/9 only the small bright blob remains.
        assert_eq!(localize(&m, w, h, 0.6), Some(BBox { x1: 0, y1: 0, x2: 1, y2: 1 }));
    }

    #[test]
    fn diagonal_neighbours_join() {
        let (m, w, h) = map_from(&[
            "9....",
            ".9...",
            "..9..",
            "....9",
            "...99",
        ]);
        // (2,2) and the corner group do not touch, (3,3) being empty: two 3-pixel components, and
        // the tie goes to the first in row-major order.
        assert_eq!(localize(&m, w, h, 0.5), Some(BBox { x1: 0, y1: 0, x2: 2, y2: 2 }));
        let (m, w, h) = map_from(&[
            "9....",
            ".9...",
            "..9..",
            "...9.",
            "....9",
        ]);
        assert_eq!(localize(&m, w, h, 0.5), Some(BBox { x1: 0, y1: 0, x2: 4, y2: 4 }));
    }

    #[test]
    fn threshold_is_inclusive_and_relative() {
        let (m, w, h) = map_from(&["2468"]);
        // t·max = 4: pixels ≥ 4.
        assert_eq!(localize(&m, w, h, 0.5), Some(BBox { x1: 1, y1: 0, x2: 3, y2: 0 }));
        assert_eq!(localize(&m, w, h, 1.0), Some(BBox { x1: 3, y1: 0, x2: 3, y2: 0 }));
        assert_eq!(localize(&m, w, h, 0.0), Some(BBox { x1: 0, y1: 0, x2: 3, y2: 0 }));
        assert_eq!(localize(&[0.0; 4], 2, 2, 0.5), None);
        assert_eq!(localize(&[-1.0; 4], 2, 2, 0.5), None);
        assert_eq!(localize(&[], 0, 0, 0.5), None);
        // NaN pixels are ignored, not fatal.
        assert_eq!(localize(&[f32::NAN, 1.0, 0.0, 0.0], 2, 2, 0.5), Some(BBox { x1: 1, y1: 0, x2: 1, y2: 0 }));
    }

    #[test]
    fn big_map_does_not_recurse() {
        // One snake-shaped component covering a 2000×1500 map.
        let (w, h) = (2000, 1500);
        let mut m = vec![0.0f32; w * h];
        for y in 0..h {
            if y % 2 == 0 {
                m[y * w..(y + 1) * w].iter_mut().for_each(|v| *v = 1.0);
            } else {
                m[y * w + if y % 4 == 1 { w - 1 } else { 0 }] = 1.0;
            }
        }
        assert_eq!(localize(&m, w, h, 0.5), Some(BBox { x1: 0, y1: 0, x2: (w - 1) as u32, y2: (h - 1) as u32 }));
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox { x1: 0, y1: 0, x2: 9, y2: 9 }; // 100 px
        let b = BBox { x1: 5, y1: 5, x2: 14, y2: 14 }; // overlap 5×5 = 25
        assert!((iou(&a, &b) - 25.0 / 175.0).abs() < 1e-12);
        assert_eq!(iou(&a, &a), 1.0);
        let c = BBox { x1: 10, y1: 0, x2: 12, y2: 9 };
        assert_eq!(iou(&a, &c), 0.0);
        // Touching at one column counts (inclusive corners).
        let d = BBox { x1: 9, y1: 0, x2: 18, y2: 9 };
        assert!((iou(&a, &d) - 10.0 / 190.0).abs() < 1e-12);
        let p = BBox { x1: 3, y1: 3, x2: 3, y2: 3 };
        assert!((iou(&a, &p) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn argmax_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, f32::NAN, 3.0, 0.0, 2.0], 3), (1, 0));
        assert_eq!(argmax(&[0.0, 0.0, 0.0, 5.0], 2), (1, 1));
    }

    fn write_tmp(name: &str, text: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("chip-gt-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn load_gt_reads_and_validates() {
        let p = write_tmp(
            "ok.json",
            r#"[{"file":"a.jpg","width":10,"height":8,"class":3,"class_name":"x","boxes":[[0,0,9,7],[2,2,3,3]]},
                {"file":"b.jpg","width":4,"height":4,"class":null,"boxes":[]}]"#,
        );
        let gt = load_gt(&p).unwrap();
        assert_eq!(gt.len(), 2);
        assert_eq!(gt[0].class, Some(3));
        assert_eq!(gt[0].boxes[1], [2, 2, 3, 3]);
        assert_eq!(gt[1].class, None);
        let _ = std::fs::remove_file(&p);
        for (name, text, needle) in [
            ("outside", r#"[{"file":"c.jpg","width":10,"height":8,"class":1,"boxes":[[0,0,10,7]]}]"#, "entry 0 (c.jpg)"),
            ("flipped", r#"[{"file":"d.jpg","width":10,"height":8,"class":1,"boxes":[[5,0,4,7]]}]"#, "box [5, 0, 4, 7]"),
            ("negative", r#"[{"file":"e.jpg","width":10,"height":8,"class":1,"boxes":[[-1,0,4,7]]}]"#, "entry 0 (e.jpg)"),
            ("missing", r#"[{"file":"f.jpg","height":8,"class":1,"boxes":[[0,0,4,7]]}]"#, "width"),
            ("noboxes", r#"[{"file":"g.jpg","width":10,"height":8,"class":1,"boxes":[]}]"#, "no boxes"),
            ("notjson", "{", "JSON"),
        ] {
            let p = write_tmp(name, text);
            let err = load_gt(&p).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains(&*p.to_string_lossy()), "{name}: {err}");
            let _ = std::fs::remove_file(&p);
        }
    }

    #[test]
    fn load_gt_reads_the_dev_file() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/aib_boxes_dev.json");
        let gt = load_gt(&p).unwrap();
        assert!(!gt.is_empty());
        assert!(gt.iter().all(|e| e.bboxes().all(|b| b.x2 < e.width && b.y2 < e.height)));
    }

    #[test]
    fn evaluate_picks_best_threshold_and_counts() {
        // Image A (20×10): a bright core [2..=5]×[2..=5] (value 9) inside a dim halo [0..=9]×[0..=9] (value 4).
        // GT box = the halo: threshold ≤ 4/9 gives IoU 1, higher thresholds give 16/100.
        let (w, h) = (20usize, 10usize);
        let mut a = vec![0.0f32; w * h];
        for y in 0..10 {
            for x in 0..10 {
                a[y * w + x] = if (2..=5).contains(&x) && (2..=5).contains(&y) { 9.0 } else { 4.0 };
            }
        }
        let gt_a = GtEntry { file: "a".into(), width: 20, height: 10, class: Some(1), boxes: vec![[0, 0, 9, 9]] };
        // Image B: the map points at the wrong place entirely.
        let mut bm = vec![0.0f32; w * h];
        bm[5 * w + 18] = 1.0;
        let gt_b = GtEntry { file: "b".into(), width: 20, height: 10, class: Some(2), boxes: vec![[0, 0, 4, 4], [0, 0, 9, 9]] };
        let items = [
            EvalItem { gt: &gt_a, map: &a, top1: 7 }, // wrong top-1 class
            EvalItem { gt: &gt_b, map: &bm, top1: 2 },
        ];
        let rep = evaluate(&items, &[0.5, 0.2, 0.3, 0.8]);
        assert_eq!(rep.images, 2);
        // 0.2 and 0.3 tie on everything: the smaller wins.
        assert_eq!(rep.best_threshold, 0.2);
        assert_eq!(rep.gt_known_accuracy, 0.5);
        assert_eq!(rep.top1_accuracy, 0.0);
        assert_eq!(rep.ious, vec![1.0, 0.0]);
        assert_eq!(rep.mean_iou, 0.5);
        // Argmax of A is (2,2), inside its box; B's is (18,5), outside.
        assert_eq!(rep.pointing_game, 0.5);
        let rep = evaluate(&items[..1], &[0.5]);
        assert!((rep.ious[0] - 0.16).abs() < 1e-12);
        assert_eq!(rep.gt_known_accuracy, 0.0);
        // Correct class counts for top-1.
        let items = [EvalItem { gt: &gt_a, map: &a, top1: 1 }];
        // An empty grid means the default threshold, which keeps the halo (t·9 ≤ 4).
        const { assert!(DEFAULT_THRESHOLD <= 4.0 / 9.0) };
        let rep = evaluate(&items, &[]);
        assert_eq!(rep.best_threshold, DEFAULT_THRESHOLD);
        assert_eq!(rep.top1_accuracy, 1.0);
    }
}
