//! Small ONNX CNNs with known weights, written by the project so tests need no Python.
//! All take `input` [N,3,H,W] float and give `logits` [N,C] (or `probs` when softmax is included).
//!
//! Every model uses opset 13 (IR version 7), a symbolic batch `N` and H = W = [`SIZE`]. Weights are
//! pseudo-random from the seed (the same seed gives the same bytes on every platform); convolutions
//! are 3×3 with padding 1, weights uniform in ±√(6/fan_in) (He scale, so activations stay O(1)
//! through Relu) and biases uniform in ±0.1.
use chip::onnx::OnnxModel;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{EnumOrUnknown, MessageField};

/// Height and width of the test models' input.
pub const SIZE: usize = 16;
const INPUT: &str = "input";

/// conv(3→8,3×3,pad1) → Relu ("relu1") → conv(8→8) → Relu ("relu2") → GlobalAveragePool → Flatten → Gemm(→C).
pub fn plain_cnn(classes: usize, seed: u64) -> OnnxModel {
    assert!(classes > 0, "plain_cnn: classes must be positive");
    let mut b = Builder::new(seed ^ 0x706c_6169_6e00);
    b.conv("conv1", INPUT, 3, 8);
    b.unary("Relu", "relu1", "conv1");
    b.conv("conv2", "relu1", 8, 8);
    b.unary("Relu", "relu2", "conv2");
    b.head("relu2", 8, classes, None, "logits");
    b.finish("plain_cnn", "logits", classes)
}

/// x = Relu(conv0(input)) ("stem"); y = Relu(conv1(x)) ("inner", the cut inside the skip);
/// r = Add(x, conv2(y)) ("add"); GAP → Flatten → Gemm → `logits`. Cutting at "inner" makes "stem" cross.
pub fn residual_cnn(classes: usize, seed: u64) -> OnnxModel {
    assert!(classes > 0, "residual_cnn: classes must be positive");
    let mut b = Builder::new(seed ^ 0x7265_7369_6400);
    b.conv("conv0", INPUT, 3, 8);
    b.unary("Relu", "stem", "conv0");
    b.conv("conv1", "stem", 8, 8);
    b.unary("Relu", "inner", "conv1");
    b.conv("conv2", "inner", 8, 8);
    b.node("Add", &["stem", "conv2"], "add", vec![]);
    b.head("add", 8, classes, None, "logits");
    b.finish("residual_cnn", "logits", classes)
}

/// Not a classifier: conv(3→8) → Relu → conv(8→C) gives a per-pixel `mask` [N,C,SIZE,SIZE], or with
/// `pooled` a GlobalAveragePool of it, [N,C,1,1].
pub fn segmenter(classes: usize, pooled: bool, seed: u64) -> OnnxModel {
    assert!(classes > 0, "segmenter: classes must be positive");
    let mut b = Builder::new(seed ^ 0x0073_6567_6d00);
    b.conv("conv1", INPUT, 3, 8);
    b.unary("Relu", "relu1", "conv1");
    b.conv(if pooled { "conv2" } else { "mask" }, "relu1", 8, classes);
    let side = if pooled {
        b.unary("GlobalAveragePool", "mask", "conv2");
        1
    } else {
        SIZE
    };
    let mut m = b.finish("segmenter", "mask", classes);
    let dims = [Dim::Symbolic("N"), Dim::Fixed(classes), Dim::Fixed(side), Dim::Fixed(side)];
    m.proto.graph.as_mut().unwrap().output = vec![value_info("mask", &dims)];
    m
}

