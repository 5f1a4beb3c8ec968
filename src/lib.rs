//! libchip: CHIP (channel-wise disentangled interpretation) of image-classification CNNs on ONNX Runtime.
//!
//! Pure math (no ONNX Runtime): [`gates`], [`stats`], [`admm`], [`maps`], [`localize`], [`inspect`].
//! Graph surgery: [`onnx`]; test models: [`testmodels`]. Runtime: [`runtime`], [`model`], [`preprocess`].
//! Engine: [`fit`], [`fitfile`], [`explain`]. C ABI: [`ffi`].
//!
//! ```no_run
//! use chip::{explain::{ExplainOptions, Explainer}, fit::{self, FitOptions, Images}, model::Model};
//! use std::sync::Arc;
//!
//! # fn main() -> chip::Result<()> {
//! let model = Arc::new(Model::load("data/models/efficientnet_lite0.onnx".as_ref(), &Default::default())?);
//! let (_, head) = model.default_layers()?;
//! let fitted = fit::fit_layer(&model, &head.name, &Images::Dir("data/images/aib".into()),
//!                             &FitOptions::default(), &|_| true)?; // progress callback: false cancels
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
pub mod render;
pub mod ffi;

pub use error::{Error, Result};
