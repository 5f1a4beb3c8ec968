//! Explanations: one run of the augmented model gives the predictions and every fitted layer's
//! activations; maps per requested class and layer, Refined CHIP, boxes.
use crate::error::{Error, Result};
use crate::fitfile::LayerFit;
use crate::localize::BBox;
use crate::model::Model;
use crate::preprocess::Size;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum ClassSelect {
    /// The k most probable classes (default k = 1).
    Top(usize),
    Ids(Vec<usize>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ExplainOptions {
    pub classes: ClassSelect,
    /// Also compute Refined CHIP (first × last fitted layer).
    pub refined: bool,
    /// Localization threshold relative to the map's max.
    pub threshold: f32,
    /// Also give maps at the original image size (else at the model's input size).
    pub original_size: bool,
}

impl Default for ExplainOptions {
    fn default() -> Self { ExplainOptions { classes: ClassSelect::Top(1), refined: false, threshold: crate::localize::DEFAULT_THRESHOLD, original_size: true } }
}

/// A map with its size and box.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
    pub bbox: Option<BBox>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClassExplanation {
    pub class: usize,
    pub probability: f32,
    /// One map per fitted layer, in the explainer's layer order.
    pub maps: Vec<Map>,
    pub refined: Option<Map>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ImageExplanation {
    pub probabilities: Vec<f32>,
    /// Classes by decreasing probability (at most 5).
    pub top: Vec<(usize, f32)>,
    pub classes: Vec<ClassExplanation>,
    /// The original image size.
    pub size: Size,
}

/// A model with fitted layers. Send + Sync; `explain` may be called from many threads at once.
pub struct Explainer {
    pub model: Arc<Model>,
    pub fits: Vec<LayerFit>,
    /// Indices into `fits` of the shallowest and the deepest layer (graph order), for Refined CHIP.
    refine_pair: Option<(usize, usize)>,
}

impl Explainer {
    /// Checks each fit against the model (fingerprint, layer, shape). At least one fit is needed.
    pub fn new(model: Arc<Model>, fits: Vec<LayerFit>) -> Result<Self> {
        if fits.is_empty() {
            return Err(Error::invalid("an explainer needs at least one fitted layer"));
        }
        for (i, f) in fits.iter().enumerate() {
            f.check_against(&model)?;
            if fits[..i].iter().any(|g| g.meta.layer == f.meta.layer) {
                return Err(Error::invalid(format!("two fits of layer '{}'; give one per layer", f.meta.layer)));
            }
        }
        let refine_pair = refine_pair(&model, &fits)?;
        Ok(Explainer { model, fits, refine_pair })
    }

    pub fn layer_names(&self) -> Vec<&str> { self.fits.iter().map(|f| f.meta.layer.as_str()).collect() }

    /// Indices into `fits` of the two layers whose maps Refined CHIP multiplies (shallowest, deepest);
    /// None with a single fitted layer.
    pub fn refined_layers(&self) -> Option<(usize, usize)> { self.refine_pair }

    /// A batch of preprocessed images (n×3×H×W) with their original sizes.
    ///
    /// Maps are at the original image size when `options.original_size` (boxes then in original
    /// pixels), else at the model's input size. `ClassSelect::Ids` with a class outside the model or
    /// not solved in every fit is an error; `Top(k)` takes the k most probable classes, and a class
    /// a fit did not solve gets an all-zero map without a box. `options.refined` needs two fitted
    /// layers (else an error). Each image's result depends only on that image.
    pub fn explain(&self, batch: &[f32], sizes: &[Size], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        use rayon::prelude::*;
        let n = sizes.len();
        let (iw, ih) = self.model.input_size().as_usize();
        self.check_options(options)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        if batch.len() != n * 3 * ih * iw {
            return Err(Error::invalid(format!(
                "batch has {} values, {} images of 3x{}x{} need {}",
                batch.len(), n, ih, iw, n * 3 * ih * iw
            )));
        }
        if let Some(i) = sizes.iter().position(|s| s.width == 0 || s.height == 0) {
            return Err(Error::invalid(format!("image {} has an empty original size {}", i, sizes[i])));
        }
        let classes = self.model.classes;
        let layers = self.layer_names();
        let (probs, acts) = self.model.run_augmented(batch, n, &layers)?;
        if probs.len() != n * classes || acts.len() != self.fits.len() {
            return Err(Error::Model(format!(
                "augmented run returned {} probabilities and {} activations, expected {} and {}",
                probs.len(), acts.len(), n * classes, self.fits.len()
            )));
        }
        for (f, a) in self.fits.iter().zip(&acts) {
            let m = &f.meta;
            if a.len() != n * m.channels * m.height * m.width {
                return Err(Error::Model(format!(
                    "layer '{}' gave {} activation values, expected {}x{}x{}x{}",
                    m.layer, a.len(), n, m.channels, m.height, m.width
                )));
            }
        }
        if probs.iter().any(|p| !p.is_finite()) {
            return Err(Error::NonFinite("model output probabilities".into()));
        }
        (0..n)
            .into_par_iter()
            .map(|i| self.explain_one(i, &probs[i * classes..(i + 1) * classes], &acts, sizes[i], options))
            .collect()
    }

    pub fn explain_files(&self, paths: &[std::path::PathBuf], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        use rayon::prelude::*;
        let prepared: Vec<_> = paths.par_iter().map(|p| self.model.preprocess.load(p)).collect::<Result<_>>()?;
        self.explain_prepared(prepared, options)
    }

    pub fn explain_encoded(&self, images: &[&[u8]], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        use rayon::prelude::*;
        let prepared: Vec<_> = images.par_iter().map(|b| self.model.preprocess.decode(b)).collect::<Result<_>>()?;
        self.explain_prepared(prepared, options)
    }

    fn explain_prepared(&self, prepared: Vec<crate::preprocess::Prepared>, options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        let mut batch = Vec::with_capacity(prepared.iter().map(|p| p.data.len()).sum());
        let mut sizes = Vec::with_capacity(prepared.len());
        for p in prepared {
            batch.extend_from_slice(&p.data);
            sizes.push(p.size);
        }
        self.explain(&batch, &sizes, options)
    }

    /// The checks `explain` makes on its options (classes, threshold, refined), without running.
    pub fn check_options(&self, options: &ExplainOptions) -> Result<()> {
        let classes = self.model.classes;
        if !(options.threshold.is_finite() && options.threshold > 0.0 && options.threshold <= 1.0) {
            return Err(Error::invalid(format!("threshold {} is not in (0, 1]", options.threshold)));
        }
        if options.refined && self.refine_pair.is_none() {
            return Err(Error::invalid(format!(
                "Refined CHIP needs fits of two different layers (a shallow and a deep one); have {}",
                self.layer_names().join(", ")
            )));
        }
        match &options.classes {
            ClassSelect::Top(k) if *k == 0 || *k > classes => {
                Err(Error::invalid(format!("top-k must be between 1 and {} (the number of classes), got {}", classes, k)))
            }
            ClassSelect::Top(_) => Ok(()),
            ClassSelect::Ids(ids) => {
                if ids.is_empty() {
                    return Err(Error::invalid("no classes requested"));
                }
                if let Some(c) = ids.iter().find(|&&c| c >= classes) {
                    return Err(Error::invalid(format!("class {} is out of range: the model has {} classes (0..{})", c, classes, classes - 1)));
                }
                for f in &self.fits {
                    if let Some(c) = ids.iter().find(|&&c| !is_solved(f, c)) {
                        return Err(Error::invalid(format!(
                            "class {} was not solved in the fit of layer '{}' (it solved {} classes); fit again including it",
                            c, f.meta.layer, f.meta.solved_classes.len()
                        )));
                    }
                }
                Ok(())
            }
        }
    }

    fn explain_one(&self, i: usize, probs: &[f32], acts: &[Vec<f32>], size: Size, options: &ExplainOptions) -> Result<ImageExplanation> {
        use rayon::prelude::*;
        let ranked = rank(probs);
        let top: Vec<(usize, f32)> = ranked.iter().take(5).map(|&c| (c, probs[c])).collect();
        let selected: Vec<usize> = match &options.classes {
            ClassSelect::Top(k) => ranked.iter().take(*k).copied().collect(),
            ClassSelect::Ids(ids) => ids.clone(),
        };
        let (iw, ih) = self.model.input_size().as_usize();
        let (mw, mh) = if options.original_size { size.as_usize() } else { (iw, ih) };
        let mut out = Vec::with_capacity(selected.len());
        for &c in &selected {
            // Layers in parallel too, so a single image uses every core.
            let maps: Vec<Map> = self
                .fits
                .par_iter()
                .zip(acts)
                .map(|(f, a)| {
                    let m = &f.meta;
                    let per = m.channels * m.height * m.width;
                    let raw = crate::maps::class_map(f.row(c), &a[i * per..(i + 1) * per], m.channels, m.height, m.width);
                    let mut data = crate::maps::resize_bilinear(&raw, m.height, m.width, ih, iw);
                    if (mh, mw) != (ih, iw) {
                        data = crate::maps::resize_bilinear(&data, ih, iw, mh, mw);
                    }
                    let bbox = crate::localize::localize(&data, mw, mh, options.threshold);
                    Map { width: mw, height: mh, data, bbox }
                })
                .collect();
            let refined = match (options.refined, self.refine_pair) {
                (true, Some((a, b))) => {
                    let data = crate::maps::refine(&maps[a].data, &maps[b].data);
                    let bbox = crate::localize::localize(&data, mw, mh, options.threshold);
                    Some(Map { width: mw, height: mh, data, bbox })
                }
                _ => None,
            };
            out.push(ClassExplanation { class: c, probability: probs[c], maps, refined });
        }
        Ok(ImageExplanation { probabilities: probs.to_vec(), top, classes: out, size })
    }
}

/// Indices into `fits` of the layers Refined CHIP multiplies: the first and the last fitted layer of
/// the network, whatever order the fits were given in. None with fewer than two layers.
pub fn refine_pair(model: &Model, fits: &[LayerFit]) -> Result<Option<(usize, usize)>> {
    if fits.len() < 2 {
        return Ok(None);
    }
    let order: Vec<String> = model.layers()?.into_iter().map(|l| l.name).collect();
    let pos = |f: &LayerFit| order.iter().position(|n| *n == f.meta.layer).unwrap_or(usize::MAX);
    let first = (0..fits.len()).min_by_key(|&i| (pos(&fits[i]), i)).unwrap_or(0);
    let last = (0..fits.len()).max_by_key(|&i| (pos(&fits[i]), usize::MAX - i)).unwrap_or(0);
    Ok(if first == last { None } else { Some((first, last)) })
}

/// Whether a fit solved a class (rows of unsolved classes are zero).
pub fn is_solved(fit: &LayerFit, class: usize) -> bool {
    fit.meta.solved_classes.is_empty() || fit.meta.solved_classes.contains(&class)
}

/// Class indices by decreasing probability (ties by index, so the order is deterministic).
fn rank(probs: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx
}

#[cfg(test)]
mod tests {
    #[test]
    fn explainer_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Explainer>();
    }
}
