//! The panic boundary, the thread's last error, and the checks every argument goes through: pointers,
//! strings, caller arrays, caller buffers, options structs and handle out-parameters.
use super::status::chip_status::{self, *};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

pub(super) struct FfiError {
    pub(super) status: chip_status,
    pub(super) msg: String,
}

pub(super) type FfiResult<T = ()> = Result<T, FfiError>;

pub(super) fn fail<T>(status: chip_status, msg: impl Into<String>) -> FfiResult<T> {
    Err(FfiError { status, msg: msg.into() })
}

/// An out-of-range or inconsistent value.
pub(super) fn invalid<T>(msg: impl Into<String>) -> FfiResult<T> {
    fail(CHIP_STATUS_INVALID_ARGUMENT, msg)
}

impl From<crate::Error> for FfiError {
    fn from(e: crate::Error) -> Self {
        FfiError { status: super::status::status_of(&e), msg: e.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

pub(super) fn last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Runs one exported call: clears the thread's last error, catches panics, records failures.
pub(super) fn guard(f: impl FnOnce() -> FfiResult) -> chip_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CHIP_STATUS_OK,
        Ok(Err(e)) => {
            set_last_error(&e.msg);
            e.status
        }
        Err(payload) => {
            set_last_error(&format!("internal error (panic): {}", panic_message(&*payload)));
            CHIP_STATUS_PANIC
        }
    }
}

/// For the `_free` functions, which return nothing: drops a handle made by `Out::put`; NULL is
/// ignored and a panic in a destructor stays here.
pub(super) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(p))));
    }
}

pub(super) unsafe fn deref<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    match p.as_ref() {
        Some(r) => Ok(r),
        None => fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL")),
    }
}

pub(super) unsafe fn deref_mut<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    match p.as_mut() {
        Some(r) => Ok(r),
        None => fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL")),
    }
}

/// A required output: `*out = v`.
pub(super) unsafe fn set<T>(out: *mut T, name: &str, v: T) -> FfiResult {
    *deref_mut(out, name)? = v;
    Ok(())
}

/// Writes through an optional output pointer.
pub(super) unsafe fn put<T>(p: *mut T, v: T) {
    if let Some(r) = p.as_mut() {
        *r = v;
    }
}

pub(super) unsafe fn str_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a str> {
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL"));
    }
    match CStr::from_ptr(p).to_str() {
        Ok(s) => Ok(s),
        Err(e) => fail(
            CHIP_STATUS_INVALID_UTF8,
            format!("{name} is not valid UTF-8 (invalid byte at offset {})", e.valid_up_to()),
        ),
    }
}

pub(super) unsafe fn path_arg<'a>(p: *const c_char, name: &str) -> FfiResult<&'a std::path::Path> {
    str_arg(p, name).map(std::path::Path::new)
}

/// A caller array of `len` elements. NULL is refused unless `len` is 0 (nothing is read then).
pub(super) unsafe fn slice_arg<'a, T>(p: *const T, len: usize, name: &str) -> FfiResult<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} is NULL but its length is {len}"));
    }
    if len.checked_mul(std::mem::size_of::<T>()).is_none_or(|b| b > isize::MAX as usize) {
        return invalid(format!("{name}: length {len} is too large"));
    }
    Ok(std::slice::from_raw_parts(p, len))
}

/// A caller array of `len` non-NULL pointers, each turned into a value by `each(pointer, "name[i]")`.
pub(super) unsafe fn each_arg<P, T>(
    p: *const *const P,
    len: usize,
    name: &str,
    each: impl Fn(*const P, &str) -> FfiResult<T>,
) -> FfiResult<Vec<T>> {
    slice_arg(p, len, name)?.iter().enumerate().map(|(i, &q)| each(q, &format!("{name}[{i}]"))).collect()
}

/// An array of `count` UTF-8 C strings as paths.
pub(super) unsafe fn paths_arg(p: *const *const c_char, count: usize, name: &str) -> FfiResult<Vec<PathBuf>> {
    each_arg(p, count, name, |s, n| str_arg(s, n).map(PathBuf::from))
}

