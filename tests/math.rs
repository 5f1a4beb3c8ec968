//! Cross-module checks of the pure math: statistics files, planted-weight recovery through
//! statistics + ADMM, and a timing table for the real problem size (ignored by default).
use chip::math::admm::{self, AdmmParams};
use chip::math::gates::GateSet;
use chip::util::rng::Rng;
use chip::math::objective::{Objective, Target};
use chip::math::stats::Stats;
use chip::Error;
use std::path::PathBuf;

fn unif(r: &mut Rng) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chip-math-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Synthetic CHIP data: non-negative pooled activations, a planted sparse non-negative W, and gated
/// probabilities g = σ(w_c·(d ⊙ z) + bias) so that b and G come from the real definitions. With
/// `linear`, g = w_c·(d ⊙ z)/scale exactly, so the least-squares fit has the planted W as its answer.
struct Synthetic {
    gates: GateSet,
    w_true: Vec<Vec<f64>>,
    images: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>,
}

fn synthetic(k: usize, c: usize, n: usize, images: usize, seed: u64, linear: bool) -> Synthetic {
    let gates = GateSet::generate(k, n, 0.5, seed);
    let mut r = Rng::new(seed ^ 0x5EED);
    let base: Vec<f64> = (0..k).map(|_| -(unif(&mut r).max(1e-12)).ln()).collect();
    let w_true: Vec<Vec<f64>> = (0..c)
        .map(|_| {
            // Four planted channels per class, all clearly active (mostly-zero channels are not identifiable).
            let mut w = vec![0.0; k];
            let active: Vec<usize> = (0..k).filter(|&j| base[j] > 0.8).collect();
            for _ in 0..4 {
                w[active[r.below(active.len() as u64) as usize]] = 1.0 + 3.0 * unif(&mut r);
            }
            w
        })
        .collect();
    let link = |x: f64| if linear { x } else { 1.0 / (1.0 + (-(6.0 * x - 2.0)).exp()) };
    // Scores are divided by a per-class scale so that the full-gate score is about 1.
    let scale: Vec<f64> = w_true.iter().map(|w| w.iter().zip(&base).map(|(a, b)| a * b).sum::<f64>().max(1e-9)).collect();
    let imgs = (0..images)
        .map(|_| {
            let z: Vec<f64> = base.iter().map(|&bk| (bk * (0.3 + 1.4 * unif(&mut r)) - 0.3).max(0.0)).collect();
            let full: Vec<f64> = w_true.iter().map(|w| w.iter().zip(&z).map(|(a, b)| a * b).sum()).collect();
            let f: Vec<f32> = (0..c).map(|ci| link(full[ci] / scale[ci]).clamp(1e-4, 1.0) as f32).collect();
            let mut g = vec![0f32; n * c];
            for gn in 0..n {
                let d = gates.gate(gn);
                for ci in 0..c {
                    let s: f64 = (0..k).filter(|&j| d[j] == 1).map(|j| w_true[ci][j] * z[j]).sum();
                    g[gn * c + ci] = link(s / scale[ci]) as f32;
                }
            }
            (z.iter().map(|&v| v as f32).collect(), f, g)
        })
        .collect();
    Synthetic { gates, w_true, images: imgs }
}

fn collect(s: &Synthetic, classes: usize) -> Stats {
    let mut st = Stats::new(&s.gates, classes, Target::Probability);
    for (z, f, g) in &s.images {
        st.add_image(&s.gates, z, f, g).unwrap();
    }
    st
}

