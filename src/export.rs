//! `chip export`: the model with its CHIP maps computed inside the ONNX graph, so any ONNX runtime
//! serves explanations with no libchip at run time.
//!
//! The original graph is kept as it is (same inputs, same outputs first); nodes are appended that read
//! the fitted layers' activations and compute, for the class `chip_class` (the top-1 by ArgMax, or the
//! `chip_target_class` input where it is ≥ 0):
//! map = Resize_bilinear(ReLU(Σ_k W[c,k]·A_k)) per fit, exactly as [`crate::maps::class_map`] then
//! [`crate::maps::resize_bilinear`] (clip before resizing, half-pixel centres, no antialiasing).
use crate::error::{Error, Result};
use crate::fitfile::LayerFit;
use crate::model::Model;
use crate::onnx::OnnxModel;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, NodeProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::MessageField;
use std::collections::HashSet;
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

/// Prefix of every tensor the export adds besides the outputs above.
const PREFIX: &str = "chip/";
const MIN_OPSET: i64 = 13;
const FLOAT: i32 = 1;
const INT64: i32 = 7;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Add the `chip_target_class` input.
    pub class_input: bool,
}

/// Builds the exported model. Each fit is checked against the model (fingerprint, layer, shape);
/// no fits, two fits of one layer, an ONNX opset below 13 or tensor names already taken are refused.
pub fn export(model: &Model, fits: &[LayerFit], options: &ExportOptions) -> Result<OnnxModel> {
    check_fits(model, fits)?;
    let refine = crate::explain::refine_pair(model, fits)?;
    let mut proto = extendable(model)?;
    let batch = batch_dim(model)?;
    let (iw, ih) = model.input_size().as_usize();
    let mut b = Builder::default();

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

/// Input of [`explain_graph`]: int64 [N, J], J distinct classes per image; −1 everywhere selects
/// the J most probable classes instead.
pub const EXPLAIN_CLASSES_INPUT: &str = "chip/classes";
/// Output of [`explain_graph`]: int64 [N, J], the classes the maps are for.
pub const EXPLAIN_SELECTED_OUTPUT: &str = "chip/selected";

/// The model the explainer runs: the original outputs, then [`EXPLAIN_SELECTED_OUTPUT`], then
/// per fit (in the order given) `chip/maps/<i>`, float [N, J, H, W] at the model's input size,
/// built by the same nodes as [`export`]'s maps.
pub fn explain_graph(model: &Model, fits: &[LayerFit]) -> Result<OnnxModel> {
    check_fits(model, fits)?;
    let mut proto = extendable(model)?;
    let batch = batch_dim(model)?;
    let (iw, ih) = model.input_size().as_usize();
    let mut b = Builder::default();
    // TopK ranks equal scores by index, as the explainer does; the explainer checks the ranking
    // against its own (on probabilities) and passes explicit classes where they differ.
    let shape = b.node("Shape", &[EXPLAIN_CLASSES_INPUT], &format!("{PREFIX}classes_shape"), vec![]);
    let one = b.int64s("one", &[1], &[1]);
    let k = b.node("Gather", &[&shape, &one], &format!("{PREFIX}k"), vec![int_attr("axis", 0)]);
    let ranked = format!("{PREFIX}ranked");
    b.node_outputs("TopK", &[&model.output, &k], &[&format!("{PREFIX}ranked_scores"), &ranked], vec![int_attr("axis", 1)]);
    let zero = b.int64s("zero", &[], &[0]);
    let negative = b.node("Less", &[EXPLAIN_CLASSES_INPUT, &zero], &format!("{PREFIX}use_ranked"), vec![]);
    b.node("Where", &[&negative, &ranked, EXPLAIN_CLASSES_INPUT], EXPLAIN_SELECTED_OUTPUT, vec![]);
    let maps = map_nodes(&mut b, model, fits, EXPLAIN_SELECTED_OUTPUT);

    let graph = proto.graph.as_mut().ok_or_else(|| Error::Model("the model has no graph".into()))?;
    graph.node.extend(b.nodes);
    graph.initializer.extend(b.initializers);
    let j = tensor_shape_proto::Dimension {
        value: Some(tensor_shape_proto::dimension::Value::DimParam("chip_classes".into())),
        ..Default::default()
    };
    graph.input.push(value_info(EXPLAIN_CLASSES_INPUT, INT64, vec![batch.clone(), j.clone()]));
    graph.output.push(value_info(EXPLAIN_SELECTED_OUTPUT, INT64, vec![batch.clone(), j.clone()]));
    for m in maps {
        graph.output.push(value_info(&m, FLOAT, vec![batch.clone(), j.clone(), fixed(ih), fixed(iw)]));
    }
    Ok(OnnxModel { proto })
}

/// The nodes shared by [`export`] and [`explain_graph`]: for `classes` (int64 [N, J]) and each fit,
/// the maps float [N, J, H, W] at the model's input size. Returns their names, in the fits' order.
fn map_nodes(b: &mut Builder, model: &Model, fits: &[LayerFit], classes: &str) -> Vec<String> {
    let (iw, ih) = model.input_size().as_usize();
    // Output size [N, J, H, W] of every resized map.
    let nj = b.node("Shape", &[classes], &format!("{PREFIX}n_j"), vec![]);
    let hw = b.int64s("h_w", &[2], &[ih as i64, iw as i64]);
    let sizes = b.node("Concat", &[&nj, &hw], &format!("{PREFIX}sizes"), vec![int_attr("axis", 0)]);
    let zero = b.floats("zero_f", &[], &[0.0]);
    let mut maps = Vec::with_capacity(fits.len());
    for (i, f) in fits.iter().enumerate() {
        let m = &f.meta;
        let (k, h, w) = (m.channels as i64, m.height as i64, m.width as i64);
        let (rows, index) = solved_rows(f);
        let p = |s: &str| format!("{PREFIX}{i}/{s}");
        let weights = b.floats(&format!("{i}/weights"), &[(rows.len() / m.channels) as i64, k], &rows);
        let class_row = b.int64s(&format!("{i}/class_row"), &[index.len() as i64], &index);
        let row = b.node("Gather", &[&class_row, classes], &p("row"), vec![]);
        let wc = b.node("Gather", &[&weights, &row], &p("w_jk"), vec![int_attr("axis", 0)]);
        let flat_shape = b.int64s(&format!("{i}/act_shape"), &[3], &[0, k, h * w]);
        let act = b.node("Reshape", &[&m.layer, &flat_shape], &p("act_k_hw"), vec![]);
        // [N,J,K] × [N,K,HW]: one batched product gives Σ_k w_k A_k for every class and pixel.
        let sum = b.node("MatMul", &[&wc, &act], &p("sum"), vec![]);
        let map_shape = b.int64s(&format!("{i}/map_shape"), &[4], &[0, -1, h, w]);
        let sum = b.node("Reshape", &[&sum, &map_shape], &p("sum_j_h_w"), vec![]);
        // A NaN pixel becomes 0 and the map is clipped before resizing, as the library does.
        let nan = b.node("IsNaN", &[&sum], &p("nan"), vec![]);
        let sum = b.node("Where", &[&nan, &zero, &sum], &p("finite"), vec![]);
        let clipped = b.node("Relu", &[&sum], &p("clipped"), vec![]);
        let name = if classes == EXPLAIN_SELECTED_OUTPUT { format!("{PREFIX}maps/{i}") } else { p("map") };
        let resized = b.node(
            "Resize",
            &[&clipped, "", "", &sizes],
            &name,
            vec![str_attr("mode", "linear"), str_attr("coordinate_transformation_mode", "half_pixel")],
        );
        maps.push(resized);
    }
    maps
}

fn check_fits(model: &Model, fits: &[LayerFit]) -> Result<()> {
    if fits.is_empty() {
        return Err(Error::invalid("export needs at least one fit (--fit FILE)"));
    }
    for (i, f) in fits.iter().enumerate() {
        f.check_against(model)?;
        if fits[..i].iter().any(|g| g.meta.layer == f.meta.layer) {
            return Err(Error::invalid(format!("two fits of layer '{}'; give one per layer", f.meta.layer)));
        }
    }
    Ok(())
}

/// A copy of the model's proto that nodes can be added to: opset 13 or later, no tensor named like
/// the added ones.
fn extendable(model: &Model) -> Result<onnx_protobuf::ModelProto> {
    let proto = model.onnx.proto.clone();
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(0);
    if opset < MIN_OPSET {
        return Err(Error::Model(format!(
            "the model imports ONNX opset {opset}; export needs opset {MIN_OPSET} or later (convert the model first)"
        )));
    }
    let graph = proto.graph.as_ref().ok_or_else(|| Error::Model("the model has no graph".into()))?;
    let taken: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().chain(std::iter::once(&n.name)))
        .chain(graph.input.iter().map(|v| &v.name))
        .chain(graph.output.iter().map(|v| &v.name))
        .chain(graph.initializer.iter().map(|t| &t.name))
        .map(String::as_str)
        .collect();
    let clash = [CLASS_OUTPUT, MAPS_OUTPUT, REFINED_OUTPUT, TARGET_INPUT]
        .iter()
        .copied()
        .find(|n| taken.contains(n))
        .map(str::to_string)
        .or_else(|| taken.iter().find(|n| n.starts_with(PREFIX)).map(|n| n.to_string()));
    if let Some(name) = clash {
        return Err(Error::Model(format!(
            "the model already has a tensor or node named '{name}' (was it exported before?); export the original model"
        )));
    }
    Ok(proto)
}

