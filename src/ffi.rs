//! The C ABI: a thin layer that only converts and checks. See include/chip.h for the conventions
//! (status codes, thread-local last error, caller buffers with size queries, options structs that
//! begin with their own size, thread safety per handle type).
//!
//! Every exported function runs inside `guard`, which catches panics (CHIP_STATUS_PANIC) and records
//! the last error of the calling thread. Handles are `Box`es handed out with `into_raw`.
#![allow(non_camel_case_types)]
// The safety contract of every exported function is the one chip.h states for all of them (valid
// pointers or NULL, buffers of the given length, handles not freed while in use).
#![allow(clippy::missing_safety_doc)]

use crate::error::Error;
use crate::explain::{ClassSelect, ExplainOptions, Explainer, ImageExplanation, Map};
use crate::fit::{FitOptions, Images, Progress};
use crate::fitfile::LayerFit;
use crate::localize::BBox;
use crate::model::Model;
use crate::objective::{Objective, Target};
use crate::runtime::{Device, RuntimeOptions};
use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

/// Version of the C ABI. Raised on any incompatible change; compare with chip_abi_version().
pub const CHIP_ABI_VERSION: u32 = 1;

/// Result of every fallible call. CHIP_STATUS_OK is 0; chip_last_error() describes any other.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chip_status {
    CHIP_STATUS_OK = 0,
    /// A value out of range or inconsistent with the others (sizes, indices, options).
    CHIP_STATUS_INVALID_ARGUMENT = 1,
    /// A required pointer was NULL.
    CHIP_STATUS_NULL_POINTER = 2,
    /// A string (path, layer name) is not valid UTF-8.
    CHIP_STATUS_INVALID_UTF8 = 3,
    /// A caller buffer is too small; the required length was written to the `out_len` argument.
    CHIP_STATUS_BUFFER_TOO_SMALL = 4,
    /// Reading or writing a file failed.
    CHIP_STATUS_IO = 5,
    /// The ONNX Runtime shared library could not be found or loaded.
    CHIP_STATUS_ORT_NOT_FOUND = 6,
    /// ONNX Runtime reported an error.
    CHIP_STATUS_ORT = 7,
    /// The model is not a usable ONNX image classifier.
    CHIP_STATUS_MODEL = 8,
    /// The named layer is not a candidate layer of the model.
    CHIP_STATUS_UNKNOWN_LAYER = 9,
    /// An image could not be read, decoded or has an unusable size.
    CHIP_STATUS_IMAGE = 10,
    /// A fit file is truncated, altered or malformed.
    CHIP_STATUS_FIT_FILE = 11,
    /// A fit file was written by a newer format version.
    CHIP_STATUS_FIT_VERSION = 12,
    /// A fit belongs to another model, layer or shape.
    CHIP_STATUS_FIT_MISMATCH = 13,
    /// Input or intermediate values are NaN or infinite.
    CHIP_STATUS_NON_FINITE = 14,
    /// The progress callback asked to stop.
    CHIP_STATUS_CANCELLED = 15,
    /// An internal error (a bug in libchip) was caught at the boundary.
    CHIP_STATUS_PANIC = 16,
}

use chip_status::*;

/// Where a model runs: one of the CHIP_DEVICE_* values.
pub type chip_device = i32;
/// The CPU execution provider.
pub const CHIP_DEVICE_CPU: chip_device = 0;
/// The CUDA execution provider (needs an ONNX Runtime build with CUDA); `device_id` picks the GPU.
pub const CHIP_DEVICE_CUDA: chip_device = 1;

/// Which stage of a fit a progress report is about.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chip_progress_kind {
    /// Images through the layer's prefix.
    CHIP_PROGRESS_IMAGES = 0,
    /// Gated suffix runs.
    CHIP_PROGRESS_SUFFIX_RUNS = 1,
    /// Classes solved.
    CHIP_PROGRESS_CLASSES = 2,
}

/// Progress of a fit. Return 0 to continue, nonzero to cancel: the fit then fails with
/// CHIP_STATUS_CANCELLED and produces nothing. Calls may come from threads other than the caller's,
/// but never two at once. The callback must not unwind (C++ exceptions, longjmp) into libchip.
pub type chip_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, kind: chip_progress_kind, done: usize, total: usize) -> c_int>;

/// Options of chip_load_model and chip_load_model_bytes. Fill with chip_model_options_default().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_model_options {
    /// sizeof(chip_model_options); set by chip_model_options_default().
    pub struct_size: usize,
    /// CHIP_DEVICE_CPU (default) or CHIP_DEVICE_CUDA.
    pub device: chip_device,
    /// GPU index for CHIP_DEVICE_CUDA (default 0).
    pub device_id: i32,
    /// Intra-op threads per session, at most 1024; 0 (default) lets ONNX Runtime choose.
    pub threads: usize,
    /// Path of libonnxruntime.so, or NULL (default) to search: CHIP_ORT_LIB, next to libchip, next to
    /// the executable. ONNX Runtime is loaded once per process; later values are ignored.
    pub ort_lib: *const c_char,
}

/// Options of chip_fit_layer, chip_collect_stats and chip_solve. Fill with chip_fit_options_default().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_fit_options {
    /// sizeof(chip_fit_options); set by chip_fit_options_default().
    pub struct_size: usize,
    /// Number of random gate vectors (default 256).
    pub gates: usize,
    /// Sparsity weight lambda relative to the smallest lambda that zeroes a class (default 0.001);
    /// must be in [0, 1).
    pub lambda_rel: f64,
    /// sigma^2 of the gate proximity, relative to the number of channels (default 0.5); refused when
    /// so small that exp(-1 / (sigma2_rel * channels)) underflows.
    pub sigma2_rel: f64,
    /// Seed of the gate generator (default 0).
    pub seed: u64,
    /// Gates per suffix run (default 64).
    pub gate_batch: usize,
    /// Images per prefix run (default 8).
    pub image_batch: usize,
    /// ADMM iteration limit per class (default 2000).
    pub max_iter: usize,
    /// ADMM penalty rho; 0 (default) picks one from the scale of the problem.
    pub rho: f64,
    /// Class ids to solve (other rows of the weights stay zero), or NULL with class_count 0 for all.
    pub classes: *const usize,
    pub class_count: usize,
    /// Progress callback or NULL (default).
    pub progress: chip_progress_callback,
    /// Passed unchanged to `progress`.
    pub user_data: *mut c_void,
    /// A chip_target: what each class's linear model regresses (default
    /// CHIP_TARGET_LOG_PROBABILITY). An int, so that a wrong value is an error rather than undefined.
    pub target: c_int,
    /// Nonzero (default): an unpenalised per-class intercept.
    pub intercept: c_int,
    /// Nonzero: weights constrained to be >= 0 (default 0).
    pub nonneg: c_int,
    /// Augmented views (random resized crops and flips) per image (default 0).
    pub augment: usize,
    /// 2x2 mosaics per image, tiled from four of the fit's images (default 2).
    pub mosaics: usize,
}

/// The regression target of a fit (see chip_fit_options). The CHIP paper's objective is
/// CHIP_TARGET_PROBABILITY without intercept.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chip_target {
    CHIP_TARGET_PROBABILITY = 0,
    CHIP_TARGET_LOGIT = 1,
    CHIP_TARGET_LOG_PROBABILITY = 2,
}

/// Options of chip_explain. Fill with chip_explain_options_default().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_explain_options {
    /// sizeof(chip_explain_options); set by chip_explain_options_default().
    pub struct_size: usize,
    /// Explain the top_k most probable classes (default 1); used when class_count is 0.
    pub top_k: usize,
    /// Explain these class ids instead (class_count > 0).
    pub classes: *const usize,
    pub class_count: usize,
    /// Nonzero: also compute Refined CHIP, the product of the first and last fitted layer's maps
    /// (default 0). Read it with layer index CHIP_REFINED.
    pub refined: c_int,
    /// Localization threshold relative to a map's maximum (default 0.35, chosen on the development boxes).
    pub threshold: f32,
    /// Nonzero (default): maps at the original image size; 0: at the model's input size.
    pub original_size: c_int,
}

