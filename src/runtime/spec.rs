//! The preprocessing spec: how a model wants its images, stated once in JSON and used the same way by
//! every language, the CLI (`--preprocess FILE.json`), the sidecar `<model>.json`, the C ABI (a JSON
//! string) and the Triton model config. Every key is optional; what a spec leaves out is inferred from
//! the graph (layout, input size, element type) or assumed, and [`Resolved`] says which, key by key.
//!
//! ```json
//! {"input_size": [224, 224], "resize": "crop", "crop_ratio": 0.875, "interpolation": "bicubic",
//!  "channel_order": "RGB", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406],
//!  "std": [0.229, 0.224, 0.225], "layout": "NCHW", "output": "logits", "activation": "softmax"}
//! ```
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use crate::math::objective::Activation;
pub use crate::onnx::{InputType, Layout};

/// The spec format version this library writes and reads.
pub const SPEC_VERSION: u32 = 1;

/// Largest input side a spec may state (classifiers take far less; a larger one would only ask for
/// gigabytes of input tensor).
pub const MAX_INPUT_SIDE: u32 = 4096;

/// Largest spec accepted (a spec is a few hundred bytes; labels inline make it larger).
pub const MAX_SPEC_BYTES: u64 = 16 << 20;

/// How the image is brought to the input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// The whole image to the input size (aspect ratio not kept): maps cover the whole picture. With a
    /// `crop_ratio` below 1, stretched to input / crop_ratio, then the centre crop (Caffe's
    /// 256×256 then 224).
    Stretch,
    /// The shorter side to input / `crop_ratio` (aspect ratio kept), then the centre input-size crop,
    /// as torchvision's `Resize(int(size / crop_ratio))` + `CenterCrop(size)`. Maps cover the crop
    /// and are zero outside it.
    Crop,
}

/// The resampling filter, as PIL names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Nearest,
    Bilinear,
    Bicubic,
    Lanczos,
    Area,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelOrder {
    RGB,
    BGR,
}

/// What the chosen model output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Scores before the activation; the library applies `activation`.
    Logits,
    /// Probabilities already (a Softmax or Sigmoid ends the graph).
    Probabilities,
}

/// One number for every channel, or one per model input channel (in the model's channel order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PerChannel {
    One(f64),
    Each(Vec<f64>),
}

impl PerChannel {
    fn triple(&self, key: &str) -> Result<[f32; 3]> {
        match self {
            PerChannel::One(v) => Ok([*v as f32; 3]),
            PerChannel::Each(v) if v.len() == 3 => Ok([v[0] as f32, v[1] as f32, v[2] as f32]),
            PerChannel::Each(v) if v.len() == 1 => Ok([v[0] as f32; 3]),
            PerChannel::Each(v) => Err(spec_err(format!("'{key}' has {} numbers; give one, or one per channel (3)", v.len()))),
        }
    }
}

/// Class names: a text file (one name per line, relative to the spec's folder), a list, or a
/// `{"name": index}` map.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Labels {
    File(String),
    List(Vec<String>),
    Map(BTreeMap<String, usize>),
}

/// A preprocessing spec as a user states it: every key optional, unknown keys refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    /// The spec format version (1); absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// [height, width] of the model input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_size: Option<[u32; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<ResizeMode>,
    /// The share of the resized image the centre crop keeps (0 < r ≤ 1; 0.875 is torchvision's 224
    /// of 256). With `stretch` the image is stretched to input / r (default r = 1: no crop), with
    /// `crop` its shorter side goes to input / r (default 0.875).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolation: Option<Interpolation>,
    /// Widen the filter when downscaling (PIL, torchvision); false: a fixed kernel (OpenCV's
    /// `cv2.resize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub antialias: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_order: Option<ChannelOrder>,
    /// Multiplies the 0–255 pixel values first (1/255 for 0–1 inputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<f64>,
    /// x = (pixel · scale − mean) / std, per channel in the model's channel order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<PerChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<PerChannel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    /// The output to explain, when the model has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Labels>,
}

/// The keys of a spec, in their canonical order.
pub const KEYS: [&str; 15] = [
    "version", "input_size", "resize", "crop_ratio", "interpolation", "antialias", "channel_order", "scale",
    "mean", "std", "layout", "output", "activation", "output_name", "labels",
];

fn spec_err(msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("preprocessing spec: {msg}"))
}

