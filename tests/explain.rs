//! Explanations of EfficientNet-Lite0 on real photos with a real fit: the augmented-model path
//! against the split path, batch against single images, Refined CHIP, boxes against ground truth,
//! class discrimination on a composite photo. Needs scripts/setup.sh to have run.
#[macro_use]
mod common;
use chip::engine::explain::{ClassSelect, ExplainOptions, Explainer};
use chip::engine::fit::{FitOptions, Images};
use chip::engine::fitfile::LayerFit;
use chip::math::localize::{self, BBox, EvalItem, GtEntry};
use chip::runtime::model::{LayerInfo, Model};
use chip::runtime::preprocess::Size;
use chip::runtime::RuntimeOptions;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runtime() -> RuntimeOptions {
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..RuntimeOptions::default() }
}

/// Stem: the first activated layer (after the stem conv's ReLU6). Conv head: the deepest layer that
/// still has a spatial extent (before global pooling).
fn stem_and_head(layers: &[LayerInfo]) -> (LayerInfo, LayerInfo) {
    let stem = layers
        .iter()
        .find(|l| matches!(l.op_type.as_str(), "Clip" | "Relu"))
        .unwrap_or(&layers[0])
        .clone();
    let head = layers.iter().rev().find(|l| l.height > 1 && l.width > 1).expect("a spatial layer").clone();
    (stem, head)
}

fn images_in(dir: &str) -> Vec<PathBuf> {
    chip::engine::fit::list_images(&root().join("data/images").join(dir)).expect("photos (run scripts/setup.sh)")
}

struct Fixture {
    model: Arc<Model>,
    stem: LayerFit,
    head: LayerFit,
}

const CATS: std::ops::RangeInclusive<usize> = 281..=285;
const ESPRESSO: usize = 967;

fn gt(path: &str) -> Vec<GtEntry> {
    localize::load_gt(&root().join(path)).expect("ground truth")
}

/// One conv-head fit (all photos × 128 gates) and one small stem fit per test binary, solving only
/// the classes the tests look at.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let model = Arc::new(Model::load(&root().join("data/models/efficientnet_lite0.onnx"), &runtime()).expect("model"));
        let (stem, head) = stem_and_head(&model.layers().unwrap());
        let mut photos = images_in("aib");
        for d in ["skimage", "mpl", "boxes"] {
            photos.extend(images_in(d));
        }
        let mut classes: BTreeSet<usize> = CATS.collect();
        classes.insert(ESPRESSO);
        for e in gt("data/boxes.json").into_iter().chain(gt("tests/data/aib_boxes_dev.json")) {
            classes.extend(e.class);
        }
        for chunk in photos.chunks(16) {
            let (batch, _) = prepare(&model, chunk);
            let p = model.predict(&batch, chunk.len()).unwrap();
            for probs in p.chunks(model.classes) {
                classes.insert(argmax(probs));
            }
        }
        let classes: Vec<usize> = classes.into_iter().collect();
        let t0 = std::time::Instant::now();
        let params = FitOptions { gates: 128, classes: Some(classes.clone()), ..FitOptions::default() };
        let head_fit = chip::engine::fit::fit_layer(&model, &head.name, &Images::Files(photos.clone()), &params, &chip::engine::fit::no_progress).unwrap();
        eprintln!(
            "conv-head fit '{}' {}x{}x{}: {} photos x 128 gates, {} classes, lambda_rel {}, sigma2_rel {}: {:.1}s",
            head.name, head.channels, head.height, head.width, photos.len(), classes.len(),
            params.admm.lambda_rel, params.sigma2_rel, t0.elapsed().as_secs_f64()
        );
        let t0 = std::time::Instant::now();
        let few: Vec<PathBuf> = images_in("boxes").into_iter().chain(images_in("skimage")).take(10).collect();
        let stem_params = FitOptions { gates: 32, ..params };
        let stem_fit = chip::engine::fit::fit_layer(&model, &stem.name, &Images::Files(few.clone()), &stem_params, &chip::engine::fit::no_progress).unwrap();
        eprintln!("stem fit '{}': {} photos x 32 gates: {:.1}s", stem.name, few.len(), t0.elapsed().as_secs_f64());
        Fixture { model, stem: stem_fit, head: head_fit }
    })
}

