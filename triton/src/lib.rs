//! Triton Inference Server backend `chip`: class probabilities, CHIP maps, Refined CHIP and boxes
//! for image classifiers, served from libchip's Rust API. See README.md for the model
//! configuration and deployment.
//!
//! Every entry point catches panics and turns them into errors; every request gets exactly one
//! response and is released.
mod api;
pub mod config;
pub mod engine;
pub mod request;

use api::*;
use config::{BackendConfig, OutputName};
use engine::{Engine, ItemResult, Job};
use chip::runtime::Device;
use std::sync::Mutex;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

type Failure = (TRITONSERVER_Error_Code, String);

fn new_error(code: TRITONSERVER_Error_Code, msg: &str) -> *mut TRITONSERVER_Error {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    unsafe { TRITONSERVER_ErrorNew(code, c.as_ptr()) }
}

/// Turns a Triton error into a message (and frees it).
fn check(err: *mut TRITONSERVER_Error, what: &str) -> Result<(), String> {
    if err.is_null() {
        return Ok(());
    }
    let msg = unsafe {
        let m = TRITONSERVER_ErrorMessage(err);
        let s = if m.is_null() { String::from("(no message)") } else { CStr::from_ptr(m).to_string_lossy().into_owned() };
        TRITONSERVER_ErrorDelete(err);
        s
    };
    Err(format!("{what}: {msg}"))
}

fn internal(what: &str) -> impl Fn(String) -> Failure + '_ {
    move |m| (ERROR_INTERNAL, format!("{what}: {m}"))
}

fn log(level: TRITONSERVER_LogLevel, msg: &str) {
    let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
    let err = unsafe { TRITONSERVER_LogMessage(level, c"triton_chip".as_ptr(), line!() as i32, c.as_ptr()) };
    if !err.is_null() {
        unsafe { TRITONSERVER_ErrorDelete(err) };
    }
}

unsafe fn c_str(p: *const c_char) -> String {
    if p.is_null() { String::new() } else { CStr::from_ptr(p).to_string_lossy().into_owned() }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs an entry point: errors become Triton errors, panics become internal errors.
fn guard(what: &str, f: impl FnOnce() -> Result<(), Failure>) -> *mut TRITONSERVER_Error {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err((code, msg))) => {
            log(LOG_ERROR, &msg);
            new_error(code, &msg)
        }
        Err(p) => {
            let msg = format!("{what}: internal error in the chip backend: {}", panic_message(p.as_ref()));
            log(LOG_ERROR, &msg);
            new_error(ERROR_INTERNAL, &msg)
        }
    }
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // Triton asks for steady-clock timestamps.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

struct ModelState {
    name: String,
    config: BackendConfig,
    /// Engines by device, shared by the instances on it.
    engines: Mutex<Vec<(Device, Arc<Engine>)>>,
}

