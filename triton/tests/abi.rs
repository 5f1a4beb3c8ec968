//! Checks the backend's hand-written Triton declarations against the real server library:
//! every imported symbol is exported by libtritonserver.so (the backend loads with RTLD_NOW), and
//! every enum value maps to the name the server's own string functions give it.
//!
//! libtritonserver.so comes from scripts/setup_triton.sh (third_party/triton-venv) or
//! CHIP_TRITONSERVER_LIB. Without it the test says so and passes, unless CHIP_REQUIRE_TRITON=1.
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};

fn server_library() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHIP_TRITONSERVER_LIB") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.join("third_party/triton-venv/lib");
    for py in std::fs::read_dir(&root).ok()?.flatten() {
        let libs = py.path().join("site-packages/nvidia_pytriton.libs");
        if let Ok(dir) = std::fs::read_dir(&libs) {
            for f in dir.flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                if name.starts_with("libtritonserver") && name.contains(".so") {
                    return Some(f.path());
                }
            }
        }
    }
    None
}

fn backend_library() -> PathBuf {
    // Integration tests run from target/<profile>/deps, where cargo also puts the cdylib.
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    for dir in [deps, deps.parent().unwrap()] {
        let p = dir.join("libtriton_chip.so");
        if p.is_file() {
            return p;
        }
    }
    panic!("libtriton_chip.so not found next to {}", exe.display());
}

fn dlerror() -> String {
    let e = unsafe { libc::dlerror() };
    if e.is_null() { "unknown dlopen error".into() } else { unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned() }
}

fn open(path: &Path, flags: i32) -> *mut c_void {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let h = unsafe { libc::dlopen(c.as_ptr(), flags) };
    assert!(!h.is_null(), "dlopen {}: {}", path.display(), dlerror());
    h
}

/// The wheel's server library finds its bundled dependencies through the executable's run path;
/// outside that executable they are loaded first (by soname, in dependency order by retrying).
fn preload_siblings(server: &Path) {
    let dir = server.parent().unwrap();
    let mut pending: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != server && p.to_string_lossy().contains(".so"))
        .collect();
    loop {
        let before = pending.len();
        pending.retain(|p| {
            let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
            unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) }.is_null()
        });
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
}

fn sym(handle: *mut c_void, name: &str) -> *mut c_void {
    let c = CString::new(name).unwrap();
    unsafe { libc::dlsym(handle, c.as_ptr()) }
}

fn string_of(p: *const c_char) -> String {
    assert!(!p.is_null());
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[test]
fn declarations_match_the_real_server_library() {
    let Some(server) = server_library() else {
        if std::env::var("CHIP_REQUIRE_TRITON").is_ok_and(|v| v == "1") {
            panic!("libtritonserver.so not found: run scripts/setup_triton.sh or set CHIP_TRITONSERVER_LIB");
        }
        eprintln!("SKIPPED: libtritonserver.so not found (run scripts/setup_triton.sh)");
        return;
    };
    preload_siblings(&server);
    let server = open(&server, libc::RTLD_NOW | libc::RTLD_GLOBAL);
    // RTLD_NOW: loading fails if any function the backend imports is missing from the server.
    let backend = open(&backend_library(), libc::RTLD_NOW | libc::RTLD_LOCAL);

    let decl: unsafe extern "C" fn() -> *const c_char =
        unsafe { std::mem::transmute(sym(backend, "chip_triton_abi_declarations")) };
    let json: serde_json::Value = serde_json::from_str(&string_of(unsafe { decl() })).unwrap();

    let symbols = json["imported_symbols"].as_array().unwrap();
    assert!(symbols.len() >= 30, "{symbols:?}");
    for s in symbols {
        let s = s.as_str().unwrap();
        assert!(!sym(server, s).is_null(), "{s} is not exported by the server library");
    }
    for entry in ["TRITONBACKEND_Initialize", "TRITONBACKEND_ModelInitialize", "TRITONBACKEND_ModelFinalize",
        "TRITONBACKEND_ModelInstanceInitialize", "TRITONBACKEND_ModelInstanceFinalize", "TRITONBACKEND_ModelInstanceExecute"] {
        assert!(!sym(backend, entry).is_null(), "the backend does not export {entry}");
    }

    unsafe {
        type StrOf = unsafe extern "C" fn(u32) -> *const c_char;
        let data_type_string: StrOf = std::mem::transmute(sym(server, "TRITONSERVER_DataTypeString"));
        let string_to_data_type: unsafe extern "C" fn(*const c_char) -> u32 = std::mem::transmute(sym(server, "TRITONSERVER_StringToDataType"));
        let memory_type_string: StrOf = std::mem::transmute(sym(server, "TRITONSERVER_MemoryTypeString"));
        let kind_string: StrOf = std::mem::transmute(sym(server, "TRITONSERVER_InstanceGroupKindString"));
        let error_new: unsafe extern "C" fn(u32, *const c_char) -> *mut c_void = std::mem::transmute(sym(server, "TRITONSERVER_ErrorNew"));
        let error_code_string: unsafe extern "C" fn(*mut c_void) -> *const c_char = std::mem::transmute(sym(server, "TRITONSERVER_ErrorCodeString"));
        let error_delete: unsafe extern "C" fn(*mut c_void) = std::mem::transmute(sym(server, "TRITONSERVER_ErrorDelete"));
        let api_version: unsafe extern "C" fn(*mut u32, *mut u32) -> *mut c_void = std::mem::transmute(sym(server, "TRITONBACKEND_ApiVersion"));

        let check = |table: &str, f: &dyn Fn(u32) -> String| {
            let map = json[table].as_object().unwrap();
            assert!(!map.is_empty());
            for (name, value) in map {
                let v = value.as_u64().unwrap() as u32;
                assert_eq!(f(v), *name, "{table}: value {v}");
            }
        };
        check("data_types", &|v| string_of(data_type_string(v)));
        check("memory_types", &|v| string_of(memory_type_string(v)));
        check("instance_group_kinds", &|v| string_of(kind_string(v)));
        check("error_codes", &|v| {
            let e = error_new(v, c"probe".as_ptr());
            let s = string_of(error_code_string(e));
            error_delete(e);
            s
        });
        // The reverse direction for data types (the backend's checks compare these values).
        for (name, value) in json["data_types"].as_object().unwrap() {
            if name != "<invalid>" {
                let c = CString::new(name.as_str()).unwrap();
                assert_eq!(string_to_data_type(c.as_ptr()) as u64, value.as_u64().unwrap(), "{name}");
            }
        }

        let (mut major, mut minor) = (0u32, 0u32);
        assert!(api_version(&mut major, &mut minor).is_null());
        let want = json["backend_api_version"].as_array().unwrap();
        assert_eq!(major as u64, want[0].as_u64().unwrap());
        assert!(minor as u64 >= want[1].as_u64().unwrap(), "server backend API {major}.{minor}");
    }
}
