//! Per-class lasso by active-set coordinate descent with covariance updates, finished by the exact
//! polish (feature-sign search on the support) of [`super::polish`].
//!
//! The gradient r = G w − b is kept up to date: changing w_j by δ adds δ·G_j (one row of G, K
//! operations), and a channel that stays at zero costs one comparison. A full sweep visits every
//! channel (so channels enter), then sweeps over the nonzero ones run until their steps are small.
//! There is no factorisation of G: the only dense linear algebra is the polish's Cholesky of G_SS on
//! the support S, so a class costs O(sweeps · |S| · K + |S|³) instead of ADMM's O(K³) Cholesky plus
//! O(K²) per iteration, and a rank-deficient G (few images) costs nothing extra. Where the
//! iterations do not reach the KKT tolerance within their budget, the class is solved by ADMM.
use super::*;

/// Sweeps over the support between two full sweeps, at most.
const INNER_SWEEPS: usize = 20;
/// The support's sweeps stop when no coordinate's gradient moved by more than this fraction of λ.
const INNER_TOL: f64 = 1e-3;
/// Full sweeps before the class goes to ADMM.
pub(super) const MAX_FULL_SWEEPS: usize = 100;

/// One coordinate-descent step on channel j; returns |δ|·G_jj (how far the gradient moved); `work`
/// counts multiply-adds.
#[inline]
fn step(g: &[f64], k: usize, j: usize, lambda: f64, nonneg: bool, w: &mut [f64], grad: &mut [f64], work: &mut f64) -> f64 {
    let gjj = g[j * k + j];
    if gjj <= 0.0 {
        return 0.0;
    }
    let old = w[j];
    let new = shrink(old - grad[j] / gjj, lambda / gjj, nonneg);
    if new == old {
        return 0.0;
    }
    let d = new - old;
    w[j] = new;
    *work += k as f64;
    grad.iter_mut().zip(&g[j * k..(j + 1) * k]).for_each(|(r, &gv)| *r += d * gv);
    d.abs() * gjj
}

/// Solves one class (same problem, parameters and report as [`solve_class`]) by coordinate descent
/// and the polish; `params.rel_tol` is the KKT tolerance relative to λ.
pub fn solve_class_cd(g: &[f64], b: &[f64], lambda: f64, params: &AdmmParams, nonneg: bool) -> Result<(Vec<f64>, ClassReport)> {
    let k = b.len();
    check_problem(g, b, lambda, params)?;
    let lmax = if nonneg { lambda_max_nonneg(b) } else { lambda_max(b) };
    let mut report = ClassReport { lambda, converged: true, ..ClassReport::empty() };
    if lmax <= lambda || k == 0 {
        return Ok((vec![0.0; k], report));
    }
    let scale = if lambda > 0.0 { lambda } else { lmax };
    let kkt_tol = params.rel_tol;
    let mut w = vec![0.0; k];
    let mut grad: Vec<f64> = b.iter().map(|&v| -v).collect();
    let mut scratch = vec![0.0; k];
    let mut support: Vec<usize> = Vec::new();
    let mut next_polish = 2usize;
    let mut polish_gap = 1usize;
    // The whole attempt may cost what ADMM's one Cholesky of G + ρI costs; beyond, ADMM finishes.
    let budget = (k as f64).powi(3) / 3.0;
    let mut work = 0.0f64;
    for sweep in 1..=MAX_FULL_SWEEPS.min(params.max_iter) {
        report.iterations = sweep;
        for j in 0..k {
            step(g, k, j, lambda, nonneg, &mut w, &mut grad, &mut work);
        }
        let before: Vec<usize> = (0..k).filter(|&j| w[j] != 0.0).collect();
        for _ in 0..INNER_SWEEPS {
            let mut moved = 0.0f64;
            for &j in &before {
                moved = moved.max(step(g, k, j, lambda, nonneg, &mut w, &mut grad, &mut work));
            }
            if moved <= INNER_TOL * scale {
                break;
            }
        }
        let now: Vec<usize> = (0..k).filter(|&j| w[j] != 0.0).collect();
        let stable = now == support;
        support = now;
        // The iterate itself may already be optimal (small problems, diagonal G).
        let res = kkt_residual(g, b, &w, lambda, scale, &mut scratch, nonneg);
        work += (support.len() * k) as f64;
        if res <= kkt_tol {
            return Ok(finish(w, res, false, report));
        }
        if work > budget {
            break;
        }
        // The exact solve when the support has settled, and on a doubling schedule besides (where
        // channels hover at zero the support never settles; the polish then corrects it).
        if (stable && sweep >= next_polish) || sweep == next_polish {
            if let Some(p) = polish_from(g, b, &w, stable, lambda, 0.5 * kkt_tol * scale, nonneg, budget - work, &mut work) {
                let res = kkt_residual(g, b, &p, lambda, scale, &mut scratch, nonneg);
                if res <= kkt_tol {
                    return Ok(finish(p, res, true, report));
                }
            }
            next_polish = sweep + polish_gap;
            polish_gap *= 2;
        }
        // Rounding drifts the running gradient over many updates: refresh it now and then.
        if sweep % 16 == 0 {
            recompute_gradient(g, b, &w, &mut grad);
        }
    }
    // Not there within the budget: ADMM, which factors G + ρI and always ends with the polish.
    let (w_admm, mut rep) = solve_class(g, b, lambda, params, nonneg)?;
    // Iterations beyond MAX_FULL_SWEEPS tell that ADMM finished the class.
    rep.iterations += report.iterations;
    let res_cd = kkt_residual(g, b, &w, lambda, scale, &mut scratch, nonneg);
    Ok(if rep.kkt_residual <= res_cd { (w_admm, rep) } else { finish(w, res_cd, false, report) })
}

