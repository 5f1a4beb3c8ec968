//! Element types and ranks of a graph's tensors, inferred where the graph does not declare them.
use super::*;

/// Element type and rank of a tensor, where known.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Ty {
    pub(super) elem: Option<i32>,
    pub(super) rank: Option<usize>,
}

pub(super) fn declared(t: &TypeProto) -> Ty {
    match &t.value {
        Some(type_proto::Value::TensorType(tt)) => Ty {
            elem: (tt.elem_type != 0).then_some(tt.elem_type),
            rank: tt.shape.as_ref().map(|s| s.dim.len()),
        },
        _ => Ty::default(),
    }
}

pub(super) fn tensor_ints(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != INT64 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    if t.raw_data.len().is_multiple_of(8) {
        return Some(t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect());
    }
    None
}

pub(super) fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a onnx_protobuf::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// A light, local type and rank propagation (declared types win). It lets candidates skip
/// integer shape arithmetic and non-4-D tensors, and gives extra outputs the right element type.
pub(super) fn infer_types(g: &GraphProto) -> HashMap<&str, Ty> {
    let mut ty: HashMap<&str, Ty> = HashMap::new();
    let mut ints: HashMap<&str, Vec<i64>> = HashMap::new();
    for t in &g.initializer {
        ty.insert(&t.name, Ty { elem: Some(t.data_type), rank: Some(t.dims.len()) });
        if let Some(v) = tensor_ints(t) {
            ints.insert(&t.name, v);
        }
    }
    for v in g.input.iter().chain(&g.output).chain(&g.value_info) {
        if let Some(t) = v.type_.as_ref() {
            let d = declared(t);
            let e = ty.entry(&v.name).or_default();
            e.elem = e.elem.or(d.elem);
            e.rank = e.rank.or(d.rank);
        }
    }
    for n in &g.node {
        let get = |i: usize| -> Ty {
            n.input.get(i).filter(|s| !s.is_empty()).and_then(|s| ty.get(s.as_str()).copied()).unwrap_or_default()
        };
        let ints_of = |i: usize| -> Option<&Vec<i64>> { n.input.get(i).and_then(|s| ints.get(s.as_str())) };
        let attr_i = |name: &str| attr(n, name).map(|a| a.i);
        let axes_len = |input: usize| -> Option<usize> {
            match attr(n, "axes") {
                Some(a) => Some(a.ints.len()),
                None => ints_of(input).map(|v| v.len()),
            }
        };
        let in0 = get(0);
        let all_ranks = || -> Option<usize> {
            let r: Option<Vec<usize>> =
                n.input.iter().enumerate().filter(|(_, s)| !s.is_empty()).map(|(i, _)| get(i).rank).collect();
            r.and_then(|r| r.into_iter().max())
        };
        let mut constant: Option<Vec<i64>> = None;
        let out = if !is_default_domain(&n.domain) {
            Ty::default()
        } else {
            match n.op_type.as_str() {
                "Shape" => Ty { elem: Some(INT64), rank: Some(1) },
                "Size" => Ty { elem: Some(INT64), rank: Some(0) },
                "NonZero" => Ty { elem: Some(INT64), rank: Some(2) },
                "Cast" => Ty { elem: attr_i("to").map(|v| v as i32), rank: in0.rank },
                "CastLike" => Ty { elem: get(1).elem, rank: in0.rank },
                "Constant" => {
                    if let Some(a) = attr(n, "value").and_then(|a| a.t.as_ref()) {
                        constant = tensor_ints(a);
                        Ty { elem: Some(a.data_type), rank: Some(a.dims.len()) }
                    } else if let Some(a) = attr(n, "value_ints") {
                        constant = Some(a.ints.clone());
                        Ty { elem: Some(INT64), rank: Some(1) }
                    } else if let Some(a) = attr(n, "value_int") {
                        constant = Some(vec![a.i]);
                        Ty { elem: Some(INT64), rank: Some(0) }
                    } else if attr(n, "value_float").is_some() {
                        Ty { elem: Some(FLOAT), rank: Some(0) }
                    } else if attr(n, "value_floats").is_some() {
                        Ty { elem: Some(FLOAT), rank: Some(1) }
                    } else {
                        Ty::default()
                    }
                }
                "ConstantOfShape" => Ty {
                    elem: Some(attr(n, "value").and_then(|a| a.t.as_ref()).map_or(FLOAT, |t| t.data_type)),
                    rank: ints_of(0).map(|v| v.len()),
                },
                "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
                    Ty { elem: Some(BOOL), rank: all_ranks() }
                }
                "Not" | "IsNaN" | "IsInf" => Ty { elem: Some(BOOL), rank: in0.rank },
                "ArgMax" | "ArgMin" => Ty {
                    elem: Some(INT64),
                    rank: in0.rank.map(|r| if attr_i("keepdims").unwrap_or(1) != 0 { r } else { r.saturating_sub(1) }),
                },
                "Where" => Ty { elem: get(1).elem, rank: all_ranks() },
                "Flatten" | "Gemm" => Ty { elem: in0.elem, rank: Some(2) },
                "MatMul" => Ty {
                    elem: in0.elem,
                    rank: match (in0.rank, get(1).rank) {
                        (Some(a), Some(b)) if a >= 2 && b >= 2 => Some(a.max(b)),
                        _ => None,
                    },
                },
                "Reshape" => Ty { elem: in0.elem, rank: ints_of(1).map(|v| v.len()) },
                "Expand" => Ty {
                    elem: in0.elem,
                    rank: match (in0.rank, ints_of(1)) {
                        (Some(r), Some(s)) => Some(r.max(s.len())),
                        _ => None,
                    },
                },
                "Squeeze" => Ty {
                    elem: in0.elem,
                    rank: match (in0.rank, axes_len(1)) {
                        (Some(r), Some(k)) => Some(r.saturating_sub(k)),
                        _ => None,
                    },
                },
                "Unsqueeze" => Ty {
                    elem: in0.elem,
                    rank: match (in0.rank, axes_len(1)) {
                        (Some(r), Some(k)) => Some(r + k),
                        _ => None,
                    },
                },
                "Gather" => Ty {
                    elem: in0.elem,
                    rank: match (in0.rank, get(1).rank) {
                        (Some(a), Some(b)) if a >= 1 => Some(a + b - 1),
                        _ => None,
                    },
                },
                op if op.starts_with("Reduce") => Ty {
                    elem: in0.elem,
                    rank: if attr_i("keepdims").unwrap_or(1) != 0 {
                        in0.rank
                    } else {
                        match (in0.rank, axes_len(1)) {
                            (Some(r), Some(k)) if k > 0 => Some(r.saturating_sub(k)),
                            (Some(_), Some(0)) if attr_i("noop_with_empty_axes").unwrap_or(0) == 0 => Some(0),
                            (Some(_), None) if n.input.len() < 2 => Some(0),
                            _ => None,
                        }
                    },
                },
                "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Max" | "Min" | "Sum" | "Mean" | "PRelu" | "Mod" => {
                    Ty { elem: in0.elem, rank: all_ranks() }
                }
                "Concat" => Ty {
                    elem: (0..n.input.len()).find_map(|i| get(i).elem),
                    rank: (0..n.input.len()).find_map(|i| get(i).rank),
                },
                op if RANK_PRESERVING.contains(&op) => in0,
                op if TYPE_CHANGING.contains(&op) => Ty::default(),
                _ => Ty { elem: in0.elem, rank: None },
            }
        };
        if let (Some(v), Some(o)) = (constant, n.output.first()) {
            ints.insert(o, v);
        }
        for (i, o) in n.output.iter().enumerate() {
            if o.is_empty() {
                continue;
            }
            // Only the first output follows the rules above (MaxPool indices, TopK indices, ...).
            let inferred = if i == 0 { out } else { Ty::default() };
            let e = ty.entry(o.as_str()).or_default();
            e.elem = e.elem.or(inferred.elem);
            e.rank = e.rank.or(inferred.rank);
        }
    }
    ty
}

