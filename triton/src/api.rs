//! The parts of the Triton server and backend C API (tritonserver.h, tritonbackend.h, backend API
//! 1.19) that this backend uses. The functions are exported by libtritonserver.so, which has loaded
//! this library, so they are resolved when the backend is loaded.
//!
//! The values are checked against the real server library by tests/abi.rs through
//! [`chip_triton_abi_declarations`].
#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

use std::ffi::{c_char, c_void};

pub const BACKEND_API_VERSION_MAJOR: u32 = 1;
pub const BACKEND_API_VERSION_MINOR: u32 = 19;

// Opaque handles.
#[repr(C)]
pub struct TRITONSERVER_Error {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONSERVER_Message {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Backend {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Model {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_ModelInstance {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Request {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Response {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Input {
    _p: [u8; 0],
}
#[repr(C)]
pub struct TRITONBACKEND_Output {
    _p: [u8; 0],
}

/// C enums are `int`-sized.
pub type TRITONSERVER_DataType = u32;
pub const TYPE_INVALID: TRITONSERVER_DataType = 0;
pub const TYPE_BOOL: TRITONSERVER_DataType = 1;
pub const TYPE_UINT8: TRITONSERVER_DataType = 2;
pub const TYPE_UINT16: TRITONSERVER_DataType = 3;
pub const TYPE_UINT32: TRITONSERVER_DataType = 4;
pub const TYPE_UINT64: TRITONSERVER_DataType = 5;
pub const TYPE_INT8: TRITONSERVER_DataType = 6;
pub const TYPE_INT16: TRITONSERVER_DataType = 7;
pub const TYPE_INT32: TRITONSERVER_DataType = 8;
pub const TYPE_INT64: TRITONSERVER_DataType = 9;
pub const TYPE_FP16: TRITONSERVER_DataType = 10;
pub const TYPE_FP32: TRITONSERVER_DataType = 11;
pub const TYPE_FP64: TRITONSERVER_DataType = 12;
pub const TYPE_BYTES: TRITONSERVER_DataType = 13;
pub const TYPE_BF16: TRITONSERVER_DataType = 14;

pub type TRITONSERVER_MemoryType = u32;
pub const MEMORY_CPU: TRITONSERVER_MemoryType = 0;
pub const MEMORY_CPU_PINNED: TRITONSERVER_MemoryType = 1;
pub const MEMORY_GPU: TRITONSERVER_MemoryType = 2;

pub type TRITONSERVER_Error_Code = u32;
pub const ERROR_UNKNOWN: TRITONSERVER_Error_Code = 0;
pub const ERROR_INTERNAL: TRITONSERVER_Error_Code = 1;
pub const ERROR_NOT_FOUND: TRITONSERVER_Error_Code = 2;
pub const ERROR_INVALID_ARG: TRITONSERVER_Error_Code = 3;
pub const ERROR_UNAVAILABLE: TRITONSERVER_Error_Code = 4;
pub const ERROR_UNSUPPORTED: TRITONSERVER_Error_Code = 5;
pub const ERROR_ALREADY_EXISTS: TRITONSERVER_Error_Code = 6;

pub type TRITONSERVER_InstanceGroupKind = u32;
pub const INSTANCEGROUPKIND_AUTO: TRITONSERVER_InstanceGroupKind = 0;
pub const INSTANCEGROUPKIND_CPU: TRITONSERVER_InstanceGroupKind = 1;
pub const INSTANCEGROUPKIND_GPU: TRITONSERVER_InstanceGroupKind = 2;
pub const INSTANCEGROUPKIND_MODEL: TRITONSERVER_InstanceGroupKind = 3;

pub type TRITONSERVER_LogLevel = u32;
pub const LOG_INFO: TRITONSERVER_LogLevel = 0;
pub const LOG_WARN: TRITONSERVER_LogLevel = 1;
pub const LOG_ERROR: TRITONSERVER_LogLevel = 2;
pub const LOG_VERBOSE: TRITONSERVER_LogLevel = 3;

pub const REQUEST_RELEASE_ALL: u32 = 1;
pub const RESPONSE_COMPLETE_FINAL: u32 = 1;

pub type TRITONBACKEND_ArtifactType = u32;
pub const ARTIFACT_FILESYSTEM: TRITONBACKEND_ArtifactType = 0;

/// Version of the model configuration JSON asked of TRITONBACKEND_ModelConfig.
pub const MODEL_CONFIG_VERSION: u32 = 1;

type Err = *mut TRITONSERVER_Error;

/// Declares the imported functions and keeps their names, so a test can check that the server
/// library exports every one of them.
macro_rules! triton_imports {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? ; )*) => {
        extern "C" {
            $( pub fn $name($($arg: $ty),*) $(-> $ret)?; )*
        }
        pub const IMPORTED_SYMBOLS: &[&str] = &[$(stringify!($name)),*];
    };
}

triton_imports! {
    fn TRITONSERVER_ErrorNew(code: TRITONSERVER_Error_Code, msg: *const c_char) -> Err;
    fn TRITONSERVER_ErrorDelete(error: Err);
    fn TRITONSERVER_ErrorCode(error: Err) -> TRITONSERVER_Error_Code;
    fn TRITONSERVER_ErrorMessage(error: Err) -> *const c_char;
    fn TRITONSERVER_LogMessage(level: TRITONSERVER_LogLevel, filename: *const c_char, line: i32, msg: *const c_char) -> Err;
    fn TRITONSERVER_MessageSerializeToJson(message: *mut TRITONSERVER_Message, base: *mut *const c_char, byte_size: *mut usize) -> Err;
    fn TRITONSERVER_MessageDelete(message: *mut TRITONSERVER_Message) -> Err;

    fn TRITONBACKEND_ApiVersion(major: *mut u32, minor: *mut u32) -> Err;
    fn TRITONBACKEND_BackendName(backend: *mut TRITONBACKEND_Backend, name: *mut *const c_char) -> Err;
    fn TRITONBACKEND_ModelName(model: *mut TRITONBACKEND_Model, name: *mut *const c_char) -> Err;
    fn TRITONBACKEND_ModelVersion(model: *mut TRITONBACKEND_Model, version: *mut u64) -> Err;
    fn TRITONBACKEND_ModelRepository(model: *mut TRITONBACKEND_Model, artifact_type: *mut TRITONBACKEND_ArtifactType, location: *mut *const c_char) -> Err;
    fn TRITONBACKEND_ModelConfig(model: *mut TRITONBACKEND_Model, config_version: u32, model_config: *mut *mut TRITONSERVER_Message) -> Err;
    fn TRITONBACKEND_ModelSetState(model: *mut TRITONBACKEND_Model, state: *mut c_void) -> Err;
    fn TRITONBACKEND_ModelState(model: *mut TRITONBACKEND_Model, state: *mut *mut c_void) -> Err;

    fn TRITONBACKEND_ModelInstanceModel(instance: *mut TRITONBACKEND_ModelInstance, model: *mut *mut TRITONBACKEND_Model) -> Err;
    fn TRITONBACKEND_ModelInstanceName(instance: *mut TRITONBACKEND_ModelInstance, name: *mut *const c_char) -> Err;
    fn TRITONBACKEND_ModelInstanceKind(instance: *mut TRITONBACKEND_ModelInstance, kind: *mut TRITONSERVER_InstanceGroupKind) -> Err;
    fn TRITONBACKEND_ModelInstanceDeviceId(instance: *mut TRITONBACKEND_ModelInstance, device_id: *mut i32) -> Err;
    fn TRITONBACKEND_ModelInstanceSetState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut c_void) -> Err;
    fn TRITONBACKEND_ModelInstanceState(instance: *mut TRITONBACKEND_ModelInstance, state: *mut *mut c_void) -> Err;
    fn TRITONBACKEND_ModelInstanceReportStatistics(instance: *mut TRITONBACKEND_ModelInstance, request: *mut TRITONBACKEND_Request, success: bool, exec_start_ns: u64, compute_start_ns: u64, compute_end_ns: u64, exec_end_ns: u64) -> Err;
    fn TRITONBACKEND_ModelInstanceReportBatchStatistics(instance: *mut TRITONBACKEND_ModelInstance, batch_size: u64, exec_start_ns: u64, compute_start_ns: u64, compute_end_ns: u64, exec_end_ns: u64) -> Err;

