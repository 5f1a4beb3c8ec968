//! The input and head conventions of real exporters (chip_testmodels::Convention), each checked
//! against the plain model with the same weights (the library's adapter must not change a number),
//! ONNX Runtime on the original graph, and — with the data of scripts/setup.sh — an independent
//! PIL/numpy reference of the preprocessing (tests/conventions/reference.py).
#[macro_use]
mod common;
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer};
use chip::engine::fit::{fit_layer, no_progress, FitOptions, Images};
use chip::runtime::model::{Activation, Model, OutputKind};
use chip::runtime::spec::{PreprocessSpec, Source};
use chip::runtime::{Runner, RuntimeOptions};
use chip_testmodels::{convention, plain_cnn, Convention, SIZE};
use std::path::{Path, PathBuf};

fn opts() -> RuntimeOptions {
    RuntimeOptions { threads: 1, ..Default::default() }
}

fn spec(json: &str) -> PreprocessSpec {
    PreprocessSpec::from_json(json).unwrap()
}

fn load(c: Convention, json: Option<&str>) -> chip::Result<Model> {
    let bytes = convention(c, 4, 7).to_bytes().unwrap();
    Model::from_bytes_with(bytes, &opts(), json.map(spec).as_ref())
}

fn plain() -> Model {
    Model::from_bytes(plain_cnn(4, 7).to_bytes().unwrap(), &opts()).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-conventions-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Synthetic photos of several sizes and aspect ratios, written as PNG (lossless, so every
/// pipeline sees the same pixels).
fn photos(dir: &Path, n: usize) -> Vec<PathBuf> {
    let sizes = [(37u32, 23u32), (64, 64), (20, 50), (101, 77), (16, 16), (300, 200)];
    (0..n)
        .map(|i| {
            let (w, h) = sizes[i % sizes.len()];
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let v = |k: u32| ((x * (3 + k + i as u32) + y * (5 + 2 * k) + 31 * k * i as u32) % 256) as u8;
                image::Rgb([v(0), v(1), v(2)])
            });
            let p = dir.join(format!("photo{i}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

fn batch(m: &Model, files: &[PathBuf]) -> Vec<f32> {
    files.iter().flat_map(|p| m.preprocess.load(p).unwrap().data).collect()
}

/// NCHW images of SIZE×SIZE as NHWC, what an NHWC graph is fed.
fn to_nhwc(x: &[f32]) -> Vec<f32> {
    let plane = SIZE * SIZE;
    let mut hwc = vec![0f32; x.len()];
    for (img, out) in x.chunks_exact(3 * plane).zip(hwc.chunks_exact_mut(3 * plane)) {
        for c in 0..3 {
            for j in 0..plane {
                out[j * 3 + c] = img[c * plane + j];
            }
        }
    }
    hwc
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn nhwc_input_gets_an_adapter_and_changes_no_number() {
    require_ort!();
    let dir = scratch("nhwc");
    let files = photos(&dir, 4);
    let nhwc = load(Convention::NhwcTranspose, None).unwrap();
    assert_eq!(nhwc.spec.layout, chip::onnx::Layout::NHWC);
    assert_eq!(nhwc.spec.sources["layout"], Source::Graph);
    assert_eq!(nhwc.input.name, chip::runtime::model::ADAPTED_INPUT);
    assert!(nhwc.source.is_some());
    let p = plain();
    let x = batch(&p, &files);
    assert_eq!(x, batch(&nhwc, &files));
    let (a, b) = (nhwc.predict(&x, 4).unwrap(), p.predict(&x, 4).unwrap());
    assert!(max_diff(&a, &b) < 1e-6, "{a:?} vs {b:?}");
    // ONNX Runtime on the original graph, fed NHWC by hand.
    let original = Runner::new(convention(Convention::NhwcTranspose, 4, 7).to_bytes().unwrap(), &opts()).unwrap();
    let hwc = to_nhwc(&x);
    let mut raw = original.run(&[("input", &[4, SIZE, SIZE, 3], &hwc)]).unwrap().swap_remove(0).1;
    nhwc.to_probabilities(&mut raw);
    assert!(max_diff(&raw, &a) < 1e-6);
    // The layers are the body's, the adapter adds none.
    let names: Vec<String> = nhwc.layers().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["conv1", "relu1", "conv2", "relu2"]);
    // A spec that contradicts the graph is refused.
    let e = load(Convention::NhwcTranspose, Some(r#"{"layout": "NCHW"}"#)).unwrap_err().to_string();
    assert!(e.contains("says layout NCHW but input 'input' is NHWC"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn uint8_input_takes_pixels_as_they_are() {
    require_ort!();
    let dir = scratch("uint8");
    let files = photos(&dir, 3);
    let m = load(Convention::Uint8Cast, None).unwrap();
    assert_eq!(m.spec.input_type, chip::onnx::InputType::Uint8);
    assert_eq!((m.preprocess.scale, m.preprocess.mean, m.preprocess.std), (1.0, [0.0; 3], [1.0; 3]));
    assert_eq!(m.spec.sources["mean"], Source::Graph);
    let x = batch(&m, &files);
    assert!(x.iter().all(|v| v.fract() == 0.0 && (0.0..=255.0).contains(v)), "pixels, not normalised values");
    // The graph normalises with ImageNet's mean/std: the plain model on the library's ImageNet
    // normalisation of the same pixels gives the same probabilities.
    let p = plain();
    let (a, b) = (m.predict(&x, 3).unwrap(), p.predict(&batch(&p, &files), 3).unwrap());
    assert!(max_diff(&a, &b) < 1e-5, "{a:?} vs {b:?}");
    // A normalisation stated for a uint8 input is refused, naming the keys.
    let e = load(Convention::Uint8Cast, Some(r#"{"scale": 0.00392156862745098}"#)).unwrap_err().to_string();
    assert!(e.contains("uint8") && e.contains("scale, mean or std"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn two_outputs_need_output_name_and_say_where_to_give_it() {
    require_ort!();
    let e = load(Convention::TwoOutputs, None).unwrap_err().to_string();
    assert!(e.contains("output_name") && e.contains("--preprocess") && e.contains("logits, embedding"), "{e}");
    let m = load(Convention::TwoOutputs, Some(r#"{"output_name": "logits"}"#)).unwrap();
    assert_eq!((m.output.as_str(), m.classes), ("logits", 4));
    let e = load(Convention::TwoOutputs, Some(r#"{"output_name": "nope"}"#)).unwrap_err().to_string();
    assert!(e.contains("'nope' is not a model output"), "{e}");
}

#[test]
fn sigmoid_head_is_read_from_the_graph_and_fits() {
    require_ort!();
    let dir = scratch("sigmoid");
    let files = photos(&dir, 4);
    let m = load(Convention::SigmoidMultiLabel, None).unwrap();
    assert_eq!((m.output_kind, m.activation), (OutputKind::Probabilities, Activation::Sigmoid));
    assert_eq!(m.spec.sources["activation"], Source::Graph);
    let p = m.predict(&batch(&m, &files), 4).unwrap();
    // Independent per class: the rows do not sum to 1, every value is σ(logit) of the plain model.
    let plain = plain();
    let mut logits = plain.predict(&batch(&plain, &files), 4).unwrap();
    // The plain model's softmax probabilities back to logits up to a row shift is not σ; compare
    // with the logits themselves instead: run the plain graph's raw output.
    let runner = Runner::new(plain_cnn(4, 7).to_bytes().unwrap(), &opts()).unwrap();
    let x = batch(&plain, &files);
    let raw = runner.run(&[("input", &[4, 3, SIZE, SIZE], &x)]).unwrap().swap_remove(0).1;
    let sig: Vec<f32> = raw.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    assert!(max_diff(&p, &sig) < 1e-6);
    logits.clear();
    // The same model stated as logits + sigmoid (the Sigmoid cut off) gives the same probabilities.
    let stated = Model::from_bytes_with(plain_cnn(4, 7).to_bytes().unwrap(), &opts(), Some(&spec(r#"{"output": "logits", "activation": "sigmoid"}"#))).unwrap();
    assert!(max_diff(&stated.predict(&x, 4).unwrap(), &sig) < 1e-6);
    // A fit runs on sigmoid outputs (per-class loyalty and targets) and gives finite weights.
    let fit = fit_layer(&m, "relu2", &Images::Files(files.clone()), &FitOptions { gates: 8, ..Default::default() }, &no_progress).unwrap();
    assert!(fit.weights.iter().all(|w| w.is_finite()));
    assert!(fit.weights.iter().any(|&w| w != 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixed_batch_one_fits_and_explains_like_the_dynamic_model() {
    require_ort!();
    let dir = scratch("fixed");
    let files = photos(&dir, 3);
    let fixed = load(Convention::FixedBatch1, None).unwrap();
    assert_eq!(fixed.fixed_batch(), Some(1));
    let p = plain();
    let params = FitOptions { gates: 8, ..Default::default() };
    let a = fit_layer(&fixed, "relu2", &Images::Files(files.clone()), &params, &no_progress).unwrap();
    let b = fit_layer(&p, "relu2", &Images::Files(files.clone()), &params, &no_progress).unwrap();
    let scale = b.weights.iter().fold(0f32, |m, w| m.max(w.abs())).max(1e-6);
    assert!(max_diff(&a.weights, &b.weights) / scale < 1e-4, "fixed-batch fit differs from the dynamic one");
    let ex = Explainer::new(std::sync::Arc::new(fixed), vec![a]).unwrap();
    let out = ex.explain_files(&files, &ExplainOptions { classes: ClassSelect::TopK(2), ..Default::default() }).unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.iter().all(|e| e.classes.len() == 2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flatten_dense_head_fits_and_explains_and_cam_says_why_not() {
    require_ort!();
    let dir = scratch("flatten");
    let files = photos(&dir, 3);
    let m = std::sync::Arc::new(load(Convention::FlattenDense, None).unwrap());
    let fit = fit_layer(&m, "relu2", &Images::Files(files.clone()), &FitOptions { gates: 8, ..Default::default() }, &no_progress).unwrap();
    let ex = Explainer::new(m.clone(), vec![fit]).unwrap();
    let out = ex.explain_files(&files, &ExplainOptions::default()).unwrap();
    assert!(out.iter().all(|e| e.classes[0].maps[0].data.iter().all(|v| v.is_finite())));
    let e = chip::engine::cam::cam_fit(&m, "relu2").unwrap_err().to_string();
    assert!(!e.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fit_made_under_one_spec_is_refused_under_another() {
    require_ort!();
    let dir = scratch("refuse");
    let files = photos(&dir, 2);
    let a = Model::from_bytes_with(plain_cnn(4, 7).to_bytes().unwrap(), &opts(), Some(&spec(r#"{"channel_order": "BGR"}"#))).unwrap();
    let fit = fit_layer(&a, "relu2", &Images::Files(files), &FitOptions { gates: 4, ..Default::default() }, &no_progress).unwrap();
    assert_eq!(fit.meta.preprocess.as_ref().unwrap()["channel_order"], "BGR");
    let b = std::sync::Arc::new(plain());
    let e = Explainer::new(b.clone(), vec![fit.clone()]).err().expect("refused").to_string();
    assert!(e.contains("another preprocessing") && e.contains("channel_order: \"BGR\" vs \"RGB\""), "{e}");
    let e = chip::engine::export::export(&b, &[fit.clone()], &Default::default()).unwrap_err().to_string();
    assert!(e.contains("channel_order"), "{e}");
    // Saved and loaded, the record is kept; a file without it (version 1) is refused.
    let path = dir.join("bgr.chip");
    fit.save(&path).unwrap();
    let back = chip::LayerFit::load(&path).unwrap();
    assert_eq!(back.meta.preprocess, fit.meta.preprocess);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exported_nhwc_model_keeps_its_input_and_gives_the_explainers_maps() {
    require_ort!();
    let dir = scratch("export");
    let files = photos(&dir, 2);
    let m = std::sync::Arc::new(load(Convention::NhwcTranspose, None).unwrap());
    let fit = fit_layer(&m, "relu2", &Images::Files(files.clone()), &FitOptions { gates: 8, ..Default::default() }, &no_progress).unwrap();
    let exported = chip::engine::export::export(&m, &[fit.clone()], &Default::default()).unwrap();
    let input = exported.image_input().unwrap();
    assert_eq!((input.name.as_str(), input.layout), ("input", Some(chip::onnx::Layout::NHWC)));
    let runner = Runner::new(exported.to_bytes().unwrap(), &opts()).unwrap();
    let x = batch(&m, &files);
    let hwc = to_nhwc(&x);
    let shape = [2, SIZE, SIZE, 3];
    let outs = runner.run_views(&[("input", chip::runtime::TensorView::F32(&shape, &hwc))]).unwrap();
    let names = runner.output_names();
    let maps = match &outs[names.iter().position(|n| n == chip::engine::export::MAPS_OUTPUT).unwrap()] {
        chip::runtime::Tensor::F32(_, d) => d,
        _ => panic!("maps are not float"),
    };
    let ex = Explainer::new(m.clone(), vec![fit]).unwrap();
    let sizes = vec![m.input_size(); 2];
    let out = ex.explain(&x, &sizes, &ExplainOptions { original_size: false, ..Default::default() }).unwrap();
    let ours: Vec<f32> = out.iter().flat_map(|e| e.classes[0].maps[0].data.clone()).collect();
    assert!(max_diff(maps, &ours) < 1e-4, "exported maps differ from the explainer's");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The library's preprocessing and predictions against tests/conventions/reference.py (PIL and
/// numpy, written independently) running ONNX Runtime's Python API on the original graphs.
#[test]
fn predictions_match_an_independent_pil_numpy_reference() {
    require_setup!();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("third_party/venv/bin/python");
    let dir = scratch("reference");
    let files = photos(&dir, 6);
    // (name, convention, spec): each spec exercises another part of the pipeline.
    let cases: [(&str, Convention, &str); 6] = [
        ("caffe_bgr", Convention::TwoOutputs, r#"{"output_name": "logits", "channel_order": "BGR", "scale": 1, "mean": [104, 117, 123], "std": 1}"#),
        ("torchvision_crop_bicubic", Convention::FixedBatch1, r#"{"resize": "crop", "crop_ratio": 0.875, "interpolation": "bicubic", "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}"#),
        ("keras_nhwc_lanczos", Convention::NhwcTranspose, r#"{"interpolation": "lanczos", "scale": 0.00392156862745098, "mean": 0, "std": 1}"#),
        ("uint8_nearest", Convention::Uint8Cast, r#"{"interpolation": "nearest"}"#),
        ("stretch_crop_area", Convention::SigmoidMultiLabel, r#"{"resize": "stretch", "crop_ratio": 0.8, "interpolation": "area", "scale": 0.00392156862745098, "mean": 0.5, "std": 0.5}"#),
        ("flatten_bilinear", Convention::FlattenDense, r#"{"interpolation": "bilinear", "scale": 0.00392156862745098, "mean": 0.5, "std": 0.25}"#),
    ];
    let mut manifest = Vec::new();
    for (name, c, json) in &cases {
        let model = dir.join(format!("{name}.onnx"));
        std::fs::write(&model, convention(*c, 4, 7).to_bytes().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}.spec.json")), json).unwrap();
        manifest.push(serde_json::json!({"name": name, "model": model, "spec": serde_json::from_str::<serde_json::Value>(json).unwrap()}));
    }
    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::json!({"models": manifest, "photos": files}).to_string()).unwrap();
    let out_path = dir.join("reference.json");
    let status = std::process::Command::new(&python)
        .arg(root.join("tests/conventions/reference.py"))
        .arg(&manifest_path)
        .arg(&out_path)
        .status()
        .expect("run the reference script");
    assert!(status.success(), "reference.py failed");
    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    for (name, _, json) in &cases {
        let m = Model::load_with(&dir.join(format!("{name}.onnx")), &opts(), Some(&spec(json))).unwrap();
        let mut worst = 0f32;
        for (i, f) in files.iter().enumerate() {
            let ours = m.predict(&m.preprocess.load(f).unwrap().data, 1).unwrap();
            let theirs: Vec<f32> = reference[name][i].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let argmax = |r: &[f32]| r.iter().enumerate().fold(0, |b, (j, &v)| if v > r[b] { j } else { b });
            assert_eq!(argmax(&ours), argmax(&theirs), "{name}, photo {i}: top-1 differs ({ours:?} vs {theirs:?})");
            worst = worst.max(max_diff(&ours, &theirs));
        }
        eprintln!("{name}: max |Δp| = {worst:.2e}");
        // Resampling filters round to 8 bits in both; a pixel off by one moves a probability little.
        assert!(worst < 2e-2, "{name}: max |Δp| {worst}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
