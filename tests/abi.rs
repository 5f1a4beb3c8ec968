//! The C ABI's contract outside any model: the checked-in header matches the code, the version macros
//! match Cargo.toml, the shared library exports only chip_* symbols, the header compiles alone as C99
//! and C++, the calls that need no model check their arguments, and fit options are checked up front.
use chip::ffi::*;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    unsafe {
        assert_eq!(CStr::from_ptr(chip_status_str(0)).to_str().unwrap(), "ok");
        assert_eq!(CStr::from_ptr(chip_status_str(4)).to_str().unwrap(), "buffer too small");
        assert_eq!(CStr::from_ptr(chip_status_str(16)).to_str().unwrap(), "internal error (panic)");
        assert_eq!(CStr::from_ptr(chip_status_str(17)).to_str().unwrap(), "unknown status");
        assert_eq!(CStr::from_ptr(chip_status_str(-1)).to_str().unwrap(), "unknown status");

        let mut n = 0usize;
        assert_eq!(chip_model_num_classes(std::ptr::null(), &mut n), chip_status::CHIP_STATUS_NULL_POINTER);
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
            assert_eq!(chip_load_model(path.as_ptr(), &m, &mut model), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
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
        assert_eq!(chip_load_model(path.as_ptr(), &m, &mut model), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("unknown device 7"), "{}", last_error());
    }
}

#[test]
fn strings_must_be_utf8_and_pointers_non_null() {
    unsafe {
        let mut model: *mut chip_model = std::ptr::null_mut();
        let bad = b"caf\xe9.onnx\0";
        assert_eq!(chip_load_model(bad.as_ptr().cast(), std::ptr::null(), &mut model), chip_status::CHIP_STATUS_INVALID_UTF8);
        assert!(last_error().contains("path is not valid UTF-8"), "{}", last_error());
        assert_eq!(chip_load_model(std::ptr::null(), std::ptr::null(), &mut model), chip_status::CHIP_STATUS_NULL_POINTER);
        let ok = CString::new("x.onnx").unwrap();
        assert_eq!(chip_load_model(ok.as_ptr(), std::ptr::null(), std::ptr::null_mut()), chip_status::CHIP_STATUS_NULL_POINTER);
        assert_eq!(last_error(), "out_model is NULL");
        assert_eq!(chip_load_model_bytes(std::ptr::null(), 3, std::ptr::null(), &mut model), chip_status::CHIP_STATUS_NULL_POINTER);

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
    let p = chip::testmodels::planted_cnn(3, 8, 2, true, 1);
    let bytes = p.model.to_bytes().unwrap();
    let lib = CString::new(root().join("third_party/onnxruntime/lib/libonnxruntime.so").to_str().unwrap()).unwrap();
    let mut o = std::mem::zeroed::<chip_model_options>();
    o.struct_size = std::mem::size_of::<chip_model_options>();
    chip_model_options_default(&mut o);
    if std::env::var_os("CHIP_ORT_LIB").is_none() {
        o.ort_lib = lib.as_ptr();
    }
    let mut model: *mut chip_model = std::ptr::null_mut();
    assert_eq!(chip_load_model_bytes(bytes.as_ptr(), bytes.len(), &o, &mut model), chip_status::CHIP_STATUS_OK, "{}", last_error());
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
            let status = chip_fit_layer_tensor(model, layer.as_ptr(), data.as_ptr(), data.len(), 2, &o, &mut fit);
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
            let status = chip_fit_layer_tensor(model, layer.as_ptr(), data.as_ptr(), data.len(), 1, &o, &mut fit);
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
        assert_eq!(chip_fit_layer_tensor(model, layer.as_ptr(), std::ptr::null(), 0, 0, &fo, &mut fit), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), "images->count is 0: give at least one image");
        assert_eq!(chip_fit_layer_tensor(model, layer.as_ptr(), data.as_ptr(), data.len(), 4, &fo, &mut fit), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut ex: *mut chip_explainer = std::ptr::null_mut();
        let fits = [fit as *const chip_layer_fit];
        assert_eq!(chip_explainer_new(model, fits.as_ptr(), 1, &mut ex), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut e: *mut chip_explanation = std::ptr::null_mut();

        assert_eq!(chip_explain_tensor(ex, std::ptr::null(), 0, 0, std::ptr::null(), std::ptr::null(), &mut e), chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert_eq!(last_error(), "images->count is 0: give at least one image");
        for (sw, sh) in [(100_000u32, 100_000u32), (0, 5), (16_385, 10)] {
            let sizes = [chip_size { width: sw, height: sh }];
            let s = chip_explain_tensor(ex, data.as_ptr(), per, 1, sizes.as_ptr(), std::ptr::null(), &mut e);
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
        let s = chip_explain_tensor(ex, many.as_ptr(), many.len(), n, sizes.as_ptr(), &eo, &mut e);
        assert_eq!(s, chip_status::CHIP_STATUS_INVALID_ARGUMENT);
        assert!(last_error().contains("12288.0 GiB"), "{}", last_error());
        // A sound request still works and gives maps at the requested size.
        let sizes = [chip_size { width: 40, height: 30 }, chip_size { width: 16_384, height: 1 }];
        assert_eq!(chip_explain_tensor(ex, data.as_ptr(), 2 * per, 2, sizes.as_ptr(), &eo, &mut e), chip_status::CHIP_STATUS_OK, "{}", last_error());
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