/// Which kind of images a chip_images descriptor holds: one of the CHIP_IMAGES_* values. 0 is no
/// kind, so a zeroed descriptor is refused.
pub type chip_images_kind = c_int;
/// `count` image files: `paths` holds `count` UTF-8 paths.
pub const CHIP_IMAGES_FILES: chip_images_kind = 1;
/// `count` encoded images in memory (PNG, JPEG, BMP, TIFF, WebP): image i is `lens[i]` bytes at `data[i]`.
pub const CHIP_IMAGES_ENCODED: chip_images_kind = 2;
/// `count` preprocessed images: `tensor` holds `tensor_len` floats, count x 3 x H x W (NCHW) at the
/// model's input size (see chip_model_preprocess_file); `sizes` holds count (width, height) pairs,
/// the original sizes the maps of chip_explain are scaled to (each side 1..=16384), or is NULL for
/// the input size. Fits ignore `sizes`.
pub const CHIP_IMAGES_TENSOR: chip_images_kind = 3;

/// The images of one chip_fit_layer, chip_collect_stats or chip_explain call. Set `struct_size` to
/// sizeof(chip_images), `kind` and `count`, and the fields of that kind; the others are not read.
/// Nothing is copied beyond the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_images {
    /// sizeof(chip_images).
    pub struct_size: usize,
    /// A CHIP_IMAGES_* value.
    pub kind: chip_images_kind,
    /// The number of images (at least 1).
    pub count: usize,
    /// CHIP_IMAGES_FILES: `count` paths.
    pub paths: *const *const c_char,
    /// CHIP_IMAGES_ENCODED: `count` buffers and their lengths in bytes.
    pub data: *const *const u8,
    pub lens: *const usize,
    /// CHIP_IMAGES_TENSOR: the floats, their number, and the original sizes or NULL.
    pub tensor: *const f32,
    pub tensor_len: usize,
    pub sizes: *const u32,
}

/// Options of chip_export. Fill with chip_export_options_default().
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_export_options {
    /// sizeof(chip_export_options); set by chip_export_options_default().
    pub struct_size: usize,
    /// Nonzero: add the int64 input `chip_target_class` [N]; a value >= 0 explains that class instead
    /// of the top-1 (default 0).
    pub class_input: c_int,
}

/// A bounding box with inclusive pixel corners, x to the right, y down.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct chip_box {
    pub x1: u32,
    pub y1: u32,
    pub x2: u32,
    pub y2: u32,
}

/// A loaded classifier. Thread safety: all functions taking a `const chip_model*` may be called from
/// many threads at once; chip_model_free must not race with any other use. Explainers keep their
/// own reference, so the model may be freed while explainers made from it live on.
pub struct chip_model {
    inner: Arc<Model>,
}

/// Statistics of a fit collected on some images (a shard): additive, so the statistics of several
/// shards merge into those of all their images, and solving them gives the fit. They remember the
/// model, layer, gates, seed, target, views and mosaics they were collected with; merging or solving
/// with any of these different fails with CHIP_STATUS_FIT_MISMATCH. Not thread-safe while merged into;
/// otherwise may be read from many threads at once.
pub struct chip_stats {
    inner: crate::stats::Stats,
}

/// One fitted layer (the class-by-channel importance weights). Immutable: may be read from many
/// threads at once; chip_layer_fit_free must not race with any other use. Explainers copy it.
pub struct chip_layer_fit {
    inner: LayerFit,
}

/// A model with fitted layers, ready to explain images. chip_explain may be called on one explainer
/// from many threads at once; chip_explainer_free must not race with any other use.
pub struct chip_explainer {
    inner: Explainer,
}

/// The result of one chip_explain call: per image the probabilities, top classes and, per explained
/// class, one map per fitted layer (plus the refined map when asked) with its box. Immutable: may be
/// read from many threads at once; chip_explanation_free must not race with any other use.
pub struct chip_explanation {
    images: Vec<ImageExplanation>,
    layers: usize,
}

// ---------------------------------------------------------------------------------------------
// Errors, the panic boundary, pointers and buffers.

struct FfiError {
    status: chip_status,
    msg: String,
}

type FfiResult<T = ()> = Result<T, FfiError>;

fn fail<T>(status: chip_status, msg: impl Into<String>) -> FfiResult<T> {
    Err(FfiError { status, msg: msg.into() })
}

fn status_of(e: &Error) -> chip_status {
    match e {
        Error::InvalidArgument(_) => CHIP_STATUS_INVALID_ARGUMENT,
        Error::Io { .. } => CHIP_STATUS_IO,
        Error::OrtNotFound { .. } => CHIP_STATUS_ORT_NOT_FOUND,
        Error::Ort(_) => CHIP_STATUS_ORT,
        Error::Model(_) => CHIP_STATUS_MODEL,
        Error::UnknownLayer { .. } => CHIP_STATUS_UNKNOWN_LAYER,
        Error::Image { .. } => CHIP_STATUS_IMAGE,
        Error::FitFile { .. } => CHIP_STATUS_FIT_FILE,
        Error::FitVersion { .. } => CHIP_STATUS_FIT_VERSION,
        Error::FitMismatch(_) => CHIP_STATUS_FIT_MISMATCH,
        Error::NonFinite(_) => CHIP_STATUS_NON_FINITE,
        Error::Cancelled => CHIP_STATUS_CANCELLED,
    }
}

impl From<Error> for FfiError {
    fn from(e: Error) -> Self {
        FfiError { status: status_of(&e), msg: e.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs one exported call: clears the thread's last error, catches panics, records failures.
fn guard(f: impl FnOnce() -> FfiResult) -> chip_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CHIP_STATUS_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.status
        }
        Err(payload) => {
            set_last_error(&format!("internal error (panic): {}", panic_message(&*payload)));
            CHIP_STATUS_PANIC
        }
    }
}

/// For the `_free` functions, which return nothing: a panic there is swallowed.
/// Drops a handle made by `Box::into_raw`; NULL is ignored and a panic in a destructor stays here.
unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(p))));
    }
}

unsafe fn deref<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    match p.as_ref() {
        Some(r) => Ok(r),
        None => fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL")),
    }
}

unsafe fn deref_mut<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    match p.as_mut() {
        Some(r) => Ok(r),
        None => fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL")),
    }
}

/// Writes through an optional output pointer.
unsafe fn put<T>(p: *mut T, v: T) {
    if let Some(r) = p.as_mut() {
        *r = v;
    }
}

unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL"));
    }
    match CStr::from_ptr(p).to_str() {
        Ok(s) => Ok(s),
        Err(e) => fail(
            CHIP_STATUS_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        ),
    }
}

/// A caller array of `len` elements; NULL is accepted only for len 0.
unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL but its length is {len}"));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("{name}: length {len} is too large"));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// An array of `count` UTF-8 C strings as paths.
unsafe fn paths_arg(p: *const *const c_char, count: usize, name: &str) -> FfiResult<Vec<PathBuf>> {
    slice_arg(p, count, name)?
        .iter()
        .enumerate()
        .map(|(i, &s)| str_arg(s, &format!("{name}[{i}]")).map(PathBuf::from))
        .collect()
}

/// Copies `src` into a caller buffer of `len` elements. `*out_len` (when not NULL) receives the
/// required length. `buf == NULL && len == 0` is a size query (OK); a shorter buffer gives
/// CHIP_STATUS_BUFFER_TOO_SMALL and is left unchanged.
unsafe fn write_buf<T: Copy>(src: &[T], buf: *mut T, len: usize, out_len: *mut usize, name: &str) -> FfiResult {
    put(out_len, src.len());
    if buf.is_null() && len == 0 {
        return Ok(());
    }
    if buf.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} buffer is NULL but its length is {len}"));
    }
    if len < src.len() {
        return fail(
            CHIP_STATUS_BUFFER_TOO_SMALL,
            format!("{name} buffer holds {len} elements, {} needed", src.len()),
        );
    }
    std::ptr::copy_nonoverlapping(src.as_ptr(), buf, src.len());
    Ok(())
}

/// A string as NUL-terminated UTF-8 into a caller buffer; the required length counts the NUL.
unsafe fn write_str(s: &str, buf: *mut c_char, len: usize, out_len: *mut usize, name: &str) -> FfiResult {
    let mut bytes: Vec<c_char> = s.bytes().map(|b| b as c_char).collect();
    bytes.push(0);
    write_buf(&bytes, buf, len, out_len, name)
}

