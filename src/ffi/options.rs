//! The options structs, their defaults, and their conversion to the library's options.
use super::boundary::*;
use super::status::chip_status;
use crate::engine::explain::{ClassSelect, ExplainOptions};
use crate::engine::fit::FitOptions;
use crate::math::objective::Target;
use crate::runtime::spec::PreprocessSpec;
use crate::runtime::{Device, RuntimeOptions};
use std::ffi::{c_char, c_int, c_void};
use std::mem::size_of;

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

/// Options of chip_model_load and chip_model_load_bytes. Fill with chip_model_options_default().
/// Thread safety: a plain struct, read only during the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_model_options {
    /// sizeof(chip_model_options): set it before chip_model_options_default().
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
    /// A preprocessing spec as JSON text (UTF-8, the keys of the sidecar `<model>.json`, see the
    /// README), or NULL (default) for none. Its keys override the sidecar's; what neither states is
    /// read from the graph or assumed (chip_model_preprocess tells which). A spec that does not parse,
    /// or has an unknown key, fails the load with CHIP_STATUS_INVALID_ARGUMENT naming the key.
    /// A caller whose struct_size ends before this field gets NULL.
    pub preprocess: *const c_char,
}

/// Options of chip_fit_layer, chip_collect_stats and chip_solve. Fill with chip_fit_options_default().
/// Thread safety: a plain struct, read only during the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_fit_options {
    /// sizeof(chip_fit_options): set it before chip_fit_options_default().
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

/// The targets in code order, for both directions of the conversion.
const TARGETS: [(chip_target, Target); 3] = [
    (chip_target::CHIP_TARGET_PROBABILITY, Target::Probability),
    (chip_target::CHIP_TARGET_LOGIT, Target::Logit),
    (chip_target::CHIP_TARGET_LOG_PROBABILITY, Target::LogProbability),
];

/// Options of chip_explain. Fill with chip_explain_options_default().
/// Thread safety: a plain struct, read only during the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_explain_options {
    /// sizeof(chip_explain_options): set it before chip_explain_options_default().
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

/// Options of chip_export. Fill with chip_export_options_default().
/// Thread safety: a plain struct, read only during the call it is passed to.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct chip_export_options {
    /// sizeof(chip_export_options): set it before chip_export_options_default().
    pub struct_size: usize,
    /// Nonzero: add the int64 input `chip_target_class` [N]; a value >= 0 explains that class instead
    /// of the top-1 (default 0).
    pub class_input: c_int,
}

fn model_options_default() -> chip_model_options {
    chip_model_options {
        struct_size: size_of::<chip_model_options>(),
        device: CHIP_DEVICE_CPU,
        device_id: 0,
        threads: RuntimeOptions::default().threads,
        ort_lib: std::ptr::null(),
        preprocess: std::ptr::null(),
    }
}

fn fit_options_default() -> chip_fit_options {
    let d = FitOptions::default();
    let target = TARGETS.iter().find(|(_, t)| *t == d.objective.target).map_or(0, |(c, _)| *c as c_int);
    chip_fit_options {
        struct_size: size_of::<chip_fit_options>(),
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
        target,
        intercept: c_int::from(d.objective.intercept),
        nonneg: c_int::from(d.objective.nonneg),
        augment: d.augment,
        mosaics: d.mosaics,
    }
}

fn explain_options_default() -> chip_explain_options {
    let d = ExplainOptions::default();
    let top_k = match d.classes {
        ClassSelect::TopK(k) => k,
        ClassSelect::Ids(_) => 1,
    };
    chip_explain_options {
        struct_size: size_of::<chip_explain_options>(),
        top_k,
        classes: std::ptr::null(),
        class_count: 0,
        refined: c_int::from(d.refined),
        threshold: d.threshold,
        original_size: c_int::from(d.original_size),
    }
}

fn export_options_default() -> chip_export_options {
    chip_export_options { struct_size: size_of::<chip_export_options>(), class_input: 0 }
}

/// Fills `opts` with the defaults. Set `opts->struct_size` to sizeof(chip_model_options) first: no
/// more than that many bytes are written. Every function taking an options struct or chip_images
/// accepts the size of any earlier version of it (fields past it get their defaults).
/// \param opts The struct to fill; its struct_size is kept.
/// \return CHIP_STATUS_INVALID_ARGUMENT for a struct_size of 0, larger than this library's struct,
/// or inside a field.
#[no_mangle]
pub unsafe extern "C" fn chip_model_options_default(opts: *mut chip_model_options) -> chip_status {
    guard(|| write_options(opts, model_options_default(), 2 * size_of::<usize>(), "chip_model_options"))
}

/// Fills `opts` with the defaults; struct_size as for chip_model_options_default.
/// \param opts The struct to fill; its struct_size is kept.
/// \return CHIP_STATUS_INVALID_ARGUMENT for a struct_size of 0, larger than this library's struct,
/// or inside a field.
#[no_mangle]
pub unsafe extern "C" fn chip_fit_options_default(opts: *mut chip_fit_options) -> chip_status {
    guard(|| write_options(opts, fit_options_default(), 2 * size_of::<usize>(), "chip_fit_options"))
}

