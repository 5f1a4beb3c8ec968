//! The `chip._chip` extension module: a thin layer over the chip crate. The Python side
//! (exceptions, `Size`, `Prepared`, `Explanation`, keyword arguments, tqdm) lives in python/chip.
use chip::runtime::model::Model;
use chip::runtime::{Device, RuntimeOptions};
use numpy::{PyArrayDescrMethods, PyArrayMethods, PyReadonlyArray4, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::path::PathBuf;
use std::sync::Arc;

mod explain;
mod fit;

/// Python class name and C status code of each error, as in include/chip.h.
fn error_class(e: &chip::Error) -> (&'static str, i32) {
    use chip::Error as E;
    match e {
        E::InvalidArgument(_) => ("InvalidArgumentError", 1),
        E::Io { .. } => ("IoError", 5),
        E::OrtNotFound { .. } => ("OrtNotFoundError", 6),
        E::Ort(_) => ("OrtError", 7),
        E::Model(_) => ("ModelError", 8),
        E::UnknownLayer { .. } => ("UnknownLayerError", 9),
        E::Image { .. } => ("ImageError", 10),
        E::FitFile { .. } => ("FitFileError", 11),
        E::FitVersion { .. } => ("FitVersionError", 12),
        E::FitMismatch(_) => ("FitMismatchError", 13),
        E::NonFinite(_) => ("NonFiniteError", 14),
        E::Cancelled => ("CancelledError", 15),
    }
}

/// An exception of chip._types by class name, carrying the message and the status.
pub(crate) fn raise(py: Python<'_>, class: &str, status: i32, msg: &str) -> PyErr {
    let made = py
        .import("chip._types")
        .and_then(|m| m.getattr(class))
        .and_then(|c| c.call1((msg, status)));
    match made {
        Ok(v) => PyErr::from_value(v),
        Err(e) => e,
    }
}

pub(crate) fn to_py(py: Python<'_>, e: chip::Error) -> PyErr {
    let (class, status) = error_class(&e);
    raise(py, class, status, &e.to_string())
}

pub(crate) fn invalid(py: Python<'_>, msg: impl AsRef<str>) -> PyErr {
    raise(py, "InvalidArgumentError", 1, &format!("invalid argument: {}", msg.as_ref()))
}

/// Runs library work without the GIL; a panic becomes chip.PanicError instead of unwinding into Python.
pub(crate) fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> chip::Result<T> + Send) -> PyResult<T> {
    let out = py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(py, e)),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(raise(py, "PanicError", 16, &format!("internal error (panic): {what}")))
        }
    }
}