/// Options structs begin with their size so fields can be appended: a caller compiled against an
/// older header passes a smaller size and gets defaults for the newer fields.
unsafe fn read_options<T: Copy>(p: *const T, default: T, min_size: usize, name: &str) -> FfiResult<T> {
    if p.is_null() {
        return Ok(default);
    }
    let size = std::ptr::read_unaligned(p as *const usize);
    let max = std::mem::size_of::<T>();
    if size < min_size || size > max {
        return fail(
            CHIP_STATUS_INVALID_ARGUMENT,
            format!(
                "{name}.struct_size is {size}, expected {max}; initialise it with {name}_default()"
            ),
        );
    }
    let mut out = default;
    std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, size);
    Ok(out)
}

unsafe fn out_handle<T>(out: *mut *mut T, name: &str) -> FfiResult<&'static mut *mut T> {
    let o = deref_mut(out, name)?;
    *o = std::ptr::null_mut();
    Ok(o)
}

fn flag(v: c_int) -> bool {
    v != 0
}

// ---------------------------------------------------------------------------------------------
// Version, status, last error.

/// The library version, "MAJOR.MINOR.PATCH" (equals CHIP_VERSION_STRING of the header it was built with).
#[no_mangle]
pub extern "C" fn chip_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The ABI version of the library; a program should check it equals CHIP_ABI_VERSION.
#[no_mangle]
pub extern "C" fn chip_abi_version() -> u32 {
    CHIP_ABI_VERSION
}

/// A static description of a status code ("unknown status" for values that are not a chip_status).
#[no_mangle]
pub extern "C" fn chip_status_str(status: i32) -> *const c_char {
    let s: &'static str = match status {
        0 => "ok\0",
        1 => "invalid argument\0",
        2 => "null pointer\0",
        3 => "invalid UTF-8\0",
        4 => "buffer too small\0",
        5 => "I/O error\0",
        6 => "ONNX Runtime not found\0",
        7 => "ONNX Runtime error\0",
        8 => "invalid model\0",
        9 => "unknown layer\0",
        10 => "image error\0",
        11 => "invalid fit file\0",
        12 => "unsupported fit file version\0",
        13 => "fit mismatch\0",
        14 => "non-finite value\0",
        15 => "cancelled\0",
        16 => "internal error (panic)\0",
        _ => "unknown status\0",
    };
    s.as_ptr() as *const c_char
}

/// The message of the last failed call on the calling thread ("" after a successful call). Never NULL.
/// The pointer stays valid until the next libchip call on the same thread, except chip_version,
/// chip_abi_version, chip_status_str and chip_last_error, which leave it alone.
#[no_mangle]
pub extern "C" fn chip_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

// ---------------------------------------------------------------------------------------------
// Options.

fn model_options_default() -> chip_model_options {
    let d = RuntimeOptions::default();
    chip_model_options {
        struct_size: std::mem::size_of::<chip_model_options>(),
        device: CHIP_DEVICE_CPU,
        device_id: 0,
        threads: d.threads,
        ort_lib: std::ptr::null(),
    }
}

fn fit_options_default() -> chip_fit_options {
    let d = FitOptions::default();
    chip_fit_options {
        struct_size: std::mem::size_of::<chip_fit_options>(),
        gates: d.gates,
        lambda_rel: d.admm.lambda_rel,
        sigma2_rel: d.sigma2_rel,
        seed: d.seed,
        gate_batch: d.gate_batch,
        image_batch: d.image_batch,
        max_iter: d.admm.max_iter,
        rho: d.admm.rho.unwrap_or(0.0),
        classes: std::ptr::null(),
        class_count: 0,
        progress: None,
        user_data: std::ptr::null_mut(),
        target: match d.objective.target {
            Target::Probability => chip_target::CHIP_TARGET_PROBABILITY,
            Target::Logit => chip_target::CHIP_TARGET_LOGIT,
            Target::LogProbability => chip_target::CHIP_TARGET_LOG_PROBABILITY,
        } as c_int,
        intercept: c_int::from(d.objective.intercept),
        nonneg: c_int::from(d.objective.nonneg),
        augment: d.augment,
        mosaics: d.mosaics,
    }
}

fn explain_options_default() -> chip_explain_options {
    let d = ExplainOptions::default();
    let top_k = match d.classes {
        ClassSelect::Top(k) => k,
        ClassSelect::Ids(_) => 1,
    };
    chip_explain_options {
        struct_size: std::mem::size_of::<chip_explain_options>(),
        top_k,
        classes: std::ptr::null(),
        class_count: 0,
        refined: d.refined as c_int,
        threshold: d.threshold,
        original_size: d.original_size as c_int,
    }
}

fn export_options_default() -> chip_export_options {
    chip_export_options { struct_size: std::mem::size_of::<chip_export_options>(), class_input: 0 }
}

/// Fills `opts` with the defaults, struct_size included.
#[no_mangle]
pub unsafe extern "C" fn chip_export_options_default(opts: *mut chip_export_options) -> chip_status {
    guard(|| {
        *deref_mut(opts, "opts")? = export_options_default();
        Ok(())
    })
}

/// Fills `opts` with the defaults, struct_size included.
#[no_mangle]
pub unsafe extern "C" fn chip_model_options_default(opts: *mut chip_model_options) -> chip_status {
    guard(|| {
        *deref_mut(opts, "opts")? = model_options_default();
        Ok(())
    })
}

/// Fills `opts` with the defaults, struct_size included.
#[no_mangle]
pub unsafe extern "C" fn chip_fit_options_default(opts: *mut chip_fit_options) -> chip_status {
    guard(|| {
        *deref_mut(opts, "opts")? = fit_options_default();
        Ok(())
    })
}

/// Fills `opts` with the defaults, struct_size included.
#[no_mangle]
pub unsafe extern "C" fn chip_explain_options_default(opts: *mut chip_explain_options) -> chip_status {
    guard(|| {
        *deref_mut(opts, "opts")? = explain_options_default();
        Ok(())
    })
}

unsafe fn runtime_options(opts: *const chip_model_options) -> FfiResult<RuntimeOptions> {
    let o = read_options(opts, model_options_default(), std::mem::size_of::<chip_model_options>(), "chip_model_options")?;
    let device = match o.device {
        CHIP_DEVICE_CPU => Device::Cpu,
        CHIP_DEVICE_CUDA => Device::Cuda(o.device_id),
        d => return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("unknown device {d} (use CHIP_DEVICE_CPU or CHIP_DEVICE_CUDA)")),
    };
    let ort_lib = if o.ort_lib.is_null() { None } else { Some(PathBuf::from(str_arg(o.ort_lib, "chip_model_options.ort_lib")?)) };
    Ok(RuntimeOptions { ort_lib, device, threads: o.threads })
}

unsafe fn fit_params(opts: *const chip_fit_options) -> FfiResult<(FitOptions, chip_fit_options)> {
    let o = read_options(opts, fit_options_default(), std::mem::size_of::<chip_fit_options>(), "chip_fit_options")?;
    let mut p = FitOptions {
        gates: o.gates,
        sigma2_rel: o.sigma2_rel,
        seed: o.seed,
        gate_batch: o.gate_batch,
        image_batch: o.image_batch,
        objective: Objective {
            target: match o.target {
                0 => Target::Probability,
                1 => Target::Logit,
                2 => Target::LogProbability,
                t => return Err(Error::invalid(format!("chip_fit_options.target {t} is not a chip_target")).into()),
            },
            intercept: o.intercept != 0,
            nonneg: o.nonneg != 0,
        },
        augment: o.augment,
        mosaics: o.mosaics,
        ..FitOptions::default()
    };
    p.admm.lambda_rel = o.lambda_rel;
    p.admm.max_iter = o.max_iter;
    p.admm.rho = if o.rho == 0.0 { None } else { Some(o.rho) };
    p.classes = if o.class_count == 0 {
        None
    } else {
        Some(slice_arg(o.classes, o.class_count, "chip_fit_options.classes")?.to_vec())
    };
    Ok((p, o))
}

unsafe fn explain_options(opts: *const chip_explain_options) -> FfiResult<ExplainOptions> {
    let o = read_options(opts, explain_options_default(), std::mem::size_of::<chip_explain_options>(), "chip_explain_options")?;
    let classes = if o.class_count > 0 {
        ClassSelect::Ids(slice_arg(o.classes, o.class_count, "chip_explain_options.classes")?.to_vec())
    } else {
        ClassSelect::Top(o.top_k)
    };
    Ok(ExplainOptions { classes, refined: flag(o.refined), threshold: o.threshold, original_size: flag(o.original_size) })
}