fn prepare(model: &Model, paths: &[PathBuf]) -> (Vec<f32>, Vec<Size>) {
    let mut batch = Vec::new();
    let mut sizes = Vec::new();
    for p in paths {
        let pr = model.preprocess.load(p).unwrap();
        batch.extend_from_slice(&pr.data);
        sizes.push(pr.size);
    }
    (batch, sizes)
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a))).unwrap()
}

fn best_iou(b: &BBox, gt: &GtEntry) -> f64 {
    gt.boxes.iter().map(|g| localize::iou(b, &BBox { x1: g[0], y1: g[1], x2: g[2], y2: g[3] })).fold(0.0, f64::max)
}

fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().chain(b).fold(0.0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max) / scale
}

fn test_photos() -> Vec<PathBuf> {
    let mut v = images_in("boxes");
    v.push(root().join("data/images/skimage/coffee.png"));
    v.push(root().join("data/images/skimage/chelsea.png"));
    v
}

#[test]
fn augmented_run_matches_the_split_prefix() {
    require_setup!();
    let f = fixture();
    let model = &f.model;
    let ex = Explainer::new(model.clone(), vec![f.head.clone(), f.stem.clone()]).unwrap();
    // The maps compared below come from the graph, not from activations copied out of it.
    assert!(ex.maps_in_graph());
    let photos = test_photos();
    let (batch, sizes) = prepare(model, &photos);
    let class = f.head.meta.solved_classes[0];
    let opts = ExplainOptions { classes: ClassSelect::Ids(vec![class]), refined: false, threshold: 0.25, original_size: false };
    let got = ex.explain(&batch, &sizes, &opts).unwrap();
    let (iw, ih) = model.input_size().as_usize();
    let n = photos.len();
    for fit in [&f.head, &f.stem] {
        let m = &fit.meta;
        let split = model.split(&m.layer).unwrap();
        let input = model.input.name.clone();
        let outs = split.prefix.run(&[(input.as_str(), &[n, 3, ih, iw], &batch)]).unwrap();
        let at = split.prefix.output_names().iter().position(|o| *o == split.crossing[0]).expect("layer among prefix outputs");
        let (shape, act) = &outs[at];
        assert_eq!(shape, &vec![n, m.channels, m.height, m.width]);
        let li = ex.layer_names().iter().position(|l| *l == m.layer).unwrap();
        let per = m.channels * m.height * m.width;
        let w = fit.row(class);
        for i in 0..n {
            // Reference map written out here: Σ_k w_k A_k, clipped at 0.
            let a = &act[i * per..(i + 1) * per];
            let mut raw = vec![0f32; m.height * m.width];
            for k in 0..m.channels {
                for (p, r) in raw.iter_mut().enumerate() {
                    *r += w[k] * a[k * m.height * m.width + p];
                }
            }
            raw.iter_mut().for_each(|v| *v = v.max(0.0));
            let want = chip::math::maps::resize_bilinear(&raw, m.height, m.width, ih, iw);
            let map = &got[i].classes[0].maps[li];
            assert_eq!((map.width, map.height), (iw, ih));
            let d = rel_diff(&map.data, &want);
            assert!(d <= 1e-5, "{}: layer {} map differs from the split path by {d:e} (relative)", photos[i].display(), m.layer);
        }
    }
}

