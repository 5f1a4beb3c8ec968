//! Gate vectors d ∈ {0,1}^K shared by all images, and the proximity h(d).

use crate::util::rng::Rng;

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

/// Refuses σ² = sigma2_rel · K so small that a gate with even one closed channel gets a
/// proximity exp(−1/σ²) that underflows (below the smallest normal f64): then only the all-open
/// gate counts and every class's weights come out zero.
pub fn check_sigma2(sigma2_rel: f64, layer: &str, channels: usize) -> crate::error::Result<()> {
    if channels > 1 && (-1.0 / (sigma2_rel * channels as f64)).exp() < f64::MIN_POSITIVE {
        return Err(crate::error::Error::invalid(format!(
            "sigma2_rel {sigma2_rel:?} is too small for layer '{layer}' ({channels} channels): a gate with one \
             closed channel gets proximity exp(-1/(sigma2_rel·{channels})) = 0, so every weight would be zero"
        )));
    }
    Ok(())
}

/// Refuses a gate count whose gate set (K bytes and one f64 per gate) cannot be allocated: the
/// count comes from the caller, and a failed allocation would abort the process.
pub fn check_count(count: usize, channels: usize) -> crate::error::Result<()> {
    let bytes = channels.checked_add(8).and_then(|per_gate| per_gate.checked_mul(count));
    let too_many = |why: &str| {
        Err(crate::error::Error::invalid(format!("{count} gates of {channels} channels {why}; use fewer gates")))
    };
    let Some(bytes) = bytes.filter(|&b| b <= isize::MAX as usize) else { return too_many("overflow the address space") };
    if crate::util::mem::available_memory().is_some_and(|avail| bytes as u64 > avail) {
        return too_many(&format!("need {:.1} GiB, more than the memory available", bytes as f64 / (1u64 << 30) as f64));
    }
    let mut probe: Vec<u8> = Vec::new();
    if probe.try_reserve_exact(bytes).is_err() {
        return too_many(&format!("need {:.1} GiB, which cannot be allocated", bytes as f64 / (1u64 << 30) as f64));
    }
    Ok(())
}

impl GateSet {
    /// The number of open gates is uniform in 1..=K, then which ones uniform (partial Fisher–Yates).
    /// `sigma2_rel` must be positive (the caller validates it); ‖d − 1‖² is the number of closed gates.
    pub fn generate(channels: usize, count: usize, sigma2_rel: f64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut open = vec![0u8; channels * count];
        let mut proximity = Vec::with_capacity(count);
        let mut perm: Vec<usize> = Vec::with_capacity(channels);
        let sigma2 = sigma2_rel * channels as f64;
        for n in 0..count {
            let row = &mut open[n * channels..(n + 1) * channels];
            let m = if channels == 0 { 0 } else { 1 + rng.below(channels as u64) as usize };
            perm.clear();
            perm.extend(0..channels);
            for i in 0..m {
                let j = i + rng.below((channels - i) as u64) as usize;
                perm.swap(i, j);
                row[perm[i]] = 1;
            }
            let closed = (channels - m) as f64;
            proximity.push(if closed == 0.0 { 1.0 } else { (-closed / sigma2).exp() });
        }
        GateSet { channels, count, open, proximity, sigma2_rel, seed }
    }

    pub fn gate(&self, n: usize) -> &[u8] {
        &self.open[n * self.channels..(n + 1) * self.channels]
    }

    /// The gates as an N×K 0/1 matrix of f64 (row-major), for products.
    pub fn open_f64(&self) -> Vec<f64> {
        self.open.iter().map(|&o| o as f64).collect()
    }