// ---------------------------------------------------------------------------------------------
// Models.

/// Loads an ONNX classifier from a file (with its optional `<stem>.json` sidecar). `opts` may be NULL
/// for the defaults. On success `*out_model` owns a new model (free with chip_model_free); on failure
/// it is set to NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_load_model(
    path: *const c_char,
    opts: *const chip_model_options,
    out_model: *mut *mut chip_model,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_model, "out_model")?;
        let path = str_arg(path, "path")?;
        let options = runtime_options(opts)?;
        let model = Model::load(std::path::Path::new(path), &options)?;
        *out = Box::into_raw(Box::new(chip_model { inner: Arc::new(model) }));
        Ok(())
    })
}

/// Loads an ONNX classifier from `len` bytes in memory (copied; no sidecar, so ImageNet
/// preprocessing and no labels).
#[no_mangle]
pub unsafe extern "C" fn chip_load_model_bytes(
    data: *const u8,
    len: usize,
    opts: *const chip_model_options,
    out_model: *mut *mut chip_model,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_model, "out_model")?;
        if data.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, "data is NULL");
        }
        let bytes = slice_arg(data, len, "data")?.to_vec();
        let options = runtime_options(opts)?;
        let model = Model::from_bytes(bytes, &options)?;
        *out = Box::into_raw(Box::new(chip_model { inner: Arc::new(model) }));
        Ok(())
    })
}

/// Frees a model; NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn chip_model_free(model: *mut chip_model) {
    free_handle(model)
}

/// The number of classes the model outputs.
#[no_mangle]
pub unsafe extern "C" fn chip_model_num_classes(model: *const chip_model, out: *mut usize) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        *deref_mut(out, "out")? = m.inner.classes;
        Ok(())
    })
}

/// The model's input size in pixels (the size of CHIP_IMAGES_TENSOR images).
#[no_mangle]
pub unsafe extern "C" fn chip_model_input_size(
    model: *const chip_model,
    out_width: *mut usize,
    out_height: *mut usize,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        let w = deref_mut(out_width, "out_width")?;
        let h = deref_mut(out_height, "out_height")?;
        let (width, height) = m.inner.input_size().as_usize();
        *w = width;
        *h = height;
        Ok(())
    })
}

/// The name of class `class` as NUL-terminated UTF-8 (see the buffer convention); models without a
/// label list give the decimal class id.
#[no_mangle]
pub unsafe extern "C" fn chip_model_class_label(
    model: *const chip_model,
    class: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let m = &deref(model, "model")?.inner;
        if class >= m.classes {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("class {class} out of range (the model has {} classes)", m.classes));
        }
        let label = match &m.labels {
            Some(l) => l.get(class).cloned().unwrap_or_else(|| class.to_string()),
            None => class.to_string(),
        };
        write_str(&label, buf, len, out_len, "label")
    })
}

/// The number of candidate layers (4-D activations), in graph order. The first call probes the
/// model once.
#[no_mangle]
pub unsafe extern "C" fn chip_model_layer_count(model: *const chip_model, out: *mut usize) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        let o = deref_mut(out, "out")?;
        *o = m.inner.layers()?.len();
        Ok(())
    })
}

/// Candidate layer `index`: its name (buffer convention; `name`/`name_len` may be NULL/0 to skip it)
/// and activation shape. `out_channels`, `out_height`, `out_width` may each be NULL. The shape is
/// written even when the name buffer is too small.
#[no_mangle]
pub unsafe extern "C" fn chip_model_layer_info(
    model: *const chip_model,
    index: usize,
    name: *mut c_char,
    name_len: usize,
    out_name_len: *mut usize,
    out_channels: *mut usize,
    out_height: *mut usize,
    out_width: *mut usize,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        let layers = m.inner.layers()?;
        let Some(l) = layers.get(index) else {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("layer index {index} out of range (the model has {} candidate layers)", layers.len()));
        };
        put(out_channels, l.channels);
        put(out_height, l.height);
        put(out_width, l.width);
        write_str(&l.name, name, name_len, out_name_len, "name")
    })
}

unsafe fn write_prepared(
    p: crate::preprocess::Prepared,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_width: *mut u32,
    out_height: *mut u32,
) -> FfiResult {
    put(out_width, p.size.width);
    put(out_height, p.size.height);
    write_buf(&p.data, buf, len, out_len, "image")
}

/// Decodes and preprocesses an image file as the model expects: 3 x H x W floats at the model's input
/// size (buffer convention), for CHIP_IMAGES_TENSOR descriptors. `out_width` and
/// `out_height` (each may be NULL) receive the original image size.
#[no_mangle]
pub unsafe extern "C" fn chip_model_preprocess_file(
    model: *const chip_model,
    path: *const c_char,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_width: *mut u32,
    out_height: *mut u32,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        let path = str_arg(path, "path")?;
        let p = m.inner.preprocess.load(std::path::Path::new(path))?;
        write_prepared(p, buf, len, out_len, out_width, out_height)
    })
}

/// As chip_model_preprocess_file for an encoded image of `data_len` bytes in memory.
#[no_mangle]
pub unsafe extern "C" fn chip_model_preprocess_encoded(
    model: *const chip_model,
    data: *const u8,
    data_len: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_width: *mut u32,
    out_height: *mut u32,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        if data.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, "data is NULL");
        }
        let bytes = slice_arg(data, data_len, "data")?;
        let p = m.inner.preprocess.decode(bytes)?;
        write_prepared(p, buf, len, out_len, out_width, out_height)
    })
}

/// Class probabilities of `n` preprocessed images (`data`: `len` floats, n x 3 x H x W): n x classes
/// floats, row-major, into `probs` (buffer convention). Useful to pick the classes to fit.
#[no_mangle]
pub unsafe extern "C" fn chip_model_predict(
    model: *const chip_model,
    data: *const f32,
    len: usize,
    n: usize,
    probs: *mut f32,
    probs_len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        if data.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, "data is NULL");
        }
        check_tensor_len(&m.inner, len, n, "data")?;
        let need = n.saturating_mul(m.inner.classes);
        // The buffer is checked before the model runs.
        put(out_len, need);
        if probs.is_null() && probs_len == 0 {
            return Ok(());
        }
        if probs.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, format!("probs buffer is NULL but its length is {probs_len}"));
        }
        if probs_len < need {
            return fail(CHIP_STATUS_BUFFER_TOO_SMALL, format!("probs buffer holds {probs_len} floats, {need} needed"));
        }
        let p = m.inner.predict(slice_arg(data, len, "data")?, n)?;
        write_buf(&p, probs, probs_len, out_len, "probs")
    })
}

// ---------------------------------------------------------------------------------------------
// Fitting.

struct CallbackState {
    cb: unsafe extern "C" fn(*mut c_void, chip_progress_kind, usize, usize) -> c_int,
    user: *mut c_void,
    cancelled: parking_lot::Mutex<bool>,
}

// The user pointer is only handed back to the caller's callback, and the mutex serialises the calls.
unsafe impl Sync for CallbackState {}
unsafe impl Send for CallbackState {}

impl CallbackState {
    fn report(&self, p: Progress) -> bool {
        let (kind, done, total) = match p {
            Progress::Images { done, total } => (chip_progress_kind::CHIP_PROGRESS_IMAGES, done, total),
            Progress::SuffixRuns { done, total } => (chip_progress_kind::CHIP_PROGRESS_SUFFIX_RUNS, done, total),
            Progress::Classes { done, total } => (chip_progress_kind::CHIP_PROGRESS_CLASSES, done, total),
        };
        let mut cancelled = self.cancelled.lock();
        if !*cancelled && unsafe { (self.cb)(self.user, kind, done, total) } != 0 {
            *cancelled = true;
        }
        !*cancelled
    }
}

/// Runs `f` with the caller's progress callback of `o`, or with none.
fn with_progress<T>(o: &chip_fit_options, f: impl FnOnce(crate::fit::ProgressFn) -> crate::error::Result<T>) -> crate::error::Result<T> {
    match o.progress {
        Some(cb) => {
            let state = CallbackState { cb, user: o.user_data, cancelled: parking_lot::Mutex::new(false) };
            f(&|p: Progress| state.report(p))
        }
        None => f(&crate::fit::no_progress),
    }
}

