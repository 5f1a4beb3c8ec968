//! The quality harness behind `chip eval`: methods (CHIP fits, Refined CHIP, and the reference
//! baselines CAM, centre prior and constant map) scored on the same photos by the metrics of
//! [`crate::engine::eval`], with bootstrap intervals and paired differences against a reference method.
use crate::error::{Error, Result};
use crate::engine::eval::{self, Interval};
use crate::engine::explain::{ClassSelect, ExplainOptions, Explainer};
use crate::engine::fitfile::LayerFit;
use crate::util::rng::Rng;
use crate::math::localize::{BBox, EvalItem, GtEntry, LocReport};
use crate::runtime::model::Model;
use crate::runtime::preprocess::Prepared;
use std::path::{Path, PathBuf};
use std::sync::Arc;

enum Kind {
    /// One fit: its map; two or more: Refined CHIP of the shallowest and the deepest.
    Fits(Explainer),
    Centre,
    Constant,
}

/// A way of drawing a map for a photo and a class.
pub struct Method {
    pub name: String,
    kind: Kind,
}

impl Method {
    /// CHIP from fitted layers: the layer's map for one fit, Refined CHIP for two or more.
    pub fn fits(name: &str, model: Arc<Model>, fits: Vec<LayerFit>) -> Result<Method> {
        Ok(Method { name: name.to_string(), kind: Kind::Fits(Explainer::new(model, fits)?) })
    }

    /// CAM at `layer` (the classifier's own weights; see [`crate::onnx::head`]).
    pub fn cam(name: &str, model: Arc<Model>, layer: &str) -> Result<Method> {
        let fit = crate::engine::cam::cam_fit(&model, layer)?;
        Method::fits(name, model, vec![fit])
    }

    /// The centre prior (a Gaussian bump in the middle), whatever the photo and class.
    pub fn centre(name: &str) -> Method { Method { name: name.to_string(), kind: Kind::Centre } }

    /// The constant map.
    pub fn constant(name: &str) -> Method { Method { name: name.to_string(), kind: Kind::Constant } }

    /// Maps (row-major) for each class, at the original size or at the model's input size.
    pub fn maps(&self, model: &Model, p: &Prepared, classes: &[usize], original_size: bool) -> Result<Vec<Vec<f32>>> {
        let (iw, ih) = model.input_size().as_usize();
        let (w, h) = if original_size { (p.size.width as usize, p.size.height as usize) } else { (iw, ih) };
        match &self.kind {
            Kind::Centre => Ok(vec![eval::centre_prior(w, h); classes.len()]),
            Kind::Constant => Ok(vec![eval::constant_map(w, h); classes.len()]),
            Kind::Fits(ex) => {
                let refined = ex.fits().len() >= 2;
                let options = ExplainOptions {
                    classes: ClassSelect::Ids(classes.to_vec()),
                    refined,
                    threshold: crate::math::localize::DEFAULT_THRESHOLD,
                    original_size,
                };
                let out = ex.explain_windows(&p.data, &[p.size], &[p.window], &options)?.remove(0);
                Ok(out
                    .classes
                    .into_iter()
                    .map(|c| match c.refined {
                        Some(r) => r.data,
                        None => c.maps.into_iter().next().map(|m| m.data).unwrap_or_default(),
                    })
                    .collect())
            }
        }
    }
}

/// The most probable class (the smallest index among ties).
fn top_class(probs: &[f32]) -> usize {
    (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b]).then(b.cmp(&a))).unwrap_or(0)
}

/// A 2×2 mosaic: its file and the class of each tile (top left, top right, bottom left, bottom right).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mosaic {
    pub file: String,
    pub tiles: Vec<String>,
    pub classes: Vec<usize>,
}

/// Reads a mosaic list written by [`make_mosaics`].
pub fn load_mosaics(path: &Path) -> Result<Vec<Mosaic>> {
    let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_TEXT_BYTES, "mosaic list")?;
    let list: Vec<Mosaic> = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("{}: not a mosaic list: {e}", path.display())))?;
    if let Some(m) = list.iter().find(|m| m.classes.len() != 4) {
        return Err(Error::invalid(format!("{}: mosaic {} has {} tile classes, expected 4", path.display(), m.file, m.classes.len())));
    }
    Ok(list)
}

