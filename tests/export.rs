//! `chip export` on EfficientNet-Lite0 with real fits and 16 real photos: the exported model's
//! original outputs equal the model's, its chip_maps and chip_refined equal the explainer's maps at
//! input size, for the top-1 and for classes given through chip_target_class; refusals; the CLI;
//! the file in ONNX Runtime's Python package. Needs scripts/setup.sh to have run.
#[macro_use]
mod common;
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation};
use chip::engine::export::{self, ExportOptions, CLASS_OUTPUT, MAPS_OUTPUT, METADATA_KEY, REFINED_OUTPUT, TARGET_INPUT};
use chip::engine::fit::{FitOptions, Images};
use chip::engine::fitfile::LayerFit;
use chip::runtime::model::Model;
use chip::runtime::preprocess::Size;
use chip::runtime::{Runner, RuntimeOptions, Tensor};
use chip::Error;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model_path() -> PathBuf {
    root().join("data/models/efficientnet_lite0.onnx")
}

fn runtime() -> RuntimeOptions {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..RuntimeOptions::default() }
}

/// The map tolerance, relative to the largest value of the two maps compared (the explainer sums
/// channels in f64, the graph in f32).
const TOL: f32 = 1e-5;

struct Fixture {
    model: Arc<Model>,
    /// Shallow layer first, conv head second.
    stem: LayerFit,
    head: LayerFit,
    photos: Vec<PathBuf>,
    batch: Vec<f32>,
    sizes: Vec<Size>,
    top1: Vec<usize>,
    /// Solved classes, in increasing order.
    solved: Vec<usize>,
}

/// Small fits, enough for maps that are not trivial: the conv head on the 16 photos × 32 gates and
/// the stem's activation on 4 photos × 16 gates, solving the photos' top-1 classes and a few others.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let model = Arc::new(Model::load(&model_path(), &runtime()).expect("model (run scripts/setup.sh)"));
        let (stem, head) = model.default_layers().unwrap();
        let photos: Vec<PathBuf> = chip::engine::fit::list_images(&root().join("data/images/aib")).expect("photos (run scripts/setup.sh)")
            .into_iter()
            .take(16)
            .collect();
        assert_eq!(photos.len(), 16, "16 photos in data/images/aib");
        let mut batch = Vec::new();
        let mut sizes = Vec::new();
        for p in &photos {
            let pr = model.preprocess.load(p).unwrap();
            batch.extend_from_slice(&pr.data);
            sizes.push(pr.size);
        }
        let probs = model.predict(&batch, photos.len()).unwrap();
        let top1: Vec<usize> = probs.chunks(model.classes).map(argmax).collect();
        let mut solved: BTreeSet<usize> = top1.iter().copied().collect();
        solved.extend([1, 281, 285, 967]);
        let solved: Vec<usize> = solved.into_iter().collect();
        let params = FitOptions { gates: 32, classes: Some(solved.clone()), ..FitOptions::default() };
        let t0 = std::time::Instant::now();
        let head = chip::engine::fit::fit_layer(&model, &head.name, &Images::Files(photos.clone()), &params, &chip::engine::fit::no_progress).unwrap();
        let stem_params = FitOptions { gates: 16, ..params };
        let stem = chip::engine::fit::fit_layer(&model, &stem.name, &Images::Files(photos[..4].to_vec()), &stem_params, &chip::engine::fit::no_progress).unwrap();
        eprintln!("fits of '{}' and '{}': {:.1}s", stem.meta.layer, head.meta.layer, t0.elapsed().as_secs_f64());
        Fixture { model, stem, head, photos, batch, sizes, top1, solved }
    })
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap()
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().chain(b).fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn exported(fits: &[LayerFit], class_input: bool) -> Runner {
    let f = fixture();
    let onnx = export::export(&f.model, fits, &ExportOptions { class_input }).unwrap();
    Runner::new(onnx.to_bytes().unwrap(), &runtime()).unwrap()
}

fn image_input(f: &Fixture) -> (&str, Tensor) {
    let (w, h) = f.model.input_size().as_usize();
    (f.model.input.name.as_str(), Tensor::F32(vec![f.photos.len(), 3, h, w], f.batch.clone()))
}

fn floats(t: &Tensor) -> (&[usize], &[f32]) {
    match t {
        Tensor::F32(s, d) => (s, d),
        other => panic!("expected a float tensor, got {other:?}"),
    }
}

fn ints(t: &Tensor) -> (&[usize], &[i64]) {
    match t {
        Tensor::I64(s, d) => (s, d),
        other => panic!("expected an int64 tensor, got {other:?}"),
    }
}