struct InstanceState {
    name: String,
    engine: Arc<Engine>,
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Initialize(backend: *mut TRITONBACKEND_Backend) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_Initialize", || {
        let (mut major, mut minor) = (0u32, 0u32);
        check(unsafe { TRITONBACKEND_ApiVersion(&mut major, &mut minor) }, "TRITONBACKEND_ApiVersion").map_err(internal("backend initialization"))?;
        if major != BACKEND_API_VERSION_MAJOR || minor < BACKEND_API_VERSION_MINOR {
            return Err((
                ERROR_UNSUPPORTED,
                format!(
                    "the chip backend needs Triton backend API {BACKEND_API_VERSION_MAJOR}.{BACKEND_API_VERSION_MINOR} or a later {BACKEND_API_VERSION_MAJOR}.x; this server has {major}.{minor}"
                ),
            ));
        }
        let mut name = std::ptr::null();
        check(unsafe { TRITONBACKEND_BackendName(backend, &mut name) }, "TRITONBACKEND_BackendName").map_err(internal("backend initialization"))?;
        log(LOG_INFO, &format!("chip backend '{}' initialized (backend API {major}.{minor})", unsafe { c_str(name) }));
        Ok(())
    })
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_Finalize(_backend: *mut TRITONBACKEND_Backend) -> *mut TRITONSERVER_Error {
    std::ptr::null_mut()
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInitialize(model: *mut TRITONBACKEND_Model) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInitialize", || {
        let ctx = internal("model initialization");
        let mut name = std::ptr::null();
        check(unsafe { TRITONBACKEND_ModelName(model, &mut name) }, "TRITONBACKEND_ModelName").map_err(&ctx)?;
        let name = unsafe { c_str(name) };
        let mut version = 0u64;
        check(unsafe { TRITONBACKEND_ModelVersion(model, &mut version) }, "TRITONBACKEND_ModelVersion").map_err(&ctx)?;
        let mut artifact = 0;
        let mut location = std::ptr::null();
        check(unsafe { TRITONBACKEND_ModelRepository(model, &mut artifact, &mut location) }, "TRITONBACKEND_ModelRepository").map_err(&ctx)?;
        if artifact != ARTIFACT_FILESYSTEM {
            return Err((ERROR_UNSUPPORTED, format!("model '{name}': the chip backend reads models from the file system only")));
        }
        let version_dir = PathBuf::from(unsafe { c_str(location) }).join(version.to_string());

        let mut message = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_ModelConfig(model, MODEL_CONFIG_VERSION, &mut message) }, "TRITONBACKEND_ModelConfig").map_err(&ctx)?;
        let json = {
            let mut base = std::ptr::null();
            let mut size = 0usize;
            let r = check(unsafe { TRITONSERVER_MessageSerializeToJson(message, &mut base, &mut size) }, "TRITONSERVER_MessageSerializeToJson");
            let json = r.map(|()| unsafe { String::from_utf8_lossy(std::slice::from_raw_parts(base as *const u8, size)).into_owned() });
            let _ = check(unsafe { TRITONSERVER_MessageDelete(message) }, "TRITONSERVER_MessageDelete");
            json.map_err(&ctx)?
        };
        let config = BackendConfig::parse(&json, &version_dir)
            .map_err(|e| (ERROR_INVALID_ARG, format!("model '{name}': invalid configuration: {e}")))?;
        log(
            LOG_INFO,
            &format!(
                "model '{name}' version {version}: model file {}, {} fit file(s), max_batch_size {}",
                config.model_file.display(),
                config.fit_files.len(),
                config.max_batch_size
            ),
        );
        let state = Box::new(ModelState { name, config, engines: Mutex::new(Vec::new()) });
        let raw = Box::into_raw(state);
        if let Err(e) = check(unsafe { TRITONBACKEND_ModelSetState(model, raw as *mut c_void) }, "TRITONBACKEND_ModelSetState") {
            drop(unsafe { Box::from_raw(raw) });
            return Err(ctx(e));
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelFinalize(model: *mut TRITONBACKEND_Model) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelFinalize", || {
        let mut state = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_ModelState(model, &mut state) }, "TRITONBACKEND_ModelState").map_err(internal("model finalization"))?;
        if !state.is_null() {
            let state = unsafe { Box::from_raw(state as *mut ModelState) };
            log(LOG_INFO, &format!("model '{}' finalized", state.name));
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceInitialize(instance: *mut TRITONBACKEND_ModelInstance) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInstanceInitialize", || {
        let ctx = internal("model instance initialization");
        let mut name = std::ptr::null();
        check(unsafe { TRITONBACKEND_ModelInstanceName(instance, &mut name) }, "TRITONBACKEND_ModelInstanceName").map_err(&ctx)?;
        let name = unsafe { c_str(name) };
        let mut kind = 0;
        check(unsafe { TRITONBACKEND_ModelInstanceKind(instance, &mut kind) }, "TRITONBACKEND_ModelInstanceKind").map_err(&ctx)?;
        let mut device_id = 0i32;
        check(unsafe { TRITONBACKEND_ModelInstanceDeviceId(instance, &mut device_id) }, "TRITONBACKEND_ModelInstanceDeviceId").map_err(&ctx)?;
        let device = match kind {
            INSTANCEGROUPKIND_GPU => Device::Cuda(device_id),
            _ => Device::Cpu,
        };
        let mut model = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_ModelInstanceModel(instance, &mut model) }, "TRITONBACKEND_ModelInstanceModel").map_err(&ctx)?;
        let mut state = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_ModelState(model, &mut state) }, "TRITONBACKEND_ModelState").map_err(&ctx)?;
        if state.is_null() {
            return Err((ERROR_INTERNAL, "model instance initialization: the model has no state".into()));
        }
        let model_state = unsafe { &*(state as *const ModelState) };

        let engine = {
            let mut engines = model_state.engines.lock().unwrap_or_else(|p| p.into_inner());
            match engines.iter().find(|(d, _)| *d == device) {
                Some((_, e)) => e.clone(),
                None => {
                    let e = Engine::load(model_state.config.clone(), device)
                        .map_err(|e| (ERROR_INVALID_ARG, format!("model '{}' ({device:?}): {e}", model_state.name)))?;
                    let e = Arc::new(e);
                    engines.push((device, e.clone()));
                    e
                }
            }
        };
        log(
            LOG_INFO,
            &format!("instance '{name}' of model '{}' ready on {device:?} (ONNX Runtime {})", model_state.name, engine.ort_lib.display()),
        );
        let assumed = engine.model.spec.assumed();
        if !assumed.is_empty() {
            log(
                LOG_WARN,
                &format!(
                    "model '{}': the preprocessing spec does not state {}; assumed {} (state {} in parameter preprocess or in {})",
                    model_state.name,
                    if assumed.len() == 1 { "this key" } else { "these keys" },
                    assumed.join(", "),
                    if assumed.len() == 1 { "it" } else { "them" },
                    model_state.config.model_file.with_extension("json").display()
                ),
            );
        }
        let raw = Box::into_raw(Box::new(InstanceState { name, engine }));
        if let Err(e) = check(unsafe { TRITONBACKEND_ModelInstanceSetState(instance, raw as *mut c_void) }, "TRITONBACKEND_ModelInstanceSetState") {
            drop(unsafe { Box::from_raw(raw) });
            return Err(ctx(e));
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceFinalize(instance: *mut TRITONBACKEND_ModelInstance) -> *mut TRITONSERVER_Error {
    guard("TRITONBACKEND_ModelInstanceFinalize", || {
        let mut state = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_ModelInstanceState(instance, &mut state) }, "TRITONBACKEND_ModelInstanceState")
            .map_err(internal("model instance finalization"))?;
        if !state.is_null() {
            let state = unsafe { Box::from_raw(state as *mut InstanceState) };
            log(LOG_VERBOSE, &format!("instance '{}' finalized", state.name));
        }
        Ok(())
    })
}