/// The caller-buffer convention for `need` elements: `*out_len` (when not NULL) receives `need`;
/// `buf == NULL && len == 0` is a size query (Ok(None)); a NULL or shorter buffer is an error and
/// is left unchanged; else the first `need` elements of the buffer.
pub(super) unsafe fn caller_buf<'a, T>(
    buf: *mut T,
    len: usize,
    out_len: *mut usize,
    need: usize,
    name: &str,
) -> FfiResult<Option<&'a mut [T]>> {
    put(out_len, need);
    if buf.is_null() && len == 0 {
        return Ok(None);
    }
    if buf.is_null() {
        return fail(CHIP_STATUS_NULL_POINTER, format!("{name} buffer is NULL but its length is {len}"));
    }
    if len < need {
        return fail(CHIP_STATUS_BUFFER_TOO_SMALL, format!("{name} buffer holds {len} elements, {need} needed"));
    }
    Ok(Some(std::slice::from_raw_parts_mut(buf, need)))
}

/// Copies `src` into a caller buffer (see `caller_buf`).
pub(super) unsafe fn write_buf<T: Copy>(src: &[T], buf: *mut T, len: usize, out_len: *mut usize, name: &str) -> FfiResult {
    if let Some(dst) = caller_buf(buf, len, out_len, src.len(), name)? {
        dst.copy_from_slice(src);
    }
    Ok(())
}

/// A string as NUL-terminated UTF-8 into a caller buffer; the required length counts the NUL.
pub(super) unsafe fn write_str(s: &str, buf: *mut c_char, len: usize, out_len: *mut usize, name: &str) -> FfiResult {
    let bytes: Vec<c_char> = s.bytes().chain([0]).map(|b| b as c_char).collect();
    write_buf(&bytes, buf, len, out_len, name)
}

/// The caller's `struct_size` of an options struct or descriptor: from `min` (the first version's
/// size) up to this version's, at a field boundary (a multiple of the pointer size, so no pointer
/// is cut). 0 is refused: a zero-initialised struct says nothing about its size, and reading it as
/// this version's would overrun an older caller's struct.
unsafe fn struct_size<T>(p: *const T, min: usize, name: &str) -> FfiResult<usize> {
    // The size is read alone: a smaller struct from an older caller must not be read past its end.
    let size = std::ptr::read_unaligned(p as *const usize);
    let max = std::mem::size_of::<T>();
    match size {
        0 => invalid(format!(
            "{name}.struct_size is 0; set it to sizeof({name}) = {max} (then call {name}_default())"
        )),
        s if s >= min && s <= max && s % std::mem::size_of::<usize>() == 0 => Ok(s),
        s => invalid(format!(
            "{name}.struct_size is {s}; it must be sizeof({name}) = {max}, or the size of an older \
             version of it (from {min} bytes, a multiple of {})",
            std::mem::size_of::<usize>()
        )),
    }
}

/// Options structs begin with their size so fields can be appended: a caller compiled against an
/// older header passes a smaller size and gets defaults for the newer fields. NULL is the defaults.
pub(super) unsafe fn read_options<T: Copy>(p: *const T, default: T, min: usize, name: &str) -> FfiResult<T> {
    if p.is_null() {
        return Ok(default);
    }
    let size = struct_size(p, min, name)?;
    let mut out = default;
    std::ptr::copy_nonoverlapping(p as *const u8, &mut out as *mut T as *mut u8, size);
    Ok(out)
}

/// Fills an options struct with `default`, writing no more than the caller's `struct_size`, which
/// it keeps.
pub(super) unsafe fn write_options<T: Copy>(p: *mut T, default: T, min: usize, name: &str) -> FfiResult {
    let p = deref_mut(p, "opts")? as *mut T;
    let size = struct_size(p, min, name)?;
    std::ptr::copy_nonoverlapping(&default as *const T as *const u8, p as *mut u8, size);
    std::ptr::write_unaligned(p as *mut usize, size);
    Ok(())
}

/// A handle out-parameter: set to NULL at once, so a failure leaves NULL; `put` hands out the handle.
pub(super) struct Out<'a, T>(&'a mut *mut T);

impl<T> Out<'_, T> {
    pub(super) unsafe fn new(out: *mut *mut T, name: &str) -> FfiResult<Self> {
        let o = deref_mut(out, name)?;
        *o = std::ptr::null_mut();
        Ok(Out(o))
    }

    pub(super) fn put(self, v: T) -> FfiResult {
        *self.0 = Box::into_raw(Box::new(v));
        Ok(())
    }
}

/// `save` of a handle to a path argument.
pub(super) unsafe fn save_handle<T>(
    h: *const T,
    name: &str,
    path: *const c_char,
    save: impl FnOnce(&T, &std::path::Path) -> crate::Result<()>,
) -> chip_status {
    guard(|| Ok(save(deref(h, name)?, path_arg(path, "path")?)?))
}

