//! The model configuration as this backend reads it (Triton's config.pbtxt, given as JSON).
use chip::runtime::spec::PreprocessSpec;
use serde_json::Value;
use std::path::{Path, PathBuf};

pub const IMAGE: &str = "IMAGE";
pub const IMAGE_BYTES: &str = "IMAGE_BYTES";
pub const CLASS: &str = "CLASS";
pub const PROBABILITIES: &str = "PROBABILITIES";
pub const TOP1: &str = "TOP1";
pub const CHIP_MAP: &str = "CHIP_MAP";
pub const REFINED_MAP: &str = "REFINED_MAP";
pub const BOX: &str = "BOX";

/// An output this backend can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputName {
    Probabilities,
    Top1,
    ChipMap,
    RefinedMap,
    Box,
}

impl OutputName {
    pub const ALL: [OutputName; 5] =
        [OutputName::Probabilities, OutputName::Top1, OutputName::ChipMap, OutputName::RefinedMap, OutputName::Box];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputName::Probabilities => PROBABILITIES,
            OutputName::Top1 => TOP1,
            OutputName::ChipMap => CHIP_MAP,
            OutputName::RefinedMap => REFINED_MAP,
            OutputName::Box => BOX,
        }
    }

    pub fn parse(name: &str) -> Option<OutputName> {
        OutputName::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Whether producing it needs the fitted layers' maps.
    pub fn needs_maps(self) -> bool {
        matches!(self, OutputName::ChipMap | OutputName::RefinedMap | OutputName::Box)
    }

    fn data_type(self) -> &'static str {
        match self {
            OutputName::Probabilities | OutputName::ChipMap | OutputName::RefinedMap => "TYPE_FP32",
            OutputName::Top1 | OutputName::Box => "TYPE_INT32",
        }
    }
}

/// A tensor declared in the configuration (dims without the batch dimension).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub data_type: String,
    pub dims: Vec<i64>,
}

/// Everything the backend takes from the model configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BackendConfig {
    pub model_name: String,
    /// 0: no batch dimension in the tensors.
    pub max_batch_size: usize,
    /// The ONNX file, resolved against the model version folder.
    pub model_file: PathBuf,
    pub fit_files: Vec<PathBuf>,
    /// Boxes come from Refined CHIP instead of the last fitted layer's map.
    pub refined: bool,
    pub threshold: f32,
    /// Intra-op threads per session; 0 lets ONNX Runtime choose.
    pub threads: usize,
    /// Explicit path of libonnxruntime.so.
    pub ort_lib: Option<PathBuf>,
    /// The preprocessing spec (parameter `preprocess`: a JSON object, or the path of a .json file
    /// relative to the model version folder); its keys override the model's sidecar `<model>.json`.
    pub preprocess: Option<PreprocessSpec>,
    pub image: Option<TensorSpec>,
    pub image_bytes: Option<TensorSpec>,
    pub class: Option<TensorSpec>,
    pub outputs: Vec<(OutputName, TensorSpec)>,
}

/// Parameter keys, one name for one idea with the rest of the library.
pub const PARAM_MODEL_FILE: &str = "model_file";
pub const PARAM_FIT_FILES: &str = "fit_files";
pub const PARAM_REFINED: &str = "refined";
pub const PARAM_THRESHOLD: &str = "threshold";
pub const PARAM_THREADS: &str = "threads";
pub const PARAM_ORT_LIB: &str = "ort_lib";
pub const PARAM_PREPROCESS: &str = "preprocess";
const KNOWN_PARAMS: [&str; 7] =
    [PARAM_MODEL_FILE, PARAM_FIT_FILES, PARAM_REFINED, PARAM_THRESHOLD, PARAM_THREADS, PARAM_ORT_LIB, PARAM_PREPROCESS];

