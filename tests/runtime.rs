//! ONNX Runtime loading and Runner, on the real ONNX Runtime (scripts/setup.sh provides it).
#[macro_use]
mod common;
use chip::runtime::{ensure_ort, find_ort_library, ort_search_places, Device, Runner, RuntimeOptions};
use chip::Error;
use onnx_protobuf::{
    tensor_shape_proto::{dimension, Dimension},
    type_proto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use std::path::{Path, PathBuf};

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ort_dir() -> PathBuf {
    project().join("third_party/onnxruntime/lib")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-rt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn value_info(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(match d {
            Some(v) => dimension::Value::DimValue(*v),
            None => dimension::Value::DimParam("N".into()),
        });
        shape.dim.push(dim);
    }
    let mut t = type_proto::Tensor::new();
    t.elem_type = 1; // FLOAT
    t.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(t));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

fn tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = 1;
    t.float_data = data.to_vec();
    t
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = vec![output.into()];
    n.name = output.into();
    n
}

const W: [f32; 12] = [1.0, -2.0, 0.5, 0.0, 3.0, 1.0, -1.0, 0.25, 2.0, 1.5, -0.5, 4.0];
const B: [f32; 3] = [0.5, -1.0, 2.0];

/// x [N,4] → y = x·W + B [N,3] and z = Relu(y) [N,3]: outputs computable by hand.
fn affine_model() -> Vec<u8> {
    let mut g = GraphProto::new();
    g.name = "affine".into();
    g.input.push(value_info("x", &[None, Some(4)]));
    g.output.push(value_info("y", &[None, Some(3)]));
    g.output.push(value_info("z", &[None, Some(3)]));
    g.initializer.push(tensor("W", &[4, 3], &W));
    g.initializer.push(tensor("B", &[3], &B));
    g.node.push(node("MatMul", &["x", "W"], "m"));
    g.node.push(node("Add", &["m", "B"], "y"));
    g.node.push(node("Relu", &["y"], "z"));
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 13;
    m.opset_import.push(op);
    m.graph = Some(g).into();
    m.write_to_bytes().unwrap()
}

fn affine_reference(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut y = Vec::new();
    for row in x.chunks(4) {
        for j in 0..3 {
            let mut s = B[j] as f64;
            for i in 0..4 {
                s += row[i] as f64 * W[i * 3 + j] as f64;
            }
            y.push(s as f32);
        }
    }
    let z = y.iter().map(|v| v.max(0.0)).collect();
    (y, z)
}

fn runner() -> Runner {
    Runner::new(affine_model(), &RuntimeOptions { threads: 1, ..Default::default() }).unwrap()
}

