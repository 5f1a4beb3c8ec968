//! ONNX graph surgery on the protobuf (onnx-protobuf), lossless for everything it does not touch:
//! candidate layers, the augmented model (layer tensors as extra outputs), and the split at a layer.
use crate::error::{Error, Result};
use onnx_protobuf::{
    tensor_proto::DataType, type_proto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto,
};
use protobuf::{Enum, Message, MessageField};
use std::collections::{HashMap, HashSet};

pub mod builder;
pub mod head;
mod split;
mod types;
use types::infer_types;

/// A parsed ONNX model. Unknown protobuf fields survive a round trip.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    pub proto: onnx_protobuf::ModelProto,
}

/// The model's single image input: 4-D, float32, float16 or uint8, NCHW or NHWC, 3 (or 1) channels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInput {
    pub name: String,
    pub channels: usize,
    /// None when the dimension is symbolic.
    pub height: Option<usize>,
    pub width: Option<usize>,
    /// None when the shape cannot tell (no channel axis of size 1 or 3 is fixed, or both are).
    pub layout: Option<Layout>,
    pub elem_type: InputType,
}

/// Where the channel axis of an image tensor is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    NCHW,
    NHWC,
}

/// The element type of an image input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputType {
    Float32,
    Float16,
    Uint8,
}

impl InputType {
    /// The ONNX TensorProto data type.
    pub fn onnx(self) -> i32 {
        match self {
            InputType::Float32 => FLOAT,
            InputType::Float16 => 10,
            InputType::Uint8 => 2,
        }
    }
}

/// A tensor produced by a node whose op type can yield a 4-D feature map (Conv, Relu, Clip,
/// BatchNormalization, Add, pooling, ...). Whether it really is 4-D is decided by running the model.
/// Only tensors computed from a convolution's output count (normalisation of the input image and the
/// like are no layers); a known element type other than float or a known rank other than 4 rules a
/// tensor out, as does being a model output.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    pub tensor: String,
    pub op_type: String,
    pub node_index: usize,
}

/// A model cut at a layer: the prefix computes every tensor that crosses the cut, the suffix
/// computes the original outputs from them. `crossing[0]` is the layer itself.
#[derive(Clone, Debug)]
pub struct Split {
    pub prefix: OnnxModel,
    pub suffix: OnnxModel,
    pub crossing: Vec<String>,
}

/// Op types (default domain) whose first output can be a spatial feature map. Global pooling,
/// Flatten, Gemm, Reshape and Softmax are left out: their outputs have no spatial extent to explain.
/// So is Pad: its output is its input with a border (TF-style "same" padding before a conv).
const FEATURE_MAP_OPS: &[&str] = &[
    "Conv", "ConvTranspose", "Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "Sigmoid",
    "HardSigmoid", "HardSwish", "Mish", "Gelu", "Softplus", "Softsign", "ThresholdedRelu", "Tanh", "Mul",
    "Add", "Sub", "Div", "Max", "Min", "Sum", "Mean", "BatchNormalization", "InstanceNormalization",
    "GroupNormalization", "LRN", "MaxPool", "AveragePool", "LpPool", "Concat", "Resize", "Upsample",
    "DepthToSpace", "SpaceToDepth",
];

/// Convolutions: a feature map lies downstream of one (what comes before is image preprocessing).
fn is_conv(n: &NodeProto) -> bool {
    match n.domain.as_str() {
        "" | "ai.onnx" => matches!(n.op_type.as_str(), "Conv" | "ConvTranspose" | "ConvInteger" | "QLinearConv"),
        "com.microsoft" => matches!(n.op_type.as_str(), "FusedConv" | "NhwcConv" | "QLinearConv"),
        _ => false,
    }
}

const FLOAT: i32 = 1;
const INT64: i32 = 7;
const BOOL: i32 = 9;

fn model_err(msg: impl Into<String>) -> Error {
    Error::Model(msg.into())
}

fn elem_name(t: i32) -> String {
    match DataType::from_i32(t) {
        Some(d) => format!("{d:?}").to_lowercase(),
        None => format!("type {t}"),
    }
}

fn is_default_domain(d: &str) -> bool {
    d.is_empty() || d == "ai.onnx"
}