/// A checked chip_images descriptor.
enum ImageArgs<'a> {
    Files(Vec<PathBuf>),
    Encoded(Vec<&'a [u8]>),
    Tensor { data: &'a [f32], n: usize, sizes: *const u32 },
}

impl<'a> ImageArgs<'a> {
    fn for_fit(&self) -> Images<'_> {
        match self {
            ImageArgs::Files(p) => Images::Paths(p.clone()),
            ImageArgs::Encoded(b) => Images::Encoded(b.clone()),
            ImageArgs::Tensor { data, n, .. } => Images::Tensor { data, n: *n },
        }
    }
}

/// A descriptor of all zeros but its size, kind and count, for the wrappers to fill in.
fn images_of(kind: chip_images_kind, count: usize) -> chip_images {
    chip_images {
        struct_size: std::mem::size_of::<chip_images>(),
        kind,
        count,
        paths: std::ptr::null(),
        data: std::ptr::null(),
        lens: std::ptr::null(),
        tensor: std::ptr::null(),
        tensor_len: 0,
        sizes: std::ptr::null(),
    }
}

/// Checks a descriptor: its size, kind and count, then every pointer its kind reads.
unsafe fn images_arg<'a>(p: *const chip_images, model: &Model) -> FfiResult<ImageArgs<'a>> {
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, "images is NULL");
    }
    // The size is read alone first: a smaller struct from a caller must not be read past its end.
    let size = std::ptr::read_unaligned(p as *const usize);
    let want = std::mem::size_of::<chip_images>();
    if size != want {
        return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("images->struct_size is {size}, expected sizeof(chip_images) = {want}"));
    }
    let d = &*p;
    if !matches!(d.kind, CHIP_IMAGES_FILES | CHIP_IMAGES_ENCODED | CHIP_IMAGES_TENSOR) {
        return fail(
            CHIP_STATUS_INVALID_ARGUMENT,
            format!("images->kind {} is not CHIP_IMAGES_FILES (1), CHIP_IMAGES_ENCODED (2) or CHIP_IMAGES_TENSOR (3)", d.kind),
        );
    }
    let n = d.count;
    if n == 0 {
        return fail(CHIP_STATUS_INVALID_ARGUMENT, "images->count is 0: give at least one image");
    }
    match d.kind {
        CHIP_IMAGES_FILES => {
            if d.paths.is_null() {
                return fail(CHIP_STATUS_NULL_POINTER, "images->paths is NULL");
            }
            Ok(ImageArgs::Files(paths_arg(d.paths, n, "images->paths")?))
        }
        CHIP_IMAGES_ENCODED => {
            if d.data.is_null() {
                return fail(CHIP_STATUS_NULL_POINTER, "images->data is NULL");
            }
            if d.lens.is_null() {
                return fail(CHIP_STATUS_NULL_POINTER, "images->lens is NULL");
            }
            let ptrs = slice_arg(d.data, n, "images->data")?;
            let lens = slice_arg(d.lens, n, "images->lens")?;
            let bufs = ptrs
                .iter()
                .zip(lens)
                .enumerate()
                .map(|(i, (&p, &l))| {
                    if p.is_null() {
                        fail(CHIP_STATUS_NULL_POINTER, format!("images->data[{i}] is NULL"))
                    } else {
                        slice_arg(p, l, &format!("images->data[{i}]"))
                    }
                })
                .collect::<FfiResult<Vec<&[u8]>>>()?;
            Ok(ImageArgs::Encoded(bufs))
        }
        _ => {
            if d.tensor.is_null() {
                return fail(CHIP_STATUS_NULL_POINTER, "images->tensor is NULL");
            }
            check_tensor_len(model, d.tensor_len, n, "images->tensor")?;
            Ok(ImageArgs::Tensor { data: slice_arg(d.tensor, d.tensor_len, "images->tensor")?, n, sizes: d.sizes })
        }
    }
}

/// Fits `layer` on the images of `images` (any kind; tensor sizes are not used). `opts` may be NULL
/// for the defaults. The call runs images x gates forward passes and may take long; see
/// chip_fit_options.progress. On failure `*out_fit` is NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_fit_layer(
    model: *const chip_model,
    layer: *const c_char,
    images: *const chip_images,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_fit, "out_fit")?;
        let m = deref(model, "model")?;
        let layer = str_arg(layer, "layer")?;
        let (params, o) = fit_params(opts)?;
        let images = images_arg(images, &m.inner)?;
        let fit = with_progress(&o, |p| crate::fit::fit_layer(&m.inner, layer, &images.for_fit(), &params, p))?;
        *out = Box::into_raw(Box::new(chip_layer_fit { inner: fit }));
        Ok(())
    })
}

/// As chip_fit_layer with a CHIP_IMAGES_FILES descriptor of `count` image files (UTF-8 paths).
#[no_mangle]
pub unsafe extern "C" fn chip_fit_layer_paths(
    model: *const chip_model,
    layer: *const c_char,
    paths: *const *const c_char,
    count: usize,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    let images = chip_images { paths, ..images_of(CHIP_IMAGES_FILES, count) };
    chip_fit_layer(model, layer, &images, opts, out_fit)
}

/// As chip_fit_layer with a CHIP_IMAGES_TENSOR descriptor: `data` holds `len` floats, n x 3 x H x W
/// (NCHW) at the model's input size.
#[no_mangle]
pub unsafe extern "C" fn chip_fit_layer_tensor(
    model: *const chip_model,
    layer: *const c_char,
    data: *const f32,
    len: usize,
    n: usize,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    let images = chip_images { tensor: data, tensor_len: len, ..images_of(CHIP_IMAGES_TENSOR, n) };
    chip_fit_layer(model, layer, &images, opts, out_fit)
}

// ---------------------------------------------------------------------------------------------
// Sharded fits: statistics per shard, merged, then solved.

/// Collects the statistics of `layer` on the images of one shard, with the gates, seed, target,
/// views and mosaics of `opts` (NULL for the defaults); its lambda, rho, max_iter and classes are
/// not used here. Merge the shards' statistics with chip_stats_merge and solve them with chip_solve.
/// Mosaics are tiled from the images of one shard, so only with `mosaics` 0 do merged shards give
/// the fit of chip_fit_layer over all their images; views (`augment`) depend only on the image.
/// On failure `*out_stats` is NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_collect_stats(
    model: *const chip_model,
    layer: *const c_char,
    images: *const chip_images,
    opts: *const chip_fit_options,
    out_stats: *mut *mut chip_stats,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_stats, "out_stats")?;
        let m = deref(model, "model")?;
        let layer = str_arg(layer, "layer")?;
        let (params, o) = fit_params(opts)?;
        let images = images_arg(images, &m.inner)?;
        let stats = with_progress(&o, |p| crate::fit::collect_stats(&m.inner, layer, &images.for_fit(), &params, p))?;
        *out = Box::into_raw(Box::new(chip_stats { inner: stats }));
        Ok(())
    })
}

/// Adds the statistics `other` to `into` (which then holds the images of both). Fails with
/// CHIP_STATUS_FIT_MISMATCH, naming what differs, when they belong to another model, layer, gate
/// set (count, seed, sigma2_rel), target, or number of views or mosaics; `into` is then unchanged.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_merge(into: *mut chip_stats, other: *const chip_stats) -> chip_status {
    guard(|| {
        if std::ptr::eq(into as *const chip_stats, other) && !other.is_null() {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, "into and other are the same statistics: their images would count twice");
        }
        let other = &deref(other, "other")?.inner;
        let into = &mut deref_mut(into, "into")?.inner;
        into.merge(other)?;
        Ok(())
    })
}

/// Solves statistics into a fit of their layer. `opts` (NULL for the defaults) gives lambda_rel,
/// rho, max_iter, the classes, the objective (target, intercept, nonneg) and the progress callback;
/// its target must be the one the statistics were collected with (else CHIP_STATUS_FIT_MISMATCH),
/// and the gates, seed, sigma2 and image fields are not used (the statistics carry them). Fails with
/// CHIP_STATUS_FIT_MISMATCH when the statistics belong to another model.
#[no_mangle]
pub unsafe extern "C" fn chip_solve(
    model: *const chip_model,
    stats: *const chip_stats,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_fit, "out_fit")?;
        let m = deref(model, "model")?;
        let st = &deref(stats, "stats")?.inner;
        let (params, o) = fit_params(opts)?;
        let fit = with_progress(&o, |p| crate::fit::solve(&m.inner, &st.layer, st, &params, p))?;
        *out = Box::into_raw(Box::new(chip_layer_fit { inner: fit }));
        Ok(())
    })
}

