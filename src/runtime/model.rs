//! A loaded classifier: its ONNX graph, sessions (plain, augmented, split), layers, labels and
//! preprocessing. `Model` is Send + Sync: one model serves many threads at once.
use crate::error::{Error, Result};
use crate::onnx::OnnxModel;
use crate::runtime::preprocess::{Preprocess, Size};
use crate::runtime::{Runner, RuntimeOptions};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A candidate layer with its activation shape (from one probe run at batch 1).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerInfo {
    pub name: String,
    pub op_type: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

/// Whether the output holds logits (softmax is applied for probabilities) or probabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OutputKind { Logits, Probabilities }

/// Prefix and suffix sessions of a split. `crossing[0]` is the layer.
pub struct SplitRunner {
    pub prefix: crate::runtime::Runner,
    pub suffix: crate::runtime::Runner,
    pub crossing: Vec<String>,
    pub layer: LayerInfo,
}

pub struct Model {
    pub onnx: OnnxModel,
    /// SHA-256 (hex) of the model file's bytes.
    pub fingerprint: String,
    pub input: crate::onnx::ImageInput,
    pub output: String,
    pub classes: usize,
    pub output_kind: OutputKind,
    pub labels: Option<Vec<String>>,
    pub preprocess: Preprocess,
    pub options: RuntimeOptions,
    /// Session of the unmodified model.
    runner: Runner,
    /// Position of `output` among the graph outputs (the augmented model keeps them first).
    output_index: usize,
    /// Number of graph outputs of the unmodified model.
    graph_outputs: usize,
    /// Fixed batch size of the image input, if the graph fixes one.
    fixed_batch: Option<usize>,
    layers: OnceLock<Vec<LayerInfo>>,
    augmented: Mutex<HashMap<Vec<String>, Arc<Runner>>>,
    splits: Mutex<HashMap<String, Arc<SplitRunner>>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("fingerprint", &self.fingerprint)
            .field("input", &self.input)
            .field("output", &self.output)
            .field("classes", &self.classes)
            .field("output_kind", &self.output_kind)
            .field("preprocess", &self.preprocess)
            .finish_non_exhaustive()
    }
}

/// Settings read from the sidecar `<stem>.json`.
#[derive(Default)]
struct Sidecar {
    input_size: Option<(usize, usize)>,
    mean: Option<[f32; 3]>,
    std: Option<[f32; 3]>,
    center_crop: Option<bool>,
    labels: Option<Vec<String>>,
    logits: Option<bool>,
    output_name: Option<String>,
    num_classes: Option<usize>,
}

