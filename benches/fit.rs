//! Fit benchmark on EfficientNet-Lite0 and real photos: where the time goes, suffix throughput
//! inside the fit against the same suffix session on pre-built inputs, and the speed-up over running
//! the whole network once per gate.
//!
//! For the conv head it also runs the statistics pass both ways (closed form of the GAP→linear head
//! against ONNX Runtime suffix runs) and the solvers both ways (coordinate descent against ADMM, on
//! the same statistics), and prints the ratios side by side.
//!
//! cargo bench --bench fit -- [--images N] [--gates N] [--gate-batch N] [--image-batch N]
//!                            [--layers head,stem] [--all-classes] [--augment N] [--mosaics N]
//!                            [--admm-classes N] [--no-suffix-pass]
//! The same settings can come from CHIP_BENCH_IMAGES, CHIP_BENCH_GATES, CHIP_BENCH_GATE_BATCH,
//! CHIP_BENCH_IMAGE_BATCH, CHIP_BENCH_LAYERS.
use chip::engine::fit::{collect_stats_timed, list_images, no_progress, solve, FitOptions, Images, StatsPass};
use chip::math::admm::{solve_all_with, Solver};
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
    /// Classes ADMM solves in the solver comparison (it is the slow one).
    admm_classes: usize,
    suffix_pass: bool,
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
        admm_classes: 40,
        suffix_pass: true,
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
            "--admm-classes" => a.admm_classes = num(Some(value()), 0, "--admm-classes"),
            "--no-suffix-pass" => a.suffix_pass = false,
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
    let mut compare: Vec<String> = Vec::new();
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
        if which == "head" {
            compare.extend(head_comparison(&model, &info, &files, &params, &stats, fit_total, &args));
        }
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
    if !compare.is_empty() {
        println!();
        println!("| conv head, same run | before | after | after ÷ before (time) |");
        println!("|---|---|---|---|");
        for line in &compare {
            println!("{line}");
        }
    }
}

fn secs(d: Duration) -> f64 { d.as_secs_f64() }

