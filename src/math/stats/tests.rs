use super::*;
use crate::util::rng::Rng;

fn unif(r: &mut Rng) -> f64 {
    (r.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Random small problem: gates, and per image z (K), f (C, some below the loyalty tolerance), g (N×C).
type Images = Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>;

fn problem(k: usize, c: usize, n: usize, images: usize, seed: u64) -> (GateSet, Images) {
    let gates = GateSet::generate(k, n, 0.5, seed);
    let mut r = Rng::new(seed ^ 0xABCD);
    let data = (0..images)
        .map(|_| {
            let z: Vec<f32> = (0..k).map(|_| (unif(&mut r) * 2.0) as f32).collect();
            let f: Vec<f32> = (0..c)
                .map(|_| if unif(&mut r) < 0.2 { 1e-8 } else { unif(&mut r) as f32 })
                .collect();
            let g: Vec<f32> = (0..n * c).map(|_| unif(&mut r) as f32).collect();
            (z, f, g)
        })
        .collect();
    (gates, data)
}

/// G_c and b_c straight from the definition with explicit z_{s,n} = d_n ⊙ z_s.
fn brute(gates: &GateSet, data: &[(Vec<f32>, Vec<f32>, Vec<f32>)], c: usize, class: usize) -> (Vec<f64>, Vec<f64>) {
    let k = gates.channels;
    let mut g = vec![0.0; k * k];
    let mut b = vec![0.0; k];
    for (z, f, gp) in data {
        let fc = f[class] as f64;
        if fc < LOYALTY_TOL {
            continue;
        }
        for n in 0..gates.count {
            let d = gates.gate(n);
            let zn: Vec<f64> = (0..k).map(|j| d[j] as f64 * z[j] as f64).collect();
            let h = gates.proximity[n];
            for i in 0..k {
                b[i] += h * fc * gp[n * c + class] as f64 * zn[i];
                for j in 0..k {
                    g[i * k + j] += h * fc * zn[i] * zn[j];
                }
            }
        }
    }
    (g, b)
}

fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * scale)
}

#[test]
fn add_image_matches_definition() {
    for (k, c, n, imgs, seed) in [(5, 3, 7, 4, 1), (9, 6, 20, 6, 2), (1, 2, 3, 2, 3)] {
        let (gates, data) = problem(k, c, n, imgs, seed);
        let mut st = Stats::new(&gates, c, Target::Probability);
        for (z, f, g) in &data {
            st.add_image(&gates, z, f, g).unwrap();
        }
        assert_eq!(st.images, imgs);
        for class in 0..c {
            let (gw, bw) = brute(&gates, &data, c, class);
            assert!(close(&st.gram(class), &gw, 1e-12), "G_{class} (k={k})");
            assert!(close(st.b_row(class), &bw, 1e-12), "b_{class} (k={k})");
        }
    }
}

#[test]
fn merge_of_halves_equals_all_at_once() {
    let (k, c, n) = (8, 4, 15);
    let (gates, data) = problem(k, c, n, 10, 11);
    let mut all = Stats::new(&gates, c, Target::Probability);
    let mut h1 = Stats::new(&gates, c, Target::Probability);
    let mut h2 = Stats::new(&gates, c, Target::Probability);
    for (i, (z, f, g)) in data.iter().enumerate() {
        all.add_image(&gates, z, f, g).unwrap();
        if i < 4 { h1.add_image(&gates, z, f, g).unwrap() } else { h2.add_image(&gates, z, f, g).unwrap() }
    }
    h1.merge(&h2).unwrap();
    assert_eq!(h1.images, all.images);
    assert!(close(&h1.b, &all.b, 1e-12));
    for class in 0..c {
        assert!(close(&h1.gram(class), &all.gram(class), 1e-12));
    }
    // Other gates or shapes are refused.
    let other = Stats::new(&GateSet::generate(k, n, 0.5, 12), c, Target::Probability);
    assert!(matches!(h1.clone().merge(&other), Err(Error::FitMismatch(_))));
    let other = Stats::new(&gates, c + 1, Target::Probability);
    assert!(matches!(h1.clone().merge(&other), Err(Error::FitMismatch(_))));
    let other = Stats::new(&GateSet::generate(k, n, 0.25, 11), c, Target::Probability);
    assert!(matches!(h1.clone().merge(&other), Err(Error::FitMismatch(_))));
    // Another model, layer or mosaic count is refused by name, and nothing changes.
    let before = h1.clone();
    for (field, change) in [
        ("another model", &(|s: &mut Stats| s.model_fingerprint = "ab".into()) as &dyn Fn(&mut Stats)),
        ("layer 'x'", &|s: &mut Stats| s.layer = "x".into()),
        ("2 mosaics", &|s: &mut Stats| s.mosaics = 2),
    ] {
        let mut other = h2.clone();
        change(&mut other);
        let e = h1.merge(&other).unwrap_err();
        assert!(matches!(&e, Error::FitMismatch(m) if m.contains(field)), "{e}");
        assert_eq!(h1, before);
    }
}