#[test]
fn batch_gives_the_same_as_single_images() {
    require_setup!();
    let f = fixture();
    let ex = Explainer::new(f.model.clone(), vec![f.stem.clone(), f.head.clone()]).unwrap();
    let photos = test_photos();
    let opts = ExplainOptions { classes: ClassSelect::TopK(2), refined: true, ..ExplainOptions::default() };
    let all = ex.explain_files(&photos, &opts).unwrap();
    for (p, b) in photos.iter().zip(&all) {
        let s = ex.explain_files(std::slice::from_ref(p), &opts).unwrap().remove(0);
        assert_eq!((s.size.width, s.size.height), (b.size.width, b.size.height));
        assert_eq!(s.top.iter().map(|t| t.0).collect::<Vec<_>>(), b.top.iter().map(|t| t.0).collect::<Vec<_>>());
        assert!(rel_diff(&s.probabilities, &b.probabilities) <= 1e-5, "{}", p.display());
        for (cs, cb) in s.classes.iter().zip(&b.classes) {
            assert_eq!(cs.class, cb.class);
            for (ms, mb) in cs.maps.iter().chain(&cs.refined).zip(cb.maps.iter().chain(&cb.refined)) {
                let d = rel_diff(&ms.data, &mb.data);
                assert!(d <= 1e-5, "{}: class {} batch vs single differ by {d:e}", p.display(), cs.class);
                if d == 0.0 {
                    assert_eq!(ms.bbox, mb.bbox);
                }
            }
        }
    }
}

#[test]
fn refined_chip_is_the_product_of_stem_and_head_maps() {
    require_setup!();
    let f = fixture();
    // Given deepest first: the explainer still multiplies the shallowest and the deepest layer.
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone(), f.stem.clone()]).unwrap();
    assert_eq!(ex.refined_layers(), Some((1, 0)));
    let opts = ExplainOptions { refined: true, ..ExplainOptions::default() };
    for e in ex.explain_files(&test_photos(), &opts).unwrap() {
        let c = &e.classes[0];
        let r = c.refined.as_ref().expect("refined map");
        let (head, stem) = (&c.maps[0], &c.maps[1]);
        assert_eq!((r.width, r.height), (e.size.width as usize, e.size.height as usize));
        assert_eq!((head.width, head.height), (stem.width, stem.height));
        for ((x, a), b) in r.data.iter().zip(&stem.data).zip(&head.data) {
            assert_eq!(*x, a * b);
        }
        assert_eq!(r.bbox, localize::localize(&r.data, r.width, r.height, opts.threshold));
    }
    // One layer cannot be refined: a clear error rather than a silent absence.
    let one = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    let err = one.explain_files(&test_photos()[..1], &opts).unwrap_err().to_string();
    assert!(err.contains("Refined CHIP needs"), "{err}");
}

#[test]
fn top1_boxes_overlap_the_ground_truth_boxes() {
    require_setup!();
    let f = fixture();
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    let entries = gt("data/boxes.json");
    assert!(!entries.is_empty());
    let label = |c: usize| f.model.labels.as_ref().map(|l| l[c].clone()).unwrap_or_default();
    let mut files: Vec<&str> = entries.iter().map(|e| e.file.as_str()).collect();
    files.dedup();
    let mut bus = None;
    for file in files {
        let here: Vec<&GtEntry> = entries.iter().filter(|e| e.file == file).collect();
        let path = root().join("data/images").join(file);
        let mut ids: Vec<usize> = here.iter().filter_map(|e| e.class).collect();
        ids.sort_unstable();
        ids.dedup();
        // Top-1: its box must overlap the ground truth of that class when the photo has it, else
        // some annotated object.
        let out = ex.explain_files(std::slice::from_ref(&path), &ExplainOptions::default()).unwrap().remove(0);
        assert_eq!((out.size.width, out.size.height), (here[0].width, here[0].height), "{file}");
        let c = &out.classes[0];
        let b = c.maps[0].bbox.expect("a box for the top-1 class");
        let same: Vec<&&GtEntry> = here.iter().filter(|e| e.class == Some(c.class)).collect();
        let iou = if same.is_empty() { here.iter().map(|e| best_iou(&b, e)).fold(0.0, f64::max) } else { same.iter().map(|e| best_iou(&b, e)).fold(0.0, f64::max) };
        println!("{file:<32} top-1 {} {} (p={:.2}) box {:?} IoU {:.3}{}", c.class, label(c.class), c.probability, b, iou, if same.is_empty() { " (vs any object)" } else { "" });
        assert!(iou > 0.0, "{file}: top-1 box {:?} misses every ground-truth box", b);
        // GT-known: each annotated class's own map.
        let opts = ExplainOptions { classes: ClassSelect::Ids(ids), ..ExplainOptions::default() };
        let out = ex.explain_files(std::slice::from_ref(&path), &opts).unwrap().remove(0);
        for e in &here {
            let k = e.class.unwrap();
            let m = &out.classes.iter().find(|x| x.class == k).unwrap().maps[0];
            let iou = m.bbox.map_or(0.0, |b| best_iou(&b, e));
            println!("{file:<32}   gt {} {}: box {:?} IoU {:.3}", k, label(k), m.bbox, iou);
            if label(k).contains("bus") {
                bus = Some(bus.map_or(iou, |x: f64| x.max(iou)));
            }
        }
    }
    let bus = bus.expect("a bus photo in data/boxes.json");
    assert!(bus >= 0.5, "bus IoU {bus:.3} < 0.5");
}