    fn TRITONBACKEND_RequestInputCount(request: *mut TRITONBACKEND_Request, count: *mut u32) -> Err;
    fn TRITONBACKEND_RequestInputByIndex(request: *mut TRITONBACKEND_Request, index: u32, input: *mut *mut TRITONBACKEND_Input) -> Err;
    fn TRITONBACKEND_RequestOutputCount(request: *mut TRITONBACKEND_Request, count: *mut u32) -> Err;
    fn TRITONBACKEND_RequestOutputName(request: *mut TRITONBACKEND_Request, index: u32, output_name: *mut *const c_char) -> Err;
    fn TRITONBACKEND_RequestRelease(request: *mut TRITONBACKEND_Request, release_flags: u32) -> Err;
    fn TRITONBACKEND_InputProperties(input: *mut TRITONBACKEND_Input, name: *mut *const c_char, datatype: *mut TRITONSERVER_DataType, shape: *mut *const i64, dims_count: *mut u32, byte_size: *mut u64, buffer_count: *mut u32) -> Err;
    fn TRITONBACKEND_InputBuffer(input: *mut TRITONBACKEND_Input, index: u32, buffer: *mut *const c_void, buffer_byte_size: *mut u64, memory_type: *mut TRITONSERVER_MemoryType, memory_type_id: *mut i64) -> Err;