/// Writes statistics to `path`: versioned and checksummed, written atomically (a failure leaves no
/// file behind).
#[no_mangle]
pub unsafe extern "C" fn chip_stats_save(stats: *const chip_stats, path: *const c_char) -> chip_status {
    guard(|| {
        let st = deref(stats, "stats")?;
        let path = str_arg(path, "path")?;
        st.inner.save(std::path::Path::new(path))?;
        Ok(())
    })
}

/// Reads statistics written by chip_stats_save (or `chip fit --stats-only`). A truncated or altered
/// file gives CHIP_STATUS_FIT_FILE, a newer format version CHIP_STATUS_FIT_VERSION.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_load(path: *const c_char, out_stats: *mut *mut chip_stats) -> chip_status {
    guard(|| {
        let out = out_handle(out_stats, "out_stats")?;
        let path = str_arg(path, "path")?;
        let st = crate::stats::Stats::load(std::path::Path::new(path))?;
        *out = Box::into_raw(Box::new(chip_stats { inner: st }));
        Ok(())
    })
}

/// The number of images (views and mosaics included) the statistics hold.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_image_count(stats: *const chip_stats, out: *mut usize) -> chip_status {
    guard(|| {
        let st = deref(stats, "stats")?;
        *deref_mut(out, "out")? = st.inner.images;
        Ok(())
    })
}

/// The name of the layer the statistics were collected at (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_stats_layer_name(
    stats: *const chip_stats,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let st = deref(stats, "stats")?;
        write_str(&st.inner.layer, buf, len, out_len, "name")
    })
}

/// Frees statistics; NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_free(stats: *mut chip_stats) {
    free_handle(stats)
}

/// The maps of one call are sized by the caller; a request that cannot be allocated would abort
/// the process, so it is refused: more than the memory available, or a failed trial reservation.
fn check_map_memory(e: &Explainer, sizes: &[crate::preprocess::Size], options: &ExplainOptions) -> FfiResult {
    let classes = match &options.classes {
        ClassSelect::Top(k) => (*k).min(e.model.classes),
        ClassSelect::Ids(ids) => ids.len(),
    } as u128;
    let per_class = e.fits.len() as u128 + u128::from(options.refined);
    let (iw, ih) = e.model.input_size().as_usize();
    let pixels: u128 = sizes
        .iter()
        .map(|s| if options.original_size { s.pixels() as u128 } else { (ih * iw) as u128 })
        .sum();
    let bytes = pixels * classes * per_class * std::mem::size_of::<f32>() as u128;
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    let too_much = |why: String| {
        fail(
            CHIP_STATUS_INVALID_ARGUMENT,
            format!("the maps of this call need {:.1} GiB: {why}; explain fewer or smaller images or classes", gib(bytes)),
        )
    };
    if let Some(avail) = crate::error::available_memory() {
        if bytes > avail as u128 {
            return too_much(format!("only {:.1} GiB of memory is available", gib(avail as u128)));
        }
    }
    let Ok(bytes_usize) = usize::try_from(bytes) else { return too_much("more than the address space".into()) };
    let mut probe: Vec<u8> = Vec::new();
    if probe.try_reserve_exact(bytes_usize).is_err() {
        return too_much("they cannot be allocated".into());
    }
    Ok(())
}


fn check_tensor_len(m: &Model, len: usize, n: usize, name: &str) -> FfiResult {
    let (w, h) = m.input_size().as_usize();
    let need = n.checked_mul(3 * h * w);
    if need != Some(len) {
        return fail(
            CHIP_STATUS_INVALID_ARGUMENT,
            format!("{name} holds {len} floats but {n} images of 3×{h}×{w} need {}", n.saturating_mul(3 * h * w)),
        );
    }
    Ok(())
}

/// Writes a fit to `path` (atomically: a failure leaves no file behind).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_save(fit: *const chip_layer_fit, path: *const c_char) -> chip_status {
    guard(|| {
        let f = deref(fit, "fit")?;
        let path = str_arg(path, "path")?;
        f.inner.save(std::path::Path::new(path))?;
        Ok(())
    })
}

/// Reads a fit written by chip_layer_fit_save (or the command line tool).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_load(path: *const c_char, out_fit: *mut *mut chip_layer_fit) -> chip_status {
    guard(|| {
        let out = out_handle(out_fit, "out_fit")?;
        let path = str_arg(path, "path")?;
        let fit = LayerFit::load(std::path::Path::new(path))?;
        *out = Box::into_raw(Box::new(chip_layer_fit { inner: fit }));
        Ok(())
    })
}

/// Frees a fit; NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_free(fit: *mut chip_layer_fit) {
    free_handle(fit)
}

/// The fitted layer's name (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_layer_name(
    fit: *const chip_layer_fit,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let f = deref(fit, "fit")?;
        write_str(&f.inner.meta.layer, buf, len, out_len, "name")
    })
}

/// The number of channels K of the fitted layer (the length of a weight row).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_channels(fit: *const chip_layer_fit, out: *mut usize) -> chip_status {
    guard(|| {
        let f = deref(fit, "fit")?;
        *deref_mut(out, "out")? = f.inner.meta.channels;
        Ok(())
    })
}

/// The number of classes C (weight rows).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_classes(fit: *const chip_layer_fit, out: *mut usize) -> chip_status {
    guard(|| {
        let f = deref(fit, "fit")?;
        *deref_mut(out, "out")? = f.inner.meta.classes;
        Ok(())
    })
}

/// The importance weights of class `class` over the K channels (buffer convention, K floats).
/// Rows of classes that were not solved are zero.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_weights_row(
    fit: *const chip_layer_fit,
    class: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let f = &deref(fit, "fit")?.inner;
        if class >= f.meta.classes {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("class {class} out of range (the fit has {} classes)", f.meta.classes));
        }
        write_buf(f.row(class), buf, len, out_len, "weights")
    })
}

// ---------------------------------------------------------------------------------------------
// Explaining.

/// Makes an explainer from a model and `count` fits (copied; order = layer order of the maps; the
/// first and last give Refined CHIP). Fails with CHIP_STATUS_FIT_MISMATCH when a fit belongs to another
/// model or layer shape.
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_new(
    model: *const chip_model,
    fits: *const *const chip_layer_fit,
    count: usize,
    out_explainer: *mut *mut chip_explainer,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_explainer, "out_explainer")?;
        let m = deref(model, "model")?;
        if fits.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, "fits is NULL");
        }
        let fits = slice_arg(fits, count, "fits")?
            .iter()
            .enumerate()
            .map(|(i, &f)| deref(f, &format!("fits[{i}]")).map(|f| f.inner.clone()))
            .collect::<FfiResult<Vec<_>>>()?;
        let e = Explainer::new(m.inner.clone(), fits)?;
        *out = Box::into_raw(Box::new(chip_explainer { inner: e }));
        Ok(())
    })
}

/// Writes the model with CHIP maps computed inside its ONNX graph to `path` (atomically: a failure
/// leaves no file behind). The file keeps the model's inputs and outputs and adds the outputs
/// `chip_class` (int64 [N], the top-1), `chip_maps` (float [N, count, H, W], one map per fit in the
/// given order, at the model's input size) and, with two or more fits, `chip_refined` (float [N, H, W]);
/// any ONNX runtime computes them with no libchip. `opts` may be NULL for the defaults.
/// Fails with CHIP_STATUS_FIT_MISMATCH when a fit belongs to another model or layer shape, and
/// CHIP_STATUS_INVALID_ARGUMENT for count 0 or two fits of one layer.
#[no_mangle]
pub unsafe extern "C" fn chip_export(
    model: *const chip_model,
    fits: *const *const chip_layer_fit,
    count: usize,
    opts: *const chip_export_options,
    path: *const c_char,
) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        if fits.is_null() && count > 0 {
            return fail(CHIP_STATUS_NULL_POINTER, "fits is NULL");
        }
        let fits = slice_arg(fits, count, "fits")?
            .iter()
            .enumerate()
            .map(|(i, &f)| deref(f, &format!("fits[{i}]")).map(|f| f.inner.clone()))
            .collect::<FfiResult<Vec<_>>>()?;
        let o = read_options(opts, export_options_default(), std::mem::size_of::<chip_export_options>(), "chip_export_options")?;
        let path = str_arg(path, "path")?;
        let options = crate::export::ExportOptions { class_input: flag(o.class_input) };
        crate::export::export_to_file(&m.inner, &fits, &options, std::path::Path::new(path))?;
        Ok(())
    })
}