/// Checks image `i` of the exported outputs (maps [N, L, H, W], refined [N, H, W]) against one
/// image's explanation of one class. Returns how many of the explainer's maps are not all zero.
fn check_maps(i: usize, maps: &[f32], refined: Option<&[f32]>, e: &ImageExplanation, what: &str) -> usize {
    let f = fixture();
    let (w, h) = f.model.input_size().as_usize();
    let c = &e.classes[0];
    let per = h * w;
    let layers = c.maps.len();
    let mut nonzero = 0;
    for (l, m) in c.maps.iter().enumerate() {
        assert_eq!((m.width, m.height), (w, h));
        let got = &maps[(i * layers + l) * per..(i * layers + l + 1) * per];
        nonzero += m.data.iter().any(|&v| v > 0.0) as usize;
        let d = rel_diff(got, &m.data);
        MAX_DIFF.fetch_max(d.to_bits(), std::sync::atomic::Ordering::Relaxed);
        assert!(d <= TOL, "{what}: image {i} class {} layer {l}: chip_maps differs from the explainer by {d:e} (relative)", c.class);
    }
    if let Some(r) = refined {
        let want = &c.refined.as_ref().expect("explainer refined map").data;
        let d = rel_diff(&r[i * per..(i + 1) * per], want);
        assert!(d <= TOL, "{what}: image {i} class {}: chip_refined differs by {d:e} (relative)", c.class);
    }
    nonzero
}

/// The largest relative difference seen (f32 bits; non-negative floats order like their bits).
static MAX_DIFF: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Most maps compared must hold something, or equality would prove little.
fn enough(nonzero: usize, maps: usize, what: &str) {
    assert!(2 * nonzero >= maps, "{what}: only {nonzero} of {maps} explainer maps are not all zero");
    let d = f32::from_bits(MAX_DIFF.load(std::sync::atomic::Ordering::Relaxed));
    eprintln!("{what}: {nonzero} of {maps} maps not all zero; largest relative difference so far {d:e}");
}

#[test]
fn top1_maps_and_original_outputs_equal_the_model_and_the_explainer() {
    require_setup!();
    let f = fixture();
    let n = f.photos.len();
    // Deepest first: maps come in the order given, Refined CHIP is still stem × head.
    let fits = vec![f.head.clone(), f.stem.clone()];
    let runner = exported(&fits, true);
    let mut names = f.model.onnx.output_names();
    names.extend([CLASS_OUTPUT, MAPS_OUTPUT, REFINED_OUTPUT].map(String::from));
    assert_eq!(runner.output_names(), &names[..]);
    assert_eq!(runner.input_names(), &[f.model.input.name.clone(), TARGET_INPUT.to_string()]);

    let original = Runner::new(std::fs::read(model_path()).unwrap(), &runtime()).unwrap();
    let plain = original.run_tensors(&[image_input(f)]).unwrap();
    let outs = runner.run_tensors(&[image_input(f), (TARGET_INPUT, Tensor::I64(vec![n], vec![-1; n]))]).unwrap();
    let (s0, d0) = floats(&plain[0]);
    let (s1, d1) = floats(&outs[0]);
    assert_eq!(s0, s1);
    assert!(d0.iter().zip(d1).all(|(a, b)| a.to_bits() == b.to_bits()), "the original output changed in the exported model");

    let (cs, classes) = ints(&outs[1]);
    assert_eq!(cs, [n]);
    assert_eq!(classes.iter().map(|&c| c as usize).collect::<Vec<_>>(), f.top1);
    let (w, h) = f.model.input_size().as_usize();
    let (ms, maps) = floats(&outs[2]);
    assert_eq!(ms, [n, 2, h, w]);
    let (rs, refined) = floats(&outs[3]);
    assert_eq!(rs, [n, h, w]);

    let ex = Explainer::new(f.model.clone(), fits).unwrap();
    let opts = ExplainOptions { classes: ClassSelect::TopK(1), refined: true, original_size: false, ..ExplainOptions::default() };
    let want = ex.explain(&f.batch, &f.sizes, &opts).unwrap();
    let mut nonzero = 0;
    for (i, e) in want.iter().enumerate() {
        assert_eq!(e.classes[0].class, f.top1[i]);
        nonzero += check_maps(i, maps, Some(refined), e, "top-1");
    }
    enough(nonzero, 2 * n, "top-1");
}

