//! Explanation cost against plain inference on EfficientNet-Lite0: `cargo bench --bench explain`.
//! Prints one table row per (layers, batch): median wall time of `Model::predict`, of the
//! augmented model run alone (the layers' activations as extra outputs, no maps), of
//! `Explainer::explain` (top-1 class, maps computed in the graph, resized to the photos' own sizes,
//! boxes) and of explain with maps at the input size; explain/predict as a median of paired wall
//! times and as a ratio of process CPU time. Interleaved with them: the model written by
//! `chip export` (maps of the top-1 inside the graph) against the original model, both run as they
//! are by ONNX Runtime, as the same two ratios. `CHIP_ORT_SPINNING=1` measures with ONNX Runtime's
//! threads spinning after each run; compare in separate runs, since spinning threads left behind
//! by one closure slow whatever runs next in the same process. `CHIP_BENCH_BREAKDOWN=1` adds, per
//! row, the time of each Rust step of a map and the ratios of the augmented run and of explain at
//! the input size to predict; `CHIP_BENCH_REPS` sets the number of runs (15).
use chip::engine::explain::{ExplainOptions, Explainer};
use chip::engine::fitfile::{FitMeta, LayerFit};
use chip::runtime::model::{LayerInfo, Model};
use chip::runtime::preprocess::Size;
use chip::runtime::{Runner, RuntimeOptions, Tensor};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A dense W with every class solved: the cost of a map does not depend on the values, and dense
/// rows are the worst case.
fn dense_fit(model: &Model, layer: &LayerInfo) -> LayerFit {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let weights = (0..model.classes * layer.channels)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.25
        })
        .collect();
    LayerFit {
        meta: FitMeta {
            layer: layer.name.clone(),
            channels: layer.channels,
            height: layer.height,
            width: layer.width,
            classes: model.classes,
            model_fingerprint: model.fingerprint.clone(),
            gates: 0,
            sigma2_rel: 0.5,
            seed: 0,
            images: 0,
            admm: Default::default(),
            objective: Default::default(),
            augment: 0,
            mosaics: 0,
            solved_classes: (0..model.classes).collect(),
            preprocess: Some(model.spec.canonical()),
        },
        weights,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds used by the whole process (all threads) so far.
fn cpu_s() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage only writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Runs the closures in turn `reps` times after one warm-up round, so a changing machine load
/// hits all of them alike. Returns each one's wall times in ms and its process CPU seconds in all
/// (CPU time is disturbed less by other programs on a busy machine).
fn interleaved(reps: usize, fs: &mut [&mut dyn FnMut()]) -> (Vec<Vec<f64>>, Vec<f64>) {
    for f in fs.iter_mut() {
        f();
    }
    let mut t = vec![Vec::with_capacity(reps); fs.len()];
    let mut c = vec![0.0; fs.len()];
    for _ in 0..reps {
        for (i, f) in fs.iter_mut().enumerate() {
            let (t0, c0) = (Instant::now(), cpu_s());
            f();
            t[i].push(t0.elapsed().as_secs_f64() * 1e3);
            c[i] += cpu_s() - c0;
        }
    }
    (t, c)
}

/// The median of the paired wall-time ratios a/b.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    median(a.iter().zip(b).map(|(x, y)| x / y).collect())
}

