//! Explanations: one run of the model with the maps computed inside its graph (the construction of
//! `chip export`) gives the predictions and the requested classes' maps at the input size; Rust
//! resizes them to the photo's own size when asked, forms Refined CHIP and finds the boxes.
use crate::error::{Error, Result};
use crate::engine::fitfile::LayerFit;
use crate::engine::fitset::FitSet;
use crate::math::localize::BBox;
use crate::runtime::model::Model;
use crate::runtime::preprocess::{Size, Window, MAX_SIDE};
use crate::runtime::{Runner, Tensor, TensorView};
use std::sync::{Arc, OnceLock};

#[derive(Clone, Debug, PartialEq)]
pub enum ClassSelect {
    /// The k most probable classes (default k = 1).
    TopK(usize),
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
    fn default() -> Self { ExplainOptions { classes: ClassSelect::TopK(1), refined: false, threshold: crate::math::localize::DEFAULT_THRESHOLD, original_size: true } }
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
    /// Read-only after `new`: the graph that computes the maps holds their weights.
    set: FitSet,
    /// The model with the maps in its graph, built on first use; None where the graph cannot take
    /// them (opset below 13, tensor names of an exported model): the maps are then computed here
    /// from the layers' activations, with the same result.
    fused: OnceLock<Option<Arc<Runner>>>,
}

/// Each image's maps at the input size, for the classes one run computed.
enum Source {
    /// Per fit, [N, J, H, W] from the graph, for `classes` [N, J].
    Graph { classes: Vec<usize>, j: usize, maps: Vec<Vec<f32>> },
    /// Per fit, the activations [N, K, h, w].
    Activations(Vec<Vec<f32>>),
}

impl Explainer {
    /// Checks each fit against the model (fingerprint, layer, shape). At least one fit is needed.
    pub fn new(model: Arc<Model>, fits: Vec<LayerFit>) -> Result<Self> {
        let set = FitSet::new(&model, fits)?;
        Ok(Explainer { model, set, fused: OnceLock::new() })
    }

    /// The fits, in the order given to [`Explainer::new`].
    pub fn fits(&self) -> &[LayerFit] { self.set.fits() }

    pub fn layer_names(&self) -> Vec<&str> { self.set.layer_names() }

    /// Indices into `fits` of the two layers whose maps Refined CHIP multiplies (shallowest, deepest);
    /// None with a single fitted layer.
    pub fn refined_layers(&self) -> Option<(usize, usize)> { self.set.refine_pair() }

    /// A batch of preprocessed images (n×3×H×W) with their original sizes.
    ///
    /// Maps are at the original image size when `options.original_size` (boxes then in original
    /// pixels), else at the model's input size. `ClassSelect::Ids` with a class outside the model or
    /// not solved in every fit is an error; `TopK(k)` takes the k most probable classes, and a class
    /// a fit did not solve gets an all-zero map without a box. `options.refined` needs two fitted
    /// layers (else an error). Each image's result depends only on that image.
    pub fn explain(&self, batch: &[f32], sizes: &[Size], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        self.explain_windows(batch, sizes, &vec![None; sizes.len()], options)
    }

    /// [`Explainer::explain`] where each image's input shows a window of the original (a centre
    /// crop): the maps at the original size cover that window and are zero outside it.
    pub fn explain_windows(&self, batch: &[f32], sizes: &[Size], windows: &[Option<Window>], options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        use rayon::prelude::*;
        let n = sizes.len();
        if windows.len() != n {
            return Err(Error::invalid(format!("{} windows for {n} images", windows.len())));
        }
        self.check_options(options)?;
        if n == 0 {
            return Ok(Vec::new());
        }
        self.model.check_batch_len("batch", batch.len(), n)?;
        let bad = |s: &Size| s.width == 0 || s.height == 0 || s.width > MAX_SIDE || s.height > MAX_SIDE;
        if let Some((i, s)) = sizes.iter().enumerate().find(|(_, s)| bad(s)) {
            return Err(Error::invalid(format!(
                "sizes[{i}] is {s}; each side of an original size must be within 1..={MAX_SIDE}, as for decoded images"
            )));
        }
        self.check_map_memory(sizes, options)?;
        let classes = self.model.classes;
        let (probs, source) = match self.fused_runner() {
            Some(runner) => self.run_fused(&runner, batch, n, options)?,
            None => self.run_activations(batch, n)?,
        };
        if probs.len() != n * classes {
            return Err(Error::Model(format!("the run returned {} probabilities, expected {}", probs.len(), n * classes)));
        }
        if probs.iter().any(|p| !p.is_finite()) {
            return Err(Error::NonFinite("model output probabilities".into()));
        }
        (0..n)
            .into_par_iter()
            .map(|i| self.explain_one(i, &probs[i * classes..(i + 1) * classes], &source, sizes[i], windows[i], options))
            .collect()
    }