/// # Safety
/// Called by Triton with handles that are valid for the call.
#[no_mangle]
pub unsafe extern "C" fn TRITONBACKEND_ModelInstanceExecute(
    instance: *mut TRITONBACKEND_ModelInstance,
    requests: *mut *mut TRITONBACKEND_Request,
    request_count: u32,
) -> *mut TRITONSERVER_Error {
    if requests.is_null() || request_count == 0 {
        return std::ptr::null_mut();
    }
    // Copied out: Triton owns the array, the backend owns the requests from here on.
    let requests: Vec<*mut TRITONBACKEND_Request> = unsafe { std::slice::from_raw_parts(requests, request_count as usize) }.to_vec();
    let mut released = vec![false; requests.len()];
    let outcome = catch_unwind(AssertUnwindSafe(|| execute(instance, &requests, &mut released)));
    let msg = match outcome {
        Ok(Ok(())) => return std::ptr::null_mut(),
        Ok(Err(m)) => m,
        Err(p) => format!("internal error in the chip backend: {}", panic_message(p.as_ref())),
    };
    log(LOG_ERROR, &msg);
    for (i, &r) in requests.iter().enumerate() {
        if !released[i] {
            respond_error(r, ERROR_INTERNAL, &msg);
            release(r);
        }
    }
    std::ptr::null_mut()
}

fn release(request: *mut TRITONBACKEND_Request) {
    if let Err(e) = check(unsafe { TRITONBACKEND_RequestRelease(request, REQUEST_RELEASE_ALL) }, "TRITONBACKEND_RequestRelease") {
        log(LOG_ERROR, &e);
    }
}

/// Sends an error as the request's one response.
fn respond_error(request: *mut TRITONBACKEND_Request, code: TRITONSERVER_Error_Code, msg: &str) {
    let mut response = std::ptr::null_mut();
    if let Err(e) = check(unsafe { TRITONBACKEND_ResponseNew(&mut response, request) }, "TRITONBACKEND_ResponseNew") {
        log(LOG_ERROR, &e);
        return;
    }
    let err = new_error(code, msg);
    if let Err(e) = check(unsafe { TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, err) }, "TRITONBACKEND_ResponseSend") {
        log(LOG_ERROR, &e);
    }
    unsafe { TRITONSERVER_ErrorDelete(err) };
}

