//! Explainers: a model with fitted layers, and chip_explain.
use super::boundary::*;
use super::explanation::chip_explanation;
use super::fit::{chip_layer_fit, fits_arg};
use super::images::*;
use super::types::chip_size;

use super::model::chip_model;
use super::options::{chip_explain_options, explain_options};
use super::status::chip_status;
use crate::engine::explain::Explainer;
use crate::runtime::preprocess::Size;
use std::ffi::c_char;

/// A model with fitted layers, ready to explain images. Thread safety: chip_explain may be called
/// on one explainer from many threads at once; chip_explainer_free must not race with any other use.
pub struct chip_explainer {
    inner: Explainer,
}

/// Makes an explainer. Fails with CHIP_STATUS_FIT_MISMATCH when a fit belongs to another model or
/// layer shape.
/// \param model The model (the explainer keeps its own reference).
/// \param fits `count` fits (copied); their order is the layer order of the maps, and the first and
///        last fitted layer of the network give Refined CHIP.
/// \param count The number of fits, at least 1.
/// \param out_explainer Receives a new explainer (free with chip_explainer_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_new(
    model: *const chip_model,
    fits: *const *const chip_layer_fit,
    count: usize,
    out_explainer: *mut *mut chip_explainer,
) -> chip_status {
    guard(|| {
        let out = Out::new(out_explainer, "out_explainer")?;
        let m = deref(model, "model")?;
        let e = Explainer::new(m.inner.clone(), fits_arg(fits, count)?)?;
        out.put(chip_explainer { inner: e })
    })
}

/// Frees an explainer.
/// \param explainer The explainer, or NULL (ignored).
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_free(explainer: *mut chip_explainer) {
    free_handle(explainer)
}

/// The number of fitted layers of the explainer.
/// \param explainer The explainer.
/// \param out Receives the number of layers.
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_layer_count(explainer: *const chip_explainer, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(explainer, "explainer")?.inner.fits().len()))
}

/// The name of one of the explainer's layers.
/// \param explainer The explainer.
/// \param index The layer's index, below chip_explainer_layer_count.
/// \param buf, len, out_len The name (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_explainer_layer_name(
    explainer: *const chip_explainer,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let names = deref(explainer, "explainer")?.inner.layer_names();
        let Some(name) = names.get(index) else {
            return invalid(format!("layer index {index} out of range (the explainer has {} layers)", names.len()));
        };
        write_str(name, buf, len, out_len, "name")
    })
}

/// Explains images. Maps that would not fit in memory give CHIP_STATUS_INVALID_ARGUMENT.
/// \param explainer The explainer.
/// \param images The images, of any kind.
/// \param opts NULL for the defaults.
/// \param out_explanation Receives a new explanation (free with chip_explanation_free), or NULL on
///        failure.
#[no_mangle]
pub unsafe extern "C" fn chip_explain(
    explainer: *const chip_explainer,
    images: *const chip_images,
    opts: *const chip_explain_options,
    out_explanation: *mut *mut chip_explanation,
) -> chip_status {
    guard(|| {
        let out = Out::new(out_explanation, "out_explanation")?;
        let e = &deref(explainer, "explainer")?.inner;
        let images = images_arg(images, &e.model)?;
        let options = explain_options(opts)?;
        let result = match images {
            ImageArgs::Files(paths) => e.explain_files(&paths, &options)?,
            ImageArgs::Encoded(bufs) => e.explain_encoded(&bufs, &options)?,
            ImageArgs::Tensor { data, n, sizes } => {
                let sizes = tensor_sizes(e, sizes, n)?;
                e.explain(data, &sizes, &options)?
            }
        };
        out.put(chip_explanation { images: result, layers: e.fits().len() })
    })
}

/// The original sizes of a tensor's images: `n` sizes, or the input size for NULL.
unsafe fn tensor_sizes(e: &Explainer, sizes: *const chip_size, n: usize) -> FfiResult<Vec<Size>> {
    if sizes.is_null() {
        return Ok(vec![e.model.input_size(); n]);
    }
    Ok(slice_arg(sizes, n, "images->sizes")?.iter().map(|s| Size::new(s.width, s.height)).collect())
}

