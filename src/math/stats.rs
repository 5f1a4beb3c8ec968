//! Sufficient statistics of the CHIP objective, exact and additive over images.
//!
//! For class c: G_c = Σ_{s,n} h_n f^c_s z_{s,n} z_{s,n}ᵀ = D ⊙ (Σ_s f^c_s z_s z_sᵀ) with D = Σ_n h_n d_n d_nᵀ,
//! and b_c = Σ_{s,n} h_n f^c_s g^c_{s,n} z_{s,n}. Storing b (C×K), the per-image z_s and f_s, and D is
//! enough; G_c is formed per class at solve time.
//!
//! For an unpenalised intercept the solver also needs u_c = Σ h f^c z_{s,n} = diag(D) ⊙ Σ_s f^c_s z_s,
//! S_c = Σ h f^c = (Σ_n h_n)(Σ_s f^c_s) and t_c = Σ h f^c g^c: `bg` (C) and `h_sum` carry the last two
//! factors that z, f and D do not.
use crate::error::{Error, Result};
use crate::math::gates::GateSet;
use crate::math::objective::Target;
use faer::{Accum, MatMut, MatRef, Par};
use sha2::{Digest, Sha256};
use std::path::Path;

pub mod gated;

/// Loyalty below this is treated as zero when accumulating b (documented tolerance: contributions of
/// classes with f^c_s < 1e-6 change b_c by less than 1e-6 relative of that image's share).
/// G_c uses the same rule, so both sides of the objective see the same images.
pub const LOYALTY_TOL: f64 = 1e-6;

/// File format of saved statistics: magic, version (u32 LE), header, identity (augment, mosaics,
/// model fingerprint, layer name), f64 LE arrays, SHA-256 of all before it. Version 3 added the identity.
const MAGIC: &[u8; 8] = b"CHIPSTAT";
pub const STATS_FORMAT_VERSION: u32 = 4;
/// Longest model fingerprint or layer name a file may claim (a guard against corrupt lengths).
const MAX_NAME: u64 = 1 << 16;
const HEADER_LEN: usize = 8 + 4 + 8 * 8;

#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    pub channels: usize,
    pub classes: usize,
    /// Identity of the gate set the statistics were gathered with; merging needs equal gates.
    pub gate_count: usize,
    pub gate_seed: u64,
    pub sigma2_rel: f64,
    /// What g is: statistics of different targets cannot be merged.
    pub target: Target,
    /// SHA-256 of the model file and the layer the statistics were collected at ("" when built by
    /// hand with [`Stats::new`]); shards of another model or layer are refused.
    pub model_fingerprint: String,
    pub layer: String,
    /// The canonical JSON of the model's effective preprocessing spec ("" when built by hand):
    /// shards of another preprocessing are refused.
    pub preprocess: String,
    /// Augmented views and mosaics per image the statistics were collected with.
    pub augment: usize,
    pub mosaics: usize,
    /// Σ_n h_n over the gate set.
    pub h_sum: f64,
    pub images: usize,
    /// b, C×K row-major.
    pub b: Vec<f64>,
    /// z_s rows (images×K): global average pool of the layer's activations per image.
    pub z: Vec<f64>,
    /// f_s rows (images×C): loyalty (original class probabilities).
    pub f: Vec<f64>,
    /// D = Σ_n h_n d_n d_nᵀ, K×K.
    pub d: Vec<f64>,
    /// t_c = Σ_{s,n} h_n f^c_s g^c_{s,n} (C), for the intercept.
    pub bg: Vec<f64>,
}

fn check_finite(what: &str, v: &[f32]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::NonFinite(format!("{what} (element {i})"))),
        None => Ok(()),
    }
}

impl Stats {
    pub fn new(gates: &GateSet, classes: usize, target: Target) -> Self {
        let k = gates.channels;
        Stats {
            channels: k,
            classes,
            gate_count: gates.count,
            gate_seed: gates.seed,
            sigma2_rel: gates.sigma2_rel,
            target,
            model_fingerprint: String::new(),
            layer: String::new(),
            preprocess: String::new(),
            augment: 0,
            mosaics: 0,
            h_sum: gates.proximity.iter().sum(),
            images: 0,
            b: vec![0.0; classes * k],
            z: Vec::new(),
            f: Vec::new(),
            d: gates.cooccurrence(),
            bg: vec![0.0; classes],
        }
    }