fn execute(instance: *mut TRITONBACKEND_ModelInstance, requests: &[*mut TRITONBACKEND_Request], released: &mut [bool]) -> Result<(), String> {
    let exec_start = now_ns();
    let mut state = std::ptr::null_mut();
    check(unsafe { TRITONBACKEND_ModelInstanceState(instance, &mut state) }, "TRITONBACKEND_ModelInstanceState")?;
    if state.is_null() {
        return Err("the model instance has no state".into());
    }
    let inst = unsafe { &*(state as *const InstanceState) };
    let engine = &*inst.engine;

    let parsed: Vec<Result<Job, String>> = requests
        .iter()
        .map(|&r| catch_unwind(AssertUnwindSafe(|| parse_request(engine, r))).unwrap_or_else(|p| Err(format!("internal error in the chip backend: {}", panic_message(p.as_ref())))))
        .collect();
    let compute_start = now_ns();
    let jobs: Vec<&Job> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut results = engine.run(&jobs).into_iter();
    let compute_end = now_ns();

    let mut batch_images = 0u64;
    for (i, (&request, job)) in requests.iter().zip(&parsed).enumerate() {
        let ok = match job {
            Err(msg) => {
                respond_error(request, ERROR_INVALID_ARG, msg);
                false
            }
            Ok(job) => match results.next() {
                Some(Ok(items)) => match send_outputs(engine, request, job, &items) {
                    Ok(()) => {
                        batch_images += job.n as u64;
                        true
                    }
                    Err(msg) => {
                        log(LOG_ERROR, &msg);
                        false
                    }
                },
                Some(Err(msg)) => {
                    respond_error(request, ERROR_INTERNAL, &msg);
                    false
                }
                None => {
                    respond_error(request, ERROR_INTERNAL, "internal error: no result for the request");
                    false
                }
            },
        };
        let exec_end = now_ns();
        let _ = check(
            unsafe { TRITONBACKEND_ModelInstanceReportStatistics(instance, request, ok, exec_start, compute_start, compute_end, exec_end) },
            "TRITONBACKEND_ModelInstanceReportStatistics",
        )
        .map_err(|e| log(LOG_WARN, &e));
        release(request);
        released[i] = true;
    }
    if batch_images > 0 {
        let _ = check(
            unsafe { TRITONBACKEND_ModelInstanceReportBatchStatistics(instance, batch_images, exec_start, compute_start, compute_end, now_ns()) },
            "TRITONBACKEND_ModelInstanceReportBatchStatistics",
        )
        .map_err(|e| log(LOG_WARN, &e));
    }
    Ok(())
}

struct RawInput {
    name: String,
    data_type: TRITONSERVER_DataType,
    shape: Vec<i64>,
    bytes: Vec<u8>,
}

fn read_inputs(request: *mut TRITONBACKEND_Request) -> Result<Vec<RawInput>, String> {
    let mut count = 0u32;
    check(unsafe { TRITONBACKEND_RequestInputCount(request, &mut count) }, "TRITONBACKEND_RequestInputCount")?;
    let mut inputs = Vec::with_capacity(count as usize);
    for index in 0..count {
        let mut input = std::ptr::null_mut();
        check(unsafe { TRITONBACKEND_RequestInputByIndex(request, index, &mut input) }, "TRITONBACKEND_RequestInputByIndex")?;
        let (mut name, mut data_type, mut shape, mut dims, mut byte_size, mut buffers) =
            (std::ptr::null(), 0, std::ptr::null(), 0u32, 0u64, 0u32);
        check(
            unsafe { TRITONBACKEND_InputProperties(input, &mut name, &mut data_type, &mut shape, &mut dims, &mut byte_size, &mut buffers) },
            "TRITONBACKEND_InputProperties",
        )?;
        let name = unsafe { c_str(name) };
        let shape = if dims == 0 || shape.is_null() { Vec::new() } else { unsafe { std::slice::from_raw_parts(shape, dims as usize) }.to_vec() };
        let mut bytes = Vec::with_capacity(byte_size as usize);
        for b in 0..buffers {
            let (mut ptr, mut size, mut memory, mut memory_id) = (std::ptr::null(), 0u64, MEMORY_CPU, 0i64);
            check(unsafe { TRITONBACKEND_InputBuffer(input, b, &mut ptr, &mut size, &mut memory, &mut memory_id) }, "TRITONBACKEND_InputBuffer")?;
            if memory == MEMORY_GPU {
                return Err(format!("input {name} is in GPU memory; the chip backend reads inputs from CPU memory"));
            }
            if size > 0 {
                bytes.extend_from_slice(unsafe { std::slice::from_raw_parts(ptr as *const u8, size as usize) });
            }
        }
        inputs.push(RawInput { name, data_type, shape, bytes });
    }
    Ok(inputs)
}

