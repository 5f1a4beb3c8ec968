//! The fit: gates, prefix once per image, suffix per (image, gate) batched over gates, sufficient
//! statistics, ADMM. Progress and cancellation through a callback.
use crate::admm::AdmmParams;
use crate::error::{Error, Result};
use crate::fitfile::{FitMeta, LayerFit};
use crate::gates::GateSet;
use crate::model::{Model, OutputKind};
use crate::objective::Objective;
use crate::objective::Target;
use crate::stats::Stats;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, PartialEq)]
pub struct FitOptions {
    pub gates: usize,
    /// σ² relative to K.
    pub sigma2_rel: f64,
    pub seed: u64,
    /// Gates per suffix run.
    pub gate_batch: usize,
    /// Images per prefix run.
    pub image_batch: usize,
    pub admm: AdmmParams,
    /// What each class's linear model regresses (target, intercept, sign constraint).
    pub objective: Objective,
    /// Augmented views per image (random resized crops and flips, see [`crate::augment`]), fitted
    /// besides the image itself; 0 fits the images as they are.
    pub augment: usize,
    /// 2×2 mosaics per image, tiled from four of the fit's images (see [`crate::augment::mosaic`]):
    /// images with several classes, where a class's target falls when other classes' channels stay on.
    pub mosaics: usize,
    /// Solve only these classes (all when None).
    pub classes: Option<Vec<usize>>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            gates: 256,
            sigma2_rel: 0.5,
            seed: 0,
            gate_batch: 64,
            image_batch: 8,
            admm: AdmmParams::default(),
            objective: Objective::DEFAULT,
            augment: 0,
            mosaics: 2,
            classes: None,
        }
    }
}

impl FitOptions {
    /// The CHIP paper's configuration: probability target without intercept, the images alone (no
    /// mosaics, no views), λ 0.05·λ_max; the other parameters as in [`FitOptions::default`].
    pub fn paper() -> Self {
        let mut p = FitOptions { objective: Objective::PAPER, mosaics: 0, augment: 0, ..FitOptions::default() };
        p.admm.lambda_rel = 0.05;
        p
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
    /// Encoded images in memory (PNG, JPEG, ...), decoded one batch at a time.
    Encoded(Vec<&'a [u8]>),
}

/// Where the time of a statistics pass went (wall clock, summed over the pass).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitTimings {
    /// Decoding and preprocessing image files.
    pub load: Duration,
    /// Prefix runs (once per image batch).
    pub prefix: Duration,
    /// Suffix runs on the ungated layer, for the original probabilities f_s.
    pub original: Duration,
    /// Building the gated suffix inputs (masking, tiling).
    pub build: Duration,
    /// Gated suffix runs, including turning outputs into probabilities.
    pub suffix: Duration,
    /// Accumulating the statistics.
    pub stats: Duration,
    pub images: usize,
    pub suffix_runs: usize,
    /// Image × gate rows pushed through the suffix.
    pub gate_rows: usize,
}

impl FitTimings {
    pub fn total(&self) -> Duration { self.load + self.prefix + self.original + self.build + self.suffix + self.stats }
}

const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// Sorted image files (jpg, jpeg, png, bmp, tif, tiff, webp) in a folder, or the lines of a list file.
pub fn list_images(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let files = if meta.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            let p = entry.path();
            let is_image = p
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                .unwrap_or(false);
            if is_image && p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(Error::invalid(format!(
                "no image files ({}) in folder {}",
                IMAGE_EXTENSIONS.join(", "),
                path.display()
            )));
        }
        files
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::invalid(format!("image list {} is not valid UTF-8 (byte {})", path.display(), e.utf8_error().valid_up_to())))?;
        // Relative entries are relative to the list file, so a list travels with its images.
        let base = path.parent().unwrap_or(Path::new(""));
        let files: Vec<PathBuf> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                let p = PathBuf::from(l);
                if p.is_absolute() { p } else { base.join(p) }
            })
            .collect();
        if files.is_empty() {
            return Err(Error::invalid(format!("image list {} names no images", path.display())));
        }
        files
    };
    Ok(files)
}

