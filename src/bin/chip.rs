//! The `chip` command line: list layers, fit a layer, explain photos, evaluate localization,
//! inspect a fit. Errors print as `chip: <message>` and exit with status 1.
use chip::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation, Map};
use chip::fit::{FitOptions, Images, Progress};
use chip::fitfile::LayerFit;
use chip::localize::{BBox, EvalItem, GtEntry, LocReport};
use chip::model::Model;
use chip::runtime::{Device, RuntimeOptions};
use chip::{Error, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Parser)]
#[command(name = "chip", version, about = "CHIP: channel-wise disentangled interpretation of image classifiers")]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct RuntimeArgs {
    /// Path of libonnxruntime.so (else CHIP_ORT_LIB, then the usual places).
    #[arg(long, global = true, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu", value_parser = parse_device)]
    device: Device,
    /// Intra-op threads per ONNX Runtime session (0: its own choice; at most 1024).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
}

#[derive(Subcommand)]
enum Command {
    /// List the model's candidate layers with their activation shapes.
    Layers {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Fit a layer's class-by-channel importance and write it to a .chip file.
    Fit(FitArgs),
    /// Merge the statistics of shards (`chip fit --stats-only`) and solve them into a .chip file.
    Merge(MergeArgs),
    /// Explain photos: overlays with boxes, optionally maps as .npy and JSON lines.
    Explain(ExplainArgs),
    /// Evaluate weakly-supervised localization against ground-truth boxes.
    EvalLoc(EvalArgs),
    /// Score maps on localization, class discrimination and faithfulness, methods side by side
    /// with 95% bootstrap intervals and paired differences to a reference method.
    Eval(QualityArgs),
    /// Build 2×2 mosaics of photos of different top-1 classes, for the class-discrimination score.
    Mosaic(MosaicArgs),
    /// Show a fit's top channels, sparsity and channel overlap between classes.
    Inspect(InspectArgs),
    /// Write the model with CHIP maps computed inside the ONNX graph (outputs chip_class, chip_maps,
    /// chip_refined), to be served by any ONNX runtime.
    Export(ExportArgs),
}

#[derive(Args)]
struct FitArgs {
    #[arg(long)]
    model: PathBuf,
    /// Layer (tensor) name, as `chip layers` lists it.
    #[arg(long)]
    layer: String,
    /// A folder of images, or a text file with one image path per line.
    #[arg(long)]
    images: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// Number of random gate sets.
    #[arg(long, default_value_t = FitOptions::default().gates)]
    gates: usize,
    /// λ relative to the smallest λ that gives an all-zero row.
    #[arg(long, alias = "lambda", default_value_t = FitOptions::default().admm.lambda_rel)]
    lambda_rel: f64,
    /// σ² of the gate weighting, relative to the number of channels.
    #[arg(long, alias = "sigma2", default_value_t = FitOptions::default().sigma2_rel)]
    sigma2_rel: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Classes to solve, e.g. `1,5,10-20` (default: all).
    #[arg(long, value_parser = parse_class_list)]
    classes: Option<ClassList>,
    /// Gates per suffix run.
    #[arg(long, default_value_t = FitOptions::default().gate_batch)]
    gate_batch: usize,
    /// Images per prefix run.
    #[arg(long, default_value_t = FitOptions::default().image_batch)]
    image_batch: usize,
    /// The regression: `default` (log-probability target with an intercept) or `paper` (the CHIP paper's:
    /// probability target, no intercept). --target, --intercept and --nonneg override its parts.
    #[arg(long, default_value = "default")]
    objective: String,
    /// What each class's linear model regresses: probability, logit or log-probability.
    #[arg(long)]
    target: Option<String>,
    /// An unpenalised per-class intercept (true or false).
    #[arg(long)]
    intercept: Option<bool>,
    /// Constrain the weights to be ≥ 0 (true or false).
    #[arg(long)]
    nonneg: Option<bool>,
    /// Augmented views per image (seeded random resized crops and flips), fitted besides each image.
    #[arg(long, default_value_t = 0)]
    augment: usize,
    /// 2×2 mosaics per image, each tiled from four of the fit's images (seeded).
    #[arg(long, default_value_t = FitOptions::default().mosaics)]
    mosaics: usize,
    /// Write the statistics of these images (a shard) to --out instead of solving; combine shards
    /// with `chip merge`. Mosaics are tiled within a shard: shards equal one fit with --mosaics 0.
    #[arg(long)]
    stats_only: bool,
}

#[derive(Args)]
struct MergeArgs {
    /// Statistics files written by `chip fit --stats-only`, all of one model, layer, gate set and seed.
    #[arg(required = true, value_name = "STATS")]
    stats: Vec<PathBuf>,
    /// The model the statistics were collected on.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    out: PathBuf,
    /// λ relative to the smallest λ that gives an all-zero row.
    #[arg(long, alias = "lambda", default_value_t = FitOptions::default().admm.lambda_rel)]
    lambda_rel: f64,
    /// Classes to solve, e.g. `1,5,10-20` (default: all).
    #[arg(long, value_parser = parse_class_list)]
    classes: Option<ClassList>,
    /// As for `chip fit`; the target must be the one the statistics were collected for.
    #[arg(long, default_value = "default")]
    objective: String,
    #[arg(long)]
    target: Option<String>,
    #[arg(long)]
    intercept: Option<bool>,
    #[arg(long)]
    nonneg: Option<bool>,
}

#[derive(Args)]
struct ExplainArgs {
    #[arg(long)]
    model: PathBuf,
    /// A fitted layer (.chip); repeat for several layers.
    #[arg(long = "fit", required = true)]
    fits: Vec<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    images: Vec<PathBuf>,
    /// Explain this class (repeat or list: `--class 1,5`).
    #[arg(long, value_parser = parse_class_list, conflicts_with = "top")]
    class: Vec<ClassList>,
    /// Explain the K most probable classes.
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// Also the Refined CHIP map (first × last fitted layer).
    #[arg(long)]
    refined: bool,
    #[arg(long)]
    out: PathBuf,
    /// One JSON line per image on stdout.
    #[arg(long)]
    json: bool,
    /// Also write each map as float32 .npy at the original image size.
    #[arg(long)]
    save_map: bool,
    /// Localization threshold relative to the map's maximum.
    #[arg(long, default_value_t = chip::localize::DEFAULT_THRESHOLD)]
    threshold: f32,
    /// Images per model run.
    #[arg(long, default_value_t = 8)]
    batch: usize,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long = "fit", required = true)]
    fits: Vec<PathBuf>,
    /// Ground truth: a JSON list of {"file","width","height","class","boxes":[[x1,y1,x2,y2],...]}.
    #[arg(long)]
    gt: PathBuf,
    /// Folder the ground truth's file names are relative to.
    #[arg(long)]
    images: PathBuf,
    #[arg(long)]
    json: bool,
    /// Also evaluate Refined CHIP.
    #[arg(long)]
    refined: bool,
}