/// Builds `count` mosaics of 2×2 photos with four different top-1 classes (the model's own
/// predictions), drawn with `seed`, each tile the model's input size; writes `mosaic_NNN.png` and
/// `mosaics.json` into `out`. File names in the list are relative to `out`.
pub fn make_mosaics(model: &Model, photos: &[PathBuf], count: usize, seed: u64, out: &Path) -> Result<Vec<Mosaic>> {
    let (tw, th) = model.input_size().as_usize();
    let mut top1 = Vec::with_capacity(photos.len());
    for p in photos {
        let prepared = model.preprocess.load(p)?;
        top1.push(top_class(&model.predict(&prepared.data, 1)?));
    }
    let mut distinct = top1.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(Error::invalid(format!("mosaics need photos of at least 4 different top-1 classes; these have {}", distinct.len())));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut r = Rng::new(seed);
    let mut list = Vec::with_capacity(count);
    for m in 0..count {
        let mut order: Vec<usize> = (0..photos.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, r.below(i as u64 + 1) as usize);
        }
        let mut picked: Vec<usize> = Vec::with_capacity(4);
        for i in order {
            if picked.iter().all(|&j| top1[j] != top1[i]) {
                picked.push(i);
                if picked.len() == 4 {
                    break;
                }
            }
        }
        let mut canvas = image::RgbImage::new(2 * tw as u32, 2 * th as u32);
        for (t, &i) in picked.iter().enumerate() {
            let bytes = crate::util::read::read_regular(&photos[i], crate::util::read::MAX_IMAGE_BYTES, "image")?;
            let img = crate::runtime::preprocess::decode_rgb8(&bytes, &photos[i].display().to_string())?;
            let tile = image::imageops::resize(&img, tw as u32, th as u32, image::imageops::FilterType::Triangle);
            image::imageops::replace(&mut canvas, &tile, ((t % 2) * tw) as i64, ((t / 2) * th) as i64);
        }
        let file = format!("mosaic_{m:03}.png");
        let mut png = Vec::new();
        canvas
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| Error::invalid(format!("cannot encode {file}: {e}")))?;
        crate::util::atomic::write_atomic(&out.join(&file), &png)?;
        list.push(Mosaic {
            file,
            tiles: picked.iter().map(|&i| photos[i].display().to_string()).collect(),
            classes: picked.iter().map(|&i| top1[i]).collect(),
        });
    }
    let json = serde_json::to_vec_pretty(&list).map_err(|e| Error::invalid(e.to_string()))?;
    crate::util::atomic::write_atomic(&out.join("mosaics.json"), &json)?;
    Ok(list)
}

/// What to score on. Any part may be empty; its metrics are then left out.
pub struct Dataset<'a> {
    /// Ground-truth boxes (entries without a class are skipped) and the folder their files are in.
    pub gt: &'a [GtEntry],
    pub gt_root: PathBuf,
    pub mosaics: &'a [Mosaic],
    pub mosaic_root: PathBuf,
    /// Photos for deletion and insertion (explained for their top-1 class).
    pub faithfulness: Vec<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Options {
    /// Deletion/insertion steps (20: 5% of the pixels per step).
    pub steps: usize,
    pub seed: u64,
    /// Localization thresholds tried for the box protocol.
    pub thresholds: Vec<f32>,
}

impl Default for Options {
    fn default() -> Self { Options { steps: 20, seed: 0, thresholds: (1..=19).map(|i| i as f32 * 0.05).collect() } }
}

/// Per-unit scores of one method (units: GT entries, mosaic tiles, faithfulness photos).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Scores {
    pub method: String,
    pub localization: Option<LocReport>,
    /// IoU ≥ 0.5 at the method's best threshold (1 or 0), per GT entry.
    pub box_hits: Vec<f64>,
    pub pointing: Vec<f64>,
    pub energy_in_box: Vec<f64>,
    pub grid_share: Vec<f64>,
    pub deletion: Vec<f64>,
    pub insertion: Vec<f64>,
}