    /// The maps of one call are sized by the caller; a request that cannot be allocated would abort
    /// the process, so it is refused: more than the memory available, or a failed trial reservation.
    fn check_map_memory(&self, sizes: &[Size], options: &ExplainOptions) -> Result<()> {
        let e = self;
        let classes = match &options.classes {
            ClassSelect::TopK(k) => (*k).min(e.model.classes),
            ClassSelect::Ids(ids) => ids.len(),
        } as u128;
        let per_class = e.fits().len() as u128 + u128::from(options.refined);
        let input = e.model.input_size();
        let pixels: u128 = sizes.iter().map(|s| if options.original_size { s.pixels() } else { input.pixels() } as u128).sum();
        let bytes = pixels * classes * per_class * std::mem::size_of::<f32>() as u128;
        let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
        let too_much = |why: String| {
            Err(Error::invalid(format!("the maps of this call need {:.1} GiB: {why}; explain fewer or smaller images or classes", gib(bytes))))
        };
        if let Some(avail) = crate::util::mem::available_memory() {
            if bytes > avail as u128 {
                return too_much(format!("only {:.1} GiB of memory is available", gib(avail as u128)));
            }
        }
        let Ok(bytes_usize) = usize::try_from(bytes) else { return too_much("more than the address space".into()) };
        let mut probe: Vec<u8> = Vec::new();
        if probe.try_reserve_exact(bytes_usize).is_err() {
            return too_much("they cannot be allocated".into());
        }
        Ok(())
    }

    /// Whether the maps are computed inside the model's graph (else from the layers' activations,
    /// for models that cannot take them: opset below 13, tensor names of an exported model).
    pub fn maps_in_graph(&self) -> bool { self.fused_runner().is_some() }

    fn fused_runner(&self) -> Option<Arc<Runner>> {
        if let Some(r) = self.fused.get() {
            return r.clone();
        }
        // Built outside any lock: two threads may both build it, the first to finish is kept.
        let built = crate::engine::maps_graph::explain_graph(&self.model, &self.set)
            .and_then(|g| g.to_bytes())
            .and_then(|bytes| Runner::new(bytes, &self.model.options))
            .ok()
            .map(Arc::new);
        self.fused.get_or_init(|| built).clone()
    }

    /// One run of the graph with the maps; `TopK(k)` is ranked in the graph, then checked against
    /// this crate's ranking of the probabilities (which may differ on ties made by rounding in the
    /// softmax): where they differ, the run is repeated with the classes given explicitly.
    fn run_fused(&self, runner: &Runner, batch: &[f32], n: usize, options: &ExplainOptions) -> Result<(Vec<f32>, Source)> {
        let classes = self.model.classes;
        let (j, input): (usize, Vec<i64>) = match &options.classes {
            ClassSelect::TopK(k) => (*k, vec![-1; n * k]),
            ClassSelect::Ids(ids) => {
                let unique = distinct(ids);
                (unique.len(), (0..n).flat_map(|_| unique.iter().map(|&c| c as i64)).collect())
            }
        };
        let (probs, selected, maps) = self.run_graph(runner, batch, n, &input, j)?;
        if let ClassSelect::TopK(k) = options.classes {
            let ranked: Vec<i64> = probs.chunks(classes).flat_map(|p| rank(p).into_iter().take(k).map(|c| c as i64)).collect();
            if ranked != selected {
                let (probs, selected, maps) = self.run_graph(runner, batch, n, &ranked, j)?;
                return Ok((probs, Source::Graph { classes: checked_classes(&selected, classes)?, j, maps }));
            }
        }
        Ok((probs, Source::Graph { classes: checked_classes(&selected, classes)?, j, maps }))
    }

