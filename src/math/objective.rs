//! What a fit regresses and how: the target of the per-class linear model, an unpenalised intercept,
//! and a sign constraint. [`Objective::PAPER`] is the CHIP paper's model as published; the default is
//! the variant chosen by the study in README.md ("Choosing the objective").
use crate::error::{Error, Result};

/// The per-class quantity that w_c·z_{s,n} (+ β_c) models under gating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The class probability g^c(X, d), as in the paper.
    #[default]
    Probability,
    /// The class logit (for a model that outputs probabilities: log g^c, the logit up to a per-row shift).
    Logit,
    /// log g^c(X, d) = logit − logsumexp(logits): the logit measured against the competing classes.
    LogProbability,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::Probability, Target::Logit, Target::LogProbability];

    pub fn name(self) -> &'static str {
        match self {
            Target::Probability => "probability",
            Target::Logit => "logit",
            Target::LogProbability => "log-probability",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Target::ALL.into_iter().find(|t| t.name() == s).ok_or_else(|| {
            Error::invalid(format!("unknown target '{s}' (expected probability, logit or log-probability)"))
        })
    }

    /// Turns one row of raw model outputs (`is_logits`: logits, else probabilities) into this target,
    /// for a softmax classifier.
    pub fn apply(self, row: &mut [f32], is_logits: bool) {
        self.apply_with(row, is_logits, Activation::Softmax)
    }

    /// [`Target::apply`] for either activation. With `Sigmoid` (multi-label) every class stands on its
    /// own: probability σ(x), logit x (from a probability p: ln(p / (1 − p))), log-probability
    /// log σ(x) = −ln(1 + e^−x) (from p: ln p).
    pub fn apply_with(self, row: &mut [f32], is_logits: bool, activation: Activation) {
        if activation == Activation::Sigmoid {
            let tiny = f32::MIN_POSITIVE;
            match (self, is_logits) {
                (Target::Probability, true) => row.iter_mut().for_each(|v| *v = sigmoid(*v)),
                (Target::Probability, false) | (Target::Logit, true) => {}
                (Target::Logit, false) => row.iter_mut().for_each(|p| {
                    let q = p.clamp(tiny, 1.0 - f32::EPSILON);
                    *p = (q / (1.0 - q)).ln()
                }),
                (Target::LogProbability, true) => row.iter_mut().for_each(|v| {
                    let x = *v as f64;
                    *v = (-(if x > 0.0 { (-x).exp().ln_1p() } else { -x + x.exp().ln_1p() })) as f32
                }),
                (Target::LogProbability, false) => row.iter_mut().for_each(|p| *p = p.max(tiny).ln()),
            }
            return;
        }
        match (self, is_logits) {
            (Target::Probability, true) => softmax(row),
            (Target::Probability, false) => {}
            (Target::Logit, true) => {}
            // log p ≥ log(f32::MIN_POSITIVE) so that a zero probability stays finite.
            (Target::Logit | Target::LogProbability, false) => {
                row.iter_mut().for_each(|p| *p = p.max(f32::MIN_POSITIVE).ln())
            }
            (Target::LogProbability, true) => {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let lse = max as f64 + row.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln();
                row.iter_mut().for_each(|v| *v = (*v as f64 - lse) as f32);
            }
        }
    }
}

/// The activation that turns a classifier's logits into probabilities: `softmax` (one class per
/// image) or `sigmoid` (multi-label: each class on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Softmax,
    Sigmoid,
}

/// The regression a fit solves per class c:
/// minimise ½ Σ h f^c (w_c·z + β_c − y^c)² + λ‖w_c‖₁ over w_c (and β_c when `intercept`),
/// with y^c the [`Target`] and w_c ≥ 0 when `nonneg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Objective {
    pub target: Target,
    /// An unpenalised per-class intercept β_c: the gated target has a baseline that w·z cannot express.
    pub intercept: bool,
    /// Constrain w ≥ 0 (only channels that raise the target count).
    pub nonneg: bool,
}

impl Objective {
    /// The CHIP paper's model: probability target, no intercept, no sign constraint.
    pub const PAPER: Objective = Objective { target: Target::Probability, intercept: false, nonneg: false };
    /// libchip's default, chosen on the development data (README.md, "Choosing the objective").
    pub const DEFAULT: Objective = Objective { target: Target::LogProbability, intercept: true, nonneg: false };

    /// Named presets: `default` and `paper`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "default" => Ok(Objective::DEFAULT),
            "paper" => Ok(Objective::PAPER),
            _ => Err(Error::invalid(format!("unknown objective '{name}' (expected default or paper)"))),
        }
    }

    /// A short description, e.g. `logit+intercept`.
    pub fn describe(&self) -> String {
        let mut s = self.target.name().to_string();
        if self.intercept {
            s += "+intercept";
        }
        if self.nonneg {
            s += "+nonneg";
        }
        s
    }
}

impl Default for Objective {
    fn default() -> Self { Objective::DEFAULT }
}

/// Files written before objectives existed hold the paper's model.
pub fn paper() -> Objective { Objective::PAPER }

/// Numerically stable softmax in place (the row maximum is subtracted first).
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let mut sum = 0f64;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// The logistic function 1 / (1 + e^−x), stable for large |x|.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
