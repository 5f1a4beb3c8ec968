use super::*;
use crate::math::gates::GateSet;
use crate::util::rng::Rng;
use crate::math::objective::Target;

/// Every test below that calls `solve_class` checks both solvers: this runs ADMM and coordinate
/// descent on the same problem, checks that they agree (same errors; the coordinate-descent answer
/// meets the KKT conditions to the tolerance and its objective is no worse than ADMM's, its weights
/// the same up to the problem's conditioning), and returns ADMM's answer to the test.
fn solve_class(g: &[f64], b: &[f64], lambda: f64, p: &AdmmParams, nonneg: bool) -> Result<(Vec<f64>, ClassReport)> {
    let admm = super::solve_class(g, b, lambda, p, nonneg);
    let cd = solve_class_cd(g, b, lambda, p, nonneg);
    match (&admm, &cd) {
        (Ok((wa, ra)), Ok((wc, rc))) => {
            assert!(rc.converged && rc.kkt_residual <= p.rel_tol * 1.0001, "CD report {rc:?}");
            if lambda > 0.0 && !nonneg {
                let res = kkt(g, b, wc, lambda);
                assert!(res <= 1e-5, "CD KKT {res:.2e}");
            }
            // Solved by coordinate descent itself, not by its fallback to ADMM.
            assert!(rc.iterations <= cd::MAX_FULL_SWEEPS, "CD fell back to ADMM: {rc:?}");
            let (oa, oc) = (objective(g, b, wa, lambda), objective(g, b, wc, lambda));
            assert!(oc <= oa + 1e-9 * oa.abs().max(1e-12), "CD objective {oc} vs ADMM {oa}");
            assert_eq!(rc.nonzeros, wc.iter().filter(|&&v| v != 0.0).count());
            let _ = ra;
        }
        (Err(a), Err(c)) => assert_eq!(std::mem::discriminant(a), std::mem::discriminant(c), "{a} vs {c}"),
        _ => panic!("ADMM {:?} vs CD {:?}", admm.as_ref().err(), cd.as_ref().err()),
    }
    admm
}

fn unif(r: &mut Rng) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}
fn normal(r: &mut Rng) -> f64 {
    let (u1, u2) = (unif(r).max(1e-300), unif(r));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// G = AᵀA/rows + shift·I (full rank when shift > 0 or rows ≥ k).
fn random_psd(k: usize, rows: usize, shift: f64, r: &mut Rng) -> Vec<f64> {
    let a: Vec<f64> = (0..rows * k).map(|_| normal(r)).collect();
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            let s: f64 = (0..rows).map(|t| a[t * k + i] * a[t * k + j]).sum();
            g[i * k + j] = s / rows as f64 + if i == j { shift } else { 0.0 };
        }
    }
    g
}

/// Real-data shape: G = D ⊙ Σ_s f_s z_s z_sᵀ with few images and gates, non-negative z, dead channels.
fn rank_deficient(k: usize, images: usize, gates: usize, r: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let d = GateSet::generate(k, gates, 0.5, r.next_u64()).cooccurrence();
    let mut m = vec![0.0; k * k];
    let mut zs = Vec::new();
    for _ in 0..images {
        let f = unif(r);
        let z: Vec<f64> = (0..k).map(|j| if j % 7 == 3 { 0.0 } else { 0.5 + unif(r) }).collect();
        for i in 0..k {
            for j in 0..k {
                m[i * k + j] += f * z[i] * z[j];
            }
        }
        zs.push(z);
    }
    let g: Vec<f64> = m.iter().zip(&d).map(|(a, b)| a * b).collect();
    // Real b = Σ h f g z lies in the range of G (else the lasso is unbounded below): b = G v with
    // v a sparse planted part plus dense non-negative noise.
    let v: Vec<f64> = (0..k).map(|j| if j % 5 == 0 { unif(r) } else { 0.0 } + 0.05 * unif(r)).collect();
    let b: Vec<f64> = (0..k).map(|i| (0..k).map(|j| g[i * k + j] * v[j]).sum()).collect();
    (g, b)
}

