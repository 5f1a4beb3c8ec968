use super::*;
use crate::util::rng::Rng;

fn unif(r: &mut Rng) -> f32 { ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64) as f32 }

#[test]
fn pool_is_the_channel_mean() {
    let (k, hw) = (3, 4);
    let act: Vec<f32> = (0..k * hw).map(|i| i as f32).collect();
    let mut z = vec![0f32; k];
    pool(&act, hw, &mut z);
    assert_eq!(z, vec![1.5, 5.5, 9.5]);
}

#[test]
fn mask_zeroes_closed_channels_and_tile_repeats() {
    let (k, hw) = (5, 3);
    let gates = GateSet::generate(k, 6, 0.5, 4);
    let act: Vec<f32> = (0..k * hw).map(|i| 1.0 + i as f32).collect();
    let mut dst = vec![f32::NAN; 4 * k * hw];
    mask(&gates, 2, 4, &act, hw, &mut dst);
    for r in 0..4 {
        for c in 0..k {
            for p in 0..hw {
                let want = if gates.gate(2 + r)[c] == 1 { act[c * hw + p] } else { 0.0 };
                assert_eq!(dst[(r * k + c) * hw + p], want);
            }
        }
    }
    let mut tiled = vec![0f32; 3 * act.len()];
    tile(&act, &mut tiled);
    assert!(tiled.chunks(act.len()).all(|c| c == act.as_slice()));
}

/// The closed form against the definition: pool the masked activations, then the linear layer
/// (and softmax) row by row in f64.
#[test]
fn gated_outputs_equal_the_head_on_masked_activations() {
    let (k, c, n, images, hw) = (7, 4, 9, 3, 5);
    let mut r = Rng::new(11);
    let gates = GateSet::generate(k, n, 0.5, 3);
    let weight: Vec<f32> = (0..c * k).map(|_| unif(&mut r) * 2.0 - 1.0).collect();
    let bias: Vec<f32> = (0..c).map(|_| unif(&mut r)).collect();
    let acts: Vec<f32> = (0..images * k * hw).map(|_| unif(&mut r) * 3.0).collect();
    for softmax_out in [false, true] {
        let head = Head { weight: &weight, bias: &bias, softmax: softmax_out };
        assert_eq!((head.classes(), head.channels()), (c, k));
        let mut z = vec![0f32; images * k];
        for (zs, a) in z.chunks_mut(k).zip(acts.chunks(k * hw)) {
            pool(a, hw, zs);
        }
        let mut got = vec![0f32; images * n * c];
        head.gated_outputs(&gates, &z, images, &mut got, Par::Seq);
        let mut masked = vec![0f32; n * k * hw];
        for s in 0..images {
            mask(&gates, 0, n, &acts[s * k * hw..(s + 1) * k * hw], hw, &mut masked);
            for g in 0..n {
                let pooled: Vec<f64> = (0..k)
                    .map(|ch| masked[(g * k + ch) * hw..(g * k + ch + 1) * hw].iter().map(|&v| v as f64).sum::<f64>() / hw as f64)
                    .collect();
                let mut want: Vec<f64> = (0..c)
                    .map(|ci| bias[ci] as f64 + (0..k).map(|ch| weight[ci * k + ch] as f64 * pooled[ch]).sum::<f64>())
                    .collect();
                if softmax_out {
                    let m = want.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = want.iter().map(|v| (v - m).exp()).sum();
                    want.iter_mut().for_each(|v| *v = (*v - m).exp() / sum);
                }
                for ci in 0..c {
                    let v = got[(s * n + g) * c + ci] as f64;
                    assert!((v - want[ci]).abs() < 1e-5 * want[ci].abs().max(1.0), "image {s} gate {g} class {ci}: {v} vs {}", want[ci]);
                }
            }
        }
        // The ungated outputs are the all-open rows.
        let mut plain = vec![0f32; images * c];
        head.outputs(&z, images, &mut plain, Par::rayon(2));
        let open = GateSet { open: vec![1; k], count: 1, proximity: vec![1.0], ..gates.clone() };
        let mut all_open = vec![0f32; images * c];
        head.gated_outputs(&open, &z, images, &mut all_open, Par::Seq);
        for (a, b) in plain.iter().zip(&all_open) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0));
        }
    }
}

#[test]
fn apply_target_transforms_every_row() {
    let raw = vec![1.0f32, 2.0, 3.0, -1.0, 0.0, 1.0];
    for activation in [Activation::Softmax, Activation::Sigmoid] {
        for target in Target::ALL {
            let mut got = raw.clone();
            apply_target(target, &mut got, 3, true, activation);
            let mut want = raw.clone();
            for row in want.chunks_mut(3) {
                target.apply_with(row, true, activation);
            }
            assert_eq!(got, want);
        }
    }
}