/// Frees an explainer; NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_free(explainer: *mut chip_explainer) {
    free_handle(explainer)
}

/// The number of fitted layers of the explainer.
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_layer_count(explainer: *const chip_explainer, out: *mut usize) -> chip_status {
    guard(|| {
        let e = deref(explainer, "explainer")?;
        *deref_mut(out, "out")? = e.inner.fits.len();
        Ok(())
    })
}

/// The name of the explainer's layer `index` (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_layer_name(
    explainer: *const chip_explainer,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let e = deref(explainer, "explainer")?;
        let names = e.inner.layer_names();
        let Some(name) = names.get(index) else {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("layer index {index} out of range (the explainer has {} layers)", names.len()));
        };
        write_str(name, buf, len, out_len, "name")
    })
}

fn explanation_out(out: &mut *mut chip_explanation, e: &Explainer, images: Vec<ImageExplanation>) {
    *out = Box::into_raw(Box::new(chip_explanation { images, layers: e.fits.len() }));
}

/// Explains the images of `images` (any kind). `opts` may be NULL for the defaults. Maps that
/// would not fit in memory give CHIP_STATUS_INVALID_ARGUMENT. On failure `*out_explanation` is NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_explain(
    explainer: *const chip_explainer,
    images: *const chip_images,
    opts: *const chip_explain_options,
    out_explanation: *mut *mut chip_explanation,
) -> chip_status {
    guard(|| {
        let out = out_handle(out_explanation, "out_explanation")?;
        let e = &deref(explainer, "explainer")?.inner;
        let images = images_arg(images, &e.model)?;
        let options = explain_options(opts)?;
        let result = match images {
            ImageArgs::Files(paths) => e.explain_files(&paths, &options)?,
            ImageArgs::Encoded(bufs) => e.explain_encoded(&bufs, &options)?,
            ImageArgs::Tensor { data, n, sizes } => {
                let sizes = tensor_sizes(e, sizes, n)?;
                check_map_memory(e, &sizes, &options)?;
                e.explain(data, &sizes, &options)?
            }
        };
        explanation_out(out, e, result);
        Ok(())
    })
}

/// The original sizes of a tensor's images: `n` (width, height) pairs, or the input size for NULL.
unsafe fn tensor_sizes(e: &Explainer, sizes: *const u32, n: usize) -> FfiResult<Vec<crate::preprocess::Size>> {
    let sizes: Vec<crate::preprocess::Size> = if sizes.is_null() {
        vec![e.model.input_size(); n]
    } else {
        let s = slice_arg(sizes, n.saturating_mul(2), "images->sizes")?;
        s.chunks_exact(2).map(|c| crate::preprocess::Size::new(c[0], c[1])).collect()
    };
    let max = crate::preprocess::MAX_SIDE;
    if let Some((i, (w, h))) = sizes.iter().enumerate().map(|(i, s)| (i, (s.width, s.height))).find(|(_, (w, h))| *w == 0 || *h == 0 || *w > max || *h > max) {
        return fail(
            CHIP_STATUS_INVALID_ARGUMENT,
            format!("sizes[{i}] is {w}x{h}; each side must be within 1..={max}, as for decoded images"),
        );
    }
    Ok(sizes)
}

/// As chip_explain with a CHIP_IMAGES_TENSOR descriptor: `data` holds `len` floats, n x 3 x H x W
/// (NCHW) at the model's input size; `sizes` holds n (width, height) pairs, the original image sizes
/// the maps are scaled to (each side 1..=16384), or is NULL for the input size.
#[no_mangle]
pub unsafe extern "C" fn chip_explain_tensor(
    explainer: *const chip_explainer,
    data: *const f32,
    len: usize,
    n: usize,
    sizes: *const u32,
    opts: *const chip_explain_options,
    out_explanation: *mut *mut chip_explanation,
) -> chip_status {
    let images = chip_images { tensor: data, tensor_len: len, sizes, ..images_of(CHIP_IMAGES_TENSOR, n) };
    chip_explain(explainer, &images, opts, out_explanation)
}

/// As chip_explain with a CHIP_IMAGES_ENCODED descriptor: image i is `lens[i]` bytes at `images[i]`
/// (PNG, JPEG, BMP, TIFF, WebP).
#[no_mangle]
pub unsafe extern "C" fn chip_explain_encoded(
    explainer: *const chip_explainer,
    images: *const *const u8,
    lens: *const usize,
    n: usize,
    opts: *const chip_explain_options,
    out_explanation: *mut *mut chip_explanation,
) -> chip_status {
    let desc = chip_images { data: images, lens, ..images_of(CHIP_IMAGES_ENCODED, n) };
    chip_explain(explainer, &desc, opts, out_explanation)
}

/// As chip_explain with a CHIP_IMAGES_FILES descriptor of `n` image files (UTF-8 paths).
#[no_mangle]
pub unsafe extern "C" fn chip_explain_files(
    explainer: *const chip_explainer,
    paths: *const *const c_char,
    n: usize,
    opts: *const chip_explain_options,
    out_explanation: *mut *mut chip_explanation,
) -> chip_status {
    let images = chip_images { paths, ..images_of(CHIP_IMAGES_FILES, n) };
    chip_explain(explainer, &images, opts, out_explanation)
}

/// Frees an explanation; NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_free(explanation: *mut chip_explanation) {
    free_handle(explanation)
}

unsafe fn image_of<'a>(e: *const chip_explanation, image: usize) -> FfiResult<&'a ImageExplanation> {
    let e = deref(e, "explanation")?;
    match e.images.get(image) {
        Some(i) => Ok(i),
        None => fail(CHIP_STATUS_INVALID_ARGUMENT, format!("image {image} out of range (the explanation has {} images)", e.images.len())),
    }
}

unsafe fn map_of<'a>(e: *const chip_explanation, image: usize, index: usize, layer: usize) -> FfiResult<&'a Map> {
    let img = image_of(e, image)?;
    let layers = (*e).layers;
    let Some(c) = img.classes.get(index) else {
        return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("class index {index} out of range ({} classes explained)", img.classes.len()));
    };
    if layer == CHIP_REFINED {
        return match &c.refined {
            Some(m) => Ok(m),
            None => fail(CHIP_STATUS_INVALID_ARGUMENT, "no refined map: set chip_explain_options.refined"),
        };
    }
    match c.maps.get(layer) {
        Some(m) => Ok(m),
        None => fail(CHIP_STATUS_INVALID_ARGUMENT, format!("layer {layer} out of range (the explainer has {layers} layers)")),
    }
}

/// Layer index of the Refined CHIP map in the chip_explanation_map* functions (SIZE_MAX).
const CHIP_REFINED: usize = usize::MAX;

/// The number of images in an explanation.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_image_count(explanation: *const chip_explanation, out: *mut usize) -> chip_status {
    guard(|| {
        let e = deref(explanation, "explanation")?;
        *deref_mut(out, "out")? = e.images.len();
        Ok(())
    })
}

/// The original size of image `image` in pixels.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_image_size(
    explanation: *const chip_explanation,
    image: usize,
    out_width: *mut u32,
    out_height: *mut u32,
) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        let w = deref_mut(out_width, "out_width")?;
        let h = deref_mut(out_height, "out_height")?;
        *w = img.size.width;
        *h = img.size.height;
        Ok(())
    })
}

/// The class probabilities of image `image` (buffer convention, one float per class).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_probabilities(
    explanation: *const chip_explanation,
    image: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        write_buf(&img.probabilities, buf, len, out_len, "probabilities")
    })
}

/// The number of top classes of image `image` (at most 5).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_top_count(explanation: *const chip_explanation, image: usize, out: *mut usize) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        *deref_mut(out, "out")? = img.top.len();
        Ok(())
    })
}

