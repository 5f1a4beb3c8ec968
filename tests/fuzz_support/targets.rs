//! The fuzz targets over real inputs: a fit file and statistics from a real fit of a small model on
//! real photos, small real photos in every supported format, the project's test models, and the C
//! entry points. Each checks that an input gives Ok or a clean Err: no panic, no abort, no hang.
use super::engine::{mutate_bytes, Rng, Target, INTERESTING};
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer};
use chip::engine::fit::{self, FitOptions, Images};
use chip::engine::fitfile::LayerFit;
use chip::runtime::model::Model;
use chip::onnx::OnnxModel;
use chip::runtime::preprocess::Preprocess;
use chip::math::stats::Stats;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub const NAMES: &[&str] = &["fitfile", "stats", "image", "onnx", "model", "spec", "capi"];

pub fn target(name: &str) -> Option<Box<dyn Target>> {
    Some(match name {
        "fitfile" => Box::new(FitFile),
        "stats" => Box::new(StatsFile),
        "image" => Box::new(ImageDecode),
        "onnx" => Box::new(OnnxSurgery),
        "model" => Box::new(ModelLoad),
        "spec" => Box::new(SpecParse),
        "capi" => Box::new(super::capi::CApi),
        _ => return None,
    })
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Real photos the fixture's fit is made on (scripts/setup.sh fetches them).
const PHOTOS: [&str; 4] = [
    "data/images/skimage/chelsea.png",
    "data/images/skimage/coffee.png",
    "data/images/mpl/grace_hopper.jpg",
    "data/images/skimage/astronaut.png",
];

/// A small real setup shared by the targets: a model with 4 classes and an 8-channel layer, fitted on
/// real photos; the fit's and the statistics' files; one preprocessed photo.
pub struct Fixture {
    pub model_bytes: Vec<u8>,
    pub model: Arc<Model>,
    pub layer: String,
    pub fit: LayerFit,
    pub fit_bytes: Vec<u8>,
    pub stats_bytes: Vec<u8>,
    pub photo: Vec<f32>,
    pub photo_paths: Vec<PathBuf>,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let planted = chip_testmodels::planted_cnn(4, 8, 2, false, 7);
        let model_bytes = planted.model.to_bytes().unwrap();
        let model = Arc::new(Model::from_bytes(model_bytes.clone(), &Default::default()).expect("load the test model"));
        let photo_paths: Vec<PathBuf> = PHOTOS.iter().map(|p| root().join(p)).collect();
        for p in &photo_paths {
            assert!(p.exists(), "{} missing: run scripts/setup.sh", p.display());
        }
        let params = FitOptions { gates: 32, gate_batch: 32, image_batch: 4, ..FitOptions::default() };
        let images = Images::Files(photo_paths.clone());
        let stats = fit::collect_stats(&model, &planted.layer, &images, &params, &fit::no_progress).unwrap();
        let fit = fit::solve(&model, &planted.layer, &stats, &params, &fit::no_progress).unwrap();
        let photo = model.preprocess.load(&photo_paths[0]).unwrap().data;
        Fixture {
            fit_bytes: fit.to_bytes().unwrap(),
            stats_bytes: stats.to_bytes(),
            model_bytes,
            model,
            layer: planted.layer,
            fit,
            photo,
            photo_paths,
        }
    })
}

fn err_outcome(e: chip::Error) -> String {
    // The variant and message: distinct kinds of refusal grow the corpus.
    let s = e.to_string();
    let cut: String = s.chars().take(80).collect();
    format!("err {cut}")
}

/// Replaces the trailing SHA-256 of everything before it (fit and statistics files end with one),
/// so that mutations reach the checks behind the checksum.
fn fix_checksum(data: &mut [u8]) {
    if data.len() >= 32 {
        let body = data.len() - 32;
        let digest = Sha256::digest(&data[..body]);
        data[body..].copy_from_slice(&digest);
    }
}

// ---------------------------------------------------------------------------------------------

/// `LayerFit::from_bytes`, then what a loaded fit is used for: round trip, inspection, and an
/// explanation when it still matches the model.
pub struct FitFile;

fn interesting_json(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(10) {
        0 => json!(*rng.pick(INTERESTING)),
        1 => json!(-(rng.below(1000) as i64) - 1),
        2 => json!(rng.below(20)),
        3 => json!(f64::MAX),
        4 => json!(1e-300),
        5 => json!(""),
        6 => serde_json::Value::Null,
        7 => json!([rng.below(10), *rng.pick(INTERESTING), 0]),
        8 => json!({"x": 1}),
        _ => json!("/conv"),
    }
}

