//! The one builder of ONNX protobuf pieces the library adds to graphs: nodes, initializers,
//! value infos and attributes (the exported maps, the explain graph, input adapters, test models).
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_shape_proto, type_proto, AttributeProto, NodeProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::MessageField;

/// ONNX element types used by the builder.
pub const FLOAT: i32 = 1;
pub const UINT8: i32 = 2;
pub const INT64: i32 = 7;
pub const FLOAT16: i32 = 10;

/// A fixed dimension.
pub fn fixed(v: usize) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimValue(v as i64)), ..Default::default() }
}

/// A symbolic dimension.
pub fn symbolic(name: &str) -> tensor_shape_proto::Dimension {
    tensor_shape_proto::Dimension { value: Some(tensor_shape_proto::dimension::Value::DimParam(name.into())), ..Default::default() }
}

/// A tensor value info with the given element type and dimensions.
pub fn value_info(name: &str, elem: i32, dims: Vec<tensor_shape_proto::Dimension>) -> ValueInfoProto {
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

pub fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, type_: AttributeType::INT.into(), ..Default::default() }
}

pub fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), s: v.as_bytes().to_vec(), type_: AttributeType::STRING.into(), ..Default::default() }
}

/// An attribute holding a list of integers.
pub fn ints_attr(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), type_: AttributeType::INTS.into(), ..Default::default() }
}

/// Nodes and initializers to append to a graph. Every node and initializer name starts with `prefix`.
#[derive(Default)]
pub struct Builder {
    pub prefix: String,
    pub nodes: Vec<NodeProto>,
    pub initializers: Vec<TensorProto>,
}

impl Builder {
    pub fn new(prefix: &str) -> Builder { Builder { prefix: prefix.to_string(), ..Default::default() } }

    /// Appends a node with one output and returns that output's name.
    pub fn node(&mut self, op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> String {
        self.node_outputs(op, inputs, &[output], attribute);
        output.to_string()
    }

    pub fn node_outputs(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<AttributeProto>) {
        self.nodes.push(NodeProto {
            name: format!("{}{}/{op}", self.prefix, self.nodes.len()),
            op_type: op.to_string(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            attribute,
            ..Default::default()
        });
    }

    pub fn int64s(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, INT64, dims, raw)
    }

    pub fn floats(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, FLOAT, dims, raw)
    }

    pub fn tensor(&mut self, name: &str, data_type: i32, dims: &[i64], raw_data: Vec<u8>) -> String {
        let name = format!("{}{name}", self.prefix);
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

