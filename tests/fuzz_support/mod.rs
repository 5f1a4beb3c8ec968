//! The fuzz harness: engine (mutations, corpus, crash capture) and targets.
// Shared by the test suite and the long-running driver, which each use only part of it.
#![allow(dead_code)]
pub mod capi;
pub mod engine;
pub mod targets;
