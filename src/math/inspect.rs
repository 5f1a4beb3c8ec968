//! Inspection of a fitted W: top channels of a class, sparsity, channel overlap between classes
//! (top-10 overlap and overlap of channels above 1/1000 of the max, as in the paper's figures 10–11).
//! Class indices outside W are ignored.

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ClassSummary { pub class: usize, pub nonzeros: usize, pub top: Vec<(usize, f32)> }

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Overlap {
    /// Mean over class pairs of |top10(a) ∩ top10(b)| / 10.
    pub top10_mean: f64,
    /// Mean over class pairs of the Jaccard overlap of {k : w_k > max/1000}.
    pub significant_mean: f64,
}

fn row(w: &[f32], channels: usize, class: usize) -> Option<&[f32]> {
    w.get(class * channels..(class + 1) * channels)
}

/// The `top` channels with the largest positive weights (largest first, ties by channel index):
/// those are the ones that light up the class map.
fn top_channels(r: &[f32], top: usize) -> Vec<(usize, f32)> {
    let mut v: Vec<(usize, f32)> = r.iter().copied().enumerate().filter(|&(_, x)| x > 0.0).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(top);
    v
}

/// Non-zero count and top channels (positive weights, largest first) of one class; empty when the
/// class is outside W.
pub fn class_summary(w: &[f32], channels: usize, class: usize, top: usize) -> ClassSummary {
    match row(w, channels, class) {
        Some(r) => ClassSummary { class, nonzeros: r.iter().filter(|&&x| x != 0.0).count(), top: top_channels(r, top) },
        None => ClassSummary { class, nonzeros: 0, top: Vec::new() },
    }
}

/// Fraction of zero entries over the given rows (classes); 0 when no row is given.
pub fn sparsity(w: &[f32], channels: usize, classes: &[usize]) -> f64 {
    let (mut zeros, mut total) = (0usize, 0usize);
    for r in classes.iter().filter_map(|&c| row(w, channels, c)) {
        zeros += r.iter().filter(|&&x| x == 0.0).count();
        total += r.len();
    }
    if total == 0 { 0.0 } else { zeros as f64 / total as f64 }
}

/// The given classes whose every weight is zero (their maps are empty).
pub fn zero_rows(w: &[f32], channels: usize, classes: &[usize]) -> Vec<usize> {
    classes.iter().copied().filter(|&c| row(w, channels, c).is_some_and(|r| r.iter().all(|&x| x == 0.0))).collect()
}

/// Mean pairwise overlaps over the given classes (0 with fewer than two). top10 takes the ten largest
/// positive weights (fewer if a class has fewer); a class without a positive weight has an empty
/// significant set, and the Jaccard overlap of two empty sets counts as 0.
pub fn overlap(w: &[f32], channels: usize, classes: &[usize]) -> Overlap {
    let rows: Vec<&[f32]> = classes.iter().filter_map(|&c| row(w, channels, c)).collect();
    let tops: Vec<Vec<usize>> = rows.iter().map(|r| top_channels(r, 10).into_iter().map(|(k, _)| k).collect()).collect();
    let sig: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| {
            let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            r.iter().map(|&x| max > 0.0 && x > max / 1000.0).collect()
        })
        .collect();
    let (mut t_sum, mut s_sum, mut pairs) = (0.0, 0.0, 0usize);
    for a in 0..rows.len() {
        for b in a + 1..rows.len() {
            let common = tops[a].iter().filter(|k| tops[b].contains(k)).count();
            t_sum += common as f64 / 10.0;
            let inter = sig[a].iter().zip(&sig[b]).filter(|(x, y)| **x && **y).count();
            let union = sig[a].iter().zip(&sig[b]).filter(|(x, y)| **x || **y).count();
            s_sum += if union == 0 { 0.0 } else { inter as f64 / union as f64 };
            pairs += 1;
        }
    }
    if pairs == 0 {
        return Overlap { top10_mean: 0.0, significant_mean: 0.0 };
    }
    Overlap { top10_mean: t_sum / pairs as f64, significant_mean: s_sum / pairs as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_and_sparsity() {
        let k = 5;
        let w = [0.0, 3.0, -1.0, 3.0, 0.5, /* class 1 */ 0.0, 0.0, 0.0, 0.0, 0.0];
        let s = class_summary(&w, k, 0, 2);
        assert_eq!(s.nonzeros, 4);
        // Tie between channels 1 and 3 at 3.0: lower index first; negatives never appear.
        assert_eq!(s.top, vec![(1, 3.0), (3, 3.0)]);
        assert_eq!(class_summary(&w, k, 0, 10).top, vec![(1, 3.0), (3, 3.0), (4, 0.5)]);
        assert_eq!(class_summary(&w, k, 1, 3).top, vec![]);
        assert_eq!(class_summary(&w, k, 9, 3).nonzeros, 0);
        assert!((sparsity(&w, k, &[0, 1]) - 6.0 / 10.0).abs() < 1e-12);
        assert!((sparsity(&w, k, &[0]) - 0.2).abs() < 1e-12);
        assert_eq!(sparsity(&w, k, &[]), 0.0);
    }

    #[test]
    fn overlaps_by_hand() {
        let k = 20;
        let mut w = vec![0.0f32; 3 * k];
        // Class 0: channels 0..10 with weights 10..1; class 1: channels 5..15; class 2: channels 0..10 too.
        for j in 0..10 {
            w[j] = 10.0 - j as f32;
            w[k + 5 + j] = 1.0 + j as f32;
            w[2 * k + j] = 1.0;
        }
        // A tiny weight below max/1000 in class 2 is not significant.
        w[2 * k + 19] = 1e-4;
        let o = overlap(&w, k, &[0, 1]);
        assert!((o.top10_mean - 0.5).abs() < 1e-12);
        assert!((o.significant_mean - 5.0 / 15.0).abs() < 1e-12);
        let o = overlap(&w, k, &[0, 2]);
        // Class 2's top 10 are its ten 1.0-weights (the 1e-4 one ranks below them).
        assert!((o.top10_mean - 1.0).abs() < 1e-12);
        assert!((o.significant_mean - 1.0).abs() < 1e-12);
        let o3 = overlap(&w, k, &[0, 1, 2]);
        assert!((o3.top10_mean - (0.5 + 1.0 + 0.5) / 3.0).abs() < 1e-12);
        assert_eq!(overlap(&w, k, &[0]), Overlap { top10_mean: 0.0, significant_mean: 0.0 });
    }
}