/// A net whose class c depends only on a known channel set at layer "feat" (K channels):
/// feat = Relu(conv(input)) with K channels, then GAP, then a Gemm whose row c is non-zero exactly on
/// `planted[c]` (positive weights), then Softmax when `softmax` (output `probs`) else `logits`.
///
/// Each `planted[c]` holds `per_class` distinct channels in ascending order. The sets are disjoint when
/// `classes · per_class ≤ channels`; otherwise they are random subsets, pairwise different whenever
/// there are enough subsets. Gemm weights on planted channels are uniform in [1, 2], the Gemm bias is
/// zero. Each channel's filter is a random colour preference times a random spatial pattern plus noise,
/// with its own bias, so channels respond differently across images.
/// Panics unless `classes ≥ 1` and `1 ≤ per_class ≤ channels`.
pub struct Planted {
    pub model: OnnxModel,
    pub layer: String,
    pub channels: usize,
    pub planted: Vec<Vec<usize>>,
}
pub fn planted_cnn(classes: usize, channels: usize, per_class: usize, softmax: bool, seed: u64) -> Planted {
    assert!(classes > 0, "planted_cnn: classes must be positive");
    assert!(
        per_class >= 1 && per_class <= channels,
        "planted_cnn: per_class ({per_class}) must be in 1..=channels ({channels})"
    );
    let mut b = Builder::new(seed ^ 0x706c_616e_7400);
    let planted = plant(&mut b.rng, classes, channels, per_class);

    // Colour-selective filters: channels differ in which colours and patterns they pick up.
    let fan_in = 3 * 9;
    let scale = (6.0 / fan_in as f64).sqrt();
    let mut w = Vec::with_capacity(channels * fan_in);
    for _ in 0..channels {
        let colour: Vec<f64> = (0..3).map(|_| b.rng.uniform(-1.0, 1.0)).collect();
        let pattern: Vec<f64> = (0..9).map(|_| b.rng.uniform(0.2, 1.0)).collect();
        for c in &colour {
            for p in &pattern {
                let noise = b.rng.uniform(-0.3, 0.3);
                w.push((scale * (c * p + noise)) as f32);
            }
        }
    }
    let bias: Vec<f32> = (0..channels).map(|_| b.rng.uniform(-0.1, 0.1) as f32).collect();
    b.init("conv.weight", &[channels as i64, 3, 3, 3], w);
    b.init("conv.bias", &[channels as i64], bias);
    b.node("Conv", &[INPUT, "conv.weight", "conv.bias"], "conv", conv_attrs());
    b.unary("Relu", "feat", "conv");

    let mut fc = vec![0f32; classes * channels];
    for (c, set) in planted.iter().enumerate() {
        for &k in set {
            fc[c * channels + k] = b.rng.uniform(1.0, 2.0) as f32;
        }
    }
    let output = if softmax { "probs" } else { "logits" };
    b.head("feat", channels, classes, Some(fc), output);
    let name = if softmax { "planted_cnn_softmax" } else { "planted_cnn" };
    Planted { model: b.finish(name, output, classes), layer: "feat".to_string(), channels, planted }
}

fn plant(rng: &mut SplitMix, classes: usize, channels: usize, per_class: usize) -> Vec<Vec<usize>> {
    let mut sets: Vec<Vec<usize>> = Vec::with_capacity(classes);
    if classes * per_class <= channels {
        let perm = rng.permutation(channels);
        for c in 0..classes {
            let mut s = perm[c * per_class..(c + 1) * per_class].to_vec();
            s.sort_unstable();
            sets.push(s);
        }
        return sets;
    }
    for _ in 0..classes {
        let mut s = Vec::new();
        // Retry a bounded number of times so tiny channel counts cannot loop forever.
        for _ in 0..1000 {
            s = rng.permutation(channels)[..per_class].to_vec();
            s.sort_unstable();
            if !sets.contains(&s) {
                break;
            }
        }
        sets.push(s);
    }
    sets
}

/// The gates' RNG with the few draws test weights need.
struct SplitMix(chip::util::rng::Rng);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * u
    }
    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            // Modulo bias is irrelevant for test weights.
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

