//! Explanation cost against plain inference on EfficientNet-Lite0: `cargo bench --bench explain`.
//! Prints one table row per (layers, batch): median time of `Model::predict` and of
//! `Explainer::explain` (top-1 class, maps at the photos' own sizes, boxes) and their ratio.
use chip::explain::{ExplainOptions, Explainer};
use chip::fitfile::{FitMeta, LayerFit};
use chip::model::{LayerInfo, Model};
use chip::runtime::RuntimeOptions;
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
            solved_classes: (0..model.classes).collect(),
        },
        weights,
    }
}

fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    let rt = RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..RuntimeOptions::default() };
    let model = Arc::new(Model::load(&root().join("data/models/efficientnet_lite0.onnx"), &rt).expect("model (run scripts/setup.sh)"));
    let layers = model.layers().unwrap();
    let stem = layers.iter().find(|l| matches!(l.op_type.as_str(), "Clip" | "Relu")).unwrap_or(&layers[0]).clone();
    let head = layers.iter().rev().find(|l| l.height > 1 && l.width > 1).unwrap().clone();
    let photos = chip::fit::list_images(&root().join("data/images/aib")).unwrap();
    let prepared: Vec<_> = photos.iter().take(16).map(|p| model.preprocess.load(p).unwrap()).collect();
    let reps: usize = std::env::var("CHIP_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    println!("EfficientNet-Lite0, {} threads available, median of {reps} runs", rayon::current_num_threads());
    println!(
        "{:<16} {:>5} {:>11} {:>13} {:>11} {:>11} {:>7}",
        "layers", "batch", "predict ms", "augmented ms", "explain ms", "input-size", "ratio"
    );
    let configs: Vec<(&str, Vec<LayerFit>)> = vec![
        ("conv head", vec![dense_fit(&model, &head)]),
        ("stem+conv head", vec![dense_fit(&model, &stem), dense_fit(&model, &head)]),
    ];
    for (name, fits) in configs {
        let explainer = Explainer::new(model.clone(), fits).unwrap();
        for n in [1usize, 16] {
            let batch: Vec<f32> = prepared[..n].iter().flat_map(|p| p.data.iter().copied()).collect();
            let sizes: Vec<(u32, u32)> = prepared[..n].iter().map(|p| (p.orig_width, p.orig_height)).collect();
            let opts = ExplainOptions::default();
            let tp = median_ms(reps, || {
                std::hint::black_box(model.predict(&batch, n).unwrap());
            });
            // The model run alone (activations as extra outputs), then the whole explanation with maps
            // at the photos' sizes, then with maps at the input size.
            let names = explainer.layer_names();
            let ta = median_ms(reps, || {
                std::hint::black_box(model.run_augmented(&batch, n, &names).unwrap());
            });
            let te = median_ms(reps, || {
                std::hint::black_box(explainer.explain(&batch, &sizes, &opts).unwrap());
            });
            let small = ExplainOptions { original_size: false, ..opts.clone() };
            let ti = median_ms(reps, || {
                std::hint::black_box(explainer.explain(&batch, &sizes, &small).unwrap());
            });
            println!("{:<16} {:>5} {:>11.2} {:>13.2} {:>11.2} {:>11.2} {:>7.3}", name, n, tp, ta, te, ti, te / tp);
        }
    }
}
