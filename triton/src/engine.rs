//! The work behind the backend, free of the Triton API: loading the model and fits, turning
//! request tensors into preprocessed images, and running a batch of requests.
use crate::config::{BackendConfig, OutputName};
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation};
use chip::runtime::model::Model;
use chip::runtime::{Device, RuntimeOptions};
use std::sync::Arc;

/// A loaded model with its fitted layers, shared by the instances on one device.
pub struct Engine {
    pub config: BackendConfig,
    pub model: Arc<Model>,
    /// None when no fit files are configured (predictions only).
    pub explainer: Option<Explainer>,
    /// The ONNX Runtime library in use.
    pub ort_lib: std::path::PathBuf,
}

/// One request, checked and preprocessed.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    /// Preprocessed images, n×3×H×W.
    pub images: Vec<f32>,
    pub n: usize,
    /// Target class per image; None: the top-1 class.
    pub classes: Vec<Option<usize>>,
    pub outputs: Vec<OutputName>,
}

impl Job {
    pub fn needs_maps(&self) -> bool {
        self.outputs.iter().any(|o| o.needs_maps())
    }
    fn wants(&self, o: OutputName) -> bool {
        self.outputs.contains(&o)
    }
}

/// What one image gives. Map fields are filled only when the request asked for them.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemResult {
    pub probabilities: Vec<f32>,
    pub top1: i32,
    /// L×H×W, one map per fitted layer at the input size.
    pub chip_map: Option<Vec<f32>>,
    pub refined_map: Option<Vec<f32>>,
    /// x1, y1, x2, y2 inclusive; all −1 when the map is empty.
    pub bbox: Option<[i32; 4]>,
}

pub const NO_BOX: [i32; 4] = [-1, -1, -1, -1];

impl Engine {
    pub fn load(config: BackendConfig, device: Device) -> Result<Engine, String> {
        let options = RuntimeOptions { ort_lib: config.ort_lib.clone(), device, threads: config.threads, ..Default::default() };
        if !config.model_file.is_file() {
            return Err(format!("model file not found: {}", config.model_file.display()));
        }
        let ort_lib = chip::runtime::ensure_ort(config.ort_lib.as_deref()).map_err(|e| e.to_string())?;
        let model = Model::load_with(&config.model_file, &options, config.preprocess.as_ref())
            .map_err(|e| format!("cannot load model {}: {e}", config.model_file.display()))?;
        let model = Arc::new(model);
        let mut fits = Vec::with_capacity(config.fit_files.len());
        for path in &config.fit_files {
            if !path.is_file() {
                return Err(format!("fit file not found: {}", path.display()));
            }
            fits.push(chip::engine::fitfile::LayerFit::load(path).map_err(|e| format!("cannot load fit file: {e}"))?);
        }
        let layers = fits.len();
        let explainer = if fits.is_empty() {
            None
        } else {
            Some(Explainer::new(model.clone(), fits).map_err(|e| {
                format!("fit files do not belong to model {}: {e}", config.model_file.display())
            })?)
        };
        let (w, h) = model.input_size().as_usize();
        config.check_against((h, w), model.classes, layers)?;
        Ok(Engine { config, model, explainer, ort_lib })
    }

    pub fn classes(&self) -> usize {
        self.model.classes
    }

    pub fn image_len(&self) -> usize {
        self.model.image_len()
    }

