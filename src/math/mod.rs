//! Pure math, testable without ONNX Runtime: gate sets and proximity, the regression objective,
//! additive sufficient statistics, the ADMM lasso solver, class maps, localization, augmentation
//! views and the inspection of a fitted W.
pub mod gates;
pub mod objective;
pub mod stats;
pub mod admm;
pub mod maps;
pub mod localize;
pub mod inspect;
pub mod augment;
