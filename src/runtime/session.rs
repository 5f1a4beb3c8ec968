//! ONNX Runtime: finding and loading the shared library once, and sessions that many threads share.
use crate::error::{Error, Result};
use ort::environment::Environment;
use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use parking_lot::Mutex;
use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
    /// Intra-op threads per session (at most [`MAX_THREADS`]); 0 lets ONNX Runtime choose.
    pub threads: usize,
    /// The folder that external-data locations of the model's initializers are relative to: the
    /// model file's folder (set by `Model::load`, see [`RuntimeOptions::for_model_file`]). None:
    /// the model must hold all its weights.
    pub model_dir: Option<PathBuf>,
}

/// ONNX Runtime's session option for the folder of external initializers of a model given as bytes.
const EXTERNAL_DATA_FOLDER_KEY: &str = "session.model_external_initializers_file_folder_path";

impl RuntimeOptions {
    /// These options for the model file `path`: external data resolves against its folder (as an
    /// absolute path), never against the working directory.
    pub fn for_model_file(&self, path: &Path) -> RuntimeOptions {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        RuntimeOptions { model_dir: Some(dir), ..self.clone() }
    }
}

/// More intra-op threads than this is a mistake, not a setting (ONNX Runtime would try to start them).
pub const MAX_THREADS: usize = 1024;

/// Environment variable naming libonnxruntime.so (or its folder).
pub const ORT_LIB_ENV: &str = "CHIP_ORT_LIB";

/// Environment variable that, set to `1` when a session is created, lets ONNX Runtime's worker
/// threads spin (busy-wait) after a run. Off by default: the spinning threads hold the cores that
/// the map work after the run (and the caller's other threads) need, which costs more than the
/// wake-up latency saved; only worth it on cores dedicated to back-to-back runs.
pub const ORT_SPINNING_ENV: &str = "CHIP_ORT_SPINNING";

fn spinning() -> bool {
    std::env::var_os(ORT_SPINNING_ENV).is_some_and(|v| v == "1")
}

/// The loaded library's path and the process-wide ort environment; set once, never replaced.
struct Loaded {
    path: PathBuf,
    env: Environment,
}
static LOADED: OnceLock<Loaded> = OnceLock::new();
/// Serialises loading so two threads never race ort's own one-shot initialisation.
static LOADING: Mutex<()> = Mutex::new(());

/// Loads ONNX Runtime once per process. `explicit` alone when given; else `CHIP_ORT_LIB`, next to libchip
/// itself (dladdr), next to the executable, the project-local `third_party/onnxruntime/lib`.
/// Each candidate is checked with dlopen before ort is pointed at it. Returns the path in use.
/// Error::OrtNotFound lists every place tried. Later calls return the first path.
pub fn ensure_ort(explicit: Option<&Path>) -> Result<PathBuf> {
    Ok(loaded(explicit)?.path.clone())
}

fn loaded(explicit: Option<&Path>) -> Result<&'static Loaded> {
    if let Some(l) = LOADED.get() {
        return Ok(l);
    }
    let _guard = LOADING.lock();
    if let Some(l) = LOADED.get() {
        return Ok(l);
    }
    let places = ort_search_places(explicit);
    // A failure is not cached: a caller may retry with a correct path.
    let (path, env) = probe_places(&places, |lib| {
        let builder = ort::init_from(lib).map_err(|e| e.to_string())?;
        builder.with_name("chip").with_telemetry(false).build().map_err(|e| e.to_string())
    })?;
    tracing::info!("ONNX Runtime loaded from {}", path.display());
    Ok(LOADED.get_or_init(|| Loaded { path, env }))
}

/// The process-wide ort environment, loading ONNX Runtime with the default search when needed.
pub(crate) fn environment(explicit: Option<&Path>) -> Result<Environment> {
    Ok(loaded(explicit)?.env.clone())
}