#[test]
fn espresso_and_cat_maps_peak_in_their_own_halves() {
    require_setup!();
    let f = fixture();
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    let load = |n: &str| image::open(root().join("data/images/skimage").join(n)).unwrap().to_rgb8();
    let (coffee, cat) = (load("coffee.png"), load("chelsea.png"));
    // Both at the same height, side by side: coffee left, cat right.
    let h = 300;
    let scale = |img: &image::RgbImage| {
        let w = (img.width() as f64 * h as f64 / img.height() as f64).round() as u32;
        image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
    };
    let (a, b) = (scale(&coffee), scale(&cat));
    let mut pair = image::RgbImage::new(a.width() + b.width(), h);
    image::imageops::replace(&mut pair, &a, 0, 0);
    image::imageops::replace(&mut pair, &b, a.width() as i64, 0);
    // The cat class the model prefers for the cat photo alone.
    let cat_probs = ex.explain_files(&[root().join("data/images/skimage/chelsea.png")], &ExplainOptions::default()).unwrap().remove(0).probabilities;
    let cat_class = CATS.max_by(|&x, &y| cat_probs[x].total_cmp(&cat_probs[y])).unwrap();
    let pr = f.model.preprocess.from_rgb8(&pair).unwrap();
    let opts = ExplainOptions { classes: ClassSelect::Ids(vec![ESPRESSO, cat_class]), ..ExplainOptions::default() };
    let out = ex.explain(&pr.data, &[pr.size], &opts).unwrap().remove(0);
    let split = a.width();
    let peak = |i: usize| {
        let m = &out.classes[i].maps[0];
        localize::argmax(&m.data, m.width)
    };
    let (pe, pc) = (peak(0), peak(1));
    println!("composite {}x{}, split at x={split}: espresso peak {:?}, cat ({cat_class}) peak {:?}", pair.width(), h, pe, pc);
    assert!(pe.0 < split, "espresso map peaks at x={} on the cat's side", pe.0);
    assert!(pc.0 >= split, "cat map peaks at x={} on the coffee's side", pc.0);
    // The maps also carry most of their mass on their own side.
    for (i, left) in [(0, true), (1, false)] {
        let m = &out.classes[i].maps[0];
        let (mut l, mut r) = (0f64, 0f64);
        for (p, v) in m.data.iter().enumerate() {
            if (p % m.width) < split as usize { l += *v as f64 } else { r += *v as f64 }
        }
        let own = if left { l } else { r };
        assert!(own > 0.5 * (l + r), "class {} map: only {:.2} of its mass on its own side", out.classes[i].class, own / (l + r));
    }
}

