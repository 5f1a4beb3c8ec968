//! CAM (class activation mapping) as a fitted layer, from a GAP→linear head.
use crate::error::{Error, Result};

/// CAM as a fitted layer: W = the linear head's weights, so that [`crate::engine::explain::Explainer`] draws
/// CAM maps (max(0, Σ_k W[c,k]·A_k), the same pipeline as CHIP's) for every class. A reference to
/// compare CHIP with, not a fit: it records no gates and no images.
pub fn cam_fit(model: &crate::runtime::model::Model, layer: &str) -> Result<crate::engine::fitfile::LayerFit> {
    let info = model.layer(layer)?;
    let head = model.onnx.linear_head(layer, &model.output)?;
    if head.channels != info.channels || head.classes != model.classes {
        return Err(Error::Model(format!(
            "the linear head on '{layer}' is {}×{}, the layer has {} channels and the model {} classes",
            head.classes, head.channels, info.channels, model.classes
        )));
    }
    let meta = crate::engine::fitfile::FitMeta {
        layer: layer.to_string(),
        channels: info.channels,
        height: info.height,
        width: info.width,
        classes: model.classes,
        model_fingerprint: model.fingerprint.clone(),
        gates: 0,
        sigma2_rel: 0.0,
        seed: 0,
        images: 0,
        admm: Default::default(),
        objective: crate::math::objective::Objective { target: crate::math::objective::Target::Logit, intercept: true, nonneg: false },
        augment: 0,
        mosaics: 0,
        solved_classes: Vec::new(),
        preprocess: Some(model.spec.canonical()),
    };
    Ok(crate::engine::fitfile::LayerFit { meta, weights: head.weight })
}
