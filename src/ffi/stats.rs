//! Sharded fits: statistics per shard, saved and loaded, merged, then solved.
use super::boundary::*;
use super::fit::{chip_layer_fit, run_on_images, with_progress};
use super::images::chip_images;
use super::model::chip_model;
use super::options::{chip_fit_options, fit_options};
use super::status::chip_status;
use crate::math::stats::Stats;
use std::ffi::c_char;

/// Statistics of a fit collected on some images (a shard): additive, so the statistics of several
/// shards merge into those of all their images, and solving them gives the fit. They remember the
/// model, layer, gates, seed, target, views and mosaics they were collected with; merging or solving
/// with any of these different fails with CHIP_STATUS_FIT_MISMATCH. Thread safety: not while merged
/// into; otherwise may be read from many threads at once.
pub struct chip_stats {
    inner: Stats,
}

/// Collects the statistics of a layer on the images of one shard. Merge the shards' statistics
/// with chip_stats_merge and solve them with chip_solve. Mosaics are tiled from the images of one
/// shard, so only with `mosaics` 0 do merged shards give the fit of chip_fit_layer over all their
/// images; views (`augment`) depend only on the image.
/// \param model The model.
/// \param layer The name of a candidate layer, UTF-8.
/// \param images The shard's images, of any kind.
/// \param opts NULL for the defaults; its gates, seed, sigma2_rel, target, views and mosaics are
///        used here, its lambda_rel, rho, max_iter and classes are not.
/// \param out_stats Receives new statistics (free with chip_stats_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_collect_stats(
    model: *const chip_model,
    layer: *const c_char,
    images: *const chip_images,
    opts: *const chip_fit_options,
    out_stats: *mut *mut chip_stats,
) -> chip_status {
    run_on_images(model, layer, images, opts, out_stats, "out_stats", |m, layer, images, params, p| {
        Ok(chip_stats { inner: crate::engine::fit::collect_stats(m, layer, images, params, p)? })
    })
}

/// Adds the statistics `other` to `into`, which then holds the images of both. Fails with
/// CHIP_STATUS_FIT_MISMATCH, naming what differs, when they belong to another model, layer, gate
/// set (count, seed, sigma2_rel), target, or number of views or mosaics; `into` is then unchanged.
/// \param into The statistics to add to.
/// \param other The statistics to add (not `into` itself).
#[no_mangle]
pub unsafe extern "C" fn chip_stats_merge(into: *mut chip_stats, other: *const chip_stats) -> chip_status {
    guard(|| {
        if std::ptr::eq(into as *const chip_stats, other) && !other.is_null() {
            return invalid("into and other are the same statistics: their images would count twice");
        }
        let other = &deref(other, "other")?.inner;
        Ok(deref_mut(into, "into")?.inner.merge(other)?)
    })
}

/// Solves statistics into a fit of their layer. Fails with CHIP_STATUS_FIT_MISMATCH when the
/// statistics belong to another model.
/// \param model The model the statistics were collected with.
/// \param stats The statistics.
/// \param opts NULL for the defaults; gives lambda_rel, rho, max_iter, the classes, the objective
///        (target, intercept, nonneg) and the progress callback. Its target must be the one the
///        statistics were collected with (else CHIP_STATUS_FIT_MISMATCH); the gates, seed, sigma2
///        and image fields are not used (the statistics carry them).
/// \param out_fit Receives a new fit (free with chip_layer_fit_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_solve(
    model: *const chip_model,
    stats: *const chip_stats,
    opts: *const chip_fit_options,
    out_fit: *mut *mut chip_layer_fit,
) -> chip_status {
    guard(|| {
        let out = Out::new(out_fit, "out_fit")?;
        let m = &deref(model, "model")?.inner;
        let st = &deref(stats, "stats")?.inner;
        let (params, o) = fit_options(opts)?;
        let fit = with_progress(&o, |p| crate::engine::fit::solve(m, &st.layer, st, &params, p))?;
        out.put(chip_layer_fit { inner: fit })
    })
}

/// Writes statistics to a file: versioned and checksummed, written atomically (a failure leaves no
/// file behind).
/// \param stats The statistics.
/// \param path The file, UTF-8.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_save(stats: *const chip_stats, path: *const c_char) -> chip_status {
    save_handle(stats, "stats", path, |s, p| s.inner.save(p))
}

/// Reads statistics written by chip_stats_save (or `chip fit --stats-only`). A truncated or altered
/// file gives CHIP_STATUS_FIT_FILE, a newer format version CHIP_STATUS_FIT_VERSION.
/// \param path The file, UTF-8.
/// \param out_stats Receives new statistics (free with chip_stats_free), or NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_load(path: *const c_char, out_stats: *mut *mut chip_stats) -> chip_status {
    load_handle(path, out_stats, "out_stats", |p| Ok(chip_stats { inner: Stats::load(p)? }))
}

/// The number of images (views and mosaics included) the statistics hold.
/// \param stats The statistics.
/// \param out Receives the number of images.
#[no_mangle]
pub unsafe extern "C" fn chip_stats_image_count(stats: *const chip_stats, out: *mut usize) -> chip_status {
    guard(|| set(out, "out", deref(stats, "stats")?.inner.images))
}

/// The name of the layer the statistics were collected at.
/// \param stats The statistics.
/// \param buf, len, out_len The name (buffer convention).
#[no_mangle]
pub unsafe extern "C" fn chip_stats_layer_name(
    stats: *const chip_stats,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> chip_status {
    guard(|| write_str(&deref(stats, "stats")?.inner.layer, buf, len, out_len, "name"))
}

/// Frees statistics.
/// \param stats The statistics, or NULL (ignored).
#[no_mangle]
pub unsafe extern "C" fn chip_stats_free(stats: *mut chip_stats) {
    free_handle(stats)
}