/// `os.fspath(obj)` as a PathBuf (str, bytes-free path-likes).
pub(crate) fn fspath(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PathBuf> {
    let py = obj.py();
    let p = py
        .import("os")?
        .call_method1("fspath", (obj,))
        .map_err(|_| invalid(py, format!("{what}: expected a path (str or os.PathLike), got {}", type_name(obj))))?;
    let s = p
        .cast::<PyString>()
        .map_err(|_| invalid(py, format!("{what}: expected a str path, got a bytes path")))?;
    Ok(PathBuf::from(s.extract::<String>()?))
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A value of chip._types (Size, Layer, Prepared, Explanation) built from positional arguments.
pub(crate) fn make<'py, A: pyo3::call::PyCallArgs<'py>>(py: Python<'py>, class: &str, args: A) -> PyResult<Bound<'py, PyAny>> {
    py.import("chip._types")?.getattr(class)?.call1(args)
}

/// Images as Python passes them, kept alive (with their numpy borrow) while the library reads them.
pub(crate) enum ImagesArg<'py> {
    Dir(PathBuf),
    /// Image files.
    Files(Vec<PathBuf>),
    Encoded(Vec<Bound<'py, PyBytes>>),
    /// N×3×H×W float32, C-contiguous, with the original sizes when given as `chip.Prepared`.
    Tensor(PyReadonlyArray4<'py, f32>, Option<Vec<(u32, u32)>>),
}

/// A 4-D C-contiguous float32 array, or an error naming what differs.
pub(crate) fn tensor4<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray4<'py, f32>> {
    let py = obj.py();
    let arr = obj.cast::<PyUntypedArray>().map_err(|_| invalid(py, format!("{what}: expected a numpy array, got {}", type_name(obj))))?;
    let dtype = arr.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        return Err(invalid(py, format!("{what}: expected dtype float32, got {} (convert with .astype(numpy.float32))", dtype)));
    }
    if arr.ndim() != 4 {
        return Err(invalid(py, format!("{what}: expected 4 dimensions (N, 3, H, W), got shape {:?}", arr.shape())));
    }
    if !arr.is_c_contiguous() {
        return Err(invalid(py, format!("{what}: the array is not C-contiguous (use numpy.ascontiguousarray)")));
    }
    let typed = obj.cast::<numpy::PyArray4<f32>>().map_err(|_| invalid(py, format!("{what}: not a float32 array")))?;
    typed.try_readonly().map_err(|e| invalid(py, format!("{what}: {e}")))
}

impl<'py> ImagesArg<'py> {
    pub(crate) fn from_py(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let py = obj.py();
        if obj.cast::<PyUntypedArray>().is_ok() {
            return Ok(ImagesArg::Tensor(tensor4(obj, "images")?, None));
        }
        // chip.Prepared: preprocessed floats with their original sizes.
        if obj.hasattr("data")? && obj.hasattr("sizes")? && !obj.is_instance_of::<PyString>() {
            let data = tensor4(&obj.getattr("data")?, "Prepared.data")?;
            let sizes: Vec<(u32, u32)> = obj
                .getattr("sizes")?
                .try_iter()?
                .map(|s| s.and_then(|s| s.extract::<(u32, u32)>()))
                .collect::<PyResult<_>>()
                .map_err(|_| invalid(py, "Prepared.sizes: expected a list of (width, height)"))?;
            return Ok(ImagesArg::Tensor(data, Some(sizes)));
        }
        if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
            let items: Vec<Bound<'py, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
            if !items.is_empty() && items.iter().all(|i| i.is_instance_of::<PyBytes>()) {
                return Ok(ImagesArg::Encoded(items.into_iter().map(|i| i.cast_into::<PyBytes>().unwrap()).collect()));
            }
            let paths = items
                .iter()
                .enumerate()
                .map(|(i, p)| fspath(p, &format!("images[{i}]")))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(ImagesArg::Files(paths));
        }
        if obj.is_instance_of::<PyBytes>() {
            return Err(invalid(py, "images: a single bytes object; pass a list of encoded images"));
        }
        let p = fspath(obj, "images (a folder, a list file, a list of paths or encoded images, a float32 array or a chip.Prepared)")?;
        Ok(ImagesArg::Dir(p))
    }

    pub(crate) fn images(&self) -> PyResult<chip::engine::fit::Images<'_>> {
        use chip::engine::fit::Images;
        Ok(match self {
            ImagesArg::Dir(p) => Images::Dir(p.clone()),
            ImagesArg::Files(p) => Images::Files(p.clone()),
            ImagesArg::Encoded(b) => Images::Encoded(b.iter().map(|b| b.as_bytes()).collect()),
            ImagesArg::Tensor(a, _) => Images::Tensor { data: slice(a)?, n: a.shape()[0] },
        })
    }
}

pub(crate) fn slice<'a>(a: &'a PyReadonlyArray4<'_, f32>) -> PyResult<&'a [f32]> {
    a.as_slice().map_err(|e| invalid(a.py(), format!("images: {e}")))
}

fn parse_device(py: Python<'_>, s: &str) -> PyResult<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").and_then(|i| i.parse::<i32>().ok()) {
            Some(i) if i >= 0 => Ok(Device::Cuda(i)),
            _ => Err(invalid(py, format!("device '{s}' is not 'cpu', 'cuda' or 'cuda:N'"))),
        },
    }
}

/// A classifier loaded from an ONNX file (with its `<stem>.json` sidecar when present). Thread-safe.
#[pyclass(module = "chip._chip", name = "Model", frozen)]
pub struct PyModel {
    pub(crate) inner: Arc<Model>,
    path: PathBuf,
}