struct Builder {
    rng: SplitMix,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

/// The input and head conventions of real exporters, each on the body of [`plain_cnn`] (same seed,
/// same weights): conv1 → relu1 → conv2 → relu2 → head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// Input `input` [N, SIZE, SIZE, 3] float, then Transpose(0,3,1,2), as tf2onnx writes Keras models.
    NhwcTranspose,
    /// Input `input` [N, 3, SIZE, SIZE] uint8, then Cast, ×1/255 and ImageNet mean/std inside the graph.
    Uint8Cast,
    /// relu2 → Flatten → Gemm (K·H·W → C), a VGG-style head with no global pooling.
    FlattenDense,
    /// The plain head, then Sigmoid: `probs` are independent per class (multi-label).
    SigmoidMultiLabel,
    /// The plain model with the batch dimension fixed at 1.
    FixedBatch1,
    /// The plain model with a second output `embedding` [N, 8] (the pooled features) after `logits`.
    TwoOutputs,
}

impl Convention {
    pub const ALL: [Convention; 6] = [
        Convention::NhwcTranspose,
        Convention::Uint8Cast,
        Convention::FlattenDense,
        Convention::SigmoidMultiLabel,
        Convention::FixedBatch1,
        Convention::TwoOutputs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Convention::NhwcTranspose => "nhwc_transpose",
            Convention::Uint8Cast => "uint8_cast",
            Convention::FlattenDense => "flatten_dense",
            Convention::SigmoidMultiLabel => "sigmoid_multilabel",
            Convention::FixedBatch1 => "fixed_batch1",
            Convention::TwoOutputs => "two_outputs",
        }
    }
}

/// A model in `convention` with the weights of `plain_cnn(classes, seed)` where the body is shared.
pub fn convention(convention: Convention, classes: usize, seed: u64) -> OnnxModel {
    assert!(classes > 0, "convention: classes must be positive");
    let mut b = Builder::new(seed ^ 0x706c_6169_6e00);
    let body_input = match convention {
        Convention::NhwcTranspose => {
            b.node("Transpose", &[INPUT], "nchw", vec![ints_attr("perm", &[0, 3, 1, 2])]);
            "nchw"
        }
        Convention::Uint8Cast => {
            b.node("Cast", &[INPUT], "as_float", vec![int_attr("to", 1)]);
            b.init("norm.scale", &[1, 3, 1, 1], vec![1.0 / (255.0 * 0.229), 1.0 / (255.0 * 0.224), 1.0 / (255.0 * 0.225)]);
            b.init("norm.shift", &[1, 3, 1, 1], vec![0.485 / 0.229, 0.456 / 0.224, 0.406 / 0.225]);
            b.node("Mul", &["as_float", "norm.scale"], "scaled", vec![]);
            b.node("Sub", &["scaled", "norm.shift"], "normalised", vec![]);
            "normalised"
        }
        _ => INPUT,
    };
    b.conv("conv1", body_input, 3, 8);
    b.unary("Relu", "relu1", "conv1");
    b.conv("conv2", "relu1", 8, 8);
    b.unary("Relu", "relu2", "conv2");
    let mut outputs = vec![("logits", classes)];
    match convention {
        Convention::FlattenDense => {
            let k = 8 * SIZE * SIZE;
            b.node("Flatten", &["relu2"], "flat", vec![int_attr("axis", 1)]);
            let w = b.uniform(classes * k, (6.0 / k as f64).sqrt());
            let bias = b.uniform(classes, 0.1);
            b.init("dense.weight", &[classes as i64, k as i64], w);
            b.init("dense.bias", &[classes as i64], bias);
            b.node("Gemm", &["flat", "dense.weight", "dense.bias"], "logits", vec![int_attr("transB", 1)]);
        }
        Convention::SigmoidMultiLabel => {
            b.head("relu2", 8, classes, None, "logits");
            b.unary("Sigmoid", "probs", "logits");
            outputs = vec![("probs", classes)];
        }
        Convention::TwoOutputs => {
            b.head("relu2", 8, classes, None, "logits");
            b.unary("Identity", "embedding", "flat");
            outputs.push(("embedding", 8));
        }
        _ => b.head("relu2", 8, classes, None, "logits"),
    }
    let batch = if convention == Convention::FixedBatch1 { Dim::Fixed(1) } else { Dim::Symbolic("N") };
    let batch2 = || if convention == Convention::FixedBatch1 { Dim::Fixed(1) } else { Dim::Symbolic("N") };
    let input = match convention {
        Convention::NhwcTranspose => value_info(INPUT, &[batch, Dim::Fixed(SIZE), Dim::Fixed(SIZE), Dim::Fixed(3)]),
        _ => value_info(INPUT, &[batch, Dim::Fixed(3), Dim::Fixed(SIZE), Dim::Fixed(SIZE)]),
    };
    let input = if convention == Convention::Uint8Cast { with_elem_type(input, 2) } else { input };
    let outputs = outputs.into_iter().map(|(n, c)| value_info(n, &[batch2(), Dim::Fixed(c)])).collect();
    b.finish_with(convention.name(), input, outputs)
}