/// The places `ensure_ort` searches, in order (files or folders; some may not exist). An explicit
/// path is the only place: its failure is the error, nothing else is tried.
pub fn ort_search_places(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    let mut places = Vec::new();
    if let Some(v) = std::env::var_os(ORT_LIB_ENV) {
        if !v.is_empty() {
            places.push(PathBuf::from(v));
        }
    }
    if let Some(dir) = own_library_dir() {
        places.push(dir);
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        places.push(dir);
    }
    places.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("third_party/onnxruntime/lib"));
    places.push(PathBuf::from("third_party/onnxruntime/lib"));
    let mut unique: Vec<PathBuf> = Vec::with_capacity(places.len());
    for p in places {
        if !unique.contains(&p) {
            unique.push(p);
        }
    }
    unique
}

/// Folder of the shared object this function lives in (libchip.so when loaded as a cdylib;
/// the executable itself when linked statically, which is harmless).
fn own_library_dir() -> Option<PathBuf> {
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let addr = own_library_dir as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables and fills `info`.
    let ok = unsafe { libc::dladdr(addr, &mut info) };
    if ok == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(std::ffi::OsStr::new(
        std::str::from_utf8(name.to_bytes()).ok()?,
    ));
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    path.parent().map(Path::to_path_buf)
}

/// Library files to try for one place: the file itself, or in a folder libonnxruntime.so,
/// libonnxruntime.so.1 and any other libonnxruntime.so.*. Err: why the place offers nothing.
fn library_files(place: &Path) -> std::result::Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(place).map_err(|e| format!("{} ({e})", place.display()))?;
    if !meta.is_dir() {
        return Ok(vec![place.to_path_buf()]);
    }
    let mut files = Vec::new();
    for name in ["libonnxruntime.so", "libonnxruntime.so.1"] {
        let f = place.join(name);
        if f.exists() {
            files.push(f);
        }
    }
    let mut versioned: Vec<PathBuf> = std::fs::read_dir(place)
        .map_err(|e| format!("{} ({e})", place.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("libonnxruntime.so.") && n != "libonnxruntime.so.1"
        })
        .map(|e| e.path())
        .collect();
    // Newest version first.
    versioned.sort();
    versioned.reverse();
    files.extend(versioned);
    if files.is_empty() {
        return Err(format!("{} (no libonnxruntime.so* in this folder)", place.display()));
    }
    Ok(files)
}

/// Checks that `file` loads with dlopen and exports ONNX Runtime's entry point.
fn check_library(file: &Path) -> std::result::Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(file.as_os_str().as_bytes()).map_err(|_| "path contains a NUL byte".to_string())?;
    // SAFETY: dlopen/dlsym/dlerror/dlclose with a valid C string; the handle is closed on failure only,
    // a good library stays open because ort opens it next anyway.
    unsafe {
        libc::dlerror();
        let handle = libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        if handle.is_null() {
            let err = libc::dlerror();
            let msg = if err.is_null() {
                "dlopen failed".to_string()
            } else {
                CStr::from_ptr(err).to_string_lossy().into_owned()
            };
            return Err(msg);
        }
        let sym = libc::dlsym(handle, c"OrtGetApiBase".as_ptr());
        if sym.is_null() {
            libc::dlclose(handle);
            return Err("loads, but does not export OrtGetApiBase (not ONNX Runtime)".to_string());
        }
    }
    Ok(())
}