    /// Runs the graph with the maps in chunks of the model's fixed batch size, if it has one.
    /// Returns probabilities [N, C], the classes [N, J] and per fit the maps [N, J, H, W].
    fn run_graph(&self, runner: &Runner, batch: &[f32], n: usize, classes: &[i64], j: usize) -> Result<(Vec<f32>, Vec<i64>, Vec<Vec<f32>>)> {
        let model = &self.model;
        let (w, h) = model.input_size().as_usize();
        let chunk = model.fixed_batch().unwrap_or(n).max(1);
        if chunk != n && n % chunk != 0 {
            return Err(Error::invalid(format!("the model's batch size is fixed at {chunk}; {n} images is not a multiple")));
        }
        let names = runner.output_names();
        let at = |name: &str| {
            names.iter().position(|o| o == name).ok_or_else(|| Error::Ort(format!("output '{name}' missing from the graph with the maps")))
        };
        let p_at = at(&model.output)?;
        let s_at = at(crate::engine::maps_graph::EXPLAIN_SELECTED_OUTPUT)?;
        let m_at: Vec<usize> = (0..self.set.fits().len()).map(|i| at(&format!("chip/maps/{i}"))).collect::<Result<_>>()?;
        let per = 3 * h * w;
        let (mut probs, mut selected) = (Vec::with_capacity(n * model.classes), Vec::with_capacity(n * j));
        let mut maps = vec![Vec::with_capacity(n * j * h * w); self.set.fits().len()];
        for start in (0..n).step_by(chunk) {
            let m = chunk.min(n - start);
            let (shape, cshape) = ([m, 3, h, w], [m, j]);
            let inputs = [
                (model.input.name.as_str(), TensorView::F32(&shape, &batch[start * per..(start + m) * per])),
                (crate::engine::maps_graph::EXPLAIN_CLASSES_INPUT, TensorView::I64(&cshape, &classes[start * j..(start + m) * j])),
            ];
            let mut outs = runner.run_views(&inputs)?;
            let mut take = |i: usize, want: &[usize]| -> Result<Tensor> {
                let t = std::mem::replace(&mut outs[i], Tensor::I64(Vec::new(), Vec::new()));
                let shape = match &t {
                    Tensor::F32(s, _) | Tensor::I64(s, _) => s.clone(),
                };
                if shape != want {
                    return Err(Error::Ort(format!("output '{}' has shape {shape:?}, expected {want:?}", names[i])));
                }
                Ok(t)
            };
            match take(p_at, &[m, model.classes])? {
                Tensor::F32(_, d) => probs.extend(d),
                Tensor::I64(..) => return Err(Error::Ort(format!("output '{}' is not float", model.output))),
            }
            match take(s_at, &[m, j])? {
                Tensor::I64(_, d) => selected.extend(d),
                Tensor::F32(..) => return Err(Error::Ort("the selected classes are not int64".into())),
            }
            for (l, &i) in m_at.iter().enumerate() {
                match take(i, &[m, j, h, w])? {
                    Tensor::F32(_, d) => maps[l].extend(d),
                    Tensor::I64(..) => return Err(Error::Ort("a map output is not float".into())),
                }
            }
        }
        model.to_probabilities(&mut probs);
        Ok((probs, selected, maps))
    }

