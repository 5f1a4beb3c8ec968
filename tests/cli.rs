//! The `chip` binary end to end on EfficientNet-Lite0 and real photos: every subcommand, and bad
//! input giving one `chip: ...` line and status 1. Needs scripts/setup.sh to have run.
#[macro_use]
mod common;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn model() -> PathBuf {
    root().join("data/models/efficientnet_lite0.onnx")
}

fn chip(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chip"));
    cmd.current_dir(root()).args(args);
    let lib = root().join("third_party/onnxruntime/lib/libonnxruntime.so");
    if lib.exists() {
        cmd.env("CHIP_ORT_LIB", lib);
    }
    cmd.output().expect("run chip")
}

fn ok(args: &[&str]) -> String {
    let out = chip(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chip {:?} failed: {stderr}", args);
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a command that must fail: status 1 and one `chip: ` message containing `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = chip(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "chip {:?}: status {:?}, stderr {stderr}", args, out.status);
    assert!(stderr.starts_with("chip: "), "chip {:?}: {stderr}", args);
    assert!(stderr.contains(needle), "chip {:?}: expected '{needle}' in: {stderr}", args);
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("chip-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

struct Layers {
    stem: String,
    head: String,
}

fn layers() -> &'static Layers {
    static L: OnceLock<Layers> = OnceLock::new();
    L.get_or_init(|| {
        let out = ok(&["layers", "--model", s(&model()), "--json"]);
        let v: Value = serde_json::from_str(out.trim()).expect("layers JSON");
        let list = v.as_array().unwrap();
        let get = |l: &Value, k: &str| l[k].as_u64().unwrap();
        let stem = list.iter().find(|l| matches!(l["op_type"].as_str(), Some("Clip" | "Relu"))).unwrap_or(&list[0]);
        let head = list.iter().rev().find(|l| get(l, "height") > 1).unwrap();
        Layers { stem: stem["name"].as_str().unwrap().into(), head: head["name"].as_str().unwrap().into() }
    })
}

const PHOTOS: [&str; 4] = ["data/images/skimage/coffee.png", "data/images/skimage/chelsea.png", "data/images/mpl/grace_hopper.jpg", "data/images/skimage/astronaut.png"];

/// A small conv-head fit written by `chip fit` (shared by the tests of this binary).
fn head_fit() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tmp("fit");
        let list = dir.join("photos.txt");
        std::fs::write(&list, PHOTOS.iter().map(|p| s(&root().join(p)).to_string() + "\n").collect::<String>()).unwrap();
        let out = dir.join("head.chip");
        // Espresso, the cat classes, and what the model sees in the two portraits.
        ok(&["fit", "--model", s(&model()), "--layer", &layers().head, "--images", s(&list), "--out", s(&out),
             "--gates", "16", "--classes", "281-285,967,457,652,834,906"]);
        out
    })
}

#[test]
fn layers_lists_the_stem_and_the_conv_head() {
    require_setup!();
    let text = ok(&["layers", "--model", s(&model())]);
    let v: Value = serde_json::from_str(ok(&["layers", "--model", s(&model()), "--json"]).trim()).unwrap();
    let list = v.as_array().unwrap();
    assert!(list.len() > 10);
    // EfficientNet-Lite0: a stride-2 stem of 32 channels and a 1280-channel head at 1/32 resolution.
    let stem = list.iter().find(|l| l["name"] == layers().stem.as_str()).unwrap();
    assert_eq!((stem["channels"].as_u64(), stem["height"].as_u64(), stem["width"].as_u64()), (Some(32), Some(112), Some(112)));
    let head = list.iter().find(|l| l["name"] == layers().head.as_str()).unwrap();
    assert_eq!((head["channels"].as_u64(), head["height"].as_u64(), head["width"].as_u64()), (Some(1280), Some(7), Some(7)));
    for l in list {
        assert!(text.contains(l["name"].as_str().unwrap()));
    }
}

#[test]
fn fit_then_inspect() {
    require_setup!();
    let fit = head_fit();
    let bytes = std::fs::read(fit).unwrap();
    assert_eq!(&bytes[..8], b"CHIPFIT\0");
    let v: Value = serde_json::from_str(ok(&["inspect", "--fit", s(fit), "--json"]).trim()).unwrap();
    assert_eq!(v["layer"], layers().head.as_str());
    assert_eq!(v["channels"], 1280);
    assert_eq!(v["gates"], 16);
    assert_eq!(v["solved_classes"], 10);
    let per = v["per_class"].as_array().unwrap();
    assert_eq!(per.len(), 10);
    for c in per {
        let top = c["top"].as_array().unwrap();
        // Top channels are listed by decreasing weight.
        let w: Vec<f64> = top.iter().map(|t| t[1].as_f64().unwrap()).collect();
        assert!(w.windows(2).all(|p| p[0] >= p[1]), "{c}");
    }
    let labels = root().join("data/models/imagenet_classes.txt");
    let text = ok(&["inspect", "--fit", s(fit), "--class", "967", "--labels", s(&labels)]);
    assert!(text.contains("espresso"), "{text}");
    fails(&["inspect", "--fit", s(fit), "--class", "5000"], "out of range");
}

#[test]
fn explain_writes_overlays_maps_and_json() {
    require_setup!();
    let fit = head_fit();
    let out = tmp("explain");
    let photos: Vec<String> = PHOTOS[..2].iter().map(|p| s(&root().join(p)).to_string()).collect();
    let m = model();
    let mut args = vec!["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), "--json", "--save-map", "--top-k", "1"];
    args.extend(photos.iter().map(|p| p.as_str()));
    let stdout = ok(&args);
    let lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 2);
    for (v, photo) in lines.iter().zip(&photos) {
        assert_eq!(v["file"], photo.as_str());
        let (w, h) = image::image_dimensions(photo).unwrap();
        assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(w as u64), Some(h as u64)));
        let top = v["top"].as_array().unwrap();
        assert!(top.len() >= 3 && top[0]["label"].is_string());
        let p: Vec<f64> = top.iter().map(|t| t["probability"].as_f64().unwrap()).collect();
        assert!(p.windows(2).all(|x| x[0] >= x[1]));
        let c = &v["classes"][0];
        assert_eq!(c["class"], top[0]["class"]);
        let layer = &c["layers"][0];
        assert_eq!(layer["layer"], layers().head.as_str());
        let png = layer["overlay"].as_str().unwrap();
        assert_eq!(image::image_dimensions(png).unwrap(), (w, h));
        // The .npy holds an h×w float32 map whose box (at the default threshold) is the reported one.
        let npy = std::fs::read(layer["map"].as_str().unwrap()).unwrap();
        let hl = u16::from_le_bytes([npy[8], npy[9]]) as usize;
        let header = std::str::from_utf8(&npy[10..10 + hl]).unwrap();
        assert!(header.contains(&format!("'shape': ({h}, {w})")) && header.contains("'<f4'"), "{header}");
        let map: Vec<f32> = npy[10 + hl..].chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(map.len(), (w * h) as usize);
        let b = chip::math::localize::localize(&map, w as usize, h as usize, chip::math::localize::DEFAULT_THRESHOLD).expect("a box");
        assert_eq!(layer["box"], serde_json::json!([b.x1, b.y1, b.x2, b.y2]));
    }
    // Without --json: one readable line per photo.
    let out2 = tmp("explain-text");
    let text = ok(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&out2), "--class", "967", &photos[0]]);
    assert!(text.contains("967") && text.contains("espresso"), "{text}");
    // `--top` stays as a hidden alias of `--top-k`: the same classes as `--top-k 2`.
    let old = ok(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&out2), "--json", "--top", "2", &photos[0]]);
    let new = ok(&["explain", "--model", s(&model()), "--fit", s(fit), "--out", s(&out2), "--json", "--top-k", "2", &photos[0]]);
    let classes = |o: &str| serde_json::from_str::<Value>(o.lines().next().unwrap()).unwrap()["classes"].as_array().unwrap().len();
    assert_eq!((classes(&old), classes(&new)), (2, 2));
    assert_eq!(old, new);
}

#[test]
fn eval_loc_reports_accuracy_and_per_image_iou() {
    require_setup!();
    let fit = head_fit();
    let dir = tmp("eval");
    // Ground truth for the coffee photo: its own espresso map's box must overlap the cup region the
    // test writes down here (the cup and saucer fill the middle of scikit-image's coffee.png).
    let (w, h) = image::image_dimensions(root().join(PHOTOS[0])).unwrap();
    let gt = serde_json::json!([{ "file": "coffee.png", "width": w, "height": h, "class": 967, "boxes": [[w / 8, h / 8, w * 7 / 8, h * 7 / 8]] }]);
    let gt_path = dir.join("gt.json");
    std::fs::write(&gt_path, gt.to_string()).unwrap();
    let images = root().join("data/images/skimage");
    let v: Value = serde_json::from_str(ok(&["eval-loc", "--model", s(&model()), "--fit", s(fit), "--gt", s(&gt_path), "--images", s(&images), "--json"]).trim()).unwrap();
    let r = &v["reports"][layers().head.as_str()];
    assert_eq!(r["images"], 1);
    let t = r["best_threshold"].as_f64().unwrap();
    assert!((0.05..=0.951).contains(&t));
    let iou = v["images"][0]["iou"][layers().head.as_str()].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&iou) && iou > 0.0, "IoU {iou}");
    let text = ok(&["eval-loc", "--model", s(&model()), "--fit", s(fit), "--gt", s(&gt_path), "--images", s(&images)]);
    assert!(text.contains("coffee.png") && text.contains("GT-known"), "{text}");
    // A class the fit did not solve is named up front.
    let gt2 = serde_json::json!([{ "file": "coffee.png", "width": w, "height": h, "class": 1, "boxes": [[0, 0, 10, 10]] }]);
    std::fs::write(&gt_path, gt2.to_string()).unwrap();
    fails(&["eval-loc", "--model", s(&model()), "--fit", s(fit), "--gt", s(&gt_path), "--images", s(&images)], "not solved");
}

#[test]
fn bad_input_gives_one_clear_line_and_status_1() {
    require_setup!();
    let m = model();
    let out = tmp("errors");
    let photo = s(&root().join(PHOTOS[0])).to_string();
    fails(&["fit", "--model", s(&m), "--layer", "no_such_layer", "--images", s(&root().join("data/images/skimage")), "--out", s(&out.join("x.chip"))], "unknown layer 'no_such_layer'");
    assert!(!out.join("x.chip").exists());
    fails(&["layers", "--model", s(&out.join("missing.onnx"))], "missing.onnx");
    fails(&["explain", "--model", s(&m), "--fit", s(&out.join("missing.chip")), "--out", s(&out), &photo], "missing.chip");
    let fit = head_fit();
    fails(&["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), s(&out.join("nope.jpg"))], "nope.jpg");
    fails(&["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), "--class", "1000", &photo], "class 1000 is out of range");
    fails(&["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), "--refined", &photo], "Refined CHIP needs");
    // A fit of another model: same layer, other fingerprint.
    let mut other = chip::engine::fitfile::LayerFit::load(fit).unwrap();
    other.meta.model_fingerprint = "f".repeat(64);
    let other_path = out.join("other.chip");
    other.save(&other_path).unwrap();
    fails(&["explain", "--model", s(&m), "--fit", s(&other_path), "--out", s(&out), &photo], "fit mismatch");
    // A truncated fit file.
    let bytes = std::fs::read(fit).unwrap();
    let cut = out.join("cut.chip");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails(&["inspect", "--fit", s(&cut)], "cut.chip");
    // Not an image.
    let txt = out.join("notes.jpg");
    std::fs::write(&txt, "not a photo").unwrap();
    fails(&["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), s(&txt)], "notes.jpg");
    // A corrupt model.
    let bad = out.join("bad.onnx");
    std::fs::write(&bad, b"\x08\x07garbage").unwrap();
    fails(&["layers", "--model", s(&bad)], "");
}

/// `--out` that cannot be written fails before the first image is read: the images folder holds a
/// corrupt photo, so a check made after the fit would report that photo instead.
#[test]
fn fit_checks_out_before_reading_images() {
    require_setup!();
    let dir = tmp("fit-out");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("broken.jpg"), b"\xff\xd8 not really a photo").unwrap();
    let m = model();
    let fit = |out: &Path| -> Vec<String> {
        ["fit", "--model", s(&m), "--layer", &layers().head, "--images", s(&images), "--out", s(out), "--gates", "4"]
            .iter().map(|a| a.to_string()).collect()
    };
    let run = |out: &Path, needle: &str| {
        let args = fit(out);
        fails(&args.iter().map(|a| a.as_str()).collect::<Vec<_>>(), needle);
    };
    run(&dir.join("missing/z.chip"), "missing/z.chip: cannot create the output file");
    std::fs::create_dir_all(dir.join("folder")).unwrap();
    run(&dir.join("folder"), "is a folder");
    run(Path::new("/proc/z.chip"), "/proc/z.chip: cannot create the output file");
    // The check leaves nothing behind, and a writable --out gets to the images.
    run(&dir.join("z.chip"), "broken.jpg");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

/// --lambda-rel ≥ 1 and a degenerate --sigma2-rel are refused up front, naming the option.
#[test]
fn fit_refuses_useless_lambda_and_sigma2() {
    require_setup!();
    let dir = tmp("fit-params");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("broken.jpg"), b"not a photo").unwrap();
    let m = model();
    let out = dir.join("z.chip");
    for (opt, value, needle) in [
        ("--lambda-rel", "1", "--lambda-rel 1.0 must be ≥ 0 and < 1"),
        ("--lambda-rel", "2", "--lambda-rel 2.0 must be"),
        ("--lambda-rel", "1e308", "--lambda-rel 1e308 must be"),
        ("--lambda-rel", "-1", "--lambda-rel -1.0 must be"),
        ("--sigma2-rel", "1e-30", "--sigma2-rel 1e-30 is too small"),
    ] {
        let arg = format!("{opt}={value}");
        fails(&["fit", "--model", s(&m), "--layer", &layers().stem, "--images", s(&images), "--out", s(&out), &arg], needle);
    }
    assert!(!out.exists());
}

/// A fit in which solved classes come out all zero says so: the summary line counts them, a
/// warning lists them, and `inspect --json` reports the same count.
#[test]
fn fit_warns_about_all_zero_classes() {
    require_setup!();
    let dir = tmp("fit-zero");
    let list = dir.join("photos.txt");
    std::fs::write(&list, s(&root().join(PHOTOS[0])).to_string() + "\n").unwrap();
    let out = dir.join("stem.chip");
    let m = model();
    let run = chip(&["fit", "--model", s(&m), "--layer", &layers().stem, "--images", s(&list), "--out", s(&out), "--gates", "8", "--mosaics", "0"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    let v: Value = serde_json::from_str(ok(&["inspect", "--fit", s(&out), "--json"]).trim()).unwrap();
    let zero = v["zero_classes"].as_u64().unwrap();
    let fit = chip::engine::fitfile::LayerFit::load(&out).unwrap();
    let recount = (0..1000).filter(|&c| fit.row(c).iter().all(|&w| w == 0.0)).count() as u64;
    assert_eq!(zero, recount);
    // One photo: the classes it gives (almost) no probability are never loyal, so their rows are zero.
    assert!(zero > 0, "no all-zero class: {stderr}");
    assert!(stderr.contains(&format!("({zero} all zero)")), "{stderr}");
    assert!(stderr.contains(&format!("chip: warning: {zero} of 1000 solved classes have all-zero weights")), "{stderr}");
}

/// Usage errors exit 1 like every other error (the README's promise); --help exits 0; a negative
/// class index is named as such; an absurd thread count is refused.
#[test]
fn usage_errors_exit_1_and_minor_messages() {
    require_setup!();
    for args in [&["fit", "--no-such-option"][..], &["layers"], &["no-such-command"], &["layers", "--model", "x.onnx", "--device", "tpu"]] {
        let out = chip(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "chip {args:?}: {stderr}");
        assert!(stderr.contains("error") && !stderr.contains("panicked"), "{stderr}");
    }
    let help = chip(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
    let fit = head_fit();
    let m = model();
    let out = tmp("minor");
    let photo = s(&root().join(PHOTOS[0])).to_string();
    for arg in ["--class=-1", "--class=3,-1"] {
        let o = chip(&["explain", "--model", s(&m), "--fit", s(fit), "--out", s(&out), arg, &photo]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("'-1' is not a class index (a number ≥ 0)"), "{stderr}");
    }
    fails(&["layers", "--model", s(&m), "--threads", "1099511627776"], "1099511627776 intra-op threads is too many");
}

/// `chip mosaic` then `chip eval` with the baselines on two ground-truth photos and two mosaics:
/// the table's figures against values computed here by hand for the maps whose scores are known.
#[test]
fn eval_scores_the_baselines_against_hand_computed_values() {
    require_setup!();
    let dir = std::env::temp_dir().join(format!("chip-eval-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let list = dir.join("photos.txt");
    let photos: Vec<String> = (0..8).map(|i| root().join(format!("data/images/aib/{i}.jpg")).display().to_string()).collect();
    std::fs::write(&list, photos.join("\n")).unwrap();
    let mosaics = dir.join("mosaics");
    ok(&["mosaic", "--model", model().to_str().unwrap(), "--images", list.to_str().unwrap(), "--count", "2", "--seed", "3", "--out", mosaics.to_str().unwrap()]);
    let listed: Value = serde_json::from_slice(&std::fs::read(mosaics.join("mosaics.json")).unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    for m in listed.as_array().unwrap() {
        let mut c: Vec<u64> = m["classes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), 4, "a mosaic's four tiles have four different top-1 classes: {m}");
        assert!(mosaics.join(m["file"].as_str().unwrap()).is_file());
    }
    // Two ground-truth entries: photo 1 (one box) and photo 0 (one box).
    let all: Vec<Value> = serde_json::from_slice(&std::fs::read(root().join("tests/data/aib_boxes_dev.json")).unwrap()).unwrap();
    let gt: Vec<Value> = all.into_iter().filter(|e| e["file"] == "0.jpg" || e["file"] == "1.jpg").collect();
    let gt_path = dir.join("gt.json");
    std::fs::write(&gt_path, serde_json::to_vec(&gt).unwrap()).unwrap();
    let out = ok(&[
        "eval", "--model", model().to_str().unwrap(), "--baselines", "--gt", gt_path.to_str().unwrap(),
        "--images", root().join("data/images/aib").to_str().unwrap(), "--mosaics", mosaics.join("mosaics.json").to_str().unwrap(),
        "--steps", "4", "--resamples", "200", "--json",
    ]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["reference"], "CAM");
    assert_eq!(v["units"]["gt_entries"], 2);
    assert_eq!(v["units"]["mosaic_tiles"], 8);
    let method = |name: &str| v["methods"].as_array().unwrap().iter().find(|m| m["method"] == name).unwrap().clone();
    let metric = |name: &str, k: &str| method(name)["metrics"][k]["value"]["mean"].as_f64().unwrap();
    // The constant map: energy in the box is the box's share of the photo; every tile holds a quarter.
    let share = |e: &Value| {
        let b = &e["boxes"][0];
        let area = (b[2].as_f64().unwrap() - b[0].as_f64().unwrap() + 1.0) * (b[3].as_f64().unwrap() - b[1].as_f64().unwrap() + 1.0);
        area / (e["width"].as_f64().unwrap() * e["height"].as_f64().unwrap())
    };
    let expected = (share(&gt[0]) + share(&gt[1])) / 2.0;
    assert!((metric("constant", "energy_in_box") - expected).abs() < 1e-9, "{} vs {expected}", metric("constant", "energy_in_box"));
    assert!((metric("constant", "grid_share") - 0.25).abs() < 1e-9);
    // The centre prior is symmetric about the middle of the (even-sized) input: a quarter per tile too.
    assert!((metric("centre prior", "grid_share") - 0.25).abs() < 1e-6);
    // CAM is the reference: its paired differences are absent, the others' present with intervals.
    assert!(method("CAM")["metrics"]["grid_share"]["vs_reference"].is_null());
    let d = &method("constant")["metrics"]["energy_in_box"]["vs_reference"];
    assert!(d["low"].as_f64().unwrap() <= d["mean"].as_f64().unwrap() && d["mean"].as_f64().unwrap() <= d["high"].as_f64().unwrap());
    // Deletion and insertion areas are probabilities' areas.
    for name in ["CAM", "centre prior", "constant"] {
        for k in ["deletion_auc", "insertion_auc"] {
            let x = metric(name, k);
            assert!((0.0..=1.0).contains(&x), "{name} {k} {x}");
        }
    }
    // The table form prints every method and the paired block.
    let table = ok(&[
        "eval", "--model", model().to_str().unwrap(), "--baselines", "--gt", gt_path.to_str().unwrap(),
        "--images", root().join("data/images/aib").to_str().unwrap(), "--steps", "2", "--resamples", "50",
    ]);
    assert!(table.contains("centre prior") && table.contains("paired difference to CAM"), "{table}");
    fails(&["eval", "--model", model().to_str().unwrap(), "--gt", gt_path.to_str().unwrap(), "--images", "data/images/aib"], "nothing to evaluate");
    fails(&["eval", "--model", model().to_str().unwrap(), "--method", "x", "--gt", gt_path.to_str().unwrap(), "--images", "data/images/aib"], "is not NAME=FIT");
    fails(&["eval", "--model", model().to_str().unwrap(), "--baselines", "--reference", "nope", "--gt", gt_path.to_str().unwrap(), "--images", "data/images/aib"], "--reference 'nope'");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merged_shards_equal_one_fit() {
    require_setup!();
    let dir = tmp("shards");
    let list = |name: &str, photos: &[&str]| {
        let p = dir.join(name);
        std::fs::write(&p, photos.iter().map(|f| s(&root().join(f)).to_string() + "\n").collect::<String>()).unwrap();
        p
    };
    let (all, a, b) = (list("all.txt", &PHOTOS), list("a.txt", &PHOTOS[..2]), list("b.txt", &PHOTOS[2..]));
    let m = model();
    let head = layers().head.as_str();
    // Mosaics are tiled within a shard, so shards equal one fit without them.
    let common = ["--model", s(&m), "--layer", head, "--gates", "16", "--mosaics", "0", "--classes", "281-285,967"];
    let single = dir.join("single.chip");
    ok(&[&["fit", "--images", s(&all), "--out", s(&single)], &common[..]].concat());
    let (sa, sb) = (dir.join("a.stats"), dir.join("b.stats"));
    ok(&[&["fit", "--stats-only", "--images", s(&a), "--out", s(&sa)], &common[..]].concat());
    ok(&[&["fit", "--stats-only", "--images", s(&b), "--out", s(&sb)], &common[..]].concat());
    assert_eq!(&std::fs::read(&sa).unwrap()[..8], b"CHIPSTAT");
    let merged = dir.join("merged.chip");
    ok(&["merge", s(&sa), s(&sb), "--model", s(&m), "--out", s(&merged), "--classes", "281-285,967"]);
    // The same W and the same metadata: the same file, byte for byte.
    assert!(std::fs::read(&single).unwrap() == std::fs::read(&merged).unwrap(), "the merged fit differs from the single fit");

    // Shards that do not belong together are refused, naming what differs and the files.
    let seed = dir.join("seed.stats");
    ok(&[&["fit", "--stats-only", "--images", s(&b), "--out", s(&seed), "--seed", "3"], &common[..]].concat());
    fails(&["merge", s(&sa), s(&seed), "--model", s(&m), "--out", s(&dir.join("x.chip"))], "seed 3");
    let stem = dir.join("stem.stats");
    ok(&["fit", "--stats-only", "--images", s(&b), "--out", s(&stem), "--model", s(&m), "--layer", &layers().stem,
         "--gates", "16", "--mosaics", "0"]);
    fails(&["merge", s(&sa), s(&stem), "--model", s(&m), "--out", s(&dir.join("x.chip"))], "stem.stats");
    fails(&["merge", s(&sa), s(&stem), "--model", s(&m), "--out", s(&dir.join("x.chip"))], "layer");
    fails(&["merge", s(&sa), "--model", s(&m), "--out", s(&dir.join("x.chip")), "--target", "logit"], "target");
    assert!(!dir.join("x.chip").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
