//! Sufficient statistics of the CHIP objective, exact and additive over images.
//!
//! For class c: G_c = Σ_{s,n} h_n f^c_s z_{s,n} z_{s,n}ᵀ = D ⊙ (Σ_s f^c_s z_s z_sᵀ) with D = Σ_n h_n d_n d_nᵀ,
//! and b_c = Σ_{s,n} h_n f^c_s g^c_{s,n} z_{s,n}. Storing b (C×K), the per-image z_s and f_s, and D is
//! enough; G_c is formed per class at solve time.
use crate::error::Result;
use crate::gates::GateSet;
use std::path::Path;

/// Loyalty below this is treated as zero when accumulating b (documented tolerance: contributions of
/// classes with f^c_s < 1e-6 change b_c by less than 1e-6 relative of that image's share).
pub const LOYALTY_TOL: f64 = 1e-6;

#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub channels: usize,
    pub classes: usize,
    /// Identity of the gate set the statistics were gathered with; merging needs equal gates.
    pub gate_count: usize,
    pub gate_seed: u64,
    pub sigma2_rel: f64,
    pub images: usize,
    /// b, C×K row-major.
    pub b: Vec<f64>,
    /// z_s rows (images×K): global average pool of the layer's activations per image.
    pub z: Vec<f64>,
    /// f_s rows (images×C): loyalty (original class probabilities).
    pub f: Vec<f64>,
    /// D = Σ_n h_n d_n d_nᵀ, K×K.
    pub d: Vec<f64>,
}

impl Stats {
    pub fn new(gates: &GateSet, classes: usize) -> Self { todo!() }
    /// Adds one image: z_s (K), f_s (C, original probabilities), g (N×C perturbed probabilities, gate-major).
    pub fn add_image(&mut self, gates: &GateSet, z_s: &[f32], f_s: &[f32], g: &[f32]) -> Result<()> { todo!() }
    /// Adds the statistics of another shard (same gate set, channels and classes, else FitMismatch).
    pub fn merge(&mut self, other: &Stats) -> Result<()> { todo!() }
    /// G_c = D ⊙ Σ_s f^c_s z_s z_sᵀ, K×K row-major.
    pub fn gram(&self, class: usize) -> Vec<f64> { todo!() }
    pub fn b_row(&self, class: usize) -> &[f64] { &self.b[class * self.channels..(class + 1) * self.channels] }
    /// Binary file with magic, version and SHA-256 checksum, written atomically.
    pub fn save(&self, path: &Path) -> Result<()> { todo!() }
    pub fn load(path: &Path) -> Result<Self> { todo!() }
}