/// The polish from w when its support has settled; where that fails (a G_SS singular because the
/// iterate carries more channels than G's rank, as with few images) or the support has not settled,
/// from w with its small entries dropped, then from zero.
#[allow(clippy::too_many_arguments)]
fn polish_from(g: &[f64], b: &[f64], w: &[f64], stable: bool, lambda: f64, tol: f64, nonneg: bool, budget: f64, work: &mut f64) -> Option<Vec<f64>> {
    let mut left = budget;
    let mut attempt = |start: &[f64], left: &mut f64| -> Option<Vec<f64>> {
        if *left <= 0.0 {
            return None;
        }
        let (p, spent) = polish_within(g, b, start, lambda, tol, nonneg, *left);
        *work += spent;
        *left -= spent;
        p
    };
    if stable {
        if let Some(p) = attempt(w, &mut left) {
            return Some(p);
        }
    }
    let k = b.len();
    let size = |j: usize| w[j].abs() * g[j * k + j].max(0.0).sqrt();
    let top = (0..k).map(size).fold(0.0f64, f64::max);
    let pruned: Vec<f64> = (0..k).map(|j| if size(j) >= 0.05 * top { w[j] } else { 0.0 }).collect();
    attempt(&pruned, &mut left).or_else(|| attempt(&vec![0.0; k], &mut left))
}

fn recompute_gradient(g: &[f64], b: &[f64], w: &[f64], grad: &mut [f64]) {
    let k = b.len();
    grad.iter_mut().zip(b).for_each(|(r, &bv)| *r = -bv);
    for (j, &wj) in w.iter().enumerate() {
        if wj != 0.0 {
            grad.iter_mut().zip(&g[j * k..(j + 1) * k]).for_each(|(r, &gv)| *r += wj * gv);
        }
    }
}

fn finish(w: Vec<f64>, res: f64, polished: bool, mut report: ClassReport) -> (Vec<f64>, ClassReport) {
    report.nonzeros = w.iter().filter(|&&v| v != 0.0).count();
    report.kkt_residual = res;
    report.polished = polished;
    report.converged = true;
    (w, report)
}
