//! The importance file (`.chip`): a fitted layer's W with everything needed to check that it belongs
//! to a model and layer. Layout: magic `CHIPFIT\0`, u32 version, u32 header length, JSON header,
//! W as little-endian f32 (C×K), SHA-256 of everything before it. Written atomically.
use crate::math::admm::AdmmParams;
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const MAGIC: &[u8; 8] = b"CHIPFIT\0";
/// Version 2 records the preprocessing spec the fit was made under.
pub const VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitMeta {
    pub layer: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: usize,
    /// SHA-256 (hex) of the model file the layer was fitted on.
    pub model_fingerprint: String,
    pub gates: usize,
    pub sigma2_rel: f64,
    pub seed: u64,
    pub images: usize,
    pub admm: AdmmParams,
    /// The regression that was solved (files without one hold the paper's).
    #[serde(default = "crate::math::objective::paper")]
    pub objective: crate::math::objective::Objective,
    /// Augmented views per image in the fit.
    #[serde(default)]
    pub augment: usize,
    /// 2×2 mosaics per image in the fit.
    #[serde(default)]
    pub mosaics: usize,
    /// Classes that were solved (rows of the others are zero).
    pub solved_classes: Vec<usize>,
    /// The canonical JSON of the model's effective preprocessing spec the fit was made under
    /// ([`crate::runtime::spec::Resolved::canonical`]); explaining or exporting under another is refused.
    #[serde(default)]
    pub preprocess: Option<serde_json::Value>,
}

/// A fitted layer: W is C×K row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFit {
    pub meta: FitMeta,
    pub weights: Vec<f32>,
}

/// Fixed part before the JSON header: magic, version, header length.
const PREFIX_LEN: usize = 16;
const CHECKSUM_LEN: usize = 32;
/// Generous bound on the JSON header, so a corrupt length cannot ask for absurd allocations.
const MAX_HEADER_LEN: usize = 64 << 20;

fn short_hash(h: &str) -> &str { &h[..h.len().min(12)] }

impl LayerFit {
    pub fn row(&self, class: usize) -> &[f32] { &self.weights[class * self.meta.channels..(class + 1) * self.meta.channels] }

    /// Whether the fit solved `class` (rows of unsolved classes are zero). An empty
    /// `solved_classes` means every class.
    pub fn is_solved(&self, class: usize) -> bool {
        class < self.meta.classes && (self.meta.solved_classes.is_empty() || self.meta.solved_classes.contains(&class))
    }

    /// The solved classes, ascending and distinct.
    pub fn solved(&self) -> Vec<usize> {
        let m = &self.meta;
        if m.solved_classes.is_empty() {
            return (0..m.classes).collect();
        }
        let mut solved = m.solved_classes.clone();
        solved.sort_unstable();
        solved.dedup();
        solved
    }