impl OnnxModel {
    /// Parses bytes; a corrupt or empty buffer gives Error::Model naming the problem.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.is_empty() {
            return Err(model_err("empty model (0 bytes)"));
        }
        let proto = ModelProto::parse_from_bytes(bytes)
            .map_err(|e| model_err(format!("not an ONNX model ({} bytes): protobuf parse failed: {e}", bytes.len())))?;
        let model = OnnxModel { proto };
        let g = model.graph().map_err(|_| {
            model_err(format!("not an ONNX model ({} bytes): no graph", bytes.len()))
        })?;
        if g.node.is_empty() {
            return Err(model_err("the model graph has no nodes"));
        }
        if g.output.is_empty() {
            return Err(model_err("the model graph has no outputs"));
        }
        // ONNX dimensions are ≥ 0 (-1 is read as unknown); ONNX Runtime passes others on unchecked.
        for (what, v) in g.input.iter().map(|v| ("input", v)).chain(g.output.iter().map(|v| ("output", v))) {
            if let Some(type_proto::Value::TensorType(t)) = v.type_.as_ref().and_then(|t| t.value.as_ref()) {
                let dims = t.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or_default();
                if let Some(d) = dims.iter().filter(|d| d.has_dim_value()).map(|d| d.dim_value()).find(|&d| d < -1) {
                    return Err(model_err(format!("{what} '{}' has dimension {d} (dimensions are ≥ 0, or -1 for unknown)", v.name)));
                }
            }
        }
        if let Some((t, d)) = g.initializer.iter().find_map(|t| t.dims.iter().find(|&&d| d < 0).map(|&d| (t, d))) {
            return Err(model_err(format!("weight '{}' has dimension {d} (dimensions are ≥ 0)", t.name)));
        }
        // Every tensor has one definition (ONNX's single assignment); surgery relies on it.
        let mut defined: HashSet<&str> =
            g.input.iter().map(|v| v.name.as_str()).chain(g.initializer.iter().map(|t| t.name.as_str())).collect();
        for n in &g.node {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if !defined.insert(o.as_str()) {
                    return Err(model_err(format!(
                        "tensor '{o}' is defined twice (output of node '{}' ({}) and an earlier definition)",
                        n.name, n.op_type
                    )));
                }
            }
        }
        // An output nothing computes would leave a split without nodes to run.
        let known: HashSet<&str> = g
            .node
            .iter()
            .flat_map(|n| n.output.iter())
            .chain(g.input.iter().map(|v| &v.name))
            .chain(g.initializer.iter().map(|t| &t.name))
            .map(|s| s.as_str())
            .collect();
        if let Some(o) = g.output.iter().find(|o| !known.contains(o.name.as_str())) {
            return Err(model_err(format!("model output '{}' is not computed by any node", o.name)));
        }
        if let Some(n) = node_in_cycle(g) {
            return Err(model_err(format!("the model graph has a cycle through node '{}' ({})", n.name, n.op_type)));
        }
        Ok(model)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.proto.write_to_bytes().map_err(|e| model_err(format!("cannot serialize the model: {e}")))
    }

    fn graph(&self) -> Result<&GraphProto> {
        self.proto.graph.as_ref().ok_or_else(|| model_err("the model has no graph"))
    }

    /// Error::Model when there is not exactly one 4-D float input (initializers excluded).
    pub fn image_input(&self) -> Result<ImageInput> {
        let g = self.graph()?;
        let inits = initializer_names(g);
        let inputs: Vec<&ValueInfoProto> = g.input.iter().filter(|i| !inits.contains(i.name.as_str())).collect();
        let vi = match inputs.as_slice() {
            [one] => *one,
            [] => return Err(model_err("the model has no input (every graph input is an initializer)")),
            many => {
                let names: Vec<&str> = many.iter().map(|i| i.name.as_str()).collect();
                return Err(model_err(format!(
                    "the model has {} inputs ({}); exactly one image input is supported",
                    many.len(),
                    names.join(", ")
                )));
            }
        };
        let name = &vi.name;
        let tt = match vi.type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(tt)) => tt,
            _ => return Err(model_err(format!("input '{name}' is not a tensor"))),
        };
        let elem_type = match tt.elem_type {
            FLOAT => InputType::Float32,
            10 => InputType::Float16,
            2 => InputType::Uint8,
            other => {
                return Err(model_err(format!(
                    "input '{name}' has element type {}; a float32, float16 or uint8 image input is required",
                    elem_name(other)
                )))
            }
        };
        let dims: Vec<Option<i64>> = match tt.shape.as_ref() {
            Some(s) => s.dim.iter().map(|d| if d.has_dim_value() { Some(d.dim_value()) } else { None }).collect(),
            None => return Err(model_err(format!("input '{name}' has no shape; a 4-D image input (NCHW or NHWC) is required"))),
        };
        let shown: Vec<String> = dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect();
        let shown = format!("[{}]", shown.join(", "));
        if dims.len() != 4 {
            return Err(model_err(format!(
                "input '{name}' has shape {shown} (rank {}); a 4-D image input (NCHW or NHWC) is required",
                dims.len()
            )));
        }
        let is_c = |d: Option<i64>| matches!(d, Some(1 | 3));
        let layout = match (is_c(dims[1]), is_c(dims[3])) {
            (true, false) => Some(Layout::NCHW),
            (false, true) => Some(Layout::NHWC),
            (true, true) => None,
            (false, false) if dims[1].is_none() && dims[3].is_none() => None,
            (false, false) => {
                return Err(model_err(format!(
                    "input '{name}' has shape {shown}: neither dimension 1 (NCHW) nor dimension 3 (NHWC) is 1 or 3 channels"
                )))
            }
        };
        let (c, hh, ww) = match layout {
            Some(Layout::NHWC) => (dims[3], dims[1], dims[2]),
            _ => (dims[1], dims[2], dims[3]),
        };
        let spatial = |d: Option<i64>| d.filter(|&v| v > 0).map(|v| v as usize);
        Ok(ImageInput { name: name.clone(), channels: c.filter(|&v| v > 0).unwrap_or(3) as usize, height: spatial(hh), width: spatial(ww), layout, elem_type })
    }

    /// The model with a float32 NCHW input `new_input` ([batch, 3, height, width], the batch
    /// dimension copied from the original) that feeds the original image input through a Transpose
    /// (NHWC) and a Cast (uint8, float16): every pass of the library then works on NCHW floats, while
    /// the original graph is untouched below the adapter.
    pub fn with_nchw_float_input(&self, input: &ImageInput, layout: Layout, height: usize, width: usize, new_input: &str) -> Result<OnnxModel> {
        use crate::onnx::builder::{fixed, ints_attr, value_info, Builder};
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().ok_or_else(|| model_err("the model has no graph"))?;
        let pos = graph.input.iter().position(|v| v.name == input.name).ok_or_else(|| model_err(format!("input '{}' not found", input.name)))?;
        let batch = match graph.input[pos].type_.as_ref().and_then(|t| t.value.as_ref()) {
            Some(type_proto::Value::TensorType(tt)) => tt.shape.as_ref().and_then(|s| s.dim.first().cloned()),
            _ => None,
        }
        .ok_or_else(|| model_err(format!("input '{}' has no batch dimension", input.name)))?;
        let mut b = Builder::new(&format!("{new_input}/"));
        let mut current = new_input.to_string();
        let steps = usize::from(layout == Layout::NHWC) + usize::from(input.elem_type != InputType::Float32);
        let mut done = 0;
        let mut next = |b: &mut Builder, op: &str, from: &str, attrs| {
            done += 1;
            let out = if done == steps { input.name.clone() } else { format!("{new_input}/{op}") };
            b.node(op, &[from], &out, attrs)
        };
        if layout == Layout::NHWC {
            current = next(&mut b, "Transpose", &current, vec![ints_attr("perm", &[0, 2, 3, 1])]);
        }
        if input.elem_type != InputType::Float32 {
            current = next(&mut b, "Cast", &current, vec![crate::onnx::builder::int_attr("to", input.elem_type.onnx() as i64)]);
        }
        if current != input.name {
            return Err(model_err("the input needs no adapter"));
        }
        let vi = value_info(new_input, FLOAT, vec![batch, fixed(3), fixed(height), fixed(width)]);
        graph.input[pos] = vi;
        let mut nodes = b.nodes;
        nodes.extend(std::mem::take(&mut graph.node));
        graph.node = nodes;
        Ok(OnnxModel { proto })
    }

    /// The op type of the node that produces `tensor`, looking through Identity, Flatten, Reshape and
    /// Squeeze (shape-only ops a final Softmax or Sigmoid may hide behind).
    pub fn producer_op(&self, tensor: &str) -> Option<String> {
        let g = self.graph().ok()?;
        let mut name = tensor.to_string();
        for _ in 0..8 {
            let n = g.node.iter().rev().find(|n| n.output.iter().any(|o| *o == name))?;
            match n.op_type.as_str() {
                "Identity" | "Flatten" | "Reshape" | "Squeeze" => name = n.input.first()?.clone(),
                op => return Some(op.to_string()),
            }
        }
        None
    }

    pub fn output_names(&self) -> Vec<String> {
        match self.graph() {
            Ok(g) => g.output.iter().map(|o| o.name.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Candidate layer tensors in graph order.
    pub fn candidates(&self) -> Vec<Candidate> {
        let Ok(g) = self.graph() else { return Vec::new() };
        let types = infer_types(g);
        let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        let mut after_conv: HashSet<&str> = HashSet::new();
        for (i, n) in g.node.iter().enumerate() {
            if is_conv(n) || node_inputs(n).iter().any(|t| after_conv.contains(t.as_str())) {
                after_conv.extend(n.output.iter().map(|s| s.as_str()));
            } else {
                continue;
            }
            if !is_default_domain(&n.domain) || !FEATURE_MAP_OPS.contains(&n.op_type.as_str()) {
                continue;
            }
            let Some(t) = n.output.first().filter(|t| !t.is_empty()) else { continue };
            // A model output is never a layer: the suffix after it would be empty.
            if outputs.contains(t.as_str()) || !seen.insert(t.as_str()) {
                continue;
            }
            let ty = types.get(t.as_str()).copied().unwrap_or_default();
            if ty.elem.is_some_and(|e| e != FLOAT) || ty.rank.is_some_and(|r| r != 4) {
                continue;
            }
            out.push(Candidate { tensor: t.clone(), op_type: n.op_type.clone(), node_index: i });
        }
        out
    }

    /// Like [`candidates`](Self::candidates), but Error::Model when the model has none.
    pub fn require_candidates(&self) -> Result<Vec<Candidate>> {
        let c = self.candidates();
        if c.is_empty() {
            return Err(model_err(
                "the model has no candidate layer: no node yields a 4-D float feature map \
                 (Conv, Relu, BatchNormalization, pooling, ...)",
            ));
        }
        Ok(c)
    }

    /// The candidate names for error messages; long lists are shortened.
    fn candidate_summary(&self) -> String {
        let names: Vec<String> = self.candidates().into_iter().map(|c| c.tensor).collect();
        summarize_names(&names)
    }

    fn unknown_layer(&self, name: &str) -> Error {
        Error::UnknownLayer { name: name.to_string(), candidates: self.candidate_summary() }
    }

    /// The original outputs followed by `layers` as extra outputs (float, shape left open).
    /// Unknown tensor names give Error::UnknownLayer.
    pub fn augmented(&self, layers: &[&str]) -> Result<OnnxModel> {
        let g = self.graph()?;
        let produced: HashSet<&str> = g.node.iter().flat_map(|n| n.output.iter().map(|s| s.as_str())).collect();
        let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        let inputs: HashSet<&str> = g.input.iter().map(|o| o.name.as_str()).collect();
        let mut seen = HashSet::new();
        for &l in layers {
            if outputs.contains(l) {
                return Err(Error::invalid(format!("layer '{l}' is already a model output")));
            }
            if inputs.contains(l) {
                return Err(Error::invalid(format!(
                    "'{l}' is a model input, not a layer (candidate layers: {})",
                    self.candidate_summary()
                )));
            }
            if l.is_empty() || !produced.contains(l) {
                return Err(self.unknown_layer(l));
            }
            if !seen.insert(l) {
                return Err(Error::invalid(format!("layer '{l}' is listed twice")));
            }
        }
        let types = infer_types(g);
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked above");
        // A tensor that became an output is no longer an intermediate value.
        graph.value_info.retain(|v| !seen.contains(v.name.as_str()));
        for &l in layers {
            let elem = types.get(l).and_then(|t| t.elem).unwrap_or(FLOAT);
            graph.output.push(tensor_value_info(l, elem));
        }
        Ok(OnnxModel { proto })
    }

}

trait CloneWithoutGraph {
    fn clone_without_graph(&self) -> ModelProto;
}

impl CloneWithoutGraph for ModelProto {
    /// Every model-level field (opsets, metadata, functions, unknown fields) without copying the graph.
    fn clone_without_graph(&self) -> ModelProto {
        ModelProto {
            ir_version: self.ir_version,
            opset_import: self.opset_import.clone(),
            producer_name: self.producer_name.clone(),
            producer_version: self.producer_version.clone(),
            domain: self.domain.clone(),
            model_version: self.model_version,
            doc_string: self.doc_string.clone(),
            graph: MessageField::none(),
            metadata_props: self.metadata_props.clone(),
            training_info: self.training_info.clone(),
            functions: self.functions.clone(),
            special_fields: self.special_fields.clone(),
        }
    }
}

/// A list of layer names for error messages: in full up to 16, else the first 8, "...", the last 4
/// and the count, so a message about a 100-layer network stays readable.
pub(crate) fn summarize_names<S: AsRef<str>>(names: &[S]) -> String {
    const HEAD: usize = 8;
    const TAIL: usize = 4;
    if names.is_empty() {
        return "none: the model has no layer that yields a 4-D feature map".to_string();
    }
    let join = |part: &[S]| part.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ");
    if names.len() <= HEAD + TAIL + 4 {
        return join(names);
    }
    format!("{}, ..., {} ({} in all)", join(&names[..HEAD]), join(&names[names.len() - TAIL..]), names.len())
}

fn tensor_value_info(name: &str, elem: i32) -> ValueInfoProto {
    let tt = type_proto::Tensor { elem_type: elem, ..Default::default() };
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), ..Default::default() }),
        ..Default::default()
    }
}