impl Target for FitFile {
    fn name(&self) -> &'static str {
        "fitfile"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![fixture().fit_bytes.clone()]
    }
    fn max_len(&self) -> usize {
        1 << 16
    }
    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        let header_len = data.get(12..16).map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize);
        let json = header_len
            .filter(|&n| 16 + n <= data.len())
            .and_then(|n| serde_json::from_slice::<serde_json::Value>(&data[16..16 + n]).ok().map(|v| (n, v)));
        match (rng.below(3), json) {
            // Structure: one header field set to an interesting value, lengths and checksum kept valid.
            (0, Some((n, mut v))) => {
                if let Some(obj) = v.as_object_mut() {
                    let keys: Vec<String> = obj.keys().cloned().collect();
                    let key = rng.pick(&keys).clone();
                    if rng.chance(8) {
                        obj.remove(&key);
                    } else {
                        obj.insert(key, interesting_json(rng));
                    }
                }
                let header = serde_json::to_vec(&v).unwrap();
                let mut out = data[..12].to_vec();
                out.extend_from_slice(&(header.len() as u32).to_le_bytes());
                out.extend_from_slice(&header);
                out.extend_from_slice(&data[16 + n..]);
                *data = out;
                fix_checksum(data);
            }
            (1, _) => {
                mutate_bytes(rng, data, pool, self.max_len());
                fix_checksum(data);
            }
            _ => mutate_bytes(rng, data, pool, self.max_len()),
        }
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let fit = match LayerFit::from_bytes(data, Path::new("fuzz.chip")) {
            Ok(f) => f,
            Err(e) => return Ok(err_outcome(e)),
        };
        let again = LayerFit::from_bytes(&fit.to_bytes().map_err(|e| format!("a parsed fit does not serialize: {e}"))?, Path::new("x"))
            .map_err(|e| format!("a parsed fit does not read back: {e}"))?;
        if again != fit {
            return Err("a parsed fit changes in a round trip".into());
        }
        let m = &fit.meta;
        for &c in m.solved_classes.iter().take(4) {
            let _ = chip::math::inspect::class_summary(&fit.weights, m.channels, c, 10);
        }
        let _ = chip::math::inspect::sparsity(&fit.weights, m.channels, &m.solved_classes);
        let _ = chip::math::inspect::overlap(&fit.weights, m.channels, &m.solved_classes[..m.solved_classes.len().min(8)]);
        let f = fixture();
        match Explainer::new(f.model.clone(), vec![fit]) {
            Ok(e) => {
                let opts = ExplainOptions { classes: ClassSelect::TopK(2), refined: false, ..ExplainOptions::default() };
                e.explain(&f.photo, &[chip::runtime::preprocess::Size::new(40, 27)], &opts).map_err(|e| format!("a fit that matches the model fails to explain: {e}"))?;
                Ok("ok".into())
            }
            Err(e) => Ok(format!("parsed, {}", err_outcome(e))),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `Stats::from_bytes`, then merging and solving what was read.
pub struct StatsFile;

const STATS_HEADER: usize = 12 + 8 * 8;

/// The u64 word at byte `at`, when the data reaches that far.
fn word_at(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().unwrap()))
}

/// Where the identity (augment, mosaics, model fingerprint, layer name, preprocessing spec) after the
/// fixed header ends, and where each of its three strings' length words is (None when it does not fit).
fn stats_identity(data: &[u8]) -> Option<(usize, [usize; 3])> {
    let mut pos = STATS_HEADER + 16;
    // The model fingerprint, the layer name and the preprocessing spec (format 4).
    let mut lens = [0; 3];
    for l in &mut lens {
        *l = pos;
        let len = usize::try_from(word_at(data, pos)?).ok().filter(|&n| n <= data.len())?;
        pos = pos.checked_add(8 + len)?;
    }
    Some((pos, lens))
}

/// The length a statistics header implies, identity included (None when it overflows).
fn stats_len(data: &[u8]) -> Option<usize> {
    let u = |i: usize| u64::from_le_bytes(data[12 + 8 * i..20 + 8 * i].try_into().unwrap());
    let (k, c, n) = (u(0), u(1), u(5));
    let (header, _) = stats_identity(data)?;
    let cells = c.checked_mul(k)?.checked_add(n.checked_mul(k)?)?.checked_add(n.checked_mul(c)?)?.checked_add(k.checked_mul(k)?)?.checked_add(c)?;
    usize::try_from(cells.checked_mul(8)?.checked_add(header as u64 + 32)?).ok()
}