impl Model {
    /// Loads an ONNX file. A sidecar `<stem>.json` beside it (keys: input_size [h,w], mean, std in
    /// 0..255 units, labels = file name of a class-name list beside it, logits = bool) sets the
    /// preprocessing, labels and output kind; without it, ImageNet mean/std and detection of logits.
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<Model> {
        let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_MODEL_BYTES, "model")?;
        let sidecar_path = path.with_extension("json");
        let sidecar = if sidecar_path.is_file() { read_sidecar(&sidecar_path)? } else { Sidecar::default() };
        Self::build(bytes, &options.for_model_file(path), sidecar).map_err(|e| match e {
            Error::Model(msg) => Error::Model(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn from_bytes(bytes: Vec<u8>, options: &RuntimeOptions) -> Result<Model> {
        Self::build(bytes, options, Sidecar::default())
    }

    fn build(bytes: Vec<u8>, options: &RuntimeOptions, sidecar: Sidecar) -> Result<Model> {
        let fingerprint = sha256_hex(&bytes);
        let onnx = OnnxModel::from_bytes(&bytes)?;
        let input = onnx.image_input()?;
        if input.channels != 3 {
            return Err(Error::Model(format!(
                "image input '{}' has {} channels; only RGB (3-channel) models are supported",
                input.name, input.channels
            )));
        }
        let outputs = onnx.output_names();
        let output_index = match &sidecar.output_name {
            Some(name) => outputs.iter().position(|o| o == name).ok_or_else(|| {
                Error::Model(format!("sidecar output_name '{name}' is not a model output (outputs: {})", outputs.join(", ")))
            })?,
            None if outputs.len() == 1 => 0,
            None => {
                return Err(Error::Model(format!(
                    "a classifier needs exactly one output, the model has {} ({})",
                    outputs.len(),
                    outputs.join(", ")
                )))
            }
        };
        let output = outputs[output_index].clone();

        let mut preprocess = Preprocess::default();
        if let Some((h, w)) = sidecar.input_size {
            preprocess.height = h;
            preprocess.width = w;
        }
        if let Some(h) = input.height {
            if sidecar.input_size.is_some() && h != preprocess.height {
                return Err(Error::Model(format!(
                    "sidecar input_size height {} differs from the model's input height {h}",
                    preprocess.height
                )));
            }
            preprocess.height = h;
        }
        if let Some(w) = input.width {
            if sidecar.input_size.is_some() && w != preprocess.width {
                return Err(Error::Model(format!(
                    "sidecar input_size width {} differs from the model's input width {w}",
                    preprocess.width
                )));
            }
            preprocess.width = w;
        }
        if let Some(m) = sidecar.mean {
            preprocess.mean = m;
        }
        if let Some(s) = sidecar.std {
            preprocess.std = s;
        }
        if let Some(c) = sidecar.center_crop {
            preprocess.center_crop = c;
        }
        preprocess.validate()?;

        let runner = Runner::new(bytes, options)?;
        let fixed_batch = runner
            .declared_shape(&input.name)
            .and_then(|s| s.first().copied())
            .filter(|&b| b > 0)
            .map(|b| b as usize);
        let mut model = Model {
            onnx,
            fingerprint,
            input,
            output,
            classes: 0,
            output_kind: OutputKind::Logits,
            labels: None,
            preprocess,
            options: options.clone(),
            runner,
            output_index,
            graph_outputs: outputs.len(),
            fixed_batch,
            layers: OnceLock::new(),
            augmented: Mutex::new(HashMap::new()),
            splits: Mutex::new(HashMap::new()),
        };

        // One probe run on a blank image gives the class count (and the output kind if not stated).
        let blank = vec![0f32; model.image_len()];
        let outs = model.run_chunked(&model.runner, &blank, 1)?;
        let (shape, probe) = &outs[model.output_index];
        if shape.first() != Some(&1) || probe.is_empty() {
            return Err(Error::Model(format!("output '{}' has shape {shape:?} at batch 1; expected [1, classes]", model.output)));
        }
        // Only one score per class can be explained: a map or a box output is not a classifier.
        if shape.len() != 2 {
            let hint = if shape[1..].iter().skip(1).all(|&d| d == 1) { " (add a Flatten to its end)" } else { "" };
            return Err(Error::Model(format!(
                "output '{}' has shape {shape:?} at batch 1; a classifier's output is [batch, classes]{hint}",
                model.output
            )));
        }
        if probe.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!("model output '{}' on a blank image", model.output)));
        }
        model.classes = probe.len();
        if let Some(n) = sidecar.num_classes {
            if n != model.classes {
                return Err(Error::Model(format!("sidecar num_classes {n} differs from the model's {} outputs", model.classes)));
            }
        }
        model.output_kind = match sidecar.logits {
            Some(true) => OutputKind::Logits,
            Some(false) => OutputKind::Probabilities,
            None => detect_output_kind(probe),
        };
        if let Some(labels) = sidecar.labels {
            if labels.len() != model.classes {
                return Err(Error::Model(format!(
                    "the label file has {} names, the model has {} classes",
                    labels.len(),
                    model.classes
                )));
            }
            model.labels = Some(labels);
        }
        Ok(model)
    }

    /// Floats in one preprocessed image (3×H×W).
    pub fn image_len(&self) -> usize {
        3 * self.preprocess.height * self.preprocess.width
    }

    /// The one check of a preprocessed batch's length: `len` floats hold `n` ≥ 1 images of 3×H×W.
    /// `what` names the tensor in the message.
    pub fn check_batch_len(&self, what: &str, len: usize, n: usize) -> Result<()> {
        if n == 0 {
            return Err(Error::invalid(format!("{what} holds no images (n = 0)")));
        }
        let need = n.checked_mul(self.image_len());
        if need != Some(len) {
            return Err(Error::invalid(format!(
                "{what} holds {len} floats, but {n} images of 3x{}x{} need {}",
                self.preprocess.height,
                self.preprocess.width,
                n.saturating_mul(self.image_len())
            )));
        }
        Ok(())
    }

    fn check_batch(&self, batch: &[f32], n: usize) -> Result<()> {
        self.check_batch_len("batch", batch.len(), n)
    }