    fn check_gates(&self, gates: &GateSet) -> Result<()> {
        if gates.channels != self.channels
            || gates.count != self.gate_count
            || gates.seed != self.gate_seed
            || gates.sigma2_rel.to_bits() != self.sigma2_rel.to_bits()
        {
            return Err(Error::FitMismatch(format!(
                "gate set (channels {}, count {}, seed {}, sigma2_rel {}) differs from the statistics' \
                 (channels {}, count {}, seed {}, sigma2_rel {})",
                gates.channels, gates.count, gates.seed, gates.sigma2_rel,
                self.channels, self.gate_count, self.gate_seed, self.sigma2_rel
            )));
        }
        Ok(())
    }

    /// Adds one image: z_s (K), f_s (C, original probabilities), g (N×C gated targets, gate-major:
    /// probabilities, logits or log-probabilities as `target` says).
    pub fn add_image(&mut self, gates: &GateSet, z_s: &[f32], f_s: &[f32], g: &[f32]) -> Result<()> {
        self.add_image_par(gates, z_s, f_s, g, Par::Seq)
    }

    /// [`Stats::add_image`] for each of a batch of images (z: B×K, f: B×C, g: B×N×C), the products
    /// spread over the threads; the same arithmetic, so the same statistics.
    pub fn add_images(&mut self, gates: &GateSet, z: &[f32], f: &[f32], g: &[f32]) -> Result<()> {
        let (k, c, n) = (self.channels, self.classes, gates.count);
        let images = if c == 0 { 0 } else { f.len() / c };
        if z.len() != images * k || f.len() != images * c || g.len() != images * n * c {
            return Err(Error::invalid(format!(
                "a batch of {images} images needs z {}×{k}, f {}×{c}, g {}×{n}×{c}; got {}, {}, {} values",
                images, images, images, z.len(), f.len(), g.len()
            )));
        }
        for i in 0..images {
            let par = Par::rayon(0);
            self.add_image_par(gates, &z[i * k..(i + 1) * k], &f[i * c..(i + 1) * c], &g[i * n * c..(i + 1) * n * c], par)?;
        }
        Ok(())
    }

    fn add_image_par(&mut self, gates: &GateSet, z_s: &[f32], f_s: &[f32], g: &[f32], par: Par) -> Result<()> {
        self.check_gates(gates)?;
        let (k, c, n) = (self.channels, self.classes, gates.count);
        if z_s.len() != k {
            return Err(Error::invalid(format!("z has {} values, expected {k} (channels)", z_s.len())));
        }
        if f_s.len() != c {
            return Err(Error::invalid(format!("f has {} values, expected {c} (classes)", f_s.len())));
        }
        if g.len() != n * c {
            return Err(Error::invalid(format!("g has {} values, expected {n}×{c} (gates × classes)", g.len())));
        }
        check_finite("pooled activations z", z_s)?;
        check_finite("original probabilities f", f_s)?;
        check_finite("gated probabilities g", g)?;

        // b_c += f_c z ⊙ Σ_n h_n g_{n,c} d_n for the loyal classes: one product Y (A×N) · O (N×K).
        let active: Vec<usize> = (0..c).filter(|&ci| f_s[ci] as f64 >= LOYALTY_TOL).collect();
        if !active.is_empty() && n > 0 && k > 0 {
            let mut y = vec![0.0f64; active.len() * n];
            for (a, &ci) in active.iter().enumerate() {
                let row = &mut y[a * n..(a + 1) * n];
                for (gn, v) in row.iter_mut().enumerate() {
                    *v = gates.proximity[gn] * g[gn * c + ci] as f64;
                }
            }
            let o = gates.open_f64();
            let mut r = vec![0.0f64; active.len() * k];
            faer::linalg::matmul::matmul(
                MatMut::from_row_major_slice_mut(&mut r, active.len(), k),
                Accum::Replace,
                MatRef::from_row_major_slice(&y, active.len(), n),
                MatRef::from_row_major_slice(&o, n, k),
                1.0,
                par,
            );
            for (a, &ci) in active.iter().enumerate() {
                let fc = f_s[ci] as f64;
                self.bg[ci] += fc * y[a * n..(a + 1) * n].iter().sum::<f64>();
                let brow = &mut self.b[ci * k..(ci + 1) * k];
                for ((bv, &rv), &zv) in brow.iter_mut().zip(&r[a * k..(a + 1) * k]).zip(z_s) {
                    *bv += fc * zv as f64 * rv;
                }
            }
        }
        self.z.extend(z_s.iter().map(|&x| x as f64));
        self.f.extend(f_s.iter().map(|&x| x as f64));
        self.images += 1;
        Ok(())
    }

