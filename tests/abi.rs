//! The C ABI's contract outside any model: the checked-in header matches the code, the version macros
//! match Cargo.toml, the shared library exports only chip_* symbols, the header compiles alone as C99
//! and C++, the calls that need no model check their arguments, and fit options are checked up front.
#[macro_use]
mod common;
use chip::ffi::*;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A descriptor of the given kind and count with every pointer NULL.
fn no_images(kind: chip_images_kind, count: usize) -> chip_images {
    chip_images { struct_size: std::mem::size_of::<chip_images>(), kind, count, paths: std::ptr::null(), data: std::ptr::null(), lens: std::ptr::null(), tensor: std::ptr::null(), tensor_len: 0, sizes: std::ptr::null() }
}

/// A chip_images descriptor of `n` preprocessed images (`len` floats) with their original sizes or NULL.
fn tensor_images(data: *const f32, len: usize, n: usize, sizes: *const chip_size) -> chip_images {
    chip_images { tensor: data, tensor_len: len, sizes, ..no_images(CHIP_IMAGES_TENSOR, n) }
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(chip_last_error()) }.to_str().unwrap().to_string()
}

#[test]
fn checked_in_header_equals_fresh_generation() {
    // build.rs generates the header from src/ffi.rs into OUT_DIR on every build.
    let fresh = std::fs::read_to_string(Path::new(env!("OUT_DIR")).join("chip.h")).unwrap();
    let checked_in = std::fs::read_to_string(root().join("include/chip.h")).unwrap();
    assert!(
        fresh == checked_in,
        "include/chip.h is stale; regenerate it with `CHIP_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

fn header_define(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from include/chip.h"))
        .trim()
        .to_string()
}

#[test]
fn version_macros_match_cargo_toml() {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    // The first `version = "..."` line is the package's own (it comes before any dependency table).
    let version = toml
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("package version in Cargo.toml");
    let parts: Vec<&str> = version.split(['.', '-']).collect();
    let header = std::fs::read_to_string(root().join("include/chip.h")).unwrap();
    assert_eq!(header_define(&header, "CHIP_VERSION_MAJOR"), parts[0]);
    assert_eq!(header_define(&header, "CHIP_VERSION_MINOR"), parts[1]);
    assert_eq!(header_define(&header, "CHIP_VERSION_PATCH"), parts[2]);
    assert_eq!(header_define(&header, "CHIP_VERSION_STRING"), format!("\"{version}\""));
    assert_eq!(unsafe { CStr::from_ptr(chip_version()) }.to_str().unwrap(), version);
    assert_eq!(header_define(&header, "CHIP_ABI_VERSION"), chip_abi_version().to_string());
}

/// The cdylib built beside the test binary (target/<profile>/libchip.so).
fn cdylib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let lib = dir.join(if cfg!(target_os = "macos") { "libchip.dylib" } else { "libchip.so" });
    lib.exists().then_some(lib)
}

#[test]
#[cfg(target_os = "linux")]
fn shared_library_exports_only_chip_symbols() {
    let lib = cdylib().expect("libchip.so next to the test binary (cargo builds the cdylib with the tests)");
    let out = Command::new("nm").args(["-D", "--defined-only"]).arg(&lib).output().expect("nm (binutils) must be installed");
    assert!(out.status.success(), "nm failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let symbols: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(2)).collect();
    let foreign: Vec<&&str> = symbols.iter().filter(|s| !s.starts_with("chip_")).collect();
    assert!(foreign.is_empty(), "symbols other than chip_* exported: {foreign:?}");
    // Every function of the header is exported, and nothing else.
    let header = std::fs::read_to_string(root().join("include/chip.h")).unwrap();
    let mut declared: Vec<String> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("typedef") && l.contains("chip_") && l.contains('('))
        .filter_map(|l| {
            let name = l[..l.find('(')?].split_whitespace().last()?.trim_start_matches('*');
            name.starts_with("chip_").then(|| name.to_string())
        })
        .collect();
    declared.sort();
    let mut exported: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
    exported.sort();
    assert!(declared.len() > 40, "parsed only {} declarations", declared.len());
    assert_eq!(declared, exported);
}

fn compile_header(compiler: &str, lang: &str, std: &str) {
    let status = Command::new(compiler)
        .args(["-x", lang, &format!("-std={std}"), "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"])
        .arg(root().join("include/chip.h"))
        .status();
    match status {
        Ok(s) => assert!(s.success(), "include/chip.h does not compile alone with {compiler} -std={std}"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => eprintln!("{compiler} not installed; skipped"),
        Err(e) => panic!("{compiler}: {e}"),
    }
}

#[test]
fn header_compiles_alone_as_c99_and_cpp() {
    compile_header("cc", "c", "c99");
    compile_header("c++", "c++", "c++11");
}

#[test]
fn status_strings_and_last_error() {
    require_ort!();
    unsafe {
        assert_eq!(CStr::from_ptr(chip_status_str(0)).to_str().unwrap(), "ok");
        assert_eq!(CStr::from_ptr(chip_status_str(4)).to_str().unwrap(), "buffer too small");
        assert_eq!(CStr::from_ptr(chip_status_str(16)).to_str().unwrap(), "internal error (panic)");
        assert_eq!(CStr::from_ptr(chip_status_str(17)).to_str().unwrap(), "unknown status");
        assert_eq!(CStr::from_ptr(chip_status_str(-1)).to_str().unwrap(), "unknown status");

        let mut n = 0usize;
        assert_eq!(chip_model_class_count(std::ptr::null(), &mut n), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(last_error(), "model is NULL");
        // The message is per thread.
        std::thread::spawn(|| assert_eq!(last_error(), "")).join().unwrap();
        // chip_status_str and chip_last_error leave it alone; a successful call clears it.
        chip_status_str(3);
        assert_eq!(last_error(), "model is NULL");
        let mut o = std::mem::zeroed::<chip_explain_options>();
        o.struct_size = std::mem::size_of::<chip_explain_options>();
        assert_eq!(chip_explain_options_default(&mut o), chip_status::CHIP_STATUS_OK);
        assert_eq!(last_error(), "");
    }
}

#[test]
fn options_defaults_and_struct_size() {
    require_ort!();
    unsafe {
        let mut m = std::mem::zeroed::<chip_model_options>();
        m.struct_size = std::mem::size_of::<chip_model_options>();
        assert_eq!(chip_model_options_default(&mut m), chip_status::CHIP_STATUS_OK);
        assert_eq!(m.struct_size, std::mem::size_of::<chip_model_options>());
        assert_eq!(m.device, CHIP_DEVICE_CPU);
        assert!(m.ort_lib.is_null());
        assert_eq!(chip_model_options_default(std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);

        let mut f = std::mem::zeroed::<chip_fit_options>();
        f.struct_size = std::mem::size_of::<chip_fit_options>();
        assert_eq!(chip_fit_options_default(&mut f), chip_status::CHIP_STATUS_OK);
        let d = chip::engine::fit::FitOptions::default();
        assert_eq!((f.gates, f.seed, f.gate_batch, f.image_batch), (d.gates, d.seed, d.gate_batch, d.image_batch));
        assert_eq!((f.lambda_rel, f.sigma2_rel, f.max_iter), (d.admm.lambda_rel, d.sigma2_rel, d.admm.max_iter));
        assert!(f.progress.is_none() && f.classes.is_null() && f.class_count == 0);
        // A caller whose struct ends after `gates` gets nothing written past it.
        let mut old = std::mem::zeroed::<chip_fit_options>();
        old.struct_size = std::mem::size_of::<chip_fit_options>();
        old.struct_size = 16;
        assert_eq!(chip_fit_options_default(&mut old), chip_status::CHIP_STATUS_OK);
        assert_eq!((old.struct_size, old.gates, old.lambda_rel), (16, d.gates, 0.0));
        old.struct_size = std::mem::size_of::<chip_fit_options>() + 8;
        assert_eq!(chip_fit_options_default(&mut old), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("chip_fit_options.struct_size"), "{}", last_error());

        let mut e = std::mem::zeroed::<chip_explain_options>();
        e.struct_size = std::mem::size_of::<chip_explain_options>();
        assert_eq!(chip_explain_options_default(&mut e), chip_status::CHIP_STATUS_OK);
        assert_eq!((e.top_k, e.refined, e.original_size), (1, 0, 1));
        assert_eq!(e.threshold, chip::math::localize::DEFAULT_THRESHOLD);

        // A struct_size that is not this version's is rejected before anything is loaded.
        let path = CString::new("no-such-model.onnx").unwrap();
        let mut model: *mut chip_model = std::ptr::dangling_mut::<chip_model>();
        for bad in [0usize, 8, 12, std::mem::size_of::<chip_model_options>() + 8] {
            m.struct_size = bad;
            assert_eq!(chip_model_load(path.as_ptr(), &m, &mut model), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
            assert!(model.is_null(), "out handle is cleared on failure");
            assert!(last_error().contains("struct_size"), "{}", last_error());
        }
        // A zero struct_size says nothing about the caller's struct: refused, nothing written.
        m.struct_size = 0;
        m.threads = 77;
        assert_eq!(chip_model_options_default(&mut m), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("struct_size is 0"), "{}", last_error());
        assert_eq!(m.threads, 77);
        m.struct_size = std::mem::size_of::<chip_model_options>();
        assert_eq!(chip_model_options_default(&mut m), chip_status::CHIP_STATUS_OK);
        m.device = 7;
        assert_eq!(chip_model_load(path.as_ptr(), &m, &mut model), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("unknown device 7"), "{}", last_error());
    }
}

#[test]
fn strings_must_be_utf8_and_pointers_non_null() {
    require_ort!();
    unsafe {
        let mut model: *mut chip_model = std::ptr::null_mut();
        let bad = b"caf\xe9.onnx\0";
        assert_eq!(chip_model_load(bad.as_ptr().cast(), std::ptr::null(), &mut model), chip_status::CHIP_STATUS_INVALID_UTF8);
        assert!(last_error().contains("path is not valid UTF-8"), "{}", last_error());
        assert_eq!(chip_model_load(std::ptr::null(), std::ptr::null(), &mut model), chip_status::CHIP_STATUS_NULL_POINTER);
        let ok = CString::new("x.onnx").unwrap();
        assert_eq!(chip_model_load(ok.as_ptr(), std::ptr::null(), std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(last_error(), "out_model is NULL");
        assert_eq!(chip_model_load_bytes(std::ptr::null(), 3, std::ptr::null(), &mut model), chip_status::CHIP_STATUS_NULL_POINTER);

        let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
        assert_eq!(chip_layer_fit_load(bad.as_ptr().cast(), &mut fit), chip_status::CHIP_STATUS_INVALID_UTF8);
        let missing = CString::new(root().join("no-such-dir/x.chip").to_str().unwrap()).unwrap();
        assert_eq!(chip_layer_fit_load(missing.as_ptr(), &mut fit), chip_status::CHIP_STATUS_IO);
        assert!(last_error().contains("no-such-dir/x.chip"), "{}", last_error());

        // The _free functions accept NULL.
        chip_model_free(std::ptr::null_mut());
        chip_layer_fit_free(std::ptr::null_mut());
        chip_explainer_free(std::ptr::null_mut());
        chip_explanation_free(std::ptr::null_mut());
    }
}

#[test]
fn localize_and_iou_through_the_abi() {
    unsafe {
        // A 6×5 map with two blobs; the larger one (3×2 at x 3..5, y 2..3) wins.
        let (w, h) = (6usize, 5usize);
        let mut map = vec![0f32; w * h];
        map[0] = 1.0;
        for y in 2..4 {
            for x in 3..6 {
                map[y * w + x] = 0.8;
            }
        }
        let no_box = chip_box { x1: -1, y1: -1, x2: -1, y2: -1 };
        let mut b = chip_box { x1: 9, y1: 9, x2: 9, y2: 9 };
        assert_eq!(chip_localize(map.as_ptr(), w, h, 0.5, &mut b), chip_status::CHIP_STATUS_OK);
        assert_eq!(b, chip_box { x1: 3, y1: 2, x2: 5, y2: 3 });
        let zeros = vec![0f32; w * h];
        assert_eq!(chip_localize(zeros.as_ptr(), w, h, 0.5, &mut b), chip_status::CHIP_STATUS_OK);
        assert_eq!(b, no_box);
        assert_eq!(chip_localize(std::ptr::null(), w, h, 0.5, &mut b), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(chip_localize(map.as_ptr(), w, h, 0.5, std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(chip_localize(map.as_ptr(), w, h, f32::NAN, &mut b), chip_status::CHIP_STATUS_INVALID_ARGUMENT);

        // IoU by hand: 4×4 and 4×4 boxes overlapping in 2×4 → 8 / (16 + 16 − 8).
        let a = chip_box { x1: 0, y1: 0, x2: 3, y2: 3 };
        let c = chip_box { x1: 2, y1: 0, x2: 5, y2: 3 };
        let mut iou = -1.0;
        assert_eq!(chip_iou(&a, &c, &mut iou), chip_status::CHIP_STATUS_OK);
        assert!((iou - 8.0 / 24.0).abs() < 1e-12, "{iou}");
        assert_eq!(chip_iou(&a, &a, &mut iou), chip_status::CHIP_STATUS_OK);
        assert!((iou - 1.0).abs() < 1e-12);
        assert_eq!(chip_iou(&a, std::ptr::null(), &mut iou), chip_status::CHIP_STATUS_NULL_POINTER);
        // No box overlaps nothing; other negative or reversed corners are refused, naming the box.
        for (x, y) in [(&a, &no_box), (&no_box, &a), (&no_box, &no_box)] {
            iou = -1.0;
            assert_eq!(chip_iou(x, y, &mut iou), chip_status::CHIP_STATUS_OK);
            assert_eq!(iou, 0.0);
        }
        for bad in [chip_box { x1: -1, y1: 0, x2: 3, y2: 3 }, chip_box { x1: 4, y1: 0, x2: 3, y2: 3 }] {
            assert_eq!(chip_iou(&a, &bad, &mut iou), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
            assert!(last_error().starts_with("b is ["), "{}", last_error());
        }
    }
}

/// The model's input size through the ABI, as (width, height).
unsafe fn input_size(model: *const chip_model) -> (usize, usize) {
    let mut s = chip_size::default();
    assert_eq!(chip_model_input_size(model, &mut s), chip_status::CHIP_STATUS_OK);
    (s.width as usize, s.height as usize)
}

/// A small real model (from the test-model builders) loaded through the ABI.
unsafe fn small_model() -> (*mut chip_model, String) {
    let p = chip_testmodels::planted_cnn(3, 8, 2, true, 1);
    let bytes = p.model.to_bytes().unwrap();
    let lib = CString::new(root().join("third_party/onnxruntime/lib/libonnxruntime.so").to_str().unwrap()).unwrap();
    let mut o = std::mem::zeroed::<chip_model_options>();
    o.struct_size = std::mem::size_of::<chip_model_options>();
    chip_model_options_default(&mut o);
    if std::env::var_os("CHIP_ORT_LIB").is_none() {
        o.ort_lib = lib.as_ptr();
    }
    let mut model: *mut chip_model = std::ptr::null_mut();
    assert_eq!(chip_model_load_bytes(bytes.as_ptr(), bytes.len(), &o, &mut model), chip_status::CHIP_STATUS_OK, "{}", last_error());
    (model, p.layer)
}

static PROGRESS_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn count_progress(_: *mut std::ffi::c_void, _: chip_progress_kind, _: usize, _: usize) -> std::ffi::c_int {
    PROGRESS_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    1
}

/// lambda_rel ≥ 1 and a degenerate sigma2_rel are refused before any image is processed.
#[test]
fn fit_options_that_give_all_zero_fits_are_refused_up_front() {
    require_ort!();
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let data = vec![0.5f32; 2 * 3 * h * w];
        let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
        let mut o = std::mem::zeroed::<chip_fit_options>();
        o.struct_size = std::mem::size_of::<chip_fit_options>();
        for (lambda, sigma2, needle) in [(1.0, 0.5, "lambda_rel"), (1e308, 0.5, "lambda_rel"), (0.05, 1e-30, "sigma2_rel 1e-30")] {
            chip_fit_options_default(&mut o);
            o.gates = 4;
            o.lambda_rel = lambda;
            o.sigma2_rel = sigma2;
            o.progress = Some(count_progress);
            let status = chip_fit_layer(model, layer.as_ptr(), &tensor_images(data.as_ptr(), data.len(), 2, std::ptr::null()), &o, &mut fit);
            assert_eq!(status, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{lambda} {sigma2}");
            assert!(fit.is_null());
            assert!(last_error().contains(needle), "{}", last_error());
        }
        assert_eq!(PROGRESS_CALLS.load(std::sync::atomic::Ordering::SeqCst), 0, "images were processed first");
        chip_model_free(model);
    }
}

/// A gate count whose gate set cannot be allocated gives a status: it used to panic with
/// "capacity overflow" (caught) or, below the overflow, abort the process on a failed allocation.
#[test]
fn absurd_gate_counts_are_refused() {
    require_ort!();
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let data = vec![0.5f32; 3 * h * w];
        let mut o = std::mem::zeroed::<chip_fit_options>();
        o.struct_size = std::mem::size_of::<chip_fit_options>();
        for gates in [usize::MAX, usize::MAX / 2, 1 << 40] {
            chip_fit_options_default(&mut o);
            o.gates = gates;
            let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
            let status = chip_fit_layer(model, layer.as_ptr(), &tensor_images(data.as_ptr(), data.len(), 1, std::ptr::null()), &o, &mut fit);
            assert_eq!(status, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{gates} gates: {}", last_error());
            assert!(fit.is_null());
            assert!(last_error().contains(&format!("{gates} gates")) && last_error().contains("use fewer gates"), "{}", last_error());
        }
        chip_model_free(model);
    }
}

/// Caller-given sizes: original sizes beyond the decoding limit, and maps that cannot fit in
/// memory, give a status instead of aborting the process; n = 0 is named.
#[test]
fn explain_tensor_sizes_are_bounded_and_n_zero_is_named() {
    require_ort!();
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let per = 3 * h * w;
        let mut rng = chip::util::rng::Rng::new(3);
        let data: Vec<f32> = (0..4 * per).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0).collect();
        let mut fo = std::mem::zeroed::<chip_fit_options>();
        fo.struct_size = std::mem::size_of::<chip_fit_options>();
        chip_fit_options_default(&mut fo);
        fo.gates = 8;
        let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
        assert_eq!(chip_fit_layer(model, layer.as_ptr(), &tensor_images(std::ptr::null(), 0, 0, std::ptr::null()), &fo, &mut fit), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), "images->count is 0: give at least one image");
        assert_eq!(chip_fit_layer(model, layer.as_ptr(), &tensor_images(data.as_ptr(), data.len(), 4, std::ptr::null()), &fo, &mut fit), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut ex: *mut chip_explainer = std::ptr::null_mut();
        let fits = [fit as *const chip_layer_fit];
        assert_eq!(chip_explainer_new(model, fits.as_ptr(), 1, &mut ex), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut e: *mut chip_explanation = std::ptr::null_mut();

        assert_eq!(chip_explain(ex, &tensor_images(std::ptr::null(), 0, 0, std::ptr::null()), std::ptr::null(), &mut e), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), "images->count is 0: give at least one image");
        for (sw, sh) in [(100_000u32, 100_000u32), (0, 5), (16_385, 10)] {
            let sizes = [chip_size { width: sw, height: sh }];
            let s = chip_explain(ex, &tensor_images(data.as_ptr(), per, 1, sizes.as_ptr()), std::ptr::null(), &mut e);
            assert_eq!(s, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{sw}x{sh}");
            assert!(last_error().contains(&format!("sizes[0] is {sw}x{sh}")) && last_error().contains("16384"), "{}", last_error());
            assert!(e.is_null());
        }
        // Every side within the limit, but 4096 images x 3 classes of 16384² maps: 12 TiB.
        let n = 4096;
        let many: Vec<f32> = data[..per].iter().copied().cycle().take(n * per).collect();
        let sizes = vec![chip_size { width: 16_384, height: 16_384 }; n];
        let mut eo = std::mem::zeroed::<chip_explain_options>();
        eo.struct_size = std::mem::size_of::<chip_explain_options>();
        chip_explain_options_default(&mut eo);
        eo.top_k = 3;
        let s = chip_explain(ex, &tensor_images(many.as_ptr(), many.len(), n, sizes.as_ptr()), &eo, &mut e);
        assert_eq!(s, chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("12288.0 GiB"), "{}", last_error());
        // A sound request still works and gives maps at the requested size.
        let sizes = [chip_size { width: 40, height: 30 }, chip_size { width: 16_384, height: 1 }];
        assert_eq!(chip_explain(ex, &tensor_images(data.as_ptr(), 2 * per, 2, sizes.as_ptr()), &eo, &mut e), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut ms = chip_size::default();
        assert_eq!(chip_explanation_map_size(e, 0, 0, 0, &mut ms), chip_status::CHIP_STATUS_OK);
        assert_eq!(ms, sizes[0]);
        assert_eq!(chip_explanation_map_size(e, 1, 2, 0, &mut ms), chip_status::CHIP_STATUS_OK);
        assert_eq!(ms, sizes[1]);
        assert_eq!(chip_explanation_image_size(e, 1, &mut ms), chip_status::CHIP_STATUS_OK);
        assert_eq!(ms, sizes[1]);
        chip_explanation_free(e);
        chip_explainer_free(ex);
        chip_layer_fit_free(fit);
        chip_model_free(model);
    }
}

/// Loads model bytes through the ABI with an optional preprocessing spec and an optional caller
/// struct_size (an older caller's smaller struct); the status, and the model on success.
unsafe fn load_with_spec(bytes: &[u8], spec: Option<&CString>, struct_size: Option<usize>) -> (chip_status, *mut chip_model) {
    let lib = CString::new(root().join("third_party/onnxruntime/lib/libonnxruntime.so").to_str().unwrap()).unwrap();
    let mut o = std::mem::zeroed::<chip_model_options>();
    o.struct_size = std::mem::size_of::<chip_model_options>();
    assert_eq!(chip_model_options_default(&mut o), chip_status::CHIP_STATUS_OK);
    if std::env::var_os("CHIP_ORT_LIB").is_none() {
        o.ort_lib = lib.as_ptr();
    }
    if let Some(s) = spec {
        o.preprocess = s.as_ptr();
    }
    if let Some(size) = struct_size {
        o.struct_size = size;
    }
    let mut model: *mut chip_model = std::ptr::dangling_mut::<chip_model>();
    let status = chip_model_load_bytes(bytes.as_ptr(), bytes.len(), &o, &mut model);
    (status, model)
}

/// chip_model_preprocess as parsed JSON, through a size query and a too-small buffer first.
unsafe fn describe(model: *const chip_model) -> serde_json::Value {
    let mut need = 0usize;
    assert_eq!(chip_model_preprocess(model, std::ptr::null_mut(), 0, &mut need), chip_status::CHIP_STATUS_OK);
    let mut small = vec![0 as std::ffi::c_char; need - 1];
    let mut n = 0usize;
    assert_eq!(chip_model_preprocess(model, small.as_mut_ptr(), small.len(), &mut n), chip_status::CHIP_STATUS_BUFFER_TOO_SMALL);
    assert_eq!(n, need);
    let mut buf = vec![0 as std::ffi::c_char; need];
    assert_eq!(chip_model_preprocess(model, buf.as_mut_ptr(), need, &mut n), chip_status::CHIP_STATUS_OK);
    let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
    assert_eq!(text.len() + 1, need);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("chip_model_preprocess is not JSON ({e}): {text}"))
}

/// The probabilities of image 0 of an explanation.
unsafe fn explanation_probabilities(e: *const chip_explanation) -> Vec<f32> {
    let mut n = 0usize;
    assert_eq!(chip_explanation_probabilities(e, 0, std::ptr::null_mut(), 0, &mut n), chip_status::CHIP_STATUS_OK);
    let mut p = vec![0f32; n];
    assert_eq!(chip_explanation_probabilities(e, 0, p.as_mut_ptr(), n, &mut n), chip_status::CHIP_STATUS_OK, "{}", last_error());
    p
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// A spec given through chip_model_options.preprocess is the one the model uses: images are
/// normalised with its scale/mean/std (checked against a tensor normalised here by hand, through
/// CHIP_IMAGES_TENSOR), the probabilities move away from the model loaded without it, and
/// chip_model_preprocess says which keys it stated.
#[test]
fn preprocess_spec_through_the_model_options() {
    require_ort!();
    unsafe {
        let p = chip_testmodels::planted_cnn(3, 8, 2, true, 1);
        let bytes = p.model.to_bytes().unwrap();
        let (scale, mean, std) = (1.0f32 / 255.0, [0.2f32, 0.5, 0.8], [0.5f32, 0.25, 0.125]);
        let spec = CString::new(format!(r#"{{"scale": {}, "mean": [0.2, 0.5, 0.8], "std": [0.5, 0.25, 0.125]}}"#, 1.0f64 / 255.0)).unwrap();
        let (s, plain) = load_with_spec(&bytes, None, None);
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
        let (s, given) = load_with_spec(&bytes, Some(&spec), None);
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());

        // The effective spec and the sources of its values.
        let (dp, dg) = (describe(plain), describe(given));
        for d in [&dp, &dg] {
            assert!(d["spec"].is_object() && d["sources"].is_object(), "{d}");
            assert_eq!(d["fingerprint"].as_str().map(str::len), Some(64), "{d}");
            assert_eq!(d["sources"]["input_size"], "graph", "{d}");
        }
        for key in ["scale", "mean", "std"] {
            assert_eq!(dg["sources"][key], "given", "{dg}");
            assert_eq!(dp["sources"][key], "assumed", "{dp}");
        }
        let got_mean: Vec<f64> = dg["spec"]["mean"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (g, want) in got_mean.iter().zip(mean) {
            assert!((g - want as f64).abs() < 1e-6, "{dg}");
        }
        assert_ne!(dp["fingerprint"], dg["fingerprint"]);
        assert_eq!(chip_model_preprocess(std::ptr::null(), std::ptr::null_mut(), 0, std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);

        // Two photos at the input size (no resampling), encoded as PNG, and normalised by hand.
        let (w, h) = input_size(given);
        let mut rng = chip::util::rng::Rng::new(11);
        let photos: Vec<image::RgbImage> =
            (0..2).map(|_| image::RgbImage::from_fn(w as u32, h as u32, |_, _| image::Rgb([0, 1, 2].map(|_| (rng.next_u64() >> 56) as u8)))).collect();
        let encoded: Vec<Vec<u8>> = photos
            .iter()
            .map(|img| {
                let mut out = std::io::Cursor::new(Vec::new());
                img.write_to(&mut out, image::ImageFormat::Png).unwrap();
                out.into_inner()
            })
            .collect();
        let per = 3 * h * w;
        let mut hand = vec![0f32; 2 * per];
        for (i, img) in photos.iter().enumerate() {
            for (x, y, px) in img.enumerate_pixels() {
                for c in 0..3 {
                    hand[i * per + c * h * w + y as usize * w + x as usize] = (px.0[c] as f32 * scale - mean[c]) / std[c];
                }
            }
        }
        let prepared = |m: *const chip_model, i: usize| {
            let mut out = vec![0f32; per];
            let mut n = 0usize;
            let s = chip_model_preprocess_encoded(m, encoded[i].as_ptr(), encoded[i].len(), out.as_mut_ptr(), per, &mut n, std::ptr::null_mut());
            assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
            out
        };
        let diff = max_abs_diff(&prepared(given, 0), &hand[..per]);
        assert!(diff < 1e-4, "the given spec's preprocessing differs from the hand-normalised tensor by {diff}");
        let predict = |m: *const chip_model, data: &[f32]| {
            let mut probs = vec![0f32; 3];
            let mut n = 0usize;
            let s = chip_model_predict(m, data.as_ptr(), data.len(), 1, probs.as_mut_ptr(), probs.len(), &mut n);
            assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
            probs
        };
        let moved = max_abs_diff(&predict(plain, &prepared(plain, 0)), &predict(given, &hand[..per]));
        assert!(moved > 1e-3, "the spec did not change the probabilities ({moved})");

        // A fit made without the spec is refused under it, naming a key that differs.
        let layer = CString::new(p.layer).unwrap();
        let mut fo = std::mem::zeroed::<chip_fit_options>();
        fo.struct_size = std::mem::size_of::<chip_fit_options>();
        assert_eq!(chip_fit_options_default(&mut fo), chip_status::CHIP_STATUS_OK);
        fo.gates = 8;
        fo.mosaics = 0;
        let mut plain_fit: *mut chip_layer_fit = std::ptr::null_mut();
        let plain_tensor: Vec<f32> = [prepared(plain, 0), prepared(plain, 1)].concat();
        let s = chip_fit_layer(plain, layer.as_ptr(), &tensor_images(plain_tensor.as_ptr(), plain_tensor.len(), 2, std::ptr::null()), &fo, &mut plain_fit);
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut ex: *mut chip_explainer = std::ptr::null_mut();
        let fits = [plain_fit as *const chip_layer_fit];
        assert_eq!(chip_explainer_new(given, fits.as_ptr(), 1, &mut ex), chip_status::CHIP_STATUS_FIT_MISMATCH);
        assert!(last_error().contains("another preprocessing") && last_error().contains("mean"), "{}", last_error());
        assert!(ex.is_null());

        // Under the spec: the encoded photo and the hand-normalised tensor give the same explanation.
        let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
        let s = chip_fit_layer(given, layer.as_ptr(), &tensor_images(hand.as_ptr(), hand.len(), 2, std::ptr::null()), &fo, &mut fit);
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
        let fits = [fit as *const chip_layer_fit];
        assert_eq!(chip_explainer_new(given, fits.as_ptr(), 1, &mut ex), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let data = [encoded[0].as_ptr()];
        let lens = [encoded[0].len()];
        let enc = chip_images { data: data.as_ptr(), lens: lens.as_ptr(), ..no_images(CHIP_IMAGES_ENCODED, 1) };
        let (mut e1, mut e2): (*mut chip_explanation, *mut chip_explanation) = (std::ptr::null_mut(), std::ptr::null_mut());
        assert_eq!(chip_explain(ex, &enc, std::ptr::null(), &mut e1), chip_status::CHIP_STATUS_OK, "{}", last_error());
        assert_eq!(chip_explain(ex, &tensor_images(hand.as_ptr(), per, 1, std::ptr::null()), std::ptr::null(), &mut e2), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let (p1, p2) = (explanation_probabilities(e1), explanation_probabilities(e2));
        assert!(max_abs_diff(&p1, &p2) < 1e-5, "{p1:?} vs {p2:?}");
        assert!(max_abs_diff(&p2, &predict(given, &hand[..per])) < 1e-6);
        // The tensor's length is checked and the message says what it needs.
        assert_eq!(chip_explain(ex, &tensor_images(hand.as_ptr(), per - 1, 1, std::ptr::null()), std::ptr::null(), &mut e2), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), format!("invalid argument: images->tensor holds {} floats, but 1 images of 3x{h}x{w} need {per}", per - 1));
        chip_explanation_free(e1);
        chip_explanation_free(e2);
        chip_explainer_free(ex);
        chip_layer_fit_free(fit);
        chip_layer_fit_free(plain_fit);
        chip_model_free(plain);
        chip_model_free(given);
    }
}

/// A spec that does not parse, has an unknown key or a wrong value fails the load with
/// CHIP_STATUS_INVALID_ARGUMENT and a message naming the option and the key; an older caller's
/// struct without the field loads without reading it.
#[test]
fn invalid_preprocess_specs_and_older_option_structs() {
    require_ort!();
    unsafe {
        let bytes = chip_testmodels::planted_cnn(3, 8, 2, true, 1).model.to_bytes().unwrap();
        for (text, needles) in [
            (r#"{"mean": 0.5, "channels": "RGB"}"#, &["unknown key 'channels'", "known keys:", "channel_order"][..]),
            (r#"{"interpolation": "cubic"}"#, &["'interpolation'"][..]),
            (r#"{"scale": 1"#, &["invalid JSON"][..]),
            (r#"[1, 2]"#, &["JSON object"][..]),
        ] {
            let spec = CString::new(text).unwrap();
            let (s, m) = load_with_spec(&bytes, Some(&spec), None);
            assert_eq!(s, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{text}");
            assert!(m.is_null());
            assert!(last_error().starts_with("chip_model_options.preprocess: preprocessing spec: "), "{}", last_error());
            for n in needles {
                assert!(last_error().contains(n), "{text}: {} lacks {n}", last_error());
            }
        }
        let bad = CString::from_vec_with_nul(b"{\"mean\": \"\xff\"}\0".to_vec()).unwrap();
        let (s, _) = load_with_spec(&bytes, Some(&bad), None);
        assert_eq!(s, chip_status::CHIP_STATUS_INVALID_UTF8);
        assert!(last_error().contains("chip_model_options.preprocess is not valid UTF-8"), "{}", last_error());

        // An older caller's struct ends before `preprocess`: whatever lies there is not read (here an
        // invalid spec, which would fail the load if it were).
        let old_size = std::mem::offset_of!(chip_model_options, preprocess);
        let trap = CString::new(r#"{"not_a_key": 1}"#).unwrap();
        let (s, m) = load_with_spec(&bytes, Some(&trap), Some(old_size));
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "{}", last_error());
        assert_eq!(describe(m)["sources"]["mean"], "assumed");
        chip_model_free(m);
        // chip_model_options_default writes no more than such a caller's struct holds.
        let mut o = std::mem::zeroed::<chip_model_options>();
        o.struct_size = old_size;
        o.preprocess = trap.as_ptr();
        assert_eq!(chip_model_options_default(&mut o), chip_status::CHIP_STATUS_OK);
        assert_eq!((o.struct_size, o.preprocess), (old_size, trap.as_ptr()));
        // This version's defaults: no spec.
        o.struct_size = std::mem::size_of::<chip_model_options>();
        assert_eq!(chip_model_options_default(&mut o), chip_status::CHIP_STATUS_OK);
        assert!(o.preprocess.is_null());
    }
}

/// The struct_size contract, both halves: a caller built against an older, smaller struct (or
/// descriptor) is accepted by every consumer, the missing tail taking its defaults.
#[test]
fn older_smaller_structs_are_accepted_by_every_consumer() {
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let data = vec![0.5f32; 2 * 3 * h * w];
        // Options that end after `gates`: the rest (lambda, sigma2, ...) are the defaults.
        let mut fo = std::mem::zeroed::<chip_fit_options>();
        fo.struct_size = 2 * std::mem::size_of::<usize>();
        assert_eq!(chip_fit_options_default(&mut fo), chip_status::CHIP_STATUS_OK);
        fo.gates = 4;
        fo.mosaics = 12345; // past the caller's struct: not read
        // A descriptor that ends before `sizes`.
        let mut images = std::mem::zeroed::<chip_images>();
        images.struct_size = std::mem::offset_of!(chip_images, sizes);
        images.kind = CHIP_IMAGES_TENSOR;
        images.count = 2;
        images.tensor = data.as_ptr();
        images.tensor_len = data.len();
        let mut stats: *mut chip_stats = std::ptr::null_mut();
        let status = chip_collect_stats(model, layer.as_ptr(), &images, &fo, &mut stats);
        assert_eq!(status, chip_status::CHIP_STATUS_OK, "{}", last_error());
        assert!(!stats.is_null());
        chip_stats_free(stats);
        // A descriptor too small to hold its count, or of size 0, is refused.
        for bad in [0usize, 16] {
            images.struct_size = bad;
            let status = chip_collect_stats(model, layer.as_ptr(), &images, &fo, &mut stats);
            assert_eq!(status, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{bad}");
            assert!(last_error().contains("struct_size"), "{}", last_error());
        }
        chip_model_free(model);
    }
}

/// Views and mosaics per image are bounded, and say the bound (augment = SIZE_MAX was a panic).
#[test]
fn absurd_augment_and_mosaics_are_refused_with_the_bound() {
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let data = vec![0.5f32; 3 * h * w];
        let mut images = std::mem::zeroed::<chip_images>();
        images.struct_size = std::mem::size_of::<chip_images>();
        images.kind = CHIP_IMAGES_TENSOR;
        images.count = 1;
        images.tensor = data.as_ptr();
        images.tensor_len = data.len();
        for (augment, mosaics, needle) in [(usize::MAX, 0, "at most 256"), (1 << 62, 0, "augment"), (0, 1_000_000, "mosaics 1000000")] {
            let mut fo = std::mem::zeroed::<chip_fit_options>();
            fo.struct_size = std::mem::size_of::<chip_fit_options>();
            chip_fit_options_default(&mut fo);
            fo.gates = 4;
            fo.augment = augment;
            fo.mosaics = mosaics;
            let mut stats: *mut chip_stats = std::ptr::null_mut();
            let status = chip_collect_stats(model, layer.as_ptr(), &images, &fo, &mut stats);
            assert_eq!(status, chip_status::CHIP_STATUS_INVALID_ARGUMENT, "{augment} {mosaics}: {}", last_error());
            assert!(stats.is_null());
            assert!(last_error().contains(needle), "{}", last_error());
        }
        chip_model_free(model);
    }
}

/// An image path that is a device or a folder is refused by what it is, before any read
/// (/dev/zero used to be read until memory ran out).
#[test]
fn image_paths_that_are_not_regular_files_are_refused() {
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        for (path, needle) in [("/dev/zero", "is a device"), ("/", "is a folder")] {
            let p = CString::new(path).unwrap();
            let paths = [p.as_ptr()];
            let mut images = std::mem::zeroed::<chip_images>();
            images.struct_size = std::mem::size_of::<chip_images>();
            images.kind = CHIP_IMAGES_FILES;
            images.count = 1;
            images.paths = paths.as_ptr();
            let mut fo = std::mem::zeroed::<chip_fit_options>();
            fo.struct_size = std::mem::size_of::<chip_fit_options>();
            chip_fit_options_default(&mut fo);
            fo.gates = 4;
            let mut stats: *mut chip_stats = std::ptr::null_mut();
            let status = chip_collect_stats(model, layer.as_ptr(), &images, &fo, &mut stats);
            assert_eq!(status, chip_status::CHIP_STATUS_IO, "{path}: {}", last_error());
            assert!(last_error().contains(needle), "{}", last_error());
        }
        chip_model_free(model);
    }
}

/// A fit that solved only some classes: a top-k explanation that picks an unsolved class marks its
/// map unsolved (all zero, no box), and the solved class's map solved.
#[test]
fn unsolved_classes_are_flagged_per_map() {
    require_ort!();
    unsafe {
        let (model, layer) = small_model();
        let layer = CString::new(layer).unwrap();
        let (w, h) = input_size(model);
        let per = 3 * h * w;
        let mut rng = chip::util::rng::Rng::new(5);
        let data: Vec<f32> = (0..4 * per).map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0).collect();
        let mut classes_n = 0usize;
        assert_eq!(chip_model_class_count(model, &mut classes_n), chip_status::CHIP_STATUS_OK);
        let solved = [1usize];
        let mut fo = std::mem::zeroed::<chip_fit_options>();
        fo.struct_size = std::mem::size_of::<chip_fit_options>();
        chip_fit_options_default(&mut fo);
        fo.gates = 8;
        fo.classes = solved.as_ptr();
        fo.class_count = solved.len();
        let mut fit: *mut chip_layer_fit = std::ptr::null_mut();
        assert_eq!(chip_fit_layer(model, layer.as_ptr(), &tensor_images(data.as_ptr(), data.len(), 4, std::ptr::null()), &fo, &mut fit), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let fits = [fit as *const chip_layer_fit];
        let mut ex: *mut chip_explainer = std::ptr::null_mut();
        assert_eq!(chip_explainer_new(model, fits.as_ptr(), 1, &mut ex), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut eo = std::mem::zeroed::<chip_explain_options>();
        eo.struct_size = std::mem::size_of::<chip_explain_options>();
        chip_explain_options_default(&mut eo);
        eo.top_k = classes_n;
        let mut e: *mut chip_explanation = std::ptr::null_mut();
        assert_eq!(chip_explain(ex, &tensor_images(data.as_ptr(), 2 * per, 2, std::ptr::null()), &eo, &mut e), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let (mut seen_solved, mut seen_unsolved) = (0, 0);
        for image in 0..2 {
            for index in 0..classes_n {
                let (mut class, mut p) = (0usize, 0f32);
                assert_eq!(chip_explanation_class(e, image, index, &mut class, &mut p), chip_status::CHIP_STATUS_OK);
                let mut flag = !solved.contains(&class);
                assert_eq!(chip_explanation_map_solved(e, image, index, 0, &mut flag), chip_status::CHIP_STATUS_OK, "{}", last_error());
                assert_eq!(flag, solved.contains(&class), "image {image} class {class}");
                if flag {
                    seen_solved += 1;
                } else {
                    seen_unsolved += 1;
                    let mut b = chip_box { x1: 0, y1: 0, x2: 0, y2: 0 };
                    assert_eq!(chip_explanation_box(e, image, index, 0, &mut b), chip_status::CHIP_STATUS_OK);
                    assert_eq!((b.x1, b.y1, b.x2, b.y2), (-1, -1, -1, -1));
                }
            }
        }
        assert_eq!((seen_solved, seen_unsolved), (2, 2 * (classes_n - 1)));
        let mut flag = false;
        assert_eq!(chip_explanation_map_solved(e, 0, 0, usize::MAX, &mut flag), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(chip_explanation_map_solved(e, 0, 0, 1, &mut flag), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(chip_explanation_map_solved(e, 0, 0, 0, std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(chip_explanation_map_solved(std::ptr::null(), 0, 0, 0, &mut flag), chip_status::CHIP_STATUS_NULL_POINTER);
        chip_explanation_free(e);
        chip_explainer_free(ex);
        chip_layer_fit_free(fit);
        chip_model_free(model);
    }
}