    /// Runs `runner` on the image input, in chunks when the graph fixes the batch size.
    /// Outputs are concatenated along the batch axis.
    fn run_chunked(&self, runner: &Runner, batch: &[f32], n: usize) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        let (h, w) = (self.preprocess.height, self.preprocess.width);
        let chunk = self.fixed_batch.unwrap_or(n).max(1);
        if chunk != n && n % chunk != 0 {
            return Err(Error::invalid(format!("the model's batch size is fixed at {chunk}; {n} images is not a multiple")));
        }
        let per = self.image_len();
        let mut merged: Option<Vec<(Vec<usize>, Vec<f32>)>> = None;
        for part in batch.chunks(chunk * per) {
            let m = part.len() / per;
            let outs = runner.run(&[(self.input.name.as_str(), &[m, 3, h, w], part)])?;
            merged = Some(match merged {
                None => outs,
                Some(mut acc) => {
                    for ((shape, data), (s, d)) in acc.iter_mut().zip(outs) {
                        if let (Some(a), Some(b)) = (shape.first_mut(), s.first()) {
                            *a += *b;
                        }
                        data.extend(d);
                    }
                    acc
                }
            });
        }
        merged.ok_or_else(|| Error::invalid("empty batch"))
    }

    /// All 4-D candidate layers in graph order (probed once, then cached). Only feature maps with a
    /// spatial extent (H·W > 1) computed after a learned op (Conv, Gemm, ...) count.
    pub fn layers(&self) -> Result<Vec<LayerInfo>> {
        if let Some(l) = self.layers.get() {
            return Ok(l.clone());
        }
        let candidates = self.onnx.candidates();
        let learned = self.learned_tensors();
        let mut names: Vec<&str> = Vec::new();
        let mut ops: Vec<&str> = Vec::new();
        for c in &candidates {
            // A tensor that already is a graph output cannot be added again; one computed from the
            // input alone (padding, input scaling) is no learned feature map.
            if !names.contains(&c.tensor.as_str())
                && !self.onnx_outputs_contain(&c.tensor)
                && learned.contains(c.tensor.as_str())
                && !SKIPPED_OPS.contains(&c.op_type.as_str())
            {
                names.push(&c.tensor);
                ops.push(&c.op_type);
            }
        }
        let mut found = Vec::new();
        if !names.is_empty() {
            let bytes = self.onnx.augmented(&names)?.to_bytes()?;
            let runner = Runner::new(bytes, &self.options)?;
            let blank = vec![0f32; self.image_len()];
            let outs = self.run_chunked(&runner, &blank, 1)?;
            for (i, name) in names.iter().enumerate() {
                let Some((shape, _)) = outs.get(self.graph_outputs + i) else { continue };
                if let [1, k, h, w] = shape[..] {
                    if h * w > 1 && k > 0 {
                        found.push(LayerInfo {
                            name: name.to_string(),
                            op_type: ops[i].to_string(),
                            channels: k,
                            height: h,
                            width: w,
                        });
                    }
                }
            }
        }
        let _ = self.layers.set(found);
        Ok(self.layers.get().cloned().unwrap_or_default())
    }

    /// Tensors downstream of a node with learned weights (graph order is topological).
    fn learned_tensors(&self) -> HashSet<&str> {
        const WEIGHTED: [&str; 6] = ["Conv", "ConvTranspose", "Gemm", "MatMul", "ConvInteger", "QLinearConv"];
        let mut derived: HashSet<&str> = HashSet::new();
        for n in &self.onnx.proto.graph.node {
            if WEIGHTED.contains(&n.op_type.as_str()) || n.input.iter().any(|i| derived.contains(i.as_str())) {
                derived.extend(n.output.iter().map(String::as_str));
            }
        }
        derived
    }

    fn onnx_outputs_contain(&self, tensor: &str) -> bool {
        self.onnx.output_names().iter().any(|o| o == tensor)
    }

    pub fn layer(&self, name: &str) -> Result<LayerInfo> {
        let layers = self.layers()?;
        layers.iter().find(|l| l.name == name).cloned().ok_or_else(|| Error::UnknownLayer {
            name: name.to_string(),
            candidates: crate::onnx::summarize_names(&layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>()),
        })
    }

    /// The layers Refined CHIP combines by default: the stem's activation (the first layer,
    /// followed through element-wise ops that keep its shape) and the last layer (the conv head).
    pub fn default_layers(&self) -> Result<(LayerInfo, LayerInfo)> {
        let layers = self.layers()?;
        let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
            return Err(Error::Model("the model has no 4-D layer with a spatial extent".into()));
        };
        let same = |l: &LayerInfo| (l.channels, l.height, l.width) == (first.channels, first.height, first.width);
        let elementwise = ["Relu", "Clip", "BatchNormalization", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Elu", "Selu", "Mul"];
        let mut stem = first;
        for l in &layers[1..] {
            if same(l) && elementwise.contains(&l.op_type.as_str()) {
                stem = l;
            } else {
                break;
            }
        }
        Ok((stem.clone(), last.clone()))
    }

    /// Class probabilities, batch×classes, for a batch of preprocessed images (batch×3×H×W).
    pub fn predict(&self, batch: &[f32], n: usize) -> Result<Vec<f32>> {
        self.check_batch(batch, n)?;
        let mut outs = self.run_chunked(&self.runner, batch, n)?;
        let mut raw = std::mem::take(&mut outs[self.output_index].1);
        self.check_output(&raw, n)?;
        self.to_probabilities(&mut raw);
        Ok(raw)
    }

    fn check_output(&self, raw: &[f32], n: usize) -> Result<()> {
        if raw.len() != n * self.classes {
            return Err(Error::Ort(format!(
                "output '{}' has {} values for {n} images, expected {}",
                self.output,
                raw.len(),
                n * self.classes
            )));
        }
        Ok(())
    }

    /// One run of the augmented model: probabilities (n×C) and each layer's activations (n×K×H×W).
    pub fn run_augmented(&self, batch: &[f32], n: usize, layers: &[&str]) -> Result<(Vec<f32>, Vec<Vec<f32>>)> {
        self.check_batch(batch, n)?;
        if layers.is_empty() {
            return Ok((self.predict(batch, n)?, Vec::new()));
        }
        let mut infos = Vec::with_capacity(layers.len());
        for (i, name) in layers.iter().enumerate() {
            if layers[..i].contains(name) {
                return Err(Error::invalid(format!("layer '{name}' listed twice")));
            }
            infos.push(self.layer(name)?);
        }
        let key: Vec<String> = layers.iter().map(|s| s.to_string()).collect();
        let cached = self.augmented.lock().get(&key).cloned();
        let runner = match cached {
            Some(r) => r,
            None => {
                // Built outside the lock: session creation is slow and other layer sets need not wait.
                let bytes = self.onnx.augmented(layers)?.to_bytes()?;
                let r = Arc::new(Runner::new(bytes, &self.options)?);
                self.augmented.lock().entry(key).or_insert(r).clone()
            }
        };
        let mut outs = self.run_chunked(&runner, batch, n)?;
        let mut probs = std::mem::take(&mut outs[self.output_index].1);
        self.check_output(&probs, n)?;
        self.to_probabilities(&mut probs);
        let mut acts = Vec::with_capacity(layers.len());
        for (i, info) in infos.iter().enumerate() {
            let (shape, data) = outs
                .get_mut(self.graph_outputs + i)
                .ok_or_else(|| Error::Ort(format!("layer '{}' missing from the augmented outputs", info.name)))?;
            let want = [n, info.channels, info.height, info.width];
            if shape[..] != want {
                return Err(Error::Ort(format!("layer '{}' has shape {shape:?}, expected {want:?}", info.name)));
            }
            acts.push(std::mem::take(data));
        }
        Ok((probs, acts))
    }

    /// The split at a layer (cached).
    pub fn split(&self, layer: &str) -> Result<Arc<SplitRunner>> {
        if let Some(s) = self.splits.lock().get(layer) {
            return Ok(s.clone());
        }
        let info = self.layer(layer)?;
        let split = self.onnx.split(layer)?;
        let prefix = Runner::new(split.prefix.to_bytes()?, &self.options)?;
        let suffix = Runner::new(split.suffix.to_bytes()?, &self.options)?;
        let runner = Arc::new(SplitRunner { prefix, suffix, crossing: split.crossing, layer: info });
        Ok(self.splits.lock().entry(layer.to_string()).or_insert(runner).clone())
    }

    /// Turns raw outputs (n×C) into probabilities according to `output_kind`.
    pub fn to_probabilities(&self, raw: &mut [f32]) {
        if self.output_kind == OutputKind::Logits && self.classes > 0 {
            for row in raw.chunks_mut(self.classes) {
                crate::math::objective::softmax(row);
            }
        }
    }

    /// The input size in pixels (validated to at most MAX_SIDE per side when the model loads).
    pub fn input_size(&self) -> Size { Size::new(self.preprocess.width as u32, self.preprocess.height as u32) }

    /// The batch size the graph fixes for its image input, if any (runs then go in chunks of it).
    pub fn fixed_batch(&self) -> Option<usize> { self.fixed_batch }

    /// The class name for an index, when labels are known.
    pub fn label(&self, class: usize) -> Option<&str> {
        self.labels.as_ref().and_then(|l| l.get(class)).map(String::as_str)
    }
}

