//! The status codes: the enum (written out, since cbindgen reads the source rather than macro
//! output), one table of their descriptions, and the one mapping from `crate::Error`.
use crate::error::Error;
use std::ffi::{c_char, CStr};

/// Result of every fallible call. CHIP_STATUS_OK is 0; chip_last_error() describes any other.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum chip_status {
    CHIP_STATUS_OK = 0,
    /// A value out of range or inconsistent with the others (sizes, indices, options).
    CHIP_STATUS_INVALID_ARGUMENT = 1,
    /// A required pointer was NULL.
    CHIP_STATUS_NULL_POINTER = 2,
    /// A string (path, layer name) is not valid UTF-8.
    CHIP_STATUS_INVALID_UTF8 = 3,
    /// A caller buffer is too small; the required length was written to the `out_len` argument.
    CHIP_STATUS_BUFFER_TOO_SMALL = 4,
    /// Reading or writing a file failed.
    CHIP_STATUS_IO = 5,
    /// The ONNX Runtime shared library could not be found or loaded.
    CHIP_STATUS_ORT_NOT_FOUND = 6,
    /// ONNX Runtime reported an error.
    CHIP_STATUS_ORT = 7,
    /// The model is not a usable ONNX image classifier.
    CHIP_STATUS_MODEL = 8,
    /// The named layer is not a candidate layer of the model.
    CHIP_STATUS_UNKNOWN_LAYER = 9,
    /// An image could not be read, decoded or has an unusable size.
    CHIP_STATUS_IMAGE = 10,
    /// A fit or statistics file is truncated, altered or malformed.
    CHIP_STATUS_FIT_FILE = 11,
    /// A fit or statistics file was written by a newer format version.
    CHIP_STATUS_FIT_VERSION = 12,
    /// A fit or statistics belong to another model, layer, shape or gate set.
    CHIP_STATUS_FIT_MISMATCH = 13,
    /// Input or intermediate values are NaN or infinite.
    CHIP_STATUS_NON_FINITE = 14,
    /// The progress callback asked to stop.
    CHIP_STATUS_CANCELLED = 15,
    /// An internal error (a bug in libchip) was caught at the boundary.
    CHIP_STATUS_PANIC = 16,
}

use chip_status::*;

/// Every status with its description, in code order (a test checks that entry i has code i).
const STATUSES: [(chip_status, &CStr); 17] = [
    (CHIP_STATUS_OK, c"ok"),
    (CHIP_STATUS_INVALID_ARGUMENT, c"invalid argument"),
    (CHIP_STATUS_NULL_POINTER, c"null pointer"),
    (CHIP_STATUS_INVALID_UTF8, c"invalid UTF-8"),
    (CHIP_STATUS_BUFFER_TOO_SMALL, c"buffer too small"),
    (CHIP_STATUS_IO, c"I/O error"),
    (CHIP_STATUS_ORT_NOT_FOUND, c"ONNX Runtime not found"),
    (CHIP_STATUS_ORT, c"ONNX Runtime error"),
    (CHIP_STATUS_MODEL, c"invalid model"),
    (CHIP_STATUS_UNKNOWN_LAYER, c"unknown layer"),
    (CHIP_STATUS_IMAGE, c"image error"),
    (CHIP_STATUS_FIT_FILE, c"invalid fit file"),
    (CHIP_STATUS_FIT_VERSION, c"unsupported fit file version"),
    (CHIP_STATUS_FIT_MISMATCH, c"fit mismatch"),
    (CHIP_STATUS_NON_FINITE, c"non-finite value"),
    (CHIP_STATUS_CANCELLED, c"cancelled"),
    (CHIP_STATUS_PANIC, c"internal error (panic)"),
];

/// The status a library error is reported with.
pub(super) fn status_of(e: &Error) -> chip_status {
    match e {
        Error::InvalidArgument(_) => CHIP_STATUS_INVALID_ARGUMENT,
        Error::Io { .. } => CHIP_STATUS_IO,
        Error::OrtNotFound { .. } => CHIP_STATUS_ORT_NOT_FOUND,
        Error::Ort(_) => CHIP_STATUS_ORT,
        Error::Model(_) => CHIP_STATUS_MODEL,
        Error::UnknownLayer { .. } => CHIP_STATUS_UNKNOWN_LAYER,
        Error::Image { .. } => CHIP_STATUS_IMAGE,
        Error::FitFile { .. } => CHIP_STATUS_FIT_FILE,
        Error::FitVersion { .. } => CHIP_STATUS_FIT_VERSION,
        Error::FitMismatch(_) => CHIP_STATUS_FIT_MISMATCH,
        Error::NonFinite(_) => CHIP_STATUS_NON_FINITE,
        Error::Cancelled => CHIP_STATUS_CANCELLED,
    }
}

/// A static description of a status code.
/// \param status A chip_status value (any int is accepted).
/// \return Its description, or "unknown status" for a value that is not a chip_status. Never NULL.
#[no_mangle]
pub extern "C" fn chip_status_str(status: i32) -> *const c_char {
    let s = STATUSES.iter().find(|(c, _)| *c as i32 == status).map_or(c"unknown status", |(_, s)| *s);
    s.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_status_once_in_code_order() {
        for (i, (c, s)) in STATUSES.iter().enumerate() {
            assert_eq!(*c as i32, i as i32, "{s:?}");
        }
        assert_eq!(STATUSES.last().unwrap().0, CHIP_STATUS_PANIC);
    }

    #[test]
    fn every_error_variant_has_its_own_status() {
        let errors = [
            Error::invalid("x"),
            Error::io("p", std::io::Error::other("x")),
            Error::OrtNotFound { tried: "x".into() },
            Error::Ort("x".into()),
            Error::Model("x".into()),
            Error::UnknownLayer { name: "x".into(), candidates: "y".into() },
            Error::Image { what: "x".into(), msg: "y".into() },
            Error::FitFile { path: "p".into(), msg: "x".into() },
            Error::FitVersion { path: "p".into(), found: 2, supported: 1 },
            Error::FitMismatch("x".into()),
            Error::NonFinite("x".into()),
            Error::Cancelled,
        ];
        let mut codes: Vec<i32> = errors.iter().map(|e| status_of(e) as i32).collect();
        assert!(!codes.contains(&0));
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }
}
