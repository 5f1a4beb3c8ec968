//! Makes small fits for the backend's tests: two layers (by default the model's Refined CHIP
//! layers), fitted on a folder of photos for the top-1 classes of the given test photos (plus their
//! runner-up classes, so a request can target another fitted class).
//!
//! test_fits --model M.onnx --images DIR|LIST --count N --gates G [--layers A,B] --out DIR PHOTO...
//! Writes DIR/<index>.chip and DIR/fits.json (layers, files, classes, each photo's top-1).
use chip::engine::fit::{fit_layer, FitOptions, Images};
use chip::runtime::model::Model;
use chip::runtime::RuntimeOptions;
use std::path::PathBuf;

fn main() {
    if let Err(e) = run() {
        eprintln!("test_fits: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut model, mut images, mut out, mut count, mut gates, mut photos) = (None, None, None, 32usize, 64usize, Vec::new());
    let mut layers: Option<String> = None;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--model" => model = Some(PathBuf::from(value()?)),
            "--images" => images = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--count" => count = value()?.parse().map_err(|_| "--count needs a number")?,
            "--layers" => layers = Some(value()?),
            "--gates" => gates = value()?.parse().map_err(|_| "--gates needs a number")?,
            _ => photos.push(PathBuf::from(a)),
        }
    }
    let (model, images, out) = match (model, images, out) {
        (Some(m), Some(i), Some(o)) => (m, i, o),
        _ => return Err("usage: test_fits --model M --images DIR --out DIR [--count N] [--gates G] PHOTO...".into()),
    };
    let model = Model::load(&model, &RuntimeOptions::default()).map_err(|e| e.to_string())?;
    let mut classes = Vec::new();
    let mut top1 = serde_json::Map::new();
    for p in &photos {
        let prepared = model.preprocess.load(p).map_err(|e| e.to_string())?;
        let probs = model.predict(&prepared.data, 1).map_err(|e| e.to_string())?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        top1.insert(p.file_name().unwrap().to_string_lossy().into_owned(), serde_json::json!(order[0]));
        classes.extend_from_slice(&order[..2]);
    }
    classes.sort_unstable();
    classes.dedup();

    let mut list = chip::engine::fit::list_images(&images).map_err(|e| e.to_string())?;
    list.truncate(count);
    let (first, last) = match layers {
        None => model.default_layers().map_err(|e| e.to_string())?,
        Some(s) => match s.split_once(',') {
            Some((a, b)) => (model.layer(a.trim()).map_err(|e| e.to_string())?, model.layer(b.trim()).map_err(|e| e.to_string())?),
            None => return Err("--layers needs two names: FIRST,LAST".into()),
        },
    };
    let params = FitOptions { gates, classes: Some(classes.clone()), ..FitOptions::default() };
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut files = Vec::new();
    for (i, layer) in [&first, &last].into_iter().enumerate() {
        let t = std::time::Instant::now();
        let fit = fit_layer(&model, &layer.name, &Images::Files(list.clone()), &params, &chip::engine::fit::no_progress).map_err(|e| e.to_string())?;
        let file = format!("layer{i}.chip");
        fit.save(&out.join(&file)).map_err(|e| e.to_string())?;
        eprintln!("test_fits: {} ({}×{}×{}) fitted in {:.1} s", layer.name, layer.channels, layer.height, layer.width, t.elapsed().as_secs_f64());
        files.push(file);
    }
    let meta = serde_json::json!({
        "layers": [first.name, last.name],
        "files": files,
        "classes": classes,
        "top1": top1,
        "images": list.len(),
        "gates": gates,
        "model_fingerprint": model.fingerprint,
    });
    chip::util::atomic::write_atomic(&out.join("fits.json"), serde_json::to_string_pretty(&meta).unwrap().as_bytes()).map_err(|e| e.to_string())?;
    Ok(())
}