#[pymethods]
impl PyModel {
    #[new]
    #[pyo3(signature = (path, *, preprocess=None, ort_lib=None, device="cpu", threads=0))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        preprocess: Option<&Bound<'_, PyAny>>,
        ort_lib: Option<&Bound<'_, PyAny>>,
        device: &str,
        threads: usize,
    ) -> PyResult<Self> {
        let path = fspath(path, "path")?;
        let spec = preprocess.map(spec_arg).transpose()?;
        let ort_lib = ort_lib.map(|p| fspath(p, "ort_lib")).transpose()?;
        load_ort(py, ort_lib.clone())?;
        let options = RuntimeOptions { ort_lib, device: parse_device(py, device)?, threads, ..Default::default() };
        let p = path.clone();
        let inner = run(py, move || Model::load_with(&p, &options, spec.as_ref()))?;
        warn_assumed(py, &inner, &path)?;
        Ok(PyModel { inner: Arc::new(inner), path })
    }

    /// The effective preprocessing: {"spec": {...}, "sources": {key: "given" | "sidecar" | "graph" |
    /// "probe" | "assumed"}, "fingerprint": "..."}.
    #[getter]
    fn preprocess<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("json")?.call_method1("loads", (self.inner.spec.describe().to_string(),))
    }

    #[getter]
    fn path(&self) -> String { self.path.display().to_string() }
    /// SHA-256 of the model file (hex).
    #[getter]
    fn fingerprint(&self) -> &str { &self.inner.fingerprint }
    #[getter]
    fn classes(&self) -> usize { self.inner.classes }
    /// Input size as chip.Size(width, height).
    #[getter]
    fn input_size<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (w, h) = self.inner.input_size().as_usize();
        make(py, "Size", (w, h))
    }
    #[getter]
    fn labels(&self) -> Option<Vec<String>> { self.inner.labels.clone() }
    fn label(&self, class: usize) -> Option<String> { self.inner.label(class).map(str::to_string) }

    /// Candidate layers (chip.Layer), in graph order.
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let m = self.inner.clone();
        let layers = run(py, move || m.layers())?;
        layers.into_iter().map(|l| make(py, "Layer", (l.name, l.op_type, l.channels, l.height, l.width))).collect()
    }

    /// (stem, head): the first and the last candidate layer.
    fn default_layers<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let m = self.inner.clone();
        let (a, b) = run(py, move || m.default_layers())?;
        Ok((
            make(py, "Layer", (a.name, a.op_type, a.channels, a.height, a.width))?,
            make(py, "Layer", (b.name, b.op_type, b.channels, b.height, b.width))?,
        ))
    }

    /// Decodes and preprocesses images into (N×3×H×W float32, [(width, height)]).
    fn _preprocess<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Vec<(u32, u32)>)> {
        let arg = ImagesArg::from_py(images)?;
        let m = self.inner.clone();
        let prepared: Vec<chip::runtime::preprocess::Prepared> = match &arg {
            ImagesArg::Tensor(..) => return Err(invalid(py, "images are already preprocessed")),
            ImagesArg::Dir(p) => {
                let p = p.clone();
                run(py, move || {
                    let files = chip::engine::fit::list_images(&p)?;
                    files.iter().map(|f| m.preprocess.load(f)).collect()
                })?
            }
            ImagesArg::Files(p) => run(py, move || p.iter().map(|f| m.preprocess.load(f)).collect())?,
            ImagesArg::Encoded(b) => {
                let bufs: Vec<&[u8]> = b.iter().map(|b| b.as_bytes()).collect();
                run(py, move || bufs.iter().map(|b| m.preprocess.decode(b)).collect())?
            }
        };
        let (w, h) = self.inner.input_size().as_usize();
        let n = prepared.len();
        let mut data = Vec::with_capacity(n * 3 * h * w);
        let mut sizes = Vec::with_capacity(n);
        for p in prepared {
            data.extend_from_slice(&p.data);
            sizes.push((p.size.width, p.size.height));
        }
        Ok((array(py, data, &[n, 3, h, w])?, sizes))
    }

    /// Class probabilities (N×classes float32) of preprocessed images (N×3×H×W float32).
    fn predict<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let a = tensor4(images, "images")?;
        let n = a.shape()[0];
        let data = slice(&a)?;
        let m = self.inner.clone();
        let probs = run(py, move || m.predict(data, n))?;
        array(py, probs, &[n, self.inner.classes])
    }

    fn __repr__(&self) -> String {
        let (w, h) = self.inner.input_size().as_usize();
        format!("chip.Model('{}', input {}x{}, {} classes)", self.path.display(), w, h, self.inner.classes)
    }
}

