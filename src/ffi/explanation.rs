//! Reading an explanation: per image the probabilities, top classes, and per explained class its
//! maps and boxes.
use super::boundary::*;
use super::types::chip_size;
use super::localize::chip_box;
use super::status::chip_status;
use crate::engine::explain::{ClassExplanation, ImageExplanation, Map};

/// The result of one chip_explain call: per image the probabilities, top classes and, per explained
/// class, one map per fitted layer (plus the refined map when asked) with its box. Thread safety:
/// immutable, so it may be read from many threads at once; chip_explanation_free must not race with
/// any other use.
pub struct chip_explanation {
    pub(super) images: Vec<ImageExplanation>,
    pub(super) layers: usize,
}

/// Layer index of the Refined CHIP map in the chip_explanation_map* functions (SIZE_MAX).
const CHIP_REFINED: usize = usize::MAX;

unsafe fn image_of<'a>(e: *const chip_explanation, image: usize) -> FfiResult<&'a ImageExplanation> {
    let e = deref(e, "explanation")?;
    match e.images.get(image) {
        Some(i) => Ok(i),
        None => invalid(format!("image {image} out of range (the explanation has {} images)", e.images.len())),
    }
}

unsafe fn class_of<'a>(e: *const chip_explanation, image: usize, index: usize) -> FfiResult<&'a ClassExplanation> {
    let img = image_of(e, image)?;
    match img.classes.get(index) {
        Some(c) => Ok(c),
        None => invalid(format!("class index {index} out of range ({} classes explained)", img.classes.len())),
    }
}

unsafe fn map_of<'a>(e: *const chip_explanation, image: usize, index: usize, layer: usize) -> FfiResult<&'a Map> {
    let c = class_of(e, image, index)?;
    if layer == CHIP_REFINED {
        return c.refined.as_ref().map_or_else(|| invalid("no refined map: set chip_explain_options.refined"), Ok);
    }
    match c.maps.get(layer) {
        Some(m) => Ok(m),
        None => invalid(format!("layer {layer} out of range (the explainer has {} layers)", (*e).layers)),
    }
}

/// Frees an explanation.
/// \param explanation The explanation, or NULL (ignored).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_free(explanation: *mut chip_explanation) {
    free_handle(explanation)
}

/// The number of images in an explanation.
/// \param explanation The explanation.
/// \param out Receives the number of images.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_image_count(explanation: *const chip_explanation, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(explanation, "explanation")?.images.len()))
}

/// The original size of an image in pixels.
/// \param explanation The explanation.
/// \param image The image's index, below chip_explanation_image_count.
/// \param out Receives the size.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_image_size(
    explanation: *const chip_explanation,
    image: usize,
    out: *mut chip_size,
) -> chip_status {
    guard(|| set(out, "out", image_of(explanation, image)?.size.into()))
}

/// The class probabilities of an image.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param buf, len, out_len One float per class (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_probabilities(
    explanation: *const chip_explanation,
    image: usize,
    buf: *mut f32,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| write_buf(&image_of(explanation, image)?.probabilities, buf, len, out_len, "probabilities"))
}

/// The number of top classes of an image (at most 5).
/// \param explanation The explanation.
/// \param image The image's index.
/// \param out Receives the number of top classes.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_top_count(explanation: *const chip_explanation, image: usize, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", image_of(explanation, image)?.top.len()))
}

/// Writes a class id and its probability to two required outputs.
unsafe fn write_class(class: usize, p: f32, out_class: *mut usize, out_probability: *mut f32) -> FfiResult {
    let c = deref_mut(out_class, "out_class")?;
    set(out_probability, "out_probability", p)?;
    *c = class;
    Ok(())
}

/// A top class of an image, with its probability.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param rank The rank, 0 for the most probable class, below chip_explanation_top_count.
/// \param out_class Receives the class id.
/// \param out_probability Receives its probability.
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
            return invalid(format!("rank {rank} out of range ({} top classes)", img.top.len()));
        };
        write_class(class, p, out_class, out_probability)
    })
}

/// The number of explained classes of an image (top_k or the requested ids).
/// \param explanation The explanation.
/// \param image The image's index.
/// \param out Receives the number of explained classes.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_class_count(explanation: *const chip_explanation, image: usize, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", image_of(explanation, image)?.classes.len()))
}

/// An explained class of an image: its class id and probability.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param index The explained class's index, below chip_explanation_class_count.
/// \param out_class Receives the class id.
/// \param out_probability Receives its probability.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_class(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    out_class: *mut usize,
    out_probability: *mut f32,
) -> chip_status {
    guard(|| {
        let c = class_of(explanation, image, index)?;
        write_class(c.class, c.probability, out_class, out_probability)
    })
}

/// The number of maps per explained class (the explainer's fitted layers; the refined map is extra).
/// \param explanation The explanation.
/// \param out Receives the number of layers.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_layer_count(explanation: *const chip_explanation, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(explanation, "explanation")?.layers))
}

/// The size of a map: the original image size, or the model's input size (see
/// chip_explain_options.original_size).
/// \param explanation The explanation.
/// \param image The image's index.
/// \param index The explained class's index.
/// \param layer The layer's index, or CHIP_REFINED.
/// \param out Receives the size.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_map_size(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    out: *mut chip_size,
) -> chip_status {
    guard(|| {
        let m = map_of(explanation, image, index, layer)?;
        // Maps are at most MAX_SIDE on a side, as the images they belong to.
        set(out, "out", chip_size { width: m.width as u32, height: m.height as u32 })
    })
}

/// A map, row-major height x width floats.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param index The explained class's index.
/// \param layer The layer's index, or CHIP_REFINED.
/// \param buf, len, out_len The map (buffer convention).
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
    guard(|| write_buf(&map_of(explanation, image, index, layer)?.data, buf, len, out_len, "map"))
}

/// The localization box of a map: the largest connected region above threshold * max.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param index The explained class's index.
/// \param layer The layer's index, or CHIP_REFINED.
/// \param out Receives the box; no box (all corners -1) when the map has no positive value.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_box(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    out: *mut chip_box,
) -> chip_status {
    guard(|| set(out, "out", map_of(explanation, image, index, layer)?.bbox.into()))
}

/// Whether the fit of a map's layer solved its class. A fit made with chip_fit_options.classes
/// solves only those classes; a top-k explanation may still pick another one, whose map is then
/// all zero with no box: this tells such a map from one that is empty for the photo.
/// \param explanation The explanation.
/// \param image The image's index.
/// \param index The explained class's index.
/// \param layer The layer's index, or CHIP_REFINED (solved when both of its layers' fits solved
/// the class).
/// \param out Receives true when the class was solved, false when its map is empty for that reason.
#[no_mangle]
pub unsafe extern "C" fn chip_explanation_map_solved(
    explanation: *const chip_explanation,
    image: usize,
    index: usize,
    layer: usize,
    out: *mut bool,
) -> chip_status {
    guard(|| set(out, "out", map_of(explanation, image, index, layer)?.solved))
}