impl Target for StatsFile {
    fn name(&self) -> &'static str {
        "stats"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        vec![fixture().stats_bytes.clone()]
    }
    fn max_len(&self) -> usize {
        1 << 18
    }
    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        match rng.below(4) {
            3 if stats_identity(data).is_some() => {
                // The identity: a count set to an edge value, a name's length moved (the name
                // grows or shrinks with it), or a name byte changed (not UTF-8, a control character).
                let (end, lens) = stats_identity(data).unwrap();
                match rng.below(3) {
                    0 => {
                        let at = STATS_HEADER + 8 * rng.below(2);
                        let v = if rng.chance(2) { rng.below(300) as u64 } else { *rng.pick(INTERESTING) };
                        data[at..at + 8].copy_from_slice(&v.to_le_bytes());
                    }
                    1 => {
                        let at = *rng.pick(&lens);
                        let old = word_at(data, at).unwrap() as usize;
                        let new = if rng.chance(4) { *rng.pick(&[0usize, 1, 1 << 16, (1 << 16) + 1]) } else { rng.below(80) };
                        let name = at + 8;
                        let mut b = data[..name].to_vec();
                        b[at..at + 8].copy_from_slice(&(new as u64).to_le_bytes());
                        b.extend((0..new).map(|i| data.get(name + i).copied().filter(|_| i < old).unwrap_or(b'x')));
                        b.extend_from_slice(&data[(name + old).min(data.len())..]);
                        *data = b;
                    }
                    _ if end > lens[0] + 8 => {
                        let i = lens[0] + 8 + rng.below(end - lens[0] - 8);
                        if i < data.len() {
                            data[i] = *rng.pick(&[0x1b, 0xff, 0x00, b'/', 0xc3]);
                        }
                    }
                    _ => {}
                }
                if let Some(want) = stats_len(data).filter(|&n| n <= self.max_len() && n >= 32) {
                    let mut b = data[..data.len().saturating_sub(32)].to_vec();
                    b.resize(want - 32, 0);
                    b.extend_from_slice(&[0; 32]);
                    *data = b;
                }
                fix_checksum(data);
            }
            0 if data.len() >= STATS_HEADER + 32 => {
                // A header field or a value cell set to an edge value; the body resized to what the
                // header now says (when that is small), so the parser gets past its length check.
                if rng.chance(2) {
                    let field = rng.below(8);
                    let v: u64 = match field {
                        4 | 7 => rng.pick(&[f64::NAN, f64::INFINITY, -1.0, 0.0, 1e-300, 1e300, 0.5]).to_bits(),
                        _ if rng.chance(2) => rng.below(10) as u64,
                        _ => *rng.pick(INTERESTING),
                    };
                    data[12 + 8 * field..20 + 8 * field].copy_from_slice(&v.to_le_bytes());
                } else {
                    let cells = (data.len() - STATS_HEADER - 32) / 8;
                    if cells > 0 {
                        let i = STATS_HEADER + 8 * rng.below(cells);
                        let v = *rng.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1e300, 1e300, -0.0, f64::MIN_POSITIVE]);
                        data[i..i + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
                if let Some(want) = stats_len(data).filter(|&n| n <= self.max_len() && n >= 32) {
                    let body = data.len() - 32;
                    let mut b = data[..body].to_vec();
                    b.resize(want - 32, 0);
                    b.extend_from_slice(&[0; 32]);
                    *data = b;
                }
                fix_checksum(data);
            }
            1 => {
                mutate_bytes(rng, data, pool, self.max_len());
                fix_checksum(data);
            }
            _ => mutate_bytes(rng, data, pool, self.max_len()),
        }
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let stats = match Stats::from_bytes(data, Path::new("fuzz.stats")) {
            Ok(s) => s,
            Err(e) => return Ok(err_outcome(e)),
        };
        let again = Stats::from_bytes(&stats.to_bytes(), Path::new("x")).map_err(|e| format!("parsed statistics do not read back: {e}"))?;
        if again.to_bytes() != stats.to_bytes() {
            return Err("parsed statistics change in a round trip".into());
        }
        let mut merged = stats.clone();
        let merge = merged.merge(&stats);
        // Solving is cubic in the channels: only small headers are solved.
        if stats.channels <= 64 && stats.classes <= 64 {
            let params = chip::math::admm::AdmmParams { max_iter: 200, ..Default::default() };
            let objective = chip::math::objective::Objective { target: stats.target, ..chip::math::objective::Objective::DEFAULT };
            if let Err(e) = chip::math::admm::solve_all(&stats, None, &params, &objective, &|_| true) {
                return Ok(format!("parsed, solve {}", err_outcome(e)));
            }
        }
        Ok(if merge.is_ok() { "ok".into() } else { "parsed, merge refused".into() })
    }
}