#[test]
fn dev_boxes_choose_the_threshold() {
    require_setup!();
    let f = fixture();
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    // Entries without an ImageNet class cannot be explained by class.
    let entries: Vec<GtEntry> = gt("tests/data/aib_boxes_dev.json").into_iter().filter(|e| e.class.is_some()).collect();
    let mut maps = Vec::new();
    let mut top1 = Vec::new();
    for e in &entries {
        let path = root().join("data/images/aib").join(&e.file);
        let opts = ExplainOptions { classes: ClassSelect::Ids(vec![e.class.unwrap()]), ..ExplainOptions::default() };
        let out = ex.explain_files(&[path], &opts).unwrap().remove(0);
        top1.push(out.top[0].0);
        maps.push(out.classes[0].maps[0].data.clone());
    }
    let items: Vec<EvalItem> = entries.iter().zip(&maps).zip(&top1).map(|((gt, map), &top1)| EvalItem { gt, map, top1 }).collect();
    let grid: Vec<f32> = (1..=19).map(|i| i as f32 * 0.05).collect();
    let report = localize::evaluate(&items, &grid);
    let at_default = localize::evaluate(&items, &[localize::DEFAULT_THRESHOLD]);
    println!(
        "dev boxes ({} photos): best threshold {:.2}: GT-known {:.3} top-1 {:.3} mean IoU {:.3} pointing {:.3}; at the default {:.2}: GT-known {:.3} mean IoU {:.3}",
        report.images, report.best_threshold, report.gt_known_accuracy, report.top1_accuracy, report.mean_iou, report.pointing_game,
        localize::DEFAULT_THRESHOLD, at_default.gt_known_accuracy, at_default.mean_iou
    );
    // An independent baseline: a box centred on the photo covering half of each side.
    let centre: Vec<f64> = entries
        .iter()
        .map(|e| {
            let b = BBox { x1: e.width / 4, y1: e.height / 4, x2: e.width * 3 / 4, y2: e.height * 3 / 4 };
            best_iou(&b, e)
        })
        .collect();
    let centre_acc = centre.iter().filter(|&&x| x >= 0.5).count() as f64 / centre.len() as f64;
    println!("centre-box baseline: GT-known {:.3} mean IoU {:.3}", centre_acc, centre.iter().sum::<f64>() / centre.len() as f64);
    assert!(report.gt_known_accuracy > centre_acc, "CHIP boxes no better than a centred box");
    assert!(report.pointing_game >= 0.8, "pointing game {:.3}", report.pointing_game);
}

#[test]
fn bad_requests_fail_with_clear_errors() {
    require_setup!();
    let f = fixture();
    let ex = Explainer::new(f.model.clone(), vec![f.head.clone()]).unwrap();
    let photo = &test_photos()[..1];
    let err = |o: ExplainOptions| ex.explain_files(photo, &o).unwrap_err().to_string();
    let e = err(ExplainOptions { classes: ClassSelect::Ids(vec![1000]), ..ExplainOptions::default() });
    assert!(e.contains("class 1000 is out of range"), "{e}");
    let unsolved = (0..1000).find(|c| !f.head.meta.solved_classes.contains(c)).unwrap();
    let e = err(ExplainOptions { classes: ClassSelect::Ids(vec![unsolved]), ..ExplainOptions::default() });
    assert!(e.contains("not solved"), "{e}");
    let e = err(ExplainOptions { classes: ClassSelect::TopK(0), ..ExplainOptions::default() });
    assert!(e.contains("top-k"), "{e}");
    let e = err(ExplainOptions { threshold: f32::NAN, ..ExplainOptions::default() });
    assert!(e.contains("threshold"), "{e}");
    let (batch, _) = prepare(&f.model, photo);
    let e = ex.explain(&batch[1..], &[Size::new(10, 10)], &ExplainOptions::default()).unwrap_err().to_string();
    assert!(e.contains("batch holds"), "{e}");
    // A fit from another model is refused when the explainer is built.
    let mut other = f.head.clone();
    other.meta.model_fingerprint = "0".repeat(64);
    let e = Explainer::new(f.model.clone(), vec![other]).err().expect("mismatch").to_string();
    assert!(e.contains("fit mismatch"), "{e}");
    assert!(Explainer::new(f.model.clone(), vec![]).is_err());
    // An unknown layer names the candidates, shortened for a network this deep.
    let layers = f.model.layers().unwrap();
    match f.model.layer("nope") {
        Err(chip::Error::UnknownLayer { name, candidates }) => {
            assert_eq!(name, "nope");
            assert!(layers.len() > 16, "{} layers", layers.len());
            assert!(candidates.starts_with(&format!("{}, ", layers[0].name)), "{candidates}");
            assert!(candidates.ends_with(&format!("{} ({} in all)", layers[layers.len() - 1].name, layers.len())), "{candidates}");
            assert!(!candidates.contains(&format!("{},", layers[layers.len() / 2].name)), "{candidates}");
        }
        other => panic!("expected UnknownLayer, got {other:?}"),
    }
}