    fn TRITONBACKEND_ResponseNew(response: *mut *mut TRITONBACKEND_Response, request: *mut TRITONBACKEND_Request) -> Err;
    fn TRITONBACKEND_ResponseDelete(response: *mut TRITONBACKEND_Response) -> Err;
    fn TRITONBACKEND_ResponseOutput(response: *mut TRITONBACKEND_Response, output: *mut *mut TRITONBACKEND_Output, name: *const c_char, datatype: TRITONSERVER_DataType, shape: *const i64, dims_count: u32) -> Err;
    fn TRITONBACKEND_OutputBuffer(output: *mut TRITONBACKEND_Output, buffer: *mut *mut c_void, buffer_byte_size: u64, memory_type: *mut TRITONSERVER_MemoryType, memory_type_id: *mut i64) -> Err;
    fn TRITONBACKEND_ResponseSend(response: *mut TRITONBACKEND_Response, send_flags: u32, error: Err) -> Err;
}

/// The enum values as this backend declares them, keyed by the name the server's own string
/// functions give each value, plus the imported symbols (JSON, static). For the ABI test.
#[no_mangle]
pub extern "C" fn chip_triton_abi_declarations() -> *const c_char {
    static JSON: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();
    JSON.get_or_init(|| {
        let v = serde_json::json!({
            "backend_api_version": [BACKEND_API_VERSION_MAJOR, BACKEND_API_VERSION_MINOR],
            "data_types": {
                "<invalid>": TYPE_INVALID, "BOOL": TYPE_BOOL, "UINT8": TYPE_UINT8, "UINT16": TYPE_UINT16,
                "UINT32": TYPE_UINT32, "UINT64": TYPE_UINT64, "INT8": TYPE_INT8, "INT16": TYPE_INT16,
                "INT32": TYPE_INT32, "INT64": TYPE_INT64, "FP16": TYPE_FP16, "FP32": TYPE_FP32,
                "FP64": TYPE_FP64, "BYTES": TYPE_BYTES, "BF16": TYPE_BF16,
            },
            "memory_types": { "CPU": MEMORY_CPU, "CPU_PINNED": MEMORY_CPU_PINNED, "GPU": MEMORY_GPU },
            "error_codes": {
                "Unknown": ERROR_UNKNOWN, "Internal": ERROR_INTERNAL, "Not found": ERROR_NOT_FOUND,
                "Invalid argument": ERROR_INVALID_ARG, "Unavailable": ERROR_UNAVAILABLE,
                "Unsupported": ERROR_UNSUPPORTED, "Already exists": ERROR_ALREADY_EXISTS,
            },
            "instance_group_kinds": {
                "AUTO": INSTANCEGROUPKIND_AUTO, "CPU": INSTANCEGROUPKIND_CPU,
                "GPU": INSTANCEGROUPKIND_GPU, "MODEL": INSTANCEGROUPKIND_MODEL,
            },
            "imported_symbols": IMPORTED_SYMBOLS,
        });
        std::ffi::CString::new(v.to_string()).expect("JSON has no NUL")
    })
    .as_ptr()
}
