//! `chip explain`.
use super::*;
use image::RgbImage;
use rayon::prelude::*;

#[derive(Args)]
pub(crate) struct ExplainArgs {
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// A fitted layer (.chip); repeat for several layers.
    #[arg(long = "fit", required = true)]
    pub(crate) fits: Vec<PathBuf>,
    #[arg(required = true, value_name = "IMAGE")]
    pub(crate) images: Vec<PathBuf>,
    /// Explain this class (repeat or list: `--class 1,5`).
    #[arg(long, value_parser = parse_class_list, conflicts_with = "top_k")]
    pub(crate) class: Vec<ClassList>,
    /// Explain the K most probable classes (`--top` is an older spelling).
    #[arg(long = "top-k", alias = "top", value_name = "K")]
    pub(crate) top_k: Option<usize>,
    /// Also the Refined CHIP map (first × last fitted layer).
    #[arg(long)]
    pub(crate) refined: bool,
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// One JSON line per image on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write each map as float32 .npy at the original image size.
    #[arg(long)]
    pub(crate) save_map: bool,
    /// Localization threshold relative to the map's maximum.
    #[arg(long, default_value_t = chip::math::localize::DEFAULT_THRESHOLD)]
    pub(crate) threshold: f32,
    /// Images per model run.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch: usize,
}


// ----------------------------------------------------------------------------------- explain --

/// A file-name-safe form of a layer name.
pub(crate) fn safe_name(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
    let t = t.trim_matches(|c| c == '_' || c == '.').to_string();
    if t.is_empty() { "layer".into() } else { t }
}

/// Output stems per image, unique even when photos from different folders share a name.
pub(crate) fn stems(images: &[PathBuf]) -> Vec<String> {
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

/// Reads and decodes a photo once (RGB8, with the library's checks for truncated files).
fn decode_photo(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    chip::runtime::preprocess::decode_rgb8(&bytes, &path.display().to_string())
}

/// A box as JSON `[x1, y1, x2, y2]`; no box is `[-1, -1, -1, -1]`, as in every language.
pub(crate) fn box_json(b: &Option<BBox>) -> Value {
    match b {
        Some(b) => json!([b.x1, b.y1, b.x2, b.y2]),
        None => json!([-1, -1, -1, -1]),
    }
}

pub(crate) fn explain(a: ExplainArgs, rt: &RuntimeOptions) -> Result<()> {
    // Each must be a regular file: a folder, FIFO or device says what it is.
    for (what, p) in a.images.iter().map(|p| ("image", p)).chain(a.fits.iter().map(|p| ("fit file", p))) {
        chip::util::read::open_regular(p, what)?;
    }
    let classes = match (&a.top_k, a.class.is_empty()) {
        (Some(k), _) => ClassSelect::TopK(*k),
        (None, false) => {
            let mut ids: Vec<usize> = a.class.iter().flat_map(|c| c.0.iter().copied()).collect();
            ids.sort_unstable();
            ids.dedup();
            ClassSelect::Ids(ids)
        }
        (None, true) => ClassSelect::TopK(1),
    };
    let options = ExplainOptions { classes, refined: a.refined, threshold: a.threshold, original_size: true };
    let fits = load_fits(&a.fits)?;
    let model = load_model(&a.model, rt)?;
    let explainer = Explainer::new(model.clone(), fits)?;
    // A bad class or threshold fails before any output is written.
    explainer.check_options(&options)?;
    // The folders this run creates are removed again when it fails before writing into them.
    let created = first_missing_ancestor(&a.out);
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let result = explain_into(&a, &model, &explainer, &options);
    if result.is_err() {
        if let Some(top) = created {
            remove_empty_dirs(&a.out, &top);
        }
    }
    result
}

/// The outermost folder of `path` that does not exist yet (None when `path` exists).
fn first_missing_ancestor(path: &Path) -> Option<PathBuf> {
    let mut missing = None;
    for p in path.ancestors().filter(|p| !p.as_os_str().is_empty()) {
        if p.symlink_metadata().is_ok() {
            break;
        }
        missing = Some(p.to_path_buf());
    }
    missing
}

/// Removes `path` and its parents up to `top`, each only while empty.
fn remove_empty_dirs(path: &Path, top: &Path) {
    for p in path.ancestors() {
        if std::fs::remove_dir(p).is_err() || p == top {
            break;
        }
    }
}

fn explain_into(a: &ExplainArgs, model: &Arc<Model>, explainer: &Explainer, options: &ExplainOptions) -> Result<()> {
    let layer_files: Vec<(String, String)> = explainer.layer_names().iter().map(|n| (n.to_string(), safe_name(n))).collect();
    let stems = stems(&a.images);
    let pb = bar(a.images.len(), "explaining");
    let mut unsolved_warned = false;
    for (chunk_i, chunk) in a.images.chunks(a.batch.max(1)).enumerate() {
        // Each photo is decoded once: the model's input and the overlay come from the same pixels.
        let photos: Vec<RgbImage> = chunk.par_iter().map(|p| decode_photo(p)).collect::<Result<_>>()?;
        let prepared = photos.par_iter().map(|p| model.preprocess.from_rgb8(p)).collect::<Result<Vec<_>>>()?;
        let results = explainer.explain_prepared(prepared, options)?;
        for (j, ((path, photo), ex)) in chunk.iter().zip(&photos).zip(&results).enumerate() {
            let idx = chunk_i * a.batch.max(1) + j;
            if !unsolved_warned {
                for c in &ex.classes {
                    if let Some(f) = explainer.fits().iter().find(|f| !f.is_solved(c.class)) {
                        eprintln!(
                            "chip: warning: class {} ({}) was not solved in the fit of '{}'; its map is empty",
                            c.class, chip::error::escape_controls(&label(model, c.class)), chip::error::escape_controls(&f.meta.layer)
                        );
                        unsolved_warned = true;
                        break;
                    }
                }
            }
            let record = write_explanation(a, model, &layer_files, &stems[idx], path, photo, ex)?;
            if a.json {
                emit(&record.to_string());
            } else {
                emit(&summary_line(model, explainer, path, ex));
            }
            pb.inc(1);
        }
    }
    pb.finish_and_clear();
    Ok(())
}

pub(crate) fn summary_line(model: &Model, explainer: &Explainer, path: &Path, ex: &ImageExplanation) -> String {
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

pub(crate) fn fmt_box(b: &Option<BBox>) -> String {
    match b {
        Some(b) => format!("({},{},{},{})", b.x1, b.y1, b.x2, b.y2),
        None => "none".into(),
    }
}

/// Writes the overlays (and maps) of one image; returns its JSON record.
pub(crate) fn write_explanation(
    a: &ExplainArgs,
    model: &Model,
    layer_files: &[(String, String)],
    stem: &str,
    path: &Path,
    photo: &RgbImage,
    ex: &ImageExplanation,
) -> Result<Value> {
    // The maps are at the size of the pixels the model saw, which are these.
    debug_assert_eq!(photo.dimensions(), (ex.size.width, ex.size.height));
    let write_map = |m: &Map, name: &str| -> Result<Value> {
        let mut img = chip::render::overlay(photo, &m.data)?;
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