/// The `preprocess=` argument: a dict (as JSON), a JSON object as a str, or the path of a .json file.
fn spec_arg(obj: &Bound<'_, PyAny>) -> PyResult<chip::runtime::spec::PreprocessSpec> {
    use chip::runtime::spec::PreprocessSpec;
    let py = obj.py();
    if obj.cast::<pyo3::types::PyDict>().is_ok() {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (obj,))
            .map_err(|e| invalid(py, format!("preprocess: the dict is not JSON-serialisable: {e}")))?
            .extract()?;
        return PreprocessSpec::from_json(&text).map_err(|e| to_py(py, e));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text: String = s.extract()?;
        if text.trim_start().starts_with('{') {
            return PreprocessSpec::from_json(&text).map_err(|e| to_py(py, e));
        }
    }
    if obj.cast::<PyString>().is_ok() || obj.hasattr("__fspath__")? {
        let path = fspath(obj, "preprocess")?;
        return PreprocessSpec::from_file(&path).map_err(|e| to_py(py, e));
    }
    Err(invalid(py, format!("preprocess: expected a dict, a JSON object as a str, or the path of a .json file, got {}", type_name(obj))))
}

/// `warnings.warn(..., chip.PreprocessWarning)` naming the keys nothing stated, as the CLI does.
fn warn_assumed(py: Python<'_>, model: &Model, path: &std::path::Path) -> PyResult<()> {
    let assumed = model.spec.assumed();
    if assumed.is_empty() {
        return Ok(());
    }
    let msg = format!(
        "{}: the preprocessing spec does not state {}; assumed {} (state {} with preprocess= or in {})",
        path.display(),
        if assumed.len() == 1 { "this key" } else { "these keys" },
        assumed.join(", "),
        if assumed.len() == 1 { "it" } else { "them" },
        path.with_extension("json").display()
    );
    let category = py.import("chip._types")?.getattr("PreprocessWarning")?;
    let msg = std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default();
    PyErr::warn(py, &category, &msg, 1)
}

/// A float32 numpy array that takes over `data` (no copy).
pub(crate) fn array<'py>(py: Python<'py>, data: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyAny>> {
    let a = numpy::ndarray::ArrayD::from_shape_vec(shape.to_vec(), data).map_err(|e| invalid(py, e.to_string()))?;
    Ok(numpy::IntoPyArray::into_pyarray(a, py).into_any())
}

/// Loads ONNX Runtime (once per process; later calls return the first path). Search order: `ort_lib`,
/// CHIP_ORT_LIB, next to this module, next to the executable, the project's third_party/onnxruntime/lib.
#[pyfunction]
#[pyo3(signature = (ort_lib=None))]
fn ensure_ort(py: Python<'_>, ort_lib: Option<&Bound<'_, PyAny>>) -> PyResult<String> {
    let p = ort_lib.map(|p| fspath(p, "ort_lib")).transpose()?;
    Ok(load_ort(py, p)?.display().to_string())
}

/// libchip's search, then (with no explicit path) the library of the `onnxruntime` PyPI wheel.
fn load_ort(py: Python<'_>, explicit: Option<PathBuf>) -> PyResult<PathBuf> {
    let e = explicit.clone();
    match py.detach(move || chip::runtime::ensure_ort(e.as_deref())) {
        Ok(p) => Ok(p),
        Err(err @ chip::Error::OrtNotFound { .. }) if explicit.is_none() => {
            let wheel: Option<String> = py.import("chip._types")?.call_method0("onnxruntime_wheel_lib")?.extract()?;
            match wheel {
                Some(w) => run(py, move || chip::runtime::ensure_ort(Some(std::path::Path::new(&w)))),
                None => Err(to_py(py, err)),
            }
        }
        Err(err) => Err(to_py(py, err)),
    }
}

/// The images of a folder (sorted image files) or a list file, as the fits read them.
#[pyfunction]
fn list_images(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let p = fspath(path, "path")?;
    let files = run(py, move || chip::engine::fit::list_images(&p))?;
    Ok(files.iter().map(|f| f.display().to_string()).collect())
}

#[pymodule]
fn _chip(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The chip crate's own version, which the C ABI reports too.
    let v = unsafe { std::ffi::CStr::from_ptr(chip::ffi::chip_version()) };
    m.add("LIBCHIP_VERSION", v.to_str().unwrap_or("?"))?;
    m.add_class::<PyModel>()?;
    m.add_function(wrap_pyfunction!(ensure_ort, m)?)?;
    m.add_function(wrap_pyfunction!(list_images, m)?)?;
    fit::register(m)?;
    explain::register(m)?;
    Ok(())
}
