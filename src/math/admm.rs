//! Per-class lasso by ADMM: minimise ½ wᵀG w − bᵀw + λ‖w‖₁ (the CHIP objective up to a constant).
//! w ← (G + ρI)⁻¹(b + ρ(m + q)), m ← soft(w − q, λ/ρ), q ← q − (w − m); one Cholesky per class.
//!
//! ADMM finds the support and signs of the solution cheaply; a "polish" step then solves the lasso
//! exactly on that support (G_SS w_S = b_S − λ sign(w_S)), correcting the support by an active-set
//! method where needed, and is kept when it satisfies the optimality (KKT) conditions better than the
//! ADMM iterate. Polishing is tried during the iterations too, once the support has been stable for a
//! few iterations, so a class usually stops after tens of iterations with a KKT-exact answer.
use crate::error::{Error, Result};
use crate::math::objective::Objective;
use crate::math::stats::Stats;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{Mat, MatMut, Par};

mod cd;
pub use cd::solve_class_cd;

/// Which per-class solver [`solve_all_with`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Solver {
    /// Coordinate descent where a class's G has rank below K (fewer loyal image × gate rows than
    /// channels: sparse, low-rank problems where it is fastest), ADMM otherwise (dense solutions,
    /// where one Cholesky of G + ρI beats many sweeps).
    #[default]
    Auto,
    /// Active-set coordinate descent with covariance updates, then the exact polish
    /// ([`solve_class_cd`]); ADMM where it does not reach the KKT tolerance within its budget.
    CoordinateDescent,
    /// ADMM with one Cholesky of G + ρI per class, then the polish ([`solve_class`]).
    Admm,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdmmParams {
    /// λ as a fraction of λ_max = ‖b‖_∞ (the smallest λ with w = 0), so it is scale-free.
    pub lambda_rel: f64,
    /// ρ; None picks one from the scale of G (the mean of its diagonal).
    pub rho: Option<f64>,
    pub max_iter: usize,
    /// Boyd's stopping criteria: ‖r‖ ≤ √K·abs_tol + rel_tol·max(‖w‖, ‖m‖), ‖s‖ ≤ √K·abs_tol + rel_tol·ρ‖q‖.
    /// rel_tol is also the KKT tolerance (relative to λ) at which a polished solution ends the iterations.
    pub abs_tol: f64,
    pub rel_tol: f64,
}

