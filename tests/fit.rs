//! The fit on real ONNX Runtime: planted ground truth, lasso optimality, shards, seeds,
//! cancellation, a cut inside a skip connection, and EfficientNet-Lite0 on real photos.
#[macro_use]
mod common;
use chip::error::Error;
use chip::engine::fit::{self, collect_stats, fit_layer, list_images, no_progress, solve, FitOptions, Images, Progress};
use chip::engine::fitfile::LayerFit;
use chip::math::gates::GateSet;
use chip::runtime::model::Model;
use chip::runtime::RuntimeOptions;
use chip::math::stats::Stats;
use chip_testmodels as testmodels;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn root() -> &'static Path { Path::new(env!("CARGO_MANIFEST_DIR")) }

fn options() -> RuntimeOptions {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..Default::default() }
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load(m: &chip::onnx::OnnxModel) -> Model { Model::from_bytes(m.to_bytes().unwrap(), &options()).unwrap() }

/// Uniform noise in [-2, 2): varied enough that every planted channel moves.
fn random_images(model: &Model, n: usize, seed: u64) -> Vec<f32> {
    let (w, h) = model.input_size().as_usize();
    let mut rng = chip::util::rng::Rng::new(seed);
    (0..n * model.input.channels * h * w)
        .map(|_| (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 * 4.0 - 2.0)
        .collect()
}

fn max_abs(v: impl IntoIterator<Item = f64>) -> f64 { v.into_iter().fold(0.0, |m, x| m.max(x.abs())) }

/// Lasso KKT for ½wᵀGw − bᵀw + λ‖w‖₁, computed here from the raw statistics (not via admm.rs or
/// Stats::gram): G_c = D ⊙ Σ_s f^c_s z_s z_sᵀ with D rebuilt from the gates and h recomputed.
/// Returns the largest violation relative to λ_max = ‖b_c‖∞.
fn kkt_violation(stats: &Stats, fit: &LayerFit, class: usize) -> f64 {
    let k = stats.channels;
    let gates = GateSet::generate(k, stats.gate_count, stats.sigma2_rel, stats.gate_seed);
    let sigma2 = stats.sigma2_rel * k as f64;
    let mut d = vec![0f64; k * k];
    for n in 0..gates.count {
        let g = gates.gate(n);
        let closed = g.iter().filter(|&&x| x == 0).count() as f64;
        let h = (-closed / sigma2).exp();
        for i in 0..k {
            if g[i] == 0 { continue }
            for j in 0..k {
                if g[j] != 0 { d[i * k + j] += h }
            }
        }
    }
    let mut s = vec![0f64; k * k];
    for img in 0..stats.images {
        let f = stats.f[img * stats.classes + class];
        let z = &stats.z[img * k..(img + 1) * k];
        for i in 0..k {
            for j in 0..k {
                s[i * k + j] += f * z[i] * z[j];
            }
        }
    }
    let b = &stats.b[class * k..(class + 1) * k];
    let lambda_max = max_abs(b.iter().copied());
    let lambda = fit.meta.admm.lambda_rel * lambda_max;
    let w: Vec<f64> = fit.row(class).iter().map(|&x| x as f64).collect();
    let mut worst = 0f64;
    for i in 0..k {
        let gw: f64 = (0..k).map(|j| d[i * k + j] * s[i * k + j] * w[j]).sum();
        let r = gw - b[i];
        let v = if w[i] != 0.0 { (r + lambda * w[i].signum()).abs() } else { (r.abs() - lambda).max(0.0) };
        worst = worst.max(v / lambda_max);
    }
    worst
}

struct Recovery { tp: usize, predicted: usize, planted: usize, top_hits: usize, top_exact: usize }

fn planted_recovery(softmax: bool) {
    // Ten classes with three channels each and ten unplanted distractor channels.
    let (classes, channels, per_class) = (10, 40, 3);
    let p = testmodels::planted_cnn(classes, channels, per_class, softmax, 11);
    let model = load(&p.model);
    assert_eq!(model.layer(&p.layer).unwrap().channels, channels);
    let n = 32;
    // Noise in ±4: strong enough that the planted logits separate the classes; with weak inputs the
    // probabilities stay near 1/C and the intercept-free linear model leans on distractor channels.
    let data: Vec<f32> = random_images(&model, n, 3).iter().map(|v| v * 2.0).collect();
    let params = FitOptions { gates: 256, gate_batch: 64, image_batch: 8, ..FitOptions::paper() };
    let images = Images::Tensor { data: &data, n };
    let stats = collect_stats(&model, &p.layer, &images, &params, &no_progress).unwrap();
    let fit = solve(&model, &p.layer, &stats, &params, &no_progress).unwrap();

    let mut r = Recovery { tp: 0, predicted: 0, planted: 0, top_hits: 0, top_exact: 0 };
    for c in 0..classes {
        let w = fit.row(c);
        let planted = &p.planted[c];
        let support: Vec<usize> = (0..channels).filter(|&k| w[k] > 0.0).collect();
        r.tp += support.iter().filter(|k| planted.contains(k)).count();
        r.predicted += support.len();
        r.planted += planted.len();
        let mut order: Vec<usize> = (0..channels).collect();
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]));
        let mut top = order[..planted.len()].to_vec();
        r.top_hits += top.iter().filter(|k| planted.contains(k) && w[**k] > 0.0).count();
        top.sort_unstable();
        let mut want = planted.clone();
        want.sort_unstable();
        if top == want { r.top_exact += 1 }
        println!("softmax={softmax} class {c}: planted {want:?}, largest {top:?}, w = {:?}", w);
    }
    let precision = r.tp as f64 / r.predicted.max(1) as f64;
    let recall = r.tp as f64 / r.planted as f64;
    let top_precision = r.top_hits as f64 / r.planted as f64;
    println!(
        "softmax={softmax}: positive support precision {precision:.3} recall {recall:.3}; largest |P_c| entries: \
         precision = recall = {top_precision:.3}, exactly the planted set for {}/{classes} classes",
        r.top_exact
    );
    assert!(precision >= 0.9 && recall >= 0.9, "positive support: precision {precision:.3}, recall {recall:.3}");
    assert!(top_precision >= 0.9, "largest entries: precision {top_precision:.3}");

    // The solution is a lasso optimum of its own statistics.
    let worst = (0..classes).map(|c| kkt_violation(&stats, &fit, c)).fold(0.0, f64::max);
    println!("softmax={softmax}: worst KKT violation {worst:.2e} (relative to λ_max)");
    assert!(worst <= 1e-4, "KKT violated by {worst:.2e}");
}

