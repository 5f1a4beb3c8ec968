//! libchip: CHIP (channel-wise disentangled interpretation) of image-classification CNNs on ONNX Runtime.
//!
//! Pure math (no ONNX Runtime): [`gates`], [`stats`], [`admm`], [`maps`], [`localize`], [`inspect`].
//! Graph surgery: [`onnx`]; test models (feature `test-models`): `testmodels`.
//! Runtime: [`runtime`], [`model`], [`preprocess`].
//! Engine: [`fit`], [`fitfile`], [`explain`]. C ABI: [`ffi`].
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
pub mod augment;
pub mod gates;
pub mod objective;
pub mod stats;
pub mod admm;
pub mod maps;
pub mod localize;
pub mod inspect;
pub mod onnx;
pub mod head;
#[cfg(any(test, feature = "test-models"))]
pub mod testmodels;
pub mod runtime;
pub mod model;
pub mod preprocess;
pub mod fit;
pub mod fitfile;
pub mod explain;
pub mod export;
pub mod eval;
pub mod quality;
#[cfg(feature = "cli")]
pub mod render;
pub mod ffi;

pub use error::{Error, Result};
pub use explain::{ExplainOptions, Explainer, ImageExplanation};
pub use fit::{collect_stats, fit_layer, solve, FitOptions, Images};
pub use fitfile::LayerFit;
pub use localize::BBox;
pub use model::Model;
pub use preprocess::{Prepared, Size};
pub use runtime::RuntimeOptions;
pub use stats::Stats;