impl Default for AdmmParams {
    fn default() -> Self { AdmmParams { lambda_rel: 0.001, rho: None, max_iter: 2000, abs_tol: 1e-9, rel_tol: 1e-6 } }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassReport {
    pub class: usize,
    pub iterations: usize,
    pub primal_residual: f64,
    pub dual_residual: f64,
    pub nonzeros: usize,
    pub lambda: f64,
    /// The residual criteria were met, or the returned w satisfies the KKT conditions to rel_tol.
    pub converged: bool,
    /// Largest violation of the KKT conditions of the returned w, relative to λ (to ‖b‖_∞ when λ = 0):
    /// |(Gw − b)_k + λ sign w_k| on the support, max(0, |(Gw − b)_k| − λ) off it.
    #[serde(default)]
    pub kkt_residual: f64,
    /// The returned w is the exact solution on the ADMM support (the polish step was kept).
    #[serde(default)]
    pub polished: bool,
    /// The fitted intercept β_c (0 without one).
    #[serde(default)]
    pub intercept: f64,
}

impl ClassReport {
    fn empty() -> Self {
        ClassReport {
            class: 0,
            iterations: 0,
            primal_residual: 0.0,
            dual_residual: 0.0,
            nonzeros: 0,
            lambda: 0.0,
            converged: false,
            kkt_residual: 0.0,
            polished: false,
            intercept: 0.0,
        }
    }
}

pub fn lambda_max(b: &[f64]) -> f64 {
    b.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// λ_max under the sign constraint w ≥ 0: the largest positive b_k (w = 0 is optimal iff b ≤ λ).
pub fn lambda_max_nonneg(b: &[f64]) -> f64 {
    b.iter().fold(0.0f64, |m, &x| m.max(x))
}

/// Residual balancing: change ρ by RHO_TAU when one residual exceeds the other RHO_MU times, at most
/// MAX_RHO_CHANGES times and every RHO_INTERVAL iterations (each change costs a Cholesky).
const RHO_MU: f64 = 10.0;
const RHO_TAU: f64 = 4.0;
const RHO_INTERVAL: usize = 20;
const MAX_RHO_CHANGES: usize = 8;

/// Soft thresholding, or its one-sided form (projection onto w ≥ 0) when `nonneg`.
#[inline]
fn shrink(v: f64, t: f64, nonneg: bool) -> f64 {
    if nonneg { (v - t).max(0.0) } else { soft(v, t) }
}

#[inline]
fn soft(v: f64, t: f64) -> f64 {
    if v > t {
        v - t
    } else if v < -t {
        v + t
    } else {
        0.0
    }
}

/// KKT violation of w (relative to `scale`); `grad` is scratch of length K. With `nonneg` a channel
/// off the support only violates optimality when the objective falls in the positive direction.
fn kkt_residual(g: &[f64], b: &[f64], w: &[f64], lambda: f64, scale: f64, grad: &mut [f64], nonneg: bool) -> f64 {
    let k = b.len();
    grad.iter_mut().zip(b).for_each(|(x, &bv)| *x = -bv);
    // G is symmetric and row-major, so column j is row j: contiguous axpys over the support.
    for (j, &wj) in w.iter().enumerate() {
        if wj != 0.0 {
            let row = &g[j * k..(j + 1) * k];
            grad.iter_mut().zip(row).for_each(|(x, &gv)| *x += wj * gv);
        }
    }
    let mut worst = 0.0f64;
    for (&gr, &wk) in grad.iter().zip(w) {
        let v = if wk != 0.0 {
            (gr + lambda * wk.signum()).abs()
        } else if nonneg {
            (-gr - lambda).max(0.0)
        } else {
            (gr.abs() - lambda).max(0.0)
        };
        worst = worst.max(v);
    }
    worst / scale
}

/// Solves G_AA x = rhs by Cholesky; None when G_AA is not positive definite.
fn solve_sub(g: &[f64], k: usize, active: &[usize], rhs: &mut [f64]) -> Option<()> {
    let n = active.len();
    let mut a = Mat::<f64>::zeros(n, n);
    for (ci, &j) in active.iter().enumerate() {
        for (ri, &i) in active.iter().enumerate().skip(ci) {
            a[(ri, ci)] = g[i * k + j];
        }
    }
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(n, Par::Seq, Default::default()));
    llt::factor::cholesky_in_place(a.as_mut(), Default::default(), Par::Seq, MemStack::new(&mut mem), Default::default())
        .ok()?;
    let l = a.as_ref();
    let mut r = MatMut::from_column_major_slice_mut(rhs, n, 1);
    faer::linalg::triangular_solve::solve_lower_triangular_in_place(l, r.as_mut(), Par::Seq);
    faer::linalg::triangular_solve::solve_upper_triangular_in_place(l.transpose(), r.as_mut(), Par::Seq);
    rhs.iter().all(|v| v.is_finite()).then_some(())
}

/// ½vᵀG_AA v − b_Aᵀv + λ‖v‖₁ for v on the active set.
fn objective_sub(g: &[f64], b: &[f64], active: &[usize], v: &[f64], lambda: f64) -> f64 {
    let k = b.len();
    let mut o = 0.0;
    for (ii, &i) in active.iter().enumerate() {
        let row = &g[i * k..(i + 1) * k];
        let gv: f64 = active.iter().zip(v).map(|(&j, &vj)| row[j] * vj).sum();
        o += v[ii] * (0.5 * gv - b[i]) + lambda * v[ii].abs();
    }
    o
}

/// Polish: the exact lasso solution reached from the ADMM iterate `start` by an active-set method
/// (feature-sign search, Lee et al. 2007). It first solves G_SS w_S = b_S − λ sign(w_S) on the ADMM
/// support S; when a sign flips it line-searches to the best sign change and drops that channel, and
/// while a channel off the support violates |(Gw − b)_k| ≤ λ (by more than `tol`) it adds the worst one.
/// The objective decreases at every step, so it ends at the optimum unless a G_SS is singular or the
/// work budget (a few full-size Cholesky factorizations) runs out: then None.
/// With `nonneg` only channels whose objective falls in the positive direction enter, so every sign
/// is +1 and the line search drops a channel where it would turn negative.
fn polish(g: &[f64], b: &[f64], start: &[f64], lambda: f64, tol: f64, nonneg: bool) -> Option<Vec<f64>> {
    polish_within(g, b, start, lambda, tol, nonneg, 4.0 * (b.len() as f64).powi(3)).0
}

/// [`polish`] within a work budget (in multiply-adds); also returns the work spent.
fn polish_within(g: &[f64], b: &[f64], start: &[f64], lambda: f64, tol: f64, nonneg: bool, budget: f64) -> (Option<Vec<f64>>, f64) {
    let mut work = 0.0;
    let w = polish_inner(g, b, start, lambda, tol, nonneg, budget, &mut work);
    (w, work)
}

#[allow(clippy::too_many_arguments)]
fn polish_inner(g: &[f64], b: &[f64], start: &[f64], lambda: f64, tol: f64, nonneg: bool, budget: f64, work: &mut f64) -> Option<Vec<f64>> {
    let k = b.len();
    let mut w = start.to_vec();
    let mut active: Vec<usize> = (0..k).filter(|&j| w[j] != 0.0).collect();
    let mut theta: Vec<f64> = w.iter().map(|&v| if v != 0.0 { v.signum() } else { 0.0 }).collect();
    let mut grad = vec![0.0; k];
    loop {
        // Feature-sign steps until w is optimal on the active set with consistent signs.
        loop {
            if active.is_empty() {
                break;
            }
            let n = active.len();
            *work += (n as f64).powi(3) / 3.0 + (n * n) as f64 * 4.0;
            if *work > budget {
                return None;
            }
            let mut x: Vec<f64> = active.iter().map(|&j| b[j] - lambda * theta[j]).collect();
            solve_sub(g, k, &active, &mut x)?;
            if active.iter().zip(&x).all(|(&j, &v)| v != 0.0 && v.signum() == theta[j]) {
                for (&j, &v) in active.iter().zip(&x) {
                    w[j] = v;
                }
                break;
            }
            // Line search over the segment from the current point to x: its end and each zero crossing.
            let cur: Vec<f64> = active.iter().map(|&j| w[j]).collect();
            let mut best_t = 1.0;
            let mut best_zero: Option<usize> = None;
            let mut best_obj = objective_sub(g, b, &active, &x, lambda);
            let mut point = vec![0.0; n];
            for i in 0..n {
                if cur[i] != 0.0 && (x[i] == 0.0 || x[i].signum() != cur[i].signum()) {
                    let t = cur[i] / (cur[i] - x[i]);
                    if t > 0.0 && t < 1.0 {
                        for ((p, &c), &xv) in point.iter_mut().zip(&cur).zip(&x) {
                            *p = c + t * (xv - c);
                        }
                        point[i] = 0.0;
                        let o = objective_sub(g, b, &active, &point, lambda);
                        if o < best_obj {
                            (best_obj, best_t, best_zero) = (o, t, Some(i));
                        }
                    }
                }
            }
            *work += (n * n * n) as f64;
            for (ii, &j) in active.iter().enumerate() {
                w[j] = cur[ii] + best_t * (x[ii] - cur[ii]);
            }
            if let Some(i) = best_zero {
                w[active[i]] = 0.0;
            }
            active.retain(|&j| w[j] != 0.0);
            theta.iter_mut().for_each(|t| *t = 0.0);
            for &j in &active {
                theta[j] = w[j].signum();
            }
        }
        // Off the active set: the most violated optimality condition, if any.
        grad.iter_mut().zip(b).for_each(|(x, &bv)| *x = -bv);
        for &j in &active {
            let wj = w[j];
            grad.iter_mut().zip(&g[j * k..(j + 1) * k]).for_each(|(x, &gv)| *x += wj * gv);
        }
        *work += (k * active.len()) as f64;
        let mut worst: Option<(usize, f64)> = None;
        for j in 0..k {
            if w[j] == 0.0 {
                let v = if nonneg { -grad[j] - lambda } else { grad[j].abs() - lambda };
                if v > tol && worst.is_none_or(|(_, wv)| v > wv) {
                    worst = Some((j, v));
                }
            }
        }
        match worst {
            None => return Some(w),
            Some((j, _)) => {
                active.push(j);
                theta[j] = -grad[j].signum();
            }
        }
    }
}

/// Refuses a malformed problem: sizes, λ, the parameters, non-finite values.
fn check_problem(g: &[f64], b: &[f64], lambda: f64, params: &AdmmParams) -> Result<()> {
    let k = b.len();
    if g.len() != k * k {
        return Err(Error::invalid(format!("Gram matrix has {} values, expected {k}×{k}", g.len())));
    }
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(Error::invalid(format!("lambda must be finite and ≥ 0, got {lambda}")));
    }
    let non_negative = |t: f64| t.is_finite() && t >= 0.0;
    if params.max_iter == 0 || !non_negative(params.abs_tol) || !non_negative(params.rel_tol) {
        return Err(Error::invalid("ADMM needs max_iter ≥ 1 and non-negative tolerances"));
    }
    if g.iter().chain(b).any(|x| !x.is_finite()) {
        return Err(Error::NonFinite("lasso problem (Gram matrix or b)".into()));
    }
    Ok(())
}