/// Ops whose first output has the element type and rank of the first input.
const RANK_PRESERVING: &[&str] = &[
    "Relu", "Clip", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Mish", "Gelu",
    "Softplus", "Softsign", "ThresholdedRelu", "Tanh", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Floor",
    "Ceil", "Round", "Sign", "Erf", "Sin", "Cos", "Identity", "Dropout", "BatchNormalization",
    "InstanceNormalization", "GroupNormalization", "LayerNormalization", "LRN", "LpNormalization",
    "MeanVarianceNormalization", "Conv", "ConvTranspose", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "Softmax", "LogSoftmax", "Hardmax", "Transpose", "Pad", "Resize", "Upsample",
    "DepthToSpace", "SpaceToDepth", "Slice", "Tile", "CumSum", "Split", "Trilu", "Shrink", "TopK",
];

/// Ops whose output type is not the input's and is not worked out here.
const TYPE_CHANGING: &[&str] = &[
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger",
    "MatMulInteger", "OneHot", "EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
    "Multinomial", "Bernoulli", "If", "Loop", "Scan", "StringNormalizer", "TfIdfVectorizer", "SequenceAt",
    "SequenceConstruct", "SequenceEmpty", "SequenceInsert", "SequenceErase", "SequenceLength", "SplitToSequence",
    "ConcatFromSequence", "Optional", "OptionalGetElement", "OptionalHasElement", "Range",
];
