//! ONNX Runtime: finding and loading the shared library once, and sessions that many threads share.
use crate::error::Result;
use std::path::{Path, PathBuf};

/// Where a session runs. CUDA needs an ONNX Runtime build with the CUDA provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuntimeOptions {
    /// Explicit path of libonnxruntime.so; first in the search order.
    pub ort_lib: Option<PathBuf>,
    pub device: Device,
    /// Intra-op threads per session; 0 lets ONNX Runtime choose.
    pub threads: usize,
}

/// Loads ONNX Runtime once per process. Search order: `explicit`, `CHIP_ORT_LIB`, next to libchip
/// itself (dladdr), next to the executable, the project-local `third_party/onnxruntime/lib`.
/// Each candidate is checked with dlopen before ort is pointed at it. Returns the path in use.
/// Error::OrtNotFound lists every place tried. Later calls return the first path.
pub fn ensure_ort(explicit: Option<&Path>) -> Result<PathBuf> { todo!() }

/// One ONNX model ready to run from many threads: a small pool of ort sessions (ort's run needs
/// `&mut`), created on demand.
pub struct Runner {
    // private fields chosen by the implementation
    _private: (),
}

impl Runner {
    pub fn new(model_bytes: Vec<u8>, options: &RuntimeOptions) -> Result<Self> { todo!() }
    pub fn input_names(&self) -> &[String] { todo!() }
    pub fn output_names(&self) -> &[String] { todo!() }
    /// Runs with named f32 inputs (shape, data); returns every output as (shape, data) in
    /// output order. Shapes or names that do not fit give a clear error.
    pub fn run(&self, inputs: &[(&str, &[usize], &[f32])]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> { todo!() }
}