fn check_params(params: &FitOptions) -> Result<()> {
    if params.gates == 0 {
        return Err(Error::invalid("gates must be at least 1"));
    }
    if params.gate_batch == 0 {
        return Err(Error::invalid("gate_batch must be at least 1"));
    }
    if params.image_batch == 0 {
        return Err(Error::invalid("image_batch must be at least 1"));
    }
    if !(params.sigma2_rel.is_finite() && params.sigma2_rel > 0.0) {
        return Err(Error::invalid(format!("sigma2_rel must be positive and finite, got {}", params.sigma2_rel)));
    }
    // λ_rel is relative to the smallest λ that zeroes a class: from 1 on every row is zero.
    let l = params.admm.lambda_rel;
    if !(l.is_finite() && (0.0..1.0).contains(&l)) {
        return Err(Error::invalid(format!("lambda_rel must be ≥ 0 and < 1 (at 1 or more every weight is zero), got {l:?}")));
    }
    Ok(())
}

enum Source<'a> {
    Files(Vec<PathBuf>),
    Tensor(&'a [f32]),
    Encoded(&'a [&'a [u8]]),
}

impl Source<'_> {
    /// Preprocessed images `range` of the source, appended to `out`.
    fn load(&self, model: &Model, range: std::ops::Range<usize>, image_len: usize, out: &mut Vec<f32>) -> Result<()> {
        match self {
            Source::Tensor(d) => out.extend_from_slice(&d[range.start * image_len..range.end * image_len]),
            Source::Files(files) => {
                for p in &files[range] {
                    let prepared = model.preprocess.load(p)?;
                    if prepared.data.len() != image_len {
                        return Err(Error::Image {
                            what: p.display().to_string(),
                            msg: format!("preprocessed to {} floats, the model takes {}", prepared.data.len(), image_len),
                        });
                    }
                    out.extend_from_slice(&prepared.data);
                }
            }
            Source::Encoded(bufs) => {
                for (i, b) in bufs[range.clone()].iter().enumerate() {
                    let prepared = model.preprocess.decode(b)?;
                    if prepared.data.len() != image_len {
                        return Err(Error::Image {
                            what: format!("image {}", range.start + i),
                            msg: format!("preprocessed to {} floats, the model takes {}", prepared.data.len(), image_len),
                        });
                    }
                    out.extend_from_slice(&prepared.data);
                }
            }
        }
        Ok(())
    }
}

/// A statistics pass resolved once: the layer, the split and its ports, the gates, the target.
struct Plan<'m> {
    model: &'m Model,
    layer: String,
    /// Layer channels, height, width.
    k: usize,
    h: usize,
    w: usize,
    split: std::sync::Arc<crate::model::SplitRunner>,
    gates: GateSet,
    gate_batch: usize,
    suffix_inputs: Vec<String>,
    /// For each suffix input, its index among the prefix outputs.
    crossing_pos: Vec<usize>,
    /// The layer's index among the suffix inputs.
    layer_input: usize,
    out_index: usize,
    target: Target,
    is_logits: bool,
}

/// Buffers reused across batches, the statistics and the running totals of a pass.
struct Pass {
    tiled: Vec<Vec<f32>>,
    shapes: Vec<Vec<usize>>,
    g: Vec<f32>,
    z: Vec<f32>,
    stats: Stats,
    t: FitTimings,
    runs_done: usize,
    total_runs: usize,
    rows_done: usize,
    total_rows: usize,
}

