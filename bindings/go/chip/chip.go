// Package chip is a Go binding of libchip's C API: CHIP (channel-wise disentangled interpretation)
// explanations of image-classification CNNs.
//
// Handles (Model, LayerFit, Stats, Explainer, Explanation) own a libchip object. Close frees it; a
// finalizer frees a handle that was never closed, but Close early: the objects hold large native
// buffers the Go garbage collector does not see. Like the C API, Close must not race with other
// use of the same handle; every other method may be called from many goroutines at once.
//
// Errors are *Error values carrying the libchip status and message; errors.Is(err, chip.ErrCancelled)
// (or any other Err* value) tests the status.
package chip

/*
#cgo pkg-config: chip
#include <stdlib.h>
#include <chip.h>

*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Status is a libchip status code (chip_status).
type Status int32

// The values of chip_status.
const (
	StatusOK              Status = C.CHIP_STATUS_OK
	StatusInvalidArgument Status = C.CHIP_STATUS_INVALID_ARGUMENT
	StatusNullPointer     Status = C.CHIP_STATUS_NULL_POINTER
	StatusInvalidUTF8     Status = C.CHIP_STATUS_INVALID_UTF8
	StatusBufferTooSmall  Status = C.CHIP_STATUS_BUFFER_TOO_SMALL
	StatusIO              Status = C.CHIP_STATUS_IO
	StatusORTNotFound     Status = C.CHIP_STATUS_ORT_NOT_FOUND
	StatusORT             Status = C.CHIP_STATUS_ORT
	StatusModel           Status = C.CHIP_STATUS_MODEL
	StatusUnknownLayer    Status = C.CHIP_STATUS_UNKNOWN_LAYER
	StatusImage           Status = C.CHIP_STATUS_IMAGE
	StatusFitFile         Status = C.CHIP_STATUS_FIT_FILE
	StatusFitVersion      Status = C.CHIP_STATUS_FIT_VERSION
	StatusFitMismatch     Status = C.CHIP_STATUS_FIT_MISMATCH
	StatusNonFinite       Status = C.CHIP_STATUS_NON_FINITE
	StatusCancelled       Status = C.CHIP_STATUS_CANCELLED
	StatusPanic           Status = C.CHIP_STATUS_PANIC
)

// String is libchip's static description of the status.
func (s Status) String() string {
	return C.GoString(C.chip_status_str(C.int32_t(s)))
}

// Error is a failed libchip call: its status and chip_last_error() message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	// libchip's messages already say what kind of failure it was.
	if e.Message == "" {
		return "chip: " + e.Status.String()
	}
	return "chip: " + e.Message
}

// Is matches any *Error with the same status, so errors.Is(err, chip.ErrUnknownLayer) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Status == e.Status
}

// Sentinels for errors.Is; only the status is compared.
var (
	ErrInvalidArgument = &Error{Status: StatusInvalidArgument}
	ErrNullPointer     = &Error{Status: StatusNullPointer}
	ErrInvalidUTF8     = &Error{Status: StatusInvalidUTF8}
	ErrIO              = &Error{Status: StatusIO}
	ErrORTNotFound     = &Error{Status: StatusORTNotFound}
	ErrORT             = &Error{Status: StatusORT}
	ErrModel           = &Error{Status: StatusModel}
	ErrUnknownLayer    = &Error{Status: StatusUnknownLayer}
	ErrImage           = &Error{Status: StatusImage}
	ErrFitFile         = &Error{Status: StatusFitFile}
	ErrFitVersion      = &Error{Status: StatusFitVersion}
	ErrFitMismatch     = &Error{Status: StatusFitMismatch}
	ErrNonFinite       = &Error{Status: StatusNonFinite}
	ErrCancelled       = &Error{Status: StatusCancelled}
	ErrPanic           = &Error{Status: StatusPanic}
)

// StatusOf is the libchip status of err (StatusOK for nil, -1 for an error from elsewhere).
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	if e, ok := err.(*Error); ok {
		return e.Status
	}
	return -1
}

// Version is the library version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.chip_version()) }

// ABIVersion is the C ABI version of the loaded library.
func ABIVersion() uint32 { return uint32(C.chip_abi_version()) }

// HeaderABIVersion is the C ABI version this package was compiled against.
const HeaderABIVersion = uint32(C.CHIP_ABI_VERSION)

// call runs one libchip call and turns a failure into an *Error. The last error message is
// thread-local, so the goroutine stays on its OS thread until the message is read.
func call(f func() C.chip_status) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := f(); st != 0 {
		return &Error{Status: Status(st), Message: C.GoString(C.chip_last_error())}
	}
	return nil
}

// handle owns one libchip handle, a C pointer of type P. Close frees it (a second Close does
// nothing), and a finalizer frees it when its owner is collected without Close. Model, LayerFit,
// Stats, Explainer and Explanation each embed one, so the lifecycle is written once.
type handle[P comparable] struct {
	p    P
	free func(P)
	what string
}

func newHandle[P comparable](p P, free func(P), what string) *handle[P] {
	h := &handle[P]{p: p, free: free, what: what}
	runtime.SetFinalizer(h, (*handle[P]).Close)
	return h
}

// Close frees the handle. Handles made from it (an explainer from a model and fits) keep working.
// Calling Close again does nothing.
func (h *handle[P]) Close() error {
	var none P
	if h != nil && h.p != none {
		h.free(h.p)
		h.p = none
		runtime.SetFinalizer(h, nil)
	}
	return nil
}

// ptr is the C handle, or an error once closed (or for a zero value that never held one).
func (h *handle[P]) ptr() (P, error) {
	var none P
	if h == nil {
		return none, closedError("handle")
	}
	if h.p == none {
		return none, closedError(h.what)
	}
	return h.p, nil
}

func closedError(what string) error {
	return &Error{Status: StatusNullPointer, Message: what + " is closed"}
}

func invalid(msg string) error { return &Error{Status: StatusInvalidArgument, Message: msg} }

// getString reads a string through the C buffer convention: size query, then copy.
func getString(f func(buf *C.char, n C.size_t, outLen *C.size_t) C.chip_status) (string, error) {
	var n C.size_t
	if err := call(func() C.chip_status { return f(nil, 0, &n) }); err != nil {
		return "", err
	}
	if n == 0 {
		return "", nil
	}
	buf := make([]byte, n)
	if err := call(func() C.chip_status { return f((*C.char)(unsafe.Pointer(&buf[0])), n, &n) }); err != nil {
		return "", err
	}
	return string(buf[:n-1]), nil
}

// getFloats reads a float array through the C buffer convention. With hint > 0 it first tries a
// buffer of that size, which saves a second call (a second model run, for predictions).
func getFloats(hint int, f func(buf *C.float, n C.size_t, outLen *C.size_t) C.chip_status) ([]float32, error) {
	var n C.size_t
	if hint > 0 {
		out := make([]float32, hint)
		err := call(func() C.chip_status { return f((*C.float)(unsafe.Pointer(&out[0])), C.size_t(hint), &n) })
		if err == nil {
			return out[:n], nil
		}
		if StatusOf(err) != StatusBufferTooSmall {
			return nil, err
		}
	} else if err := call(func() C.chip_status { return f(nil, 0, &n) }); err != nil {
		return nil, err
	}
	out := make([]float32, n)
	if n == 0 {
		return out, nil
	}
	if err := call(func() C.chip_status { return f((*C.float)(unsafe.Pointer(&out[0])), n, &n) }); err != nil {
		return nil, err
	}
	return out[:n], nil
}

func floatPtr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

// cStrings copies Go strings into one C array of C strings; free releases all of it.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	ptrSize := C.size_t(unsafe.Sizeof((*C.char)(nil)))
	mem := C.malloc(C.size_t(len(ss)) * ptrSize)
	view := unsafe.Slice((**C.char)(mem), len(ss))
	for i, s := range ss {
		view[i] = C.CString(s)
	}
	return (**C.char)(mem), func() {
		for _, p := range view {
			C.free(unsafe.Pointer(p))
		}
		C.free(mem)
	}
}

// cSizes copies ints into C memory (size_t), or nil for none.
func cSizes(v []int) (*C.size_t, func(), error) {
	if len(v) == 0 {
		return nil, func() {}, nil
	}
	mem := C.malloc(C.size_t(len(v)) * C.size_t(unsafe.Sizeof(C.size_t(0))))
	view := unsafe.Slice((*C.size_t)(mem), len(v))
	for i, x := range v {
		if x < 0 {
			C.free(mem)
			return nil, nil, invalid(fmt.Sprintf("class id %d is negative", x))
		}
		view[i] = C.size_t(x)
	}
	return (*C.size_t)(mem), func() { C.free(mem) }, nil
}

// index converts a Go index to size_t; negative values become out of range for libchip to reject.
func index(i int) C.size_t {
	if i < 0 {
		return ^C.size_t(0) - 1
	}
	return C.size_t(i)
}