/// Walks `places` in order; the first library file that passes the dlopen check and `accept` wins.
/// Otherwise Error::OrtNotFound lists every place and file tried with the reason it was skipped.
fn probe_places<T>(
    places: &[PathBuf],
    mut accept: impl FnMut(&Path) -> std::result::Result<T, String>,
) -> Result<(PathBuf, T)> {
    let mut tried: Vec<String> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for place in places {
        let files = match library_files(place) {
            Ok(f) => f,
            Err(why) => {
                tried.push(why);
                continue;
            }
        };
        for file in files {
            // Absolute, so ort never resolves it against the executable's folder instead.
            let file = std::path::absolute(&file).unwrap_or(file);
            let canon = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if seen.contains(&canon) {
                continue;
            }
            seen.push(canon);
            let result = check_library(&file).and_then(|()| accept(&file));
            match result {
                Ok(v) => return Ok((file, v)),
                Err(why) => tried.push(format!("{} ({why})", file.display())),
            }
        }
    }
    if tried.is_empty() {
        tried.push("no places to search".to_string());
    }
    Err(Error::OrtNotFound { tried: tried.join("; ") })
}

/// The library `ensure_ort` would pick among `places` (see `ort_search_places`), without
/// initialising ONNX Runtime: the first file that loads with dlopen and exports OrtGetApiBase.
pub fn find_ort_library(places: &[PathBuf]) -> Result<PathBuf> {
    probe_places(places, |_| Ok(())).map(|(p, ())| p)
}

/// Declared input or output of a session: name, element type and shape (-1 for open dimensions).
#[derive(Clone, Debug)]
struct Port {
    name: String,
    float: bool,
    shape: Option<Vec<i64>>,
}

fn ports(outlets: &[ort::value::Outlet]) -> Vec<Port> {
    outlets
        .iter()
        .map(|o| match o.dtype() {
            ValueType::Tensor { ty, shape, .. } => Port {
                name: o.name().to_string(),
                float: *ty == TensorElementType::Float32,
                // ORT reports a tensor of unknown rank with no dimensions; leave it unchecked.
                shape: if shape.is_empty() { None } else { Some(shape.iter().copied().collect()) },
            },
            _ => Port { name: o.name().to_string(), float: false, shape: None },
        })
        .collect()
}

/// A tensor of one of the element types [`Runner::run_tensors`] takes and gives: shape, values.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

/// A borrowed [`Tensor`]: shape, values.
#[derive(Clone, Copy, Debug)]
pub enum TensorView<'a> {
    F32(&'a [usize], &'a [f32]),
    I64(&'a [usize], &'a [i64]),
}

/// One ONNX model ready to run from many threads: a small pool of ort sessions (ort's run needs
/// `&mut`), created on demand.
pub struct Runner {
    bytes: Vec<u8>,
    options: RuntimeOptions,
    env: Environment,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Idle sessions; a caller takes one (or makes one) and puts it back after the run.
    pool: Mutex<Vec<Session>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("inputs", &self.input_names)
            .field("outputs", &self.output_names)
            .field("device", &self.options.device)
            .finish_non_exhaustive()
    }
}

impl Runner {
    pub fn new(model_bytes: Vec<u8>, options: &RuntimeOptions) -> Result<Self> {
        let env = environment(options.ort_lib.as_deref())?;
        let session = make_session(&env, &model_bytes, options)?;
        let inputs = ports(session.inputs());
        let outputs = ports(session.outputs());
        Ok(Runner {
            input_names: inputs.iter().map(|p| p.name.clone()).collect(),
            output_names: outputs.iter().map(|p| p.name.clone()).collect(),
            inputs,
            outputs,
            bytes: model_bytes,
            options: options.clone(),
            env,
            pool: Mutex::new(vec![session]),
        })
    }

    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Declared shape of an input or output (-1 for open dimensions), None for unknown names.
    pub fn declared_shape(&self, name: &str) -> Option<Vec<i64>> {
        self.inputs
            .iter()
            .chain(self.outputs.iter())
            .find(|p| p.name == name)
            .and_then(|p| p.shape.clone())
    }

