//! Runtime: ONNX Runtime sessions ([`session`]), the loaded classifier ([`model`]) and image
//! preprocessing ([`preprocess`]).
pub mod session;
pub mod model;
pub mod preprocess;
pub mod spec;
mod decode_guard;

pub use session::*;