fn requested_outputs(request: *mut TRITONBACKEND_Request, config: &BackendConfig) -> Result<Vec<OutputName>, String> {
    let mut count = 0u32;
    check(unsafe { TRITONBACKEND_RequestOutputCount(request, &mut count) }, "TRITONBACKEND_RequestOutputCount")?;
    let mut outputs = Vec::with_capacity(count as usize);
    for index in 0..count {
        let mut name = std::ptr::null();
        check(unsafe { TRITONBACKEND_RequestOutputName(request, index, &mut name) }, "TRITONBACKEND_RequestOutputName")?;
        let name = unsafe { c_str(name) };
        let out = OutputName::parse(&name)
            .filter(|o| config.output(*o).is_some())
            .ok_or_else(|| format!("unknown output '{name}'"))?;
        if !outputs.contains(&out) {
            outputs.push(out);
        }
    }
    Ok(outputs)
}

fn type_name(t: TRITONSERVER_DataType) -> &'static str {
    match t {
        TYPE_BOOL => "BOOL",
        TYPE_UINT8 => "UINT8",
        TYPE_UINT16 => "UINT16",
        TYPE_UINT32 => "UINT32",
        TYPE_UINT64 => "UINT64",
        TYPE_INT8 => "INT8",
        TYPE_INT16 => "INT16",
        TYPE_INT32 => "INT32",
        TYPE_INT64 => "INT64",
        TYPE_FP16 => "FP16",
        TYPE_FP32 => "FP32",
        TYPE_FP64 => "FP64",
        TYPE_BYTES => "BYTES",
        TYPE_BF16 => "BF16",
        _ => "INVALID",
    }
}

fn expect_type(input: &RawInput, want: TRITONSERVER_DataType) -> Result<(), String> {
    if input.data_type != want {
        return Err(format!("input {} has data type {}, expected {}", input.name, type_name(input.data_type), type_name(want)));
    }
    Ok(())
}

/// Reads and checks one request's inputs into a job.
fn parse_request(engine: &Engine, request: *mut TRITONBACKEND_Request) -> Result<Job, String> {
    let config = &engine.config;
    let batching = config.max_batch_size > 0;
    let inputs = read_inputs(request)?;
    let outputs = requested_outputs(request, config)?;
    let mut image = None;
    let mut image_bytes = None;
    let mut class = None;
    for input in &inputs {
        match input.name.as_str() {
            config::IMAGE if config.image.is_some() => image = Some(input),
            config::IMAGE_BYTES if config.image_bytes.is_some() => image_bytes = Some(input),
            config::CLASS if config.class.is_some() => class = Some(input),
            other => return Err(format!("unexpected input '{other}'")),
        }
    }
    let (images, n) = match (image, image_bytes) {
        (Some(_), Some(_)) => return Err(format!("send either {} or {}, not both", config::IMAGE, config::IMAGE_BYTES)),
        (None, None) => return Err(format!("the request has no image: send {} or {}", config::IMAGE, config::IMAGE_BYTES)),
        (Some(t), None) => {
            expect_type(t, TYPE_FP32)?;
            let (w, h) = engine.model.input_size().as_usize();
            let n = request::batch_size(&t.name, &t.shape, batching, &[3, h as i64, w as i64])?;
            let data = request::f32s(&t.name, &t.bytes, n * engine.image_len())?;
            engine.check_tensor(&data, n)?;
            (data, n)
        }
        (None, Some(t)) => {
            expect_type(t, TYPE_BYTES)?;
            let n = request::batch_size(&t.name, &t.shape, batching, &[1])?;
            let elements = request::bytes_elements(&t.name, &t.bytes, n)?;
            (engine.decode(&elements)?, n)
        }
    };
    let classes = match class {
        None => vec![None; n],
        Some(t) => {
            expect_type(t, TYPE_INT32)?;
            let nc = request::batch_size(&t.name, &t.shape, batching, &[1])?;
            if nc != n {
                return Err(format!("input CLASS holds {nc} values for {n} image(s)"));
            }
            request::i32s(&t.name, &t.bytes, n)?.into_iter().map(|v| engine.class_of(v)).collect::<Result<_, _>>()?
        }
    };
    Ok(Job { images, n, classes, outputs })
}

