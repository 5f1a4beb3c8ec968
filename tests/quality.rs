//! Objectives and the quality harness on the real model: with the logit target, an intercept and
//! λ → 0 the fit of a GAP → linear head recovers the classifier's own weights (CHIP = CAM); the paper's
//! objective stays selectable; augmented fits are reproducible; CAM is found by graph inspection.
#[macro_use]
mod common;
use chip::engine::fit::{self, FitOptions, Images};
use chip::runtime::model::Model;
use chip::math::objective::{Objective, Target};
use chip::runtime::RuntimeOptions;
use std::path::{Path, PathBuf};

fn root() -> &'static Path { Path::new(env!("CARGO_MANIFEST_DIR")) }

fn model() -> Model {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    let rt = RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..Default::default() };
    Model::load(&root().join("data/models/efficientnet_lite0.onnx"), &rt).expect("the demo model (scripts/setup.sh)")
}

fn photos(n: usize) -> Vec<PathBuf> { (0..n).map(|i| root().join(format!("data/images/aib/{i}.jpg"))).collect() }

fn top1(model: &Model, paths: &[PathBuf]) -> Vec<usize> {
    paths
        .iter()
        .map(|p| {
            let probs = model.predict(&model.preprocess.load(p).unwrap().data, 1).unwrap();
            (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap()
        })
        .collect()
}

#[test]
fn logit_target_with_intercept_recovers_the_classifier() {
    require_setup!();
    let model = model();
    let head = model.default_layers().unwrap().1;
    let cam = chip::engine::cam::cam_fit(&model, &head.name).unwrap();
    let linear = model.onnx.linear_head(&head.name, &model.output).unwrap();
    assert_eq!((linear.classes, linear.channels), (1000, 1280));
    let paths = photos(12);
    let objective = Objective { target: Target::Logit, intercept: true, nonneg: false };
    let mut params = FitOptions { gates: 256, objective, ..Default::default() };
    params.admm.lambda_rel = 0.0;
    params.admm.rel_tol = 1e-10;
    let stats = fit::collect_stats(&model, &head.name, &Images::Files(paths.clone()), &params, &fit::no_progress).unwrap();
    // Loyalty weights every photo by f^c: a class is identifiable when enough photos give it weight
    // (each photo spans at most 256 gate directions of the 1280). Take the 8 classes whose smallest
    // loyalty over the 12 photos is largest.
    let loyalty_floor = |c: usize| (0..stats.images).map(|s| stats.f[s * stats.classes + c]).fold(f64::INFINITY, f64::min);
    let mut classes: Vec<usize> = (0..stats.classes).collect();
    classes.sort_by(|&a, &b| loyalty_floor(b).total_cmp(&loyalty_floor(a)));
    classes.truncate(8);
    assert!(loyalty_floor(classes[7]) > 1e-5);
    let (w, reports) = chip::math::admm::solve_all(&stats, Some(&classes), &params.admm, &objective, &|_| true).unwrap();
    // A channel that no photo activates cannot be identified from these photos (nor does it change
    // their maps); every channel with a pooled activation of at least 0.05 (ReLU6 units) must be.
    let k = stats.channels;
    let active: Vec<usize> = (0..k).filter(|&j| (0..stats.images).any(|s| stats.z[s * k + j] >= 0.05)).collect();
    assert!(active.len() > 900, "only {} active channels", active.len());
    for (&c, rep) in classes.iter().zip(&reports) {
        let scale = active.iter().map(|&j| cam.row(c)[j].abs()).fold(0f32, f32::max);
        let worst = active.iter().map(|&j| (w[c * k + j] - cam.row(c)[j]).abs()).fold(0f32, f32::max);
        assert!(worst <= 1e-4 * scale.max(1.0), "class {c}: |W − W_cam| = {worst} (scale {scale})");
        assert!((rep.intercept - linear.bias[c] as f64).abs() < 1e-3, "class {c}: intercept {} vs bias {}", rep.intercept, linear.bias[c]);
    }
}

#[test]
fn paper_objective_is_the_probability_model_without_intercept() {
    require_setup!();
    let model = model();
    let head = model.default_layers().unwrap().1;
    let paths = photos(4);
    let classes = top1(&model, &paths);
    let params = FitOptions { gates: 64, objective: Objective::preset("paper").unwrap(), classes: Some(classes.clone()), ..Default::default() };
    let fit = fit::fit_layer(&model, &head.name, &Images::Files(paths.clone()), &params, &fit::no_progress).unwrap();
    assert_eq!(fit.meta.objective, Objective::PAPER);
    let paper = FitOptions::paper();
    assert_eq!((paper.objective, paper.mosaics, paper.augment, paper.admm.lambda_rel), (Objective::PAPER, 0, 0, 0.05));
    // The saved file keeps the objective.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("quality-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    fit.save(&dir.join("p.chip")).unwrap();
    assert_eq!(chip::engine::fitfile::LayerFit::load(&dir.join("p.chip")).unwrap().meta.objective, Objective::PAPER);
    // Statistics gathered for one target refuse to be solved for another.
    let stats = fit::collect_stats(&model, &head.name, &Images::Files(paths), &params, &fit::no_progress).unwrap();
    assert_eq!(stats.target, Target::Probability);
    let other = FitOptions { objective: Objective::DEFAULT, ..params };
    let err = fit::solve(&model, &head.name, &stats, &other, &fit::no_progress).unwrap_err().to_string();
    assert!(err.contains("for the probability target") && err.contains("asks for log-probability"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn augmented_fit_is_reproducible_and_differs_from_the_plain_fit() {
    require_setup!();
    let model = model();
    let head = model.default_layers().unwrap().1;
    let paths = photos(3);
    let classes = top1(&model, &paths);
    let params = FitOptions { gates: 32, augment: 2, seed: 5, classes: Some(classes), ..Default::default() };
    let run = |p: &FitOptions| fit::fit_layer(&model, &head.name, &Images::Files(paths.clone()), p, &fit::no_progress).unwrap();
    let a = run(&params);
    let b = run(&params);
    assert_eq!(a.weights, b.weights);
    // 3 photos with 2 views each, and the default 2 mosaics per photo.
    assert_eq!((a.meta.images, a.meta.augment, a.meta.mosaics), (3 * 3 + 6, 2, 2));
    // Another batching gives the same views (they depend on the photo and the seed only).
    let c = run(&FitOptions { image_batch: 1, ..params.clone() });
    assert_eq!(a.weights, c.weights);
    let plain = run(&FitOptions { augment: 0, ..params.clone() });
    assert_ne!(a.weights, plain.weights);
    let other_seed = run(&FitOptions { seed: 6, ..params });
    assert_ne!(a.weights, other_seed.weights);
}

#[test]
fn cam_needs_a_pooled_linear_head() {
    require_setup!();
    let model = model();
    let stem = model.default_layers().unwrap().0;
    let err = chip::engine::cam::cam_fit(&model, &stem.name).unwrap_err().to_string();
    assert!(err.contains("CAM needs layer") && err.contains(&stem.name), "{err}");
    let err = chip::engine::cam::cam_fit(&model, "no/such/layer").unwrap_err().to_string();
    assert!(err.contains("no/such/layer"), "{err}");
}
