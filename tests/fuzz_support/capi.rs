//! The C entry points called from Rust with arguments drawn from the input: NULL or real pointers,
//! lengths from exact to absurd (but never longer than the memory behind a real pointer: that would
//! break the caller's side of the contract, not the library's), option structs with odd sizes and
//! values. Every call must return a known status other than CHIP_STATUS_PANIC, leave a message when
//! it fails and set its out-handle to NULL; handles it returns are used and freed.
use super::engine::{Target, INTERESTING};
use super::targets::{fixture, root};
use chip::ffi::*;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::{null, null_mut};

/// Reads choices from the input; an exhausted input gives zeros (so every input is a valid program).
struct Tape<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Tape<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { self.byte() as usize % n }
    }
    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }
    /// NULL one time in four.
    fn null(&mut self) -> bool {
        self.below(4) == 0
    }
    /// Small, an edge value, or anything.
    fn size(&mut self) -> usize {
        match self.below(4) {
            0 | 1 => self.below(8),
            2 => INTERESTING[self.below(INTERESTING.len())] as usize,
            _ => self.u64() as usize,
        }
    }
    /// A length for a buffer of `cap` elements behind a real pointer: never more than `cap`.
    fn len_within(&mut self, cap: usize) -> usize {
        match self.below(4) {
            0 | 1 => cap,
            2 => 0,
            _ => self.below(cap + 1),
        }
    }
    fn f64(&mut self) -> f64 {
        match self.below(3) {
            0 => [0.0, -0.0, 0.05, 0.5, 1.0, -1.0, 2.0, 1e-30, 1e308, f64::NAN, f64::INFINITY, f64::NEG_INFINITY][self.below(12)],
            1 => self.below(100) as f64 / 100.0,
            _ => f64::from_bits(self.u64()),
        }
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.byte()).collect()
    }
    /// A C string: a plain name, one with bytes that are not UTF-8, or raw bytes.
    fn cstring(&mut self, plain: &[&str]) -> CString {
        let s: Vec<u8> = match self.below(4) {
            0 => vec![0xff, 0xfe, b'x'],
            1 => self.bytes(12).into_iter().filter(|&b| b != 0).collect(),
            _ => plain[self.below(plain.len())].as_bytes().to_vec(),
        };
        CString::new(s).unwrap()
    }
}

/// Long-lived handles made once from the fixture (the C API's own loading and fitting paths).
struct Handles {
    model: *mut chip_model,
    fit: *mut chip_layer_fit,
    explainer: *mut chip_explainer,
    fit_path: CString,
    dir: std::path::PathBuf,
}
// The handles are documented as usable from many threads (model, explainer) or only read (fit).
unsafe impl Send for Handles {}
unsafe impl Sync for Handles {}

static HANDLES: std::sync::OnceLock<Handles> = std::sync::OnceLock::new();

