//! Gate vectors d ∈ {0,1}^K shared by all images, and the proximity h(d).

/// Small deterministic RNG (SplitMix64): the same seed gives the same gates on every platform.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self { todo!() }
    pub fn next_u64(&mut self) -> u64 { todo!() }
    /// Uniform in 0..n (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 { todo!() }
}

/// N gate vectors over K channels. `open[n*k + j] == 1` means channel j is kept in gate n.
#[derive(Clone, Debug, PartialEq)]
pub struct GateSet {
    pub channels: usize,
    pub count: usize,
    pub open: Vec<u8>,
    /// h(d_n) = exp(-‖d_n − 1‖² / σ²) with σ² = sigma2_rel · K.
    pub proximity: Vec<f64>,
    pub sigma2_rel: f64,
    pub seed: u64,
}

impl GateSet {
    /// The number of open gates is uniform in 1..=K, then which ones uniform (partial Fisher–Yates).
    pub fn generate(channels: usize, count: usize, sigma2_rel: f64, seed: u64) -> Self { todo!() }
    pub fn gate(&self, n: usize) -> &[u8] { todo!() }
    /// D = Σ_n h_n d_n d_nᵀ, K×K row-major.
    pub fn cooccurrence(&self) -> Vec<f64> { todo!() }
}
