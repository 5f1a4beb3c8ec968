//! Per-class lasso by ADMM: minimise ½ wᵀG w − bᵀw + λ‖w‖₁ (the CHIP objective up to a constant).
//! w ← (G + ρI)⁻¹(b + ρ(m + q)), m ← soft(w − q, λ/ρ), q ← q − (w − m); one Cholesky per class.
//!
//! ADMM finds the support and signs of the solution cheaply; a "polish" step then solves the lasso
//! exactly on that support (G_SS w_S = b_S − λ sign(w_S)), correcting the support by an active-set
//! method where needed, and is kept when it satisfies the optimality (KKT) conditions better than the
//! ADMM iterate. Polishing is tried during the iterations too, once the support has been stable for a
//! few iterations, so a class usually stops after tens of iterations with a KKT-exact answer.
use crate::error::{Error, Result};
use crate::objective::Objective;
use crate::stats::Stats;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt;
use faer::{Mat, MatMut, Par};

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
    let k = b.len();
    let mut w = start.to_vec();
    let mut active: Vec<usize> = (0..k).filter(|&j| w[j] != 0.0).collect();
    let mut theta: Vec<f64> = w.iter().map(|&v| if v != 0.0 { v.signum() } else { 0.0 }).collect();
    let mut grad = vec![0.0; k];
    let budget = 4.0 * (k as f64).powi(3);
    let mut work = 0.0;
    loop {
        // Feature-sign steps until w is optimal on the active set with consistent signs.
        loop {
            if active.is_empty() {
                break;
            }
            let n = active.len();
            work += (n as f64).powi(3) / 3.0 + (n * n) as f64 * 4.0;
            if work > budget {
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
            work += (n * n * n) as f64;
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
        work += (k * active.len()) as f64;
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

/// Solves one class; `g` is K×K row-major symmetric PSD. `nonneg` adds the constraint w ≥ 0.
pub fn solve_class(g: &[f64], b: &[f64], lambda: f64, params: &AdmmParams, nonneg: bool) -> Result<(Vec<f64>, ClassReport)> {
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
                    solve_class(gbuf, &b, params.lambda_rel * lmax, params, nonneg).map_err(|e| match e {
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
mod tests {
    use super::*;
    use crate::gates::{GateSet, Rng};
    use crate::objective::Target;

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
}