impl PreprocessSpec {
    /// Parses JSON text. Unknown keys are refused with the list of known ones; a wrong value names its key.
    pub fn from_json(text: &str) -> Result<PreprocessSpec> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| spec_err(format!("invalid JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| spec_err("expected a JSON object of keys (see the README's table)"))?;
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(spec_err(format!("unknown key '{k}' (known keys: {})", KEYS.join(", "))));
        }
        // Key by key, so that a wrong value names its key and what it may be.
        for (k, v) in obj {
            let mut one = serde_json::Map::new();
            one.insert(k.clone(), v.clone());
            if let Err(e) = serde_json::from_value::<PreprocessSpec>(serde_json::Value::Object(one)) {
                return Err(spec_err(format!("'{k}': {}", value_hint(k, &e.to_string()))));
            }
        }
        let spec: PreprocessSpec = serde_json::from_value(value).map_err(|e| spec_err(e))?;
        spec.check()?;
        Ok(spec)
    }

    /// Reads a spec file; a `labels` file name is taken relative to the spec's folder.
    pub fn from_file(path: &Path) -> Result<PreprocessSpec> {
        let bytes = crate::util::read::read_regular(path, MAX_SPEC_BYTES, "preprocessing spec")?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::invalid(format!("{}: not UTF-8 (byte {})", path.display(), e.utf8_error().valid_up_to()))
        })?;
        let mut spec = PreprocessSpec::from_json(&text).map_err(|e| match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
            other => other,
        })?;
        if let Some(Labels::File(f)) = &spec.labels {
            let base = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
            spec.labels = Some(Labels::File(base.join(f).to_string_lossy().into_owned()));
        }
        Ok(spec)
    }

    /// Checks what can be checked without the model: ranges, finite numbers, combinations.
    pub fn check(&self) -> Result<()> {
        if let Some(v) = self.version {
            if v != SPEC_VERSION {
                return Err(spec_err(format!("version {v} is not supported (this library reads version {SPEC_VERSION})")));
            }
        }
        if let Some([h, w]) = self.input_size {
            let max = MAX_INPUT_SIDE;
            if h == 0 || w == 0 || h > max || w > max {
                return Err(spec_err(format!("'input_size' [{h}, {w}] must be [height, width], each within 1..={max}")));
            }
        }
        if let Some(r) = self.crop_ratio {
            if !(r.is_finite() && r > 0.0 && r <= 1.0) {
                return Err(spec_err(format!("'crop_ratio' {r} must be in (0, 1]")));
            }
        }
        if let Some(s) = self.scale {
            if !(s.is_finite() && s > 0.0) {
                return Err(spec_err(format!("'scale' {s} must be a positive number")));
            }
        }
        if let Some(m) = &self.mean {
            let m = m.triple("mean")?;
            if m.iter().any(|v| !v.is_finite()) {
                return Err(spec_err(format!("'mean' {m:?} must be finite")));
            }
        }
        if let Some(s) = &self.std {
            let s = s.triple("std")?;
            if s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
                return Err(spec_err(format!("'std' {s:?} must be positive")));
            }
        }
        if self.output == Some(OutputKind::Probabilities) && self.activation == Some(Activation::Softmax) {
            // Allowed: says the graph ends in a softmax (one class per image).
        }
        if let Some(n) = &self.output_name {
            if n.is_empty() {
                return Err(spec_err("'output_name' is empty"));
            }
        }
        Ok(())
    }
}

/// serde's message for a wrong value, with what the key accepts.
fn value_hint(key: &str, msg: &str) -> String {
    let accepts = match key {
        "version" => "1",
        "input_size" => "[height, width], positive integers",
        "resize" => "\"stretch\" or \"crop\"",
        "crop_ratio" => "a number in (0, 1]",
        "interpolation" => "\"nearest\", \"bilinear\", \"bicubic\", \"lanczos\" or \"area\"",
        "antialias" => "true or false",
        "channel_order" => "\"RGB\" or \"BGR\"",
        "scale" => "a positive number",
        "mean" | "std" => "a number, or one number per channel",
        "layout" => "\"NCHW\" or \"NHWC\"",
        "output" => "\"probabilities\" or \"logits\"",
        "activation" => "\"softmax\" or \"sigmoid\"",
        "output_name" => "the name of a model output",
        "labels" => "a file name, a list of names, or a {\"name\": index} map",
        _ => "",
    };
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    format!("{msg}; expected {accepts}")
}

/// Where a value of the effective spec came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Stated by the spec given to the load (`--preprocess`, C/Python/Go/Java/Triton option).
    Given,
    /// Stated by the sidecar `<model>.json` beside the model file.
    Sidecar,
    /// Read from the graph (input shape, element type, a final Softmax/Sigmoid).
    Graph,
    /// Measured on a probe run (output values that sum to 1 per row).
    Probe,
    /// Nothing stated it: the library's default.
    Assumed,
}

/// The complete, effective preprocessing of a loaded model, with the source of each key. Its
/// canonical JSON (every key but `labels`, in [`KEYS`] order) and fingerprint are recorded in fits.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub input_size: [u32; 2],
    pub resize: ResizeMode,
    pub crop_ratio: f64,
    pub interpolation: Interpolation,
    pub antialias: bool,
    pub channel_order: ChannelOrder,
    pub scale: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub layout: Layout,
    pub output: OutputKind,
    pub activation: Activation,
    pub output_name: String,
    /// The image input's element type (from the graph).
    pub input_type: InputType,
    /// Per key of [`KEYS`] (and "input_type"): where its value came from.
    pub sources: BTreeMap<String, Source>,
}