/// Fills `opts` with the defaults; struct_size as for chip_model_options_default.
/// \param opts The struct to fill; its struct_size is kept.
/// \return CHIP_STATUS_INVALID_ARGUMENT for a struct_size of 0, larger than this library's struct,
/// or inside a field.
#[no_mangle]
pub unsafe extern "C" fn chip_explain_options_default(opts: *mut chip_explain_options) -> chip_status {
    guard(|| write_options(opts, explain_options_default(), 2 * size_of::<usize>(), "chip_explain_options"))
}

/// Fills `opts` with the defaults; struct_size as for chip_model_options_default.
/// \param opts The struct to fill; its struct_size is kept.
/// \return CHIP_STATUS_INVALID_ARGUMENT for a struct_size of 0, larger than this library's struct,
/// or inside a field.
#[no_mangle]
pub unsafe extern "C" fn chip_export_options_default(opts: *mut chip_export_options) -> chip_status {
    guard(|| write_options(opts, export_options_default(), 2 * size_of::<usize>(), "chip_export_options"))
}

/// A caller's options struct, or the defaults for NULL. Any size from the first version's (each
/// struct's first version holds at least `struct_size` and one field) up to this one's: fields
/// past the caller's size get their defaults.
unsafe fn read<T: Copy>(p: *const T, default: T, name: &str) -> FfiResult<T> {
    read_options(p, default, 2 * size_of::<usize>(), name)
}

/// The size of chip_model_options before `preprocess` was appended: a caller built against that
/// header passes it and loads with no spec (the field is not read).
const MODEL_OPTIONS_BEFORE_PREPROCESS: usize = std::mem::offset_of!(chip_model_options, preprocess);

/// The runtime options and the preprocessing spec (when one is given) of a model load.
pub(super) unsafe fn model_options(opts: *const chip_model_options) -> FfiResult<(RuntimeOptions, Option<PreprocessSpec>)> {
    let o = read_options(opts, model_options_default(), MODEL_OPTIONS_BEFORE_PREPROCESS, "chip_model_options")?;
    let spec = if o.preprocess.is_null() {
        None
    } else {
        let text = str_arg(o.preprocess, "chip_model_options.preprocess")?;
        match PreprocessSpec::from_json(text) {
            Ok(spec) => Some(spec),
            Err(crate::Error::InvalidArgument(m)) => return invalid(format!("chip_model_options.preprocess: {m}")),
            Err(e) => return Err(e.into()),
        }
    };
    Ok((runtime_options(&o)?, spec))
}

unsafe fn runtime_options(o: &chip_model_options) -> FfiResult<RuntimeOptions> {
    let device = match o.device {
        CHIP_DEVICE_CPU => Device::Cpu,
        CHIP_DEVICE_CUDA => Device::Cuda(o.device_id),
        d => return invalid(format!("unknown device {d} (use CHIP_DEVICE_CPU or CHIP_DEVICE_CUDA)")),
    };
    let ort_lib = if o.ort_lib.is_null() { None } else { Some(path_arg(o.ort_lib, "chip_model_options.ort_lib")?.to_path_buf()) };
    Ok(RuntimeOptions { ort_lib, device, threads: o.threads, ..Default::default() })
}

/// The library's fit options and the caller's struct (for its progress callback).
pub(super) unsafe fn fit_options(opts: *const chip_fit_options) -> FfiResult<(FitOptions, chip_fit_options)> {
    let o = read(opts, fit_options_default(), "chip_fit_options")?;
    let Some(&(_, target)) = TARGETS.iter().find(|(c, _)| *c as c_int == o.target) else {
        return invalid(format!("chip_fit_options.target {} is not a chip_target", o.target));
    };
    let mut p = FitOptions {
        gates: o.gates,
        sigma2_rel: o.sigma2_rel,
        seed: o.seed,
        gate_batch: o.gate_batch,
        image_batch: o.image_batch,
        objective: crate::math::objective::Objective { target, intercept: flag(o.intercept), nonneg: flag(o.nonneg) },
        augment: o.augment,
        mosaics: o.mosaics,
        ..FitOptions::default()
    };
    p.admm.lambda_rel = o.lambda_rel;
    p.admm.max_iter = o.max_iter;
    p.admm.rho = if o.rho == 0.0 { None } else { Some(o.rho) };
    p.classes = if o.class_count == 0 { None } else { Some(slice_arg(o.classes, o.class_count, "chip_fit_options.classes")?.to_vec()) };
    Ok((p, o))
}

pub(super) unsafe fn explain_options(opts: *const chip_explain_options) -> FfiResult<ExplainOptions> {
    let o = read(opts, explain_options_default(), "chip_explain_options")?;
    let classes = if o.class_count > 0 {
        ClassSelect::Ids(slice_arg(o.classes, o.class_count, "chip_explain_options.classes")?.to_vec())
    } else {
        ClassSelect::TopK(o.top_k)
    };
    Ok(ExplainOptions { classes, refined: flag(o.refined), threshold: o.threshold, original_size: flag(o.original_size) })
}

pub(super) unsafe fn export_options(opts: *const chip_export_options) -> FfiResult<crate::engine::export::ExportOptions> {
    let o = read(opts, export_options_default(), "chip_export_options")?;
    Ok(crate::engine::export::ExportOptions { class_input: flag(o.class_input) })
}