#[test]
fn stats_file_round_trip_and_corruption_errors() {
    let s = synthetic(24, 3, 20, 5, 1, false);
    let st = collect(&s, 3);
    let path = temp_path("stats.bin");
    st.save(&path).unwrap();
    let back = Stats::load(&path).unwrap();
    assert_eq!(back, st);
    let bytes = std::fs::read(&path).unwrap();
    // No temporary file left next to it.
    let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(entries.len(), 1);

    let write = |name: &str, b: &[u8]| {
        let p = temp_path(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    // Truncated.
    let p = write("trunc.bin", &bytes[..bytes.len() - 100]);
    match Stats::load(&p) {
        Err(Error::FitFile { msg, path }) => {
            assert!(msg.contains("truncated"), "{msg}");
            assert_eq!(path, p);
        }
        other => panic!("truncated file: {other:?}"),
    }
    // One flipped byte in the data.
    let mut altered = bytes.clone();
    altered[bytes.len() / 2] ^= 0x10;
    match Stats::load(&write("flip.bin", &altered)) {
        Err(Error::FitFile { msg, .. }) => assert!(msg.contains("checksum"), "{msg}"),
        other => panic!("altered file: {other:?}"),
    }
    // Wrong magic.
    let mut magic = bytes.clone();
    magic[0] = b'X';
    match Stats::load(&write("magic.bin", &magic)) {
        Err(Error::FitFile { msg, .. }) => assert!(msg.contains("magic"), "{msg}"),
        other => panic!("bad magic: {other:?}"),
    }
    // A newer format version.
    let mut newer = bytes.clone();
    newer[8..12].copy_from_slice(&99u32.to_le_bytes());
    match Stats::load(&write("newer.bin", &newer)) {
        Err(Error::FitVersion { found: 99, supported: chip::math::stats::STATS_FORMAT_VERSION, .. }) => {}
        other => panic!("newer version: {other:?}"),
    }
    // Empty file and missing file.
    assert!(matches!(Stats::load(&write("empty.bin", &[])), Err(Error::FitFile { .. })));
    assert!(matches!(Stats::load(&temp_path("missing.bin")), Err(Error::Io { .. })));
    // A header claiming absurd sizes is refused before anything is allocated.
    let mut huge = bytes.clone();
    huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Stats::load(&write("huge.bin", &huge)), Err(Error::FitFile { .. })));
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[test]
fn sharded_statistics_give_the_same_fit() {
    let s = synthetic(40, 4, 60, 12, 2, false);
    let all = collect(&s, 4);
    let mut a = Stats::new(&s.gates, 4, Target::Probability);
    let mut b = Stats::new(&s.gates, 4, Target::Probability);
    for (i, (z, f, g)) in s.images.iter().enumerate() {
        if i % 3 == 0 { a.add_image(&s.gates, z, f, g).unwrap() } else { b.add_image(&s.gates, z, f, g).unwrap() }
    }
    a.merge(&b).unwrap();
    let p = AdmmParams::default();
    let (w1, _) = admm::solve_all(&all, None, &p, &Objective::PAPER, &|_| true).unwrap();
    let (w2, _) = admm::solve_all(&a, None, &p, &Objective::PAPER, &|_| true).unwrap();
    for (x, y) in w1.iter().zip(&w2) {
        assert!((x - y).abs() <= 1e-5 * x.abs().max(1e-3), "{x} vs {y}");
    }
}

#[test]
fn planted_weights_are_recovered() {
    // g is exactly linear in the gated activations with a planted sparse W: at small λ the fit finds
    // the planted channels and (up to the λ shrinkage) their weights.
    let (k, c) = (60, 3);
    let s = synthetic(k, c, 300, 40, 3, true);
    let st = collect(&s, c);
    let (w, reps) = admm::solve_all(&st, None, &AdmmParams { lambda_rel: 1e-4, ..Default::default() }, &Objective::PAPER, &|_| true).unwrap();
    for ci in 0..c {
        assert!(reps[ci].converged && reps[ci].kkt_residual < 1e-4, "{:?}", reps[ci]);
        let row = &w[ci * k..(ci + 1) * k];
        let planted: f64 = (0..k).filter(|&j| s.w_true[ci][j] > 0.0).map(|j| row[j].max(0.0) as f64).sum();
        let total: f64 = row.iter().map(|&v| v.max(0.0) as f64).sum();
        assert!(total > 0.0);
        assert!(planted / total > 0.95, "class {ci}: planted share {}", planted / total);
        let ratio: Vec<f64> =
            (0..k).filter(|&j| s.w_true[ci][j] > 0.0).map(|j| row[j] as f64 / s.w_true[ci][j]).collect();
        // All planted weights are recovered with the same positive factor (1/scale) to within 2%.
        assert!(ratio.len() >= 2, "class {ci}: too few planted channels");
        let mean = ratio.iter().sum::<f64>() / ratio.len() as f64;
        assert!(ratio.iter().all(|&x| (x / mean - 1.0).abs() < 0.02), "class {ci}: ratios {ratio:?}");
    }
}

/// Timing table for the real problem size: K = 1280 channels, 100 images. Run with
/// `cargo test --test math -- --ignored --nocapture solve_time_table`.
#[test]
#[ignore]
fn solve_time_table() {
    use std::time::Instant;
    let (k, c, n, images) = (1280, 6, 300, 100);
    let t = Instant::now();
    let s = synthetic(k, c, n, images, 7, false);
    let st = collect(&s, c);
    println!("setup (synthetic data + statistics): {:.2}s", t.elapsed().as_secs_f64());
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    println!("{:>6} {:>9} {:>9} {:>6} {:>5} {:>9} {:>8} {:>10}", "λ_rel", "gram_s", "solve_s", "iters", "nnz", "kkt", "polished", "class");
    for lambda_rel in [0.01, 0.05, 0.2] {
        let p = AdmmParams { lambda_rel, ..Default::default() };
        for ci in 0..c {
            let t = Instant::now();
            let g = st.gram(ci);
            let tg = t.elapsed().as_secs_f64();
            let b = st.b_row(ci);
            let lambda = lambda_rel * admm::lambda_max(b);
            let t = Instant::now();
            let (_, rep) = pool.install(|| admm::solve_class(&g, b, lambda, &p, false)).unwrap();
            let ts = t.elapsed().as_secs_f64();
            println!(
                "{:>6} {:>9.3} {:>9.3} {:>6} {:>5} {:>9.1e} {:>8} {:>10}",
                lambda_rel, tg, ts, rep.iterations, rep.nonzeros, rep.kkt_residual, rep.polished, ci
            );
        }
    }
    let t = Instant::now();
    let (_, reps) = admm::solve_all(&st, None, &AdmmParams::default(), &Objective::PAPER, &|_| true).unwrap();
    println!(
        "solve_all, {c} classes, {} threads: {:.3}s ({:.3}s per class)",
        rayon::current_num_threads(),
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() / c as f64
    );
    assert!(reps.iter().all(|r| r.converged));
}

#[test]
#[ignore]
/// Kernel costs behind the table above: one Cholesky and one ADMM iteration (two triangular solves) at K = 1280.
fn faer_kernel_times() {
    use faer::dyn_stack::{MemBuffer, MemStack};
    use faer::linalg::cholesky::llt;
    use faer::{Mat, MatMut, Par};
    use std::time::Instant;
    let k = 1280;
    let mut r = Rng::new(1);
    let a = Mat::<f64>::from_fn(200, k, |_, _| unif(&mut r));
    let g = a.transpose() * &a + Mat::<f64>::identity(k, k);
    let mut l = g.clone();
    let t = Instant::now();
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(k, Par::Seq, Default::default()));
    llt::factor::cholesky_in_place(l.as_mut(), Default::default(), Par::Seq, MemStack::new(&mut mem), Default::default()).unwrap();
    println!("cholesky {:.3}s", t.elapsed().as_secs_f64());
    let mut x = vec![1.0; k];
    let t = Instant::now();
    for _ in 0..100 {
        let lr = l.as_ref();
        let mut xm = MatMut::from_column_major_slice_mut(&mut x, k, 1);
        faer::linalg::triangular_solve::solve_lower_triangular_in_place(lr, xm.as_mut(), Par::Seq);
        faer::linalg::triangular_solve::solve_upper_triangular_in_place(lr.transpose(), xm.as_mut(), Par::Seq);
    }
    println!("2 triangular solves {:.3}ms", t.elapsed().as_secs_f64() * 10.0);
    let t = Instant::now();
    let mut y = vec![0.0; k];
    let gs: Vec<f64> = (0..k * k).map(|i| g[(i / k, i % k)]).collect();
    for _ in 0..100 {
        for i in 0..k {
            let row = &gs[i * k..(i + 1) * k];
            y[i] = row.iter().zip(&x).map(|(a, b)| a * b).sum();
        }
        x.copy_from_slice(&y);
        let n = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        x.iter_mut().for_each(|v| *v /= n);
    }
    println!("plain gemv {:.3}ms", t.elapsed().as_secs_f64() * 10.0);
}