    /// Adds the statistics of another shard (same model, layer, gate set, channels, classes, target,
    /// views and mosaics, else FitMismatch naming what differs). Nothing changes on failure.
    pub fn merge(&mut self, other: &Stats) -> Result<()> {
        if other.model_fingerprint != self.model_fingerprint {
            return Err(Error::FitMismatch(format!(
                "statistics of another model cannot be merged (model fingerprint {} vs {})",
                short(&other.model_fingerprint),
                short(&self.model_fingerprint)
            )));
        }
        if other.layer != self.layer {
            return Err(Error::FitMismatch(format!(
                "statistics of layer '{}' cannot be merged with statistics of layer '{}'",
                other.layer, self.layer
            )));
        }
        if other.preprocess != self.preprocess {
            return Err(Error::FitMismatch(format!(
                "statistics collected under another preprocessing cannot be merged ({})",
                preprocess_differences(&other.preprocess, &self.preprocess)
            )));
        }
        if other.channels != self.channels || other.classes != self.classes {
            return Err(Error::FitMismatch(format!(
                "statistics with {} channels × {} classes cannot be merged into {} channels × {} classes",
                other.channels, other.classes, self.channels, self.classes
            )));
        }
        if other.gate_count != self.gate_count
            || other.gate_seed != self.gate_seed
            || other.sigma2_rel.to_bits() != self.sigma2_rel.to_bits()
        {
            return Err(Error::FitMismatch(format!(
                "statistics gathered with another gate set (count {}, seed {}, sigma2_rel {} vs count {}, seed {}, sigma2_rel {})",
                other.gate_count, other.gate_seed, other.sigma2_rel, self.gate_count, self.gate_seed, self.sigma2_rel
            )));
        }
        if other.target != self.target {
            return Err(Error::FitMismatch(format!(
                "statistics of the {} target cannot be merged with statistics of the {} target",
                other.target.name(),
                self.target.name()
            )));
        }
        if (other.augment, other.mosaics) != (self.augment, self.mosaics) {
            return Err(Error::FitMismatch(format!(
                "statistics with {} views and {} mosaics per image cannot be merged with statistics with {} and {}",
                other.augment, other.mosaics, self.augment, self.mosaics
            )));
        }
        for (a, &b) in self.b.iter_mut().zip(&other.b) {
            *a += b;
        }
        for (a, &b) in self.bg.iter_mut().zip(&other.bg) {
            *a += b;
        }
        self.z.extend_from_slice(&other.z);
        self.f.extend_from_slice(&other.f);
        self.images += other.images;
        Ok(())
    }

