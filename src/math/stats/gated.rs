//! The pure steps of a statistics pass, apart from running the network: pooling the layer, gating
//! and tiling the suffix inputs, turning outputs into targets, and the gated outputs of a layer that
//! feeds global average pooling and a linear head in closed form.
//!
//! For such a head the gated network is linear in the pooled gated layer: with z_s the pooled
//! activations of image s and d_n a gate, pool(d_n ⊙ A_s) = d_n ⊙ z_s, so the gated logits of every
//! gate of every image are one product Q Fᵀ + bias, where row (s, n) of Q is d_n ⊙ z_s and F (C×K) is
//! the head's weight. No suffix runs are needed.
use crate::math::gates::GateSet;
use crate::math::objective::{softmax, Activation, Target};
use faer::{Accum, MatMut, MatRef, Par};

/// Index of the first non-finite value.
pub fn first_non_finite(v: &[f32]) -> Option<usize> { v.iter().position(|x| !x.is_finite()) }

/// Global average pool of one image's activations (K×HW, channel-major) into `z` (K), summed in f64.
pub fn pool(act: &[f32], hw: usize, z: &mut [f32]) {
    assert_eq!(act.len(), z.len() * hw, "pool: activations and z disagree");
    for (zc, ch) in z.iter_mut().zip(act.chunks_exact(hw.max(1))) {
        let s: f64 = ch.iter().map(|&v| v as f64).sum();
        *zc = (s / hw as f64) as f32;
    }
}

/// The layer under gates `first..first + rows`: one image's activations (K×HW) with each gate's
/// closed channels zeroed, written to `dst` (rows×K×HW).
pub fn mask(gates: &GateSet, first: usize, rows: usize, act: &[f32], hw: usize, dst: &mut [f32]) {
    let per = gates.channels * hw;
    assert!(act.len() == per && dst.len() >= rows * per, "mask: buffer sizes");
    for r in 0..rows {
        let gate = gates.gate(first + r);
        let out = &mut dst[r * per..(r + 1) * per];
        for ((d, src), &open) in out.chunks_exact_mut(hw).zip(act.chunks_exact(hw)).zip(gate) {
            if open != 0 { d.copy_from_slice(src) } else { d.fill(0.0) }
        }
    }
}

/// `one` repeated to fill `dst` (a whole number of copies).
pub fn tile(one: &[f32], dst: &mut [f32]) {
    for row in dst.chunks_exact_mut(one.len()) {
        row.copy_from_slice(one);
    }
}

/// Raw model outputs (rows of `classes`) into targets ([`Target::apply_with`]), rows in parallel.
pub fn apply_target(target: Target, raw: &mut [f32], classes: usize, is_logits: bool, activation: Activation) {
    use rayon::prelude::*;
    if classes == 0 {
        return;
    }
    raw.par_chunks_mut(classes).for_each(|row| target.apply_with(row, is_logits, activation));
}

/// A linear head on the pooled layer: `weight` C×K row-major, `bias` C, and whether the output is
/// softmax(logits) or the logits themselves.
#[derive(Clone, Copy, Debug)]
pub struct Head<'a> {
    pub weight: &'a [f32],
    pub bias: &'a [f32],
    pub softmax: bool,
}

impl Head<'_> {
    pub fn classes(&self) -> usize { self.bias.len() }
    pub fn channels(&self) -> usize { self.weight.len().checked_div(self.bias.len()).unwrap_or(0) }

    /// The model's raw outputs for `rows` pooled inputs `x` (rows×K): x Fᵀ + bias, then softmax when
    /// the head ends in one. `out` is rows×C.
    pub fn outputs(&self, x: &[f32], rows: usize, out: &mut [f32], par: Par) {
        let (c, k) = (self.classes(), self.channels());
        assert!(x.len() == rows * k && out.len() == rows * c, "Head::outputs: buffer sizes");
        if rows == 0 || c == 0 {
            return;
        }
        for row in out.chunks_exact_mut(c) {
            row.copy_from_slice(self.bias);
        }
        if k > 0 {
            faer::linalg::matmul::matmul(
                MatMut::from_row_major_slice_mut(out, rows, c),
                Accum::Add,
                MatRef::from_row_major_slice(x, rows, k),
                MatRef::from_row_major_slice(self.weight, c, k).transpose(),
                1.0f32,
                par,
            );
        }
        if self.softmax {
            use rayon::prelude::*;
            out.par_chunks_mut(c).for_each(softmax);
        }
    }

    /// The raw outputs of every gate for each of `images` pooled rows `z` (images×K): `out` is
    /// images×N×C, image-major then gate-major, as the suffix would give them for d_n ⊙ A.
    pub fn gated_outputs(&self, gates: &GateSet, z: &[f32], images: usize, out: &mut [f32], par: Par) {
        let (k, n) = (gates.channels, gates.count);
        assert!(k == self.channels() && z.len() == images * k, "Head::gated_outputs: sizes");
        let mut q = vec![0f32; images * n * k];
        for (zs, block) in z.chunks_exact(k.max(1)).zip(q.chunks_exact_mut((n * k).max(1))) {
            for (g, row) in block.chunks_exact_mut(k).enumerate() {
                for ((dst, &open), &zv) in row.iter_mut().zip(gates.gate(g)).zip(zs) {
                    *dst = if open != 0 { zv } else { 0.0 };
                }
            }
        }
        self.outputs(&q, images * n, out, par);
    }
}

#[cfg(test)]
mod tests;
