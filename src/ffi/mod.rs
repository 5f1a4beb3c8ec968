//! The C ABI: a thin layer that only converts and checks. See include/chip.h for the conventions
//! (status codes, thread-local last error, caller buffers with size queries, options structs that
//! begin with their own size, thread safety per handle type).
//!
//! Every exported function runs inside `boundary::guard`, which catches panics (CHIP_STATUS_PANIC)
//! and records the last error of the calling thread. Handles are `Box`es handed out by
//! `boundary::Out`. One file per concept: the boundary and status codes, options, models, image
//! descriptors, fits, sharded fits, explainers, explanations, boxes, export.
#![allow(non_camel_case_types)]
// The safety contract of every exported function is the one chip.h states for all of them (valid
// pointers or NULL, buffers of the given length, handles not freed while in use).
#![allow(clippy::missing_safety_doc)]

mod boundary;
mod explain;
mod explanation;
mod export;
mod fit;
mod images;
mod localize;
mod model;
mod options;
mod stats;
mod status;
mod types;

pub use explain::*;
pub use explanation::*;
pub use export::*;
pub use fit::*;
pub use images::*;
pub use localize::*;
pub use model::*;
pub use options::*;
pub use stats::*;
pub use status::*;
pub use types::*;

use std::ffi::c_char;

/// Version of the C ABI. Raised on any incompatible change; compare with chip_abi_version().
pub const CHIP_ABI_VERSION: u32 = 3;

/// The library version.
/// \return "MAJOR.MINOR.PATCH", equal to CHIP_VERSION_STRING of the header it was built with.
#[no_mangle]
pub extern "C" fn chip_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

/// The ABI version of the library.
/// \return The library's CHIP_ABI_VERSION; a program should check it equals the header's.
#[no_mangle]
pub extern "C" fn chip_abi_version() -> u32 {
    CHIP_ABI_VERSION
}

/// The message of the last failed call on the calling thread. The pointer stays valid until the
/// next libchip call on the same thread, except chip_version, chip_abi_version, chip_status_str and
/// chip_last_error, which leave it alone.
/// \return The message, "" after a successful call. Never NULL.
#[no_mangle]
pub extern "C" fn chip_last_error() -> *const c_char {
    boundary::last_error()
}