    /// G_c = D ⊙ Σ_s f^c_s z_s z_sᵀ, K×K row-major.
    pub fn gram(&self, class: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.channels * self.channels];
        self.gram_into(class, &mut out);
        out
    }

    /// [`Stats::gram`] into a caller's K×K buffer (so a solver can reuse it across classes).
    pub fn gram_into(&self, class: usize, out: &mut [f64]) {
        let k = self.channels;
        assert!(class < self.classes && out.len() == k * k, "gram_into: class or buffer size out of range");
        // Σ_s f z zᵀ = Aᵀ A with rows sqrt(f_s) z_s, loyal images only.
        let mut a = Vec::with_capacity(self.images * k);
        let mut rows = 0;
        for s in 0..self.images {
            let f = self.f[s * self.classes + class];
            if f >= LOYALTY_TOL {
                let sf = f.sqrt();
                a.extend(self.z[s * k..(s + 1) * k].iter().map(|&x| sf * x));
                rows += 1;
            }
        }
        if rows == 0 {
            out.iter_mut().for_each(|x| *x = 0.0);
            return;
        }
        // The lower half only (a symmetric rank-`rows` update), then mirrored.
        let am = MatRef::from_row_major_slice(&a, rows, k);
        {
            use faer::linalg::matmul::triangular::{matmul, BlockStructure};
            matmul(
                MatMut::from_row_major_slice_mut(out, k, k),
                BlockStructure::TriangularLower,
                Accum::Replace,
                am.transpose(),
                BlockStructure::Rectangular,
                am,
                BlockStructure::Rectangular,
                1.0,
                Par::Seq,
            );
        }
        // ⊙ D on the lower half, mirrored to the upper half in tiles (D is symmetric).
        const T: usize = 32;
        for i0 in (0..k).step_by(T) {
            for j0 in (0..=i0).step_by(T) {
                for i in i0..(i0 + T).min(k) {
                    for j in j0..(j0 + T).min(i + 1) {
                        let v = out[i * k + j] * self.d[i * k + j];
                        out[i * k + j] = v;
                        out[j * k + i] = v;
                    }
                }
            }
        }
    }

    pub fn b_row(&self, class: usize) -> &[f64] { &self.b[class * self.channels..(class + 1) * self.channels] }

    /// Profiles an unpenalised intercept out of class `class`'s problem (G, b): with u, S, t as in the
    /// module docs, β = (t − w·u)/S at the optimum, and the problem in w alone becomes
    /// G − u uᵀ/S, b − u t/S (a Schur complement, still PSD). Returns β's parts (u, S, t) so the
    /// caller can recover it; S = 0 (no loyal image) leaves G and b as they are.
    pub fn profile_intercept(&self, class: usize, g: &mut [f64], b: &mut [f64]) -> (Vec<f64>, f64, f64) {
        let k = self.channels;
        let mut zf = vec![0.0; k];
        let mut fsum = 0.0;
        for s in 0..self.images {
            let f = self.f[s * self.classes + class];
            if f >= LOYALTY_TOL {
                fsum += f;
                zf.iter_mut().zip(&self.z[s * k..(s + 1) * k]).for_each(|(a, &z)| *a += f * z);
            }
        }
        let u: Vec<f64> = zf.iter().enumerate().map(|(j, &v)| v * self.d[j * k + j]).collect();
        let s_total = self.h_sum * fsum;
        let t = self.bg[class];
        if s_total > 0.0 {
            for i in 0..k {
                let ui = u[i] / s_total;
                b[i] -= ui * t;
                for (gv, &uj) in g[i * k..(i + 1) * k].iter_mut().zip(&u) {
                    *gv -= ui * uj;
                }
            }
        }
        (u, s_total, t)
    }

    /// Serialized form (see [`Stats::save`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.b.len() + self.z.len() + self.f.len() + self.d.len() + self.bg.len();
        let mut out = Vec::with_capacity(HEADER_LEN + 8 * n + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&STATS_FORMAT_VERSION.to_le_bytes());
        for v in [self.channels as u64, self.classes as u64, self.gate_count as u64, self.gate_seed] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.sigma2_rel.to_le_bytes());
        out.extend_from_slice(&(self.images as u64).to_le_bytes());
        out.extend_from_slice(&(target_code(self.target)).to_le_bytes());
        out.extend_from_slice(&self.h_sum.to_le_bytes());
        for v in [self.augment as u64, self.mosaics as u64] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for name in [&self.model_fingerprint, &self.layer, &self.preprocess] {
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        for arr in [&self.b, &self.z, &self.f, &self.d, &self.bg] {
            for v in arr.iter() {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        out
    }

    /// Parses [`Stats::to_bytes`]; `path` only names the source in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::FitFile { path: path.to_path_buf(), msg };
        if bytes.len() < MAGIC.len() + 4 {
            if !MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
                return Err(bad("not a libchip statistics file (bad magic)".into()));
            }
            return Err(bad(format!("truncated: {} bytes, shorter than the header", bytes.len())));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad("not a libchip statistics file (bad magic)".into()));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version > STATS_FORMAT_VERSION {
            return Err(Error::FitVersion { path: path.to_path_buf(), found: version, supported: STATS_FORMAT_VERSION });
        }
        if version < STATS_FORMAT_VERSION {
            return Err(bad(format!(
                "format version {version} is from an older libchip (this one reads version {STATS_FORMAT_VERSION}); collect the statistics again"
            )));
        }
        if bytes.len() < HEADER_LEN {
            return Err(bad(format!("truncated: {} bytes, shorter than the header", bytes.len())));
        }
        let u = |i: usize| u64::from_le_bytes(bytes[12 + 8 * i..20 + 8 * i].try_into().unwrap());
        let (channels, classes, gate_count, gate_seed) = (u(0), u(1), u(2), u(3));
        let sigma2_rel = f64::from_bits(u(4));
        let images = u(5);
        let target = target_from_code(u(6)).ok_or_else(|| bad(format!("unknown target code {}", u(6))))?;
        let h_sum = f64::from_bits(u(7));
        // The identity: two counts, then two length-prefixed UTF-8 strings.
        let mut pos = HEADER_LEN;
        let word = |pos: &mut usize| -> Result<u64> {
            let w = bytes.get(*pos..*pos + 8).ok_or_else(|| bad(format!("truncated: {} bytes, inside the header", bytes.len())))?;
            *pos += 8;
            Ok(u64::from_le_bytes(w.try_into().unwrap()))
        };
        let augment = word(&mut pos)?;
        let mosaics = word(&mut pos)?;
        let mut names = Vec::with_capacity(3);
        for what in ["model fingerprint", "layer name", "preprocessing spec"] {
            let len = word(&mut pos)?;
            if len > MAX_NAME {
                return Err(bad(format!("corrupt header ({what} of {len} bytes)")));
            }
            let raw = bytes
                .get(pos..pos + len as usize)
                .ok_or_else(|| bad(format!("truncated: {} bytes, inside the header", bytes.len())))?;
            pos += len as usize;
            names.push(String::from_utf8(raw.to_vec()).map_err(|_| bad(format!("corrupt header ({what} is not UTF-8)")))?);
        }
        let header_len = pos;
        // Checked arithmetic so a corrupt header cannot cause an overflow or a huge allocation.
        let sizes = (|| {
            let b = classes.checked_mul(channels)?;
            let z = images.checked_mul(channels)?;
            let f = images.checked_mul(classes)?;
            let d = channels.checked_mul(channels)?;
            let total = b.checked_add(z)?.checked_add(f)?.checked_add(d)?.checked_add(classes)?.checked_mul(8)?;
            let total = total.checked_add(header_len as u64 + 32)?;
            Some(([b, z, f, d, classes], total))
        })();
        let Some((counts, total)) = sizes else {
            return Err(bad("corrupt header (sizes overflow)".into()));
        };
        if (bytes.len() as u64) < total {
            return Err(bad(format!("truncated: {} bytes, expected {total}", bytes.len())));
        }
        if (bytes.len() as u64) > total {
            return Err(bad(format!("{} trailing bytes after the data", bytes.len() as u64 - total)));
        }
        let body = &bytes[..bytes.len() - 32];
        if Sha256::digest(body).as_slice() != &bytes[bytes.len() - 32..] {
            return Err(bad("checksum mismatch: the file was altered or is corrupt".into()));
        }
        let mut pos = header_len;
        let mut take = |count: u64| {
            let v: Vec<f64> = body[pos..pos + 8 * count as usize]
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                .collect();
            pos += 8 * count as usize;
            v
        };
        let b = take(counts[0]);
        let z = take(counts[1]);
        let f = take(counts[2]);
        let d = take(counts[3]);
        let bg = take(counts[4]);
        Stats {
            channels: channels as usize,
            classes: classes as usize,
            gate_count: gate_count as usize,
            gate_seed,
            sigma2_rel,
            target,
            preprocess: names.pop().unwrap_or_default(),
            layer: names.pop().unwrap_or_default(),
            model_fingerprint: names.pop().unwrap_or_default(),
            augment: augment as usize,
            mosaics: mosaics as usize,
            h_sum,
            images: images as usize,
            b,
            z,
            f,
            d,
            bg,
        }
        .validated(path)
    }

    /// `self` when its values can be used: a gate set of at least one gate, σ² and Σh positive and
    /// finite, Σh at most the gate count, every statistic finite. A file with a valid checksum may
    /// still hold these (written by hand or by a bug): refused at load, not solved into a fit that
    /// cannot be read back.
    fn validated(self, path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::FitFile { path: path.to_path_buf(), msg };
        if self.channels == 0 || self.classes == 0 {
            return Err(bad(format!("header describes empty statistics ({} channels, {} classes)", self.channels, self.classes)));
        }
        if self.gate_count == 0 {
            return Err(bad("header declares a gate set of 0 gates (statistics need at least 1)".into()));
        }
        if !(self.sigma2_rel.is_finite() && self.sigma2_rel > 0.0) {
            return Err(bad(format!("header holds sigma2_rel {:?}, which must be positive and finite", self.sigma2_rel)));
        }
        if !(self.h_sum.is_finite() && self.h_sum > 0.0 && self.h_sum <= self.gate_count as f64 * (1.0 + 1e-9)) {
            return Err(bad(format!(
                "header holds a gate-proximity sum of {:?}, which must be positive, finite and at most the {} gates",
                self.h_sum, self.gate_count
            )));
        }
        for (what, arr) in [("b", &self.b), ("z", &self.z), ("f", &self.f), ("d", &self.d), ("bg", &self.bg)] {
            if let Some(i) = arr.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!("{}: statistic {what} (element {i} is {})", path.display(), arr[i])));
            }
        }
        Ok(self)
    }

    /// Binary file with magic, version and SHA-256 checksum, written atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::util::atomic::write_atomic(path, &self.to_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::util::read::read_regular(path, crate::util::read::MAX_STATS_BYTES, "statistics file")?;
        Self::from_bytes(&bytes, path)
    }
}