fn fixed(v: usize) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimValue(v as i64)), ..Default::default() }
}

/// [`export`], then an atomic write of the model to `path`.
pub fn export_to_file(model: &Model, fits: &[LayerFit], options: &ExportOptions, path: &Path) -> Result<()> {
    let bytes = export(model, fits, options)?.to_bytes()?;
    crate::error::write_atomic(path, &bytes)
}

/// The solved classes' rows of W followed by one zero row, and the class → row index. Unsolved
/// classes point at the zero row, so their maps are zero, as the explainer's are.
fn solved_rows(f: &LayerFit) -> (Vec<f32>, Vec<i64>) {
    let m = &f.meta;
    if m.solved_classes.is_empty() {
        return (f.weights.clone(), (0..m.classes as i64).collect());
    }
    let solved = f.solved();
    let zero = solved.len() as i64;
    let mut index = vec![zero; m.classes];
    let mut rows = Vec::with_capacity((solved.len() + 1) * m.channels);
    for (r, &c) in solved.iter().enumerate() {
        index[c] = r as i64;
        rows.extend_from_slice(f.row(c));
    }
    rows.resize((solved.len() + 1) * m.channels, 0.0);
    (rows, index)
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
    })
}

/// The image input's batch dimension (symbolic or fixed), reused for the added inputs and outputs.
fn batch_dim(model: &Model) -> Result<tensor_shape_proto::Dimension> {
    let graph = model.onnx.proto.graph.as_ref().ok_or_else(|| Error::Model("the model has no graph".into()))?;
    let input = graph.input.iter().find(|v| v.name == model.input.name);
    let dim = input.and_then(|v| match v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(tt)) => tt.shape.as_ref().and_then(|s| s.dim.first().cloned()),
        _ => None,
    });
    dim.ok_or_else(|| Error::Model(format!("input '{}' has no batch dimension", model.input.name)))
}