/// Solves one class by ADMM; `g` is K×K row-major symmetric PSD. `nonneg` adds the constraint w ≥ 0.
pub fn solve_class(g: &[f64], b: &[f64], lambda: f64, params: &AdmmParams, nonneg: bool) -> Result<(Vec<f64>, ClassReport)> {
    let k = b.len();
    check_problem(g, b, lambda, params)?;
    let lmax = if nonneg { lambda_max_nonneg(b) } else { lambda_max(b) };
    let mut report = ClassReport { lambda, converged: true, ..ClassReport::empty() };
    // w = 0 is optimal iff ‖b‖_∞ ≤ λ (max b ≤ λ under w ≥ 0).
    if lmax <= lambda || k == 0 {
        return Ok((vec![0.0; k], report));
    }
    let scale = if lambda > 0.0 { lambda } else { lmax };
    let rho = match params.rho {
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(r) => return Err(Error::invalid(format!("rho must be finite and > 0, got {r}"))),
        None => {
            let mean_diag = (0..k).map(|i| g[i * k + i]).sum::<f64>() / k as f64;
            if mean_diag > 0.0 { mean_diag } else { 1.0 }
        }
    };

    // One Cholesky of G + ρI, then only triangular solves in the loop. ρ is rebalanced (Boyd §3.4.1)
    // a bounded number of times when one residual dominates: near-singular G (few images) otherwise
    // makes ADMM crawl along the null space.
    let mut rho = rho;
    let mut l = Mat::<f64>::zeros(k, k);
    let mut mem = MemBuffer::new(llt::factor::cholesky_in_place_scratch::<f64>(k, Par::Seq, Default::default()));
    let mut factor = |l: &mut Mat<f64>, rho: f64| -> Result<()> {
        for j in 0..k {
            for i in j..k {
                l[(i, j)] = g[i * k + j] + if i == j { rho } else { 0.0 };
            }
        }
        llt::factor::cholesky_in_place(l.as_mut(), Default::default(), Par::Seq, MemStack::new(&mut mem), Default::default())
            .map(|_| ())
            .map_err(|_| Error::invalid("Gram matrix is not positive semidefinite (Cholesky of G + ρI failed)"))
    };
    factor(&mut l, rho)?;

    let mut x = vec![0.0; k];
    let mut m = vec![0.0; k];
    let mut q = vec![0.0; k];
    let mut grad = vec![0.0; k];
    let mut kappa = lambda / rho;
    let sqrt_k = (k as f64).sqrt();
    let kkt_tol = params.rel_tol;
    let mut stable_since = 0usize;
    let mut next_polish = 10usize;
    let mut polish_gap = 10usize;
    let mut best: Option<(Vec<f64>, f64)> = None;
    let mut residual_converged = false;
    let adaptive = params.rho.is_none();
    let mut last_rho_change = 0usize;
    let mut rho_changes = 0usize;

    for it in 1..=params.max_iter {
        for j in 0..k {
            x[j] = b[j] + rho * (m[j] + q[j]);
        }
        {
            let lr = l.as_ref();
            let mut xm = MatMut::from_column_major_slice_mut(&mut x, k, 1);
            faer::linalg::triangular_solve::solve_lower_triangular_in_place(lr, xm.as_mut(), Par::Seq);
            faer::linalg::triangular_solve::solve_upper_triangular_in_place(lr.transpose(), xm.as_mut(), Par::Seq);
        }
        let (mut r2, mut s2, mut x2, mut m2, mut q2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        let mut support_changed = false;
        for j in 0..k {
            let mj = shrink(x[j] - q[j], kappa, nonneg);
            let dm = mj - m[j];
            support_changed |= (mj != 0.0) != (m[j] != 0.0);
            m[j] = mj;
            let rj = x[j] - mj;
            q[j] -= rj;
            r2 += rj * rj;
            s2 += dm * dm;
            x2 += x[j] * x[j];
            m2 += mj * mj;
            q2 += q[j] * q[j];
        }
        report.iterations = it;
        report.primal_residual = r2.sqrt();
        report.dual_residual = rho * s2.sqrt();
        let eps_pri = sqrt_k * params.abs_tol + params.rel_tol * x2.sqrt().max(m2.sqrt());
        let eps_dual = sqrt_k * params.abs_tol + params.rel_tol * rho * q2.sqrt();
        if report.primal_residual <= eps_pri && report.dual_residual <= eps_dual {
            residual_converged = true;
            break;
        }
        if adaptive && rho_changes < MAX_RHO_CHANGES && it - last_rho_change >= RHO_INTERVAL {
            let (r, s) = (report.primal_residual, report.dual_residual);
            let factor_change = if r > RHO_MU * s {
                RHO_TAU
            } else if s > RHO_MU * r {
                1.0 / RHO_TAU
            } else {
                1.0
            };
            if factor_change != 1.0 {
                rho *= factor_change;
                kappa = lambda / rho;
                // q is the scaled dual (y/ρ): keep y fixed.
                q.iter_mut().for_each(|v| *v /= factor_change);
                factor(&mut l, rho)?;
                last_rho_change = it;
                rho_changes += 1;
            }
        }
        if support_changed {
            stable_since = it;
        }
        // Try the exact solve once the support has settled; back off after each failure so large
        // supports (expensive polishes) are tried only a logarithmic number of times.
        if it >= next_polish && it - stable_since >= 3 {
            if let Some(w) = polish(g, b, &m, lambda, 0.5 * kkt_tol * scale, nonneg) {
                let res = kkt_residual(g, b, &w, lambda, scale, &mut grad, nonneg);
                if res <= kkt_tol {
                    best = Some((w, res));
                    break;
                }
            }
            next_polish = it + polish_gap;
            polish_gap = (polish_gap * 2).min(640);
        }
    }

    let (w, res, polished) = match best {
        Some((w, res)) => (w, res, true),
        None => {
            let admm_res = kkt_residual(g, b, &m, lambda, scale, &mut grad, nonneg);
            match polish(g, b, &m, lambda, 0.5 * kkt_tol * scale, nonneg) {
                Some(w) => {
                    let res = kkt_residual(g, b, &w, lambda, scale, &mut grad, nonneg);
                    if res < admm_res { (w, res, true) } else { (m, admm_res, false) }
                }
                None => (m, admm_res, false),
            }
        }
    };
    report.nonzeros = w.iter().filter(|&&v| v != 0.0).count();
    report.kkt_residual = res;
    report.polished = polished;
    report.converged = residual_converged || res <= kkt_tol;
    Ok((w, report))
}

/// Solves the given classes (all when None) in parallel; returns W (C×K row-major, zero rows for
/// classes not solved) and one report per solved class, in the order given. `progress(done)` is called
/// after each class, one call at a time with `done` increasing; returning false cancels (Error::Cancelled).
/// The objective's intercept is profiled out ([`Stats::profile_intercept`]) and its sign constraint
/// applied; λ = lambda_rel · λ_max of the resulting problem per class; a class whose problem has
/// λ_max = 0 gets w = 0 without solving.
pub fn solve_all(
    stats: &Stats,
    classes: Option<&[usize]>,
    params: &AdmmParams,
    objective: &Objective,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Result<(Vec<f32>, Vec<ClassReport>)> {
    solve_all_with(stats, classes, params, objective, Solver::default(), progress)
}

/// [`solve_all`] with a chosen per-class solver.
pub fn solve_all_with(
    stats: &Stats,
    classes: Option<&[usize]>,
    params: &AdmmParams,
    objective: &Objective,
    solver: Solver,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Result<(Vec<f32>, Vec<ClassReport>)> {
    use rayon::prelude::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (k, c) = (stats.channels, stats.classes);
    if !(params.lambda_rel.is_finite() && params.lambda_rel >= 0.0) {
        return Err(Error::invalid(format!("lambda_rel must be finite and ≥ 0, got {}", params.lambda_rel)));
    }
    let list: Vec<usize> = match classes {
        Some(cl) => {
            if let Some(&bad) = cl.iter().find(|&&ci| ci >= c) {
                return Err(Error::invalid(format!("class {bad} out of range (the statistics have {c} classes)")));
            }
            cl.to_vec()
        }
        None => (0..c).collect(),
    };
    let nonneg = objective.nonneg;
    let cancelled = AtomicBool::new(false);
    let done = parking_lot::Mutex::new(0usize);
    let results: Vec<Result<(usize, Vec<f64>, ClassReport)>> = list
        .par_iter()
        .map_init(
            Vec::<f64>::new,
            |gbuf, &ci| {
                if cancelled.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                let mut b = stats.b_row(ci).to_vec();
                gbuf.resize(k * k, 0.0);
                stats.gram_into(ci, gbuf);
                let parts = objective.intercept.then(|| stats.profile_intercept(ci, gbuf, &mut b));
                let lmax = if nonneg { lambda_max_nonneg(&b) } else { lambda_max(&b) };
                let (w, mut rep) = if lmax == 0.0 {
                    (vec![0.0; k], ClassReport { converged: true, ..ClassReport::empty() })
                } else {
                    let lambda = params.lambda_rel * lmax;
                    let low_rank = || {
                        let loyal = (0..stats.images).filter(|&s| stats.f[s * c + ci] >= crate::math::stats::LOYALTY_TOL).count();
                        loyal.saturating_mul(stats.gate_count) < k
                    };
                    match solver {
                        Solver::CoordinateDescent => solve_class_cd(gbuf, &b, lambda, params, nonneg),
                        Solver::Auto if low_rank() => solve_class_cd(gbuf, &b, lambda, params, nonneg),
                        Solver::Auto | Solver::Admm => solve_class(gbuf, &b, lambda, params, nonneg),
                    }
                    .map_err(|e| match e {
                        Error::InvalidArgument(msg) => Error::InvalidArgument(format!("class {ci}: {msg}")),
                        Error::NonFinite(msg) => Error::NonFinite(format!("class {ci}: {msg}")),
                        other => other,
                    })?
                };
                if let Some((u, s_total, t)) = parts {
                    if s_total > 0.0 {
                        rep.intercept = (t - w.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>()) / s_total;
                    }
                }
                rep.class = ci;
                let mut d = done.lock();
                *d += 1;
                if !cancelled.load(Ordering::Relaxed) && !progress(*d) {
                    cancelled.store(true, Ordering::Relaxed);
                }
                Ok((ci, w, rep))
            },
        )
        .collect();
    if cancelled.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    let mut w_all = vec![0.0f32; c * k];
    let mut reports = Vec::with_capacity(list.len());
    for r in results {
        let (ci, w, rep) = r?;
        for (dst, &v) in w_all[ci * k..(ci + 1) * k].iter_mut().zip(&w) {
            *dst = v as f32;
        }
        reports.push(rep);
    }
    Ok((w_all, reports))
}

#[cfg(test)]
mod tests;
