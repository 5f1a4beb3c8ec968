//! `chip fit` and `chip merge`.
use super::*;
use sha2::Digest;

#[derive(Args)]
pub(crate) struct FitArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Layer (tensor) name, as `chip layers` lists it.
    #[arg(long)]
    pub(crate) layer: String,
    /// A folder of images, or a text file with one image path per line.
    #[arg(long)]
    pub(crate) images: PathBuf,
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Number of random gate sets.
    #[arg(long, default_value_t = FitOptions::default().gates)]
    pub(crate) gates: usize,
    /// λ relative to the smallest λ that gives an all-zero row.
    #[arg(long, alias = "lambda", default_value_t = FitOptions::default().admm.lambda_rel)]
    pub(crate) lambda_rel: f64,
    /// σ² of the gate weighting, relative to the number of channels.
    #[arg(long, alias = "sigma2", default_value_t = FitOptions::default().sigma2_rel)]
    pub(crate) sigma2_rel: f64,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Classes to solve, e.g. `1,5,10-20` (default: all).
    #[arg(long, value_parser = parse_class_list)]
    pub(crate) classes: Option<ClassList>,
    /// Gates per suffix run.
    #[arg(long, default_value_t = FitOptions::default().gate_batch)]
    pub(crate) gate_batch: usize,
    /// Images per prefix run.
    #[arg(long, default_value_t = FitOptions::default().image_batch)]
    pub(crate) image_batch: usize,
    #[command(flatten)]
    pub(crate) objective: ObjectiveArgs,
    /// Augmented views per image (seeded random resized crops and flips), fitted besides each image.
    #[arg(long, default_value_t = 0)]
    pub(crate) augment: usize,
    /// 2×2 mosaics per image, each tiled from four of the fit's images (seeded).
    #[arg(long, default_value_t = FitOptions::default().mosaics)]
    pub(crate) mosaics: usize,
    /// Write the statistics of these images (a shard) to --out instead of solving; combine shards
    /// with `chip merge`. Mosaics are tiled within a shard: shards equal one fit with --mosaics 0.
    #[arg(long)]
    pub(crate) stats_only: bool,
}

/// The regression each class's linear model solves (`chip fit` and `chip merge`).
#[derive(Args)]
pub(crate) struct ObjectiveArgs {
    /// The regression: `default` (log-probability target with an intercept) or `paper` (the CHIP paper's:
    /// probability target, no intercept). --target, --intercept and --nonneg override its parts.
    #[arg(long, default_value = "default")]
    pub(crate) objective: String,
    /// What each class's linear model regresses: probability, logit or log-probability.
    #[arg(long)]
    pub(crate) target: Option<String>,
    /// An unpenalised per-class intercept (true or false).
    #[arg(long)]
    pub(crate) intercept: Option<bool>,
    /// Constrain the weights to be ≥ 0 (true or false).
    #[arg(long)]
    pub(crate) nonneg: Option<bool>,
}

impl ObjectiveArgs {
    /// --objective with its --target, --intercept and --nonneg overrides.
    pub(crate) fn resolve(&self) -> Result<chip::math::objective::Objective> {
        let mut objective = chip::math::objective::Objective::preset(&self.objective)?;
        if let Some(t) = &self.target {
            objective.target = chip::math::objective::Target::parse(t)?;
        }
        objective.intercept = self.intercept.unwrap_or(objective.intercept);
        objective.nonneg = self.nonneg.unwrap_or(objective.nonneg);
        Ok(objective)
    }
}

#[derive(Args)]
pub(crate) struct MergeArgs {
    /// Statistics files written by `chip fit --stats-only`, all of one model, layer, gate set and seed.
    #[arg(required = true, value_name = "STATS")]
    pub(crate) stats: Vec<PathBuf>,
    /// The model the statistics were collected on.
    #[arg(long)]
    pub(crate) model: PathBuf,
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// λ relative to the smallest λ that gives an all-zero row.
    #[arg(long, alias = "lambda", default_value_t = FitOptions::default().admm.lambda_rel)]
    pub(crate) lambda_rel: f64,
    /// Classes to solve, e.g. `1,5,10-20` (default: all).
    #[arg(long, value_parser = parse_class_list)]
    pub(crate) classes: Option<ClassList>,
    /// As for `chip fit`; the target must be the one the statistics were collected for.
    #[command(flatten)]
    pub(crate) objective: ObjectiveArgs,
}


