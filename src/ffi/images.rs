//! The chip_images descriptor: one argument for image files, encoded images or a tensor.
use super::boundary::*;
use super::types::chip_size;
use super::status::chip_status::*;
use crate::engine::fit::Images;
use crate::runtime::model::Model;
use std::ffi::{c_char, c_int};
use std::path::PathBuf;

/// `n` preprocessed images at the model's input size: `len` floats, n x 3 x H x W.
pub(super) unsafe fn tensor_arg<'a>(m: &Model, p: *const f32, len: usize, n: usize, name: &str) -> FfiResult<&'a [f32]> {
    let data = slice_arg(p, len, name)?;
    m.check_batch_len(name, len, n)?;
    Ok(data)
}

/// Which kind of images a chip_images descriptor holds: one of the CHIP_IMAGES_* values. 0 is no
/// kind, so a zeroed descriptor is refused.
pub type chip_images_kind = c_int;
/// `count` image files: `paths` holds `count` UTF-8 paths.
pub const CHIP_IMAGES_FILES: chip_images_kind = 1;
/// `count` encoded images in memory (PNG, JPEG, BMP, TIFF, WebP): image i is `lens[i]` bytes at `data[i]`.
pub const CHIP_IMAGES_ENCODED: chip_images_kind = 2;
/// `count` preprocessed images: `tensor` holds `tensor_len` floats, count x 3 x H x W at the
/// model's input size (chip_model_input_size), as chip_model_preprocess_file writes them. The layout is
/// always the library's: NCHW float32, channels in the model's channel order, values after the spec's
/// scale, mean and std; whatever the model's own input (NHWC, uint8 or float16 inputs get an adapter in
/// front of the graph that transposes and casts this tensor). `tensor_len` must equal
/// count x 3 x H x W, else the call fails with CHIP_STATUS_INVALID_ARGUMENT and the message
/// "invalid argument: images->tensor holds <tensor_len> floats, but <count> images of 3xHxW need <n>".
/// `sizes` holds `count` sizes, the original sizes the maps of chip_explain are scaled to (each side
/// 1..=16384), or is NULL for the input size. Fits ignore `sizes`.
pub const CHIP_IMAGES_TENSOR: chip_images_kind = 3;

/// The images of one chip_fit_layer, chip_collect_stats or chip_explain call. Set `struct_size` to
/// sizeof(chip_images), `kind` and `count`, and the fields of that kind; the others are not read.
/// Nothing is copied beyond the call. Thread safety: read only during the call it is passed to.
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
    pub sizes: *const chip_size,
}

/// A checked chip_images descriptor.
pub(super) enum ImageArgs<'a> {
    Files(Vec<PathBuf>),
    Encoded(Vec<&'a [u8]>),
    Tensor { data: &'a [f32], n: usize, sizes: *const chip_size },
}

impl ImageArgs<'_> {
    pub(super) fn for_fit(&self) -> Images<'_> {
        match self {
            ImageArgs::Files(p) => Images::Files(p.clone()),
            ImageArgs::Encoded(b) => Images::Encoded(b.clone()),
            ImageArgs::Tensor { data, n, .. } => Images::Tensor { data, n: *n },
        }
    }
}

/// A descriptor of `kind` and `count` with no pointers set: the defaults an older, smaller caller
/// struct is completed with.
pub(super) fn images_of(kind: chip_images_kind, count: usize) -> chip_images {
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
pub(super) unsafe fn images_arg<'a>(p: *const chip_images, model: &Model) -> FfiResult<ImageArgs<'a>> {
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, "images is NULL");
    }
    // A smaller (older) descriptor is read no further than its struct_size; later fields are NULL/0.
    let first_version = std::mem::offset_of!(chip_images, paths);
    let d = &read_options(p, images_of(0, 0), first_version, "images")?;
    let n = d.count;
    if !matches!(d.kind, CHIP_IMAGES_FILES | CHIP_IMAGES_ENCODED | CHIP_IMAGES_TENSOR) {
        return invalid(format!(
            "images->kind {} is not CHIP_IMAGES_FILES (1), CHIP_IMAGES_ENCODED (2) or CHIP_IMAGES_TENSOR (3)",
            d.kind
        ));
    }
    if n == 0 {
        return invalid("images->count is 0: give at least one image");
    }
    match d.kind {
        CHIP_IMAGES_FILES => Ok(ImageArgs::Files(paths_arg(d.paths, n, "images->paths")?)),
        CHIP_IMAGES_ENCODED => {
            let ptrs = slice_arg(d.data, n, "images->data")?;
            let lens = slice_arg(d.lens, n, "images->lens")?;
            let bufs = ptrs.iter().zip(lens).enumerate().map(|(i, (&p, &l))| slice_arg(p, l, &format!("images->data[{i}]")));
            Ok(ImageArgs::Encoded(bufs.collect::<FfiResult<_>>()?))
        }
        _ => Ok(ImageArgs::Tensor { data: tensor_arg(model, d.tensor, d.tensor_len, n, "images->tensor")?, n, sizes: d.sizes }),
    }
}