#[test]
fn identity_survives_the_file() {
    let (gates, data) = problem(3, 2, 4, 2, 5);
    let mut st = Stats::new(&gates, 2, Target::LogProbability);
    for (z, f, g) in &data {
        st.add_image(&gates, z, f, g).unwrap();
    }
    (st.model_fingerprint, st.layer, st.augment, st.mosaics) = ("f00d".into(), "/a/b:0".into(), 1, 2);
    let bytes = st.to_bytes();
    assert_eq!(Stats::from_bytes(&bytes, Path::new("s")).unwrap(), st);
    // A version-2 file (before the identity) is refused as older, not misread.
    let mut old = bytes.clone();
    old[8..12].copy_from_slice(&2u32.to_le_bytes());
    let e = Stats::from_bytes(&old, Path::new("s")).unwrap_err();
    assert!(e.to_string().contains("older"), "{e}");
    // A corrupt name length is refused before anything is allocated.
    let mut bad = bytes.clone();
    bad[HEADER_LEN + 16..HEADER_LEN + 24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Stats::from_bytes(&bad, Path::new("s")), Err(Error::FitFile { .. })));
}

#[test]
fn bad_inputs_rejected() {
    let (gates, data) = problem(4, 3, 5, 1, 4);
    let (z, f, g) = &data[0];
    let mut st = Stats::new(&gates, 3, Target::Probability);
    let mut zn = z.clone();
    zn[2] = f32::NAN;
    assert!(matches!(st.add_image(&gates, &zn, f, g), Err(Error::NonFinite(_))));
    let mut gn = g.clone();
    gn[7] = f32::INFINITY;
    assert!(matches!(st.add_image(&gates, z, f, &gn), Err(Error::NonFinite(_))));
    let mut fnan = f.clone();
    fnan[0] = f32::NAN;
    assert!(matches!(st.add_image(&gates, z, &fnan, g), Err(Error::NonFinite(_))));
    assert!(matches!(st.add_image(&gates, &z[..3], f, g), Err(Error::InvalidArgument(_))));
    assert!(matches!(st.add_image(&gates, z, &f[..2], g), Err(Error::InvalidArgument(_))));
    assert!(matches!(st.add_image(&gates, z, f, &g[1..]), Err(Error::InvalidArgument(_))));
    let other = GateSet::generate(4, 5, 0.5, 99);
    assert!(matches!(st.add_image(&other, z, f, g), Err(Error::FitMismatch(_))));
    // Nothing was added by the failed calls.
    assert_eq!(st.images, 0);
    assert!(st.b.iter().all(|&x| x == 0.0));
}

#[test]
fn add_images_equals_one_image_at_a_time() {
    let (k, c, n) = (33, 7, 12);
    let (gates, data) = problem(k, c, n, 5, 8);
    let mut one = Stats::new(&gates, c, Target::Probability);
    let (mut z, mut f, mut g) = (Vec::new(), Vec::new(), Vec::new());
    for (zs, fs, gs) in &data {
        one.add_image(&gates, zs, fs, gs).unwrap();
        z.extend_from_slice(zs);
        f.extend_from_slice(fs);
        g.extend_from_slice(gs);
    }
    let mut batch = Stats::new(&gates, c, Target::Probability);
    batch.add_images(&gates, &z, &f, &g).unwrap();
    assert_eq!((batch.images, &batch.z, &batch.f), (one.images, &one.z, &one.f));
    assert!(close(&batch.b, &one.b, 1e-13) && close(&batch.bg, &one.bg, 1e-13));
    assert!(batch.add_images(&gates, &z[1..], &f, &g).is_err());
}

/// The bytes of `st` with the f64 header word `i` (0 channels .. 7 h_sum) replaced and the checksum renewed.
fn with_word(st: &Stats, i: usize, value: u64) -> Vec<u8> {
    let mut bytes = st.to_bytes();
    bytes[12 + 8 * i..20 + 8 * i].copy_from_slice(&value.to_le_bytes());
    let body = bytes.len() - 32;
    let digest = Sha256::digest(&bytes[..body]);
    bytes[body..].copy_from_slice(&digest);
    bytes
}

#[test]
fn values_that_cannot_be_used_are_refused_at_load() {
    let (gates, data) = problem(3, 2, 4, 2, 5);
    let mut st = Stats::new(&gates, 2, Target::LogProbability);
    for (z, f, g) in &data {
        st.add_image(&gates, z, f, g).unwrap();
    }
    let p = Path::new("s.stats");
    assert!(Stats::from_bytes(&with_word(&st, 0, st.channels as u64), p).is_ok());
    let file_err = |bytes: Vec<u8>, needle: &str| {
        let e = Stats::from_bytes(&bytes, p).unwrap_err();
        assert!(matches!(&e, Error::FitFile { msg, .. } if msg.contains(needle)), "{needle}: {e}");
    };
    file_err(with_word(&st, 4, f64::NAN.to_bits()), "sigma2_rel NaN");
    file_err(with_word(&st, 4, (-1.0f64).to_bits()), "sigma2_rel -1.0");
    file_err(with_word(&st, 7, f64::NAN.to_bits()), "gate-proximity sum of NaN");
    file_err(with_word(&st, 7, 1e300f64.to_bits()), "at most the 4 gates");
    file_err(with_word(&st, 2, 0), "0 gates");
    // A NaN inside the statistics: non-finite, named.
    let mut nan = st.clone();
    nan.d[3] = f64::NAN;
    let e = Stats::from_bytes(&nan.to_bytes(), p).unwrap_err();
    assert!(matches!(&e, Error::NonFinite(m) if m.contains("statistic d (element 3")), "{e}");
}