/// Scratch folders are `chip-fuzz-capi-<pid>`; those of processes that are gone are removed (the
/// handles live as long as the process, so a process cannot remove its own).
fn remove_stale_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("chip-fuzz-capi-").and_then(|p| p.parse::<i32>().ok()) else { continue };
        // SAFETY: signal 0 only asks whether the process exists.
        if pid > 0 && unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn handles() -> &'static Handles {
    HANDLES.get_or_init(|| unsafe {
        remove_stale_scratch();
        let f = fixture();
        let mut model = null_mut();
        let s = chip_model_load_bytes(f.model_bytes.as_ptr(), f.model_bytes.len(), null(), &mut model);
        assert_eq!(s, chip_status::CHIP_STATUS_OK, "load the fixture model: {}", last_error());
        let dir = std::env::temp_dir().join(format!("chip-fuzz-capi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fit_path = dir.join("fixture.chip");
        f.fit.save(&fit_path).unwrap();
        let fit_path = CString::new(fit_path.to_str().unwrap()).unwrap();
        let mut fit = null_mut();
        assert_eq!(chip_layer_fit_load(fit_path.as_ptr(), &mut fit), chip_status::CHIP_STATUS_OK, "{}", last_error());
        let mut explainer = null_mut();
        let fits = [fit as *const chip_layer_fit];
        assert_eq!(chip_explainer_new(model, fits.as_ptr(), 1, &mut explainer), chip_status::CHIP_STATUS_OK, "{}", last_error());
        Handles { model, fit, explainer, fit_path, dir }
    })
}

/// A descriptor of the given kind and count with every pointer NULL.
fn no_images(kind: chip_images_kind, count: usize) -> chip_images {
    chip_images { struct_size: std::mem::size_of::<chip_images>(), kind, count, paths: std::ptr::null(), data: std::ptr::null(), lens: std::ptr::null(), tensor: std::ptr::null(), tensor_len: 0, sizes: std::ptr::null() }
}

/// A chip_images descriptor of `n` preprocessed images (`len` floats) with their original sizes or NULL.
fn tensor_images(data: *const f32, len: usize, n: usize, sizes: *const chip_size) -> chip_images {
    chip_images { tensor: data, tensor_len: len, sizes, ..no_images(CHIP_IMAGES_TENSOR, n) }
}

/// A chip_images descriptor of `n` image files.
fn files_images(paths: *const *const c_char, n: usize) -> chip_images {
    chip_images { paths, ..no_images(CHIP_IMAGES_FILES, n) }
}

/// A chip_images descriptor of `n` encoded images.
fn encoded_images(data: *const *const u8, lens: *const usize, n: usize) -> chip_images {
    chip_images { data, lens, ..no_images(CHIP_IMAGES_ENCODED, n) }
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(chip_last_error()) }.to_string_lossy().into_owned()
}