// ---------------------------------------------------------------------------------------------

/// `Preprocess::decode` on small real photos in PNG (RGB, grey, palette), JPEG (baseline,
/// progressive), BMP, TIFF and WebP (lossless, lossy).
pub struct ImageDecode;

impl Target for ImageDecode {
    fn name(&self) -> &'static str {
        "image"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        let dir = root().join("tests/data/fuzz/seeds");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).expect("tests/data/fuzz/seeds").flatten().map(|e| e.path()).collect();
        files.sort();
        files.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
    fn max_len(&self) -> usize {
        1 << 16
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let pre = Preprocess { height: 16, width: 16, ..Preprocess::default() };
        match pre.decode(data) {
            Ok(p) => {
                if p.data.len() != 3 * 16 * 16 || p.data.iter().any(|v| !v.is_finite()) {
                    return Err(format!("decoded image has {} values or a non-finite one", p.data.len()));
                }
                if p.size.width == 0 || p.size.height == 0 || p.size.width > chip::runtime::preprocess::MAX_SIDE || p.size.height > chip::runtime::preprocess::MAX_SIDE {
                    return Err(format!("accepted an image of {}x{}", p.size.width, p.size.height));
                }
                Ok("ok".into())
            }
            Err(e) => Ok(err_outcome(e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// The project's test models: plain, residual (a skip crosses the cut), segmenters, planted.
fn model_seeds() -> Vec<Vec<u8>> {
    use chip_testmodels::*;
    [plain_cnn(3, 1), residual_cnn(5, 2), segmenter(2, false, 3), segmenter(3, true, 4), planted_cnn(4, 8, 2, true, 5).model]
        .iter()
        .map(|m| m.to_bytes().unwrap())
        .collect()
}

/// Graph-level edits of a parsed model: the kind of damage that parses but breaks surgery.
fn mutate_graph(rng: &mut Rng, data: &mut Vec<u8>) -> bool {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as Dim;
    let Ok(mut m) = OnnxModel::from_bytes(data) else { return false };
    let Some(g) = m.proto.graph.as_mut() else { return false };
    let mut names: Vec<String> = g.node.iter().flat_map(|n| n.output.iter().chain(&n.input).cloned()).collect();
    names.extend(g.input.iter().map(|i| i.name.clone()));
    names.extend(["".to_string(), "ghost".to_string()]);
    let edits = 1 + rng.below(3);
    for _ in 0..edits {
        let nodes = g.node.len();
        match rng.below(11) {
            0 if nodes > 0 => {
                let n = &mut g.node[rng.below(nodes)];
                if !n.input.is_empty() {
                    let i = rng.below(n.input.len());
                    n.input[i] = rng.pick(&names).clone();
                }
            }
            1 if nodes > 0 => {
                let n = &mut g.node[rng.below(nodes)];
                if !n.output.is_empty() {
                    let i = rng.below(n.output.len());
                    n.output[i] = rng.pick(&names).clone();
                }
            }
            2 if nodes > 1 => {
                g.node.remove(rng.below(nodes));
            }
            3 if nodes > 0 => {
                let n = g.node[rng.below(nodes)].clone();
                let at = rng.below(nodes + 1);
                g.node.insert(at, n);
            }
            4 if nodes > 1 => g.node.swap(rng.below(nodes), rng.below(nodes)),
            5 if nodes > 0 => {
                let n = &mut g.node[rng.below(nodes)];
                n.op_type = rng.pick(&["Conv", "Relu", "Add", "Gemm", "Flatten", "Concat", "Identity", "Loop", "", "Softmax", "MaxPool"]).to_string();
                if rng.chance(4) {
                    n.domain = rng.pick(&["", "ai.onnx", "com.microsoft", "x"]).to_string();
                }
            }
            6 if !g.output.is_empty() => {
                let i = rng.below(g.output.len());
                match rng.below(3) {
                    0 => g.output[i].name = rng.pick(&names).clone(),
                    1 => {
                        let o = g.output[i].clone();
                        g.output.push(o);
                    }
                    _ => {
                        g.output.remove(i);
                    }
                }
            }
            7 => {
                // A dimension or element type of an input or output made odd.
                let vis: Vec<_> = g.input.iter_mut().chain(g.output.iter_mut()).collect();
                if vis.is_empty() {
                    continue;
                }
                let len = vis.len();
                let vi = vis.into_iter().nth(rng.below(len)).unwrap();
                if let Some(onnx_protobuf::type_proto::Value::TensorType(t)) = vi.type_.as_mut().and_then(|t| t.value.as_mut()) {
                    if rng.chance(3) {
                        t.elem_type = *rng.pick(&[0, 1, 2, 7, 9, 10, 16, 99, -1]);
                    } else if let Some(shape) = t.shape.as_mut() {
                        if shape.dim.is_empty() || rng.chance(5) {
                            shape.dim.clear();
                        } else {
                            let i = rng.below(shape.dim.len());
                            shape.dim[i].value = Some(match rng.below(3) {
                                0 => Dim::DimValue(*rng.pick(&[0i64, -1, 1, 2, 3, 16, 1 << 40, i64::MAX, i64::MIN])),
                                1 => Dim::DimParam(rng.pick(&["N", "", "H"]).to_string()),
                                _ => return true,
                            });
                        }
                    }
                }
            }
            8 if !g.initializer.is_empty() => {
                let i = rng.below(g.initializer.len());
                if rng.chance(2) {
                    g.initializer.remove(i);
                } else {
                    g.initializer[i].dims.push(*rng.pick(&[0i64, -1, 2, 1 << 40]));
                }
            }
            9 if !g.input.is_empty() => {
                let i = rng.below(g.input.len());
                if rng.chance(2) {
                    g.input.remove(i);
                } else {
                    let d = g.input[i].clone();
                    g.input.push(d);
                }
            }
            _ => {
                if let Some(o) = m.proto.opset_import.first_mut() {
                    o.version = *rng.pick(&[0i64, 1, 7, 13, 99, -1]);
                }
                break;
            }
        }
    }
    match m.to_bytes() {
        Ok(b) => {
            *data = b;
            true
        }
        Err(_) => false,
    }
}

fn mutate_model(rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>], max_len: usize) {
    if rng.below(3) != 0 && mutate_graph(rng, data) {
        return;
    }
    mutate_bytes(rng, data, pool, max_len);
}

/// `OnnxModel::from_bytes` and the graph surgery on every candidate: split, augmented, serialising.
pub struct OnnxSurgery;

impl Target for OnnxSurgery {
    fn name(&self) -> &'static str {
        "onnx"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        model_seeds()
    }
    fn max_len(&self) -> usize {
        1 << 17
    }
    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        mutate_model(rng, data, pool, self.max_len());
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let m = match OnnxModel::from_bytes(data) {
            Ok(m) => m,
            Err(e) => return Ok(err_outcome(e)),
        };
        let input = m.image_input().map(|i| i.channels);
        let _ = m.output_names();
        let cands = m.candidates();
        let _ = m.require_candidates();
        let mut outcome = format!("ok parsed, input {:?} candidates {}", input.is_ok(), cands.len().min(3));
        for c in cands.iter().take(4) {
            match m.split(&c.tensor) {
                Ok(s) => {
                    for part in [&s.prefix, &s.suffix] {
                        let b = part.to_bytes().map_err(|e| format!("a split part does not serialize: {e}"))?;
                        OnnxModel::from_bytes(&b).map_err(|e| format!("a split part does not parse back: {e}"))?;
                    }
                    if s.crossing.first() != Some(&c.tensor) {
                        return Err(format!("split at {}: crossing[0] is {:?}", c.tensor, s.crossing.first()));
                    }
                    outcome.push_str(" split");
                }
                Err(e) => outcome.push_str(&format!(" split-{}", err_outcome(e))),
            }
        }
        let names: Vec<&str> = cands.iter().map(|c| c.tensor.as_str()).collect();
        match m.augmented(&names) {
            Ok(a) => {
                a.to_bytes().map_err(|e| format!("the augmented model does not serialize: {e}"))?;
                outcome.push_str(" augmented");
            }
            Err(e) => outcome.push_str(&format!(" aug-{}", err_outcome(e))),
        }
        let _ = m.split("");
        let _ = m.split("ghost");
        let _ = m.augmented(&["ghost", ""]);
        Ok(outcome)
    }
}

/// `Model::from_bytes` (ONNX Runtime session, output checks), then the layer probe and a prediction.
pub struct ModelLoad;

impl Target for ModelLoad {
    fn name(&self) -> &'static str {
        "model"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        model_seeds()
    }
    fn max_len(&self) -> usize {
        1 << 17
    }
    fn mutate(&self, rng: &mut Rng, data: &mut Vec<u8>, pool: &[Vec<u8>]) {
        mutate_model(rng, data, pool, self.max_len());
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let opts = chip::runtime::RuntimeOptions { threads: 1, ..Default::default() };
        let model = match Model::from_bytes(data.to_vec(), &opts) {
            Ok(m) => m,
            Err(e) => return Ok(err_outcome(e)),
        };
        let (w, h) = model.input_size().as_usize();
        if h * w > 64 * 64 {
            return Ok("loaded, large input".into());
        }
        let input = vec![0.5f32; 3 * h * w];
        let p = match model.predict(&input, 1) {
            Ok(p) => p,
            Err(e) => return Ok(format!("loaded, predict {}", err_outcome(e))),
        };
        if p.len() != model.classes {
            return Err(format!("predict gave {} values for {} classes", p.len(), model.classes));
        }
        match model.layers() {
            Ok(l) => Ok(format!("ok layers {}", l.len().min(3))),
            Err(e) => Ok(format!("loaded, layers {}", err_outcome(e))),
        }
    }
}