fn with_elem_type(mut v: ValueInfoProto, elem: i32) -> ValueInfoProto {
    if let Some(type_proto::Value::TensorType(t)) = v.type_.as_mut().and_then(|t| t.value.as_mut()) {
        t.elem_type = elem;
    }
    v
}

fn conv_attrs() -> Vec<AttributeProto> {
    vec![ints_attr("kernel_shape", &[3, 3]), ints_attr("pads", &[1, 1, 1, 1]), ints_attr("strides", &[1, 1])]
}

fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        type_: EnumOrUnknown::new(AttributeType::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.to_string(), type_: EnumOrUnknown::new(AttributeType::INT), i: v, ..Default::default() }
}

enum Dim {
    Fixed(usize),
    Symbolic(&'static str),
}

fn value_info(name: &str, dims: &[Dim]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| {
            let mut x = tensor_shape_proto::Dimension::new();
            match d {
                Dim::Fixed(v) => x.set_dim_value(*v as i64),
                Dim::Symbolic(s) => x.set_dim_param(s.to_string()),
            }
            x
        })
        .collect();
    let tt = type_proto::Tensor {
        elem_type: 1,
        shape: MessageField::some(TensorShapeProto { dim, ..Default::default() }),
        ..Default::default()
    };
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), ..Default::default() }),
        ..Default::default()
    }
}

impl Builder {
    fn new(seed: u64) -> Self {
        Builder { rng: SplitMix(chip::util::rng::Rng::new(seed)), nodes: Vec::new(), inits: Vec::new() }
    }

