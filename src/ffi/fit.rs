//! Fitting a layer, and the fitted layer: save, load, name, shape, weights.
use super::boundary::*;
use super::images::*;
use super::model::chip_model;
use super::options::{chip_fit_options, chip_progress_kind, fit_options};
use super::status::chip_status;
use crate::engine::fit::{FitOptions, Images, Progress, ProgressFn};
use crate::runtime::model::Model;
use crate::engine::fitfile::LayerFit;
use std::ffi::{c_char, c_int, c_void};

/// One fitted layer (the class-by-channel importance weights). Thread safety: immutable, so it may
/// be read from many threads at once; chip_layer_fit_free must not race with any other use.
/// Explainers copy it.
pub struct chip_layer_fit {
    pub(super) inner: LayerFit,
}

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
        use chip_progress_kind::*;
        let (kind, done, total) = match p {
            Progress::Images { done, total } => (CHIP_PROGRESS_IMAGES, done, total),
            Progress::SuffixRuns { done, total } => (CHIP_PROGRESS_SUFFIX_RUNS, done, total),
            Progress::Classes { done, total } => (CHIP_PROGRESS_CLASSES, done, total),
        };
        let mut cancelled = self.cancelled.lock();
        if !*cancelled && unsafe { (self.cb)(self.user, kind, done, total) } != 0 {
            *cancelled = true;
        }
        !*cancelled
    }
}

/// Runs `f` with the caller's progress callback of `o`, or with none.
pub(super) fn with_progress<T>(o: &chip_fit_options, f: impl FnOnce(ProgressFn) -> crate::Result<T>) -> crate::Result<T> {
    match o.progress {
        Some(cb) => {
            let state = CallbackState { cb, user: o.user_data, cancelled: parking_lot::Mutex::new(false) };
            f(&|p: Progress| state.report(p))
        }
        None => f(&crate::engine::fit::no_progress),
    }
}

/// Fits a layer. The call runs images x gates forward passes and may take long; see
/// chip_fit_options.progress.
/// \param model The model.
/// \param layer The name of a candidate layer (see chip_model_layer_info), UTF-8.
/// \param images The images, of any kind (tensor sizes are not used).
/// \param opts NULL for the defaults.
/// \param out_fit Receives a new fit (free with chip_layer_fit_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_fit_layer(
    model: *const chip_model,
    layer: *const c_char,
    images: *const chip_images,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    run_on_images(model, layer, images, opts, out_fit, "out_fit", |m, layer, images, params, p| {
        Ok(chip_layer_fit { inner: crate::engine::fit::fit_layer(m, layer, images, params, p)? })
    })
}

/// What chip_fit_layer and chip_collect_stats share: checks their arguments, then hands `run` the
/// caller's progress callback and puts its result in `out`.
pub(super) unsafe fn run_on_images<T>(
    model: *const chip_model,
    layer: *const c_char,
    images: *const chip_images,
    opts: *const chip_fit_options,
    out: *mut *mut T,
    out_name: &str,
    run: impl FnOnce(&Model, &str, &Images, &FitOptions, ProgressFn) -> crate::Result<T>,
) -> chip_status {
    guard(|| {
        let out = Out::new(out, out_name)?;
        let m = &deref(model, "model")?.inner;
        let layer = str_arg(layer, "layer")?;
        let (params, o) = fit_options(opts)?;
        let images = images_arg(images, m)?;
        out.put(with_progress(&o, |p| run(m, layer, &images.for_fit(), &params, p))?)
    })
}

/// Writes a fit to a file, atomically: a failure leaves no file behind.
/// \param fit The fit.
/// \param path The file, UTF-8.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_save(fit: *const chip_layer_fit, path: *const c_char) -> chip_status {
    save_handle(fit, "fit", path, |f, p| f.inner.save(p))
}

/// Reads a fit written by chip_layer_fit_save (or the command line tool). A truncated or altered
/// file gives CHIP_STATUS_FIT_FILE, a newer format version CHIP_STATUS_FIT_VERSION.
/// \param path The file, UTF-8.
/// \param out_fit Receives a new fit (free with chip_layer_fit_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_load(path: *const c_char, out_fit: *mut *mut chip_layer_fit) -> chip_status {
    load_handle(path, out_fit, "out_fit", |p| Ok(chip_layer_fit { inner: LayerFit::load(p)? }))
}

/// Frees a fit.
/// \param fit The fit, or NULL (ignored).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_free(fit: *mut chip_layer_fit) {
    free_handle(fit)
}

/// The fitted layer's name.
/// \param fit The fit.
/// \param buf, len, out_len The name (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_layer_name(
    fit: *const chip_layer_fit,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| write_str(&deref(fit, "fit")?.inner.meta.layer, buf, len, out_len, "name"))
}

/// The number of channels K of the fitted layer (the length of a weight row).
/// \param fit The fit.
/// \param out Receives K.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_channel_count(fit: *const chip_layer_fit, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(fit, "fit")?.inner.meta.channels))
}

/// The number of classes C (weight rows).
/// \param fit The fit.
/// \param out Receives C.
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_class_count(fit: *const chip_layer_fit, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(fit, "fit")?.inner.meta.classes))
}

/// The importance weights of one class over the K channels. Rows of classes that were not solved
/// are zero.
/// \param fit The fit.
/// \param class_id The class id, below chip_layer_fit_class_count.
/// \param buf, len, out_len The K weights (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_layer_fit_weights_row(
    fit: *const chip_layer_fit,
    class_id: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let f = &deref(fit, "fit")?.inner;
        if class_id >= f.meta.classes {
            return invalid(format!("class {class_id} out of range (the fit has {} classes)", f.meta.classes));
        }
        write_buf(f.row(class_id), buf, len, out_len, "weights")
    })
}

/// A caller array of `count` fits, copied.
pub(super) unsafe fn fits_arg(fits: *const *const chip_layer_fit, count: usize) -> FfiResult<Vec<LayerFit>> {
    each_arg(fits, count, "fits", |f, name| deref(f, name).map(|f| f.inner.clone()))
}
