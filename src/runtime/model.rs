//! A loaded classifier: its ONNX graph, sessions (plain, augmented, split), layers, labels and
//! preprocessing. `Model` is Send + Sync: one model serves many threads at once.
use crate::error::{Error, Result};
use crate::onnx::OnnxModel;
use crate::onnx::{InputType, Layout};
use crate::runtime::preprocess::{Preprocess, Size};
use crate::runtime::spec::{ChannelOrder, Interpolation, Labels, PerChannel, PreprocessSpec, ResizeMode, Resolved, Source};
use std::collections::BTreeMap;
use crate::runtime::{Runner, RuntimeOptions};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::Path;
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

pub use crate::runtime::spec::{Activation, OutputKind};

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
    /// The activation that turns logits into probabilities (softmax, or sigmoid for multi-label).
    pub activation: Activation,
    pub labels: Option<Vec<String>>,
    /// The pixel pipeline of [`Model::spec`].
    pub preprocess: Preprocess,
    /// The effective preprocessing spec, with where each value came from.
    pub spec: Resolved,
    /// The model as given, when the library put an adapter in front of its input (NHWC, uint8,
    /// float16): `onnx` then takes NCHW float32 as `chip/image`; `chip export` extends this one.
    pub source: Option<OnnxModel>,
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

/// The name of the float32 NCHW input the library adds in front of an NHWC, uint8 or float16 input.
pub const ADAPTED_INPUT: &str = "chip/image";

impl Model {
    /// Loads an ONNX file with the preprocessing of its sidecar `<stem>.json`, if there is one (a
    /// preprocessing spec, see [`crate::runtime::spec`]); what nothing states is read from the graph
    /// or assumed, and [`Resolved::assumed`] lists it.
    pub fn load(path: &Path, options: &RuntimeOptions) -> Result<Model> {
        Self::load_with(path, options, None)
    }