thread_local! {
    /// The statuses of the current call's C functions (the outcome that grows the corpus).
    static STATUSES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The status contract of every fallible call.
fn check(call: &str, s: chip_status) -> Result<bool, String> {
    let code = s as i32;
    STATUSES.with(|v| v.borrow_mut().push(code.clamp(0, 25) as u8));
    if s == chip_status::CHIP_STATUS_PANIC {
        return Err(format!("{call} panicked: {}", last_error()));
    }
    if !(0..=15).contains(&code) {
        return Err(format!("{call} returned unknown status {code}"));
    }
    let msg = last_error();
    if s == chip_status::CHIP_STATUS_OK {
        if !msg.is_empty() {
            return Err(format!("{call} succeeded but left the message '{msg}'"));
        }
        Ok(true)
    } else {
        if msg.is_empty() {
            return Err(format!("{call} failed with status {code} and no message"));
        }
        Ok(false)
    }
}

/// The out-handle contract: set on success, NULL on failure.
fn check_handle<T>(call: &str, ok: bool, h: *mut T, passed: bool) -> Result<(), String> {
    if passed && ok == h.is_null() {
        return Err(format!("{call}: status {} but the out-handle is {:?}", if ok { "OK" } else { "failed" }, h));
    }
    Ok(())
}

/// A pointer to `v` or NULL.
fn ptr_or_null<T>(null: bool, v: &mut T) -> *mut T {
    if null { null_mut() } else { v as *mut T }
}

/// A caller buffer: NULL with any length, or a real one of up to `max` elements with a length within it.
struct Buf<T> {
    v: Vec<T>,
    null: bool,
    len: usize,
}

impl<T: Copy + Default> Buf<T> {
    fn draw(t: &mut Tape, max: usize) -> Self {
        if t.null() {
            let len = if t.flag() { 0 } else { t.size() };
            Buf { v: Vec::new(), null: true, len }
        } else {
            let cap = t.below(max + 1);
            let v = vec![T::default(); cap];
            let len = t.len_within(cap);
            Buf { v, null: false, len }
        }
    }
    fn ptr(&mut self) -> *mut T {
        if self.null { null_mut() } else { self.v.as_mut_ptr() }
    }
}

unsafe extern "C" fn progress_cb(user: *mut c_void, _kind: chip_progress_kind, done: usize, _total: usize) -> c_int {
    // user points to the call count at which to cancel (0: never).
    let stop = *(user as *const usize);
    (stop != 0 && done >= stop) as c_int
}

fn explain_options(t: &mut Tape, ids: &mut Vec<usize>) -> chip_explain_options {
    let mut o = unsafe {
        let mut o: chip_explain_options = std::mem::zeroed();
        o.struct_size = std::mem::size_of::<chip_explain_options>();
        chip_explain_options_default(&mut o);
        o
    };
    if t.below(5) == 0 {
        o.struct_size = t.size();
    }
    o.top_k = if t.flag() { t.below(6) } else { t.size() };
    if t.below(3) == 0 {
        *ids = (0..t.below(5)).map(|_| if t.flag() { t.below(5) } else { t.size() }).collect();
        o.classes = if t.null() { null() } else { ids.as_ptr() };
        o.class_count = if o.classes.is_null() { t.size() } else { t.len_within(ids.len()) };
    }
    o.refined = t.byte() as c_int - 1;
    o.threshold = if t.flag() { 0.35 } else { t.f64() as f32 };
    o.original_size = t.below(3) as c_int;
    o
}

fn fit_options(t: &mut Tape, ids: &mut Vec<usize>, stop: &mut usize) -> chip_fit_options {
    let mut o = unsafe {
        let mut o: chip_fit_options = std::mem::zeroed();
        o.struct_size = std::mem::size_of::<chip_fit_options>();
        chip_fit_options_default(&mut o);
        o
    };
    if t.below(5) == 0 {
        o.struct_size = t.size();
    }
    // Gate counts are small or absurd: a legitimately large fit only takes long.
    o.gates = match t.below(3) {
        0 => t.below(17),
        1 => 8,
        _ => *[0usize, usize::MAX, usize::MAX / 2, 1 << 40, 1 << 62, isize::MAX as usize].get(t.below(6)).unwrap(),
    };
    o.gate_batch = if t.flag() { 1 + t.below(16) } else { t.size() };
    o.image_batch = if t.flag() { 1 + t.below(4) } else { t.size() };
    o.lambda_rel = t.f64();
    o.sigma2_rel = t.f64();
    o.seed = t.u64();
    o.max_iter = t.below(300);
    o.rho = if t.flag() { 0.0 } else { t.f64() };
    if t.below(3) == 0 {
        *ids = (0..t.below(4)).map(|_| if t.flag() { t.below(5) } else { t.size() }).collect();
        o.classes = if t.null() { null() } else { ids.as_ptr() };
        o.class_count = if o.classes.is_null() { t.size() } else { t.len_within(ids.len()) };
    }
    if t.flag() {
        *stop = t.below(4);
        o.progress = Some(progress_cb);
        o.user_data = stop as *mut usize as *mut c_void;
    }
    o
}

/// Images as the model wants them: `n` of 3×16×16 real photo values, in a buffer of up to 4 images.
fn tensor(t: &mut Tape) -> (Vec<f32>, bool, usize, usize) {
    let photo = &fixture().photo;
    let images = t.below(4);
    let mut v: Vec<f32> = (0..images).flat_map(|_| photo.iter().copied()).collect();
    if t.below(6) == 0 && !v.is_empty() {
        let i = t.below(v.len());
        v[i] = [f32::NAN, f32::INFINITY, -1e30][t.below(3)];
    }
    let null = t.below(6) == 0;
    let (len, n) = match t.below(4) {
        0 | 1 => (v.len(), images),
        2 => (t.len_within(v.len()), t.size()),
        _ => (if null { t.size() } else { t.len_within(v.len()) }, images),
    };
    (v, null, len, n)
}

/// Uses an explanation the way a caller would: every accessor with in- and out-of-range indices.
unsafe fn use_explanation(t: &mut Tape, e: *mut chip_explanation) -> Result<(), String> {
    let mut n = 0usize;
    check("chip_explanation_image_count", chip_explanation_image_count(e, &mut n))?;
    for _ in 0..3 {
        let image = if t.flag() { t.below(n + 1) } else { t.size() };
        let index = if t.flag() { t.below(3) } else { t.size() };
        let layer = match t.below(3) {
            0 => 0,
            1 => usize::MAX,
            _ => t.size(),
        };
        let mut size = chip_size::default();
        check("chip_explanation_image_size", chip_explanation_image_size(e, image, &mut size))?;
        let mut b = Buf::<f32>::draw(t, 8);
        let mut out_len = 0usize;
        check("chip_explanation_probabilities", chip_explanation_probabilities(e, image, b.ptr(), b.len, &mut out_len))?;
        let mut c = 0usize;
        check("chip_explanation_top_count", chip_explanation_top_count(e, image, &mut c))?;
        let (mut class, mut p) = (0usize, 0f32);
        check("chip_explanation_top", chip_explanation_top(e, image, index, &mut class, &mut p))?;
        check("chip_explanation_class_count", chip_explanation_class_count(e, image, &mut c))?;
        check("chip_explanation_class", chip_explanation_class(e, image, index, &mut class, &mut p))?;
        check("chip_explanation_layer_count", chip_explanation_layer_count(e, &mut c))?;
        let mut ms = chip_size::default();
        if check("chip_explanation_map_size", chip_explanation_map_size(e, image, index, layer, &mut ms))? {
            let (mw, mh) = (ms.width as usize, ms.height as usize);
            // A buffer of the map's size or a size query.
            let mut map = vec![0f32; if t.flag() { mw * mh } else { 0 }];
            let p = if map.is_empty() { null_mut() } else { map.as_mut_ptr() };
            let mut need = 0usize;
            if check("chip_explanation_map", chip_explanation_map(e, image, index, layer, p, map.len(), &mut need))? && need != mw * mh {
                return Err(format!("map of {mw}x{mh} reports {need} values"));
            }
        }
        let mut bx = chip_box { x1: 0, y1: 0, x2: 0, y2: 0 };
        let nb = t.null();
        check("chip_explanation_box", chip_explanation_box(e, image, index, layer, ptr_or_null(nb, &mut bx)))?;
    }
    Ok(())
}

pub struct CApi;

impl Target for CApi {
    fn name(&self) -> &'static str {
        "capi"
    }
    fn seeds(&self) -> Vec<Vec<u8>> {
        // One program per entry point, then a few mixed ones.
        let mut seeds: Vec<Vec<u8>> = (0..CALLS as u8).map(|c| vec![c, 2, 2, 2, 1, 0, 3, 1, 2, 0, 1, 1]).collect();
        seeds.push((0..64u8).collect());
        seeds.push(vec![1; 64]);
        seeds
    }
    fn max_len(&self) -> usize {
        512
    }
    fn run(&self, data: &[u8]) -> Result<String, String> {
        let h = handles();
        let mut t = Tape { data, pos: 0 };
        let mut calls = Vec::new();
        // A program of up to 4 calls.
        for _ in 0..4 {
            if t.done() {
                break;
            }
            let call = t.below(CALLS);
            STATUSES.with(|s| s.borrow_mut().clear());
            unsafe { one_call(&mut t, h, call)? };
            // Letters, not digits: the engine strips digits from outcomes.
            let statuses: String = STATUSES.with(|s| s.borrow().iter().map(|&c| (b'a' + c) as char).collect());
            calls.push(format!("{}:{statuses}", (b'A' + call as u8) as char));
        }
        Ok(format!("ok {}", calls.join(",")))
    }
}