// ---------------------------------------------------------------------------------------------

/// `PreprocessSpec::from_json`, then what an accepted spec is used for: a round trip through its
/// serialisation, a model loaded with it (every test-model convention in turn) and one image
/// through its pipeline. Properties: a parsed spec re-parses to itself; a model that loads
/// preprocesses to finite values of the input size.
pub struct SpecParse;

const SPEC_SEEDS: &[&str] = &[
    r#"{"input_size": [16, 16], "resize": "crop", "crop_ratio": 0.875, "interpolation": "lanczos", "antialias": false, "channel_order": "BGR", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "layout": "NCHW", "output": "logits", "activation": "softmax", "labels": ["a", "b", "c", "d"]}"#,
    r#"{"version": 1, "resize": "stretch", "crop_ratio": 0.5, "interpolation": "area", "scale": 1, "mean": 127, "std": 128, "output": "probabilities", "activation": "sigmoid", "labels": {"x": 0, "y": 1, "z": 2, "w": 3}}"#,
    r#"{"layout": "NHWC", "interpolation": "nearest", "output_name": "logits"}"#,
    r#"{}"#,
];

impl Target for SpecParse {
    fn name(&self) -> &'static str {
        "spec"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        SPEC_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect()
    }
    fn max_len(&self) -> usize {
        4096
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        use chip::runtime::spec::PreprocessSpec;
        let Ok(text) = std::str::from_utf8(data) else { return Ok("not UTF-8".into()) };
        let spec = match PreprocessSpec::from_json(text) {
            Ok(s) => s,
            Err(e) => return Ok(format!("refused: {}", e.to_string().split(':').take(2).collect::<Vec<_>>().join(":"))),
        };
        let again = serde_json::to_string(&spec).map_err(|e| format!("serialise: {e}"))?;
        let back = PreprocessSpec::from_json(&again).map_err(|e| format!("re-parse of {again}: {e}"))?;
        if back != spec {
            return Err(format!("round trip changed the spec: {again}"));
        }
        let conventions = chip_testmodels::Convention::ALL;
        let c = conventions[data.len() % conventions.len()];
        let bytes = chip_testmodels::convention(c, 4, 1).to_bytes().map_err(|e| e.to_string())?;
        let opts = chip::runtime::RuntimeOptions { threads: 1, ..Default::default() };
        let model = match Model::from_bytes_with(bytes, &opts, Some(&spec)) {
            Ok(m) => m,
            Err(e) => return Ok(format!("model refused: {}", e.to_string().split(':').take(2).collect::<Vec<_>>().join(":"))),
        };
        let img = image::RgbImage::from_fn(23, 17, |x, y| image::Rgb([(x * 11) as u8, (y * 13) as u8, ((x + y) * 7) as u8]));
        let p = model.preprocess.from_rgb8(&img).map_err(|e| format!("preprocess: {e}"))?;
        if p.data.len() != model.image_len() || p.data.iter().any(|v| !v.is_finite()) {
            return Err(format!("preprocessed {} values (want {}), finite: {}", p.data.len(), model.image_len(), p.data.iter().all(|v| v.is_finite())));
        }
        Ok(format!("ok: loaded {}", c.name()))
    }
}