// --------------------------------------------------------------------------------------- fit --

pub(crate) fn fit(a: FitArgs, rt: &RuntimeOptions) -> Result<()> {
    if a.gates == 0 {
        return Err(Error::invalid("--gates must be at least 1"));
    }
    check_lambda(a.lambda_rel)?;
    if !(a.sigma2_rel.is_finite() && a.sigma2_rel > 0.0) {
        return Err(Error::invalid(format!("--sigma2-rel {} must be a finite number > 0", a.sigma2_rel)));
    }
    if !a.images.exists() {
        return Err(Error::io(&a.images, std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder or list file")));
    }
    refuse_output_is_input(&a.out, &[("image list", &a.images), ("model", &a.model)])?;
    // The fit can take minutes: a place it cannot write to fails now, not after.
    chip::util::atomic::check_writable(&a.out)?;
    let model = load_model(&a.model, rt)?;
    // Fail on a bad layer name before any image is read.
    let channels = model.layer(&a.layer)?.channels;
    if chip::math::gates::check_sigma2(a.sigma2_rel, &a.layer, channels).is_err() {
        return Err(Error::invalid(format!(
            "--sigma2-rel {:?} is too small for layer '{}' ({channels} channels): every gate with a closed channel \
             would get proximity 0 and every weight would be zero",
            a.sigma2_rel, a.layer
        )));
    }
    check_classes(&a.classes, &model)?;
    let objective = a.objective.resolve()?;
    let mut params = FitOptions {
        gates: a.gates,
        sigma2_rel: a.sigma2_rel,
        seed: a.seed,
        gate_batch: a.gate_batch.max(1),
        image_batch: a.image_batch.max(1),
        objective,
        augment: a.augment,
        mosaics: a.mosaics,
        ..FitOptions::default()
    };
    params.admm.lambda_rel = a.lambda_rel;
    params.classes = a.classes.map(|c| c.0);
    let (pb, progress) = fit_progress();
    let t0 = std::time::Instant::now();
    let images = Images::Dir(a.images.clone());
    if a.stats_only {
        let stats = chip::engine::fit::collect_stats(&model, &a.layer, &images, &params, &progress)?;
        pb.finish_and_clear();
        stats.save(&a.out)?;
        eprintln!(
            "statistics of layer '{}' on {} images x {} gates ({} views, {} mosaics per image), in {:.1}s -> {}",
            stats.layer, stats.images, stats.gate_count, stats.augment, stats.mosaics, t0.elapsed().as_secs_f64(),
            a.out.display()
        );
        return Ok(());
    }
    let fit = chip::engine::fit::fit_layer(&model, &a.layer, &images, &params, &progress)?;
    pb.finish_and_clear();
    fit.save(&a.out)?;
    report_fit(&fit, &a.out, t0);
    Ok(())
}

pub(crate) fn merge(a: MergeArgs, rt: &RuntimeOptions) -> Result<()> {
    check_lambda(a.lambda_rel)?;
    let mut inputs: Vec<(&str, &Path)> = a.stats.iter().map(|p| ("statistics file", p.as_path())).collect();
    inputs.push(("model", &a.model));
    refuse_output_is_input(&a.out, &inputs)?;
    // One shard given twice (the same file, or a copy of it) would count its images twice.
    for (i, p) in a.stats.iter().enumerate() {
        if let Some(q) = a.stats[..i].iter().find(|q| same_file(p, q)) {
            return Err(Error::invalid(format!(
                "statistics file {} is given twice (also as {}): its images would be counted twice",
                p.display(),
                q.display()
            )));
        }
    }
    chip::util::atomic::check_writable(&a.out)?;
    let model = load_model(&a.model, rt)?;
    check_classes(&a.classes, &model)?;
    let mut params = FitOptions { objective: a.objective.resolve()?, ..FitOptions::default() };
    params.admm.lambda_rel = a.lambda_rel;
    params.classes = a.classes.map(|c| c.0);
    let mut stats = chip::math::stats::Stats::load(&a.stats[0])?;
    let digest = |s: &chip::math::stats::Stats| sha2::Sha256::digest(s.to_bytes()).to_vec();
    let mut seen = vec![digest(&stats)];
    for (i, path) in a.stats.iter().enumerate().skip(1) {
        let shard = chip::math::stats::Stats::load(path)?;
        let d = digest(&shard);
        if let Some(j) = seen.iter().position(|s| *s == d) {
            return Err(Error::invalid(format!(
                "statistics files {} and {} hold the same statistics (a copy of one shard): its images would be counted twice",
                a.stats[j].display(),
                a.stats[i].display()
            )));
        }
        seen.push(d);
        stats.merge(&shard).map_err(|e| match e {
            Error::FitMismatch(m) => Error::FitMismatch(format!("{} and {}: {m}", path.display(), a.stats[0].display())),
            e => e,
        })?;
    }
    let (pb, progress) = fit_progress();
    let t0 = std::time::Instant::now();
    let fit = chip::engine::fit::solve(&model, &stats.layer, &stats, &params, &progress)?;
    pb.finish_and_clear();
    fit.save(&a.out)?;
    report_fit(&fit, &a.out, t0);
    Ok(())
}

pub(crate) fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda.is_finite() && (0.0..1.0).contains(&lambda)) {
        return Err(Error::invalid(format!(
            "--lambda-rel {lambda:?} must be ≥ 0 and < 1 (it is relative to the smallest lambda that zeroes a class)"
        )));
    }
    Ok(())
}

