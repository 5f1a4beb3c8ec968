//! Models: loading, classes, candidate layers, preprocessing and predictions.
use super::boundary::*;
use super::images::tensor_arg;
use super::types::chip_size;
use super::options::{chip_model_options, model_options};
use super::status::chip_status;
use crate::runtime::model::Model;
use std::ffi::c_char;
use std::sync::Arc;

/// A loaded classifier. Thread safety: all functions taking a `const chip_model*` may be called from
/// many threads at once; chip_model_free must not race with any other use. Explainers keep their
/// own reference, so the model may be freed while explainers made from it live on.
pub struct chip_model {
    pub(super) inner: Arc<Model>,
}

/// Loads an ONNX classifier from a file (with its optional `<stem>.json` sidecar; the keys of
/// `opts->preprocess` override the sidecar's).
/// \param path The model file, UTF-8.
/// \param opts NULL for the defaults; `opts->preprocess` gives a preprocessing spec as JSON.
/// \param out_model Receives a new model (free with chip_model_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_model_load(
    path: *const c_char,
    opts: *const chip_model_options,
    out_model: *mut *mut chip_model,
) -> chip_status {
    guard(|| {
        let out = Out::new(out_model, "out_model")?;
        let path = path_arg(path, "path")?;
        let (options, spec) = model_options(opts)?;
        let model = Model::load_with(path, &options, spec.as_ref())?;
        out.put(chip_model { inner: Arc::new(model) })
    })
}

/// Loads an ONNX classifier from memory. There is no sidecar: the preprocessing is `opts->preprocess`
/// where given, else what the graph says and the library's assumptions (see chip_model_preprocess).
/// A `labels` file name in the spec is relative to the working directory.
/// \param data The model's bytes (copied).
/// \param len The number of bytes.
/// \param opts NULL for the defaults; `opts->preprocess` gives a preprocessing spec as JSON.
/// \param out_model Receives a new model (free with chip_model_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_model_load_bytes(
    data: *const u8,
    len: usize,
    opts: *const chip_model_options,
    out_model: *mut *mut chip_model,
) -> chip_status {
    guard(|| {
        let out = Out::new(out_model, "out_model")?;
        let bytes = slice_arg(data, len, "data")?.to_vec();
        let (options, spec) = model_options(opts)?;
        let model = Model::from_bytes_with(bytes, &options, spec.as_ref())?;
        out.put(chip_model { inner: Arc::new(model) })
    })
}

/// Frees a model.
/// \param model The model, or NULL (ignored).
#[no_mangle]
pub unsafe extern "C" fn chip_model_free(model: *mut chip_model) {
    free_handle(model)
}

/// The number of classes the model outputs.
/// \param model The model.
/// \param out Receives the number of classes.
#[no_mangle]
pub unsafe extern "C" fn chip_model_class_count(model: *const chip_model, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(model, "model")?.inner.classes))
}

/// The model's input size in pixels (the size of CHIP_IMAGES_TENSOR images).
/// \param model The model.
/// \param out Receives the size.
#[no_mangle]
pub unsafe extern "C" fn chip_model_input_size(model: *const chip_model, out: *mut chip_size) -> chip_status {
    guard(|| set(out, "out", deref(model, "model")?.inner.input_size().into()))
}

/// The name of a class as NUL-terminated UTF-8; models without a label list give the decimal id.
/// \param model The model.
/// \param class_id The class id, below chip_model_class_count.
/// \param buf, len, out_len The label (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_model_class_label(
    model: *const chip_model,
    class_id: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let m = &deref(model, "model")?.inner;
        if class_id >= m.classes {
            return invalid(format!("class {class_id} out of range (the model has {} classes)", m.classes));
        }
        let label = m.label(class_id).map_or_else(|| class_id.to_string(), str::to_string);
        write_str(&label, buf, len, out_len, "label")
    })
}

/// The model's effective preprocessing and where each value came from, as NUL-terminated UTF-8 JSON:
/// `{"spec": {...}, "sources": {"mean": "given", ...}, "fingerprint": "..."}`. `spec` is the complete
/// spec in canonical form (the one fits record), `sources` gives for each key one of "given" (the
/// spec passed to the load), "sidecar" (`<model>.json`), "graph" (read from the model), "probe"
/// (measured on a probe run) or "assumed" (the library's default: nothing stated it), and
/// `fingerprint` is the SHA-256 of the canonical spec.
/// \param model The model.
/// \param buf, len, out_len The JSON text (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_model_preprocess(
    model: *const chip_model,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| {
        let m = &deref(model, "model")?.inner;
        write_str(&m.spec.describe().to_string(), buf, len, out_len, "preprocess")
    })
}

