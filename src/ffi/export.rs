//! Exporting a model with its CHIP maps inside the ONNX graph.
use super::boundary::*;
use super::fit::{chip_layer_fit, fits_arg};
use super::model::chip_model;
use super::options::{chip_export_options, export_options};
use super::status::chip_status;
use std::ffi::c_char;

/// Writes the model with CHIP maps computed inside its ONNX graph, atomically (a failure leaves no
/// file behind). The file keeps the model's inputs and outputs and adds the outputs `chip_class`
/// (int64 [N], the top-1), `chip_maps` (float [N, count, H, W], one map per fit in the given order,
/// at the model's input size) and, with two or more fits, `chip_refined` (float [N, H, W]); any
/// ONNX runtime computes them with no libchip. Fails with CHIP_STATUS_FIT_MISMATCH when a fit
/// belongs to another model or layer shape, and CHIP_STATUS_INVALID_ARGUMENT for count 0 or two
/// fits of one layer.
/// \param model The model.
/// \param fits `count` fits.
/// \param count The number of fits.
/// \param opts NULL for the defaults.
/// \param path The ONNX file to write, UTF-8.
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
        let fits = fits_arg(fits, count)?;
        let options = export_options(opts)?;
        Ok(crate::engine::export::export_to_file(&m.inner, &fits, &options, path_arg(path, "path")?)?)
    })
}