impl<'m> Plan<'m> {
    fn new(model: &'m Model, layer: &str, params: &FitOptions) -> Result<Self> {
        let info = model.layer(layer)?;
        let (k, h, w) = (info.channels, info.height, info.width);
        crate::gates::check_sigma2(params.sigma2_rel, layer, k)?;
        crate::gates::check_count(params.gates, k)?;
        let gates = GateSet::generate(k, params.gates, params.sigma2_rel, params.seed);
        let split = model.split(layer)?;
        let prefix_outputs = split.prefix.output_names().to_vec();
        let suffix_inputs = split.suffix.input_names().to_vec();
        let suffix_outputs = split.suffix.output_names().to_vec();
        // Every suffix input must come out of the prefix; the layer is crossing[0].
        let crossing_pos: Vec<usize> = suffix_inputs
            .iter()
            .map(|name| {
                prefix_outputs.iter().position(|p| p == name).ok_or_else(|| {
                    Error::Model(format!("split at '{layer}': suffix input '{name}' is not an output of the prefix"))
                })
            })
            .collect::<Result<_>>()?;
        let layer_input = suffix_inputs
            .iter()
            .position(|n| n == &split.crossing[0])
            .ok_or_else(|| Error::Model(format!("split at '{layer}': the layer is not an input of the suffix")))?;
        let out_index = suffix_outputs.iter().position(|n| n == &model.output).ok_or_else(|| {
            Error::Model(format!("split at '{layer}': the suffix does not produce the output '{}'", model.output))
        })?;
        Ok(Plan {
            model,
            layer: layer.to_string(),
            k,
            h,
            w,
            gate_batch: params.gate_batch.min(gates.count),
            gates,
            split,
            suffix_inputs,
            crossing_pos,
            layer_input,
            out_index,
            target: params.objective.target,
            is_logits: model.output_kind == OutputKind::Logits,
        })
    }

    fn pass(&self, total_rows: usize) -> Pass {
        let n_in = self.suffix_inputs.len();
        Pass {
            tiled: vec![Vec::new(); n_in],
            shapes: vec![Vec::new(); n_in],
            g: vec![0f32; self.gates.count * self.model.classes],
            z: vec![0f32; self.k],
            stats: Stats::new(&self.gates, self.model.classes, self.target),
            t: FitTimings::default(),
            runs_done: 0,
            total_runs: total_rows * self.gates.count.div_ceil(self.gate_batch),
            rows_done: 0,
            total_rows,
        }
    }