impl Resolved {
    /// The canonical JSON object: every key that changes the numbers, in a fixed order.
    pub fn canonical(&self) -> serde_json::Value {
        serde_json::json!({
            "version": SPEC_VERSION,
            "input_size": self.input_size,
            "resize": self.resize,
            "crop_ratio": self.crop_ratio,
            "interpolation": self.interpolation,
            "antialias": self.antialias,
            "channel_order": self.channel_order,
            "scale": self.scale,
            "mean": self.mean,
            "std": self.std,
            "layout": self.layout,
            "output": self.output,
            "activation": self.activation,
            "output_name": self.output_name,
        })
    }

    /// The canonical JSON text (serde_json keeps the keys sorted: a stable text for a stable spec).
    pub fn canonical_text(&self) -> String { self.canonical().to_string() }

    /// SHA-256 (hex) of the canonical text.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(self.canonical_text().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The canonical JSON with each key's source: `{"spec": {...}, "sources": {...}, "fingerprint": "..."}`.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "spec": self.canonical(), "sources": self.sources, "fingerprint": self.fingerprint() })
    }

    /// The keys nothing stated, each with its assumed value: what a warning should name.
    pub fn assumed(&self) -> Vec<String> {
        let canon = self.canonical();
        self.sources
            .iter()
            .filter(|(_, s)| **s == Source::Assumed || **s == Source::Probe)
            .map(|(k, s)| {
                let v = canon.get(k).map(|v| v.to_string()).unwrap_or_default();
                if *s == Source::Probe { format!("{k}={v} (from a probe run)") } else { format!("{k}={v}") }
            })
            .collect()
    }
}

/// The differences between two canonical specs, key by key ("key: a vs b"), for messages that refuse
/// a fit made under another preprocessing.
pub use crate::math::stats::spec_differences as differences;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_the_known_ones() {
        let e = PreprocessSpec::from_json(r#"{"mean": 0.5, "channels": "RGB"}"#).unwrap_err().to_string();
        assert!(e.contains("unknown key 'channels'") && e.contains("channel_order"), "{e}");
    }

    #[test]
    fn a_wrong_value_names_its_key_and_what_it_accepts() {
        let e = PreprocessSpec::from_json(r#"{"resize": "stretch_bilinear"}"#).unwrap_err().to_string();
        assert!(e.contains("'resize'") && e.contains("\"crop\""), "{e}");
        let e = PreprocessSpec::from_json(r#"{"scale": "0-1"}"#).unwrap_err().to_string();
        assert!(e.contains("'scale'") && e.contains("positive number"), "{e}");
        let e = PreprocessSpec::from_json(r#"{"mean": [1, 2]}"#).unwrap_err().to_string();
        assert!(e.contains("'mean' has 2 numbers"), "{e}");
        let e = PreprocessSpec::from_json(r#"{"crop_ratio": 1.5}"#).unwrap_err().to_string();
        assert!(e.contains("'crop_ratio' 1.5 must be in (0, 1]"), "{e}");
        assert!(PreprocessSpec::from_json("[1]").is_err());
        assert!(PreprocessSpec::from_json(r#"{"std": 0}"#).is_err());
        assert!(PreprocessSpec::from_json(r#"{"version": 2}"#).is_err());
    }

    #[test]
    fn every_key_parses_and_round_trips() {
        let text = r#"{"version": 1, "input_size": [240, 320], "resize": "crop", "crop_ratio": 0.875,
            "interpolation": "lanczos", "antialias": false, "channel_order": "BGR", "scale": 0.00392156862745098,
            "mean": [0.485, 0.456, 0.406], "std": 0.5, "layout": "NHWC", "output": "logits",
            "activation": "sigmoid", "output_name": "out", "labels": {"cat": 0, "dog": 1}}"#;
        let s = PreprocessSpec::from_json(text).unwrap();
        assert_eq!(s.input_size, Some([240, 320]));
        assert_eq!(s.labels, Some(Labels::Map([("cat".to_string(), 0), ("dog".to_string(), 1)].into())));
        let again = PreprocessSpec::from_json(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(again, s);
        assert_eq!(PreprocessSpec::from_json("{}").unwrap(), PreprocessSpec::default());
    }

    #[test]
    fn differences_name_the_keys() {
        let a = serde_json::json!({"scale": 1.0, "mean": [0.0, 0.0, 0.0]});
        let b = serde_json::json!({"scale": 0.5, "mean": [0.0, 0.0, 0.0]});
        assert_eq!(differences(&a, &b), vec!["scale: 1.0 vs 0.5".to_string()]);
    }
}
