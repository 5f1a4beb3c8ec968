//! ONNX graph surgery on the protobuf (onnx-protobuf), lossless for everything it does not touch:
//! candidate layers, the augmented model (layer tensors as extra outputs), and the split at a layer.
use crate::error::Result;

/// A parsed ONNX model. Unknown protobuf fields survive a round trip.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    pub proto: onnx_protobuf::ModelProto,
}

/// The model's single image input: NCHW float with 3 (or 1) channels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInput {
    pub name: String,
    pub channels: usize,
    /// None when the dimension is symbolic.
    pub height: Option<usize>,
    pub width: Option<usize>,
}

/// A tensor produced by a node whose op type can yield a 4-D feature map (Conv, Relu, Clip,
/// BatchNormalization, Add, pooling, ...). Whether it really is 4-D is decided by running the model.
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

impl OnnxModel {
    /// Parses bytes; a corrupt or empty buffer gives Error::Model naming the problem.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> { todo!() }
    pub fn to_bytes(&self) -> Result<Vec<u8>> { todo!() }
    /// Error::Model when there is not exactly one 4-D float input (initializers excluded).
    pub fn image_input(&self) -> Result<ImageInput> { todo!() }
    pub fn output_names(&self) -> Vec<String> { todo!() }
    /// Candidate layer tensors in graph order.
    pub fn candidates(&self) -> Vec<Candidate> { todo!() }
    /// The original outputs followed by `layers` as extra outputs (float, shape left open).
    /// Unknown tensor names give Error::UnknownLayer.
    pub fn augmented(&self, layers: &[&str]) -> Result<OnnxModel> { todo!() }
    /// Cut at `layer`. The skip tensors of a residual block around the cut cross too.
    pub fn split(&self, layer: &str) -> Result<Split> { todo!() }
}