/// Creates the response, fills the requested outputs and sends it; on failure sends the error.
fn send_outputs(engine: &Engine, request: *mut TRITONBACKEND_Request, job: &Job, items: &[ItemResult]) -> Result<(), String> {
    let mut response = std::ptr::null_mut();
    check(unsafe { TRITONBACKEND_ResponseNew(&mut response, request) }, "TRITONBACKEND_ResponseNew")?;
    let filled = fill_outputs(engine, response, job, items);
    let err = match &filled {
        Ok(()) => std::ptr::null_mut(),
        Err(msg) => new_error(ERROR_INTERNAL, msg),
    };
    let sent = check(unsafe { TRITONBACKEND_ResponseSend(response, RESPONSE_COMPLETE_FINAL, err) }, "TRITONBACKEND_ResponseSend");
    if !err.is_null() {
        unsafe { TRITONSERVER_ErrorDelete(err) };
    }
    filled.and(sent)
}

fn fill_outputs(engine: &Engine, response: *mut TRITONBACKEND_Response, job: &Job, items: &[ItemResult]) -> Result<(), String> {
    let batching = engine.config.max_batch_size > 0;
    let (w, h) = engine.model.input_size().as_usize();
    let layers = engine.config.fit_files.len();
    for &out in &job.outputs {
        let (data_type, dims, bytes): (_, Vec<i64>, Vec<u8>) = match out {
            OutputName::Probabilities => (TYPE_FP32, vec![engine.classes() as i64], le_f32(items.iter().map(|x| &x.probabilities[..]))),
            OutputName::Top1 => (TYPE_INT32, vec![1], items.iter().flat_map(|x| x.top1.to_le_bytes()).collect()),
            OutputName::ChipMap => {
                let maps = items.iter().map(|x| x.chip_map.as_deref().ok_or("internal error: no CHIP map")).collect::<Result<Vec<_>, _>>()?;
                (TYPE_FP32, vec![layers as i64, h as i64, w as i64], le_f32(maps.into_iter()))
            }
            OutputName::RefinedMap => {
                let maps = items.iter().map(|x| x.refined_map.as_deref().ok_or("internal error: no Refined CHIP map")).collect::<Result<Vec<_>, _>>()?;
                (TYPE_FP32, vec![h as i64, w as i64], le_f32(maps.into_iter()))
            }
            OutputName::Box => {
                let boxes = items.iter().map(|x| x.bbox.ok_or("internal error: no box")).collect::<Result<Vec<_>, _>>()?;
                (TYPE_INT32, vec![4], boxes.iter().flatten().flat_map(|v| v.to_le_bytes()).collect())
            }
        };
        let per_item: i64 = dims.iter().product();
        if bytes.len() as i64 != per_item * 4 * job.n as i64 {
            return Err(format!("internal error: output {} has {} bytes for {} image(s) of {dims:?}", out.as_str(), bytes.len(), job.n));
        }
        let shape: Vec<i64> = if batching { std::iter::once(job.n as i64).chain(dims).collect() } else { dims };
        let name = CString::new(out.as_str()).expect("output names have no NUL");
        let mut output = std::ptr::null_mut();
        check(
            unsafe { TRITONBACKEND_ResponseOutput(response, &mut output, name.as_ptr(), data_type, shape.as_ptr(), shape.len() as u32) },
            "TRITONBACKEND_ResponseOutput",
        )?;
        let (mut buffer, mut memory, mut memory_id) = (std::ptr::null_mut(), MEMORY_CPU, 0i64);
        check(unsafe { TRITONBACKEND_OutputBuffer(output, &mut buffer, bytes.len() as u64, &mut memory, &mut memory_id) }, "TRITONBACKEND_OutputBuffer")?;
        if memory == MEMORY_GPU {
            return Err(format!("output {}: the chip backend writes outputs to CPU memory only", out.as_str()));
        }
        if !bytes.is_empty() {
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer as *mut u8, bytes.len()) };
        }
    }
    Ok(())
}

fn le_f32<'a>(rows: impl Iterator<Item = &'a [f32]>) -> Vec<u8> {
    rows.flat_map(|r| r.iter().flat_map(|v| v.to_le_bytes())).collect()
}