#[test]
fn target_classes_select_the_maps_and_unsolved_classes_give_zero() {
    require_setup!();
    let f = fixture();
    let n = f.photos.len();
    let fits = vec![f.stem.clone(), f.head.clone()];
    let runner = exported(&fits, true);
    // A solved class other than the top-1 for most photos, the top-1 (-1) for a few.
    let targets: Vec<i64> = (0..n)
        .map(|i| {
            let mut c = f.solved[(7 * i) % f.solved.len()];
            if c == f.top1[i] {
                c = f.solved[(7 * i + 1) % f.solved.len()];
            }
            if i % 5 == 4 { -1 } else { c as i64 }
        })
        .collect();
    let outs = runner.run_tensors(&[image_input(f), (TARGET_INPUT, Tensor::I64(vec![n], targets.clone()))]).unwrap();
    let (_, classes) = ints(&outs[1]);
    let (_, maps) = floats(&outs[2]);
    let (_, refined) = floats(&outs[3]);
    let ex = Explainer::new(f.model.clone(), fits).unwrap();
    let (w, h) = f.model.input_size().as_usize();
    let per = 3 * h * w;
    let mut nonzero = 0;
    for i in 0..n {
        let class = if targets[i] < 0 { f.top1[i] } else { targets[i] as usize };
        assert_eq!(classes[i] as usize, class, "image {i}");
        let opts = ExplainOptions { classes: ClassSelect::Ids(vec![class]), refined: true, original_size: false, ..ExplainOptions::default() };
        let e = ex.explain(&f.batch[i * per..(i + 1) * per], &f.sizes[i..i + 1], &opts).unwrap().remove(0);
        nonzero += check_maps(i, maps, Some(refined), &e, "target class");
    }
    enough(nonzero, 2 * n, "target class");

    // A class no fit solved gets all-zero maps (the explainer's Top-k does the same).
    let unsolved = (0..f.model.classes).find(|c| !f.solved.contains(c)).unwrap() as i64;
    let outs = runner.run_tensors(&[image_input(f), (TARGET_INPUT, Tensor::I64(vec![n], vec![unsolved; n]))]).unwrap();
    assert!(ints(&outs[1]).1.iter().all(|&c| c == unsolved));
    assert!(floats(&outs[2]).1.iter().chain(floats(&outs[3]).1).all(|&v| v == 0.0));
}

#[test]
fn one_fit_without_class_input_gives_class_and_maps_only() {
    require_setup!();
    let f = fixture();
    let runner = exported(std::slice::from_ref(&f.head), false);
    assert_eq!(runner.input_names(), &[f.model.input.name.clone()]);
    let mut names = f.model.onnx.output_names();
    names.extend([CLASS_OUTPUT, MAPS_OUTPUT].map(String::from));
    assert_eq!(runner.output_names(), &names[..]);
    let outs = runner.run_tensors(&[image_input(f)]).unwrap();
    assert_eq!(ints(&outs[1]).1.iter().map(|&c| c as usize).collect::<Vec<_>>(), f.top1);
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    let opts = ExplainOptions { original_size: false, ..ExplainOptions::default() };
    let mut nonzero = 0;
    for (i, e) in ex.explain(&f.batch, &f.sizes, &opts).unwrap().iter().enumerate() {
        nonzero += check_maps(i, floats(&outs[2]).1, None, e, "one fit");
    }
    enough(nonzero, f.photos.len(), "one fit");
}

#[test]
fn metadata_names_the_fits_and_only_solved_rows_are_stored() {
    require_setup!();
    let f = fixture();
    let fits = [f.stem.clone(), f.head.clone()];
    let onnx = export::export(&f.model, &fits, &ExportOptions::default()).unwrap();
    let prop = onnx.proto.metadata_props.iter().find(|p| p.key == METADATA_KEY).expect("metadata property");
    let v: serde_json::Value = serde_json::from_str(&prop.value).unwrap();
    assert_eq!(v["model_fingerprint"], f.model.fingerprint.as_str());
    assert_eq!(v["refined"], serde_json::json!([0, 1]));
    for (j, fit) in fits.iter().enumerate() {
        assert_eq!(v["fits"][j]["layer"], fit.meta.layer.as_str());
        assert_eq!(v["fits"][j]["model_fingerprint"], fit.meta.model_fingerprint.as_str());
        assert_eq!(v["fits"][j]["lambda_rel"], fit.meta.admm.lambda_rel);
        assert_eq!(v["fits"][j]["solved_classes"], f.solved.len());
    }
    // The added weights: the solved rows and one zero row per fit, and a class index.
    let original = std::fs::metadata(model_path()).unwrap().len() as usize;
    let size = onnx.to_bytes().unwrap().len();
    let weights: usize = fits.iter().map(|x| (f.solved.len() + 1) * x.meta.channels * 4 + x.meta.classes * 8).sum();
    assert!(size > original + weights && size < original + weights + 16 * 1024, "{size} bytes; model {original}, weights {weights}");
    let opset = onnx.proto.opset_import.iter().find(|o| o.domain.is_empty()).unwrap().version;
    assert!(opset >= 13);
}

