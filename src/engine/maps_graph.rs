//! The map nodes shared by `chip export` and the explainer: for given classes and each fit,
//! map = Resize_bilinear(ReLU(Σ_k W[c,k]·A_k)) at the model's input size, inside the ONNX graph.
use crate::engine::fitfile::LayerFit;
use crate::engine::fitset::FitSet;
use crate::error::{Error, Result};
use crate::onnx::builder::{fixed, int_attr, str_attr, symbolic, value_info, Builder, FLOAT, INT64};
use crate::onnx::OnnxModel;
use crate::runtime::model::Model;
use onnx_protobuf::{tensor_shape_proto, type_proto};
use std::collections::HashSet;

/// Prefix of every tensor and node the library adds to a graph.
pub const PREFIX: &str = "chip/";
const MIN_OPSET: i64 = 13;

/// Input of [`explain_graph`]: int64 [N, J], J distinct classes per image; −1 everywhere selects
/// the J most probable classes instead.
pub const EXPLAIN_CLASSES_INPUT: &str = "chip/classes";
/// Output of [`explain_graph`]: int64 [N, J], the classes the maps are for.
pub const EXPLAIN_SELECTED_OUTPUT: &str = "chip/selected";

/// The model the explainer runs: the original outputs, then [`EXPLAIN_SELECTED_OUTPUT`], then
/// per fit (in the order given) `chip/maps/<i>`, float [N, J, H, W] at the model's input size,
/// built by the same nodes as [`export`]'s maps.
pub fn explain_graph(model: &Model, set: &FitSet) -> Result<OnnxModel> {
    let fits = set.fits();
    let mut proto = extendable(&model.onnx, &[])?;
    let batch = batch_dim(&model.onnx)?;
    let (iw, ih) = model.input_size().as_usize();
    let mut b = Builder::new(PREFIX);
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
    let j = symbolic("chip_classes");
    graph.input.push(value_info(EXPLAIN_CLASSES_INPUT, INT64, vec![batch.clone(), j.clone()]));
    graph.output.push(value_info(EXPLAIN_SELECTED_OUTPUT, INT64, vec![batch.clone(), j.clone()]));
    for m in maps {
        graph.output.push(value_info(&m, FLOAT, vec![batch.clone(), j.clone(), fixed(ih), fixed(iw)]));
    }
    Ok(OnnxModel { proto })
}

/// The nodes shared by [`export`] and [`explain_graph`]: for `classes` (int64 [N, J]) and each fit,
/// the maps float [N, J, H, W] at the model's input size. Returns their names, in the fits' order.
pub fn map_nodes(b: &mut Builder, model: &Model, fits: &[LayerFit], classes: &str) -> Vec<String> {
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

/// A copy of the model's proto that nodes can be added to: opset 13 or later, no tensor named like
/// the added ones.
pub fn extendable(base: &OnnxModel, reserved: &[&str]) -> Result<onnx_protobuf::ModelProto> {
    let proto = base.proto.clone();
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
    let clash = reserved
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

/// The image input's batch dimension (symbolic or fixed), reused for the added inputs and outputs.
pub fn batch_dim(base: &OnnxModel) -> Result<tensor_shape_proto::Dimension> {
    let name = base.image_input()?.name;
    let graph = base.proto.graph.as_ref().ok_or_else(|| Error::Model("the model has no graph".into()))?;
    let input = graph.input.iter().find(|v| v.name == name);
    let dim = input.and_then(|v| match v.type_.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(tt)) => tt.shape.as_ref().and_then(|s| s.dim.first().cloned()),
        _ => None,
    });
    dim.ok_or_else(|| Error::Model(format!("input '{name}' has no batch dimension")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fitfile::FitMeta;

    fn fit(classes: usize, channels: usize, solved: Vec<usize>) -> LayerFit {
        let meta = FitMeta {
            layer: "l".into(), channels, height: 1, width: 1, classes, model_fingerprint: String::new(),
            gates: 1, sigma2_rel: 0.5, seed: 0, images: 1, admm: Default::default(),
            objective: crate::math::objective::paper(), augment: 0, mosaics: 0, solved_classes: solved, preprocess: None,
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