    /// Runs with named f32 inputs (shape, data); returns every output as (shape, data) in
    /// output order. Shapes or names that do not fit give a clear error.
    pub fn run(&self, inputs: &[(&str, &[usize], &[f32])]) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
        self.check_inputs(inputs)?;
        let mut values = Vec::with_capacity(inputs.len());
        for (name, shape, data) in inputs {
            let t = TensorRef::from_array_view((shape.to_vec(), *data))?;
            values.push((name.to_string(), ort::session::SessionInputValue::from(t)));
        }
        let mut session = match self.pool.lock().pop() {
            Some(s) => s,
            None => make_session(&self.env, &self.bytes, &self.options)?,
        };
        let result = run_session(&mut session, values, &self.output_names);
        self.pool.lock().push(session);
        result
    }

    /// Runs with inputs of any of the [`Tensor`] types (an exported model's int64 class input, ...);
    /// returns every output in output order. Inputs are checked by ONNX Runtime only.
    pub fn run_tensors(&self, inputs: &[(&str, Tensor)]) -> Result<Vec<Tensor>> {
        let views: Vec<(&str, TensorView)> = inputs
            .iter()
            .map(|(name, t)| match t {
                Tensor::F32(shape, data) => (*name, TensorView::F32(shape, data)),
                Tensor::I64(shape, data) => (*name, TensorView::I64(shape, data)),
            })
            .collect();
        self.run_views(&views)
    }

    /// [`Runner::run_tensors`] with borrowed inputs (no copy of a large batch).
    pub fn run_views(&self, inputs: &[(&str, TensorView)]) -> Result<Vec<Tensor>> {
        let mut values = Vec::with_capacity(inputs.len());
        for (name, t) in inputs {
            let v = match *t {
                TensorView::F32(shape, data) => ort::session::SessionInputValue::from(TensorRef::from_array_view((shape.to_vec(), data))?),
                TensorView::I64(shape, data) => ort::session::SessionInputValue::from(TensorRef::from_array_view((shape.to_vec(), data))?),
            };
            values.push((name.to_string(), v));
        }
        let mut session = match self.pool.lock().pop() {
            Some(s) => s,
            None => make_session(&self.env, &self.bytes, &self.options)?,
        };
        let result = (|| {
            let outputs = session.run(values)?;
            let mut result = Vec::with_capacity(self.output_names.len());
            for name in &self.output_names {
                let value = outputs
                    .get(name)
                    .ok_or_else(|| Error::Ort(format!("output '{name}' missing from the run's results")))?;
                let dims = |s: &ort::value::Shape| s.iter().map(|&d| d.max(0) as usize).collect::<Vec<usize>>();
                if let Ok((shape, data)) = value.try_extract_tensor::<f32>() {
                    result.push(Tensor::F32(dims(shape), data.to_vec()));
                } else if let Ok((shape, data)) = value.try_extract_tensor::<i64>() {
                    result.push(Tensor::I64(dims(shape), data.to_vec()));
                } else {
                    return Err(Error::Ort(format!("output '{name}' is neither a float32 nor an int64 tensor")));
                }
            }
            Ok(result)
        })();
        self.pool.lock().push(session);
        result
    }

    fn check_inputs(&self, inputs: &[(&str, &[usize], &[f32])]) -> Result<()> {
        for (i, (name, _, _)) in inputs.iter().enumerate() {
            if inputs[..i].iter().any(|(n, _, _)| n == name) {
                return Err(Error::invalid(format!("input '{name}' given twice")));
            }
        }
        for port in &self.inputs {
            if !inputs.iter().any(|(n, _, _)| *n == port.name) {
                return Err(Error::invalid(format!(
                    "missing model input '{}' (model inputs: {})",
                    port.name,
                    self.input_names.join(", ")
                )));
            }
        }
        for (name, shape, data) in inputs {
            let port = self.inputs.iter().find(|p| p.name == *name).ok_or_else(|| {
                Error::invalid(format!("unknown input '{name}' (model inputs: {})", self.input_names.join(", ")))
            })?;
            if !port.float {
                return Err(Error::invalid(format!("input '{name}' is not a float32 tensor")));
            }
            if let Some(declared) = &port.shape {
                if declared.len() != shape.len() {
                    return Err(Error::invalid(format!(
                        "input '{name}' has rank {} (shape {shape:?}), the model expects rank {} (shape {})",
                        shape.len(),
                        declared.len(),
                        show_shape(declared)
                    )));
                }
                for (axis, (&d, &s)) in declared.iter().zip(shape.iter()).enumerate() {
                    if d >= 0 && d as usize != s {
                        return Err(Error::invalid(format!(
                            "input '{name}' has shape {shape:?}, the model expects {} (axis {axis}: {s} instead of {d})",
                            show_shape(declared)
                        )));
                    }
                }
            }
            let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if count != Some(data.len()) {
                return Err(Error::invalid(format!(
                    "input '{name}': shape {shape:?} needs {} values, {} given",
                    count.map_or_else(|| "too many".to_string(), |c| c.to_string()),
                    data.len()
                )));
            }
            if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite(format!("input '{name}' (value #{pos} is {})", data[pos])));
            }
        }
        Ok(())
    }
}