fn int_of(v: &Value) -> Option<i64> {
    // Triton writes int64 fields as numbers; the protobuf JSON mapping writes them as strings.
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn tensor_specs(config: &Value, key: &str) -> Result<Vec<TensorSpec>, String> {
    let Some(list) = config.get(key) else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| format!("'{key}' is not a list"))?;
    list.iter()
        .map(|t| {
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| format!("an entry of '{key}' has no name"))?;
            let data_type = t.get("data_type").and_then(Value::as_str).unwrap_or("TYPE_INVALID").to_string();
            let dims = match t.get("dims") {
                None => Vec::new(),
                Some(d) => d
                    .as_array()
                    .ok_or_else(|| format!("{key} '{name}': dims is not a list"))?
                    .iter()
                    .map(|x| int_of(x).ok_or_else(|| format!("{key} '{name}': dims holds a non-integer {x}")))
                    .collect::<Result<_, _>>()?,
            };
            // `reshape` would change what the client sees from what the backend writes.
            if t.get("reshape").is_some_and(|r| !r.is_null()) {
                return Err(format!("{key} '{name}': reshape is not supported by the chip backend"));
            }
            Ok(TensorSpec { name: name.to_string(), data_type, dims })
        })
        .collect()
}

fn param<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config.get("parameters")?.get(key)?.get("string_value")?.as_str()
}

fn parse_bool(key: &str, s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        other => Err(format!("parameter {key}: '{other}' is not a boolean (true or false)")),
    }
}

fn check_spec(spec: &TensorSpec, data_type: &str, rank: usize) -> Result<(), String> {
    if spec.data_type != data_type {
        return Err(format!("{} '{}' must have data_type {data_type}, not {}", if spec.name.starts_with("IMAGE") || spec.name == CLASS { "input" } else { "output" }, spec.name, spec.data_type));
    }
    if spec.dims.len() != rank {
        return Err(format!("'{}' must have {rank} dims, not {:?}", spec.name, spec.dims));
    }
    Ok(())
}