/// The conv head both ways in one run: the statistics pass (suffix runs vs closed form), the
/// solver (ADMM vs coordinate descent on the same statistics), and GEMMs of the closed form's shapes.
fn head_comparison(
    model: &Model,
    info: &chip::runtime::model::LayerInfo,
    files: &[PathBuf],
    params: &FitOptions,
    stats: &chip::math::stats::Stats,
    closed_total: Duration,
    args: &Args,
) -> Vec<String> {
    let mut out = Vec::new();
    let (k, c, n) = (info.channels, model.classes, args.gates);
    // GEMMs of the closed form's shapes, per image: gated logits (N×K · K×C, f32) and the b update
    // (C×N · N×K, f64).
    let gemm_time = {
        use faer::{Accum, Mat, Par};
        let (a32, b32) = (Mat::<f32>::from_fn(n * args.image_batch, k, |i, j| ((i + j) % 7) as f32), Mat::<f32>::from_fn(k, c, |i, j| ((i * j) % 5) as f32));
        let mut c32 = Mat::<f32>::zeros(n * args.image_batch, c);
        let (a64, b64) = (Mat::<f64>::from_fn(c, n, |i, j| ((i + j) % 7) as f64), Mat::<f64>::from_fn(n, k, |i, j| ((i * j) % 3) as f64));
        let mut c64 = Mat::<f64>::zeros(c, k);
        let reps = 3;
        let t0 = Instant::now();
        for _ in 0..reps {
            faer::linalg::matmul::matmul(c32.as_mut(), Accum::Replace, a32.as_ref(), b32.as_ref(), 1.0, Par::rayon(0));
            for _ in 0..args.image_batch {
                faer::linalg::matmul::matmul(c64.as_mut(), Accum::Replace, a64.as_ref(), b64.as_ref(), 1.0, Par::rayon(0));
            }
        }
        t0.elapsed().as_secs_f64() / (reps * args.image_batch) as f64
    };
    let rows = stats.images;
    if args.suffix_pass {
        let suffix = FitOptions { pass: StatsPass::Suffix, ..params.clone() };
        let t0 = Instant::now();
        let (old, _) = collect_stats_timed(model, &info.name, &Images::Files(files.to_vec()), &suffix, &no_progress).expect("suffix statistics");
        let t_old = t0.elapsed();
        let rel = |a: &[f64], b: &[f64]| {
            let m = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            a.iter().zip(b).fold(0.0f64, |d, (x, y)| d.max((x - y).abs())) / m
        };
        out.push(format!(
            "| statistics pass, {rows} rows × {n} gates (b: max rel. difference {:.1e}) | {:.1} s (suffix runs) | {:.1} s (closed form) | {:.2} |",
            rel(&stats.b, &old.b), secs(t_old), secs(closed_total), secs(closed_total) / secs(t_old)
        ));
    }
    let (_, t) = collect_stats_timed(model, &info.name, &Images::Files(files.to_vec()), params, &no_progress).expect("statistics");
    let compute = t.suffix + t.stats + t.original;
    out.push(format!(
        "| closed form's products vs two GEMMs of the same shapes, per row | {:.1} ms (GEMMs) | {:.1} ms | {:.2} (rate {:.0}% of the GEMMs') |",
        gemm_time * 1e3, secs(compute) * 1e3 / rows as f64, secs(compute) / rows as f64 / gemm_time, 100.0 * gemm_time * rows as f64 / secs(compute)
    ));
    // The solvers on the same statistics: ADMM on a sample of the classes, coordinate descent on all.
    let all: Vec<usize> = params.classes.clone().unwrap_or_else(|| (0..c).collect());
    let sample: Vec<usize> = all.iter().copied().step_by((all.len() / args.admm_classes.max(1)).max(1)).take(args.admm_classes).collect();
    let run = |solver: Solver, classes: &[usize]| {
        let t0 = Instant::now();
        let (w, reps) = solve_all_with(stats, Some(classes), &params.admm, &params.objective, solver, &|_| true).expect("solve");
        (t0.elapsed(), w, reps)
    };
    let (t_admm, w_admm, r_admm) = run(Solver::Admm, &sample);
    let (t_cd_s, w_cd_s, r_cd_s) = run(Solver::CoordinateDescent, &sample);
    let (t_cd, _, r_cd) = run(Solver::Auto, &all);
    let per = |t: Duration, m: usize| secs(t) * 1e3 / m as f64;
    let dw = {
        let m = w_admm.iter().fold(0.0f32, |m, x| m.max(x.abs())) as f64;
        w_admm.iter().zip(&w_cd_s).fold(0.0f64, |d, (a, b)| d.max((a - b).abs() as f64)) / m
    };
    let kkt = |r: &[chip::math::admm::ClassReport]| r.iter().fold(0.0f64, |m, x| m.max(x.kkt_residual));
    let fallbacks = r_cd.iter().filter(|r| r.iterations > 100).count(); // iterations past the sweep budget: ADMM finished
    out.push(format!(
        "| solver, {} classes (max KKT residual ÷ λ; max abs(ΔW) ÷ max abs(W) {dw:.1e}) | {:.1} ms/class ADMM (KKT {:.1e}) | {:.1} ms/class CD (KKT {:.1e}) | {:.3} |",
        sample.len(), per(t_admm, sample.len()), kkt(&r_admm), per(t_cd_s, sample.len()), kkt(&r_cd_s), secs(t_cd_s) / secs(t_admm)
    ));
    out.push(format!(
        "| solver, all {} classes | {:.1} s ADMM (extrapolated from {}) | {:.1} s default (CD where G has rank < K, else ADMM; {:.1} ms/class, {fallbacks} CD classes finished by ADMM) | {:.3} |",
        all.len(), per(t_admm, sample.len()) * all.len() as f64 / 1e3, sample.len(), secs(t_cd), per(t_cd, all.len()),
        secs(t_cd) / (per(t_admm, sample.len()) * all.len() as f64 / 1e3)
    ));
    out
}
