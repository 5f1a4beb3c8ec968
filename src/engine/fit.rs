//! The fit: gates, prefix once per image, suffix per (image, gate) batched over gates, sufficient
//! statistics, ADMM. Progress and cancellation through a callback.
use crate::math::admm::AdmmParams;
use crate::error::{Error, Result};
use crate::engine::fitfile::{FitMeta, LayerFit};
use crate::runtime::model::Model;
use crate::math::objective::Objective;
use crate::math::stats::Stats;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod plan;
use plan::{Plan, Source};

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
    /// Augmented views per image (random resized crops and flips, see [`crate::math::augment`]), fitted
    /// besides the image itself; 0 fits the images as they are.
    pub augment: usize,
    /// 2×2 mosaics per image, tiled from four of the fit's images (see [`crate::math::augment::mosaic`]):
    /// images with several classes, where a class's target falls when other classes' channels stay on.
    pub mosaics: usize,
    /// Solve only these classes (all when None).
    pub classes: Option<Vec<usize>>,
    /// How the gated outputs are computed (see [`StatsPass`]).
    pub pass: StatsPass,
}

/// How a statistics pass computes the gated network's outputs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsPass {
    /// The closed form when the layer feeds global average pooling and a linear head that gives the
    /// output, suffix runs otherwise.
    #[default]
    Auto,
    /// Suffix runs of ONNX Runtime for every gate (any layer).
    Suffix,
    /// The closed form of a GAP→linear head: one product for all gates of a batch of images, no
    /// suffix runs; refused for a layer that does not feed such a head.
    ClosedForm,
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
            pass: StatsPass::Auto,
        }
    }
}

/// Most augmented views per image a fit takes ([`FitOptions::augment`]).
pub const MAX_AUGMENT: usize = 256;
/// Most 2×2 mosaics per image a fit takes ([`FitOptions::mosaics`]).
pub const MAX_MOSAICS: usize = 256;

impl FitOptions {
    /// Bounds of the options that size the work: views and mosaics per image (each image costs
    /// 1 + augment + mosaics runs of every gate; beyond the bounds a typo, not a setting).
    pub fn validate(&self) -> Result<()> {
        if self.augment > MAX_AUGMENT {
            return Err(Error::invalid(format!(
                "augment {} is too many views per image (at most {MAX_AUGMENT}; 0 fits the images as they are)",
                self.augment
            )));
        }
        if self.mosaics > MAX_MOSAICS {
            return Err(Error::invalid(format!(
                "mosaics {} is too many mosaics per image (at most {MAX_MOSAICS}; 0 for none)",
                self.mosaics
            )));
        }
        Ok(())
    }

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
    /// Image files.
    Files(Vec<PathBuf>),
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
    /// Image × gate rows pushed through the suffix (or computed in closed form).
    pub gate_rows: usize,
    /// The gated outputs came from the closed form of a GAP→linear head (no suffix runs).
    pub closed_form: bool,
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
        let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_TEXT_BYTES, "image list")?;
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
    params.validate()?;
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
    // A graph that fixes its batch at 1 runs one image and one gate at a time (the statistics are
    // the same: batching only groups the runs).
    let single;
    let params = match model.fixed_batch() {
        None => params,
        Some(1) => {
            single = FitOptions { image_batch: 1, gate_batch: 1, ..params.clone() };
            &single
        }
        Some(b) => {
            return Err(Error::Model(format!(
                "the model's batch size is fixed at {b}; a fit runs batches of any size: export the model with a dynamic (or a batch-1) input"
            )))
        }
    };
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
        Images::Files(p) => {
            if p.is_empty() {
                return Err(Error::invalid("no images given"));
            }
            (Source::Files(p.clone()), p.len())
        }
        Images::Tensor { data, n } => {
            model.check_batch_len("image tensor", data.len(), *n)?;
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
            batch = crate::math::augment::expand(&batch, photos, ic, ih, iw, params.augment, params.seed);
        }
        pass.t.load += t0.elapsed();
        let name = |i: usize| {
            let (photo, view) = (start + i / rows_per_image, i % rows_per_image);
            if view == 0 { format!("image {photo}") } else { format!("image {photo}, view {view}") }
        };
        plan.run_batch(&mut pass, &batch, photos * rows_per_image, &name, progress)?;
        start += photos;
    }

    let picks = crate::math::augment::mosaic_picks(n_images, n_mosaics, params.seed);
    let mut tiles = Vec::<f32>::new();
    for (first, chunk) in picks.chunks(params.image_batch).enumerate().map(|(i, c)| (i * params.image_batch, c)) {
        let t0 = Instant::now();
        batch.clear();
        for pick in chunk {
            tiles.clear();
            for &i in pick {
                source.load(model, i..i + 1, image_len, &mut tiles)?;
            }
            batch.extend(crate::math::augment::mosaic(&tiles, ic, ih, iw));
        }
        pass.t.load += t0.elapsed();
        let name = |i: usize| format!("mosaic {} of images {:?}", first + i, chunk[i]);
        plan.run_batch(&mut pass, &batch, chunk.len(), &name, progress)?;
    }
    // What the statistics belong to, so that shards of another model or layer are refused.
    let mut stats = pass.stats;
    stats.model_fingerprint = model.fingerprint.clone();
    stats.preprocess = model.spec.canonical_text();
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
            crate::math::stats::short(&stats.model_fingerprint),
            crate::math::stats::short(&model.fingerprint)
        )));
    }
    if !stats.preprocess.is_empty() && stats.preprocess != model.spec.canonical_text() {
        return Err(Error::FitMismatch(format!(
            "statistics were collected under another preprocessing ({}); load the model with the spec they were collected with",
            crate::math::stats::preprocess_differences(&stats.preprocess, &model.spec.canonical_text())
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
    let (weights, _reports) = crate::math::admm::solve_all(stats, Some(&solved), &params.admm, &params.objective, &|done| {
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
        preprocess: Some(model.spec.canonical()),
    };
    Ok(LayerFit { meta, weights })
}

/// collect_stats then solve.
pub fn fit_layer(model: &Model, layer: &str, images: &Images, params: &FitOptions, progress: ProgressFn) -> Result<LayerFit> {
    let stats = collect_stats(model, layer, images, params, progress)?;
    solve(model, layer, &stats, params, progress)
}