    /// D = Σ_n h_n d_n d_nᵀ, K×K row-major.
    pub fn cooccurrence(&self) -> Vec<f64> {
        use faer::{Accum, MatMut, MatRef, Par};
        let k = self.channels;
        let mut d = vec![0.0; k * k];
        if k == 0 || self.count == 0 {
            return d;
        }
        // D = Oᵀ diag(h) O as one product: rows of the left factor are h_n d_n, of the right d_n.
        let o = self.open_f64();
        let mut ho = o.clone();
        for (n, row) in ho.chunks_mut(k).enumerate() {
            let h = self.proximity[n];
            row.iter_mut().for_each(|x| *x *= h);
        }
        let o = MatRef::from_row_major_slice(&o, self.count, k);
        let ho = MatRef::from_row_major_slice(&ho, self.count, k);
        let dst = MatMut::from_row_major_slice_mut(&mut d, k, k);
        faer::linalg::matmul::matmul(dst, Accum::Replace, ho.transpose(), o, 1.0, Par::Seq);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_reference_values() {
        // Published SplitMix64 outputs for seed 0 (as in the reference C implementation).
        let mut r = Rng::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_is_in_range_and_uniform() {
        let mut r = Rng::new(7);
        let n = 7u64;
        let mut hist = [0usize; 7];
        let draws = 70_000;
        for _ in 0..draws {
            let v = r.below(n);
            assert!(v < n);
            hist[v as usize] += 1;
        }
        let e = draws as f64 / n as f64;
        let chi2: f64 = hist.iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        // 6 degrees of freedom: P(chi2 > 30) < 1e-4.
        assert!(chi2 < 30.0, "chi2 {chi2} hist {hist:?}");
        assert_eq!(r.below(0), 0);
    }

    #[test]
    fn same_seed_same_gates_different_seed_differs() {
        let a = GateSet::generate(40, 50, 0.5, 1);
        let b = GateSet::generate(40, 50, 0.5, 1);
        let c = GateSet::generate(40, 50, 0.5, 2);
        assert_eq!(a, b);
        assert_ne!(a.open, c.open);
        assert_eq!(a.open.len(), 40 * 50);
        assert!(a.open.iter().all(|&x| x <= 1));
    }

    #[test]
    fn open_counts_cover_range_uniformly() {
        let k = 10;
        let n = 20_000;
        let g = GateSet::generate(k, n, 1.0, 42);
        let mut hist = vec![0usize; k + 1];
        let mut per_channel = vec![0usize; k];
        for i in 0..n {
            let row = g.gate(i);
            let m: usize = row.iter().map(|&x| x as usize).sum();
            hist[m] += 1;
            for (j, &x) in row.iter().enumerate() {
                per_channel[j] += x as usize;
            }
        }
        assert_eq!(hist[0], 0, "a gate with every channel closed");
        let e = n as f64 / k as f64;
        let chi2: f64 = hist[1..].iter().map(|&c| (c as f64 - e).powi(2) / e).sum();
        // 9 degrees of freedom: P(chi2 > 35) < 1e-4.
        assert!(chi2 < 35.0, "open-count chi2 {chi2}: {hist:?}");
        // Each channel is open with probability E[m]/K = (K+1)/(2K).
        let p = (k + 1) as f64 / (2 * k) as f64;
        for &c in &per_channel {
            let frac = c as f64 / n as f64;
            assert!((frac - p).abs() < 0.02, "channel open fraction {frac} vs {p}");
        }
    }

    #[test]
    fn proximity_formula() {
        let k = 16;
        let sigma2_rel = 0.3;
        let g = GateSet::generate(k, 100, sigma2_rel, 5);
        for n in 0..g.count {
            let closed = g.gate(n).iter().filter(|&&x| x == 0).count() as f64;
            let want = (-closed / (sigma2_rel * k as f64)).exp();
            assert!((g.proximity[n] - want).abs() < 1e-15);
        }
        assert!(g.proximity.iter().any(|&h| h < 1.0));
    }

    #[test]
    fn cooccurrence_matches_brute_force() {
        let k = 13;
        let g = GateSet::generate(k, 37, 0.7, 9);
        let d = g.cooccurrence();
        for i in 0..k {
            for j in 0..k {
                let mut want = 0.0;
                for n in 0..g.count {
                    if g.gate(n)[i] == 1 && g.gate(n)[j] == 1 {
                        want += g.proximity[n];
                    }
                }
                assert!((d[i * k + j] - want).abs() < 1e-12, "D[{i},{j}] {} vs {want}", d[i * k + j]);
            }
        }
    }
}
