//! Graph surgery checked on the real ONNX Runtime: the prefix then the suffix of every split must
//! reproduce the unsplit model, and the augmented model's extra outputs must equal the prefix's layer.
//! Also: lossless round trips (unknown protobuf fields included) and the error messages.
#[macro_use]
mod common;
use chip::onnx::OnnxModel;
use chip::runtime::{Runner, RuntimeOptions};
use chip_testmodels::{plain_cnn, planted_cnn, residual_cnn, SIZE};
use chip::Error;
use onnx_protobuf::{
    attribute_proto::AttributeType, tensor_proto::DataType, type_proto, AttributeProto, NodeProto,
    OperatorSetIdProto, StringStringEntryProto, TensorProto,
};
use protobuf::EnumOrUnknown;
use std::path::{Path, PathBuf};

const SPLIT_TOL: f32 = 1e-4;
const AUG_REL_TOL: f32 = 1e-5;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn options() -> RuntimeOptions {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    assert!(lib.exists(), "{} is missing: run scripts/setup.sh", lib.display());
    RuntimeOptions { ort_lib: Some(lib), ..Default::default() }
}

fn runner(m: &OnnxModel) -> Runner {
    Runner::new(m.to_bytes().unwrap(), &options()).unwrap()
}

fn max_abs(a: &[f32]) -> f32 {
    a.iter().fold(0f32, |m, v| m.max(v.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

/// Photos from every folder under data/images, spread over the sorted list, deterministically.
fn photos(n: usize) -> Vec<PathBuf> {
    let dir = root().join("data/images");
    assert!(dir.is_dir(), "{} is missing: run scripts/setup.sh", dir.display());
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref(),
                Some("jpg" | "jpeg" | "png")
            ) {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= n, "only {} photos under data/images: run scripts/setup.sh", files.len());
    (0..n).map(|i| files[i * files.len() / n].clone()).collect()
}

/// A batch of photos: stretched to size×size (bilinear), (pixel − mean)/std per channel, NCHW.
fn photo_batch(files: &[PathBuf], size: usize, mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    let plane = size * size;
    let mut out = vec![0f32; files.len() * 3 * plane];
    for (i, f) in files.iter().enumerate() {
        let img = image::open(f).unwrap_or_else(|e| panic!("{}: {e}", f.display())).to_rgb8();
        let img = image::imageops::resize(&img, size as u32, size as u32, image::imageops::FilterType::Triangle);
        for (j, px) in img.pixels().enumerate() {
            for c in 0..3 {
                out[(i * 3 + c) * plane + j] = (px[c] as f32 - mean[c]) / std[c];
            }
        }
    }
    out
}

struct Report {
    candidates: usize,
    layers: Vec<(String, Vec<usize>)>,
    worst_split: f32,
    worst_aug_rel: f32,
}

/// For every candidate that is a 4-D map with H·W > 1: prefix → suffix equals the model, and the
/// augmented model's extra output equals the prefix's layer output.
fn check_all_splits(model: &OnnxModel, x: &[f32], n: usize) -> Report {
    let input = model.image_input().unwrap();
    let (h, w) = (input.height.unwrap(), input.width.unwrap());
    let shape = [n, input.channels, h, w];
    let feed = [(input.name.as_str(), &shape[..], x)];
    let reference = runner(model).run(&feed).unwrap();
    assert!(max_abs(&reference[0].1) > 0.0 && reference[0].1.iter().all(|v| v.is_finite()));

    let candidates = model.candidates();
    assert!(!candidates.is_empty());
    let names: Vec<&str> = candidates.iter().map(|c| c.tensor.as_str()).collect();
    let augmented = model.augmented(&names).unwrap();
    let aug_runner = runner(&augmented);
    let outputs = model.output_names();
    assert_eq!(aug_runner.output_names()[..outputs.len()], outputs[..]);
    assert_eq!(aug_runner.output_names()[outputs.len()..], names.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]);
    let aug = aug_runner.run(&feed).unwrap();
    for (r, a) in reference.iter().zip(&aug) {
        assert_eq!(r.0, a.0);
        assert!(max_diff(&r.1, &a.1) <= SPLIT_TOL, "augmented model changes the outputs");
    }

    let mut report = Report { candidates: candidates.len(), layers: Vec::new(), worst_split: 0.0, worst_aug_rel: 0.0 };
    for (i, c) in candidates.iter().enumerate() {
        let (lshape, lvalues) = &aug[outputs.len() + i];
        if lshape.len() != 4 || lshape[2] * lshape[3] <= 1 {
            continue;
        }
        let split = model.split(&c.tensor).unwrap();
        assert_eq!(split.crossing[0], c.tensor);
        let prefix = runner(&split.prefix);
        assert_eq!(prefix.output_names(), &split.crossing[..]);
        let crossed = prefix.run(&feed).unwrap();

        // The layer from the prefix equals the layer from the augmented model.
        assert_eq!(&crossed[0].0, lshape, "{}: layer shape", c.tensor);
        let rel = max_diff(&crossed[0].1, lvalues) / max_abs(lvalues).max(1e-6);
        assert!(rel <= AUG_REL_TOL, "{}: augmented vs prefix relative difference {rel}", c.tensor);
        report.worst_aug_rel = report.worst_aug_rel.max(rel);

        let suffix = runner(&split.suffix);
        let feeds: Vec<(&str, &[usize], &[f32])> = split
            .crossing
            .iter()
            .zip(&crossed)
            .map(|(name, (s, v))| (name.as_str(), &s[..], &v[..]))
            .collect();
        let out = suffix.run(&feeds).unwrap();
        assert_eq!(out.len(), reference.len());
        for (o, r) in out.iter().zip(&reference) {
            assert_eq!(o.0, r.0);
            let d = max_diff(&o.1, &r.1);
            assert!(d <= SPLIT_TOL, "{}: split output differs by {d}", c.tensor);
            report.worst_split = report.worst_split.max(d);
        }
        report.layers.push((c.tensor.clone(), lshape.clone()));
    }
    report
}

const IMAGENET_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
const IMAGENET_STD: [f32; 3] = [58.395, 57.12, 57.375];

#[test]
fn test_models_split_and_augment_on_photos() {
    require_setup!();
    let files = photos(3);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    for (name, model) in [
        ("plain", plain_cnn(5, 1)),
        ("residual", residual_cnn(5, 2)),
        ("planted", planted_cnn(4, 12, 3, true, 3).model),
    ] {
        let r = check_all_splits(&model, &x, files.len());
        println!(
            "{name}: {} candidates, {} 4-D layers, worst split |diff| {:.3e}, worst augmented rel {:.3e}",
            r.candidates,
            r.layers.len(),
            r.worst_split,
            r.worst_aug_rel
        );
        // Every candidate of these nets is a 16×16 map.
        assert_eq!(r.layers.len(), r.candidates, "{name}");
        assert!(r.layers.iter().all(|(_, s)| s[2] == SIZE && s[3] == SIZE));
    }
}

#[test]
fn residual_cut_inside_the_block_carries_the_skip() {
    require_ort!();
    let m = residual_cnn(4, 9);
    let names: Vec<String> = m.candidates().into_iter().map(|c| c.tensor).collect();
    assert_eq!(names, ["conv0", "stem", "conv1", "inner", "conv2", "add"]);
    let s = m.split("inner").unwrap();
    assert_eq!(s.crossing, ["inner", "stem"]);
    let ops = |m: &OnnxModel| -> Vec<String> {
        m.proto.graph.node.iter().map(|n| n.output[0].clone()).collect()
    };
    assert_eq!(ops(&s.prefix), ["conv0", "stem", "conv1", "inner"]);
    assert_eq!(ops(&s.suffix), ["conv2", "add", "gap", "flat", "logits"]);
    // Each side has exactly the weights its nodes use.
    let inits = |m: &OnnxModel| -> Vec<String> {
        m.proto.graph.initializer.iter().map(|t| t.name.clone()).collect()
    };
    assert_eq!(inits(&s.prefix), ["conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias"]);
    assert_eq!(inits(&s.suffix), ["conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]);
    // Outside the block only the layer crosses.
    assert_eq!(m.split("add").unwrap().crossing, ["add"]);
    assert_eq!(m.split("stem").unwrap().crossing, ["stem"]);
}

/// plain_cnn with a Constant scale used on both sides of the cut: conv1 → relu1 → Mul(k) "m1" →
/// conv2 → relu2 → Mul(k) "m2" → head. The suffix gets its own copy of the Constant.
fn model_with_shared_constant() -> OnnxModel {
    let mut m = plain_cnn(3, 4);
    let g = m.proto.graph.as_mut().unwrap();
    let k = TensorProto { data_type: DataType::FLOAT as i32, float_data: vec![0.5], ..Default::default() };
    let constant = NodeProto {
        op_type: "Constant".into(),
        output: vec!["k".into()],
        attribute: vec![AttributeProto {
            name: "value".into(),
            type_: EnumOrUnknown::new(AttributeType::TENSOR),
            t: protobuf::MessageField::some(k),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mul = |a: &str, out: &str| NodeProto {
        op_type: "Mul".into(),
        input: vec![a.into(), "k".into()],
        output: vec![out.into()],
        ..Default::default()
    };
    let mut nodes = vec![constant];
    for n in g.node.drain(..) {
        let out = n.output[0].clone();
        let mut n = n;
        for i in n.input.iter_mut() {
            if i == "relu1" {
                *i = "m1".into();
            } else if i == "relu2" {
                *i = "m2".into();
            }
        }
        nodes.push(n);
        if out == "relu1" {
            nodes.push(mul("relu1", "m1"));
        } else if out == "relu2" {
            nodes.push(mul("relu2", "m2"));
        }
    }
    g.node = nodes;
    m
}

#[test]
fn constants_are_copied_not_crossed() {
    require_setup!();
    let m = model_with_shared_constant();
    let names: Vec<String> = m.candidates().into_iter().map(|c| c.tensor).collect();
    assert_eq!(names, ["conv1", "relu1", "m1", "conv2", "relu2", "m2"]);
    let s = m.split("m1").unwrap();
    assert_eq!(s.crossing, ["m1"]);
    assert_eq!(s.suffix.proto.graph.node[0].op_type, "Constant");
    let files = photos(2);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    let r = check_all_splits(&m, &x, files.len());
    assert_eq!(r.layers.len(), 6);
}

/// torch-style head: Reshape(gap, Concat(Unsqueeze(Gather(Shape(gap), 0)), [-1])) instead of
/// Flatten. The int64 Concat/Mul of the shape arithmetic is no candidate.
#[test]
fn shape_arithmetic_is_not_a_candidate() {
    require_setup!();
    let mut m = plain_cnn(3, 5);
    let g = m.proto.graph.as_mut().unwrap();
    let int_init = |name: &str, dims: Vec<i64>, v: Vec<i64>| TensorProto {
        name: name.into(),
        dims,
        data_type: DataType::INT64 as i32,
        int64_data: v,
        ..Default::default()
    };
    g.initializer.push(int_init("zero", vec![], vec![0]));
    g.initializer.push(int_init("axes0", vec![1], vec![0]));
    g.initializer.push(int_init("minus1", vec![1], vec![-1]));
    g.initializer.push(int_init("one", vec![1], vec![1]));
    let node = |op: &str, ins: &[&str], out: &str| NodeProto {
        op_type: op.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    };
    let flatten = g.node.iter().position(|n| n.op_type == "Flatten").unwrap();
    g.node.splice(
        flatten..=flatten,
        [
            node("Shape", &["gap"], "gap_shape"),
            node("Gather", &["gap_shape", "zero"], "batch"),
            node("Unsqueeze", &["batch", "axes0"], "batch1"),
            node("Mul", &["minus1", "one"], "minus1b"),
            node("Concat", &["batch1", "minus1b"], "new_shape"),
            node("Reshape", &["gap", "new_shape"], "flat"),
        ],
    );
    g.node.iter_mut().find(|n| n.op_type == "Concat").unwrap().attribute.push(AttributeProto {
        name: "axis".into(),
        type_: EnumOrUnknown::new(AttributeType::INT),
        i: 0,
        ..Default::default()
    });
    let names: Vec<String> = m.candidates().into_iter().map(|c| c.tensor).collect();
    assert_eq!(names, ["conv1", "relu1", "conv2", "relu2"]);
    // Declared ranks are honoured too: a Relu on the logits is not a feature map.
    let g = m.proto.graph.as_mut().unwrap();
    g.node.iter_mut().find(|n| n.op_type == "Gemm").unwrap().output[0] = "pre".into();
    g.node.push(node("Relu", &["pre"], "logits"));
    g.node.push(node("Relu", &["flat"], "flat_relu"));
    let files = photos(2);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    let r = check_all_splits(&m, &x, files.len());
    assert_eq!(r.layers.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["conv1", "relu1", "conv2", "relu2"]);
}

/// In-model input normalisation (Sub, Div on the image) and TF-style padding (Pad before a conv
/// without padding) are no layers; the model still splits exactly everywhere else.
#[test]
fn preprocessing_and_padding_are_no_layers() {
    require_setup!();
    let mut m = plain_cnn(3, 6);
    let g = m.proto.graph.as_mut().unwrap();
    let f32_init = |name: &str, v: f32| TensorProto {
        name: name.into(),
        data_type: DataType::FLOAT as i32,
        float_data: vec![v],
        ..Default::default()
    };
    g.initializer.push(f32_init("mean", 0.25));
    g.initializer.push(f32_init("std", 1.5));
    g.initializer.push(TensorProto {
        name: "pads".into(),
        dims: vec![8],
        data_type: DataType::INT64 as i32,
        int64_data: vec![0, 0, 1, 1, 0, 0, 1, 1],
        ..Default::default()
    });
    let node = |op: &str, ins: &[&str], out: &str| NodeProto {
        op_type: op.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    };
    g.node[0].input[0] = "normalized".into();
    g.node.insert(0, node("Sub", &["input", "mean"], "centered"));
    g.node.insert(1, node("Div", &["centered", "std"], "normalized"));
    let conv2 = g.node.iter().position(|n| n.output[0] == "conv2").unwrap();
    g.node[conv2].input[0] = "padded".into();
    for a in g.node[conv2].attribute.iter_mut().filter(|a| a.name == "pads") {
        a.ints = vec![0, 0, 0, 0];
    }
    g.node.insert(conv2, node("Pad", &["relu1", "pads"], "padded"));
    let names: Vec<String> = m.candidates().into_iter().map(|c| c.tensor).collect();
    assert_eq!(names, ["conv1", "relu1", "conv2", "relu2"]);
    let e = m.split("normalized").unwrap_err().to_string();
    assert!(e.contains("'normalized' (output of Div) is not a candidate layer"), "{e}");
    let files = photos(2);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    let r = check_all_splits(&m, &x, files.len());
    assert_eq!(r.layers.len(), 4);
}

/// Appends a length-delimited field with an unused number (4321) to a serialized message.
fn with_unknown_field(mut bytes: Vec<u8>, marker: &[u8]) -> Vec<u8> {
    let mut tag = (4321u64 << 3) | 2;
    while tag >= 0x80 {
        bytes.push((tag as u8) | 0x80);
        tag >>= 7;
    }
    bytes.push(tag as u8);
    bytes.push(marker.len() as u8);
    bytes.extend_from_slice(marker);
    bytes
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn round_trip_is_lossless() {
    require_ort!();
    let mut m = residual_cnn(3, 1);
    m.proto.doc_string = "model-doc-7f3a".into();
    m.proto.metadata_props.push(StringStringEntryProto {
        key: "author-key-91c".into(),
        value: "meta-value-2d8".into(),
        ..Default::default()
    });
    m.proto.opset_import.push(OperatorSetIdProto { domain: "ai.onnx.ml".into(), version: 3, ..Default::default() });
    {
        let g = m.proto.graph.as_mut().unwrap();
        g.doc_string = "graph-doc-55e".into();
        for n in g.node.iter_mut() {
            n.doc_string = format!("node-doc-{}", n.output[0]);
            // An unknown field inside every node, as a newer ONNX might write.
            n.special_fields.mut_unknown_fields().add_length_delimited(777, format!("nodex-{}", n.output[0]).into_bytes());
        }
        let vi = |name: &str| {
            let mut v = onnx_protobuf::ValueInfoProto::new();
            v.name = name.into();
            v.doc_string = format!("vi-doc-{name}");
            let tt = type_proto::Tensor { elem_type: 1, ..Default::default() };
            v.type_ = protobuf::MessageField::some(onnx_protobuf::TypeProto {
                value: Some(type_proto::Value::TensorType(tt)),
                ..Default::default()
            });
            v
        };
        g.value_info = vec![vi("conv0"), vi("conv2")];
    }
    let marker = b"top-level-unknown-field-6b1";
    let bytes = with_unknown_field(m.to_bytes().unwrap(), marker);

    let parsed = OnnxModel::from_bytes(&bytes).unwrap();
    // Byte for byte: the same library wrote the original, so nothing may move or vanish.
    assert_eq!(parsed.to_bytes().unwrap(), bytes);

    let aug = parsed.augmented(&["stem", "inner"]).unwrap().to_bytes().unwrap();
    let s = parsed.split("inner").unwrap();
    let pre = s.prefix.to_bytes().unwrap();
    let suf = s.suffix.to_bytes().unwrap();
    for (what, b) in [("augmented", &aug), ("prefix", &pre), ("suffix", &suf)] {
        for needle in [
            &marker[..],
            b"model-doc-7f3a",
            b"author-key-91c",
            b"meta-value-2d8",
            b"ai.onnx.ml",
            b"graph-doc-55e",
            b"chip-testmodels",
        ] {
            assert!(contains(b, needle), "{what} lost {}", String::from_utf8_lossy(needle));
        }
    }
    for (side, b, nodes) in [
        ("prefix", &pre, &["conv0", "stem", "conv1", "inner"][..]),
        ("suffix", &suf, &["conv2", "add", "gap", "flat", "logits"][..]),
        ("augmented", &aug, &["conv0", "stem", "conv1", "inner", "conv2", "add", "gap", "flat", "logits"][..]),
    ] {
        for n in nodes {
            assert!(contains(b, format!("nodex-{n}").as_bytes()), "{side} lost the unknown field of node {n}");
            assert!(contains(b, format!("node-doc-{n}").as_bytes()), "{side} lost the doc string of node {n}");
        }
    }
    // value_info stays with the side that computes the tensor.
    assert!(contains(&pre, b"vi-doc-conv0") && !contains(&pre, b"vi-doc-conv2"));
    assert!(contains(&suf, b"vi-doc-conv2") && !contains(&suf, b"vi-doc-conv0"));

    // Augmenting adds outputs and nothing else.
    let a = OnnxModel::from_bytes(&aug).unwrap();
    assert_eq!(a.output_names(), ["logits", "stem", "inner"]);
    let mut back = a.proto.clone();
    back.graph.as_mut().unwrap().output.truncate(1);
    assert_eq!(back, parsed.proto);
}

fn dims(v: &mut onnx_protobuf::ValueInfoProto) -> &mut Vec<onnx_protobuf::tensor_shape_proto::Dimension> {
    match v.type_.as_mut().unwrap().value.as_mut().unwrap() {
        type_proto::Value::TensorType(t) => &mut t.shape.as_mut().unwrap().dim,
        _ => unreachable!(),
    }
}

fn expect_model_err(r: Result<OnnxModel, Error>, needle: &str) {
    match r {
        Err(Error::Model(msg)) => assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}"),
        Err(e) => panic!("expected Error::Model containing {needle:?}, got {e}"),
        Ok(_) => panic!("expected Error::Model containing {needle:?}, got a model"),
    }
}

#[test]
fn corrupt_and_empty_bytes_are_rejected() {
    require_ort!();
    expect_model_err(OnnxModel::from_bytes(&[]), "empty model (0 bytes)");
    expect_model_err(OnnxModel::from_bytes(b"\x0a\xff\xff\xff\xff\x0f"), "not an ONNX model");
    expect_model_err(OnnxModel::from_bytes(b"GIF89a not a model at all"), "not an ONNX model");
    let good = plain_cnn(3, 1).to_bytes().unwrap();
    expect_model_err(OnnxModel::from_bytes(&good[..good.len() / 2]), "not an ONNX model");
    // A valid protobuf message that is no model.
    expect_model_err(OnnxModel::from_bytes(&[0x08, 0x07]), "no graph");
}

/// Graphs that parse but break surgery (found by fuzzing): each is refused with its reason instead
/// of giving a split whose suffix has no nodes or defines a tensor twice.
#[test]
fn malformed_graphs_are_refused_before_surgery() {
    require_ort!();
    let edit = |f: &dyn Fn(&mut onnx_protobuf::GraphProto)| {
        let mut m = plain_cnn(3, 1);
        f(m.proto.graph.as_mut().unwrap());
        m.to_bytes().unwrap()
    };
    let gemm = |g: &mut onnx_protobuf::GraphProto| g.node.iter().position(|n| n.op_type == "Gemm").unwrap();
    // The output's node removed: nothing computes 'logits'.
    let dangling = edit(&|g| {
        let i = gemm(g);
        g.node.remove(i);
    });
    expect_model_err(OnnxModel::from_bytes(&dangling), "model output 'logits' is not computed by any node");
    // relu1 fed back from relu2: a cycle.
    let cycle = edit(&|g| {
        let conv2 = g.node.iter().position(|n| n.output[0] == "conv2").unwrap();
        g.node[conv2].input[0] = "relu2".into();
    });
    expect_model_err(OnnxModel::from_bytes(&cycle), "the model graph has a cycle");
    // Two nodes define relu2.
    let twice = edit(&|g| {
        let relu = g.node.iter().find(|n| n.output[0] == "relu2").unwrap().clone();
        let i = gemm(g);
        g.node.insert(i, relu);
    });
    expect_model_err(OnnxModel::from_bytes(&twice), "tensor 'relu2' is defined twice");

    // Negative dimensions, which ONNX Runtime passes on and its Rust binding panics on.
    let negative = edit(&|g| g.initializer[0].dims[0] = -3);
    expect_model_err(OnnxModel::from_bytes(&negative), "has dimension -3 (dimensions are ≥ 0)");
    let negative = edit(&|g| {
        if let Some(type_proto::Value::TensorType(t)) = g.output[0].type_.as_mut().and_then(|t| t.value.as_mut()) {
            t.shape.as_mut().unwrap().dim[1].set_dim_value(-5);
        }
    });
    expect_model_err(OnnxModel::from_bytes(&negative), "output 'logits' has dimension -5");

    // A branch no output depends on: its layer would get all-zero importances.
    let dead = OnnxModel::from_bytes(&edit(&|g| {
        let mut relu = g.node.iter().find(|n| n.output[0] == "relu2").unwrap().clone();
        relu.name = "dead".into();
        relu.output[0] = "dead".into();
        g.node.push(relu);
    }))
    .unwrap();
    assert!(dead.candidates().iter().any(|c| c.tensor == "dead"));
    let e = dead.split("dead").unwrap_err().to_string();
    assert!(e.contains("no model output depends on layer 'dead'"), "{e}");
    assert!(dead.split("relu2").is_ok());
    // The first convolution fed from weights alone: its layer does not depend on the image.
    let constant = OnnxModel::from_bytes(&edit(&|g| {
        let w = g.node[0].input[1].clone();
        g.node[0].input[0] = w;
    }))
    .unwrap();
    let e = constant.split("conv1").unwrap_err().to_string();
    assert!(e.contains("layer 'conv1' does not depend on the model input"), "{e}");
}

#[test]
fn unknown_layers_are_named_with_the_candidates() {
    require_ort!();
    let m = plain_cnn(3, 1);
    for r in [m.split("relu9").map(|_| ()), m.augmented(&["relu1", "relu9"]).map(|_| ())] {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::UnknownLayer { .. }), "{e:?}");
        assert_eq!(e.to_string(), "unknown layer 'relu9' (candidate layers: conv1, relu1, conv2, relu2)");
    }
    let e = m.split("logits").unwrap_err().to_string();
    assert!(e.contains("'logits' is a model output, not a layer") && e.contains("relu2"), "{e}");
    let e = m.split("input").unwrap_err().to_string();
    assert!(e.contains("'input' is a model input, not a layer") && e.contains("conv1"), "{e}");
    let e = m.split("flat").unwrap_err().to_string();
    assert!(e.contains("'flat' (output of Flatten) is not a candidate layer"), "{e}");
    let e = m.split("conv1.weight").unwrap_err().to_string();
    assert!(e.contains("'conv1.weight' is a weight, not a layer"), "{e}");
    let e = m.augmented(&["logits"]).unwrap_err().to_string();
    assert!(e.contains("'logits' is already a model output"), "{e}");
    let e = m.augmented(&["relu1", "relu1"]).unwrap_err().to_string();
    assert!(e.contains("'relu1' is listed twice"), "{e}");
}

#[test]
fn long_candidate_lists_are_shortened() {
    require_ort!();
    // Forty Relus in a row.
    let mut m = plain_cnn(3, 1);
    let g = m.proto.graph.as_mut().unwrap();
    let pos = g.node.iter().position(|n| n.output[0] == "relu2").unwrap();
    let mut prev = "relu2".to_string();
    for i in 0..40 {
        let out = format!("extra{i}");
        g.node.insert(pos + 1 + i, NodeProto {
            op_type: "Relu".into(),
            input: vec![prev.clone()],
            output: vec![out.clone()],
            ..Default::default()
        });
        prev = out;
    }
    g.node.iter_mut().find(|n| n.op_type == "GlobalAveragePool").unwrap().input[0] = prev;
    assert_eq!(m.candidates().len(), 44);
    let e = m.split("nope").unwrap_err().to_string();
    assert!(e.starts_with("unknown layer 'nope' (candidate layers: conv1, relu1, conv2, relu2, extra0"), "{e}");
    assert!(e.contains("extra39") && e.contains("(44 in all)") && !e.contains("extra20,"), "{e}");
    assert!(e.len() < 300, "{e}");
}

#[test]
fn model_without_candidates_is_rejected() {
    require_setup!();
    // input → GlobalAveragePool → Flatten → Gemm: nothing spatial to explain.
    let mut m = plain_cnn(3, 1);
    let g = m.proto.graph.as_mut().unwrap();
    g.node.retain(|n| !matches!(n.op_type.as_str(), "Conv" | "Relu"));
    g.node[0].input[0] = "input".into();
    g.initializer.retain(|t| t.name.starts_with("fc."));
    let w = g.initializer.iter_mut().find(|t| t.name == "fc.weight").unwrap();
    w.dims = vec![3, 3];
    w.raw_data.truncate(9 * 4);
    let m = OnnxModel::from_bytes(&m.to_bytes().unwrap()).unwrap();
    assert!(m.candidates().is_empty());
    let e = m.require_candidates().unwrap_err();
    assert!(matches!(e, Error::Model(_)), "{e:?}");
    assert!(e.to_string().contains("the model has no candidate layer"), "{e}");
    let e = m.split("gap").unwrap_err().to_string();
    assert!(e.contains("none: the model has no layer that yields a 4-D feature map"), "{e}");
    // It still runs: the graph itself is fine.
    let files = photos(1);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    let out = runner(&m).run(&[("input", &[1, 3, SIZE, SIZE], &x)]).unwrap();
    assert_eq!(out[0].0, [1, 3]);
}

#[test]
fn unsupported_inputs_are_rejected() {
    require_setup!();
    let base = plain_cnn(3, 1);
    assert_eq!(
        base.image_input().unwrap(),
        chip::onnx::ImageInput {
            name: "input".into(),
            channels: 3,
            height: Some(SIZE),
            width: Some(SIZE),
            layout: Some(chip::onnx::Layout::NCHW),
            elem_type: chip::onnx::InputType::Float32
        }
    );
    let edit = |f: &dyn Fn(&mut onnx_protobuf::ValueInfoProto)| -> OnnxModel {
        let mut m = base.clone();
        f(&mut m.proto.graph.as_mut().unwrap().input[0]);
        m
    };
    let err = |m: OnnxModel| m.image_input().unwrap_err().to_string();

    let m = edit(&|v| {
        dims(v).pop();
    });
    assert_eq!(err(m), "invalid model: input 'input' has shape [?, 3, 16] (rank 3); a 4-D image input (NCHW or NHWC) is required");
    // NHWC is read as such (the library puts an adapter in front of it).
    let m = edit(&|v| {
        let d = dims(v);
        d[1].set_dim_value(16);
        d[3].set_dim_value(3);
    });
    let nhwc = m.image_input().unwrap();
    assert_eq!((nhwc.layout, nhwc.channels, nhwc.height, nhwc.width), (Some(chip::onnx::Layout::NHWC), 3, Some(16), Some(16)));
    let m = edit(&|v| {
        let d = dims(v);
        d[1].set_dim_value(16);
        d[3].set_dim_value(16);
    });
    assert_eq!(
        err(m),
        "invalid model: input 'input' has shape [?, 16, 16, 16]: neither dimension 1 (NCHW) nor dimension 3 (NHWC) is 1 or 3 channels"
    );
    let m = edit(&|v| {
        if let Some(type_proto::Value::TensorType(t)) = v.type_.as_mut().unwrap().value.as_mut() {
            t.elem_type = DataType::UINT8 as i32;
        }
    });
    assert_eq!(m.image_input().unwrap().elem_type, chip::onnx::InputType::Uint8);
    let m = edit(&|v| {
        if let Some(type_proto::Value::TensorType(t)) = v.type_.as_mut().unwrap().value.as_mut() {
            t.elem_type = DataType::INT32 as i32;
        }
    });
    assert_eq!(err(m), "invalid model: input 'input' has element type int32; a float32, float16 or uint8 image input is required");

    let mut two = base.clone();
    let g = two.proto.graph.as_mut().unwrap();
    let mut second = g.input[0].clone();
    second.name = "mask".into();
    g.input.push(second);
    assert_eq!(err(two), "invalid model: the model has 2 inputs (input, mask); exactly one image input is supported");

    // Initializers listed as inputs (old exporters) do not count.
    let mut old = base.clone();
    let g = old.proto.graph.as_mut().unwrap();
    let listed: Vec<_> = g
        .initializer
        .iter()
        .map(|t| {
            let mut v = onnx_protobuf::ValueInfoProto::new();
            v.name = t.name.clone();
            v
        })
        .collect();
    g.input.extend(listed);
    assert_eq!(old.image_input().unwrap().name, "input");
    // ... and such a model still splits and runs.
    let files = photos(2);
    let x = photo_batch(&files, SIZE, IMAGENET_MEAN, IMAGENET_STD);
    // Untyped initializer inputs are not valid ONNX; give them their types first.
    for v in old.proto.graph.as_mut().unwrap().input.iter_mut().skip(1) {
        let tt = type_proto::Tensor { elem_type: 1, ..Default::default() };
        v.type_ = protobuf::MessageField::some(onnx_protobuf::TypeProto {
            value: Some(type_proto::Value::TensorType(tt)),
            ..Default::default()
        });
    }
    let r = check_all_splits(&old, &x, 2);
    assert_eq!(r.layers.len(), 4);
    let s = old.split("relu1").unwrap();
    let names = |m: &OnnxModel| -> Vec<String> { m.proto.graph.input.iter().map(|v| v.name.clone()).collect() };
    assert_eq!(names(&s.prefix), ["input", "conv1.weight", "conv1.bias"]);
    assert_eq!(names(&s.suffix), ["relu1", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]);
}

#[derive(serde::Deserialize)]
struct Sidecar {
    input_size: [usize; 2],
    mean: [f32; 3],
    std: [f32; 3],
}

#[test]
fn efficientnet_lite0_every_layer_splits_exactly() {
    require_setup!();
    let dir = root().join("data/models");
    let path = dir.join("efficientnet_lite0.onnx");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}: run scripts/setup.sh", path.display()));
    let sidecar: Sidecar = serde_json::from_slice(
        &std::fs::read(dir.join("efficientnet_lite0.json")).expect("efficientnet_lite0.json: run scripts/setup.sh"),
    )
    .unwrap();
    let model = OnnxModel::from_bytes(&bytes).unwrap();
    // Lossless on a real exported model.
    assert_eq!(OnnxModel::from_bytes(&model.to_bytes().unwrap()).unwrap().proto, model.proto);
    let input = model.image_input().unwrap();
    assert_eq!((input.channels, input.height, input.width), (3, Some(sidecar.input_size[0]), Some(sidecar.input_size[1])));

    let files = photos(4);
    let x = photo_batch(&files, sidecar.input_size[0], sidecar.mean, sidecar.std);
    let r = check_all_splits(&model, &x, files.len());
    let (first, last) = (r.layers.first().unwrap(), r.layers.last().unwrap());
    println!(
        "efficientnet_lite0: {} candidates, {} 4-D layers (H·W > 1); first {} {:?}, last {} {:?}; \
         worst split |diff| {:.3e}; worst augmented-vs-prefix relative {:.3e}",
        r.candidates, r.layers.len(), first.0, first.1, last.0, last.1, r.worst_split, r.worst_aug_rel
    );
    assert!(r.layers.len() >= 50, "only {} 4-D layers", r.layers.len());
    assert_eq!(first.1[2..], [112, 112]);
    assert_eq!(last.1[2..], [7, 7]);
}