fn show_shape(shape: &[i64]) -> String {
    let dims: Vec<String> = shape.iter().map(|&d| if d < 0 { "?".to_string() } else { d.to_string() }).collect();
    format!("[{}]", dims.join(", "))
}

fn make_session(env: &Environment, bytes: &[u8], options: &RuntimeOptions) -> Result<Session> {
    let ort_err = |e: ort::Error<ort::session::builder::SessionBuilder>| Error::Ort(e.to_string());
    if options.threads > MAX_THREADS {
        return Err(Error::invalid(format!(
            "{} intra-op threads is too many (at most {MAX_THREADS}; 0 lets ONNX Runtime choose)",
            options.threads
        )));
    }
    let mut builder = Session::builder(env)?;
    if options.threads > 0 {
        builder = builder.with_intra_threads(options.threads).map_err(ort_err)?;
    }
    if let Some(dir) = &options.model_dir {
        let dir = dir.to_str().ok_or_else(|| Error::invalid(format!("the model's folder {} is not valid UTF-8", dir.display())))?;
        builder = builder.with_config_entry(EXTERNAL_DATA_FOLDER_KEY, dir).map_err(ort_err)?;
    }
    let spin = spinning();
    builder = builder.with_intra_op_spinning(spin).map_err(ort_err)?;
    builder = builder.with_inter_op_spinning(spin).map_err(ort_err)?;
    if let Device::Cuda(id) = options.device {
        // error_on_failure: a CPU-only ONNX Runtime must not silently run on the CPU.
        let cuda = ort::ep::CUDA::default().with_device_id(id).build().error_on_failure();
        builder = builder.with_execution_providers([cuda]).map_err(|e| {
            Error::Ort(format!("CUDA device {id} unavailable (needs ONNX Runtime built with CUDA): {e}"))
        })?;
    }
    // The binding panics on some shapes ONNX Runtime reports (a dimension below -1): an error, not a crash.
    // Quietly: the error below is the one message the caller sees.
    crate::util::panic::catch_quiet(|| builder.commit_from_memory(bytes))
        .map_err(|msg| Error::Ort(format!("cannot create a session for the model: {msg}")))?
        .map_err(|e| Error::Ort(format!("cannot create a session for the model: {e}")))
}

fn run_session(
    session: &mut Session,
    values: Vec<(String, ort::session::SessionInputValue<'_>)>,
    output_names: &[String],
) -> Result<Vec<(Vec<usize>, Vec<f32>)>> {
    let outputs = session.run(values)?;
    let mut result = Vec::with_capacity(output_names.len());
    for name in output_names {
        let value = outputs
            .get(name)
            .ok_or_else(|| Error::Ort(format!("output '{name}' missing from the run's results")))?;
        let (shape, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Ort(format!("output '{name}' is not a float32 tensor: {e}")))?;
        let shape: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        result.push((shape, data.to_vec()));
    }
    Ok(result)
}