    /// [`Model::load`] with a preprocessing spec: its keys override the sidecar's.
    pub fn load_with(path: &Path, options: &RuntimeOptions, spec: Option<&PreprocessSpec>) -> Result<Model> {
        let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_MODEL_BYTES, "model")?;
        let sidecar_path = path.with_extension("json");
        let sidecar = if sidecar_path.is_file() { Some(PreprocessSpec::from_file(&sidecar_path)?) } else { None };
        Self::build(bytes, &options.for_model_file(path), sidecar.as_ref(), spec).map_err(|e| match e {
            Error::Model(msg) => Error::Model(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    pub fn from_bytes(bytes: Vec<u8>, options: &RuntimeOptions) -> Result<Model> {
        Self::build(bytes, options, None, None)
    }

    /// [`Model::from_bytes`] with a preprocessing spec (a `labels` file name is taken as given).
    pub fn from_bytes_with(bytes: Vec<u8>, options: &RuntimeOptions, spec: Option<&PreprocessSpec>) -> Result<Model> {
        Self::build(bytes, options, None, spec)
    }

    fn build(bytes: Vec<u8>, options: &RuntimeOptions, sidecar: Option<&PreprocessSpec>, given: Option<&PreprocessSpec>) -> Result<Model> {
        let fingerprint = sha256_hex(&bytes);
        let original = OnnxModel::from_bytes(&bytes)?;
        let input = original.image_input()?;
        if input.channels != 3 {
            return Err(Error::Model(format!(
                "image input '{}' has {} channels; only RGB (3-channel) models are supported",
                input.name, input.channels
            )));
        }
        let mut sources: BTreeMap<String, Source> = BTreeMap::new();
        // A key's value: the given spec first, then the sidecar; None when neither states it.
        macro_rules! stated {
            ($key:ident) => {{
                let key = stringify!($key);
                match (given.and_then(|s| s.$key.clone()), sidecar.and_then(|s| s.$key.clone())) {
                    (Some(v), _) => { sources.insert(key.into(), Source::Given); Some(v) }
                    (None, Some(v)) => { sources.insert(key.into(), Source::Sidecar); Some(v) }
                    (None, None) => None,
                }
            }};
        }
        macro_rules! set {
            ($key:expr, $s:expr) => {{
                sources.insert($key.to_string(), $s);
            }};
        }

        // Layout: the graph's, unless it cannot tell; a stated layout must agree with it.
        let stated_layout = stated!(layout);
        let layout = match (input.layout, stated_layout) {
            (Some(g), Some(s)) if g != s => {
                return Err(Error::Model(format!(
                    "the preprocessing spec says layout {s:?} but input '{}' is {g:?} by its shape; remove \"layout\" or fix it",
                    input.name
                )))
            }
            (Some(g), _) => { set!("layout", Source::Graph); g }
            (None, Some(s)) => s,
            (None, None) => { set!("layout", Source::Assumed); Layout::NCHW }
        };
        // Size: the graph's where it is fixed; a stated size must agree with it.
        let stated_size = stated!(input_size);
        let (mut h, mut w) = (224usize, 224usize);
        match stated_size {
            Some([sh, sw]) => {
                for (what, graph, s) in [("height", input.height, sh as usize), ("width", input.width, sw as usize)] {
                    if let Some(g) = graph.filter(|&g| g != s) {
                        return Err(Error::Model(format!(
                            "the preprocessing spec's input_size {what} {s} differs from input '{}''s {what} {g}",
                            input.name
                        )));
                    }
                }
                (h, w) = (sh as usize, sw as usize);
            }
            None => match (input.height, input.width) {
                (Some(gh), Some(gw)) => { (h, w) = (gh, gw); set!("input_size", Source::Graph); }
                (gh, gw) => { (h, w) = (gh.unwrap_or(h), gw.unwrap_or(w)); set!("input_size", Source::Assumed); }
            },
        }
        let input_type = input.elem_type;
        set!("input_type", Source::Graph);
        let resize = stated!(resize).unwrap_or_else(|| { set!("resize", Source::Assumed); ResizeMode::Stretch });
        // Stretch without a crop ratio is the whole picture: that is what "stretch" says, not a guess.
        let resize_source = sources.get("resize").copied().unwrap_or(Source::Assumed);
        let crop_ratio = match stated!(crop_ratio) {
            Some(r) => r,
            None if resize == ResizeMode::Crop => { set!("crop_ratio", Source::Assumed); 0.875 }
            None => { set!("crop_ratio", resize_source); 1.0 }
        };
        let interpolation = stated!(interpolation).unwrap_or_else(|| { set!("interpolation", Source::Assumed); Interpolation::Bilinear });
        let antialias = stated!(antialias).unwrap_or_else(|| { set!("antialias", Source::Assumed); true });
        let channel_order = stated!(channel_order).unwrap_or_else(|| { set!("channel_order", Source::Assumed); ChannelOrder::RGB });
        let (scale, mean, std);
        let (s_scale, s_mean, s_std) = (stated!(scale), stated!(mean), stated!(std));
        let triple = |v: &PerChannel, key: &str| -> Result<[f32; 3]> {
            let mut probe = PreprocessSpec::default();
            if key == "mean" { probe.mean = Some(v.clone()) } else { probe.std = Some(v.clone()) }
            probe.check()?;
            Ok(match v {
                PerChannel::One(x) => [*x as f32; 3],
                PerChannel::Each(e) if e.len() == 1 => [e[0] as f32; 3],
                PerChannel::Each(e) => [e[0] as f32, e[1] as f32, e[2] as f32],
            })
        };
        if input_type == InputType::Uint8 {
            // The model normalises inside: it takes the pixel values as they are.
            let identity = s_scale.is_none_or(|s| s == 1.0)
                && s_mean.as_ref().map(|m| triple(m, "mean")).transpose()?.is_none_or(|m| m == [0.0; 3])
                && s_std.as_ref().map(|s| triple(s, "std")).transpose()?.is_none_or(|s| s == [1.0; 3]);
            if !identity {
                return Err(Error::Model(format!(
                    "input '{}' is uint8: the model takes the pixel values 0..255 as they are, so the preprocessing spec must not set scale, mean or std (or set them to 1, 0 and 1)",
                    input.name
                )));
            }
            (scale, mean, std) = (1.0f64, [0.0f32; 3], [1.0f32; 3]);
            for k in ["scale", "mean", "std"] {
                sources.entry(k.to_string()).or_insert(Source::Graph);
            }
        } else {
            let assumed = s_scale.is_none() && s_mean.is_none() && s_std.is_none();
            if assumed {
                // Nothing states a normalisation: ImageNet's on 0–1 values, said as assumed.
                (scale, mean, std) = (1.0 / 255.0, crate::runtime::preprocess::IMAGENET_MEAN, crate::runtime::preprocess::IMAGENET_STD);
                for k in ["scale", "mean", "std"] {
                    set!(k, Source::Assumed);
                }
            } else {
                scale = s_scale.unwrap_or_else(|| { set!("scale", Source::Assumed); 1.0 });
                mean = match &s_mean { Some(m) => triple(m, "mean")?, None => { set!("mean", Source::Assumed); [0.0; 3] } };
                std = match &s_std { Some(s) => triple(s, "std")?, None => { set!("std", Source::Assumed); [1.0; 3] } };
            }
        }
        let preprocess = Preprocess {
            height: h,
            width: w,
            resize,
            crop_ratio,
            interpolation,
            antialias,
            channel_order,
            scale: scale as f32,
            mean,
            std,
        };
        preprocess.validate()?;

        // The output to explain.
        let outputs = original.output_names();
        let output_index = match stated!(output_name) {
            Some(name) => outputs.iter().position(|o| *o == name).ok_or_else(|| {
                Error::Model(format!("the preprocessing spec's output_name '{name}' is not a model output (outputs: {})", outputs.join(", ")))
            })?,
            None if outputs.len() == 1 => { set!("output_name", Source::Graph); 0 }
            None => {
                return Err(Error::Model(format!(
                    "a classifier needs one output to explain, the model has {} ({}); name it with \"output_name\" in the preprocessing spec (--preprocess)",
                    outputs.len(),
                    outputs.join(", ")
                )))
            }
        };
        let output = outputs[output_index].clone();

        // Inputs in the model's own form: an adapter takes NCHW float32 to them.
        let needs_adapter = layout == Layout::NHWC || input_type != InputType::Float32;
        let (onnx, source, run_input) = if needs_adapter {
            let adapted = original.with_nchw_float_input(&input, layout, h, w, ADAPTED_INPUT)?;
            (adapted, Some(original), ADAPTED_INPUT.to_string())
        } else {
            (original, None, input.name.clone())
        };
        let model_input = crate::onnx::ImageInput {
            name: run_input,
            channels: 3,
            height: Some(h),
            width: Some(w),
            layout: Some(Layout::NCHW),
            elem_type: InputType::Float32,
        };
        let bytes = if source.is_some() { onnx.to_bytes()? } else { bytes };
        let runner = Runner::new(bytes, options)?;
        let fixed_batch = runner
            .declared_shape(&model_input.name)
            .and_then(|s| s.first().copied())
            .filter(|&b| b > 0)
            .map(|b| b as usize);
        let ends_in = onnx.producer_op(&output);
        let s_output = stated!(output);
        let s_activation = stated!(activation);
        let s_labels = stated!(labels);
        let spec = Resolved {
            input_size: [h as u32, w as u32],
            resize,
            crop_ratio,
            interpolation,
            antialias,
            channel_order,
            scale,
            mean,
            std,
            layout,
            output: OutputKind::Logits,
            activation: Activation::Softmax,
            output_name: output.clone(),
            input_type,
            sources: BTreeMap::new(),
        };
        let mut model = Model {
            onnx,
            fingerprint,
            input: model_input,
            output,
            classes: 0,
            output_kind: OutputKind::Logits,
            activation: Activation::Softmax,
            labels: None,
            preprocess,
            spec,
            source,
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
        // Output kind and activation: stated, else the graph's last op, else the probe.
        let graph_act = match ends_in.as_deref() {
            Some("Softmax") => Some(Activation::Softmax),
            Some("Sigmoid") => Some(Activation::Sigmoid),
            _ => None,
        };
        let (output_kind, activation) = match (s_output, s_activation) {
            (Some(o), Some(a)) => (o, a),
            (Some(o), None) => {
                let a = match (o, graph_act) {
                    (OutputKind::Probabilities, Some(a)) => { set!("activation", Source::Graph); a }
                    _ => { set!("activation", Source::Assumed); Activation::Softmax }
                };
                (o, a)
            }
            (None, a) => {
                let o = match graph_act {
                    Some(_) => { set!("output", Source::Graph); OutputKind::Probabilities }
                    None => { set!("output", Source::Probe); detect_output_kind(probe) }
                };
                let a = match (a, graph_act) {
                    (Some(a), _) => a,
                    (None, Some(g)) => { set!("activation", Source::Graph); g }
                    (None, None) => { set!("activation", Source::Assumed); Activation::Softmax }
                };
                (o, a)
            }
        };
        model.output_kind = output_kind;
        model.activation = activation;
        model.spec.output = output_kind;
        model.spec.activation = activation;
        if let Some(labels) = s_labels {
            let labels = labels_list(&labels, model.classes)?;
            model.labels = Some(labels);
        }
        model.spec.sources = sources;
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

    /// Turns raw outputs (n×C) into probabilities according to `output_kind` and `activation`.
    pub fn to_probabilities(&self, raw: &mut [f32]) {
        if self.output_kind == OutputKind::Logits && self.classes > 0 {
            match self.activation {
                Activation::Softmax => raw.chunks_mut(self.classes).for_each(crate::math::objective::softmax),
                Activation::Sigmoid => raw.iter_mut().for_each(|v| *v = crate::math::objective::sigmoid(*v)),
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

/// The class names a spec's `labels` gives, checked to name every class once.
fn labels_list(labels: &Labels, classes: usize) -> Result<Vec<String>> {
    let names = match labels {
        Labels::File(f) => read_labels(Path::new(f))?,
        Labels::List(l) => l.clone(),
        Labels::Map(m) => {
            let mut names = vec![None; m.len()];
            for (name, &i) in m {
                match names.get_mut(i) {
                    Some(slot @ None) => *slot = Some(name.clone()),
                    Some(Some(other)) => {
                        return Err(Error::Model(format!("labels: '{name}' and '{other}' both map to class {i}")))
                    }
                    None => return Err(Error::Model(format!("labels: '{name}' maps to {i}, but the indices must be 0..{}", m.len()))),
                }
            }
            names.into_iter().map(|n| n.unwrap_or_default()).collect()
        }
    };
    if names.len() != classes {
        return Err(Error::Model(format!("the labels name {} classes, the model has {classes}", names.len())));
    }
    Ok(names)
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