/// The class at rank `rank` (0 = most probable) of image `image`, with its probability.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_top(
    explanation: *const chip_explanation,
    image: usize,
    rank: usize,
    out_class: *mut usize,
    out_probability: *mut f32,
) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        let Some(&(class, p)) = img.top.get(rank) else {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("rank {rank} out of range ({} top classes)", img.top.len()));
        };
        let c = deref_mut(out_class, "out_class")?;
        let pr = deref_mut(out_probability, "out_probability")?;
        *c = class;
        *pr = p;
        Ok(())
    })
}

/// The number of explained classes of image `image` (top_k or the requested ids).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_class_count(explanation: *const chip_explanation, image: usize, out: *mut usize) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        *deref_mut(out, "out")? = img.classes.len();
        Ok(())
    })
}

/// Explained class `index` of image `image`: its class id and probability.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_class(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    out_class: *mut usize,
    out_probability: *mut f32,
) -> chip_status {
    guard(|| {
        let img = image_of(explanation, image)?;
        let Some(c) = img.classes.get(index) else {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("class index {index} out of range ({} classes explained)", img.classes.len()));
        };
        let cl = deref_mut(out_class, "out_class")?;
        let pr = deref_mut(out_probability, "out_probability")?;
        *cl = c.class;
        *pr = c.probability;
        Ok(())
    })
}

/// The number of maps per explained class (the explainer's fitted layers; the refined map is extra).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_layer_count(explanation: *const chip_explanation, out: *mut usize) -> chip_status {
    guard(|| {
        let e = deref(explanation, "explanation")?;
        *deref_mut(out, "out")? = e.layers;
        Ok(())
    })
}

/// The size of a map: image `image`, explained class `index`, layer `layer` (or CHIP_REFINED).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_map_size(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    out_width: *mut usize,
    out_height: *mut usize,
) -> chip_status {
    guard(|| {
        let m = map_of(explanation, image, index, layer)?;
        let w = deref_mut(out_width, "out_width")?;
        let h = deref_mut(out_height, "out_height")?;
        *w = m.width;
        *h = m.height;
        Ok(())
    })
}

/// A map, row-major height x width floats (buffer convention): image `image`, explained class `index`,
/// layer `layer` (or CHIP_REFINED).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_map(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let m = map_of(explanation, image, index, layer)?;
        write_buf(&m.data, buf, len, out_len, "map")
    })
}

/// The localization box of a map (largest connected region above threshold * max). `*out_found` is 1
/// with the box in `*out_box`, or 0 when the map has no positive value (the box is then zeroed).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_box(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    out_box: *mut chip_box,
    out_found: *mut c_int,
) -> chip_status {
    guard(|| {
        let m = map_of(explanation, image, index, layer)?;
        write_box(m.bbox, out_box, out_found)
    })
}

unsafe fn write_box(b: Option<BBox>, out_box: *mut chip_box, out_found: *mut c_int) -> FfiResult {
    let ob = deref_mut(out_box, "out_box")?;
    let of = deref_mut(out_found, "out_found")?;
    match b {
        Some(b) => {
            *ob = chip_box { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 };
            *of = 1;
        }
        None => {
            *ob = chip_box::default();
            *of = 0;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Localization helpers.

/// Box of the largest 8-connected region of {map >= threshold * max} of a row-major height x width map.
/// `*out_found` is 0 (and the box zeroed) when the map has no positive value or holds NaN.
#[no_mangle]
pub unsafe extern "C" fn chip_localize(
    map: *const f32,
    width: usize,
    height: usize,
    threshold: f32,
    out_box: *mut chip_box,
    out_found: *mut c_int,
) -> chip_status {
    guard(|| {
        if map.is_null() {
            return fail(CHIP_STATUS_NULL_POINTER, "map is NULL");
        }
        let Some(len) = width.checked_mul(height) else {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("map size {width}×{height} is too large"));
        };
        if !(0.0..=1.0).contains(&threshold) {
            return fail(CHIP_STATUS_INVALID_ARGUMENT, format!("threshold {threshold} is not in 0..1"));
        }
        let data = slice_arg(map, len, "map")?;
        write_box(crate::localize::localize(data, width, height, threshold), out_box, out_found)
    })
}

/// Intersection over union of two boxes (inclusive corners), in 0..1.
#[no_mangle]
pub unsafe extern "C" fn chip_iou(a: *const chip_box, b: *const chip_box, out: *mut f64) -> chip_status {
    guard(|| {
        let a = deref(a, "a")?;
        let b = deref(b, "b")?;
        let o = deref_mut(out, "out")?;
        let conv = |b: &chip_box| BBox { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 };
        *o = crate::localize::iou(&conv(a), &conv(b));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        unsafe { CStr::from_ptr(chip_last_error()) }.to_str().unwrap().to_string()
    }

    #[test]
    fn guard_turns_a_panic_into_a_status_with_its_message() {
        let s = guard(|| {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            let _ = v[i];
            Ok(())
        });
        assert_eq!(s, CHIP_STATUS_PANIC);
        assert!(last().contains("internal error (panic): index out of bounds"), "{}", last());
        assert_eq!(guard(|| fail(CHIP_STATUS_IO, "disk")), CHIP_STATUS_IO);
        assert_eq!(last(), "disk");
        assert_eq!(guard(|| Ok(())), CHIP_STATUS_OK);
        assert_eq!(last(), "");
    }

    #[test]
    fn every_error_variant_has_its_own_status() {
        let errors = [
            Error::invalid("x"),
            Error::io("p", std::io::Error::other("x")),
            Error::OrtNotFound { tried: "x".into() },
            Error::Ort("x".into()),
            Error::Model("x".into()),
            Error::UnknownLayer { name: "x".into(), candidates: "y".into() },
            Error::Image { what: "x".into(), msg: "y".into() },
            Error::FitFile { path: "p".into(), msg: "x".into() },
            Error::FitVersion { path: "p".into(), found: 2, supported: 1 },
            Error::FitMismatch("x".into()),
            Error::NonFinite("x".into()),
            Error::Cancelled,
        ];
        let mut codes: Vec<i32> = errors.iter().map(|e| status_of(e) as i32).collect();
        assert!(!codes.contains(&0));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }

    #[test]
    fn buffer_convention() {
        let src = [1.0f32, 2.0, 3.0];
        let mut n = 0usize;
        unsafe {
            // Size query.
            assert!(write_buf(&src, std::ptr::null_mut(), 0, &mut n, "b").is_ok());
            assert_eq!(n, 3);
            let mut small = [9.0f32; 2];
            let e = write_buf(&src, small.as_mut_ptr(), 2, &mut n, "b").unwrap_err();
            assert_eq!((e.status, n, small), (CHIP_STATUS_BUFFER_TOO_SMALL, 3, [9.0, 9.0]));
            let e = write_buf(&src, std::ptr::null_mut(), 5, &mut n, "b").unwrap_err();
            assert_eq!(e.status, CHIP_STATUS_NULL_POINTER);
            let mut big = [0.0f32; 4];
            assert!(write_buf(&src, big.as_mut_ptr(), 4, std::ptr::null_mut(), "b").is_ok());
            assert_eq!(big, [1.0, 2.0, 3.0, 0.0]);
            let mut s = [0 as c_char; 4];
            let e = write_str("abcd", s.as_mut_ptr(), 4, &mut n, "s").unwrap_err();
            assert_eq!((e.status, n), (CHIP_STATUS_BUFFER_TOO_SMALL, 5));
            assert!(write_str("abc", s.as_mut_ptr(), 4, &mut n, "s").is_ok());
            assert_eq!(CStr::from_ptr(s.as_ptr()).to_str().unwrap(), "abc");
        }
    }

    #[test]
    fn options_from_an_older_caller_get_defaults_for_newer_fields() {
        #[derive(Clone, Copy)]
        #[repr(C)]
        struct V2 {
            struct_size: usize,
            a: u32,
            b: u32,
        }
        let default = V2 { struct_size: 16, a: 7, b: 9 };
        // A v1 caller knew only `a`.
        let v1 = V2 { struct_size: 12, a: 1, b: 12345 };
        let got = unsafe { read_options(&v1, default, 12, "o") }.ok().unwrap();
        assert_eq!((got.a, got.b), (1, 9));
        assert!(unsafe { read_options(&v1, default, 16, "o") }.is_err());
    }
}
