//! Plain value types shared by several concepts of the C ABI.
use crate::runtime::preprocess::Size;

/// A size in pixels. Thread safety: a plain struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct chip_size {
    pub width: u32,
    pub height: u32,
}

impl From<Size> for chip_size {
    fn from(s: Size) -> Self {
        chip_size { width: s.width, height: s.height }
    }
}