    /// Checks a preprocessed tensor (n×3×H×W floats) for non-finite values.
    pub fn check_tensor(&self, data: &[f32], n: usize) -> Result<(), String> {
        self.model.check_batch_len("IMAGE", data.len(), n).map_err(|e| e.to_string())?;
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(format!("IMAGE holds a non-finite value (NaN or infinity) at image {}, index {}", i / self.image_len(), i % self.image_len()));
        }
        Ok(())
    }

    /// Decodes and preprocesses encoded images (PNG, JPEG, ...) into n×3×H×W.
    pub fn decode(&self, encoded: &[&[u8]]) -> Result<Vec<f32>, String> {
        let mut out = Vec::with_capacity(encoded.len() * self.image_len());
        for (i, bytes) in encoded.iter().enumerate() {
            if bytes.is_empty() {
                return Err(format!("IMAGE_BYTES[{i}] is empty"));
            }
            let prepared = self.model.preprocess.decode(bytes).map_err(|e| format!("IMAGE_BYTES[{i}]: {e}"))?;
            out.extend_from_slice(&prepared.data);
        }
        Ok(out)
    }

    /// Checks a target class against the model.
    pub fn class_of(&self, value: i32) -> Result<Option<usize>, String> {
        match value {
            -1 => Ok(None),
            v if v >= 0 && (v as usize) < self.classes() => Ok(Some(v as usize)),
            v => Err(format!("CLASS {v} is out of range: the model has {} classes (0..{}), or -1 for the top-1 class", self.classes(), self.classes() - 1)),
        }
    }

    /// Runs a batch of requests: one result (or error) per job, one item per image.
    /// Predictions-only jobs run the plain model; jobs asking for maps run the explainer.
    pub fn run(&self, jobs: &[&Job]) -> Vec<Result<Vec<ItemResult>, String>> {
        let mut results: Vec<Result<Vec<Option<ItemResult>>, String>> =
            jobs.iter().map(|j| Ok(vec![None; j.n])).collect();

        // Predictions only.
        let plain: Vec<usize> = (0..jobs.len()).filter(|&j| !jobs[j].needs_maps()).collect();
        if !plain.is_empty() {
            let batch: Vec<f32> = plain.iter().flat_map(|&j| jobs[j].images.iter().copied()).collect();
            let n: usize = plain.iter().map(|&j| jobs[j].n).sum();
            match self.model.predict(&batch, n) {
                Ok(probs) => {
                    let c = self.classes();
                    let mut row = 0;
                    for &j in &plain {
                        for i in 0..jobs[j].n {
                            let p = probs[row * c..(row + 1) * c].to_vec();
                            let top1 = argmax(&p) as i32;
                            if let Ok(items) = &mut results[j] {
                                items[i] = Some(ItemResult { probabilities: p, top1, chip_map: None, refined_map: None, bbox: None });
                            }
                            row += 1;
                        }
                    }
                }
                Err(e) => {
                    for &j in &plain {
                        results[j] = Err(format!("inference failed: {e}"));
                    }
                }
            }
        }

        // Maps: images with a target class in one explainer call (the union of the targets),
        // images explaining their top-1 class in another.
        let mut top: Vec<(usize, usize)> = Vec::new();
        let mut targeted: Vec<(usize, usize)> = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            if job.needs_maps() {
                for i in 0..job.n {
                    if job.classes[i].is_some() { targeted.push((j, i)) } else { top.push((j, i)) }
                }
            }
        }
        for (items, targeted) in [(top, false), (targeted, true)] {
            if items.is_empty() {
                continue;
            }
            let select = if targeted {
                let mut ids: Vec<usize> = items.iter().map(|&(j, i)| jobs[j].classes[i].unwrap()).collect();
                ids.sort_unstable();
                ids.dedup();
                ClassSelect::Ids(ids)
            } else {
                ClassSelect::TopK(1)
            };
            match self.explain_items(jobs, &items, select) {
                Ok(expl) => {
                    for (&(j, i), e) in items.iter().zip(expl) {
                        let item = self.item_from(jobs[j], jobs[j].classes[i], e);
                        match (item, &mut results[j]) {
                            (Ok(item), Ok(v)) => v[i] = Some(item),
                            (Err(msg), r) => *r = Err(msg),
                            (Ok(_), Err(_)) => {}
                        }
                    }
                }
                Err(msg) => {
                    for &(j, _) in &items {
                        results[j] = Err(msg.clone());
                    }
                }
            }
        }

        results
            .into_iter()
            .map(|r| {
                r.and_then(|items| {
                    items.into_iter().map(|x| x.ok_or_else(|| "internal error: an image got no result".to_string())).collect()
                })
            })
            .collect()
    }

    fn explain_items(&self, jobs: &[&Job], items: &[(usize, usize)], classes: ClassSelect) -> Result<Vec<ImageExplanation>, String> {
        let explainer = self.explainer.as_ref().ok_or("this model has no fitted layers (parameter fit_files)")?;
        let len = self.image_len();
        let mut batch = Vec::with_capacity(items.len() * len);
        for &(j, i) in items {
            batch.extend_from_slice(&jobs[j].images[i * len..(i + 1) * len]);
        }
        let refined = items.iter().any(|&(j, _)| {
            jobs[j].wants(OutputName::RefinedMap) || (self.config.refined && jobs[j].wants(OutputName::Box))
        });
        let sizes = vec![self.model.input_size(); items.len()];
        let options = ExplainOptions { classes, refined, threshold: self.config.threshold, original_size: false };
        let out = explainer.explain(&batch, &sizes, &options).map_err(|e| format!("explanation failed: {e}"))?;
        if out.len() != items.len() {
            return Err(format!("internal error: {} explanations for {} images", out.len(), items.len()));
        }
        Ok(out)
    }

    fn item_from(&self, job: &Job, class: Option<usize>, e: ImageExplanation) -> Result<ItemResult, String> {
        let top1 = e.top.first().map(|t| t.0).unwrap_or_else(|| argmax(&e.probabilities)) as i32;
        let ce = match class {
            None => e.classes.into_iter().next(),
            Some(c) => e.classes.into_iter().find(|x| x.class == c),
        }
        .ok_or("internal error: the explanation lacks the requested class")?;
        let chip_map = job.wants(OutputName::ChipMap).then(|| {
            let mut all = Vec::with_capacity(ce.maps.iter().map(|m| m.data.len()).sum());
            for m in &ce.maps {
                all.extend_from_slice(&m.data);
            }
            all
        });
        let bbox = job.wants(OutputName::Box).then(|| {
            let b = if self.config.refined { ce.refined.as_ref().and_then(|m| m.bbox) } else { ce.maps.last().and_then(|m| m.bbox) };
            b.map_or(NO_BOX, |b| [b.x1 as i32, b.y1 as i32, b.x2 as i32, b.y2 as i32])
        });
        let refined_map = if job.wants(OutputName::RefinedMap) {
            Some(ce.refined.map(|m| m.data).ok_or("internal error: no Refined CHIP map")?)
        } else {
            None
        };
        Ok(ItemResult { probabilities: e.probabilities, top1, chip_map, refined_map, bbox })
    }
}

/// Index of the first largest value.
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.5, 0.2, 0.5]), 1);
        assert_eq!(argmax(&[3.0]), 0);
    }
}