pub(crate) fn check_classes(classes: &Option<ClassList>, model: &Model) -> Result<()> {
    if let Some(ClassList(c)) = classes {
        if let Some(bad) = c.iter().find(|&&c| c >= model.classes) {
            return Err(Error::invalid(format!("class {bad} is out of range: the model has {} classes", model.classes)));
        }
    }
    Ok(())
}

/// A progress bar that follows the stages of a fit.
pub(crate) fn fit_progress() -> (ProgressBar, impl Fn(Progress) -> bool + Sync) {
    let pb = bar(0, "images");
    let shown = pb.clone();
    let phase = parking_lot::Mutex::new(0u8);
    let progress = move |p: Progress| {
        let (id, name, done, total) = match p {
            Progress::Images { done, total } => (1, "images", done, total),
            Progress::SuffixRuns { done, total } => (2, "gated runs", done, total),
            Progress::Classes { done, total } => (3, "classes", done, total),
        };
        let mut ph = phase.lock();
        if *ph != id {
            *ph = id;
            pb.reset();
            pb.set_message(name);
        }
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        true
    };
    (shown, progress)
}

/// The one-line summary of a written fit, and a warning for solved classes that came out all zero.
pub(crate) fn report_fit(fit: &LayerFit, out: &Path, t0: std::time::Instant) {
    let m = &fit.meta;
    let rows = fit.solved();
    let sparsity = chip::math::inspect::sparsity(&fit.weights, m.channels, &rows);
    let zero = chip::math::inspect::zero_rows(&fit.weights, m.channels, &rows);
    eprintln!(
        "fitted layer '{}' ({}x{}x{}) on {} images x {} gates ({}), {} classes solved ({} all zero), {:.1}% zero weights, in {:.1}s -> {}",
        m.layer, m.channels, m.height, m.width, m.images, m.gates, m.objective.describe(), rows.len(), zero.len(), 100.0 * sparsity,
        t0.elapsed().as_secs_f64(), out.display()
    );
    if !zero.is_empty() {
        let list: Vec<String> = zero.iter().take(10).map(|c| c.to_string()).collect();
        eprintln!(
            "chip: warning: {} of {} solved classes have all-zero weights (their maps will be empty): {}{}; \
             the photos may not show them, or --lambda-rel is too large",
            zero.len(), rows.len(), list.join(", "), if zero.len() > 10 { ", ..." } else { "" }
        );
    }
}