#[test]
fn search_lists_every_place_tried_with_its_reason() {
    require_ort!();
    let root = scratch("search");
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let fake = root.join("fake");
    std::fs::create_dir_all(&fake).unwrap();
    std::fs::write(fake.join("libonnxruntime.so"), b"not a shared library").unwrap();
    let missing = root.join("missing");
    // A real shared library that is not ONNX Runtime (the C library, found through dladdr).
    let other = root.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let libc_path = {
        let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
        assert_ne!(unsafe { libc::dladdr(libc::malloc as *const libc::c_void, &mut info) }, 0);
        PathBuf::from(unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_str().unwrap())
    };
    std::os::unix::fs::symlink(&libc_path, other.join("libonnxruntime.so.1")).unwrap();

    let places = vec![empty.clone(), fake.clone(), missing.clone(), other.clone()];
    let err = find_ort_library(&places).unwrap_err();
    let Error::OrtNotFound { tried } = &err else { panic!("expected OrtNotFound, got {err:?}") };
    let text = err.to_string();
    assert!(text.contains("CHIP_ORT_LIB"), "{text}");
    let parts: Vec<&str> = tried.split("; ").collect();
    assert_eq!(parts.len(), 4, "{tried}");
    // In search order, each with why it was skipped.
    assert!(parts[0].starts_with(&empty.display().to_string()) && parts[0].contains("no libonnxruntime.so*"), "{}", parts[0]);
    assert!(parts[1].starts_with(&fake.join("libonnxruntime.so").display().to_string()), "{}", parts[1]);
    assert!(parts[1].contains("ELF") || parts[1].contains("too short"), "dlopen's reason: {}", parts[1]);
    assert!(parts[2].starts_with(&missing.display().to_string()) && parts[2].contains("No such file"), "{}", parts[2]);
    assert!(parts[3].contains("does not export OrtGetApiBase"), "{}", parts[3]);

    // The first place that holds a loadable ONNX Runtime wins; earlier bad ones are skipped.
    let good = ort_dir();
    let mut with_good = places.clone();
    with_good.push(good.clone());
    let found = find_ort_library(&with_good).unwrap();
    assert!(found.starts_with(&good), "{}", found.display());
    // A second copy earlier in the order is preferred over the project one.
    let copy = root.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    std::os::unix::fs::symlink(&found, copy.join("libonnxruntime.so")).unwrap();
    let mut ordered = vec![fake.clone(), copy.clone()];
    ordered.push(good.clone());
    assert_eq!(find_ort_library(&ordered).unwrap(), copy.join("libonnxruntime.so"));
    // A file path is taken as is.
    assert_eq!(find_ort_library(&[found.clone()]).unwrap(), found);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn search_order_puts_explicit_then_environment_first() {
    require_ort!();
    // An explicit path is the only place searched.
    let explicit = PathBuf::from("/nonexistent/explicit/libonnxruntime.so");
    assert_eq!(ort_search_places(Some(&explicit)), vec![explicit]);
    let places = ort_search_places(None);
    let n = places.len();
    assert_eq!(places[n - 2], ort_dir());
    assert_eq!(places[n - 1], PathBuf::from("third_party/onnxruntime/lib"));
    let exe_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
    assert!(places.contains(&exe_dir));

    // CHIP_ORT_LIB comes second: checked in a child process so this process's environment stays untouched.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_sees_environment_variable_second", "--nocapture", "--test-threads=1"])
        .env("CHIP_ORT_LIB", "/nonexistent/from-env")
        .env("CHIP_TEST_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("1 passed"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn child_sees_environment_variable_second() {
    // No require_ort! first: it would load ONNX Runtime, and a loaded library answers every later call.
    if std::env::var_os("CHIP_TEST_CHILD").is_none() {
        return; // only meaningful inside the child started above
    }
    let places = ort_search_places(None);
    assert_eq!(places[0], PathBuf::from("/nonexistent/from-env"));
    // A bad explicit path is the error, whatever CHIP_ORT_LIB says; nothing else is tried.
    let e = ensure_ort(Some(Path::new("/nonexistent/explicit"))).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/explicit") && !e.contains("from-env") && !e.contains("third_party"), "{e}");
    // Without one, a bad CHIP_ORT_LIB is skipped and loading finds the project copy.
    require_ort!();
    let path = ensure_ort(None).unwrap();
    assert!(path.starts_with(ort_dir()), "{}", path.display());
}

#[test]
fn ensure_ort_loads_once_and_returns_the_same_path() {
    require_ort!();
    let first = ensure_ort(None).unwrap();
    assert!(first.is_file(), "{}", first.display());
    // A later call, even naming another path, gets the library already in use.
    let again = ensure_ort(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap();
    assert_eq!(first, again);
}

#[test]
fn runner_matches_hand_computed_outputs() {
    require_ort!();
    let r = runner();
    assert_eq!(r.input_names(), ["x"]);
    assert_eq!(r.output_names(), ["y", "z"]);
    let x = [1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0];
    let outs = r.run(&[("x", &[3, 4], &x)]).unwrap();
    let (y, z) = affine_reference(&x);
    assert_eq!(outs.len(), 2);
    assert_eq!(outs[0].0, vec![3, 3]);
    assert_eq!(outs[1].0, vec![3, 3]);
    for (a, b) in outs[0].1.iter().zip(&y) {
        assert!((a - b).abs() < 1e-5, "{:?} vs {y:?}", outs[0].1);
    }
    assert_eq!(outs[1].1, z);
    // The zero row gives the bias, and Relu clips its negative entry.
    assert_eq!(&outs[0].1[6..9], &B);
    assert_eq!(&outs[1].1[6..9], &[0.5, 0.0, 2.0]);
    // Batch 1 and an empty batch work too (open batch dimension).
    let one = r.run(&[("x", &[1, 4], &x[..4])]).unwrap();
    assert_eq!(one[0].1, outs[0].1[..3]);
    let none = r.run(&[("x", &[0, 4], &[])]).unwrap();
    assert_eq!(none[0].0, vec![0, 3]);
}

#[test]
fn runner_rejects_bad_inputs_with_clear_errors() {
    require_ort!();
    let r = runner();
    let x = [0.5f32; 8];
    let msg = |e: Error| e.to_string();

    let e = r.run(&[("input", &[2, 4], &x)]).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)));
    let m = msg(e);
    assert!(m.contains("'x'") , "missing input named: {m}");
    let e = r.run(&[("x", &[2, 4], &x), ("extra", &[2, 4], &x)]).unwrap_err();
    assert!(msg(e).contains("unknown input 'extra'"));
    let e = r.run(&[]).unwrap_err();
    assert!(msg(e).contains("missing model input 'x'"));
    let e = r.run(&[("x", &[2, 4], &x), ("x", &[2, 4], &x)]).unwrap_err();
    assert!(msg(e).contains("twice"));

    let e = r.run(&[("x", &[8], &x)]).unwrap_err();
    let m = msg(e);
    assert!(m.contains("rank 1") && m.contains("rank 2") && m.contains("[?, 4]"), "{m}");
    let e = r.run(&[("x", &[4, 2], &x)]).unwrap_err();
    let m = msg(e);
    assert!(m.contains("axis 1") && m.contains("2 instead of 4"), "{m}");
    let e = r.run(&[("x", &[3, 4], &x)]).unwrap_err();
    let m = msg(e);
    assert!(m.contains("needs 12 values, 8 given"), "{m}");

    let mut bad = x;
    bad[5] = f32::NAN;
    let e = r.run(&[("x", &[2, 4], &bad)]).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(w) if w.contains("'x'") && w.contains("#5")), "{e}");
    bad[5] = f32::INFINITY;
    assert!(matches!(r.run(&[("x", &[2, 4], &bad)]), Err(Error::NonFinite(_))));
    // The runner still works after refusing bad input.
    assert!(r.run(&[("x", &[2, 4], &x)]).is_ok());
}