    /// Adds `b` preprocessed images (b×C×H×W) to the pass: the prefix once, the ungated suffix for
    /// f, the gated suffix per gate batch for g. `name(i)` names image i of the batch in errors.
    fn run_batch(&self, pass: &mut Pass, data: &[f32], b: usize, name: &dyn Fn(usize) -> String, progress: ProgressFn) -> Result<()> {
        let (model, layer, k, h, w) = (self.model, self.layer.as_str(), self.k, self.h, self.w);
        let hw = h * w;
        let classes = model.classes;
        let (iw, ih) = model.input_size().as_usize();
        let ic = model.input.channels;
        let n_gates = self.gates.count;
        let gate_batch = self.gate_batch;
        let t = &mut pass.t;

        let t0 = Instant::now();
        let prefix_out = self.split.prefix.run(&[(model.input.name.as_str(), &[b, ic, ih, iw], data)])?;
        t.prefix += t0.elapsed();

        // Each crossing tensor as produced, batch first.
        let crossing: Vec<&(Vec<usize>, Vec<f32>)> = self.crossing_pos.iter().map(|&i| &prefix_out[i]).collect();
        for (i, (shape, values)) in crossing.iter().enumerate() {
            if shape.first() != Some(&b) || values.len() % b != 0 {
                return Err(Error::Model(format!(
                    "split at '{layer}': crossing tensor '{}' has shape {:?}, expected batch {b} first",
                    self.suffix_inputs[i], shape
                )));
            }
        }
        let (lshape, lact) = crossing[self.layer_input];
        if lshape.len() != 4 || lshape[1] != k || lshape[2] != h || lshape[3] != w {
            return Err(Error::Model(format!("layer '{layer}' has shape {:?} in the fit, expected [{b}, {k}, {h}, {w}]", lshape)));
        }
        if let Some(i) = lact.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("activations of layer '{layer}' ({})", name(i / (k * hw)))));
        }

        // Original probabilities from the ungated suffix: the same graph as the gated runs, so an
        // all-open gate reproduces f exactly.
        let t0 = Instant::now();
        let orig_inputs: Vec<(&str, &[usize], &[f32])> = self
            .suffix_inputs
            .iter()
            .zip(&crossing)
            .map(|(name, (s, v))| (name.as_str(), s.as_slice(), v.as_slice()))
            .collect();
        let mut orig = self.split.suffix.run(&orig_inputs)?.swap_remove(self.out_index).1;
        if orig.len() != b * classes {
            return Err(Error::Model(format!("model output has {} values for {b} images, expected {}", orig.len(), b * classes)));
        }
        model.to_probabilities(&mut orig);
        t.original += t0.elapsed();
        if let Some(i) = orig.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("model output ({})", name(i / classes))));
        }

        for i in 0..b {
            let act = &lact[i * k * hw..(i + 1) * k * hw];
            for (c, zc) in pass.z.iter_mut().enumerate() {
                let s: f64 = act[c * hw..(c + 1) * hw].iter().map(|&v| v as f64).sum();
                *zc = (s / hw as f64) as f32;
            }
            let f_s = &orig[i * classes..(i + 1) * classes];

            // Tile the other crossing tensors once per image; every gate batch reuses them.
            let t0 = Instant::now();
            for (j, (shape, values)) in crossing.iter().enumerate() {
                let per = values.len() / b;
                let buf = &mut pass.tiled[j];
                buf.resize(gate_batch * per, 0.0);
                let mut s = shape.clone();
                s[0] = gate_batch;
                pass.shapes[j] = s;
                if j != self.layer_input {
                    let one = &values[i * per..(i + 1) * per];
                    for row in buf.chunks_exact_mut(per) {
                        row.copy_from_slice(one);
                    }
                }
            }
            t.build += t0.elapsed();

            for n0 in (0..n_gates).step_by(gate_batch) {
                let rows = gate_batch.min(n_gates - n0);
                let t0 = Instant::now();
                let layer_buf = &mut pass.tiled[self.layer_input];
                for r in 0..rows {
                    let gate = self.gates.gate(n0 + r);
                    let dst = &mut layer_buf[r * k * hw..(r + 1) * k * hw];
                    for (c, (d, src)) in dst.chunks_exact_mut(hw).zip(act.chunks_exact(hw)).enumerate() {
                        if gate[c] != 0 { d.copy_from_slice(src) } else { d.fill(0.0) }
                    }
                }
                t.build += t0.elapsed();

                let t0 = Instant::now();
                let run_shapes: Vec<Vec<usize>> = pass
                    .shapes
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        s[0] = rows;
                        s
                    })
                    .collect();
                let inputs: Vec<(&str, &[usize], &[f32])> = self
                    .suffix_inputs
                    .iter()
                    .zip(&run_shapes)
                    .zip(&pass.tiled)
                    .map(|((name, s), buf)| {
                        let per = buf.len() / gate_batch;
                        (name.as_str(), s.as_slice(), &buf[..rows * per])
                    })
                    .collect();
                let out = self.split.suffix.run(&inputs)?;
                let raw = &out[self.out_index].1;
                if raw.len() != rows * classes {
                    return Err(Error::Model(format!(
                        "suffix output has {} values for {rows} gates, expected {}",
                        raw.len(),
                        rows * classes
                    )));
                }
                let dst = &mut pass.g[n0 * classes..(n0 + rows) * classes];
                dst.copy_from_slice(raw);
                for row in dst.chunks_exact_mut(classes) {
                    self.target.apply(row, self.is_logits);
                }
                t.suffix += t0.elapsed();
                t.suffix_runs += 1;
                t.gate_rows += rows;
                pass.runs_done += 1;
                if !progress(Progress::SuffixRuns { done: pass.runs_done, total: pass.total_runs }) {
                    return Err(Error::Cancelled);
                }
            }
            if let Some(idx) = pass.g.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!("gated model output ({}, gate {})", name(i), idx / classes)));
            }

            let t0 = Instant::now();
            pass.stats.add_image(&self.gates, &pass.z, f_s, &pass.g)?;
            t.stats += t0.elapsed();
            pass.rows_done += 1;
            t.images = pass.rows_done;
            if !progress(Progress::Images { done: pass.rows_done, total: pass.total_rows }) {
                return Err(Error::Cancelled);
            }
        }
        Ok(())
    }
}

