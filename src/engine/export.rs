//! `chip export`: the model with its CHIP maps computed inside the ONNX graph, so any ONNX runtime
//! serves explanations with no libchip at run time.
//!
//! The original graph is kept as it is (same inputs, same outputs first); nodes are appended that read
//! the fitted layers' activations and compute, for the class `chip_class` (the top-1 by ArgMax, or the
//! `chip_target_class` input where it is ≥ 0):
//! map = Resize_bilinear(ReLU(Σ_k W[c,k]·A_k)) per fit, exactly as [`crate::math::maps::class_map`] then
//! [`crate::math::maps::resize_bilinear`] (clip before resizing, half-pixel centres, no antialiasing).
use crate::error::{Error, Result};
use crate::engine::fitfile::LayerFit;
use crate::runtime::model::Model;
use crate::onnx::OnnxModel;
use crate::engine::fitset::FitSet;
use crate::engine::maps_graph::{batch_dim, extendable, map_nodes, PREFIX};
use crate::onnx::builder::{fixed, int_attr, value_info, Builder, FLOAT, INT64};
use onnx_protobuf::StringStringEntryProto;
use std::path::Path;

/// Output: the explained class per image, int64 [N].
pub const CLASS_OUTPUT: &str = "chip_class";
/// Output: one map per fit (in the order given) at the model's input size, float [N, L, H, W].
pub const MAPS_OUTPUT: &str = "chip_maps";
/// Output (two or more fits): first × last fitted layer in graph order, float [N, H, W].
pub const REFINED_OUTPUT: &str = "chip_refined";
/// Input (with `class_input`): int64 [N]; a value ≥ 0 selects that class instead of the top-1.
pub const TARGET_INPUT: &str = "chip_target_class";
/// Metadata key holding a JSON description of the fits.
pub const METADATA_KEY: &str = "chip.export";


#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Add the `chip_target_class` input.
    pub class_input: bool,
}

/// Builds the exported model. Each fit is checked against the model (fingerprint, layer, shape);
/// no fits, two fits of one layer, an ONNX opset below 13 or tensor names already taken are refused.
pub fn export(model: &Model, fits: &[LayerFit], options: &ExportOptions) -> Result<OnnxModel> {
    let set = FitSet::new(model, fits.to_vec())?;
    let refine = set.refine_pair();
    // The model as given: an NHWC, uint8 or float16 input stays as it is in the exported model.
    let base = model.source.as_ref().unwrap_or(&model.onnx);
    let mut proto = extendable(base, &[CLASS_OUTPUT, MAPS_OUTPUT, REFINED_OUTPUT, TARGET_INPUT])?;
    let batch = batch_dim(base)?;
    let (iw, ih) = model.input_size().as_usize();
    let mut b = Builder::new(PREFIX);

    // The explained class: ArgMax takes the first of equal scores, as the explainer's ranking does.
    let top1 = if options.class_input { format!("{PREFIX}top1") } else { CLASS_OUTPUT.to_string() };
    b.node("ArgMax", &[&model.output], &top1, vec![int_attr("axis", 1), int_attr("keepdims", 0)]);
    if options.class_input {
        let zero = b.int64s("zero", &[], &[0]);
        let negative = b.node("Less", &[TARGET_INPUT, &zero], &format!("{PREFIX}use_top1"), vec![]);
        b.node("Where", &[&negative, &top1, TARGET_INPUT], CLASS_OUTPUT, vec![]);
    }
    let axis1 = b.int64s("axis1", &[1], &[1]);
    let classes = b.node("Unsqueeze", &[CLASS_OUTPUT, &axis1], &format!("{PREFIX}classes"), vec![]);
    let maps = map_nodes(&mut b, model, fits, &classes);
    let map_refs: Vec<&str> = maps.iter().map(String::as_str).collect();
    b.node("Concat", &map_refs, MAPS_OUTPUT, vec![int_attr("axis", 1)]);
    if let Some((first, last)) = refine {
        let product = b.node("Mul", &[&maps[first], &maps[last]], &format!("{PREFIX}refined"), vec![]);
        b.node("Squeeze", &[&product, &axis1], REFINED_OUTPUT, vec![]);
    }

    let graph = proto.graph.as_mut().ok_or_else(|| Error::Model("the model has no graph".into()))?;
    graph.node.extend(b.nodes);
    graph.initializer.extend(b.initializers);
    if options.class_input {
        graph.input.push(value_info(TARGET_INPUT, INT64, vec![batch.clone()]));
    }
    graph.output.push(value_info(CLASS_OUTPUT, INT64, vec![batch.clone()]));
    graph.output.push(value_info(MAPS_OUTPUT, FLOAT, vec![batch.clone(), fixed(fits.len()), fixed(ih), fixed(iw)]));
    if refine.is_some() {
        graph.output.push(value_info(REFINED_OUTPUT, FLOAT, vec![batch, fixed(ih), fixed(iw)]));
    }
    proto.metadata_props.retain(|p| p.key != METADATA_KEY);
    proto.metadata_props.push(StringStringEntryProto {
        key: METADATA_KEY.to_string(),
        value: metadata(model, fits, refine, options).to_string(),
        ..Default::default()
    });
    Ok(OnnxModel { proto })
}

/// [`export`], then an atomic write of the model to `path`.
pub fn export_to_file(model: &Model, fits: &[LayerFit], options: &ExportOptions, path: &Path) -> Result<()> {
    let bytes = export(model, fits, options)?.to_bytes()?;
    crate::util::atomic::write_atomic(path, &bytes)
}

fn metadata(model: &Model, fits: &[LayerFit], refine: Option<(usize, usize)>, options: &ExportOptions) -> serde_json::Value {
    let fits: Vec<serde_json::Value> = fits
        .iter()
        .map(|f| {
            let m = &f.meta;
            serde_json::json!({
                "layer": m.layer, "channels": m.channels, "height": m.height, "width": m.width,
                "model_fingerprint": m.model_fingerprint, "lambda_rel": m.admm.lambda_rel,
                "sigma2_rel": m.sigma2_rel, "gates": m.gates, "seed": m.seed, "images": m.images,
                "solved_classes": f.solved().len(),
            })
        })
        .collect();
    let (iw, ih) = model.input_size().as_usize();
    serde_json::json!({
        "version": 1,
        "model_fingerprint": model.fingerprint,
        "input_size": [ih, iw],
        "fits": fits,
        "refined": refine.map(|(a, b)| [a, b]),
        "class_input": options.class_input,
        "preprocess": model.spec.canonical(),
    })
}