/// Scores every method on the dataset. `progress(done, total)` after each method and part; false cancels.
pub fn score(model: &Model, methods: &[Method], data: &Dataset, options: &Options, progress: &dyn Fn(usize, usize) -> bool) -> Result<Vec<Scores>> {
    if options.steps == 0 {
        return Err(Error::invalid("deletion/insertion need at least 1 step"));
    }
    let gt: Vec<&GtEntry> = data.gt.iter().filter(|e| e.class.is_some() && !e.boxes.is_empty()).collect();
    let load = |p: &Path| model.preprocess.load(p);
    let gt_images: Vec<Prepared> = gt.iter().map(|e| load(&data.gt_root.join(&e.file))).collect::<Result<_>>()?;
    for (e, p) in gt.iter().zip(&gt_images) {
        if (p.size.width, p.size.height) != (e.width, e.height) {
            return Err(Error::invalid(format!(
                "{}: the photo is {}x{} but the ground truth says {}x{}",
                e.file, p.size.width, p.size.height, e.width, e.height
            )));
        }
    }
    let mosaic_images: Vec<Prepared> = data.mosaics.iter().map(|m| load(&data.mosaic_root.join(&m.file))).collect::<Result<_>>()?;
    let faith_images: Vec<Prepared> = data.faithfulness.iter().map(|p| load(p)).collect::<Result<_>>()?;
    let faith_class: Vec<usize> = faith_images
        .iter()
        .map(|p| Ok(top_class(&model.predict(&p.data, 1)?)))
        .collect::<Result<_>>()?;
    let (iw, ih) = model.input_size().as_usize();
    let total = methods.len() * 3;
    let mut done = 0;
    let tick = |done: &mut usize| -> Result<()> {
        *done += 1;
        if progress(*done, total) { Ok(()) } else { Err(Error::Cancelled) }
    };
    let mut out = Vec::with_capacity(methods.len());
    for m in methods {
        let mut s = Scores {
            method: m.name.clone(),
            localization: None,
            box_hits: Vec::new(),
            pointing: Vec::new(),
            energy_in_box: Vec::new(),
            grid_share: Vec::new(),
            deletion: Vec::new(),
            insertion: Vec::new(),
        };
        if !gt.is_empty() {
            let maps: Vec<Vec<f32>> = gt
                .iter()
                .zip(&gt_images)
                .map(|(e, p)| Ok(m.maps(model, p, &[e.class.unwrap_or(0)], true)?.remove(0)))
                .collect::<Result<_>>()?;
            let top1: Vec<usize> = vec![usize::MAX; gt.len()];
            let items: Vec<EvalItem> = gt.iter().zip(&maps).zip(&top1).map(|((e, map), &t)| EvalItem { gt: e, map, top1: t }).collect();
            let rep = crate::math::localize::evaluate(&items, &options.thresholds);
            s.box_hits = rep.ious.iter().map(|&v| f64::from(u8::from(v >= 0.5))).collect();
            for (e, map) in gt.iter().zip(&maps) {
                let boxes: Vec<BBox> = e.bboxes().collect();
                s.energy_in_box.push(eval::energy_share(map, e.width as usize, &boxes));
                let max = map.iter().filter(|v| v.is_finite()).fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let (x, y) = crate::math::localize::argmax(map, e.width as usize);
                s.pointing.push(f64::from(u8::from(max > 0.0 && boxes.iter().any(|b| b.contains(x, y)))));
            }
            s.localization = Some(rep);
        }
        tick(&mut done)?;
        for (mo, p) in data.mosaics.iter().zip(&mosaic_images) {
            let maps = m.maps(model, p, &mo.classes, false)?;
            for (t, map) in maps.iter().enumerate() {
                s.grid_share.push(eval::energy_share(map, iw, &[eval::grid_tile(iw, ih, t)]));
            }
        }
        tick(&mut done)?;
        for (i, (p, &c)) in faith_images.iter().zip(&faith_class).enumerate() {
            let map = m.maps(model, p, &[c], false)?.remove(0);
            let (del, ins) = eval::faithfulness(model, &p.data, &map, c, options.steps, options.seed ^ i as u64)?;
            s.deletion.push(del);
            s.insertion.push(ins);
        }
        tick(&mut done)?;
        out.push(s);
    }
    Ok(out)
}

/// One metric of one method: its mean with interval, and the paired difference to the reference.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Figure {
    pub value: Interval,
    pub vs_reference: Option<Interval>,
}

/// Metric names, in table order, with whether higher is better.
pub const METRICS: &[(&str, bool)] = &[
    ("gt_known_loc", true),
    ("pointing", true),
    ("energy_in_box", true),
    ("grid_share", true),
    ("deletion_auc", false),
    ("insertion_auc", true),
    ("ins_minus_del", true),
];

fn metric_values(s: &Scores, metric: &str) -> Vec<f64> {
    match metric {
        "gt_known_loc" => s.box_hits.clone(),
        "pointing" => s.pointing.clone(),
        "energy_in_box" => s.energy_in_box.clone(),
        "grid_share" => s.grid_share.clone(),
        "deletion_auc" => s.deletion.clone(),
        "insertion_auc" => s.insertion.clone(),
        "ins_minus_del" => s.insertion.iter().zip(&s.deletion).map(|(i, d)| i - d).collect(),
        _ => Vec::new(),
    }
}

/// Per method, per metric (see [`METRICS`]; absent where the dataset had no units for it).
pub fn summarize(scores: &[Scores], reference: Option<usize>, resamples: usize, seed: u64) -> Vec<Vec<(String, Option<Figure>)>> {
    scores
        .iter()
        .enumerate()
        .map(|(mi, s)| {
            METRICS
                .iter()
                .map(|&(metric, _)| {
                    let v = metric_values(s, metric);
                    if v.is_empty() {
                        return (metric.to_string(), None);
                    }
                    let vs_reference = reference.filter(|&r| r != mi).map(|r| {
                        let rv = metric_values(&scores[r], metric);
                        eval::bootstrap_paired(&v, &rv, resamples, seed)
                    });
                    (metric.to_string(), Some(Figure { value: eval::bootstrap_mean(&v, resamples, seed), vs_reference }))
                })
                .collect()
        })
        .collect()
}