/// Candidate ops whose output only repeats another layer's values: a padded copy is off the image
/// grid by the padding, so its maps would not line up with the picture.
const SKIPPED_OPS: [&str; 1] = ["Pad"];

/// Probabilities if every value is ≥ 0 and each row sums to 1 ± 1e-3; logits otherwise.
fn detect_output_kind(probe: &[f32]) -> OutputKind {
    let nonneg = probe.iter().all(|&v| v >= 0.0);
    let sum: f64 = probe.iter().map(|&v| v as f64).sum();
    if nonneg && (sum - 1.0).abs() <= 1e-3 {
        OutputKind::Probabilities
    } else {
        OutputKind::Logits
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_sidecar(path: &Path) -> Result<Sidecar> {
    let bad = |msg: String| Error::Model(format!("{}: {msg}", path.display()));
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(text).map_err(|_| bad("not valid UTF-8".into()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad("expected a JSON object".into()))?;
    let mut s = Sidecar::default();
    let positive = |key: &str, x: &serde_json::Value| -> Result<usize> {
        x.as_u64().filter(|&n| n > 0).map(|n| n as usize).ok_or_else(|| bad(format!("'{key}' must hold positive integers")))
    };
    if let Some(x) = obj.get("input_size") {
        s.input_size = Some(match x {
            serde_json::Value::Array(a) if a.len() == 2 => (positive("input_size", &a[0])?, positive("input_size", &a[1])?),
            serde_json::Value::Number(_) => {
                let n = positive("input_size", x)?;
                (n, n)
            }
            _ => return Err(bad("'input_size' must be [height, width]".into())),
        });
    }
    let triple = |key: &str| -> Result<Option<[f32; 3]>> {
        let Some(x) = obj.get(key) else { return Ok(None) };
        let vals: Option<Vec<f32>> = match x {
            serde_json::Value::Array(a) => a.iter().map(|e| e.as_f64().map(|f| f as f32)).collect(),
            serde_json::Value::Number(n) => n.as_f64().map(|f| vec![f as f32]),
            _ => None,
        };
        match vals.as_deref() {
            Some([a, b, c]) => Ok(Some([*a, *b, *c])),
            Some([a]) => Ok(Some([*a; 3])),
            _ => Err(bad(format!("'{key}' must be a number or 3 numbers (R, G, B)"))),
        }
    };
    s.mean = triple("mean")?;
    s.std = triple("std")?;
    if let Some(x) = obj.get("logits") {
        s.logits = Some(x.as_bool().ok_or_else(|| bad("'logits' must be true or false".into()))?);
    }
    if let Some(x) = obj.get("resize") {
        let r = x.as_str().ok_or_else(|| bad("'resize' must be a string".into()))?;
        s.center_crop = Some(r.contains("crop"));
    }
    if let Some(x) = obj.get("output_name") {
        s.output_name = Some(x.as_str().ok_or_else(|| bad("'output_name' must be a string".into()))?.to_string());
    }
    if let Some(x) = obj.get("num_classes") {
        s.num_classes = Some(positive("num_classes", x)?);
    }
    if let Some(x) = obj.get("labels") {
        let name = x.as_str().ok_or_else(|| bad("'labels' must be a file name".into()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        s.labels = Some(read_labels(&dir.join(name))?);
    }
    Ok(s)
}

/// One class name per line, in class order; a trailing empty line is ignored.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::Model(format!("{}: label file is not valid UTF-8 (byte {})", path.display(), e.utf8_error().valid_up_to()))
    })?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    Ok(labels)
}
