//! `chip layers` and `chip inspect`.
use super::*;

#[derive(Args)]
pub(crate) struct InspectArgs {
    #[arg(long)]
    pub(crate) fit: PathBuf,
    /// Only this class.
    #[arg(long)]
    pub(crate) class: Option<usize>,
    /// Class names, one per line, to label classes.
    #[arg(long)]
    pub(crate) labels: Option<PathBuf>,
    /// The model the fit belongs to: its labels name the classes (with its spec from the sidecar
    /// or --preprocess), and the fit is checked against it.
    #[arg(long)]
    pub(crate) model: Option<PathBuf>,
    /// Channels listed per class.
    #[arg(long, default_value_t = 10)]
    pub(crate) top: usize,
    #[arg(long)]
    pub(crate) json: bool,
}


// ------------------------------------------------------------------------------------ layers --

pub(crate) fn layers(model: &Path, json: bool, rt: &RuntimeOptions) -> Result<()> {
    let model = load_model(model, rt)?;
    let layers = model.layers()?;
    if json {
        emit(&serde_json::to_string(&layers).map_err(|e| Error::invalid(e.to_string()))?);
        return Ok(());
    }
    let spec = model.spec.describe();
    emit(&format!("preprocessing: {}", spec["spec"]));
    emit(&format!("where each value came from: {}", spec["sources"]));
    emit("");
    let w = layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(5);
    emit(&format!("{:<w$}  {:<20}  {:>8}  {:>6}  {:>6}", "layer", "op", "channels", "height", "width"));
    for l in &layers {
        emit(&format!("{:<w$}  {:<20}  {:>8}  {:>6}  {:>6}", l.name, l.op_type, l.channels, l.height, l.width));
    }
    Ok(())
}

// ----------------------------------------------------------------------------------- inspect --

pub(crate) fn inspect(a: InspectArgs, rt: &RuntimeOptions) -> Result<()> {
    let fit = LayerFit::load(&a.fit)?;
    let m = &fit.meta;
    let model = a.model.as_deref().map(|p| load_model(p, rt)).transpose()?;
    if let Some(model) = &model {
        fit.check_against(model)?;
    }
    let labels: Option<Vec<String>> = match (&a.labels, &model) {
        (Some(p), _) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            Some(text.lines().map(|l| l.trim().to_string()).collect())
        }
        (None, Some(model)) => model.labels.clone(),
        (None, None) => None,
    };
    let name = |c: usize| labels.as_ref().and_then(|l| l.get(c)).cloned().unwrap_or_else(|| format!("class {c}"));
    let solved = fit.solved();
    let shown: Vec<usize> = match a.class {
        Some(c) if c >= m.classes => {
            return Err(Error::invalid(format!("class {c} is out of range: the fit has {} classes", m.classes)));
        }
        Some(c) => vec![c],
        None => solved.clone(),
    };
    let sparsity = chip::math::inspect::sparsity(&fit.weights, m.channels, &solved);
    let overlap = (solved.len() >= 2).then(|| chip::math::inspect::overlap(&fit.weights, m.channels, &solved));
    let summaries: Vec<_> = shown.iter().map(|&c| chip::math::inspect::class_summary(&fit.weights, m.channels, c, a.top)).collect();
    if a.json {
        let classes: Vec<Value> = summaries
            .iter()
            .map(|s| json!({ "class": s.class, "label": name(s.class), "solved": solved.contains(&s.class), "nonzeros": s.nonzeros, "top": s.top }))
            .collect();
        emit(&json!({
            "layer": m.layer, "channels": m.channels, "height": m.height, "width": m.width, "classes": m.classes,
            "images": m.images, "gates": m.gates, "sigma2_rel": m.sigma2_rel, "lambda_rel": m.admm.lambda_rel, "seed": m.seed,
            "solved_classes": solved.len(), "zero_classes": chip::math::inspect::zero_rows(&fit.weights, m.channels, &solved).len(),
            "sparsity": sparsity, "overlap": overlap, "per_class": classes, "preprocess": m.preprocess,
        }).to_string());
        return Ok(());
    }
    emit(&format!(
        "layer '{}': {} channels, {}x{} activations, {} classes ({} solved)",
        m.layer, m.channels, m.height, m.width, m.classes, solved.len()
    ));
    emit(&format!("fitted on {} images x {} gates, sigma2 {} x K, lambda {} x lambda_max, seed {}", m.images, m.gates, m.sigma2_rel, m.admm.lambda_rel, m.seed));
    if let Some(p) = &m.preprocess {
        emit(&format!("made under the preprocessing {p}"));
    }
    let zero = chip::math::inspect::zero_rows(&fit.weights, m.channels, &solved).len();
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