    fn check(&self) -> Result<()> {
        let m = &self.meta;
        let expected = m.classes.checked_mul(m.channels).ok_or_else(|| Error::invalid("fit: classes × channels overflows"))?;
        if self.weights.len() != expected {
            return Err(Error::invalid(format!(
                "fit of layer '{}': {} weights, expected classes × channels = {} × {} = {}",
                m.layer, self.weights.len(), m.classes, m.channels, expected
            )));
        }
        if let Some(i) = self.weights.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite(format!(
                "weights of layer '{}' (class {}, channel {})",
                m.layer, i / m.channels.max(1), i % m.channels.max(1)
            )));
        }
        Ok(())
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        let header = serde_json::to_vec(&self.meta).map_err(|e| Error::invalid(format!("fit header: {e}")))?;
        let mut out = Vec::with_capacity(PREFIX_LEN + header.len() + 4 * self.weights.len() + CHECKSUM_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for w in &self.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
        let digest = Sha256::digest(&out);
        out.extend_from_slice(&digest);
        Ok(out)
    }

    /// Each failure has its own message: bad magic, newer version (Error::FitVersion), truncated,
    /// checksum mismatch (altered), malformed header, size mismatch.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let err = |msg: String| Error::FitFile { path: path.to_path_buf(), msg };
        let len = bytes.len();
        if len < MAGIC.len() {
            return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
                err(format!("truncated: {len} bytes, a fit file has at least {}", PREFIX_LEN + CHECKSUM_LEN))
            } else {
                err("not a CHIP fit file (no CHIPFIT magic at the start)".into())
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(err("not a CHIP fit file (no CHIPFIT magic at the start)".into()));
        }
        if len < PREFIX_LEN {
            return Err(err(format!("truncated: {len} bytes, a fit file has at least {}", PREFIX_LEN + CHECKSUM_LEN)));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version > VERSION {
            return Err(Error::FitVersion { path: path.to_path_buf(), found: version, supported: VERSION });
        }
        if version == 0 {
            return Err(err("invalid format version 0".into()));
        }
        if version < VERSION {
            return Err(err(format!(
                "format version {version} is from an older libchip and records no preprocessing spec (this one reads version {VERSION}); fit again, or merge the statistics again"
            )));
        }
        let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
        if header_len > MAX_HEADER_LEN {
            return Err(err(format!("altered or corrupt: header length {header_len} is implausible")));
        }
        let min_len = PREFIX_LEN + header_len + CHECKSUM_LEN;
        if len < min_len {
            return Err(err(format!("truncated: expected at least {min_len} bytes (header of {header_len} bytes), found {len}")));
        }
        let header: std::result::Result<FitMeta, _> = serde_json::from_slice(&bytes[PREFIX_LEN..PREFIX_LEN + header_len]);
        // The length the header implies, when it parses: tells truncation apart from alteration.
        let expected_len = header.as_ref().ok().and_then(|m| {
            m.classes.checked_mul(m.channels)?.checked_mul(4)?.checked_add(min_len)
        });
        let body = len - CHECKSUM_LEN;
        let checksum_ok = Sha256::digest(&bytes[..body]).as_slice() == &bytes[body..];
        if !checksum_ok {
            if let Some(expected) = expected_len {
                if len < expected {
                    return Err(err(format!("truncated: expected {expected} bytes, found {len}")));
                }
            }
            return Err(err("altered or corrupt: SHA-256 checksum does not match the contents".into()));
        }
        let meta = header.map_err(|e| err(format!("malformed JSON header: {e}")))?;
        let expected = expected_len.ok_or_else(|| err(format!(
            "header declares an impossible size: {} classes × {} channels", meta.classes, meta.channels)))?;
        if len != expected {
            let found = (body - PREFIX_LEN - header_len) as f64 / 4.0;
            return Err(err(format!(
                "weights hold {found} values, expected classes × channels = {} × {} = {}",
                meta.classes, meta.channels, meta.classes * meta.channels
            )));
        }
        if meta.channels == 0 || meta.classes == 0 || meta.layer.is_empty() {
            return Err(err(format!(
                "header describes an empty fit (layer '{}', {} channels, {} classes)",
                meta.layer, meta.channels, meta.classes
            )));
        }
        if !meta.preprocess.as_ref().is_some_and(|p| p.is_object()) {
            return Err(err("header records no preprocessing spec (a version 2 fit has one)".into()));
        }
        if let Some(&c) = meta.solved_classes.iter().find(|&&c| c >= meta.classes) {
            return Err(err(format!("header lists solved class {c}, but there are only {} classes", meta.classes)));
        }
        let weights: Vec<f32> = bytes[PREFIX_LEN + header_len..body]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        if let Some(i) = weights.iter().position(|v| !v.is_finite()) {
            return Err(err(format!(
                "non-finite weight (class {}, channel {})",
                i / meta.channels, i % meta.channels
            )));
        }
        check_row_sums(&weights, meta.channels).map_err(err)?;
        Ok(LayerFit { meta, weights })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        crate::util::atomic::write_atomic(path, &bytes)
    }

    /// Reads a regular file no further than its header declares (see [`read_fit_bytes`]).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = read_fit_bytes(path)?;
        Self::from_bytes(&bytes, path)
    }

    /// Error::FitMismatch when the file was fitted on another model (fingerprint) or the layer is
    /// missing or has another shape in this model.
    pub fn check_against(&self, model: &crate::runtime::model::Model) -> Result<()> {
        let m = &self.meta;
        if m.model_fingerprint != model.fingerprint {
            return Err(Error::FitMismatch(format!(
                "the fit of layer '{}' was fitted on another model (fit: {}, this model: {})",
                m.layer,
                short_hash(&m.model_fingerprint),
                short_hash(&model.fingerprint)
            )));
        }
        let info = match model.layer(&m.layer) {
            Ok(info) => info,
            Err(Error::UnknownLayer { .. }) => {
                return Err(Error::FitMismatch(format!("layer '{}' of the fit does not exist in this model", m.layer)))
            }
            Err(e) => return Err(e),
        };
        if (info.channels, info.height, info.width) != (m.channels, m.height, m.width) {
            return Err(Error::FitMismatch(format!(
                "layer '{}' is {}×{}×{} in this model, the fit is for {}×{}×{}",
                m.layer, info.channels, info.height, info.width, m.channels, m.height, m.width
            )));
        }
        if m.classes != model.classes {
            return Err(Error::FitMismatch(format!(
                "the fit has {} classes, this model has {}",
                m.classes, model.classes
            )));
        }
        let here = model.spec.canonical();
        if let Some(theirs) = &m.preprocess {
            if *theirs != here {
                return Err(Error::FitMismatch(format!(
                    "the fit of layer '{}' was made under another preprocessing: {}; load the model with the spec the fit was made with (chip inspect --fit shows it)",
                    m.layer,
                    crate::runtime::spec::differences(theirs, &here).join("; ")
                )));
            }
        }
        Ok(())
    }
}