fn value_info(name: &str, elem: i32, dims: Vec<tensor_shape_proto::Dimension>) -> ValueInfoProto {
    let tt = type_proto::Tensor {
        elem_type: elem,
        shape: MessageField::some(TensorShapeProto { dim: dims, ..Default::default() }),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), ..Default::default() }),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, type_: AttributeType::INT.into(), ..Default::default() }
}

fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: v.as_bytes().to_vec(), type_: AttributeType::STRING.into(), ..Default::default() }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl Builder {
    /// Appends a node with one output and returns that output's name.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> String {
        self.node_outputs(op, inputs, &[output], attribute);
        output.to_string()
    }

    fn node_outputs(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: format!("{PREFIX}{}/{op}", self.nodes.len()),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    fn int64s(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, INT64, dims, raw)
    }

    fn floats(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, FLOAT, dims, raw)
    }

    fn tensor(&mut self, name: &str, data_type: i32, dims: &[i64], raw_data: Vec<u8>) -> String {
        let name = format!("{PREFIX}{name}");
        self.initializers.push(TensorProto {
            name: name.clone(),
            data_type,
            dims: dims.to_vec(),
            raw_data,
            ..Default::default()
        });
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fitfile::FitMeta;

    fn fit(classes: usize, channels: usize, solved: Vec<usize>) -> LayerFit {
        let meta = FitMeta {
            layer: "l".into(), channels, height: 1, width: 1, classes, model_fingerprint: String::new(),
            gates: 1, sigma2_rel: 0.5, seed: 0, images: 1, admm: Default::default(),
            objective: crate::objective::paper(), augment: 0, mosaics: 0, solved_classes: solved,
        };
        let weights = (0..classes * channels).map(|i| i as f32 + 1.0).collect();
        LayerFit { meta, weights }
    }

    #[test]
    fn only_solved_rows_are_stored_and_others_point_at_a_zero_row() {
        let f = fit(5, 2, vec![3, 1]);
        let (rows, index) = solved_rows(&f);
        assert_eq!(rows, vec![3.0, 4.0, 7.0, 8.0, 0.0, 0.0]);
        assert_eq!(index, vec![2, 0, 2, 1, 2]);
        let all = fit(3, 2, vec![]);
        assert_eq!(solved_rows(&all), (all.weights.clone(), vec![0, 1, 2]));
    }
}