const CALLS: usize = 20;

unsafe fn one_call(t: &mut Tape, h: &Handles, call: usize) -> Result<(), String> {
    let f = fixture();
    let model: *const chip_model = if t.below(8) == 0 { null() } else { h.model };
    let explainer: *const chip_explainer = if t.below(8) == 0 { null() } else { h.explainer };
    let fit: *const chip_layer_fit = if t.below(8) == 0 { null() } else { h.fit };
    match call {
        0 => {
            // Loading from bytes: the real model, a damaged copy, or random bytes; odd options.
            let mut bytes = match t.below(3) {
                0 => f.model_bytes.clone(),
                1 => {
                    let mut b = f.model_bytes.clone();
                    let i = t.below(b.len());
                    b.truncate(i.max(1));
                    b
                }
                _ => t.bytes(64),
            };
            let mut o: chip_model_options = std::mem::zeroed();
            o.struct_size = std::mem::size_of::<chip_model_options>();
            chip_model_options_default(&mut o);
            if t.below(4) == 0 {
                o.struct_size = t.size();
            }
            o.device = if t.flag() { CHIP_DEVICE_CPU } else { t.byte() as i32 - 2 };
            o.device_id = t.byte() as i32 - 1;
            o.threads = if t.flag() { t.below(3) } else { t.size() };
            let lib = CString::new("/nonexistent/libonnxruntime.so").unwrap();
            if t.below(6) == 0 {
                o.ort_lib = lib.as_ptr();
            }
            let (data, len) = match t.below(5) {
                0 => (null(), t.size()),
                1 => (bytes.as_mut_ptr() as *const u8, t.len_within(bytes.len())),
                _ => (bytes.as_ptr(), bytes.len()),
            };
            let opts = if t.null() { null() } else { &o as *const _ };
            let mut out = null_mut();
            let pass = !t.null();
            let ok = check("chip_model_load_bytes", chip_model_load_bytes(data, len, opts, if pass { &mut out } else { null_mut() }))?;
            check_handle("chip_model_load_bytes", ok, out, pass)?;
            chip_model_free(out);
        }
        1 => {
            let mut c = 0usize;
            let n = t.null();
            check("chip_model_class_count", chip_model_class_count(model, ptr_or_null(n, &mut c)))?;
            let mut size = chip_size::default();
            let a = t.null();
            check("chip_model_input_size", chip_model_input_size(model, ptr_or_null(a, &mut size)))?;
        }
        2 => {
            let class = if t.flag() { t.below(6) } else { t.size() };
            let mut b = Buf::<c_char>::draw(t, 16);
            let mut need = 0usize;
            let nn = t.null();
            check("chip_model_class_label", chip_model_class_label(model, class, b.ptr(), b.len, ptr_or_null(nn, &mut need)))?;
        }
        3 => {
            let mut c = 0usize;
            let n = t.null();
            check("chip_model_layer_count", chip_model_layer_count(model, ptr_or_null(n, &mut c)))?;
            let index = if t.flag() { t.below(4) } else { t.size() };
            let mut b = Buf::<c_char>::draw(t, 16);
            let (mut need, mut k, mut hh, mut w) = (0usize, 0usize, 0usize, 0usize);
            let nulls: Vec<bool> = (0..4).map(|_| t.null()).collect();
            check(
                "chip_model_layer_info",
                chip_model_layer_info(
                    model,
                    index,
                    b.ptr(),
                    b.len,
                    ptr_or_null(nulls[0], &mut need),
                    ptr_or_null(nulls[1], &mut k),
                    ptr_or_null(nulls[2], &mut hh),
                    ptr_or_null(nulls[3], &mut w),
                ),
            )?;
        }
        4 => {
            // Preprocessing encoded bytes: a real photo, a cut one, or random bytes.
            let photo = std::fs::read(root().join("tests/data/fuzz/seeds/chelsea.jpg")).unwrap();
            let mut bytes = match t.below(3) {
                0 => photo,
                1 => photo[..t.below(photo.len())].to_vec(),
                _ => t.bytes(32),
            };
            let nul = t.below(5) == 0;
            let dlen = if nul { t.size() } else { t.len_within(bytes.len()) };
            let data = if nul { null() } else { bytes.as_mut_ptr() as *const u8 };
            let mut b = Buf::<f32>::draw(t, 3 * 16 * 16);
            let (mut need, mut size) = (0usize, chip_size::default());
            let nulls: Vec<bool> = (0..2).map(|_| t.null()).collect();
            check(
                "chip_model_preprocess_encoded",
                chip_model_preprocess_encoded(
                    model,
                    data,
                    dlen,
                    b.ptr(),
                    b.len,
                    ptr_or_null(nulls[0], &mut need),
                    ptr_or_null(nulls[1], &mut size),
                ),
            )?;
        }
        5 => {
            let (v, nul, len, n) = tensor(t);
            let mut probs = Buf::<f32>::draw(t, 16);
            let mut need = 0usize;
            let nn = t.null();
            check(
                "chip_model_predict",
                chip_model_predict(model, if nul { null() } else { v.as_ptr() }, len, n, probs.ptr(), probs.len, ptr_or_null(nn, &mut need)),
            )?;
        }
        6 => {
            // Fitting on a tensor with odd options (small gate counts keep a valid fit quick).
            let (v, nul, len, n) = tensor(t);
            let layer = t.cstring(&["feat", "feat", "conv", "", "logits"]);
            let (mut ids, mut stop) = (Vec::new(), 0usize);
            let o = fit_options(t, &mut ids, &mut stop);
            let opts = if t.below(6) == 0 { null() } else { &o as *const _ };
            let lp = if t.below(8) == 0 { null() } else { layer.as_ptr() };
            let mut out = null_mut();
            let pass = !t.null();
            let ok = check(
                "chip_fit_layer",
                chip_fit_layer(model, lp, &tensor_images(if nul { null() } else { v.as_ptr() }, len, n, null()), opts, if pass { &mut out } else { null_mut() }),
            )?;
            check_handle("chip_fit_layer", ok, out, pass)?;
            chip_layer_fit_free(out);
        }
        7 => {
            // Fitting on files: real photos, missing files, NULL entries, names that are not UTF-8.
            let real: Vec<CString> = f.photo_paths.iter().map(|p| CString::new(p.to_str().unwrap()).unwrap()).collect();
            let others = [CString::new("/nonexistent.png").unwrap(), CString::new(vec![0xffu8, b'a']).unwrap()];
            let count = t.below(4);
            let ptrs: Vec<*const c_char> = (0..count)
                .map(|_| match t.below(6) {
                    0 => null(),
                    1 => others[t.below(2)].as_ptr(),
                    _ => real[t.below(real.len())].as_ptr(),
                })
                .collect();
            let (p, n) = if t.below(6) == 0 { (null(), t.size()) } else { (ptrs.as_ptr(), t.len_within(ptrs.len())) };
            let (mut ids, mut stop) = (Vec::new(), 0usize);
            let o = fit_options(t, &mut ids, &mut stop);
            let layer = CString::new("feat").unwrap();
            let mut out = null_mut();
            let ok = check("chip_fit_layer", chip_fit_layer(model, layer.as_ptr(), &files_images(p, n), &o, &mut out))?;
            check_handle("chip_fit_layer", ok, out, true)?;
            chip_layer_fit_free(out);
        }
        8 => {
            // Saving into the scratch folder only: a plain name, a folder, a missing folder, not UTF-8.
            let dir = h.dir.to_str().unwrap();
            let choices = [format!("{dir}/saved.chip"), dir.to_string(), format!("{dir}/missing/x.chip"), String::new()];
            let path = CString::new(choices[t.below(choices.len())].clone()).unwrap();
            let bad = CString::new(vec![0xffu8]).unwrap();
            let p = match t.below(6) {
                0 => null(),
                1 => bad.as_ptr(),
                _ => path.as_ptr(),
            };
            check("chip_layer_fit_save", chip_layer_fit_save(fit, p))?;
        }
        9 => {
            // Loading: the real fit, a damaged copy, random bytes, a folder, a missing file.
            let scratch = h.dir.join("load.chip");
            let mut bytes = f.fit_bytes.clone();
            match t.below(3) {
                0 => {}
                1 => {
                    let i = t.below(bytes.len());
                    bytes[i] ^= 1 << t.below(8);
                }
                _ => bytes = t.bytes(64),
            }
            std::fs::write(&scratch, &bytes).unwrap();
            let paths = [CString::new(scratch.to_str().unwrap()).unwrap(), h.fit_path.clone(), CString::new(h.dir.to_str().unwrap()).unwrap()];
            let p = if t.below(6) == 0 { null() } else { paths[t.below(3)].as_ptr() };
            let mut out = null_mut();
            let pass = !t.null();
            let ok = check("chip_layer_fit_load", chip_layer_fit_load(p, if pass { &mut out } else { null_mut() }))?;
            check_handle("chip_layer_fit_load", ok, out, pass)?;
            chip_layer_fit_free(out);
        }
        10 => {
            let mut b = Buf::<c_char>::draw(t, 16);
            let mut need = 0usize;
            let nn = t.null();
            check("chip_layer_fit_layer_name", chip_layer_fit_layer_name(fit, b.ptr(), b.len, ptr_or_null(nn, &mut need)))?;
            let mut c = 0usize;
            let n = t.null();
            check("chip_layer_fit_channel_count", chip_layer_fit_channel_count(fit, ptr_or_null(n, &mut c)))?;
            check("chip_layer_fit_class_count", chip_layer_fit_class_count(fit, ptr_or_null(n, &mut c)))?;
            let class = if t.flag() { t.below(5) } else { t.size() };
            let mut w = Buf::<f32>::draw(t, 12);
            check("chip_layer_fit_weights_row", chip_layer_fit_weights_row(fit, class, w.ptr(), w.len, ptr_or_null(nn, &mut need)))?;
        }
        11 => {
            let fits: Vec<*const chip_layer_fit> = (0..t.below(4)).map(|_| if t.below(4) == 0 { null() } else { h.fit as *const _ }).collect();
            let (p, n) = if t.below(5) == 0 { (null(), t.size()) } else { (fits.as_ptr(), t.len_within(fits.len())) };
            let mut out = null_mut();
            let pass = !t.null();
            let ok = check("chip_explainer_new", chip_explainer_new(model, p, n, if pass { &mut out } else { null_mut() }))?;
            check_handle("chip_explainer_new", ok, out, pass)?;
            chip_explainer_free(out);
        }
        12 => {
            let mut c = 0usize;
            let n = t.null();
            check("chip_explainer_layer_count", chip_explainer_layer_count(explainer, ptr_or_null(n, &mut c)))?;
            let index = if t.flag() { t.below(2) } else { t.size() };
            let mut b = Buf::<c_char>::draw(t, 16);
            let mut need = 0usize;
            check("chip_explainer_layer_name", chip_explainer_layer_name(explainer, index, b.ptr(), b.len, ptr_or_null(n, &mut need)))?;
        }
        13 => {
            // Explaining a tensor with original sizes that are small, zero, or past the limit
            // (sizes at the limit are valid and only slow; the C API tests cover them).
            let (v, nul, len, n) = tensor(t);
            let mut side = || match t.below(4) {
                0 | 1 => 1 + t.below(64) as u32,
                2 => [0u32, 16385, 100_000, u32::MAX, 1 << 31][t.below(5)],
                _ => t.byte() as u32,
            };
            let sizes: Vec<chip_size> = (0..n.min(4)).map(|_| chip_size { width: side(), height: side() }).collect();
            // The sizes array must hold n sizes when given; a shorter one is passed as NULL.
            let sp = if sizes.len() == n && !t.null() { sizes.as_ptr() } else { null() };
            let mut ids = Vec::new();
            let o = explain_options(t, &mut ids);
            let opts = if t.below(6) == 0 { null() } else { &o as *const _ };
            let mut out = null_mut();
            let pass = !t.null();
            let ok = check(
                "chip_explain",
                chip_explain(explainer, &tensor_images(if nul { null() } else { v.as_ptr() }, len, n, sp), opts, if pass { &mut out } else { null_mut() }),
            )?;
            check_handle("chip_explain", ok, out, pass)?;
            if ok && pass {
                let r = use_explanation(t, out);
                chip_explanation_free(out);
                r?;
            }
        }
        14 => {
            // Explaining encoded images: real photos, cut ones, random bytes, NULL entries.
            let photo = std::fs::read(root().join("tests/data/fuzz/seeds/chelsea.png")).unwrap();
            let count = t.below(3);
            let bufs: Vec<Vec<u8>> = (0..count)
                .map(|_| match t.below(3) {
                    0 => photo.clone(),
                    1 => photo[..t.below(photo.len())].to_vec(),
                    _ => t.bytes(24),
                })
                .collect();
            let ptrs: Vec<*const u8> = bufs.iter().map(|b| if t.below(6) == 0 { null() } else { b.as_ptr() }).collect();
            let lens: Vec<usize> = bufs.iter().zip(&ptrs).map(|(b, p)| if p.is_null() { t.size() } else { t.len_within(b.len()) }).collect();
            let n = if t.below(5) == 0 { t.size() } else { count };
            let (ip, lp) = if n <= count {
                (if t.below(6) == 0 { null() } else { ptrs.as_ptr() }, if t.below(6) == 0 { null() } else { lens.as_ptr() })
            } else {
                // More images than pointers: only NULL arrays may go with such an n.
                (null(), null())
            };
            let mut ids = Vec::new();
            let o = explain_options(t, &mut ids);
            let mut out = null_mut();
            let ok = check("chip_explain", chip_explain(explainer, &encoded_images(ip, lp, n), &o, &mut out))?;
            check_handle("chip_explain", ok, out, true)?;
            if ok {
                let r = use_explanation(t, out);
                chip_explanation_free(out);
                r?;
            }
        }
        15 => {
            let real = CString::new(root().join("tests/data/fuzz/seeds/chelsea.bmp").to_str().unwrap()).unwrap();
            let others = [CString::new("/nonexistent.jpg").unwrap(), CString::new(vec![0xfeu8]).unwrap(), CString::new(h.dir.to_str().unwrap()).unwrap()];
            let count = t.below(3);
            let ptrs: Vec<*const c_char> = (0..count)
                .map(|_| match t.below(5) {
                    0 => null(),
                    1 => others[t.below(3)].as_ptr(),
                    _ => real.as_ptr(),
                })
                .collect();
            let (p, n) = if t.below(5) == 0 { (null(), t.size()) } else { (ptrs.as_ptr(), t.len_within(ptrs.len())) };
            let mut ids = Vec::new();
            let o = explain_options(t, &mut ids);
            let mut out = null_mut();
            let ok = check("chip_explain", chip_explain(explainer, &files_images(p, n), &o, &mut out))?;
            check_handle("chip_explain", ok, out, true)?;
            if ok {
                let r = use_explanation(t, out);
                chip_explanation_free(out);
                r?;
            }
        }
        16 => {
            // Localizing a caller map: consistent sizes, sizes whose product overflows, NaN values.
            let (w, hh) = (t.below(9), t.below(9));
            let mut map: Vec<f32> = (0..w * hh).map(|_| [0.0, 1.0, -1.0, f32::NAN, f32::INFINITY, 0.5][t.below(6)]).collect();
            let (p, w, hh) = match t.below(5) {
                0 => (null(), t.size(), t.size()),
                1 => (map.as_mut_ptr() as *const f32, usize::MAX, 2 + t.below(8)),
                _ => (map.as_ptr(), w, hh),
            };
            let threshold = t.f64() as f32;
            let mut bx = chip_box { x1: 0, y1: 0, x2: 0, y2: 0 };
            let a = t.null();
            check("chip_localize", chip_localize(p, w, hh, threshold, ptr_or_null(a, &mut bx)))?;
        }
        17 => {
            // Corners of any sign, no box (-1) among them.
            let mut corner = || (t.u64() as u32 >> (t.byte() % 32)) as i32 - 1;
            let mut a = chip_box { x1: corner(), y1: corner(), x2: corner(), y2: corner() };
            let mut b = chip_box { x1: corner(), y1: corner(), x2: corner(), y2: corner() };
            let mut out = 0f64;
            let nulls: Vec<bool> = (0..3).map(|_| t.null()).collect();
            if check("chip_iou", chip_iou(ptr_or_null(nulls[0], &mut a), ptr_or_null(nulls[1], &mut b), ptr_or_null(nulls[2], &mut out)))?
                && !nulls[2]
                && !(0.0..=1.0).contains(&out)
            {
                return Err(format!("chip_iou of {a:?} and {b:?} is {out}"));
            }
        }
        18 => {
            let status = t.u64() as i32 >> (t.byte() % 32);
            let s = chip_status_str(status);
            if s.is_null() || CStr::from_ptr(s).to_bytes().is_empty() {
                return Err(format!("chip_status_str({status}) is NULL or empty"));
            }
            let _ = CStr::from_ptr(chip_version());
            let _ = chip_abi_version();
        }
        _ => {
            let n = t.null();
            let mut m: chip_model_options = std::mem::zeroed();
            m.struct_size = std::mem::size_of::<chip_model_options>();
            let mut fo: chip_fit_options = std::mem::zeroed();
            fo.struct_size = std::mem::size_of::<chip_fit_options>();
            let mut eo: chip_explain_options = std::mem::zeroed();
            eo.struct_size = std::mem::size_of::<chip_explain_options>();
            check("chip_model_options_default", chip_model_options_default(ptr_or_null(n, &mut m)))?;
            check("chip_fit_options_default", chip_fit_options_default(ptr_or_null(n, &mut fo)))?;
            check("chip_explain_options_default", chip_explain_options_default(ptr_or_null(n, &mut eo)))?;
        }
    }
    Ok(())
}