#[test]
fn planted_channels_are_recovered_softmax_head() {
    require_ort!(); planted_recovery(true) }

#[test]
fn planted_channels_are_recovered_logits_head() {
    require_ort!(); planted_recovery(false) }

/// z_s and f_s of the statistics against the unsplit model: GAP of the augmented model's
/// activations and `predict`.
#[test]
fn statistics_agree_with_the_unsplit_model() {
    require_ort!();
    let p = testmodels::planted_cnn(4, 12, 2, true, 5);
    let model = load(&p.model);
    let n = 6;
    let data = random_images(&model, n, 9);
    let params = FitOptions { gates: 16, image_batch: 4, gate_batch: 5, ..FitOptions::paper() };
    let stats = collect_stats(&model, &p.layer, &Images::Tensor { data: &data, n }, &params, &no_progress).unwrap();
    let probs = model.predict(&data, n).unwrap();
    let (_, acts) = model.run_augmented(&data, n, &[p.layer.as_str()]).unwrap();
    let info = model.layer(&p.layer).unwrap();
    let hw = info.height * info.width;
    let mut dz = 0f64;
    for s in 0..n {
        for k in 0..info.channels {
            let a = &acts[0][(s * info.channels + k) * hw..(s * info.channels + k + 1) * hw];
            let gap = a.iter().map(|&v| v as f64).sum::<f64>() / hw as f64;
            dz = dz.max((gap - stats.z[s * info.channels + k]).abs() / gap.abs().max(1e-3));
        }
    }
    let df = max_abs(probs.iter().zip(&stats.f).map(|(&a, &b)| a as f64 - b));
    println!("z relative difference {dz:.2e}, f absolute difference {df:.2e}");
    assert!(dz < 1e-5 && df < 1e-5, "z {dz:.2e}, f {df:.2e}");
    assert_eq!(stats.images, n);
}

fn rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = max_abs(a.iter().map(|&x| x as f64)).max(1e-30);
    max_abs(a.iter().zip(b).map(|(&x, &y)| x as f64 - y as f64)) / scale
}