#[derive(Args)]
struct QualityArgs {
    #[arg(long)]
    model: PathBuf,
    /// A method: NAME=FIT (that layer's CHIP map) or NAME=FIT,FIT (Refined CHIP); repeatable.
    #[arg(long = "method", value_name = "NAME=FIT[,FIT]")]
    methods: Vec<String>,
    /// Add the reference baselines: CAM (the classifier's weights at --cam-layer), the centre prior
    /// and the constant map.
    #[arg(long)]
    baselines: bool,
    /// Layer for CAM (default: the deepest spatial layer).
    #[arg(long)]
    cam_layer: Option<String>,
    /// Paired differences against this method (default: CAM with --baselines, else the first).
    #[arg(long)]
    reference: Option<String>,
    /// Ground-truth boxes for localization (JSON list as for eval-loc), with --images.
    #[arg(long, requires = "images")]
    gt: Option<PathBuf>,
    /// Folder the ground truth's file names are relative to.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Mosaic list from `chip mosaic` for class discrimination.
    #[arg(long)]
    mosaics: Option<PathBuf>,
    /// Photos (folder or list file) for deletion/insertion; default: the ground truth's photos.
    #[arg(long)]
    faithfulness: Option<PathBuf>,
    /// Deletion/insertion steps (20: 5% of the pixels per step).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    resamples: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the report as JSON (per-unit scores included) instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (atomically), besides printing the table.
    #[arg(long, value_name = "PATH")]
    save_json: Option<PathBuf>,
}

#[derive(Args)]
struct MosaicArgs {
    #[arg(long)]
    model: PathBuf,
    /// A folder of photos or a list file.
    #[arg(long)]
    images: PathBuf,
    #[arg(long, default_value_t = 48)]
    count: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct ExportArgs {
    #[arg(long)]
    model: PathBuf,
    /// A fit of this model (repeat for several layers; maps come in this order).
    #[arg(long = "fit", required = true)]
    fits: Vec<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Add an int64 input chip_target_class [N]: a value >= 0 explains that class instead of the top-1.
    #[arg(long)]
    class_input: bool,
}

#[derive(Args)]
struct InspectArgs {
    #[arg(long)]
    fit: PathBuf,
    /// Only this class.
    #[arg(long)]
    class: Option<usize>,
    /// Class names, one per line, to label classes.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Channels listed per class.
    #[arg(long, default_value_t = 10)]
    top: usize,
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Debug)]
struct ClassList(Vec<usize>);

fn parse_class_list(s: &str) -> std::result::Result<ClassList, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("'{t}' is not a class index (a number ≥ 0)"));
        if part.starts_with('-') {
            return Err(format!("'{part}' is not a class index (a number ≥ 0)"));
        }
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(format!("empty class range {a}-{b}"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    if out.is_empty() {
        return Err("no classes given".into());
    }
    out.sort_unstable();
    out.dedup();
    Ok(ClassList(out))
}

fn parse_device(s: &str) -> std::result::Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<i32>) {
            Some(Ok(i)) if i >= 0 => Ok(Device::Cuda(i)),
            _ => Err(format!("'{s}' is not a device (cpu, cuda or cuda:N)")),
        },
    }
}