/// Gives a tensor value info a shape of `rank` unnamed, unknown dimensions: runtimes read a missing
/// shape as a scalar, while unknown dimensions accept any batch and size.
fn with_open_dims(mut v: ValueInfoProto, rank: Option<usize>) -> ValueInfoProto {
    if let (Some(rank), Some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), .. })) =
        (rank, v.type_.as_mut())
    {
        let dim = vec![onnx_protobuf::tensor_shape_proto::Dimension::new(); rank];
        tt.shape = MessageField::some(onnx_protobuf::TensorShapeProto { dim, ..Default::default() });
    }
    v
}

fn initializer_names(g: &GraphProto) -> HashSet<&str> {
    g.initializer
        .iter()
        .map(|t| t.name.as_str())
        .chain(g.sparse_initializer.iter().filter_map(|s| s.values.as_ref().map(|v| v.name.as_str())))
        .collect()
}

fn used_tensors<'a>(nodes: &[usize], node_inputs: &'a [Vec<String>]) -> HashSet<&'a str> {
    nodes.iter().flat_map(|&i| node_inputs[i].iter().map(|s| s.as_str())).collect()
}

fn produced_tensors<'a>(g: &'a GraphProto, nodes: &[usize]) -> HashSet<&'a str> {
    nodes.iter().flat_map(|&i| g.node[i].output.iter().map(|s| s.as_str())).collect()
}

