//! Fit benchmark on EfficientNet-Lite0 and real photos: where the time goes, suffix throughput
//! inside the fit against the same suffix session on pre-built inputs, and the speed-up over running
//! the whole network once per gate.
//!
//! cargo bench --bench fit -- [--images N] [--gates N] [--gate-batch N] [--image-batch N]
//!                            [--layers head,stem] [--all-classes] [--augment N] [--mosaics N]
//! The same settings can come from CHIP_BENCH_IMAGES, CHIP_BENCH_GATES, CHIP_BENCH_GATE_BATCH,
//! CHIP_BENCH_IMAGE_BATCH, CHIP_BENCH_LAYERS.
use chip::engine::fit::{collect_stats_timed, list_images, no_progress, solve, FitOptions, Images};
use chip::math::gates::GateSet;
use chip::runtime::model::Model;
use chip::runtime::RuntimeOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Args {
    images: usize,
    gates: usize,
    gate_batch: usize,
    image_batch: usize,
    layers: Vec<String>,
    all_classes: bool,
    augment: usize,
    mosaics: usize,
}

fn parse_args() -> Args {
    let env = |k: &str| std::env::var(k).ok();
    let num = |v: Option<String>, d: usize, what: &str| -> usize {
        v.map(|s| s.parse().unwrap_or_else(|_| panic!("{what}: not a number: {s}"))).unwrap_or(d)
    };
    let mut a = Args {
        images: num(env("CHIP_BENCH_IMAGES"), 100, "CHIP_BENCH_IMAGES"),
        gates: num(env("CHIP_BENCH_GATES"), 256, "CHIP_BENCH_GATES"),
        gate_batch: num(env("CHIP_BENCH_GATE_BATCH"), 64, "CHIP_BENCH_GATE_BATCH"),
        image_batch: num(env("CHIP_BENCH_IMAGE_BATCH"), 8, "CHIP_BENCH_IMAGE_BATCH"),
        layers: env("CHIP_BENCH_LAYERS").unwrap_or_else(|| "head,stem".into()).split(',').map(String::from).collect(),
        all_classes: false,
        augment: 0,
        mosaics: FitOptions::default().mosaics,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--images" => a.images = num(Some(value()), 0, "--images"),
            "--gates" => a.gates = num(Some(value()), 0, "--gates"),
            "--gate-batch" => a.gate_batch = num(Some(value()), 0, "--gate-batch"),
            "--image-batch" => a.image_batch = num(Some(value()), 0, "--image-batch"),
            "--layers" => a.layers = value().split(',').map(String::from).collect(),
            "--all-classes" => a.all_classes = true,
            "--augment" => a.augment = num(Some(value()), 0, "--augment"),
            "--mosaics" => a.mosaics = num(Some(value()), 0, "--mosaics"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn vm_hwm_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Runs `f` (which processes `rows` rows) until at least `min` has passed; rows per second.
fn throughput(rows: usize, min: Duration, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: first-run allocations of the session
    let t0 = Instant::now();
    let mut n = 0;
    while n < 3 || t0.elapsed() < min {
        f();
        n += 1;
    }
    (n * rows) as f64 / t0.elapsed().as_secs_f64()
}

struct Row {
    layer: String,
    shape: String,
    work: String,
    t: chip::engine::fit::FitTimings,
    solve: Duration,
    classes: usize,
    fit_rows: f64,
    plain_rows: f64,
    full_rows: f64,
    speedup: f64,
    hwm: f64,
}

fn main() {
    let args = parse_args();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = root.join("third_party/onnxruntime/lib/libonnxruntime.so");
    let options = RuntimeOptions { ort_lib: lib.exists().then_some(lib), ..Default::default() };
    let model = Model::load(&root.join("data/models/efficientnet_lite0.onnx"), &options).expect("load EfficientNet-Lite0 (run scripts/setup.sh)");
    let files: Vec<PathBuf> = list_images(&root.join("data/images/aib")).expect("photos").into_iter().take(args.images).collect();
    let layers = model.layers().expect("layers");
    let (iw, ih) = model.input_size().as_usize();
    let image_len = model.input.channels * ih * iw;

    // Classes to solve: top-1 of some photo (all with --all-classes).
    let mut top = Vec::new();
    for chunk in files.chunks(16) {
        let mut batch = Vec::new();
        for f in chunk {
            batch.extend(model.preprocess.load(f).expect("photo").data);
        }
        for row in model.predict(&batch, chunk.len()).expect("predict").chunks(model.classes) {
            top.push((0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap());
        }
    }
    top.sort_unstable();
    top.dedup();
    let first = model.preprocess.load(&files[0]).expect("photo").data;
    println!(
        "EfficientNet-Lite0, {} photos (+{} views each, +{} mosaics per photo) × {} gates, gate batch {}, image batch {}, {} ({} logical CPUs)",
        files.len(), args.augment, args.mosaics, args.gates, args.gate_batch, args.image_batch,
        if args.all_classes { format!("all {} classes", model.classes) } else { format!("{} top-1 classes", top.len()) },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let mut rows = Vec::new();
    for which in &args.layers {
        let info = match which.as_str() {
            "head" => layers.last().unwrap().clone(),
            // The stem's activation: the first candidate is the Pad in front of the stem conv.
            "stem" => layers.iter().find(|l| l.op_type == "Clip").expect("a Clip layer").clone(),
            name => model.layer(name).expect("layer"),
        };
        let params = FitOptions {
            gates: args.gates,
            gate_batch: args.gate_batch,
            image_batch: args.image_batch,
            classes: if args.all_classes { None } else { Some(top.clone()) },
            augment: args.augment,
            mosaics: args.mosaics,
            ..Default::default()
        };
        let t0 = Instant::now();
        let (stats, t) = collect_stats_timed(&model, &info.name, &Images::Files(files.clone()), &params, &no_progress).expect("statistics");
        let fit_total = t0.elapsed();
        let t1 = Instant::now();
        let fit = solve(&model, &info.name, &stats, &params, &no_progress).expect("solve");
        let solve_time = t1.elapsed();

        // The same suffix session on pre-built inputs: one photo's crossing tensors, gated by the
        // first gate batch, built once.
        let split = model.split(&info.name).expect("split");
        let pre = split.prefix.run(&[(model.input.name.as_str(), &[1, model.input.channels, ih, iw], &first)]).expect("prefix");
        let gates = GateSet::generate(info.channels, args.gates, params.sigma2_rel, params.seed);
        let b = args.gate_batch.min(args.gates);
        let hw = info.height * info.width;
        let mut built: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
        for name in split.suffix.input_names() {
            let i = split.prefix.output_names().iter().position(|p| p == name).expect("crossing");
            let (shape, values) = &pre[i];
            let mut s = shape.clone();
            s[0] = b;
            let mut v: Vec<f32> = values.iter().copied().cycle().take(b * values.len()).collect();
            if name == &split.crossing[0] {
                for r in 0..b {
                    for (c, &open) in gates.gate(r).iter().enumerate() {
                        if open == 0 {
                            v[(r * info.channels + c) * hw..(r * info.channels + c + 1) * hw].fill(0.0);
                        }
                    }
                }
            }
            built.push((name.clone(), s, v));
        }
        let inputs: Vec<(&str, &[usize], &[f32])> = built.iter().map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice())).collect();
        let plain_rows = throughput(b, Duration::from_secs(3), || {
            split.suffix.run(&inputs).expect("suffix");
        });
        // The whole network once per gate row, at the same batch.
        let full: Vec<f32> = first.iter().copied().cycle().take(b * image_len).collect();
        let full_rows = throughput(b, Duration::from_secs(3), || {
            model.predict(&full, b).expect("predict");
        });
        let naive = (t.images * args.gates) as f64 / full_rows;
        rows.push(Row {
            layer: format!("{} ({})", which, info.name),
            shape: format!("{}×{}×{}", info.channels, info.height, info.width),
            work: format!("{}×{}", t.images, args.gates),
            fit_rows: t.gate_rows as f64 / t.suffix.as_secs_f64(),
            plain_rows,
            full_rows,
            speedup: naive / fit_total.as_secs_f64(),
            t,
            solve: solve_time,
            classes: fit.meta.solved_classes.len(),
            hwm: vm_hwm_mib(),
        });
        let r = rows.last().unwrap();
        eprintln!("{}: statistics {:.1}s, solve {:.1}s", r.layer, fit_total.as_secs_f64(), solve_time.as_secs_f64());
    }

    println!();
    println!("| layer | K×H×W | rows×gates | load s | prefix s | f_s s | build s | suffix s | stats s | solve s (classes) | statistics total s | whole fit s |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let t = &r.t;
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.2} ({}) | {:.2} | {:.1} |",
            r.layer, r.shape, r.work, t.load.as_secs_f64(), t.prefix.as_secs_f64(), t.original.as_secs_f64(),
            t.build.as_secs_f64(), t.suffix.as_secs_f64(), t.stats.as_secs_f64(), r.solve.as_secs_f64(), r.classes,
            t.total().as_secs_f64(), (t.total() + r.solve).as_secs_f64()
        );
    }
    println!();
    println!("| layer | suffix rows/s in fit | plain suffix rows/s | ratio (goal ≥ 0.9) | whole net rows/s | speed-up over whole net per gate | rows/s incl. build | peak RSS MiB (VmHWM) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let with_build = r.t.gate_rows as f64 / (r.t.suffix + r.t.build).as_secs_f64();
        println!(
            "| {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.1}× | {:.0} | {:.0} |",
            r.layer, r.fit_rows, r.plain_rows, r.fit_rows / r.plain_rows, r.full_rows, r.speedup, with_build, r.hwm
        );
    }
}