/// A new handle read from a path argument by `load`.
pub(super) unsafe fn load_handle<T>(
    path: *const c_char,
    out: *mut *mut T,
    out_name: &str,
    load: impl FnOnce(&std::path::Path) -> crate::Result<T>,
) -> chip_status {
    guard(|| Out::new(out, out_name)?.put(load(path_arg(path, "path")?)?))
}

pub(super) fn flag(v: std::ffi::c_int) -> bool {
    v != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last() -> String {
        unsafe { CStr::from_ptr(last_error()) }.to_str().unwrap().to_string()
    }

    #[test]
    fn guard_turns_a_panic_into_a_status_with_its_message() {
        let s = guard(|| {
            let v: Vec<u8> = Vec::new();
            let i = v.len() + 3;
            let _ = v[i];
            Ok(())
        });
        assert_eq!(s, CHIP_STATUS_PANIC);
        assert!(last().contains("internal error (panic): index out of bounds"), "{}", last());
        assert_eq!(guard(|| fail(CHIP_STATUS_IO, "disk")), CHIP_STATUS_IO);
        assert_eq!(last(), "disk");
        assert_eq!(guard(|| Ok(())), CHIP_STATUS_OK);
        assert_eq!(last(), "");
    }

    #[test]
    fn buffer_convention() {
        let src = [1.0f32, 2.0, 3.0];
        let mut n = 0usize;
        unsafe {
            // Size query.
            assert!(write_buf(&src, std::ptr::null_mut(), 0, &mut n, "b").is_ok());
            assert_eq!(n, 3);
            let mut small = [9.0f32; 2];
            let e = write_buf(&src, small.as_mut_ptr(), 2, &mut n, "b").unwrap_err();
            assert_eq!((e.status, n, small), (CHIP_STATUS_BUFFER_TOO_SMALL, 3, [9.0, 9.0]));
            let e = write_buf(&src, std::ptr::null_mut(), 5, &mut n, "b").unwrap_err();
            assert_eq!(e.status, CHIP_STATUS_NULL_POINTER);
            let mut big = [0.0f32; 4];
            assert!(write_buf(&src, big.as_mut_ptr(), 4, std::ptr::null_mut(), "b").is_ok());
            assert_eq!(big, [1.0, 2.0, 3.0, 0.0]);
            let mut s = [0 as c_char; 4];
            let e = write_str("abcd", s.as_mut_ptr(), 4, &mut n, "s").unwrap_err();
            assert_eq!((e.status, n), (CHIP_STATUS_BUFFER_TOO_SMALL, 5));
            assert!(write_str("abc", s.as_mut_ptr(), 4, &mut n, "s").is_ok());
            assert_eq!(CStr::from_ptr(s.as_ptr()).to_str().unwrap(), "abc");
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq)]
    #[repr(C)]
    struct V3 {
        struct_size: usize,
        a: u64,
        b: u64,
    }

    #[test]
    fn options_from_an_older_caller_get_defaults_for_newer_fields() {
        let default = V3 { struct_size: 24, a: 7, b: 9 };
        // A v1 caller knew only `a`.
        let v1 = V3 { struct_size: 16, a: 1, b: 12345 };
        let got = unsafe { read_options(&v1, default, 16, "o") }.ok().unwrap();
        assert_eq!((got.a, got.b), (1, 9));
        assert!(unsafe { read_options(&v1, default, 24, "o") }.is_err());
        // 0 and a size inside a field are refused.
        for bad in [0, 12, 20, 32] {
            let v = V3 { struct_size: bad, a: 1, b: 2 };
            let e = unsafe { read_options(&v, default, 8, "o") }.unwrap_err();
            assert!(e.msg.contains("o.struct_size is"), "{}", e.msg);
        }
    }

    #[test]
    fn defaults_for_an_older_caller_stay_within_its_struct() {
        let default = V3 { struct_size: 24, a: 7, b: 9 };
        // A v1 caller's struct ends after `a`: `b` stands for the caller's next variable.
        let mut v1 = V3 { struct_size: 16, a: 0, b: 12345 };
        assert!(unsafe { write_options(&mut v1, default, 16, "o") }.is_ok());
        assert_eq!(v1, V3 { struct_size: 16, a: 7, b: 12345 });
        // A zero-initialised struct of unknown size is not written at all.
        for bad in [0, 8, 12, 32] {
            let mut v = V3 { struct_size: bad, a: 0, b: 0 };
            let e = unsafe { write_options(&mut v, default, 16, "o") }.unwrap_err();
            assert_eq!((e.status, v.a), (CHIP_STATUS_INVALID_ARGUMENT, 0));
        }
    }
}