#[test]
fn shards_merge_to_the_same_fit() {
    require_ort!();
    let p = testmodels::planted_cnn(4, 12, 3, true, 21);
    let model = load(&p.model);
    let n = 16;
    let data = random_images(&model, n, 4);
    // Mosaics are tiled within a shard, so shards equal one fit only without them (the paper's
    // configuration has none).
    let params = FitOptions { gates: 128, gate_batch: 32, image_batch: 4, ..FitOptions::paper() };
    let half = data.len() / 2;
    let all = collect_stats(&model, &p.layer, &Images::Tensor { data: &data, n }, &params, &no_progress).unwrap();
    let mut a = collect_stats(&model, &p.layer, &Images::Tensor { data: &data[..half], n: n / 2 }, &params, &no_progress).unwrap();
    let b = collect_stats(&model, &p.layer, &Images::Tensor { data: &data[half..], n: n / 2 }, &params, &no_progress).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a.images, n);
    let db = max_abs(a.b.iter().zip(&all.b).map(|(x, y)| x - y)) / max_abs(all.b.iter().copied());
    let w_all = solve(&model, &p.layer, &all, &params, &no_progress).unwrap();
    let w_merged = solve(&model, &p.layer, &a, &params, &no_progress).unwrap();
    let dw = rel_diff(&w_all.weights, &w_merged.weights);
    println!("shards: b relative difference {db:.2e}, W relative difference {dw:.2e}");
    assert!(db < 1e-12, "{db:.2e}");
    assert!(dw <= 1e-6, "{dw:.2e}");
    assert_eq!(w_all.meta.images, n);
    assert_eq!(w_merged.meta, w_all.meta);
    // The statistics know their model and layer: solving them for another layer is refused.
    assert_eq!((a.layer.as_str(), a.model_fingerprint.as_str()), (p.layer.as_str(), model.fingerprint.as_str()));
    let other = model.layers().unwrap().iter().find(|l| l.name != p.layer).unwrap().name.clone();
    let e = solve(&model, &other, &a, &params, &no_progress).unwrap_err();
    assert!(matches!(&e, Error::FitMismatch(m) if m.contains("collected at layer")), "{e}");
}

#[test]
fn same_seed_same_weights_other_seed_other_gates() {
    require_ort!();
    let p = testmodels::planted_cnn(3, 10, 2, false, 2);
    let model = load(&p.model);
    let n = 6;
    let data = random_images(&model, n, 8);
    let images = Images::Tensor { data: &data, n };
    let params = FitOptions { gates: 48, gate_batch: 16, image_batch: 3, seed: 5, ..FitOptions::paper() };
    let a = fit_layer(&model, &p.layer, &images, &params, &no_progress).unwrap();
    let b = fit_layer(&model, &p.layer, &images, &params, &no_progress).unwrap();
    assert_eq!(a.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>(), b.weights.iter().map(|w| w.to_bits()).collect::<Vec<_>>());
    let other = FitOptions { seed: 6, ..params.clone() };
    let ga = GateSet::generate(10, 48, params.sigma2_rel, 5);
    let gb = GateSet::generate(10, 48, params.sigma2_rel, 6);
    assert_ne!(ga.open, gb.open);
    let sa = collect_stats(&model, &p.layer, &images, &params, &no_progress).unwrap();
    let sb = collect_stats(&model, &p.layer, &images, &other, &no_progress).unwrap();
    assert_ne!(sa.d, sb.d);
    assert_eq!((sa.gate_seed, sb.gate_seed), (5, 6));
    let c = solve(&model, &p.layer, &sb, &other, &no_progress).unwrap();
    assert_ne!(a.weights, c.weights);
    assert_eq!((a.meta.seed, c.meta.seed), (5, 6));
}

