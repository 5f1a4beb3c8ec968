//! Model on the real ONNX Runtime: the project's small test nets, and EfficientNet-Lite0 with real
//! photos (scripts/setup.sh provides data/ and third_party/).
#[macro_use]
mod common;
use chip::math::objective::softmax;
use chip::runtime::model::{Model, OutputKind};
use chip::runtime::preprocess::{Preprocess, Size};
use chip::runtime::RuntimeOptions;
use chip_testmodels as testmodels;
use chip::Error;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn opts() -> RuntimeOptions {
    RuntimeOptions { threads: 2, ..Default::default() }
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-model-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic pseudo-random images in roughly the preprocessed value range.
fn images(n: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n * 3 * h * w)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

fn plain() -> Model {
    Model::from_bytes(testmodels::plain_cnn(5, 7).to_bytes().unwrap(), &opts()).unwrap()
}

#[test]
fn test_net_layers_classes_and_output_kind() {
    require_ort!();
    let m = plain();
    assert_eq!(m.classes, 5);
    assert_eq!(m.output, "logits");
    assert_eq!(m.input.name, "input");
    assert_eq!(m.input_size(), Size::new(testmodels::SIZE as u32, testmodels::SIZE as u32));
    // Width first, as everywhere: a taller input changes `height` only.
    let mut tall = plain();
    tall.preprocess.height = 20;
    assert_eq!(tall.input_size(), Size { width: testmodels::SIZE as u32, height: 20 });
    assert_eq!(m.output_kind, OutputKind::Logits);
    let layers = m.layers().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv1", "relu1", "conv2", "relu2"]);
    for l in &layers {
        assert_eq!((l.channels, l.height, l.width), (8, testmodels::SIZE, testmodels::SIZE), "{l:?}");
    }
    assert_eq!(layers[1].op_type, "Relu");
    // Cached: the same list again.
    assert_eq!(m.layers().unwrap(), layers);
    let (first, last) = m.default_layers().unwrap();
    assert_eq!((first.name.as_str(), last.name.as_str()), ("relu1", "relu2"));

    match m.layer("nope") {
        Err(Error::UnknownLayer { name, candidates }) => {
            assert_eq!(name, "nope");
            assert_eq!(candidates, "conv1, relu1, conv2, relu2");
        }
        other => panic!("expected UnknownLayer, got {other:?}"),
    }
    // A tensor of the graph that is not a 4-D layer is unknown too.
    assert!(matches!(m.layer("logits"), Err(Error::UnknownLayer { .. })));

    // A net that ends in Softmax is detected as giving probabilities.
    let p = testmodels::planted_cnn(4, 6, 2, true, 3);
    let pm = Model::from_bytes(p.model.to_bytes().unwrap(), &opts()).unwrap();
    assert_eq!(pm.output_kind, OutputKind::Probabilities);
    assert_eq!(pm.output, "probs");
    let x = images(3, testmodels::SIZE, testmodels::SIZE, 1);
    let probs = pm.predict(&x, 3).unwrap();
    for row in probs.chunks(4) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // Without the Softmax: logits, and predict's softmax reproduces the Softmax net exactly.
    let q = testmodels::planted_cnn(4, 6, 2, false, 3);
    let qm = Model::from_bytes(q.model.to_bytes().unwrap(), &opts()).unwrap();
    assert_eq!(qm.output_kind, OutputKind::Logits);
    let probs2 = qm.predict(&x, 3).unwrap();
    for (a, b) in probs.iter().zip(&probs2) {
        assert!((a - b).abs() < 1e-5, "{probs:?} vs {probs2:?}");
    }
}

#[test]
fn predict_augmented_and_split_agree() {
    require_ort!();
    let m = Model::from_bytes(testmodels::residual_cnn(6, 11).to_bytes().unwrap(), &opts()).unwrap();
    let s = testmodels::SIZE;
    let n = 3;
    let x = images(n, s, s, 5);
    let probs = m.predict(&x, n).unwrap();
    assert_eq!(probs.len(), n * 6);
    for row in probs.chunks(6) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
    // Batch of n equals n batches of 1.
    for i in 0..n {
        let one = m.predict(&x[i * 3 * s * s..(i + 1) * 3 * s * s], 1).unwrap();
        for (a, b) in one.iter().zip(&probs[i * 6..(i + 1) * 6]) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    let (aug_probs, acts) = m.run_augmented(&x, n, &["inner", "stem"]).unwrap();
    assert_eq!(acts.len(), 2);
    assert_eq!(acts[0].len(), n * 8 * s * s);
    for (a, b) in aug_probs.iter().zip(&probs) {
        assert!((a - b).abs() < 1e-5);
    }
    // Relu outputs are non-negative and not all zero.
    assert!(acts[0].iter().all(|&v| v >= 0.0) && acts[0].iter().any(|&v| v > 0.0));

    // Split at the cut inside the skip: "stem" crosses too. Prefix gives the layer, suffix the logits.
    let split = m.split("inner").unwrap();
    assert_eq!(split.crossing[0], "inner");
    assert!(split.crossing.iter().any(|c| c == "stem"), "{:?}", split.crossing);
    assert_eq!(split.layer, m.layer("inner").unwrap());
    let pre = split.prefix.run(&[("input", &[n, 3, s, s], &x)]).unwrap();
    let names = split.prefix.output_names();
    let inner = names.iter().position(|o| o == "inner").unwrap();
    let stem = names.iter().position(|o| o == "stem").unwrap();
    assert_eq!(pre[inner].1, acts[0]);
    assert_eq!(pre[stem].1, acts[1]);
    let feed: Vec<(&str, &[usize], &[f32])> =
        names.iter().zip(&pre).map(|(nm, (sh, d))| (nm.as_str(), sh.as_slice(), d.as_slice())).collect();
    let mut raw = split.suffix.run(&feed).unwrap().swap_remove(0).1;
    m.to_probabilities(&mut raw);
    for (a, b) in raw.iter().zip(&probs) {
        assert!((a - b).abs() < 1e-5, "split {a} vs whole {b}");
    }
    // Cached: the same split object.
    assert!(std::sync::Arc::ptr_eq(&split, &m.split("inner").unwrap()));

    assert!(matches!(m.split("nope"), Err(Error::UnknownLayer { .. })));
    assert!(matches!(m.run_augmented(&x, n, &["nope"]), Err(Error::UnknownLayer { .. })));
    assert!(matches!(m.run_augmented(&x, n, &["stem", "stem"]), Err(Error::InvalidArgument(_))));
    match m.predict(&x[1..], n) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("3 images of 3x16x16"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let mut nan = x.clone();
    nan[17] = f32::NAN;
    assert!(matches!(m.predict(&nan, n), Err(Error::NonFinite(_))));
}

#[test]
fn softmax_is_stable_and_matches_hand_values() {
    require_ort!();
    let m = plain();
    // Huge logits would overflow a naive exp; shifted by the maximum they are e^-2, e^-1, 1.
    let mut raw = vec![1000.0, 1001.0, 1002.0, -1e30, -1e30, 1002.0, 1002.0, 0.0, 0.0, -5.0];
    m.to_probabilities(&mut raw);
    let z = 1.0 + (-1f64).exp() + (-2f64).exp();
    let want = [(-2f64).exp() / z, (-1f64).exp() / z, 1.0 / z, 0.0, 0.0];
    for i in 0..5 {
        assert!((raw[i] as f64 - want[i]).abs() < 1e-6, "{raw:?}");
    }
    // Second row: two equal maxima share almost all the mass.
    let z2 = 2.0 + 2.0 * (-1002f64).exp() + (-1007f64).exp();
    assert!((raw[5] as f64 - 1.0 / z2).abs() < 1e-6 && raw[5] == raw[6], "{raw:?}");
    for row in raw.chunks(5) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
    let mut row = [3.0f32, 3.0];
    softmax(&mut row);
    assert_eq!(row, [0.5, 0.5]);
}

#[test]
fn missing_and_corrupt_model_files() {
    require_ort!();
    let dir = scratch("files");
    let missing = dir.join("absent.onnx");
    match Model::load(&missing, &opts()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    let corrupt = dir.join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x07 this is not an onnx model at all \xff\xfe").unwrap();
    match Model::load(&corrupt, &opts()) {
        Err(Error::Model(msg)) => assert!(msg.contains("corrupt.onnx"), "{msg}"),
        other => panic!("expected Error::Model, got {other:?}"),
    }
    let truncated = dir.join("truncated.onnx");
    let bytes = testmodels::plain_cnn(3, 1).to_bytes().unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(Model::load(&truncated, &opts()).is_err());
    assert!(Model::from_bytes(Vec::new(), &opts()).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sidecar_sets_preprocessing_labels_and_output_kind() {
    require_ort!();
    let dir = scratch("sidecar");
    let model = dir.join("net.onnx");
    let bytes = testmodels::plain_cnn(3, 2).to_bytes().unwrap();
    std::fs::write(&model, &bytes).unwrap();

    // No sidecar: ImageNet defaults, the model's own input size, detection of logits — and the
    // assumptions are listed, key by key.
    let m = Model::load(&model, &opts()).unwrap();
    let d = Preprocess::default();
    assert_eq!((m.preprocess.mean, m.preprocess.std, m.preprocess.scale), (d.mean, d.std, d.scale));
    assert_eq!(m.preprocess.resize, chip::runtime::spec::ResizeMode::Stretch);
    assert_eq!(m.input_size(), Size::new(16, 16));
    assert_eq!(m.labels, None);
    assert_eq!(m.output_kind, OutputKind::Logits);
    let assumed = m.spec.assumed().join(" ");
    for key in ["resize", "interpolation", "channel_order", "scale", "mean", "std", "activation", "output"] {
        assert!(assumed.contains(key), "{key} missing from the assumed keys: {assumed}");
    }
    assert!(!assumed.contains("input_size") && !assumed.contains("layout"), "{assumed}");
    let sources = &m.spec.sources;
    assert_eq!(sources["input_size"], chip::runtime::spec::Source::Graph);
    assert_eq!(sources["layout"], chip::runtime::spec::Source::Graph);
    // The fingerprint is the SHA-256 of the file, as sha256sum computes it.
    if let Ok(out) = std::process::Command::new("sha256sum").arg(&model).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(m.fingerprint, text.split_whitespace().next().unwrap());
    }
    assert_eq!(m.fingerprint.len(), 64);

    std::fs::write(dir.join("names.txt"), "alpha\nbeta\r\ngamma\n").unwrap();
    std::fs::write(
        dir.join("net.json"),
        r#"{"input_size": [16, 16], "scale": 1, "mean": [1, 2, 3], "std": [4, 5, 6],
            "labels": "names.txt", "output": "probabilities", "resize": "stretch"}"#,
    )
    .unwrap();
    let m = Model::load(&model, &opts()).unwrap();
    assert_eq!(m.preprocess.mean, [1.0, 2.0, 3.0]);
    assert_eq!(m.preprocess.std, [4.0, 5.0, 6.0]);
    assert_eq!(m.preprocess.scale, 1.0);
    assert_eq!(m.spec.sources["mean"], chip::runtime::spec::Source::Sidecar);
    assert_eq!(m.labels.as_deref(), Some(&["alpha".to_string(), "beta".into(), "gamma".into()][..]));
    assert_eq!(m.label(1), Some("beta"));
    // The sidecar says probabilities: predict leaves the outputs as they are.
    assert_eq!(m.output_kind, OutputKind::Probabilities);
    let x = images(1, 16, 16, 9);
    let mut raw = m.predict(&x, 1).unwrap();
    let plain = Model::from_bytes(bytes.clone(), &opts()).unwrap();
    let probs = plain.predict(&x, 1).unwrap();
    softmax(&mut raw);
    for (a, b) in raw.iter().zip(&probs) {
        assert!((a - b).abs() < 1e-5);
    }
    // A spec given to the load overrides the sidecar key by key.
    let given = chip::runtime::spec::PreprocessSpec::from_json(r#"{"mean": 0, "labels": ["x", "y", "z"]}"#).unwrap();
    let m = Model::load_with(&model, &opts(), Some(&given)).unwrap();
    assert_eq!((m.preprocess.mean, m.preprocess.std), ([0.0; 3], [4.0, 5.0, 6.0]));
    assert_eq!(m.spec.sources["mean"], chip::runtime::spec::Source::Given);
    assert_eq!(m.label(2), Some("z"));

    let expect_err = |json: &str, needle: &str| {
        std::fs::write(dir.join("net.json"), json).unwrap();
        match Model::load(&model, &opts()) {
            Err(e) => assert!(e.to_string().contains(needle), "{e} (wanted {needle})"),
            other => panic!("{json}: expected an error, got {other:?}"),
        }
    };
    expect_err(r#"{"input_size": [20, 20]}"#, "differs from input 'input''s height 16");
    std::fs::write(dir.join("two.txt"), "a\nb\n").unwrap();
    expect_err(r#"{"labels": "two.txt"}"#, "the labels name 2 classes");
    expect_err(r#"{"labels": {"a": 0, "b": 0, "c": 2}}"#, "both map to class 0");
    expect_err(r#"{"mean": [1, 2]}"#, "'mean'");
    expect_err(r#"{"output": "yes"}"#, "'output'");
    // Keys of the old sidecar format, and any unknown key, are refused with the known keys.
    expect_err(r#"{"logits": true}"#, "unknown key 'logits' (known keys: version, input_size");
    expect_err(r#"{"something_new": {"ignored": true}}"#, "unknown key 'something_new'");
    expect_err("{not json", "net.json");
    expect_err(r#"{"output_name": "other"}"#, "'other'");
    expect_err(r#"{"layout": "NHWC"}"#, "says layout NHWC but input 'input' is NCHW");
    std::fs::write(dir.join("net.json"), r#"{"std": [0, 1, 1]}"#).unwrap();
    assert!(matches!(Model::load(&model, &opts()), Err(Error::InvalidArgument(_))));
    std::fs::write(dir.join("net.json"), r#"{"labels": "absent.txt"}"#).unwrap();
    assert!(matches!(Model::load(&model, &opts()), Err(Error::Io { path, .. }) if path.ends_with("absent.txt")));
    std::fs::write(dir.join("bad.txt"), b"ok\n\xff\xfe\n").unwrap();
    expect_err(r#"{"labels": "bad.txt"}"#, "UTF-8");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn model_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Model>();
}

// ---- EfficientNet-Lite0 ----

fn lite0() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let path = project().join("data/models/efficientnet_lite0.onnx");
        Model::load(&path, &opts()).unwrap_or_else(|e| panic!("{e} (run scripts/setup.sh)"))
    })
}

fn photo(rel: &str) -> Vec<f32> {
    lite0().preprocess.load(&project().join("data/images").join(rel)).unwrap().data
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |b, (i, &v)| if v > row[b] { i } else { b })
}

#[test]
fn lite0_layers_run_from_stem_to_head() {
    require_setup!();
    let m = lite0();
    let layers = m.layers().unwrap();
    let first = &layers[0];
    let last = layers.last().unwrap();
    eprintln!("Lite0: {} layers, first {first:?}, last {last:?}", layers.len());
    assert_eq!((first.channels, first.height, first.width), (32, 112, 112), "{first:?}");
    assert_eq!((last.channels, last.height, last.width), (1280, 7, 7), "{last:?}");
    assert!(layers.iter().all(|l| l.height * l.width > 1));
    // Spatial size never grows along the graph.
    assert!(layers.windows(2).all(|w| w[1].height <= w[0].height), "spatial sizes must shrink");
    let (stem, head) = m.default_layers().unwrap();
    eprintln!("Lite0 default layers: {stem:?} / {head:?}");
    // The stem's ReLU6, right after the stem convolution.
    assert_eq!((stem.channels, stem.height, stem.op_type.as_str()), (32, 112, "Clip"));
    assert_eq!(stem, layers[1]);
    assert_eq!(head.op_type, "Clip");
    assert_eq!(head, *last);
    // The augmented run gives exactly the probed shapes.
    let x = photo("skimage/coffee.png");
    let (_, acts) = m.run_augmented(&x, 1, &[&stem.name, &head.name]).unwrap();
    assert_eq!(acts[0].len(), 32 * 112 * 112);
    assert_eq!(acts[1].len(), 1280 * 49);
    // ReLU6 activations stay in [0, 6].
    assert!(acts[1].iter().all(|&v| (0.0..=6.0).contains(&v)));
}

#[test]
fn lite0_recognises_the_reference_photos() {
    require_setup!();
    let m = lite0();
    assert_eq!(m.classes, 1000);
    assert_eq!(m.input_size(), Size { width: 224, height: 224 });
    assert_eq!(m.output_kind, OutputKind::Logits);
    assert!(m.label(967).unwrap().contains("espresso"), "{:?}", m.label(967));
    let mut batch = photo("skimage/coffee.png");
    batch.extend(photo("skimage/chelsea.png"));
    let probs = m.predict(&batch, 2).unwrap();
    for row in probs.chunks(1000) {
        assert!((row.iter().map(|&p| p as f64).sum::<f64>() - 1.0).abs() < 1e-4);
        assert!(row.iter().all(|&p| p >= 0.0));
    }
    assert_eq!(argmax(&probs[..1000]), 967, "coffee → espresso");
    let cat = argmax(&probs[1000..]);
    assert!((281..=285).contains(&cat), "chelsea → a cat class, got {cat} {:?}", m.label(cat));
}

#[test]
fn lite0_agrees_with_the_python_reference_index() {
    require_setup!();
    // data/index.json was computed by ONNX Runtime in Python with PIL's bilinear resize.
    let m = lite0();
    let text = std::fs::read_to_string(project().join("data/index.json")).unwrap();
    let index: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let confident: Vec<&serde_json::Value> =
        index.iter().filter(|e| e["top1_prob"].as_f64().unwrap() > 0.6).take(12).collect();
    assert!(confident.len() >= 6, "too few confident photos in index.json");
    let mut batch = Vec::new();
    for e in &confident {
        batch.extend(photo(e["file"].as_str().unwrap()));
    }
    let probs = m.predict(&batch, confident.len()).unwrap();
    for (e, row) in confident.iter().zip(probs.chunks(1000)) {
        let top = argmax(row);
        let want = e["top1"].as_u64().unwrap() as usize;
        assert_eq!(top, want, "{}", e["file"]);
        let p_ref = e["top1_prob"].as_f64().unwrap();
        // Resampling differs slightly between PIL and the image crate.
        assert!((row[top] as f64 - p_ref).abs() < 0.15, "{}: {} vs {p_ref}", e["file"], row[top]);
    }
}

/// A model whose output is not [batch, classes] (a per-pixel map, or a pooled [N, C, 1, 1]) is
/// refused at load with its shape, instead of being read as a classifier of C·H·W classes.
#[test]
fn outputs_that_are_not_batch_by_classes_are_refused() {
    require_ort!();
    for (pooled, shape, hint) in [(false, "[1, 2, 16, 16]", false), (true, "[1, 2, 1, 1]", true)] {
        let bytes = testmodels::segmenter(2, pooled, 3).to_bytes().unwrap();
        match Model::from_bytes(bytes, &opts()) {
            Err(Error::Model(msg)) => {
                assert!(msg.contains("'mask'") && msg.contains(shape) && msg.contains("[batch, classes]"), "{msg}");
                assert_eq!(msg.contains("Flatten"), hint, "{msg}");
            }
            other => panic!("expected Error::Model, got {other:?}"),
        }
    }
}

#[test]
fn absurd_thread_counts_are_refused() {
    require_ort!();
    let bytes = testmodels::plain_cnn(3, 1).to_bytes().unwrap();
    let options = RuntimeOptions { threads: 1 << 40, ..opts() };
    match Model::from_bytes(bytes.clone(), &options) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("1099511627776 intra-op threads") && msg.contains("1024"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    Model::from_bytes(bytes, &RuntimeOptions { threads: 2, ..opts() }).unwrap();
}
