//! `chip eval-loc`, `chip eval` and `chip mosaic`.
use super::*;

#[derive(Args)]
pub(crate) struct EvalLocArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    #[arg(long = "fit", required = true)]
    pub(crate) fits: Vec<PathBuf>,
    /// Ground truth: a JSON list of {"file","width","height","class","boxes":[[x1,y1,x2,y2],...]}.
    #[arg(long)]
    pub(crate) gt: PathBuf,
    /// Folder the ground truth's file names are relative to.
    #[arg(long)]
    pub(crate) images: PathBuf,
    #[arg(long)]
    pub(crate) json: bool,
    /// Also evaluate Refined CHIP.
    #[arg(long)]
    pub(crate) refined: bool,
}

#[derive(Args)]
pub(crate) struct EvalArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A method: NAME=FIT (that layer's CHIP map) or NAME=FIT,FIT (Refined CHIP); repeatable.
    #[arg(long = "method", value_name = "NAME=FIT[,FIT]")]
    pub(crate) methods: Vec<String>,
    /// Add the reference baselines: CAM (the classifier's weights at --cam-layer), the centre prior
    /// and the constant map.
    #[arg(long)]
    pub(crate) baselines: bool,
    /// Layer for CAM (default: the deepest spatial layer).
    #[arg(long)]
    pub(crate) cam_layer: Option<String>,
    /// Paired differences against this method (default: CAM with --baselines, else the first).
    #[arg(long)]
    pub(crate) reference: Option<String>,
    /// Ground-truth boxes for localization (JSON list as for eval-loc), with --images.
    #[arg(long, requires = "images")]
    pub(crate) gt: Option<PathBuf>,
    /// Folder the ground truth's file names are relative to.
    #[arg(long)]
    pub(crate) images: Option<PathBuf>,
    /// Mosaic list from `chip mosaic` for class discrimination.
    #[arg(long)]
    pub(crate) mosaics: Option<PathBuf>,
    /// Photos (folder or list file) for deletion/insertion; default: the ground truth's photos.
    #[arg(long)]
    pub(crate) faithfulness: Option<PathBuf>,
    /// Deletion/insertion steps (20: 5% of the pixels per step).
    #[arg(long, default_value_t = 20)]
    pub(crate) steps: usize,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 1000)]
    pub(crate) resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    /// Print the report as JSON (per-unit scores included) instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write the JSON report to this file (atomically), besides printing the table.
    #[arg(long, value_name = "PATH")]
    pub(crate) save_json: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct MosaicArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A folder of photos or a list file.
    #[arg(long)]
    pub(crate) images: PathBuf,
    #[arg(long, default_value_t = 48)]
    pub(crate) count: usize,
    #[arg(long, default_value_t = 0)]
    pub(crate) seed: u64,
    #[arg(long)]
    pub(crate) out: PathBuf,
}


// ---------------------------------------------------------------------------------- eval-loc --

pub(crate) fn eval_loc(a: EvalLocArgs, rt: &RuntimeOptions) -> Result<()> {
    for p in a.fits.iter().chain(std::iter::once(&a.gt)) {
        if !p.is_file() {
            return Err(Error::io(p, std::io::Error::new(std::io::ErrorKind::NotFound, "file not found")));
        }
    }
    if !a.images.is_dir() {
        return Err(Error::io(&a.images, std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder")));
    }
    let gt = chip::math::localize::load_gt(&a.gt)?;
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
    let nmaps = explainer.fits().len() + usize::from(a.refined);
    let mut names: Vec<String> = explainer.layer_names().iter().map(|s| s.to_string()).collect();
    if a.refined {
        names.push("refined".into());
    }
    let options_for = |ids: Vec<usize>| ExplainOptions { classes: ClassSelect::Ids(ids), refined: a.refined, threshold: chip::math::localize::DEFAULT_THRESHOLD, original_size: true };
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
            chip::math::localize::evaluate(&items, &thresholds)
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

pub(crate) fn report_json(r: &LocReport) -> Value {
    json!({
        "images": r.images, "best_threshold": r.best_threshold, "gt_known_accuracy": r.gt_known_accuracy,
        "top1_accuracy": r.top1_accuracy, "mean_iou": r.mean_iou, "pointing_game": r.pointing_game,
    })
}

// -------------------------------------------------------------------------------------- eval --

pub(crate) fn eval(a: EvalArgs, rt: &RuntimeOptions) -> Result<()> {
    use chip::engine::eval::harness::{self, Method, METRICS};
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
        // CAM needs a GAP→linear head; where the model has another (a VGG Flatten→Dense head), the
        // other baselines still run.
        match Method::cam("CAM", model.clone(), &layer) {
            Ok(m) => methods.push(m),
            Err(e) => eprintln!(
                "chip: CAM skipped: it reads the classifier's weights, which needs global average pooling then one linear layer after '{layer}', and this model has another head ({e}); the other baselines run"
            ),
        }
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
        None if a.baselines => names.iter().position(|n| *n == "CAM").or(Some(0)),
        None => Some(0),
    };
    let gt = match &a.gt {
        Some(p) => chip::math::localize::load_gt(p)?,
        None => Vec::new(),
    };
    let mosaics = match &a.mosaics {
        Some(p) => harness::load_mosaics(p)?,
        None => Vec::new(),
    };
    let gt_root = a.images.clone().unwrap_or_default();
    let faithfulness = match &a.faithfulness {
        Some(p) => chip::engine::fit::list_images(p)?,
        None => {
            let mut files: Vec<PathBuf> = gt.iter().filter(|e| e.class.is_some()).map(|e| gt_root.join(&e.file)).collect();
            files.dedup();
            files
        }
    };
    let data = harness::Dataset {
        gt: &gt,
        gt_root,
        mosaics: &mosaics,
        mosaic_root: a.mosaics.as_ref().and_then(|p| p.parent()).map(Path::to_path_buf).unwrap_or_default(),
        faithfulness,
    };
    let options = harness::Options { steps: a.steps, seed: a.seed, ..Default::default() };
    let pb = bar(methods.len() * 3, "scoring");
    let scores = harness::score(&model, &methods, &data, &options, &|done, _| {
        pb.set_position(done as u64);
        true
    })?;
    pb.finish_and_clear();
    let summary = harness::summarize(&scores, reference, a.resamples, a.seed);
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
        chip::util::atomic::write_atomic(p, report.as_bytes())?;
    }
    if a.json {
        emit(&report);
        return Ok(());
    }
    let used: Vec<usize> = (0..METRICS.len()).filter(|&j| summary.iter().any(|f| f[j].1.is_some())).collect();
    let w = names.iter().map(|n| n.len()).max().unwrap_or(6).max(6);
    let cell = |iv: &chip::engine::eval::Interval| format!("{:.3} [{:.3},{:.3}]", iv.mean, iv.low, iv.high);
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

pub(crate) fn mosaic(a: MosaicArgs, rt: &RuntimeOptions) -> Result<()> {
    if a.count == 0 {
        return Err(Error::invalid("--count must be at least 1"));
    }
    let model = load_model(&a.model, rt)?;
    let photos = chip::engine::fit::list_images(&a.images)?;
    let list = chip::engine::eval::harness::make_mosaics(&model, &photos, a.count, a.seed, &a.out)?;
    eprintln!("wrote {} mosaics and mosaics.json to {}", list.len(), a.out.display());
    Ok(())
}
