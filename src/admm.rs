//! Per-class lasso by ADMM: minimise ½ wᵀG w − bᵀw + λ‖w‖₁ (the CHIP objective up to a constant).
//! w ← (G + ρI)⁻¹(b + ρ(m + q)), m ← soft(w − q, λ/ρ), q ← q − (w − m); one Cholesky per class.
use crate::error::Result;
use crate::stats::Stats;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdmmParams {
    /// λ as a fraction of λ_max = ‖b‖_∞ (the smallest λ with w = 0), so it is scale-free.
    pub lambda_rel: f64,
    /// ρ; None picks one from the scale of G.
    pub rho: Option<f64>,
    pub max_iter: usize,
    pub abs_tol: f64,
    pub rel_tol: f64,
}

impl Default for AdmmParams {
    fn default() -> Self { AdmmParams { lambda_rel: 0.05, rho: None, max_iter: 2000, abs_tol: 1e-9, rel_tol: 1e-6 } }
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassReport {
    pub class: usize,
    pub iterations: usize,
    pub primal_residual: f64,
    pub dual_residual: f64,
    pub nonzeros: usize,
    pub lambda: f64,
    pub converged: bool,
}

pub fn lambda_max(b: &[f64]) -> f64 { todo!() }

/// Solves one class; `g` is K×K row-major symmetric PSD.
pub fn solve_class(g: &[f64], b: &[f64], lambda: f64, params: &AdmmParams) -> Result<(Vec<f64>, ClassReport)> { todo!() }

/// Solves the given classes (all when None) in parallel; returns W (C×K row-major, zero rows for
/// classes not solved) and one report per solved class. `progress(done)` returning false cancels.
pub fn solve_all(
    stats: &Stats,
    classes: Option<&[usize]>,
    params: &AdmmParams,
    progress: &(dyn Fn(usize) -> bool + Sync),
) -> Result<(Vec<f32>, Vec<ClassReport>)> { todo!() }