fn kkt(g: &[f64], b: &[f64], w: &[f64], lambda: f64) -> f64 {
    // Independent restatement: subgradient optimality of ½wᵀGw − bᵀw + λ‖w‖₁.
    let k = b.len();
    let mut worst = 0.0f64;
    for i in 0..k {
        let gi: f64 = (0..k).map(|j| g[i * k + j] * w[j]).sum::<f64>() - b[i];
        let v = if w[i] > 0.0 {
            (gi + lambda).abs()
        } else if w[i] < 0.0 {
            (gi - lambda).abs()
        } else {
            (gi.abs() - lambda).max(0.0)
        };
        worst = worst.max(v);
    }
    worst / lambda
}

fn objective(g: &[f64], b: &[f64], w: &[f64], lambda: f64) -> f64 {
    let k = b.len();
    let mut o = 0.0;
    for i in 0..k {
        for j in 0..k {
            o += 0.5 * w[i] * g[i * k + j] * w[j];
        }
        o += -b[i] * w[i] + lambda * w[i].abs();
    }
    o
}

/// Coordinate descent with covariance updates, run to a fixed point.
fn cd_lasso(g: &[f64], b: &[f64], lambda: f64) -> Vec<f64> { coordinate_descent(g, b, lambda, false) }

/// Projected coordinate descent for the lasso with w ≥ 0: w_j = max(0, r_j − λ)/G_jj.
fn cd_nonneg(g: &[f64], b: &[f64], lambda: f64) -> Vec<f64> { coordinate_descent(g, b, lambda, true) }

fn coordinate_descent(g: &[f64], b: &[f64], lambda: f64, nonneg: bool) -> Vec<f64> {
    let k = b.len();
    let mut w = vec![0.0; k];
    for _ in 0..200_000 {
        let mut change = 0.0f64;
        for j in 0..k {
            let gjj = g[j * k + j];
            if gjj <= 0.0 {
                continue;
            }
            let rj = b[j] - (0..k).filter(|&i| i != j).map(|i| g[j * k + i] * w[i]).sum::<f64>();
            let new = if nonneg { (rj - lambda).max(0.0) } else { soft(rj, lambda) } / gjj;
            change = change.max((new - w[j]).abs());
            w[j] = new;
        }
        if change < 1e-14 {
            break;
        }
    }
    w
}