/// Gathers the statistics of one layer (shardable: merge the results of several calls).
pub fn collect_stats(model: &Model, layer: &str, images: &Images, params: &FitOptions, progress: ProgressFn) -> Result<Stats> {
    collect_stats_timed(model, layer, images, params, progress).map(|(s, _)| s)
}

/// [`collect_stats`] that also reports where the time went. The images (each followed by its
/// augmented views) stream through the plan in batches, then the mosaics built from them.
pub fn collect_stats_timed(
    model: &Model,
    layer: &str,
    images: &Images,
    params: &FitOptions,
    progress: ProgressFn,
) -> Result<(Stats, FitTimings)> {
    check_params(params)?;
    let plan = Plan::new(model, layer, params)?;
    let (iw, ih) = model.input_size().as_usize();
    let ic = model.input.channels;
    let image_len = ic * ih * iw;

    let (source, n_images) = match images {
        Images::Dir(p) => {
            let files = list_images(p)?;
            let n = files.len();
            (Source::Files(files), n)
        }
        Images::Paths(p) => {
            if p.is_empty() {
                return Err(Error::invalid("no images given"));
            }
            (Source::Files(p.clone()), p.len())
        }
        Images::Tensor { data, n } => {
            if *n == 0 {
                return Err(Error::invalid("image tensor holds no images (n = 0)"));
            }
            if data.len() != n * image_len {
                return Err(Error::invalid(format!(
                    "image tensor has {} floats, expected n×{}×{}×{} = {}",
                    data.len(),
                    ic,
                    ih,
                    iw,
                    n * image_len
                )));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!("image tensor (image {}, value {})", i / image_len, i % image_len)));
            }
            (Source::Tensor(data), *n)
        }
        Images::Encoded(bufs) => {
            if bufs.is_empty() {
                return Err(Error::invalid("no images given"));
            }
            (Source::Encoded(bufs), bufs.len())
        }
    };
    let n_mosaics = params.mosaics * n_images;
    let rows_per_image = 1 + params.augment;
    let mut pass = plan.pass(n_images * rows_per_image + n_mosaics);
    let mut batch = Vec::<f32>::new();

    let mut start = 0usize;
    while start < n_images {
        let photos = params.image_batch.min(n_images - start);
        let t0 = Instant::now();
        batch.clear();
        source.load(model, start..start + photos, image_len, &mut batch)?;
        // Rows of this batch: each photo, then its augmented views.
        if params.augment > 0 {
            batch = crate::augment::expand(&batch, photos, ic, ih, iw, params.augment, params.seed);
        }
        pass.t.load += t0.elapsed();
        let name = |i: usize| {
            let (photo, view) = (start + i / rows_per_image, i % rows_per_image);
            if view == 0 { format!("image {photo}") } else { format!("image {photo}, view {view}") }
        };
        plan.run_batch(&mut pass, &batch, photos * rows_per_image, &name, progress)?;
        start += photos;
    }

    let picks = crate::augment::mosaic_picks(n_images, n_mosaics, params.seed);
    let mut tiles = Vec::<f32>::new();
    for (first, chunk) in picks.chunks(params.image_batch).enumerate().map(|(i, c)| (i * params.image_batch, c)) {
        let t0 = Instant::now();
        batch.clear();
        for pick in chunk {
            tiles.clear();
            for &i in pick {
                source.load(model, i..i + 1, image_len, &mut tiles)?;
            }
            batch.extend(crate::augment::mosaic(&tiles, ic, ih, iw));
        }
        pass.t.load += t0.elapsed();
        let name = |i: usize| format!("mosaic {} of images {:?}", first + i, chunk[i]);
        plan.run_batch(&mut pass, &batch, chunk.len(), &name, progress)?;
    }
    // What the statistics belong to, so that shards of another model or layer are refused.
    let mut stats = pass.stats;
    stats.model_fingerprint = model.fingerprint.clone();
    stats.layer = layer.to_string();
    stats.augment = params.augment;
    stats.mosaics = params.mosaics;
    Ok((stats, pass.t))
}