fn main() -> std::process::ExitCode {
    // A bug must still read as one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("chip: internal error: {msg}{at}");
        std::process::exit(1);
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1 like every other error; --help and --version exit 0.
            std::process::exit(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chip: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let rt = RuntimeOptions { ort_lib: cli.runtime.ort_lib, device: cli.runtime.device, threads: cli.runtime.threads };
    match cli.command {
        Command::Layers { model, json } => layers(&model, json, &rt),
        Command::Fit(a) => fit(a, &rt),
        Command::Merge(a) => merge(a, &rt),
        Command::Explain(a) => explain(a, &rt),
        Command::EvalLoc(a) => eval_loc(a, &rt),
        Command::Eval(a) => quality(a, &rt),
        Command::Mosaic(a) => mosaic(a, &rt),
        Command::Inspect(a) => inspect(a),
        Command::Export(a) => export(a, &rt),
    }
}

/// Prints a line on stdout; a closed pipe (`chip ... | head`) ends the program quietly.
fn emit(line: &str) {
    let mut so = std::io::stdout().lock();
    if writeln!(so, "{line}").and_then(|_| so.flush()).is_err() {
        std::process::exit(0);
    }
}

fn load_model(path: &Path, rt: &RuntimeOptions) -> Result<Arc<Model>> {
    if !path.is_file() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "model file not found")));
    }
    Ok(Arc::new(Model::load(path, rt)?))
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
            .expect("valid progress template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

fn label(model: &Model, class: usize) -> String {
    model.labels.as_ref().and_then(|l| l.get(class)).cloned().unwrap_or_else(|| format!("class {class}"))
}

// ------------------------------------------------------------------------------------ layers --

fn layers(model: &Path, json: bool, rt: &RuntimeOptions) -> Result<()> {
    let model = load_model(model, rt)?;
    let layers = model.layers()?;
    if json {
        emit(&serde_json::to_string(&layers).map_err(|e| Error::invalid(e.to_string()))?);
        return Ok(());
    }
    let w = layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(5);
    emit(&format!("{:<w$}  {:<20}  {:>8}  {:>6}  {:>6}", "layer", "op", "channels", "height", "width"));
    for l in &layers {
        emit(&format!("{:<w$}  {:<20}  {:>8}  {:>6}  {:>6}", l.name, l.op_type, l.channels, l.height, l.width));
    }
    Ok(())
}

// --------------------------------------------------------------------------------------- fit --

fn fit(a: FitArgs, rt: &RuntimeOptions) -> Result<()> {
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
    // The fit can take minutes: a place it cannot write to fails now, not after.
    chip::error::check_writable(&a.out)?;
    let model = load_model(&a.model, rt)?;
    // Fail on a bad layer name before any image is read.
    let channels = model.layer(&a.layer)?.channels;
    if chip::gates::check_sigma2(a.sigma2_rel, &a.layer, channels).is_err() {
        return Err(Error::invalid(format!(
            "--sigma2-rel {:?} is too small for layer '{}' ({channels} channels): every gate with a closed channel \
             would get proximity 0 and every weight would be zero",
            a.sigma2_rel, a.layer
        )));
    }
    check_classes(&a.classes, &model)?;
    let objective = objective_of(&a.objective, &a.target, a.intercept, a.nonneg)?;
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
        let stats = chip::fit::collect_stats(&model, &a.layer, &images, &params, &progress)?;
        pb.finish_and_clear();
        stats.save(&a.out)?;
        eprintln!(
            "statistics of layer '{}' on {} images x {} gates ({} views, {} mosaics per image), in {:.1}s -> {}",
            stats.layer, stats.images, stats.gate_count, stats.augment, stats.mosaics, t0.elapsed().as_secs_f64(),
            a.out.display()
        );
        return Ok(());
    }
    let fit = chip::fit::fit_layer(&model, &a.layer, &images, &params, &progress)?;
    pb.finish_and_clear();
    fit.save(&a.out)?;
    report_fit(&fit, &a.out, t0);
    Ok(())
}

fn merge(a: MergeArgs, rt: &RuntimeOptions) -> Result<()> {
    check_lambda(a.lambda_rel)?;
    chip::error::check_writable(&a.out)?;
    let model = load_model(&a.model, rt)?;
    check_classes(&a.classes, &model)?;
    let mut params = FitOptions { objective: objective_of(&a.objective, &a.target, a.intercept, a.nonneg)?, ..FitOptions::default() };
    params.admm.lambda_rel = a.lambda_rel;
    params.classes = a.classes.map(|c| c.0);
    let mut stats = chip::stats::Stats::load(&a.stats[0])?;
    for path in &a.stats[1..] {
        let shard = chip::stats::Stats::load(path)?;
        stats.merge(&shard).map_err(|e| match e {
            Error::FitMismatch(m) => Error::FitMismatch(format!("{} and {}: {m}", path.display(), a.stats[0].display())),
            e => e,
        })?;
    }
    let (pb, progress) = fit_progress();
    let t0 = std::time::Instant::now();
    let fit = chip::fit::solve(&model, &stats.layer, &stats, &params, &progress)?;
    pb.finish_and_clear();
    fit.save(&a.out)?;
    report_fit(&fit, &a.out, t0);
    Ok(())
}