/// The number of candidate layers (4-D activations), in graph order. The first call probes the
/// model once.
/// \param model The model.
/// \param out Receives the number of candidate layers.
#[no_mangle]
pub unsafe extern "C" fn chip_model_layer_count(model: *const chip_model, out: *mut usize) -> chip_status {
    guard(|| {
        let m = deref(model, "model")?;
        set(out, "out", m.inner.layers()?.len())
    })
}

/// A candidate layer's name and activation shape. The shape is written even when the name buffer
/// is too small.
/// \param model The model.
/// \param index The layer's index, below chip_model_layer_count.
/// \param name, name_len, out_name_len The name (buffer convention; NULL/0 to skip it).
/// \param out_channels Receives the channels K, or NULL.
/// \param out_height Receives the activation height, or NULL.
/// \param out_width Receives the activation width, or NULL.
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
        let layers = deref(model, "model")?.inner.layers()?;
        let Some(l) = layers.get(index) else {
            return invalid(format!("layer index {index} out of range (the model has {} candidate layers)", layers.len()));
        };
        put(out_channels, l.channels);
        put(out_height, l.height);
        put(out_width, l.width);
        write_str(&l.name, name, name_len, out_name_len, "name")
    })
}

/// What the two preprocess functions share: `prepare` makes the image, then it goes to the caller.
unsafe fn write_prepared(
    model: *const chip_model,
    prepare: impl FnOnce(&crate::runtime::preprocess::Preprocess) -> FfiResult<crate::runtime::preprocess::Prepared>,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_size: *mut chip_size,
) -> chip_status {
    guard(|| {
        let p = prepare(&deref(model, "model")?.inner.preprocess)?;
        put(out_size, p.size.into());
        write_buf(&p.data, buf, len, out_len, "image")
    })
}

/// Decodes and preprocesses an image file as the model's spec says, for CHIP_IMAGES_TENSOR descriptors
/// (NCHW float32 in the library's layout, whatever the model's own input layout and type).
/// \param model The model.
/// \param path The image file (PNG, JPEG, BMP, TIFF, WebP), UTF-8.
/// \param buf, len, out_len The 3 x H x W floats at the model's input size (buffer convention).
/// \param out_size Receives the original size, or NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_model_preprocess_file(
    model: *const chip_model,
    path: *const c_char,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_size: *mut chip_size,
) -> chip_status {
    write_prepared(model, |pre| Ok(pre.load(path_arg(path, "path")?)?), buf, len, out_len, out_size)
}

/// As chip_model_preprocess_file for an encoded image in memory.
/// \param model The model.
/// \param data The encoded image.
/// \param data_len Its length in bytes.
/// \param buf, len, out_len The 3 x H x W floats at the model's input size (buffer convention).
/// \param out_size Receives the original size, or NULL.
#[no_mangle]
pub unsafe extern "C" fn chip_model_preprocess_encoded(
    model: *const chip_model,
    data: *const u8,
    data_len: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
    out_size: *mut chip_size,
) -> chip_status {
    write_prepared(model, |pre| Ok(pre.decode(slice_arg(data, data_len, "data")?)?), buf, len, out_len, out_size)
}

/// Class probabilities of preprocessed images; useful to pick the classes to fit. The buffer is
/// checked before the model runs.
/// \param model The model.
/// \param data `len` floats, n x 3 x H x W at the model's input size.
/// \param len The number of floats.
/// \param n The number of images.
/// \param probs, probs_len, out_len The n x classes probabilities, row-major (buffer convention).
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
        let m = &deref(model, "model")?.inner;
        let data = tensor_arg(m, data, len, n, "data")?;
        let Some(dst) = caller_buf(probs, probs_len, out_len, n.saturating_mul(m.classes), "probs")? else {
            return Ok(());
        };
        dst.copy_from_slice(&m.predict(data, n)?);
        Ok(())
    })
}