/// Solves statistics into a fitted layer.
pub fn solve(model: &Model, layer: &str, stats: &Stats, params: &FitOptions, progress: ProgressFn) -> Result<LayerFit> {
    let info = model.layer(layer)?;
    if stats.layer != layer {
        return Err(Error::FitMismatch(format!(
            "statistics were collected at layer '{}', not '{layer}'",
            stats.layer
        )));
    }
    if stats.model_fingerprint != model.fingerprint {
        return Err(Error::FitMismatch(format!(
            "statistics were collected on another model (fingerprint {}, this model's is {})",
            crate::stats::short(&stats.model_fingerprint),
            crate::stats::short(&model.fingerprint)
        )));
    }
    if stats.channels != info.channels {
        return Err(Error::FitMismatch(format!(
            "statistics have {} channels, layer '{layer}' has {}",
            stats.channels, info.channels
        )));
    }
    if stats.classes != model.classes {
        return Err(Error::FitMismatch(format!("statistics have {} classes, the model has {}", stats.classes, model.classes)));
    }
    if stats.images == 0 {
        return Err(Error::invalid("statistics hold no images"));
    }
    let solved: Vec<usize> = match &params.classes {
        Some(c) => {
            if c.is_empty() {
                return Err(Error::invalid("the list of classes to solve is empty"));
            }
            if let Some(&bad) = c.iter().find(|&&c| c >= model.classes) {
                return Err(Error::invalid(format!("class {bad} out of range (the model has {} classes)", model.classes)));
            }
            let mut c = c.clone();
            c.sort_unstable();
            c.dedup();
            c
        }
        None => (0..model.classes).collect(),
    };
    let total = solved.len();
    if stats.target != params.objective.target {
        return Err(Error::FitMismatch(format!(
            "statistics were gathered for the {} target, the objective asks for {}",
            stats.target.name(),
            params.objective.target.name()
        )));
    }
    let (weights, _reports) = crate::admm::solve_all(stats, Some(&solved), &params.admm, &params.objective, &|done| {
        progress(Progress::Classes { done, total })
    })?;
    let meta = FitMeta {
        layer: layer.to_string(),
        channels: info.channels,
        height: info.height,
        width: info.width,
        classes: model.classes,
        model_fingerprint: model.fingerprint.clone(),
        // The gate identity is taken from the statistics: that is what the fit was gathered with.
        gates: stats.gate_count,
        sigma2_rel: stats.sigma2_rel,
        seed: stats.gate_seed,
        images: stats.images,
        admm: params.admm.clone(),
        objective: params.objective,
        // Views and mosaics are what the statistics were collected with.
        augment: stats.augment,
        mosaics: stats.mosaics,
        solved_classes: solved,
    };
    Ok(LayerFit { meta, weights })
}

/// collect_stats then solve.
pub fn fit_layer(model: &Model, layer: &str, images: &Images, params: &FitOptions, progress: ProgressFn) -> Result<LayerFit> {
    let stats = collect_stats(model, layer, images, params, progress)?;
    solve(model, layer, &stats, params, progress)
}