    /// The augmented run (activations as outputs), for models the maps cannot be added to.
    fn run_activations(&self, batch: &[f32], n: usize) -> Result<(Vec<f32>, Source)> {
        let layers = self.layer_names();
        let (probs, acts) = self.model.run_augmented(batch, n, &layers)?;
        if acts.len() != self.set.fits().len() {
            return Err(Error::Model(format!("augmented run returned {} activations, expected {}", acts.len(), self.set.fits().len())));
        }
        for (f, a) in self.set.fits().iter().zip(&acts) {
            let m = &f.meta;
            if a.len() != n * m.channels * m.height * m.width {
                return Err(Error::Model(format!(
                    "layer '{}' gave {} activation values, expected {}x{}x{}x{}",
                    m.layer, a.len(), n, m.channels, m.height, m.width
                )));
            }
        }
        Ok((probs, Source::Activations(acts)))
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

    /// Explains images already preprocessed (`Preprocess::load`, `decode` or `from_rgb8`), maps at
    /// their original sizes when `options.original_size`.
    pub fn explain_prepared(&self, prepared: Vec<crate::runtime::preprocess::Prepared>, options: &ExplainOptions) -> Result<Vec<ImageExplanation>> {
        let mut batch = Vec::with_capacity(prepared.iter().map(|p| p.data.len()).sum());
        let mut sizes = Vec::with_capacity(prepared.len());
        let mut windows = Vec::with_capacity(prepared.len());
        for p in prepared {
            batch.extend_from_slice(&p.data);
            sizes.push(p.size);
            windows.push(p.window);
        }
        self.explain_windows(&batch, &sizes, &windows, options)
    }

    /// The checks `explain` makes on its options (classes, threshold, refined), without running.
    pub fn check_options(&self, options: &ExplainOptions) -> Result<()> {
        let classes = self.model.classes;
        if !(options.threshold.is_finite() && options.threshold > 0.0 && options.threshold <= 1.0) {
            return Err(Error::invalid(format!("threshold {} is not in (0, 1]", options.threshold)));
        }
        if options.refined && self.set.refine_pair().is_none() {
            return Err(Error::invalid(format!(
                "Refined CHIP needs fits of two different layers (a shallow and a deep one); have {}",
                self.layer_names().join(", ")
            )));
        }
        match &options.classes {
            ClassSelect::TopK(k) if *k == 0 || *k > classes => {
                Err(Error::invalid(format!("top-k must be between 1 and {} (the number of classes), got {}", classes, k)))
            }
            ClassSelect::TopK(_) => Ok(()),
            ClassSelect::Ids(ids) => {
                if ids.is_empty() {
                    return Err(Error::invalid("no classes requested"));
                }
                if let Some(c) = ids.iter().find(|&&c| c >= classes) {
                    return Err(Error::invalid(format!("class {} is out of range: the model has {} classes (0..{})", c, classes, classes - 1)));
                }
                for f in self.set.fits() {
                    if let Some(c) = ids.iter().find(|&&c| !f.is_solved(c)) {
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

    fn explain_one(&self, i: usize, probs: &[f32], source: &Source, size: Size, window: Option<Window>, options: &ExplainOptions) -> Result<ImageExplanation> {
        use rayon::prelude::*;
        let ranked = rank(probs);
        let top: Vec<(usize, f32)> = ranked.iter().take(5).map(|&c| (c, probs[c])).collect();
        let selected: Vec<usize> = match &options.classes {
            ClassSelect::TopK(k) => ranked.iter().take(*k).copied().collect(),
            ClassSelect::Ids(ids) => ids.clone(),
        };
        let (iw, ih) = self.model.input_size().as_usize();
        let (mw, mh) = if options.original_size { size.as_usize() } else { (iw, ih) };
        let mut out = Vec::with_capacity(selected.len());
        for &c in &selected {
            // Layers in parallel too, so a single image uses every core.
            let maps: Vec<Map> = (0..self.set.fits().len())
                .into_par_iter()
                .map(|l| {
                    let mut data = self.input_size_map(i, l, c, source)?;
                    if data.iter().any(|v| !v.is_finite()) {
                        return Err(Error::NonFinite(format!(
                            "the map of class {c} at layer '{}' (the weights times the activations overflow)",
                            self.set.fits()[l].meta.layer
                        )));
                    }
                    match window.filter(|_| options.original_size) {
                        Some(w) => data = crate::math::maps::place_in_window(&data, ih, iw, mh, mw, [w.x, w.y, w.width, w.height]),
                        None if (mh, mw) != (ih, iw) => data = crate::math::maps::resize_bilinear(&data, ih, iw, mh, mw),
                        None => {}
                    }
                    let bbox = crate::math::localize::localize(&data, mw, mh, options.threshold);
                    Ok(Map { width: mw, height: mh, data, bbox })
                })
                .collect::<Result<_>>()?;
            let refined = match (options.refined, self.set.refine_pair()) {
                (true, Some((a, b))) => {
                    let data = crate::math::maps::refine(&maps[a].data, &maps[b].data);
                    let bbox = crate::math::localize::localize(&data, mw, mh, options.threshold);
                    Some(Map { width: mw, height: mh, data, bbox })
                }
                _ => None,
            };
            out.push(ClassExplanation { class: c, probability: probs[c], maps, refined });
        }
        Ok(ImageExplanation { probabilities: probs.to_vec(), top, classes: out, size })
    }

    /// Image `i`'s map of class `c` for fit `l` at the model's input size.
    fn input_size_map(&self, i: usize, l: usize, c: usize, source: &Source) -> Result<Vec<f32>> {
        let (iw, ih) = self.model.input_size().as_usize();
        match source {
            Source::Graph { classes, j, maps } => {
                let slot = classes[i * j..(i + 1) * j]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| Error::Ort(format!("the graph computed no map of class {c} for image {i}")))?;
                let hw = ih * iw;
                Ok(maps[l][(i * j + slot) * hw..(i * j + slot + 1) * hw].to_vec())
            }
            Source::Activations(acts) => {
                let m = &self.set.fits()[l].meta;
                let per = m.channels * m.height * m.width;
                let raw = crate::math::maps::class_map(self.set.fits()[l].row(c), &acts[l][i * per..(i + 1) * per], m.channels, m.height, m.width);
                Ok(crate::math::maps::resize_bilinear(&raw, m.height, m.width, ih, iw))
            }
        }
    }
}

/// The classes in first-seen order, each once.
fn distinct(ids: &[usize]) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::with_capacity(ids.len());
    for &c in ids {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The graph's selected classes as indices, each checked to be a class of the model.
fn checked_classes(selected: &[i64], classes: usize) -> Result<Vec<usize>> {
    selected
        .iter()
        .map(|&c| usize::try_from(c).ok().filter(|&c| c < classes).ok_or_else(|| Error::Ort(format!("the graph selected class {c}"))))
        .collect()
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