/// The start of a fingerprint, enough to tell two apart in a message.
/// The keys in which two canonical preprocessing specs differ, one "key: a vs b" each (sorted by key),
/// for the messages that refuse a fit or statistics made under another preprocessing.
pub fn spec_differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (ao, bo) = (a.as_object().unwrap_or(&empty), b.as_object().unwrap_or(&empty));
    let mut keys: Vec<&String> = ao.keys().chain(bo.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&serde_json::Value>| v.map_or("(absent)".to_string(), |v| v.to_string());
    keys.into_iter()
        .filter(|k| ao.get(*k) != bo.get(*k))
        .map(|k| format!("{k}: {} vs {}", show(ao.get(k)), show(bo.get(k))))
        .collect()
}

/// [`spec_differences`] of two canonical specs as JSON text, joined for a message.
pub fn preprocess_differences(a: &str, b: &str) -> String {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or(serde_json::Value::Null);
    let diffs = spec_differences(&parse(a), &parse(b));
    if diffs.is_empty() { "a spec recorded against none".to_string() } else { diffs.join("; ") }
}

pub(crate) fn short(fingerprint: &str) -> &str {
    if fingerprint.is_empty() {
        "(none)"
    } else {
        fingerprint.get(..12).unwrap_or(fingerprint)
    }
}

fn target_code(t: Target) -> u64 {
    match t {
        Target::Probability => 0,
        Target::Logit => 1,
        Target::LogProbability => 2,
    }
}

fn target_from_code(c: u64) -> Option<Target> {
    Target::ALL.into_iter().find(|&t| target_code(t) == c)
}

#[cfg(test)]
mod tests;
