//! libchip: CHIP (channel-wise disentangled interpretation) of image-classification CNNs on ONNX Runtime.
//!
//! The layers, each a folder that uses only the ones above it in this list:
//! - [`util`]: atomic writes, memory probing, the seeded RNG; [`error`]: the one error type.
//! - [`math`]: pure math, no ONNX Runtime (gates, objective, statistics, ADMM, maps, localization).
//! - [`onnx`]: graph surgery on the protobuf (layers, augmented model, split, head, map nodes).
//! - [`runtime`]: ONNX Runtime sessions, the loaded [`Model`], preprocessing.
//! - [`engine`]: fit, fit files, explain, export, CAM, evaluation.
//! - [`ffi`]: the C ABI, which only converts and checks. The `chip` command line sits on top.
//!
//! The tests build small ONNX models with the dev-only workspace crate `crates/chip-testmodels`.
//!
//! ```no_run
//! use chip::{fit_layer, ExplainOptions, Explainer, FitOptions, Images, Model};
//! use std::sync::Arc;
//!
//! # fn main() -> chip::Result<()> {
//! let model = Arc::new(Model::load("data/models/efficientnet_lite0.onnx".as_ref(), &Default::default())?);
//! let (_, head) = model.default_layers()?;
//! let fitted = fit_layer(&model, &head.name, &Images::Dir("data/images/aib".into()),
//!                        &FitOptions::default(), &|_| true)?; // progress callback: false cancels
//! fitted.save("head.chip".as_ref())?;
//! let explainer = Explainer::new(model, vec![fitted])?;
//! let out = explainer.explain_files(&["photo.jpg".into()], &ExplainOptions::default())?;
//! println!("{:?}", out[0].classes[0].maps[0].bbox);
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod util;
pub mod math;
pub mod onnx;
pub mod runtime;
pub mod engine;
#[cfg(feature = "cli")]
pub mod render;
pub mod ffi;

pub use error::{Error, Result};
pub use engine::explain::{ExplainOptions, Explainer, ImageExplanation};
pub use engine::fit::{collect_stats, fit_layer, solve, FitOptions, Images};
pub use engine::fitfile::LayerFit;
pub use math::localize::BBox;
pub use runtime::model::Model;
pub use runtime::preprocess::{Prepared, Size};
pub use runtime::RuntimeOptions;
pub use math::stats::Stats;