fn main() {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    let rt = RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..RuntimeOptions::default() };
    let model = Arc::new(Model::load(&root().join("data/models/efficientnet_lite0.onnx"), &rt).expect("model (run scripts/setup.sh)"));
    let layers = model.layers().unwrap();
    let stem = layers.iter().find(|l| matches!(l.op_type.as_str(), "Clip" | "Relu")).unwrap_or(&layers[0]).clone();
    let head = layers.iter().rev().find(|l| l.height > 1 && l.width > 1).unwrap().clone();
    let photos = chip::engine::fit::list_images(&root().join("data/images/aib")).unwrap();
    let prepared: Vec<_> = photos.iter().take(16).map(|p| model.preprocess.load(p).unwrap()).collect();
    let reps: usize = std::env::var("CHIP_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let spin = std::env::var_os(chip::runtime::ORT_SPINNING_ENV).is_some_and(|v| v == "1");
    println!(
        "EfficientNet-Lite0, {} threads available, ONNX Runtime spinning {}, median of {reps} runs",
        rayon::current_num_threads(),
        if spin { "on" } else { "off" }
    );
    println!(
        "{:<16} {:>5} {:>11} {:>13} {:>11} {:>11} {:>7} {:>9} {:>11} {:>11} {:>7} {:>9}",
        "layers", "batch", "predict ms", "augmented ms", "explain ms", "input-size", "ratio", "cpu ratio",
        "original ms", "exported ms", "export", "cpu ratio"
    );
    let original = Runner::new(std::fs::read(root().join("data/models/efficientnet_lite0.onnx")).unwrap(), &rt).unwrap();
    let configs: Vec<(&str, Vec<LayerFit>)> = vec![
        ("conv head", vec![dense_fit(&model, &head)]),
        ("stem+conv head", vec![dense_fit(&model, &stem), dense_fit(&model, &head)]),
    ];
    for (name, fits) in configs {
        let onnx = chip::engine::export::export(&model, &fits, &Default::default()).unwrap();
        let exported = Runner::new(onnx.to_bytes().unwrap(), &rt).unwrap();
        let explainer = Explainer::new(model.clone(), fits).unwrap();
        for n in [1usize, 16] {
            let batch: Vec<f32> = prepared[..n].iter().flat_map(|p| p.data.iter().copied()).collect();
            let sizes: Vec<Size> = prepared[..n].iter().map(|p| p.size).collect();
            let opts = ExplainOptions::default();
            // Plain inference; the model run alone (activations as extra outputs); the whole
            // explanation with maps at the photos' sizes; and with maps at the input size.
            let names = explainer.layer_names();
            let small = ExplainOptions { original_size: false, ..opts.clone() };
            let (w, h) = model.input_size().as_usize();
            let input = [(model.input.name.as_str(), Tensor::F32(vec![n, 3, h, w], batch.clone()))];
            let (t, cpu) = interleaved(
                reps,
                &mut [
                    &mut || {
                        std::hint::black_box(model.predict(&batch, n).unwrap());
                    },
                    &mut || {
                        std::hint::black_box(model.run_augmented(&batch, n, &names).unwrap());
                    },
                    &mut || {
                        std::hint::black_box(explainer.explain(&batch, &sizes, &opts).unwrap());
                    },
                    &mut || {
                        std::hint::black_box(explainer.explain(&batch, &sizes, &small).unwrap());
                    },
                    &mut || {
                        std::hint::black_box(original.run_tensors(&input).unwrap());
                    },
                    &mut || {
                        std::hint::black_box(exported.run_tensors(&input).unwrap());
                    },
                ],
            );
            if std::env::var_os("CHIP_BENCH_BREAKDOWN").is_some() {
                breakdown(&model, &explainer, &batch, &sizes, n, reps);
                println!(
                    "  ÷ predict: augmented run wall {:.3} cpu {:.3}; explain at input size wall {:.3} cpu {:.3}",
                    paired_ratio(&t[1], &t[0]), cpu[1] / cpu[0], paired_ratio(&t[3], &t[0]), cpu[3] / cpu[0]
                );
            }
            let m: Vec<f64> = t.iter().map(|v| median(v.clone())).collect();
            println!(
                "{:<16} {:>5} {:>11.2} {:>13.2} {:>11.2} {:>11.2} {:>7.3} {:>9.3} {:>11.2} {:>11.2} {:>7.3} {:>9.3}",
                name, n, m[0], m[1], m[2], m[3], paired_ratio(&t[2], &t[0]), cpu[2] / cpu[0],
                m[4], m[5], paired_ratio(&t[5], &t[4]), cpu[5] / cpu[4]
            );
        }
    }
}

/// The Rust steps of a map, one thread, ms per batch (median): from activations to the input size
/// (what explain did before the maps moved into the graph, and still does for models that cannot
/// take them), then what explain does now: the resize to the photo's size and the box on it.
fn breakdown(model: &Model, explainer: &Explainer, batch: &[f32], sizes: &[chip::Size], n: usize, reps: usize) {
    let names = explainer.layer_names();
    let (probs, acts) = model.run_augmented(batch, n, &names).unwrap();
    let (iw, ih) = model.input_size().as_usize();
    let mut steps = vec![Vec::new(); 4];
    for _ in 0..reps {
        let mut s = [0.0f64; 4];
        for i in 0..n {
            let row = &probs[i * model.classes..(i + 1) * model.classes];
            let c = (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            let (ow, oh) = sizes[i].as_usize();
            for (f, a) in explainer.fits().iter().zip(&acts) {
                let m = &f.meta;
                let per = m.channels * m.height * m.width;
                let t = Instant::now();
                let raw = chip::math::maps::class_map(f.row(c), &a[i * per..(i + 1) * per], m.channels, m.height, m.width);
                s[0] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let small = chip::math::maps::resize_bilinear(&raw, m.height, m.width, ih, iw);
                s[1] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                let big = chip::math::maps::resize_bilinear(&small, ih, iw, oh, ow);
                s[2] += t.elapsed().as_secs_f64();
                let t = Instant::now();
                std::hint::black_box(chip::math::localize::localize(&big, ow, oh, 0.35));
                s[3] += t.elapsed().as_secs_f64();
            }
        }
        for (v, x) in steps.iter_mut().zip(s) {
            v.push(x * 1e3);
        }
    }
    let m: Vec<f64> = steps.into_iter().map(median).collect();
    println!("  steps (batch {n}, one thread): class_map {:.2} ms, resize to input {:.2} ms, resize to photo {:.2} ms, localize on photo {:.2} ms", m[0], m[1], m[2], m[3]);
}
