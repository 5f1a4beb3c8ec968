//! Inspection of a fitted W: top channels of a class, sparsity, channel overlap between classes
//! (top-10 overlap and overlap of channels above 1/1000 of the max, as in the paper's figures 10–11).

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassSummary { pub class: usize, pub nonzeros: usize, pub top: Vec<(usize, f32)> }

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Overlap {
    /// Mean over class pairs of |top10(a) ∩ top10(b)| / 10.
    pub top10_mean: f64,
    /// Mean over class pairs of the Jaccard overlap of {k : w_k > max/1000}.
    pub significant_mean: f64,
}

pub fn class_summary(w: &[f32], channels: usize, class: usize, top: usize) -> ClassSummary { todo!() }
/// Fraction of zero entries over the given rows (classes).
pub fn sparsity(w: &[f32], channels: usize, classes: &[usize]) -> f64 { todo!() }
pub fn overlap(w: &[f32], channels: usize, classes: &[usize]) -> Overlap { todo!() }
