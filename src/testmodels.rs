//! Small ONNX CNNs with known weights, written by the project so tests need no Python.
//! All take `input` [N,3,H,W] float and give `logits` [N,C] (or `probs` when softmax is included).
use crate::onnx::OnnxModel;

/// conv(3→8,3×3,pad1) → Relu ("relu1") → conv(8→8) → Relu ("relu2") → GlobalAveragePool → Flatten → Gemm(→C).
pub fn plain_cnn(classes: usize, seed: u64) -> OnnxModel { todo!() }

/// x = Relu(conv0(input)) ("stem"); y = Relu(conv1(x)) ("inner", the cut inside the skip);
/// r = Add(x, conv2(y)) ("add"); GAP → Flatten → Gemm → `logits`. Cutting at "inner" makes "stem" cross.
pub fn residual_cnn(classes: usize, seed: u64) -> OnnxModel { todo!() }

/// A net whose class c depends only on a known channel set at layer "feat" (K channels):
/// feat = Relu(conv(input)) with K channels, then GAP, then a Gemm whose row c is non-zero exactly on
/// `planted[c]` (positive weights), then Softmax when `softmax` (output `probs`) else `logits`.
pub struct Planted {
    pub model: OnnxModel,
    pub layer: String,
    pub channels: usize,
    pub planted: Vec<Vec<usize>>,
}
pub fn planted_cnn(classes: usize, channels: usize, per_class: usize, softmax: bool, seed: u64) -> Planted { todo!() }