/// A node's inputs, including the outer-scope tensors its subgraphs (If, Loop, Scan) read.
/// Each tensor's producing node.
fn producers(g: &GraphProto) -> HashMap<&str, usize> {
    g.node
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.output.iter().filter(|o| !o.is_empty()).map(move |o| (o.as_str(), i)))
        .collect()
}

/// A node on a cycle (ONNX graphs are acyclic; surgery on a cyclic one has no prefix/suffix order).
/// Kahn's algorithm: the nodes never freed of their in-graph inputs are on or behind a cycle.
fn node_in_cycle(g: &GraphProto) -> Option<&NodeProto> {
    let producer = producers(g);
    let inputs: Vec<Vec<String>> = g.node.iter().map(node_inputs).collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); g.node.len()];
    let mut waiting = vec![0usize; g.node.len()];
    for (i, ins) in inputs.iter().enumerate() {
        for t in ins {
            if let Some(&p) = producer.get(t.as_str()) {
                consumers[p].push(i);
                waiting[i] += 1;
            }
        }
    }
    let mut ready: Vec<usize> = (0..g.node.len()).filter(|&i| waiting[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        done += 1;
        for &c in &consumers[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(c);
            }
        }
    }
    if done == g.node.len() {
        return None;
    }
    waiting.iter().position(|&w| w > 0).map(|i| &g.node[i])
}