#[test]
fn cancelling_stops_the_fit_and_writes_nothing() {
    require_ort!();
    let p = testmodels::planted_cnn(3, 8, 2, true, 1);
    let model = load(&p.model);
    let n = 4;
    let data = random_images(&model, n, 2);
    let images = Images::Tensor { data: &data, n };
    let params = FitOptions { gates: 64, gate_batch: 8, image_batch: 2, ..FitOptions::paper() };
    let dir = tmp_dir("cancel");
    let out = dir.join("fit.chip");
    let cases: [(&str, fn(Progress) -> bool); 3] = [
        ("suffix run", |p| !matches!(p, Progress::SuffixRuns { done: 3, .. })),
        ("image", |p| !matches!(p, Progress::Images { done: 2, .. })),
        ("class", |p| !matches!(p, Progress::Classes { done: 1, .. })),
    ];
    for (what, cancel_at) in cases {
        let seen = AtomicUsize::new(0);
        let progress = |p: Progress| {
            seen.fetch_add(1, Ordering::Relaxed);
            cancel_at(p)
        };
        let r = fit_layer(&model, &p.layer, &images, &params, &progress).and_then(|f| f.save(&out));
        assert!(matches!(r, Err(Error::Cancelled)), "cancel at {what}: {r:?}");
        assert!(std::fs::read_dir(&dir).unwrap().next().is_none(), "cancel at {what} left a file behind");
        println!("cancelled at {what} after {} progress calls", seen.load(Ordering::Relaxed));
    }
    // The cancel must be immediate: no further suffix runs after the refusing call.
    let last = AtomicUsize::new(0);
    let r = collect_stats(&model, &p.layer, &images, &params, &|p| {
        if let Progress::SuffixRuns { done, .. } = p { last.store(done, Ordering::Relaxed) }
        !matches!(p, Progress::SuffixRuns { done: 5, .. })
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(last.load(Ordering::Relaxed), 5);
}

/// A cut inside a residual block: the skip tensor crosses and must be tiled along with the gated
/// layer. Gate batches of 1 (no tiling) and of 16 must give the same statistics.
#[test]
fn residual_cut_inside_the_skip() {
    require_ort!();
    let m = testmodels::residual_cnn(3, 4);
    let model = load(&m);
    let split = model.split("inner").unwrap();
    assert!(split.crossing.len() >= 2, "cutting at 'inner' should make the skip cross: {:?}", split.crossing);
    let n = 4;
    let data = random_images(&model, n, 6);
    let images = Images::Tensor { data: &data, n };
    let batched = FitOptions { gates: 32, gate_batch: 16, image_batch: 3, ..FitOptions::paper() };
    let single = FitOptions { gate_batch: 1, image_batch: 1, ..batched.clone() };
    let sb = collect_stats(&model, "inner", &images, &batched, &no_progress).unwrap();
    let s1 = collect_stats(&model, "inner", &images, &single, &no_progress).unwrap();
    let db = max_abs(sb.b.iter().zip(&s1.b).map(|(x, y)| x - y)) / max_abs(s1.b.iter().copied());
    println!("residual: b relative difference between gate batches 16 and 1: {db:.2e}");
    assert!(db < 1e-5, "{db:.2e}");
    let fit = solve(&model, "inner", &sb, &batched, &no_progress).unwrap();
    assert!(fit.weights.iter().all(|w| w.is_finite()));
    assert!(fit.weights.iter().any(|&w| w != 0.0));
    assert_eq!(fit.meta.layer, "inner");
}

/// A second implementation of the gated outputs: the whole model with `layer ⊙ gate` spliced in
/// (a Mul node fed by an extra input `chip_gate` of shape N×K×1×1), no split involved.
fn gated_model(m: &chip::onnx::OnnxModel, layer: &str, k: usize) -> Vec<u8> {
    use onnx_protobuf::{tensor_shape_proto, type_proto, NodeProto, TensorShapeProto, TypeProto, ValueInfoProto};
    use protobuf::MessageField;
    let mut proto = m.proto.clone();
    let graph = proto.graph.as_mut().unwrap();
    let gated = format!("{layer}__gated");
    for node in graph.node.iter_mut() {
        for input in node.input.iter_mut() {
            if input == layer { *input = gated.clone() }
        }
    }
    let at = graph.node.iter().position(|n| n.output.iter().any(|o| o == layer)).unwrap() + 1;
    graph.node.insert(at, NodeProto {
        name: "chip_gate_mul".into(),
        op_type: "Mul".into(),
        input: vec![layer.to_string(), "chip_gate".into()],
        output: vec![gated],
        ..Default::default()
    });
    let dims = ["N".to_string(), k.to_string(), "1".into(), "1".into()];
    let dim = dims
        .iter()
        .map(|d| {
            let mut x = tensor_shape_proto::Dimension::new();
            match d.parse::<i64>() { Ok(v) => x.set_dim_value(v), Err(_) => x.set_dim_param(d.clone()) }
            x
        })
        .collect();
    let tt = type_proto::Tensor { elem_type: 1, shape: MessageField::some(TensorShapeProto { dim, ..Default::default() }), ..Default::default() };
    graph.input.push(ValueInfoProto {
        name: "chip_gate".into(),
        type_: MessageField::some(TypeProto { value: Some(type_proto::Value::TensorType(tt)), ..Default::default() }),
        ..Default::default()
    });
    protobuf::Message::write_to_bytes(&proto).unwrap()
}

/// b from the statistics against b computed with the gated whole model: for each image, every gate
/// as one row (input repeated), softmax here when the model gives logits, h recomputed.
fn check_b_against_gated_model(m: &chip::onnx::OnnxModel, layer: &str, softmax_here: bool, pass: fit::StatsPass) {
    let model = load(m);
    let info = model.layer(layer).unwrap();
    let k = info.channels;
    let n = 5;
    let data = random_images(&model, n, 13);
    let params = FitOptions { gates: 40, gate_batch: 16, image_batch: 2, pass, ..FitOptions::paper() };
    let (stats, t) = fit::collect_stats_timed(&model, layer, &Images::Tensor { data: &data, n }, &params, &no_progress).unwrap();
    assert_eq!(t.closed_form, pass == fit::StatsPass::ClosedForm);

    let runner = chip::runtime::Runner::new(gated_model(m, layer, k), &options()).unwrap();
    let gates = GateSet::generate(k, params.gates, params.sigma2_rel, params.seed);
    let (w, h) = model.input_size().as_usize();
    let len = 3 * h * w;
    let classes = model.classes;
    let probs = |raw: Vec<f32>| -> Vec<f64> {
        raw.chunks(classes)
            .flat_map(|row| {
                let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                if !softmax_here { return row }
                let m = row.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = row.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.into_iter().map(|v| v / s).collect::<Vec<_>>()
            })
            .collect()
    };
    let (_, acts) = model.run_augmented(&data, n, &[layer]).unwrap();
    let hw = info.height * info.width;
    let mut b_ref = vec![0f64; classes * k];
    let sigma2 = params.sigma2_rel * k as f64;
    for s in 0..n {
        let img = &data[s * len..(s + 1) * len];
        let open = vec![1f32; k];
        let f = probs(runner.run(&[("input", &[1, 3, h, w], img), ("chip_gate", &[1, k, 1, 1], &open)]).unwrap().remove(0).1);
        let z: Vec<f64> = (0..k)
            .map(|c| acts[0][(s * k + c) * hw..(s * k + c + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64)
            .collect();
        let rows = gates.count;
        let batch: Vec<f32> = img.iter().copied().cycle().take(rows * len).collect();
        let gate: Vec<f32> = gates.open.iter().map(|&o| o as f32).collect();
        let g = probs(runner.run(&[("input", &[rows, 3, h, w], &batch), ("chip_gate", &[rows, k, 1, 1], &gate)]).unwrap().remove(0).1);
        for nn in 0..rows {
            let d = gates.gate(nn);
            let closed = d.iter().filter(|&&x| x == 0).count() as f64;
            let hn = (-closed / sigma2).exp();
            for c in 0..classes {
                for j in 0..k {
                    if d[j] != 0 {
                        b_ref[c * k + j] += hn * f[c] * g[nn * classes + c] * z[j];
                    }
                }
            }
        }
    }
    let diff = max_abs(b_ref.iter().zip(&stats.b).map(|(x, y)| x - y)) / max_abs(b_ref.iter().copied());
    println!("{layer}: b relative difference to the gated whole model {diff:.2e}");
    assert!(diff < 1e-5, "{diff:.2e}");
}

#[test]
fn statistics_match_a_gated_whole_model() {
    require_ort!();
    // The layer feeding GAP → Gemm (→ Softmax), in closed form and through suffix runs.
    for pass in [fit::StatsPass::ClosedForm, fit::StatsPass::Suffix] {
        check_b_against_gated_model(&testmodels::planted_cnn(4, 12, 2, false, 3).model, "feat", true, pass);
        check_b_against_gated_model(&testmodels::planted_cnn(4, 12, 2, true, 3).model, "feat", false, pass);
    }
    // The cut inside the skip: the split must tile the crossing skip tensor correctly.
    check_b_against_gated_model(&testmodels::residual_cnn(3, 4), "inner", true, fit::StatsPass::Suffix);
}

#[test]
fn bad_inputs_are_refused_with_clear_errors() {
    require_ort!();
    let p = testmodels::planted_cnn(3, 8, 2, true, 1);
    let model = load(&p.model);
    let params = FitOptions { gates: 8, ..FitOptions::paper() };
    let mut data = random_images(&model, 2, 2);
    match collect_stats(&model, "nope", &Images::Tensor { data: &data, n: 2 }, &params, &no_progress) {
        Err(Error::UnknownLayer { name, .. }) => assert_eq!(name, "nope"),
        r => panic!("{r:?}"),
    }
    match collect_stats(&model, &p.layer, &Images::Tensor { data: &data[1..], n: 2 }, &params, &no_progress) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("1535 floats") && msg.contains("need 1536"), "{msg}"),
        r => panic!("{r:?}"),
    }
    data[17] = f32::NAN;
    assert!(matches!(
        collect_stats(&model, &p.layer, &Images::Tensor { data: &data, n: 2 }, &params, &no_progress),
        Err(Error::NonFinite(_))
    ));
    let zero = FitOptions { gate_batch: 0, ..params.clone() };
    assert!(matches!(collect_stats(&model, &p.layer, &Images::Tensor { data: &data, n: 2 }, &zero, &no_progress), Err(Error::InvalidArgument(_))));
    let bad_class = FitOptions { classes: Some(vec![3]), ..params.clone() };
    let ok = random_images(&model, 2, 2);
    assert!(matches!(fit_layer(&model, &p.layer, &Images::Tensor { data: &ok, n: 2 }, &bad_class, &no_progress), Err(Error::InvalidArgument(_))));
    // An image file that is not an image: an error naming it.
    let dir = tmp_dir("badimage");
    std::fs::write(dir.join("broken.png"), b"not a png").unwrap();
    let r = collect_stats(&model, &p.layer, &Images::Dir(dir.clone()), &params, &no_progress);
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("broken.png"), "{msg}");
}

#[test]
fn image_lists_from_folders_and_list_files() {
    let dir = tmp_dir("lists");
    for f in ["b.JPG", "a.png", "c.txt", "d.webp"] {
        std::fs::write(dir.join(f), b"x").unwrap();
    }
    std::fs::create_dir(dir.join("sub.png")).unwrap();
    let got = list_images(&dir).unwrap();
    assert_eq!(got, vec![dir.join("a.png"), dir.join("b.JPG"), dir.join("d.webp")]);

    std::fs::create_dir(dir.join("lists")).unwrap();
    let list = dir.join("lists/train.txt");
    std::fs::write(&list, "../a.png\n\n  ../d.webp  \n/abs/x.jpg\n").unwrap();
    let got = list_images(&list).unwrap();
    assert_eq!(got, vec![dir.join("lists/../a.png"), dir.join("lists/../d.webp"), PathBuf::from("/abs/x.jpg")]);

    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let msg = list_images(&empty).unwrap_err().to_string();
    assert!(msg.contains("no image files") && msg.contains("empty"), "{msg}");
    std::fs::write(dir.join("blank.txt"), "\n \n").unwrap();
    let msg = list_images(&dir.join("blank.txt")).unwrap_err().to_string();
    assert!(msg.contains("names no images"), "{msg}");
    assert!(matches!(list_images(&dir.join("missing")), Err(Error::Io { .. })));
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9.jpg\n").unwrap();
    let msg = list_images(&dir.join("latin1.txt")).unwrap_err().to_string();
    assert!(msg.contains("UTF-8"), "{msg}");
}

// ---- EfficientNet-Lite0 on real photos ----

fn efficientnet() -> Option<(Model, Vec<PathBuf>)> {
    let path = root().join("data/models/efficientnet_lite0.onnx");
    let photos = root().join("data/images/aib");
    if !path.exists() || !photos.exists() {
        panic!("{} or {} missing: run scripts/setup.sh", path.display(), photos.display());
    }
    let model = Model::load(&path, &options()).unwrap();
    let mut files: Vec<PathBuf> = list_images(&photos)
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg")))
        .collect();
    files.truncate(100);
    Some((model, files))
}

fn top1(model: &Model, files: &[PathBuf]) -> Vec<usize> {
    let mut out = Vec::new();
    for chunk in files.chunks(16) {
        let mut batch = Vec::new();
        for f in chunk {
            batch.extend(model.preprocess.load(f).unwrap().data);
        }
        let p = model.predict(&batch, chunk.len()).unwrap();
        for row in p.chunks(model.classes) {
            out.push((0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap());
        }
    }
    out
}

/// Fits `layer` on the photos and checks every photo's map for its top-1 class.
fn real_fit(layer_index: Layer, photos: usize, gates: usize) {
    let (model, mut files) = efficientnet().unwrap();
    files.truncate(photos);
    let layers = model.layers().unwrap();
    let info = match layer_index { Layer::First => stem(&model), Layer::Last => layers.last().unwrap().clone() };
    let top = top1(&model, &files);
    let mut classes = top.clone();
    classes.sort_unstable();
    classes.dedup();
    let params = FitOptions { gates, classes: Some(classes.clone()), ..FitOptions::paper() };
    let t0 = Instant::now();
    let (stats, timings) = fit::collect_stats_timed(&model, &info.name, &Images::Files(files.clone()), &params, &no_progress).unwrap();
    let t_stats = t0.elapsed();
    let t1 = Instant::now();
    let fit = solve(&model, &info.name, &stats, &params, &no_progress).unwrap();
    println!(
        "layer '{}' ({}×{}×{}): {} photos × {} gates, {} classes: statistics {:.1}s (prefix {:.1}s, build {:.1}s, suffix {:.1}s), solve {:.1}s",
        info.name, info.channels, info.height, info.width, files.len(), gates, classes.len(),
        t_stats.as_secs_f64(), timings.prefix.as_secs_f64(), timings.build.as_secs_f64(), timings.suffix.as_secs_f64(),
        t1.elapsed().as_secs_f64()
    );
    assert_eq!(fit.meta.solved_classes, classes);
    fit.check_against(&model).unwrap();
    let mut degenerate = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let data = model.preprocess.load(f).unwrap().data;
        let (_, acts) = model.run_augmented(&data, 1, &[info.name.as_str()]).unwrap();
        let map = chip::math::maps::class_map(fit.row(top[i]), &acts[0], info.channels, info.height, info.width);
        let (lo, hi) = map.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if !(hi > 0.0 && hi > lo) {
            degenerate.push(f.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    println!("degenerate maps: {degenerate:?}");
    assert!(degenerate.is_empty(), "degenerate maps for {degenerate:?}");
}

enum Layer { First, Last }

/// The stem's activation (conv, ReLU6): the first candidate is the Pad in front of the stem conv
/// (3 channels), and the stem conv's own output is taken before its activation.
fn stem(model: &Model) -> chip::runtime::model::LayerInfo {
    model.layers().unwrap().into_iter().find(|l| l.op_type == "Clip").expect("a Clip layer")
}

#[test]
fn efficientnet_conv_head_on_100_photos() {
    require_setup!();
    let (model, _) = efficientnet().unwrap();
    assert_eq!(model.layers().unwrap().last().unwrap().channels, 1280);
    real_fit(Layer::Last, 100, 256);
}

/// The full stem fit (100 photos × 256 gates) runs in the bench; the test uses a reduced one.
#[test]
fn efficientnet_stem_reduced() {
    require_setup!();
    let (model, _) = efficientnet().unwrap();
    assert_eq!(stem(&model).channels, 32);
    real_fit(Layer::First, 16, 64);
}

/// λ_rel ≥ 1 (every weight zero) and a σ² under which every gate but the all-open one has
/// proximity 0 are refused before any image is processed, naming the option.
#[test]
fn useless_parameters_are_refused_before_any_image() {
    require_ort!();
    let p = testmodels::planted_cnn(3, 8, 2, true, 1);
    let model = load(&p.model);
    let data = random_images(&model, 2, 2);
    let calls = AtomicUsize::new(0);
    let progress = |_: Progress| {
        calls.fetch_add(1, Ordering::SeqCst);
        true
    };
    let base = FitOptions { gates: 8, ..FitOptions::paper() };
    for lambda in [1.0, 2.0, 1e308, f64::INFINITY, -0.5] {
        let mut params = base.clone();
        params.admm.lambda_rel = lambda;
        let msg = fit_layer(&model, &p.layer, &Images::Tensor { data: &data, n: 2 }, &params, &progress).unwrap_err().to_string();
        assert!(msg.contains("lambda_rel") && msg.contains("< 1"), "λ {lambda}: {msg}");
    }
    let params = FitOptions { sigma2_rel: 1e-30, ..base.clone() };
    let msg = fit_layer(&model, &p.layer, &Images::Tensor { data: &data, n: 2 }, &params, &progress).unwrap_err().to_string();
    assert!(msg.contains("sigma2_rel 1e-30") && msg.contains(&p.layer), "{msg}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "images were processed before the check");
    // The edge of the check: σ² that leaves exp(-1/σ²) a normal number passes.
    chip::math::gates::check_sigma2(1.0 / 700.0, "l", 1).unwrap();
    chip::math::gates::check_sigma2(1.0 / 700.0, "l", 2).unwrap();
    assert!(chip::math::gates::check_sigma2(1.0 / 710.0 / 8.0, "l", 8).is_err());
    // λ just under 1 still fits.
    let mut params = base;
    params.admm.lambda_rel = 0.999;
    fit_layer(&model, &p.layer, &Images::Tensor { data: &data, n: 2 }, &params, &no_progress).unwrap();
}

/// The closed form of the conv head (GAP → Gemm → Softmax) against ONNX Runtime's suffix runs on
/// real photos, for every target: the statistics agree to float rounding, and so do the fits
/// (the solver is the same, so what differs is the rounding of the gated outputs).
#[test]
fn efficientnet_head_closed_form_matches_the_suffix() {
    use chip::engine::fit::StatsPass;
    use chip::math::objective::{Objective, Target};
    let (model, mut files) = efficientnet().unwrap();
    files.truncate(6);
    let head = model.layers().unwrap().last().unwrap().clone();
    let classes = {
        let mut c = top1(&model, &files);
        c.sort_unstable();
        c.dedup();
        c
    };
    let rel = |a: &[f64], b: &[f64]| max_abs(a.iter().zip(b).map(|(x, y)| x - y)) / max_abs(b.iter().copied());
    for target in Target::ALL {
        let objective = Objective { target, intercept: target != Target::Probability, nonneg: false };
        let base = FitOptions { gates: 64, gate_batch: 32, image_batch: 4, mosaics: 1, objective, classes: Some(classes.clone()), ..FitOptions::default() };
        let closed = FitOptions { pass: StatsPass::ClosedForm, ..base.clone() };
        let suffix = FitOptions { pass: StatsPass::Suffix, ..base.clone() };
        let images = Images::Files(files.clone());
        let t0 = Instant::now();
        let (sc, tc) = fit::collect_stats_timed(&model, &head.name, &images, &closed, &no_progress).unwrap();
        let t_closed = t0.elapsed();
        let t0 = Instant::now();
        let (ss, ts) = fit::collect_stats_timed(&model, &head.name, &images, &suffix, &no_progress).unwrap();
        let t_suffix = t0.elapsed();
        assert!(tc.closed_form && tc.suffix_runs == 0 && !ts.closed_form && ts.suffix_runs > 0);
        assert_eq!((sc.images, sc.z.len()), (ss.images, ss.z.len()));
        let (db, df, dz, dbg) = (rel(&sc.b, &ss.b), rel(&sc.f, &ss.f), rel(&sc.z, &ss.z), rel(&sc.bg, &ss.bg));
        let fc = solve(&model, &head.name, &sc, &closed, &no_progress).unwrap();
        let fs = solve(&model, &head.name, &ss, &suffix, &no_progress).unwrap();
        let dw = max_abs(fc.weights.iter().zip(&fs.weights).map(|(a, b)| (a - b) as f64)) / max_abs(fs.weights.iter().map(|&v| v as f64));
        println!(
            "{}: closed form vs suffix: b {db:.1e}, f {df:.1e}, z {dz:.1e}, bg {dbg:.1e}, W {dw:.1e}; statistics {:.2}s vs {:.2}s",
            target.name(), t_closed.as_secs_f64(), t_suffix.as_secs_f64()
        );
        assert!(dz < 1e-6 && df < 1e-5 && db < 1e-5 && dbg < 1e-5, "{}: b {db:.1e} f {df:.1e} z {dz:.1e} bg {dbg:.1e}", target.name());
        assert!(dw < 1e-4, "{}: W differs by {dw:.1e}", target.name());
        // The closed form is refused where the layer does not feed such a head.
        if target == Target::Probability {
            let err = fit::collect_stats(&model, &stem(&model).name, &images, &closed, &no_progress).unwrap_err();
            assert!(err.to_string().contains("global average pooling"), "{err}");
        }
    }
}