#[test]
fn nonneg_solution_matches_projected_coordinate_descent() {
    let mut r = Rng::new(21);
    for (k, rows) in [(15, 40), (30, 80), (6, 20)] {
        let g = random_psd(k, rows, 0.0, &mut r);
        let b: Vec<f64> = (0..k).map(|_| normal(&mut r)).collect();
        for rel in [0.05, 0.3] {
            let lambda = rel * lambda_max_nonneg(&b);
            let (w, rep) = solve_class(&g, &b, lambda, &AdmmParams::default(), true).unwrap();
            assert!(w.iter().all(|&v| v >= 0.0), "negative weight with nonneg");
            assert!(rep.kkt_residual < 1e-6, "kkt {}", rep.kkt_residual);
            let cd = cd_nonneg(&g, &b, lambda);
            let diff = w.iter().zip(&cd).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            assert!(diff < 1e-7, "k={k} rel={rel}: differs from coordinate descent by {diff}");
            // Unconstrained, the same problem has negative weights: the constraint did something.
            let (free, _) = solve_class(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
            assert!(free.iter().any(|&v| v < 0.0));
        }
    }
}

#[test]
fn profiled_intercept_equals_an_explicit_unpenalised_column() {
    // The intercept profiled out of (G, b) gives the same w as a lasso over [w, β] with β's
    // column always 1 and β unpenalised (solved here by an independent coordinate descent).
    let (k, c, n) = (6, 3, 40);
    let gates = GateSet::generate(k, n, 0.5, 4);
    let mut r = Rng::new(8);
    let mut st = Stats::new(&gates, c, Target::Logit);
    let mut rows: Vec<(Vec<f64>, f64, f64)> = Vec::new(); // (z_{s,n}, weight h·f, target) for class 1
    for _ in 0..5 {
        let z: Vec<f32> = (0..k).map(|_| (unif(&mut r) * 2.0) as f32).collect();
        let f: Vec<f32> = (0..c).map(|_| 0.1 + unif(&mut r) as f32).collect();
        let g: Vec<f32> = (0..n * c).map(|_| (normal(&mut r) + 3.0) as f32).collect();
        st.add_image(&gates, &z, &f, &g).unwrap();
        for gn in 0..n {
            let d = gates.gate(gn);
            let zn: Vec<f64> = (0..k).map(|j| d[j] as f64 * z[j] as f64).collect();
            rows.push((zn, gates.proximity[gn] * f[1] as f64, g[gn * c + 1] as f64));
        }
    }
    let mut g = st.gram(1);
    let mut b = st.b_row(1).to_vec();
    let (u, s_total, t) = st.profile_intercept(1, &mut g, &mut b);
    let lambda = 0.1 * lambda_max(&b);
    let (w, _) = solve_class(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
    let beta = (t - w.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()) / s_total;
    // Coordinate descent on the explicit weighted problem, β updated exactly each sweep.
    let mut cw = vec![0.0; k];
    let mut cb = 0.0;
    for _ in 0..20_000 {
        let resid = |cw: &[f64], cb: f64, x: &[f64], y: f64| y - cb - x.iter().zip(cw).map(|(a, b)| a * b).sum::<f64>();
        let (num, den): (f64, f64) = rows.iter().fold((0.0, 0.0), |(a, d), (x, h, y)| (a + h * (resid(&cw, 0.0, x, *y)), d + h));
        cb = num / den;
        for j in 0..k {
            let (mut rho, mut gjj) = (0.0, 0.0);
            for (x, h, y) in &rows {
                rho += h * x[j] * (resid(&cw, cb, x, *y) + x[j] * cw[j]);
                gjj += h * x[j] * x[j];
            }
            cw[j] = soft(rho, lambda) / gjj;
        }
    }
    let dw = w.iter().zip(&cw).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(dw < 1e-6, "w differs by {dw}: {w:?} vs {cw:?}");
    assert!((beta - cb).abs() < 1e-6, "β {beta} vs {cb}");
}

#[test]
fn kkt_holds_on_random_psd_problems() {
    let mut r = Rng::new(1);
    let p = AdmmParams::default();
    for (k, rows, shift) in [(20, 40, 0.0), (40, 10, 0.01), (60, 200, 0.0), (8, 3, 0.0)] {
        let g = random_psd(k, rows, shift, &mut r);
        // b in the range of G when G is singular (else the lasso is unbounded below).
        let v: Vec<f64> = (0..k).map(|_| normal(&mut r)).collect();
        let b: Vec<f64> = if rows < k && shift == 0.0 {
            (0..k).map(|i| (0..k).map(|j| g[i * k + j] * v[j]).sum()).collect()
        } else {
            v
        };
        for lr in [0.01, 0.1, 0.5] {
            let lambda = lr * lambda_max(&b);
            let (w, rep) = solve_class(&g, &b, lambda, &p, false).unwrap();
            let res = kkt(&g, &b, &w, lambda);
            assert!(res < 1e-4, "k={k} rows={rows} λrel={lr}: KKT {res}, report {rep:?}");
            println!("random k={k} rows={rows} λrel={lr}: KKT {res:.1e}, {} iterations, polished {}", rep.iterations, rep.polished);
            assert!(rep.converged);
            assert!((rep.kkt_residual - res).abs() < 1e-6);
            assert_eq!(rep.nonzeros, w.iter().filter(|&&v| v != 0.0).count());
        }
    }
}

#[test]
fn kkt_holds_on_rank_deficient_real_shaped_problems() {
    let mut r = Rng::new(2);
    let p = AdmmParams::default();
    for (k, images, gates) in [(30, 2, 3), (50, 5, 40), (64, 100, 200)] {
        let (g, b) = rank_deficient(k, images, gates, &mut r);
        for lr in [0.01, 0.05, 0.3] {
            let lambda = lr * lambda_max(&b);
            let (w, rep) = solve_class(&g, &b, lambda, &p, false).unwrap();
            let res = kkt(&g, &b, &w, lambda);
            assert!(res < 1e-4, "k={k} images={images}: KKT {res}, report {rep:?}");
            println!("rank-deficient k={k} images={images} λrel={lr}: KKT {res:.1e}, {} iterations", rep.iterations);
            // Dead channels (z = 0 everywhere) never get weight.
            assert!((0..k).filter(|j| j % 7 == 3).all(|j| w[j] == 0.0));
            // Same objective as an independent solver (the solution itself need not be unique here).
            let wc = cd_lasso(&g, &b, lambda);
            let (oa, oc) = (objective(&g, &b, &w, lambda), objective(&g, &b, &wc, lambda));
            assert!(oa <= oc + 1e-9 * oc.abs().max(1.0), "objective ADMM {oa} vs CD {oc}");
        }
    }
}

#[test]
fn agrees_with_coordinate_descent() {
    let mut r = Rng::new(3);
    let p = AdmmParams::default();
    for (k, rows) in [(15, 30), (40, 80), (70, 100)] {
        let g = random_psd(k, rows, 0.0, &mut r);
        let b: Vec<f64> = (0..k).map(|_| normal(&mut r)).collect();
        for lr in [0.02, 0.2] {
            let lambda = lr * lambda_max(&b);
            let (w, _) = solve_class(&g, &b, lambda, &p, false).unwrap();
            let wc = cd_lasso(&g, &b, lambda);
            let norm = wc.iter().map(|x| x * x).sum::<f64>().sqrt();
            let diff = w.iter().zip(&wc).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
            assert!(diff <= 1e-3 * norm, "k={k} λrel={lr}: ‖w−w_cd‖ {diff} vs ‖w_cd‖ {norm}");
            println!("CD k={k} λrel={lr}: ‖w−w_cd‖/‖w_cd‖ = {:.1e}", diff / norm);
            // Same support.
            for j in 0..k {
                assert_eq!(w[j] != 0.0, wc[j].abs() > 1e-12, "support differs at {j}: {} vs {}", w[j], wc[j]);
            }
        }
    }
}

#[test]
fn lambda_at_or_above_max_gives_zero() {
    let mut r = Rng::new(4);
    let g = random_psd(10, 20, 0.0, &mut r);
    let b: Vec<f64> = (0..10).map(|_| normal(&mut r)).collect();
    let lm = lambda_max(&b);
    assert_eq!(lm, b.iter().map(|x| x.abs()).fold(0.0, f64::max));
    for lambda in [lm, 1.5 * lm] {
        let (w, rep) = solve_class(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
        assert!(w.iter().all(|&v| v == 0.0));
        assert_eq!(rep.nonzeros, 0);
    }
    // Just below λ_max exactly one coefficient (the one with the largest |b|) becomes active.
    let (w, _) = solve_class(&g, &b, 0.999 * lm, &AdmmParams::default(), false).unwrap();
    let jmax = (0..10).max_by(|&i, &j| b[i].abs().total_cmp(&b[j].abs())).unwrap();
    assert!(w[jmax] != 0.0 && w.iter().filter(|&&v| v != 0.0).count() == 1);
}

#[test]
fn diagonal_problem_has_the_analytic_solution() {
    let k = 12;
    let mut r = Rng::new(5);
    let diag: Vec<f64> = (0..k).map(|_| 0.1 + 5.0 * unif(&mut r)).collect();
    let mut g = vec![0.0; k * k];
    for i in 0..k {
        g[i * k + i] = diag[i];
    }
    let b: Vec<f64> = (0..k).map(|_| 3.0 * normal(&mut r)).collect();
    let lambda = 0.4 * lambda_max(&b);
    let (w, _) = solve_class(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
    for i in 0..k {
        let want = if b[i].abs() > lambda { (b[i] - lambda * b[i].signum()) / diag[i] } else { 0.0 };
        assert!((w[i] - want).abs() <= 1e-10 * want.abs().max(1e-3), "w[{i}] {} vs {want}", w[i]);
    }
}

#[test]
fn bad_input_is_an_error() {
    let g = vec![1.0, 0.0, 0.0, 1.0];
    assert!(solve_class(&g, &[1.0, 2.0, 3.0], 0.1, &AdmmParams::default(), false).is_err());
    assert!(matches!(solve_class(&g, &[1.0, f64::NAN], 0.1, &AdmmParams::default(), false), Err(Error::NonFinite(_))));
    assert!(solve_class(&g, &[1.0, 2.0], -1.0, &AdmmParams::default(), false).is_err());
    // Indefinite "Gram" matrix.
    let bad = vec![1.0, 0.0, 0.0, -5.0];
    assert!(matches!(solve_class(&bad, &[1.0, 2.0], 0.1, &AdmmParams::default(), false), Err(Error::InvalidArgument(_))));
}

fn small_stats(c: usize) -> Stats {
    let (k, n) = (12, 30);
    let gates = GateSet::generate(k, n, 0.5, 8);
    let mut st = Stats::new(&gates, c, Target::Probability);
    let mut r = Rng::new(9);
    for _ in 0..8 {
        let z: Vec<f32> = (0..k).map(|_| unif(&mut r) as f32).collect();
        // Class 1 is never loyal, so its b row is zero.
        let f: Vec<f32> = (0..c).map(|ci| if ci == 1 { 0.0 } else { unif(&mut r) as f32 }).collect();
        let g: Vec<f32> = (0..n * c).map(|_| unif(&mut r) as f32).collect();
        st.add_image(&gates, &z, &f, &g).unwrap();
    }
    st
}

#[test]
fn solve_all_matches_single_classes_and_reports_progress() {
    let c = 5;
    let st = small_stats(c);
    let p = AdmmParams::default();
    let calls = parking_lot::Mutex::new(Vec::new());
    let (w, reps) = solve_all(&st, None, &p, &Objective::PAPER, &|d| {
        calls.lock().push(d);
        true
    })
    .unwrap();
    assert_eq!(*calls.lock(), (1..=c).collect::<Vec<_>>());
    assert_eq!(reps.len(), c);
    let k = st.channels;
    assert!(w[k..2 * k].iter().all(|&v| v == 0.0), "class without loyalty must give w = 0");
    for ci in [0, 2, 4] {
        let b = st.b_row(ci);
        let lambda = p.lambda_rel * lambda_max(b);
        let (wc, _) = solve_class(&st.gram(ci), b, lambda, &p, false).unwrap();
        for j in 0..k {
            assert!((w[ci * k + j] as f64 - wc[j]).abs() <= 1e-6 * wc[j].abs().max(1e-6));
        }
        assert!(kkt(&st.gram(ci), b, &wc, lambda) < 1e-4);
    }
    // A subset leaves the other rows zero.
    let (w2, reps2) = solve_all(&st, Some(&[3]), &p, &Objective::PAPER, &|_| true).unwrap();
    assert_eq!(reps2.len(), 1);
    assert_eq!(reps2[0].class, 3);
    assert!(w2.iter().enumerate().all(|(i, &v)| i / k == 3 || v == 0.0));
    assert_eq!(&w2[3 * k..4 * k], &w[3 * k..4 * k]);
    assert!(solve_all(&st, Some(&[c]), &p, &Objective::PAPER, &|_| true).is_err());
}

#[test]
fn cancellation_stops_with_an_error() {
    let st = small_stats(6);
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let r = solve_all(&st, None, &AdmmParams::default(), &Objective::PAPER, &|d| {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        d < 2
    });
    assert!(matches!(r, Err(Error::Cancelled)));
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2, "no progress after cancelling");
}

/// Real shapes at K = 1280: statistics of random non-negative activations (dead channels included)
/// with 4 rows × 8 gates (G of rank ≤ 32) and with 10,000 rows × 64 gates (K = 256 to keep the test
/// short); coordinate descent meets the KKT conditions and matches ADMM's objective.
#[test]
fn coordinate_descent_at_4_and_10000_rows() {
    for (k, rows, gates, classes) in [(1280, 4, 8, 3), (256, 10_000, 64, 2)] {
        let gs = GateSet::generate(k, gates, 0.5, 5);
        let mut st = Stats::new(&gs, classes, Target::LogProbability);
        let mut r = Rng::new(k as u64 + rows as u64);
        for _ in 0..rows {
            let z: Vec<f32> = (0..k).map(|j| if j % 11 == 4 { 0.0 } else { (unif(&mut r) * unif(&mut r) * 3.0) as f32 }).collect();
            let f: Vec<f32> = (0..classes).map(|_| unif(&mut r).powi(3) as f32).collect();
            // Targets that depend on a few channels of the gated z, plus noise.
            let g: Vec<f32> = (0..gates * classes)
                .map(|i| {
                    let (n, c) = (i / classes, i % classes);
                    let d = gs.gate(n);
                    let s: f64 = (0..8).map(|t| (t * 37 + c * 101) % k).map(|j| d[j] as f64 * z[j] as f64).sum();
                    (s - 2.0 + 0.3 * normal(&mut r)) as f32
                })
                .collect();
            st.add_image(&gs, &z, &f, &g).unwrap();
        }
        for c in 0..classes {
            let mut g = st.gram(c);
            let mut b = st.b_row(c).to_vec();
            st.profile_intercept(c, &mut g, &mut b);
            for lr in [0.001, 0.05] {
                let lambda = lr * lambda_max(&b);
                let t0 = std::time::Instant::now();
                let (wc, rc) = solve_class_cd(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
                let t_cd = t0.elapsed();
                let t0 = std::time::Instant::now();
                let (wa, ra) = super::solve_class(&g, &b, lambda, &AdmmParams::default(), false).unwrap();
                let t_admm = t0.elapsed();
                let res = kkt(&g, &b, &wc, lambda);
                let (oa, oc) = (objective(&g, &b, &wa, lambda), objective(&g, &b, &wc, lambda));
                let dw = wa.iter().zip(&wc).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max) / wa.iter().fold(1e-300f64, |m, v| m.max(v.abs()));
                println!(
                    "K={k} rows={rows} class {c} λrel={lr}: CD KKT {res:.1e} ({} sweeps, {} nonzeros, {:.1} ms), ADMM KKT {:.1e} ({:.1} ms), objectives {oc:.6e} vs {oa:.6e}, max |Δw|/max|w| {dw:.1e}",
                    rc.iterations, rc.nonzeros, t_cd.as_secs_f64() * 1e3, ra.kkt_residual, t_admm.as_secs_f64() * 1e3
                );
                assert!(rc.iterations <= cd::MAX_FULL_SWEEPS && rc.converged, "{rc:?}");
                assert!(res <= 1e-5, "KKT {res:.1e}");
                assert!(oc <= oa + 1e-9 * oa.abs(), "objective {oc} vs ADMM {oa}");
            }
        }
    }
}