#[test]
fn corrupt_model_bytes_give_an_ort_error() {
    require_ort!();
    for bytes in [Vec::new(), b"garbage that is not protobuf".to_vec(), affine_model()[..40].to_vec()] {
        match Runner::new(bytes, &RuntimeOptions::default()) {
            Err(Error::Ort(m)) => assert!(m.contains("cannot create a session"), "{m}"),
            other => panic!("expected Error::Ort, got {:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn cuda_either_works_or_says_why() {
    require_ort!();
    let opts = RuntimeOptions { device: Device::Cuda(0), ..Default::default() };
    match Runner::new(affine_model(), &opts) {
        Err(Error::Ort(m)) => assert!(m.contains("CUDA"), "{m}"),
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(r) => {
            let x = [1.0, 2.0, 3.0, 4.0];
            let out = r.run(&[("x", &[1, 4], &x)]).unwrap();
            let (y, _) = affine_reference(&x);
            for (a, b) in out[0].1.iter().zip(&y) {
                assert!((a - b).abs() < 1e-3);
            }
        }
    }
}

/// Lite0 when provisioned; otherwise a wider affine model still exercises the pool.
fn concurrency_model() -> (Vec<u8>, &'static str, Vec<usize>) {
    let lite0 = project().join("data/models/efficientnet_lite0.onnx");
    if let Ok(bytes) = std::fs::read(&lite0) {
        return (bytes, "input", vec![1, 3, 224, 224]);
    }
    eprintln!("{} missing: using the affine model", lite0.display());
    (affine_model(), "x", vec![64, 4])
}

#[test]
fn eight_threads_agree_with_serial_runs() {
    require_setup!();
    let (bytes, input, shape) = concurrency_model();
    let r = Runner::new(bytes, &RuntimeOptions { threads: 1, ..Default::default() }).unwrap();
    let len: usize = shape.iter().product();
    // Distinct deterministic inputs per job.
    let inputs: Vec<Vec<f32>> = (0..16)
        .map(|j| (0..len).map(|i| (((i * 31 + j * 97) % 251) as f32 / 125.0) - 1.0).collect())
        .collect();
    let serial: Vec<Vec<f32>> =
        inputs.iter().map(|x| r.run(&[(input, &shape, x)]).unwrap().swap_remove(0).1).collect();
    // Different inputs give different outputs, so a mix-up between threads would show.
    assert_ne!(serial[0], serial[1]);
    let parallel: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (r, inputs, shape) = (&r, &inputs, &shape);
                s.spawn(move || {
                    (0..inputs.len())
                        .filter(|j| j % 8 == t)
                        .map(|j| (j, r.run(&[(input, shape, &inputs[j])]).unwrap().swap_remove(0).1))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<(usize, Vec<f32>)> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_by_key(|(j, _)| *j);
        all.into_iter().map(|(_, v)| v).collect()
    });
    for (j, (p, s)) in parallel.iter().zip(&serial).enumerate() {
        let diff = p.iter().zip(s).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(diff <= 1e-5, "job {j}: max diff {diff}");
    }
}

#[test]
fn runner_is_send_and_sync() {
    require_ort!();
    fn check<T: Send + Sync>() {}
    check::<Runner>();
}
