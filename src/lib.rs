//! libchip: CHIP (channel-wise disentangled interpretation) of image-classification CNNs on ONNX Runtime.
//!
//! Pure math (no ONNX Runtime): [`gates`], [`stats`], [`admm`], [`maps`], [`localize`], [`inspect`].
//! Graph surgery: [`onnx`]; test models: [`testmodels`]. Runtime: [`runtime`], [`model`], [`preprocess`].
//! Engine: [`fit`], [`fitfile`], [`explain`]. C ABI: [`ffi`].

pub mod error;
pub mod gates;
pub mod stats;
pub mod admm;
pub mod maps;
pub mod localize;
pub mod inspect;
pub mod onnx;
pub mod testmodels;
pub mod runtime;
pub mod model;
pub mod preprocess;
pub mod fit;
pub mod fitfile;
pub mod explain;
pub mod render;
pub mod ffi;

pub use error::{Error, Result};