fn node_inputs(n: &NodeProto) -> Vec<String> {
    let mut v: Vec<String> = n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
    for a in &n.attribute {
        if let Some(g) = a.g.as_ref() {
            outer_refs(g, &mut v);
        }
        for g in &a.graphs {
            outer_refs(g, &mut v);
        }
    }
    v
}

fn outer_refs(g: &GraphProto, out: &mut Vec<String>) {
    let mut defined: HashSet<String> = initializer_names(g).into_iter().map(String::from).collect();
    defined.extend(g.input.iter().map(|v| v.name.clone()));
    for n in &g.node {
        for t in node_inputs(n) {
            if !defined.contains(&t) {
                out.push(t);
            }
        }
        defined.extend(n.output.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_shortened() {
        let names: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        let s = summarize_names(&names);
        assert_eq!(s, "t0, t1, t2, t3, t4, t5, t6, t7, ..., t36, t37, t38, t39 (40 in all)");
        assert_eq!(summarize_names(&names[..3]), "t0, t1, t2");
        // Up to 16 names are listed in full; from 17 on the list is shortened.
        assert_eq!(summarize_names(&names[..16]), names[..16].join(", "));
        assert!(summarize_names(&names[..17]).ends_with("t16 (17 in all)"));
        let strs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(summarize_names(&strs), s);
        assert!(summarize_names::<&str>(&[]).starts_with("none"));
    }
}