impl BackendConfig {
    /// Reads the configuration JSON; `version_dir` is the model version folder that relative file
    /// names are resolved against.
    pub fn parse(json: &str, version_dir: &Path) -> Result<BackendConfig, String> {
        let config: Value = serde_json::from_str(json).map_err(|e| format!("model configuration is not valid JSON: {e}"))?;
        let model_name = config.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let max_batch_size = match config.get("max_batch_size") {
            None => 0,
            Some(v) => {
                let n = int_of(v).ok_or_else(|| format!("max_batch_size is not an integer: {v}"))?;
                usize::try_from(n).map_err(|_| format!("max_batch_size must not be negative: {n}"))?
            }
        };

        if let Some(params) = config.get("parameters").and_then(Value::as_object) {
            for key in params.keys() {
                if !KNOWN_PARAMS.contains(&key.as_str()) {
                    return Err(format!("unknown parameter '{key}' (known: {})", KNOWN_PARAMS.join(", ")));
                }
            }
        }
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p.trim());
            if p.is_absolute() { p.to_path_buf() } else { version_dir.join(p) }
        };
        let model_file = match param(&config, PARAM_MODEL_FILE) {
            Some(s) if !s.trim().is_empty() => resolve(s),
            _ => return Err(format!("parameter {PARAM_MODEL_FILE} is missing: name the ONNX file, relative to the model version folder")),
        };
        let fit_files = param(&config, PARAM_FIT_FILES)
            .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(resolve).collect())
            .unwrap_or_default();
        let refined = match param(&config, PARAM_REFINED) {
            Some(s) => parse_bool(PARAM_REFINED, s)?,
            None => false,
        };
        let threshold = match param(&config, PARAM_THRESHOLD) {
            Some(s) => {
                let t: f32 = s.trim().parse().map_err(|_| format!("parameter {PARAM_THRESHOLD}: '{s}' is not a number"))?;
                if !(t.is_finite() && t > 0.0 && t <= 1.0) {
                    return Err(format!("parameter {PARAM_THRESHOLD}: {t} is not in (0, 1] (a fraction of the map's maximum)"));
                }
                t
            }
            None => chip::math::localize::DEFAULT_THRESHOLD,
        };
        let threads = match param(&config, PARAM_THREADS) {
            Some(s) => s.trim().parse().map_err(|_| format!("parameter {PARAM_THREADS}: '{s}' is not a non-negative integer"))?,
            None => 0,
        };
        let ort_lib = param(&config, PARAM_ORT_LIB).filter(|s| !s.trim().is_empty()).map(resolve);
        let preprocess = match param(&config, PARAM_PREPROCESS).map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) if s.starts_with('{') => Some(PreprocessSpec::from_json(s)),
            Some(s) => Some(PreprocessSpec::from_file(&resolve(s))),
        }
        .transpose()
        .map_err(|e| format!("parameter {PARAM_PREPROCESS}: {e}"))?;

        let mut image = None;
        let mut image_bytes = None;
        let mut class = None;
        for spec in tensor_specs(&config, "input")? {
            match spec.name.as_str() {
                IMAGE => {
                    check_spec(&spec, "TYPE_FP32", 3)?;
                    if spec.dims[0] != 3 {
                        return Err(format!("input IMAGE must have dims [3, H, W], not {:?}", spec.dims));
                    }
                    image = Some(spec);
                }
                IMAGE_BYTES => {
                    check_spec(&spec, "TYPE_STRING", 1)?;
                    if spec.dims[0] != 1 {
                        return Err(format!("input IMAGE_BYTES must have dims [1], not {:?}", spec.dims));
                    }
                    image_bytes = Some(spec);
                }
                CLASS => {
                    check_spec(&spec, "TYPE_INT32", 1)?;
                    if spec.dims[0] != 1 {
                        return Err(format!("input CLASS must have dims [1], not {:?}", spec.dims));
                    }
                    class = Some(spec);
                }
                other => return Err(format!("unknown input '{other}' (the chip backend takes {IMAGE}, {IMAGE_BYTES} and {CLASS})")),
            }
        }
        if image.is_none() && image_bytes.is_none() {
            return Err(format!("the model configuration needs an input {IMAGE} (TYPE_FP32 [3,H,W]) or {IMAGE_BYTES} (TYPE_STRING [1])"));
        }
        let mut outputs = Vec::new();
        for spec in tensor_specs(&config, "output")? {
            let out = OutputName::parse(&spec.name).ok_or_else(|| {
                format!("unknown output '{}' (the chip backend gives {})", spec.name, OutputName::ALL.map(|o| o.as_str()).join(", "))
            })?;
            let rank = match out {
                OutputName::Probabilities | OutputName::Top1 | OutputName::Box => 1,
                OutputName::ChipMap => 3,
                OutputName::RefinedMap => 2,
            };
            check_spec(&spec, out.data_type(), rank)?;
            if out == OutputName::Top1 && spec.dims != [1] {
                return Err(format!("output TOP1 must have dims [1], not {:?}", spec.dims));
            }
            if out == OutputName::Box && spec.dims != [4] {
                return Err(format!("output BOX must have dims [4], not {:?}", spec.dims));
            }
            outputs.push((out, spec));
        }
        if outputs.is_empty() {
            return Err("the model configuration has no outputs".into());
        }
        Ok(BackendConfig {
            model_name,
            max_batch_size,
            model_file,
            fit_files,
            refined,
            threshold,
            threads,
            ort_lib,
            preprocess,
            image,
            image_bytes,
            class,
            outputs,
        })
    }

    pub fn output(&self, name: OutputName) -> Option<&TensorSpec> {
        self.outputs.iter().find(|(o, _)| *o == name).map(|(_, s)| s)
    }

    pub fn needs_maps(&self) -> bool {
        self.outputs.iter().any(|(o, _)| o.needs_maps())
    }

    /// Checks the declared dims against the loaded model: input size, classes, fitted layers.
    /// A dim of -1 is accepted anywhere.
    pub fn check_against(&self, input_hw: (usize, usize), classes: usize, layers: usize) -> Result<(), String> {
        let fits = |declared: &[i64], actual: &[usize]| {
            declared.len() == actual.len() && declared.iter().zip(actual).all(|(d, a)| *d == -1 || *d == *a as i64)
        };
        let (h, w) = input_hw;
        let mut wrong = Vec::new();
        if let Some(s) = &self.image {
            if !fits(&s.dims, &[3, h, w]) {
                wrong.push(format!("input IMAGE has dims {:?}, the model takes [3, {h}, {w}]", s.dims));
            }
        }
        for (out, s) in &self.outputs {
            let actual: Vec<usize> = match out {
                OutputName::Probabilities => vec![classes],
                OutputName::Top1 => vec![1],
                OutputName::ChipMap => vec![layers, h, w],
                OutputName::RefinedMap => vec![h, w],
                OutputName::Box => vec![4],
            };
            if !fits(&s.dims, &actual) {
                wrong.push(format!("output {} has dims {:?}, the model gives {actual:?}", out.as_str(), s.dims));
            }
        }
        if self.needs_maps() && layers == 0 {
            wrong.push(format!("outputs {CHIP_MAP}, {REFINED_MAP} and {BOX} need fitted layers: set parameter {PARAM_FIT_FILES}"));
        }
        if self.output(OutputName::RefinedMap).is_some() && layers < 2 {
            wrong.push(format!("output {REFINED_MAP} needs at least two fitted layers (first × last), {layers} given"));
        }
        if self.refined && layers < 2 && self.output(OutputName::Box).is_some() {
            wrong.push(format!("parameter {PARAM_REFINED} needs at least two fitted layers (first × last), {layers} given"));
        }
        if wrong.is_empty() { Ok(()) } else { Err(wrong.join("; ")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        serde_json::json!({
            "name": "m",
            "max_batch_size": 8,
            "parameters": {
                "model_file": {"string_value": "model.onnx"},
                "fit_files": {"string_value": "a.chip, b.chip"},
                "refined": {"string_value": "true"},
                "threshold": {"string_value": "0.3"},
                "threads": {"string_value": "2"}
            },
            "input": [
                {"name": "IMAGE", "data_type": "TYPE_FP32", "dims": ["3", "224", "224"], "optional": true},
                {"name": "IMAGE_BYTES", "data_type": "TYPE_STRING", "dims": [1], "optional": true},
                {"name": "CLASS", "data_type": "TYPE_INT32", "dims": [1], "optional": true}
            ],
            "output": [
                {"name": "PROBABILITIES", "data_type": "TYPE_FP32", "dims": [1000]},
                {"name": "TOP1", "data_type": "TYPE_INT32", "dims": [1]},
                {"name": "CHIP_MAP", "data_type": "TYPE_FP32", "dims": [2, 224, 224]},
                {"name": "REFINED_MAP", "data_type": "TYPE_FP32", "dims": [224, 224]},
                {"name": "BOX", "data_type": "TYPE_INT32", "dims": [4]}
            ]
        })
    }

    fn parse(v: &Value) -> Result<BackendConfig, String> {
        BackendConfig::parse(&v.to_string(), Path::new("/repo/m/1"))
    }

    #[test]
    fn reads_parameters_and_tensors() {
        let c = parse(&base()).unwrap();
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(c.model_file, Path::new("/repo/m/1/model.onnx"));
        assert_eq!(c.fit_files, vec![PathBuf::from("/repo/m/1/a.chip"), PathBuf::from("/repo/m/1/b.chip")]);
        assert!(c.refined);
        assert_eq!(c.threshold, 0.3);
        assert_eq!(c.threads, 2);
        assert_eq!(c.image.as_ref().unwrap().dims, vec![3, 224, 224]);
        assert_eq!(c.outputs.len(), 5);
        assert!(c.needs_maps());
        c.check_against((224, 224), 1000, 2).unwrap();
    }

    #[test]
    fn preprocess_as_json_or_a_file() {
        let mut v = base();
        v["parameters"]["preprocess"] = serde_json::json!({"string_value": r#" {"mean": [0, 0, 0], "std": 255, "resize": "crop"} "#});
        let spec = parse(&v).unwrap().preprocess.unwrap();
        assert_eq!(spec.resize, Some(chip::runtime::spec::ResizeMode::Crop));
        assert_eq!(spec.std, Some(chip::runtime::spec::PerChannel::One(255.0)));
        assert!(parse(&base()).unwrap().preprocess.is_none());
        v["parameters"]["preprocess"] = serde_json::json!({"string_value": "  "});
        assert!(parse(&v).unwrap().preprocess.is_none());

        // A file, relative to the model version folder.
        let dir = std::env::temp_dir().join(format!("triton-chip-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("spec.json"), r#"{"channel_order": "BGR"}"#).unwrap();
        v["parameters"]["preprocess"] = serde_json::json!({"string_value": "spec.json"});
        let c = BackendConfig::parse(&v.to_string(), &dir).unwrap();
        assert_eq!(c.preprocess.unwrap().channel_order, Some(chip::runtime::spec::ChannelOrder::BGR));
        std::fs::remove_dir_all(&dir).unwrap();

        for (text, needle) in [
            (r#"{"mean": 0.5, "colour": "RGB"}"#, "unknown key 'colour'"),
            (r#"{"interpolation": "cubic"}"#, "'interpolation'"),
            (r#"{"mean": "#, "invalid JSON"),
            ("no-such-spec.json", "no-such-spec.json"),
        ] {
            v["parameters"]["preprocess"] = serde_json::json!({"string_value": text});
            let e = parse(&v).unwrap_err();
            assert!(e.starts_with("parameter preprocess: ") && e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn defaults() {
        let mut v = base();
        v["parameters"] = serde_json::json!({"model_file": {"string_value": "/abs/m.onnx"}});
        v.as_object_mut().unwrap().remove("max_batch_size");
        let c = parse(&v).unwrap();
        assert_eq!(c.model_file, Path::new("/abs/m.onnx"));
        assert!(c.fit_files.is_empty());
        assert!(!c.refined);
        assert_eq!(c.threshold, chip::math::localize::DEFAULT_THRESHOLD);
        assert_eq!(c.threads, 0);
        assert_eq!(c.max_batch_size, 0);
        // Map outputs without fits cannot load.
        let e = c.check_against((224, 224), 1000, 0).unwrap_err();
        assert!(e.contains("fit_files"), "{e}");
    }

    #[test]
    fn rejects_bad_configs_with_named_reasons() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|v| { v["parameters"].as_object_mut().unwrap().remove("model_file"); }), "model_file is missing"),
            (Box::new(|v| v["parameters"]["threshold"] = serde_json::json!({"string_value": "2"})), "threshold"),
            (Box::new(|v| v["parameters"]["threshold"] = serde_json::json!({"string_value": "0"})), "is not in (0, 1]"),
            (Box::new(|v| v["parameters"]["threshold"] = serde_json::json!({"string_value": "x"})), "not a number"),
            (Box::new(|v| v["parameters"]["refined"] = serde_json::json!({"string_value": "maybe"})), "not a boolean"),
            (Box::new(|v| v["parameters"]["threads"] = serde_json::json!({"string_value": "-1"})), "threads"),
            (Box::new(|v| v["parameters"]["modelfile"] = serde_json::json!({"string_value": "x"})), "unknown parameter 'modelfile'"),
            (Box::new(|v| v["input"][0]["data_type"] = "TYPE_UINT8".into()), "must have data_type TYPE_FP32"),
            (Box::new(|v| v["input"][0]["dims"] = serde_json::json!([224, 224, 3])), "[3, H, W]"),
            (Box::new(|v| v["input"][1]["data_type"] = "TYPE_FP32".into()), "TYPE_STRING"),
            (Box::new(|v| v["input"][2]["name"] = "LABEL".into()), "unknown input 'LABEL'"),
            (Box::new(|v| v["output"][4]["dims"] = serde_json::json!([2, 2])), "'BOX' must have 1 dims"),
            (Box::new(|v| v["output"][1]["data_type"] = "TYPE_INT64".into()), "TYPE_INT32"),
            (Box::new(|v| v["output"][0]["name"] = "LOGITS".into()), "unknown output 'LOGITS'"),
            (Box::new(|v| v["input"] = serde_json::json!([{"name": "CLASS", "data_type": "TYPE_INT32", "dims": [1]}])), "needs an input IMAGE"),
            (Box::new(|v| v["output"] = serde_json::json!([])), "no outputs"),
            (Box::new(|v| v["output"][0]["reshape"] = serde_json::json!({"shape": [1000]})), "reshape"),
        ];
        for (change, want) in cases {
            let mut v = base();
            change(&mut v);
            let e = parse(&v).unwrap_err();
            assert!(e.contains(want), "expected '{want}' in: {e}");
        }
    }

    #[test]
    fn checks_dims_against_the_model() {
        let c = parse(&base()).unwrap();
        let e = c.check_against((240, 240), 1000, 2).unwrap_err();
        assert!(e.contains("input IMAGE has dims [3, 224, 224], the model takes [3, 240, 240]"), "{e}");
        let e = c.check_against((224, 224), 10, 2).unwrap_err();
        assert!(e.contains("PROBABILITIES"), "{e}");
        let e = c.check_against((224, 224), 1000, 3).unwrap_err();
        assert!(e.contains("CHIP_MAP has dims [2, 224, 224], the model gives [3, 224, 224]"), "{e}");
        let e = c.check_against((224, 224), 1000, 1).unwrap_err();
        assert!(e.contains("REFINED_MAP needs at least two"), "{e}");
        let mut v = base();
        v["output"][2]["dims"] = serde_json::json!([-1, -1, -1]);
        parse(&v).unwrap().check_against((224, 224), 1000, 3).unwrap();
    }
}