    fn init(&mut self, name: &str, dims: &[i64], data: Vec<f32>) {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, data.len());
        self.inits.push(TensorProto {
            name: name.to_string(),
            dims: dims.to_vec(),
            data_type: 1,
            raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ..Default::default()
        });
    }

    fn uniform(&mut self, n: usize, bound: f64) -> Vec<f32> {
        (0..n).map(|_| self.rng.uniform(-bound, bound) as f32).collect()
    }

    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: format!("{op}_{output}"),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            attribute,
            ..Default::default()
        });
    }

    fn unary(&mut self, op: &str, output: &str, input: &str) {
        self.node(op, &[input], output, vec![]);
    }

    /// 3×3 convolution, padding 1, output tensor named `name`.
    fn conv(&mut self, name: &str, input: &str, cin: usize, cout: usize) {
        let fan_in = cin * 9;
        let w = self.uniform(cout * fan_in, (6.0 / fan_in as f64).sqrt());
        let bias = self.uniform(cout, 0.1);
        let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
        self.init(&wn, &[cout as i64, cin as i64, 3, 3], w);
        self.init(&bn, &[cout as i64], bias);
        self.node("Conv", &[input, &wn, &bn], name, conv_attrs());
    }

    /// GlobalAveragePool ("gap") → Flatten ("flat") → Gemm (then Softmax when `output` is "probs").
    /// `fc` is the C×K Gemm weight; random (He scale) when None, with a random bias.
    fn head(&mut self, input: &str, k: usize, classes: usize, fc: Option<Vec<f32>>, output: &str) {
        self.unary("GlobalAveragePool", "gap", input);
        self.node("Flatten", &["gap"], "flat", vec![int_attr("axis", 1)]);
        let (w, bias) = match fc {
            Some(w) => (w, vec![0f32; classes]),
            None => {
                let w = self.uniform(classes * k, (6.0 / k as f64).sqrt());
                (w, self.uniform(classes, 0.1))
            }
        };
        self.init("fc.weight", &[classes as i64, k as i64], w);
        self.init("fc.bias", &[classes as i64], bias);
        let gemm_out = if output == "probs" { "logits" } else { output };
        self.node("Gemm", &["flat", "fc.weight", "fc.bias"], gemm_out, vec![int_attr("transB", 1)]);
        if output == "probs" {
            self.node("Softmax", &["logits"], "probs", vec![int_attr("axis", -1)]);
        }
    }

    fn finish_with(self, name: &str, input: ValueInfoProto, outputs: Vec<ValueInfoProto>) -> OnnxModel {
        let graph = GraphProto {
            name: name.to_string(),
            node: self.nodes,
            initializer: self.inits,
            input: vec![input],
            output: outputs,
            ..Default::default()
        };
        let proto = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13, ..Default::default() }],
            producer_name: "chip-testmodels".to_string(),
            graph: MessageField::some(graph),
            ..Default::default()
        };
        OnnxModel { proto }
    }

    fn finish(self, name: &str, output: &str, classes: usize) -> OnnxModel {
        let graph = GraphProto {
            name: name.to_string(),
            node: self.nodes,
            initializer: self.inits,
            input: vec![value_info(
                INPUT,
                &[Dim::Symbolic("N"), Dim::Fixed(3), Dim::Fixed(SIZE), Dim::Fixed(SIZE)],
            )],
            output: vec![value_info(output, &[Dim::Symbolic("N"), Dim::Fixed(classes)])],
            ..Default::default()
        };
        let proto = ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 13, ..Default::default() }],
            producer_name: "chip-testmodels".to_string(),
            graph: MessageField::some(graph),
            ..Default::default()
        };
        OnnxModel { proto }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_sets_are_disjoint_when_they_fit() {
        let p = planted_cnn(4, 16, 3, false, 7);
        let mut all: Vec<usize> = p.planted.concat();
        assert_eq!(all.len(), 12);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 12, "{:?}", p.planted);
        assert!(p.planted.iter().all(|s| s.windows(2).all(|w| w[0] < w[1])));
    }

    #[test]
    fn planted_sets_differ_when_they_overlap() {
        let p = planted_cnn(10, 8, 3, true, 3);
        for i in 0..10 {
            assert_eq!(p.planted[i].len(), 3);
            for j in 0..i {
                assert_ne!(p.planted[i], p.planted[j]);
            }
        }
    }

    #[test]
    fn gemm_rows_are_nonzero_exactly_on_planted_channels() {
        let p = planted_cnn(5, 12, 2, true, 11);
        let g = p.model.proto.graph.as_ref().unwrap();
        let fc = g.initializer.iter().find(|t| t.name == "fc.weight").unwrap();
        let w: Vec<f32> = fc.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        for c in 0..5 {
            for k in 0..12 {
                let v = w[c * 12 + k];
                assert_eq!(v > 0.0, p.planted[c].contains(&k), "class {c} channel {k}: {v}");
                assert!(v >= 0.0);
            }
        }
        assert_eq!(p.model.output_names(), vec!["probs".to_string()]);
    }

    #[test]
    fn same_seed_same_model() {
        use protobuf::Message;
        let a = plain_cnn(3, 1).proto.write_to_bytes().unwrap();
        assert_eq!(a, plain_cnn(3, 1).proto.write_to_bytes().unwrap());
        assert_ne!(a, plain_cnn(3, 2).proto.write_to_bytes().unwrap());
    }
}