#[test]
fn refusals_name_what_was_wrong() {
    require_setup!();
    let f = fixture();
    let opts = ExportOptions::default();
    let e = export::export(&f.model, &[], &opts).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("at least one fit"), "{e}");

    let mut other = f.head.clone();
    other.meta.model_fingerprint = "0".repeat(64);
    let e = export::export(&f.model, &[f.stem.clone(), other], &opts).unwrap_err();
    assert!(matches!(e, Error::FitMismatch(_)) && e.to_string().contains("another model"), "{e}");

    let mut unknown = f.head.clone();
    unknown.meta.layer = "/no/such/layer".into();
    let e = export::export(&f.model, &[unknown], &opts).unwrap_err();
    assert!(matches!(e, Error::FitMismatch(_)) && e.to_string().contains("'/no/such/layer'"), "{e}");

    let e = export::export(&f.model, &[f.head.clone(), f.head.clone()], &opts).unwrap_err();
    assert!(e.to_string().contains("two fits of layer"), "{e}");

    let mut shape = f.head.clone();
    shape.meta.channels -= 1;
    shape.weights.truncate(shape.meta.classes * shape.meta.channels);
    let e = export::export(&f.model, &[shape], &opts).unwrap_err();
    assert!(matches!(e, Error::FitMismatch(_)), "{e}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-export-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn chip_cli(args: &[&Path]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chip"));
    cmd.args(args);
    if let Some(lib) = runtime().ort_lib {
        cmd.env("CHIP_ORT_LIB", lib);
    }
    cmd.output().expect("run chip")
}