/// A class map is Σ_k W[c,k]·A_k in f32: a row whose Σ|W| is beyond the f32 range overflows for
/// any activation of magnitude 1 or more, so such weights (finite each, but not together) are
/// refused rather than explained as an all-zero map.
fn check_row_sums(weights: &[f32], channels: usize) -> std::result::Result<(), String> {
    for (c, row) in weights.chunks(channels.max(1)).enumerate() {
        let sum: f64 = row.iter().map(|&w| (w as f64).abs()).sum();
        if sum > f32::MAX as f64 {
            return Err(format!(
                "the weights of class {c} sum to {sum:.3e} in absolute value, beyond the float range: its maps cannot be finite"
            ));
        }
    }
    Ok(())
}

/// The bytes of the fit file at `path` (a regular file), read no further than its header declares:
/// 16 bytes of prefix, the header (at most 64 MiB), 4·C·K bytes of weights and the 32-byte checksum,
/// plus one byte to notice trailing data. What is wrong with them is for [`LayerFit::from_bytes`] to say.
pub fn read_fit_bytes(path: &Path) -> Result<Vec<u8>> {
    use crate::util::read::{open_regular, read_more};
    let (mut file, _) = open_regular(path, "fit file")?;
    let mut bytes = Vec::new();
    read_more(&mut file, PREFIX_LEN as u64, &mut bytes, path)?;
    if bytes.len() < PREFIX_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return Ok(bytes);
    }
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as u64;
    if header_len > MAX_HEADER_LEN as u64 {
        return Ok(bytes);
    }
    read_more(&mut file, header_len, &mut bytes, path)?;
    let weights = serde_json::from_slice::<FitMeta>(&bytes[PREFIX_LEN..])
        .ok()
        .and_then(|m| m.classes.checked_mul(m.channels)?.checked_mul(4))
        .unwrap_or(0) as u64;
    read_more(&mut file, weights.saturating_add(CHECKSUM_LEN as u64 + 1), &mut bytes, path)?;
    Ok(bytes)
}