fn check_lambda(lambda: f64) -> Result<()> {
    if !(lambda.is_finite() && (0.0..1.0).contains(&lambda)) {
        return Err(Error::invalid(format!(
            "--lambda-rel {lambda:?} must be ≥ 0 and < 1 (it is relative to the smallest lambda that zeroes a class)"
        )));
    }
    Ok(())
}

fn check_classes(classes: &Option<ClassList>, model: &Model) -> Result<()> {
    if let Some(ClassList(c)) = classes {
        if let Some(bad) = c.iter().find(|&&c| c >= model.classes) {
            return Err(Error::invalid(format!("class {bad} is out of range: the model has {} classes", model.classes)));
        }
    }
    Ok(())
}

/// --objective with its --target, --intercept and --nonneg overrides.
fn objective_of(preset: &str, target: &Option<String>, intercept: Option<bool>, nonneg: Option<bool>) -> Result<chip::objective::Objective> {
    let mut objective = chip::objective::Objective::preset(preset)?;
    if let Some(t) = target {
        objective.target = chip::objective::Target::parse(t)?;
    }
    objective.intercept = intercept.unwrap_or(objective.intercept);
    objective.nonneg = nonneg.unwrap_or(objective.nonneg);
    Ok(objective)
}

/// A progress bar that follows the stages of a fit.
fn fit_progress() -> (ProgressBar, impl Fn(Progress) -> bool + Sync) {
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
fn report_fit(fit: &LayerFit, out: &Path, t0: std::time::Instant) {
    let m = &fit.meta;
    let rows: Vec<usize> = if m.solved_classes.is_empty() { (0..m.classes).collect() } else { m.solved_classes.clone() };
    let sparsity = chip::inspect::sparsity(&fit.weights, m.channels, &rows);
    let zero = chip::inspect::zero_rows(&fit.weights, m.channels, &rows);
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

// ----------------------------------------------------------------------------------- explain --

fn load_fits(paths: &[PathBuf]) -> Result<Vec<LayerFit>> {
    paths.iter().map(|p| LayerFit::load(p)).collect()
}

/// A file-name-safe form of a layer name.
fn safe_name(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    let t = t.trim_matches(|c| c == '_' || c == '.').to_string();
    if t.is_empty() { "layer".into() } else { t }
}

/// Output stems per image, unique even when photos from different folders share a name.
fn stems(images: &[PathBuf]) -> Vec<String> {
    let base: Vec<String> = images
        .iter()
        .map(|p| safe_name(&p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()))
        .collect();
    let mut count: HashMap<&str, usize> = HashMap::new();
    for b in &base {
        *count.entry(b).or_default() += 1;
    }
    base.iter().enumerate().map(|(i, b)| if count[b.as_str()] > 1 { format!("{b}_{i}") } else { b.clone() }).collect()
}

fn box_json(b: &Option<BBox>) -> Value {
    match b {
        Some(b) => json!([b.x1, b.y1, b.x2, b.y2]),
        None => Value::Null,
    }
}

fn explain(a: ExplainArgs, rt: &RuntimeOptions) -> Result<()> {
    for p in a.images.iter().chain(&a.fits) {
        if !p.is_file() {
            return Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "file not found")));
        }
    }
    let classes = match (&a.top, a.class.is_empty()) {
        (Some(k), _) => ClassSelect::Top(*k),
        (None, false) => {
            let mut ids: Vec<usize> = a.class.iter().flat_map(|c| c.0.iter().copied()).collect();
            ids.sort_unstable();
            ids.dedup();
            ClassSelect::Ids(ids)
        }
        (None, true) => ClassSelect::Top(1),
    };
    let options = ExplainOptions { classes, refined: a.refined, threshold: a.threshold, original_size: true };
    let fits = load_fits(&a.fits)?;
    let model = load_model(&a.model, rt)?;
    let explainer = Explainer::new(model.clone(), fits)?;
    // A bad class or threshold fails before any output is written.
    explainer.check_options(&options)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let layer_files: Vec<(String, String)> = explainer.layer_names().iter().map(|n| (n.to_string(), safe_name(n))).collect();
    let stems = stems(&a.images);
    let pb = bar(a.images.len(), "explaining");
    let mut unsolved_warned = false;
    for (chunk_i, chunk) in a.images.chunks(a.batch.max(1)).enumerate() {
        let results = explainer.explain_files(chunk, &options)?;
        for (j, (path, ex)) in chunk.iter().zip(&results).enumerate() {
            let idx = chunk_i * a.batch.max(1) + j;
            if !unsolved_warned {
                for c in &ex.classes {
                    if let Some(f) = explainer.fits.iter().find(|f| !chip::explain::is_solved(f, c.class)) {
                        eprintln!(
                            "chip: warning: class {} ({}) was not solved in the fit of '{}'; its map is empty",
                            c.class, label(&model, c.class), f.meta.layer
                        );
                        unsolved_warned = true;
                        break;
                    }
                }
            }
            let record = write_explanation(&a, &model, &layer_files, &stems[idx], path, ex)?;
            if a.json {
                emit(&record.to_string());
            } else {
                emit(&summary_line(&model, &explainer, path, ex));
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(())
}

fn summary_line(model: &Model, explainer: &Explainer, path: &Path, ex: &ImageExplanation) -> String {
    let mut s = format!("{}:", path.display());
    for c in &ex.classes {
        s += &format!(" [{} {} p={:.3}", c.class, label(model, c.class), c.probability);
        for (name, m) in explainer.layer_names().iter().zip(&c.maps) {
            s += &format!(" {}={}", name, fmt_box(&m.bbox));
        }
        if let Some(r) = &c.refined {
            s += &format!(" refined={}", fmt_box(&r.bbox));
        }
        s += "]";
    }
    s
}

fn fmt_box(b: &Option<BBox>) -> String {
    match b {
        Some(b) => format!("({},{},{},{})", b.x1, b.y1, b.x2, b.y2),
        None => "none".into(),
    }
}

/// Writes the overlays (and maps) of one image; returns its JSON record.
fn write_explanation(a: &ExplainArgs, model: &Model, layer_files: &[(String, String)], stem: &str, path: &Path, ex: &ImageExplanation) -> Result<Value> {
    let photo = image::open(path)
        .map_err(|e| Error::Image { what: path.display().to_string(), msg: e.to_string() })?
        .to_rgb8();
    // Maps are at the size the preprocessing decoded; the photo must match it to be overlaid.
    let photo = if photo.dimensions() != (ex.size.width, ex.size.height) {
        image::imageops::resize(&photo, ex.size.width, ex.size.height, image::imageops::FilterType::Triangle)
    } else {
        photo
    };
    let write_map = |m: &Map, name: &str| -> Result<Value> {
        let mut img = chip::render::overlay(&photo, &m.data)?;
        if let Some(b) = &m.bbox {
            chip::render::draw_box(&mut img, b, [255, 255, 255]);
        }
        let png = a.out.join(format!("{name}.png"));
        chip::render::save_png(&img, &png)?;
        let npy = if a.save_map {
            let p = a.out.join(format!("{name}.npy"));
            chip::render::save_npy(&m.data, m.height, m.width, &p)?;
            Value::String(p.display().to_string())
        } else {
            Value::Null
        };
        Ok(json!({ "box": box_json(&m.bbox), "overlay": png.display().to_string(), "map": npy }))
    };
    let mut classes = Vec::new();
    for c in &ex.classes {
        let mut layers = Vec::new();
        for (m, (layer, lf)) in c.maps.iter().zip(layer_files) {
            let mut v = write_map(m, &format!("{stem}_{lf}_c{}", c.class))?;
            v["layer"] = Value::String(layer.clone());
            layers.push(v);
        }
        let refined = match &c.refined {
            Some(r) => write_map(r, &format!("{stem}_refined_c{}", c.class))?,
            None => Value::Null,
        };
        classes.push(json!({
            "class": c.class, "label": label(model, c.class), "probability": c.probability,
            "layers": layers, "refined": refined,
        }));
    }
    let top: Vec<Value> = ex.top.iter().map(|&(c, p)| json!({ "class": c, "label": label(model, c), "probability": p })).collect();
    Ok(json!({
        "file": path.display().to_string(), "width": ex.size.width, "height": ex.size.height,
        "top": top, "classes": classes,
    }))
}

// ---------------------------------------------------------------------------------- eval-loc --

fn eval_loc(a: EvalArgs, rt: &RuntimeOptions) -> Result<()> {
    for p in a.fits.iter().chain(std::iter::once(&a.gt)) {
        if !p.is_file() {
            return Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "file not found")));
        }
    }
    if !a.images.is_dir() {
        return Err(Error::io(&a.images, std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder")));
    }
    let gt = chip::localize::load_gt(&a.gt)?;
    let fits = load_fits(&a.fits)?;
    let model = load_model(&a.model, rt)?;
    let explainer = Explainer::new(model.clone(), fits)?;
    let entries: Vec<&GtEntry> = gt.iter().filter(|e| e.class.is_some() && !e.boxes.is_empty()).collect();
    if entries.len() < gt.len() {
        eprintln!("chip: warning: {} ground-truth entries without a class or boxes are skipped", gt.len() - entries.len());
    }
    if entries.is_empty() {
        return Err(Error::invalid(format!("{}: no entry with a class and boxes", a.gt.display())));
    }
    // Group by photo so each photo runs once, with every ground-truth class it has.
    let mut files: Vec<&str> = Vec::new();
    let mut by_file: HashMap<&str, Vec<&GtEntry>> = HashMap::new();
    for e in &entries {
        if !by_file.contains_key(e.file.as_str()) {
            files.push(&e.file);
        }
        by_file.entry(&e.file).or_default().push(e);
    }
    let nmaps = explainer.fits.len() + usize::from(a.refined);
    let mut names: Vec<String> = explainer.layer_names().iter().map(|s| s.to_string()).collect();
    if a.refined {
        names.push("refined".into());
    }
    let options_for = |ids: Vec<usize>| ExplainOptions { classes: ClassSelect::Ids(ids), refined: a.refined, threshold: chip::localize::DEFAULT_THRESHOLD, original_size: true };
    explainer.check_options(&options_for(entries.iter().filter_map(|e| e.class).collect()))?;
    // Per entry: its maps (one per evaluated kind) and the predicted top-1 class.
    let mut maps: Vec<Vec<Vec<f32>>> = Vec::new();
    let mut top1: Vec<usize> = Vec::new();
    let mut order: Vec<&GtEntry> = Vec::new();
    let pb = bar(files.len(), "explaining");
    for f in &files {
        let path = a.images.join(f);
        let es = &by_file[f];
        let mut ids: Vec<usize> = es.iter().filter_map(|e| e.class).collect();
        ids.sort_unstable();
        ids.dedup();
        let ex = explainer.explain_files(std::slice::from_ref(&path), &options_for(ids))?.remove(0);
        for e in es {
            if (ex.size.width, ex.size.height) != (e.width, e.height) {
                return Err(Error::invalid(format!(
                    "{}: the photo is {}x{} but the ground truth says {}x{}",
                    path.display(), ex.size.width, ex.size.height, e.width, e.height
                )));
            }
            let ce = ex.classes.iter().find(|c| Some(c.class) == e.class).expect("every requested class is explained");
            let mut m: Vec<Vec<f32>> = ce.maps.iter().map(|m| m.data.clone()).collect();
            if let Some(r) = &ce.refined {
                m.push(r.data.clone());
            }
            maps.push(m);
            top1.push(ex.top[0].0);
            order.push(e);
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    let thresholds: Vec<f32> = (1..=19).map(|i| i as f32 * 0.05).collect();
    let reports: Vec<LocReport> = (0..nmaps)
        .map(|k| {
            let items: Vec<EvalItem> = order.iter().enumerate().map(|(i, e)| EvalItem { gt: e, map: &maps[i][k], top1: top1[i] }).collect();
            chip::localize::evaluate(&items, &thresholds)
        })
        .collect();
    if a.json {
        let per_image: Vec<Value> = order
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let ious: serde_json::Map<String, Value> = names.iter().zip(&reports).map(|(n, r)| (n.clone(), json!(r.ious[i]))).collect();
                json!({ "file": e.file, "class": e.class, "label": e.class.map(|c| label(&model, c)), "top1": top1[i], "iou": ious })
            })
            .collect();
        let summary: serde_json::Map<String, Value> = names.iter().zip(&reports).map(|(n, r)| (n.clone(), report_json(r))).collect();
        emit(&json!({ "images": per_image, "reports": summary }).to_string());
        return Ok(());
    }
    for (i, e) in order.iter().enumerate() {
        let c = e.class.unwrap_or(0);
        let mut s = format!("{} class {} ({}) top-1 {}:", e.file, c, label(&model, c), top1[i]);
        for (n, r) in names.iter().zip(&reports) {
            s += &format!(" {}={:.3}", n, r.ious[i]);
        }
        emit(&s);
    }
    let w = names.iter().map(|n| n.len()).max().unwrap_or(3).max(3);
    emit(&format!("{:<w$}  {:>6}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}", "map", "images", "threshold", "GT-known", "top-1", "mean IoU", "pointing"));
    for (n, r) in names.iter().zip(&reports) {
        emit(&format!(
            "{:<w$}  {:>6}  {:>9.2}  {:>8.3}  {:>8.3}  {:>8.3}  {:>8.3}",
            n, r.images, r.best_threshold, r.gt_known_accuracy, r.top1_accuracy, r.mean_iou, r.pointing_game
        ));
    }
    Ok(())
}

fn report_json(r: &LocReport) -> Value {
    json!({
        "images": r.images, "best_threshold": r.best_threshold, "gt_known_accuracy": r.gt_known_accuracy,
        "top1_accuracy": r.top1_accuracy, "mean_iou": r.mean_iou, "pointing_game": r.pointing_game,
    })
}

// -------------------------------------------------------------------------------------- eval --

fn quality(a: QualityArgs, rt: &RuntimeOptions) -> Result<()> {
    use chip::quality::{self, Method, METRICS};
    if a.methods.is_empty() && !a.baselines {
        return Err(Error::invalid("nothing to evaluate: give --method NAME=FIT and/or --baselines"));
    }
    if a.gt.is_none() && a.mosaics.is_none() && a.faithfulness.is_none() {
        return Err(Error::invalid("no data: give --gt with --images, --mosaics and/or --faithfulness"));
    }
    let model = load_model(&a.model, rt)?;
    let mut methods = Vec::new();
    for spec in &a.methods {
        let (name, files) = spec
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
            .ok_or_else(|| Error::invalid(format!("--method '{spec}' is not NAME=FIT or NAME=FIT,FIT")))?;
        let paths: Vec<PathBuf> = files.split(',').map(PathBuf::from).collect();
        methods.push(Method::fits(name, model.clone(), load_fits(&paths)?)?);
    }
    if a.baselines {
        let layer = match &a.cam_layer {
            Some(l) => l.clone(),
            None => model.default_layers()?.1.name,
        };
        methods.push(Method::cam("CAM", model.clone(), &layer)?);
        methods.push(Method::centre("centre prior"));
        methods.push(Method::constant("constant"));
    }
    let names: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
    if let Some(dup) = names.iter().enumerate().find(|(i, n)| names[..*i].contains(n)).map(|(_, n)| n) {
        return Err(Error::invalid(format!("two methods are named '{dup}'")));
    }
    let reference = match &a.reference {
        Some(r) => Some(names.iter().position(|n| n == r).ok_or_else(|| {
            Error::invalid(format!("--reference '{r}' is not one of the methods ({})", names.join(", ")))
        })?),
        None if a.baselines => names.iter().position(|n| *n == "CAM"),
        None => Some(0),
    };
    let gt = match &a.gt {
        Some(p) => chip::localize::load_gt(p)?,
        None => Vec::new(),
    };
    let mosaics = match &a.mosaics {
        Some(p) => quality::load_mosaics(p)?,
        None => Vec::new(),
    };
    let gt_root = a.images.clone().unwrap_or_default();
    let faithfulness = match &a.faithfulness {
        Some(p) => chip::fit::list_images(p)?,
        None => {
            let mut files: Vec<PathBuf> = gt.iter().filter(|e| e.class.is_some()).map(|e| gt_root.join(&e.file)).collect();
            files.dedup();
            files
        }
    };
    let data = quality::Dataset {
        gt: &gt,
        gt_root,
        mosaics: &mosaics,
        mosaic_root: a.mosaics.as_ref().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default(),
        faithfulness,
    };
    let options = quality::Options { steps: a.steps, seed: a.seed, ..Default::default() };
    let pb = bar(methods.len() * 3, "scoring");
    let scores = quality::score(&model, &methods, &data, &options, &|done, _| {
        pb.set_position(done as u64);
        true
    })?;
    pb.finish_and_clear();
    let summary = quality::summarize(&scores, reference, a.resamples, a.seed);
    let methods_json: Vec<Value> = scores
        .iter()
        .zip(&summary)
        .map(|(s, figs)| {
            let m: serde_json::Map<String, Value> = figs.iter().map(|(k, f)| (k.clone(), json!(f))).collect();
            json!({ "method": s.method, "metrics": m, "best_threshold": s.localization.as_ref().map(|l| l.best_threshold),
                    "mean_iou": s.localization.as_ref().map(|l| l.mean_iou), "scores": s })
        })
        .collect();
    let report = json!({
        "reference": reference.map(|r| names[r]), "resamples": a.resamples,
        "units": { "gt_entries": scores.first().map_or(0, |s| s.box_hits.len()),
                   "mosaic_tiles": scores.first().map_or(0, |s| s.grid_share.len()),
                   "faithfulness_photos": scores.first().map_or(0, |s| s.deletion.len()) },
        "methods": methods_json,
    })
    .to_string();
    if let Some(p) = &a.save_json {
        chip::error::write_atomic(p, report.as_bytes())?;
    }
    if a.json {
        emit(&report);
        return Ok(());
    }
    let used: Vec<usize> = (0..METRICS.len()).filter(|&j| summary.iter().any(|f| f[j].1.is_some())).collect();
    let w = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
    let cell = |iv: &chip::eval::Interval| format!("{:.3} [{:.3},{:.3}]", iv.mean, iv.low, iv.high);
    let header: Vec<String> = used.iter().map(|&j| format!("{:>21}", format!("{}{}", METRICS[j].0, if METRICS[j].1 { " ↑" } else { " ↓" }))).collect();
    emit(&format!("{:<w$}  {}", "method", header.join("  ")));
    for (n, figs) in names.iter().zip(&summary) {
        let cells: Vec<String> = used.iter().map(|&j| format!("{:>21}", figs[j].1.as_ref().map_or("-".into(), |f| cell(&f.value)))).collect();
        emit(&format!("{:<w$}  {}", n, cells.join("  ")));
    }
    if let Some(r) = reference {
        emit(&format!("\npaired difference to {} (method − {}), 95% bootstrap interval", names[r], names[r]));
        for (n, figs) in names.iter().zip(&summary) {
            let cells: Vec<String> = used
                .iter()
                .map(|&j| format!("{:>21}", figs[j].1.as_ref().and_then(|f| f.vs_reference.as_ref()).map_or("-".into(), |d| {
                    format!("{:+.3} [{:+.3},{:+.3}]", d.mean, d.low, d.high)
                })))
                .collect();
            if *n != names[r] {
                emit(&format!("{:<w$}  {}", n, cells.join("  ")));
            }
        }
    }
    let s0 = &scores[0];
    emit(&format!(
        "\nunits: {} ground-truth entries, {} mosaic tiles, {} faithfulness photos; GT-known: best threshold per method, IoU ≥ 0.5",
        s0.box_hits.len(), s0.grid_share.len(), s0.deletion.len()
    ));
    Ok(())
}

fn mosaic(a: MosaicArgs, rt: &RuntimeOptions) -> Result<()> {
    if a.count == 0 {
        return Err(Error::invalid("--count must be at least 1"));
    }
    let model = load_model(&a.model, rt)?;
    let photos = chip::fit::list_images(&a.images)?;
    let list = chip::quality::make_mosaics(&model, &photos, a.count, a.seed, &a.out)?;
    eprintln!("wrote {} mosaics and mosaics.json to {}", list.len(), a.out.display());
    Ok(())
}

// ----------------------------------------------------------------------------------- inspect --

fn export(a: ExportArgs, rt: &RuntimeOptions) -> Result<()> {
    chip::error::check_writable(&a.out)?;
    let fits: Vec<LayerFit> = a.fits.iter().map(|p| LayerFit::load(p)).collect::<Result<_>>()?;
    let model = Model::load(&a.model, rt)?;
    let options = chip::export::ExportOptions { class_input: a.class_input };
    chip::export::export_to_file(&model, &fits, &options, &a.out)?;
    let layers: Vec<&str> = fits.iter().map(|f| f.meta.layer.as_str()).collect();
    emit(&format!("wrote {} (maps of {})", a.out.display(), layers.join(", ")));
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let fit = LayerFit::load(&a.fit)?;
    let m = &fit.meta;
    let labels: Option<Vec<String>> = match &a.labels {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            Some(text.lines().map(|l| l.trim().to_string()).collect())
        }
        None => None,
    };
    let name = |c: usize| labels.as_ref().and_then(|l| l.get(c)).cloned().unwrap_or_else(|| format!("class {c}"));
    let solved: Vec<usize> = if m.solved_classes.is_empty() { (0..m.classes).collect() } else { m.solved_classes.clone() };
    let shown: Vec<usize> = match a.class {
        Some(c) if c >= m.classes => {
            return Err(Error::invalid(format!("class {c} is out of range: the fit has {} classes", m.classes)));
        }
        Some(c) => vec![c],
        None => solved.clone(),
    };
    let sparsity = chip::inspect::sparsity(&fit.weights, m.channels, &solved);
    let overlap = (solved.len() >= 2).then(|| chip::inspect::overlap(&fit.weights, m.channels, &solved));
    let summaries: Vec<_> = shown.iter().map(|&c| chip::inspect::class_summary(&fit.weights, m.channels, c, a.top)).collect();
    if a.json {
        let classes: Vec<Value> = summaries
            .iter()
            .map(|s| json!({ "class": s.class, "label": name(s.class), "solved": solved.contains(&s.class), "nonzeros": s.nonzeros, "top": s.top }))
            .collect();
        emit(&json!({
            "layer": m.layer, "channels": m.channels, "height": m.height, "width": m.width, "classes": m.classes,
            "images": m.images, "gates": m.gates, "sigma2_rel": m.sigma2_rel, "lambda_rel": m.admm.lambda_rel, "seed": m.seed,
            "solved_classes": solved.len(), "zero_classes": chip::inspect::zero_rows(&fit.weights, m.channels, &solved).len(),
            "sparsity": sparsity, "overlap": overlap, "per_class": classes,
        }).to_string());
        return Ok(());
    }
    emit(&format!(
        "layer '{}': {} channels, {}x{} activations, {} classes ({} solved)",
        m.layer, m.channels, m.height, m.width, m.classes, solved.len()
    ));
    emit(&format!("fitted on {} images x {} gates, sigma2 {} x K, lambda {} x lambda_max, seed {}", m.images, m.gates, m.sigma2_rel, m.admm.lambda_rel, m.seed));
    let zero = chip::inspect::zero_rows(&fit.weights, m.channels, &solved).len();
    emit(&format!("sparsity over solved classes: {:.1}% zero; {zero} solved classes all zero", 100.0 * sparsity));
    if let Some(o) = &overlap {
        emit(&format!("channel overlap between classes: top-10 {:.3}, significant (> max/1000) {:.3}", o.top10_mean, o.significant_mean));
    }
    const SHOWN: usize = 20;
    for s in summaries.iter().take(SHOWN) {
        let top: Vec<String> = s.top.iter().map(|(k, w)| format!("{k}:{w:.4}")).collect();
        let note = if solved.contains(&s.class) { "" } else { " (not solved)" };
        emit(&format!("{} {}{}: {} nonzero; top channels {}", s.class, name(s.class), note, s.nonzeros, top.join(" ")));
    }
    if summaries.len() > SHOWN {
        emit(&format!("... {} more classes (use --class ID or --json)", summaries.len() - SHOWN));
    }
    Ok(())
}