/// The CLI writes what the library builds; a fit of another model is refused and writes nothing.
/// The written file then runs in ONNX Runtime's Python package with the same results.
#[test]
fn cli_export_and_python_onnxruntime() {
    require_setup!();
    let f = fixture();
    let dir = tmp("cli");
    let (stem, head, out) = (dir.join("stem.chip"), dir.join("head.chip"), dir.join("m_chip.onnx"));
    f.stem.save(&stem).unwrap();
    f.head.save(&head).unwrap();
    let model = model_path();
    let args = |out: &Path, head: &Path| -> Vec<PathBuf> {
        ["export", "--model"].iter().map(PathBuf::from).chain([model.clone()])
            .chain(["--fit".into(), stem.clone(), "--fit".into(), head.to_path_buf(), "--out".into(), out.to_path_buf(), "--class-input".into()])
            .collect()
    };
    let run = |a: Vec<PathBuf>| chip_cli(&a.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    let o = run(args(&out, &head));
    assert!(o.status.success(), "chip export failed: {}", String::from_utf8_lossy(&o.stderr));
    let written = std::fs::read(&out).unwrap();
    let built = export::export(&f.model, &[f.stem.clone(), f.head.clone()], &ExportOptions { class_input: true }).unwrap();
    assert!(written == built.to_bytes().unwrap(), "the CLI wrote another model than the library builds");

    let mut alien = f.head.clone();
    alien.meta.model_fingerprint = "f".repeat(64);
    let alien_path = dir.join("alien.chip");
    alien.save(&alien_path).unwrap();
    let refused = dir.join("refused.onnx");
    let o = run(args(&refused, &alien_path));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("chip: fit mismatch") && stderr.contains("another model"), "{stderr}");
    assert!(!refused.exists());

    // ONNX Runtime's Python package (installed into the venv by scripts/setup.sh).
    let python = root().join("third_party/venv/bin/python");
    assert!(python.exists(), "{} missing (run scripts/setup.sh)", python.display());
    let n = f.photos.len();
    let (w, h) = f.model.input_size().as_usize();
    let input = dir.join("input.f32");
    std::fs::write(&input, f.batch.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    let targets: Vec<i64> = (0..n as i64).map(|i| if i % 2 == 0 { -1 } else { f.solved[i as usize % f.solved.len()] as i64 }).collect();
    let target_arg = targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(",");
    let o = Command::new(&python)
        .arg(root().join("tests/python/run_export.py"))
        .args([out.as_os_str(), input.as_os_str(), dir.as_os_str()])
        .args([&format!("{n},3,{h},{w}"), &target_arg])
        .output()
        .expect("run python");
    assert!(o.status.success(), "python check failed: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report from the python check");
    eprintln!("python: {report}");
    // scripts/setup.sh installs onnx into the venv: the full check (with shape inference) must have run.
    assert!(report["onnx_checker"].is_string(), "onnx.checker did not run (is onnx in third_party/venv? run scripts/setup.sh): {report}");
    let runner = Runner::new(written, &runtime()).unwrap();
    let outs = runner.run_tensors(&[image_input(f), (TARGET_INPUT, Tensor::I64(vec![n], targets))]).unwrap();
    assert_eq!(report["classes"], serde_json::json!(ints(&outs[1]).1));
    for (k, name) in [(2, MAPS_OUTPUT), (3, REFINED_OUTPUT)] {
        let bytes = std::fs::read(dir.join(format!("{name}.f32"))).unwrap();
        let py: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let (shape, rust) = floats(&outs[k]);
        assert_eq!(report["shapes"][name], serde_json::json!(shape));
        let d = rel_diff(&py, rust);
        assert!(d <= TOL, "{name} from Python's onnxruntime differs from the Rust run by {d:e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The C API writes what the library builds and refuses with the usual status codes.
#[test]
fn c_api_export() {
    require_setup!();
    use chip::ffi::*;
    use std::ffi::{CStr, CString};
    let f = fixture();
    let dir = tmp("c");
    let cs = |p: &Path| CString::new(p.to_str().unwrap()).unwrap();
    let (stem, head, alien, out) = (dir.join("stem.chip"), dir.join("head.chip"), dir.join("alien.chip"), dir.join("m.onnx"));
    f.stem.save(&stem).unwrap();
    f.head.save(&head).unwrap();
    let mut other = f.head.clone();
    other.meta.model_fingerprint = "a".repeat(64);
    other.save(&alien).unwrap();
    let last_error = || unsafe { CStr::from_ptr(chip_last_error()) }.to_str().unwrap().to_string();
    unsafe {
        let mut model = std::ptr::null_mut();
        let lib = runtime().ort_lib.map(|p| cs(&p));
        let mut mo = std::mem::zeroed::<chip_model_options>();
        mo.struct_size = std::mem::size_of::<chip_model_options>();
        assert_eq!(chip_model_options_default(&mut mo), chip_status::CHIP_STATUS_OK);
        mo.ort_lib = lib.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        assert_eq!(chip_model_load(cs(&model_path()).as_ptr(), &mo, &mut model), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut fits = [std::ptr::null_mut(); 3];
        for (slot, p) in fits.iter_mut().zip([&stem, &head, &alien]) {
            assert_eq!(chip_layer_fit_load(cs(p).as_ptr(), slot), chip_status::CHIP_STATUS_OK, "{}", last_error());
        }
        let ptrs: Vec<*const chip_layer_fit> = fits.iter().map(|&p| p as *const _).collect();
        let mut o = std::mem::zeroed::<chip_export_options>();
        o.struct_size = std::mem::size_of::<chip_export_options>();
        assert_eq!(chip_export_options_default(&mut o), chip_status::CHIP_STATUS_OK);
        assert_eq!(o.class_input, 0);
        o.class_input = 1;
        let path = cs(&out);
        assert_eq!(chip_export(model, ptrs.as_ptr(), 2, &o, path.as_ptr()), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let built = export::export(&f.model, &[f.stem.clone(), f.head.clone()], &ExportOptions { class_input: true }).unwrap();
        assert!(std::fs::read(&out).unwrap() == built.to_bytes().unwrap(), "the C API wrote another model than the library builds");
        std::fs::remove_file(&out).unwrap();

        assert_eq!(chip_export(model, ptrs.as_ptr(), 0, std::ptr::null(), path.as_ptr()), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("at least one fit"), "{}", last_error());
        assert_eq!(chip_export(model, ptrs[1..].as_ptr(), 2, std::ptr::null(), path.as_ptr()), chip_status::CHIP_STATUS_FIT_MISMATCH);
        assert!(last_error().contains("another model"), "{}", last_error());
        assert_eq!(chip_export(model, ptrs.as_ptr(), 2, std::ptr::null(), std::ptr::null()), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(chip_export(std::ptr::null(), ptrs.as_ptr(), 2, std::ptr::null(), path.as_ptr()), chip_status::CHIP_STATUS_NULL_POINTER);
        o.struct_size = 3;
        assert_eq!(chip_export(model, ptrs.as_ptr(), 2, &o, path.as_ptr()), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(!out.exists(), "a refused export left a file");
        for p in fits {
            chip_layer_fit_free(p);
        }
        chip_model_free(model);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
