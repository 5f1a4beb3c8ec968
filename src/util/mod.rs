//! Helpers below every layer: atomic file writes, memory probing, the seeded RNG.
pub mod atomic;
pub mod mem;
pub mod panic;
pub mod read;
pub mod rng;
