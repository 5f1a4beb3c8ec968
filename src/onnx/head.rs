//! The classifier head by graph inspection: when a layer feeds global average pooling and then a
//! linear layer (Gemm, or MatMul + Add) that gives the model's output (optionally through Softmax),
//! logit_c = Σ_k W[c,k]·mean(A_k) + bias_c, and W is CAM's class-by-channel weight matrix.
use crate::error::{Error, Result};
use crate::onnx::OnnxModel;
use onnx_protobuf::{NodeProto, TensorProto};

/// W (classes × channels, row-major) and the bias of a linear head.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearHead {
    pub classes: usize,
    pub channels: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// The output is softmax(logits) (a Softmax node after the linear layer), else the logits.
    pub softmax: bool,
}

const FLOAT: i32 = 1;

fn not_linear(layer: &str, why: impl std::fmt::Display) -> Error {
    Error::Model(format!(
        "CAM needs layer '{layer}' to feed global average pooling and then a linear classifier (Gemm or MatMul) that gives the output; {why}"
    ))
}

fn attr_i(n: &NodeProto, name: &str, default: i64) -> i64 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.i)
}

fn attr_f(n: &NodeProto, name: &str, default: f32) -> f32 {
    n.attribute.iter().find(|a| a.name == name).map_or(default, |a| a.f)
}

fn floats(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != FLOAT {
        return None;
    }
    if !t.float_data.is_empty() {
        return Some(t.float_data.clone());
    }
    if t.raw_data.len().is_multiple_of(4) {
        return Some(t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect());
    }
    None
}

impl OnnxModel {
    /// The linear head on `layer` whose output is `output` (see the module docs); Error::Model saying
    /// what differs otherwise.
    pub fn linear_head(&self, layer: &str, output: &str) -> Result<LinearHead> {
        let g = self.proto.graph.as_ref().ok_or_else(|| Error::Model("the model has no graph".into()))?;
        let init = |name: &str| g.initializer.iter().find(|t| t.name == name);
        let consumer = |t: &str| -> Result<&NodeProto> {
            let users: Vec<&NodeProto> = g.node.iter().filter(|n| n.input.iter().any(|i| i == t)).collect();
            match users.as_slice() {
                [one] => Ok(one),
                [] => Err(not_linear(layer, format!("nothing reads '{t}'"))),
                _ => Err(not_linear(layer, format!("'{t}' has {} readers", users.len()))),
            }
        };
        let pool = consumer(layer)?;
        let pooled = match pool.op_type.as_str() {
            "GlobalAveragePool" => true,
            "ReduceMean" => {
                let axes: Vec<i64> = match pool.attribute.iter().find(|a| a.name == "axes") {
                    Some(a) => a.ints.clone(),
                    None => pool.input.get(1).and_then(|n| init(n)).and_then(|t| {
                        (!t.int64_data.is_empty()).then(|| t.int64_data.clone()).or_else(|| {
                            Some(t.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
                        })
                    })
                    .unwrap_or_default(),
                };
                let mut a: Vec<i64> = axes.iter().map(|&x| if x < 0 { x + 4 } else { x }).collect();
                a.sort_unstable();
                a == [2, 3]
            }
            _ => false,
        };
        if !pooled {
            return Err(not_linear(layer, format!("it feeds {}", pool.op_type)));
        }
        let mut t = pool.output[0].clone();
        let mut node = consumer(&t)?;
        while matches!(node.op_type.as_str(), "Flatten" | "Reshape" | "Squeeze" | "Dropout" | "Identity") {
            t = node.output[0].clone();
            node = consumer(&t)?;
        }
        let weight_of = |name: &str| -> Result<(Vec<i64>, Vec<f32>)> {
            let w = init(name).ok_or_else(|| not_linear(layer, format!("the weight '{name}' is not an initializer")))?;
            let v = floats(w).ok_or_else(|| not_linear(layer, format!("the weight '{name}' is not float data")))?;
            Ok((w.dims.clone(), v))
        };
        // (W as stored, whether it is C×K, scale, bias name, bias scale, the linear output)
        let (dims, wv, c_by_k, alpha, bias_name, beta, mut out) = match node.op_type.as_str() {
            "Gemm" => {
                if attr_i(node, "transA", 0) != 0 || node.input.first() != Some(&t) {
                    return Err(not_linear(layer, "the Gemm transposes the pooled features"));
                }
                let (dims, wv) = weight_of(&node.input[1])?;
                let bias = node.input.get(2).filter(|s| !s.is_empty()).cloned();
                (dims, wv, attr_i(node, "transB", 0) != 0, attr_f(node, "alpha", 1.0), bias, attr_f(node, "beta", 1.0), node.output[0].clone())
            }
            "MatMul" => {
                if node.input.first() != Some(&t) {
                    return Err(not_linear(layer, "the pooled features are the MatMul's second operand"));
                }
                let (dims, wv) = weight_of(&node.input[1])?;
                let mut out = node.output[0].clone();
                let mut bias = None;
                if let Ok(add) = consumer(&out) {
                    if add.op_type == "Add" {
                        bias = add.input.iter().find(|i| **i != out).cloned();
                        out = add.output[0].clone();
                    }
                }
                (dims, wv, false, 1.0, bias, 1.0, out)
            }
            other => return Err(not_linear(layer, format!("the pooled features go to {other}"))),
        };
        if dims.len() != 2 {
            return Err(not_linear(layer, format!("the weight has shape {dims:?}, not 2-D")));
        }
        let (rows, cols) = (dims[0] as usize, dims[1] as usize);
        let (classes, channels) = if c_by_k { (rows, cols) } else { (cols, rows) };
        if wv.len() != rows * cols {
            return Err(not_linear(layer, format!("the weight holds {} values for shape {dims:?}", wv.len())));
        }
        let weight: Vec<f32> = if c_by_k {
            wv.iter().map(|v| alpha * v).collect()
        } else {
            (0..classes).flat_map(|c| (0..channels).map(move |k| (c, k))).map(|(c, k)| alpha * wv[k * classes + c]).collect()
        };
        let bias = match bias_name {
            None => vec![0.0; classes],
            Some(name) => {
                let b = init(&name).and_then(floats).ok_or_else(|| not_linear(layer, format!("the bias '{name}' is not a float initializer")))?;
                match b.len() {
                    1 => vec![beta * b[0]; classes],
                    n if n == classes => b.iter().map(|v| beta * v).collect(),
                    n => return Err(not_linear(layer, format!("the bias has {n} values for {classes} classes"))),
                }
            }
        };
        let mut softmax = false;
        if out != output {
            if let Ok(s) = consumer(&out) {
                // Over the class axis: the default (last) axis, or axis 1 of the N×C logits.
                if s.op_type == "Softmax" && matches!(attr_i(s, "axis", -1), -1 | 1) {
                    out = s.output[0].clone();
                    softmax = true;
                }
            }
        }
        if out != output {
            return Err(not_linear(layer, format!("the linear layer gives '{out}', not the output '{output}'")));
        }
        Ok(LinearHead { classes, channels, weight, bias, softmax })
    }
}
