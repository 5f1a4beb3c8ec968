package chip

/*
#include <stdlib.h>
#include <chip.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Device is where a model runs.
type Device int32

const (
	DeviceCPU  Device = C.CHIP_DEVICE_CPU
	DeviceCUDA Device = C.CHIP_DEVICE_CUDA
)

// ModelOptions are the options of LoadModel; the zero value is the library's defaults.
type ModelOptions struct {
	Device   Device
	DeviceID int
	// Intra-op threads per session; 0 lets ONNX Runtime choose.
	Threads int
	// Path of libonnxruntime.so; "" searches CHIP_ORT_LIB, beside libchip, beside the executable.
	// ONNX Runtime is loaded once per process; later values are ignored.
	OrtLib string
	// A preprocessing spec as JSON text (the keys of the sidecar <model>.json), or "" for none. Its
	// keys override the sidecar's; an unknown key fails the load with ErrInvalidArgument naming it.
	// Model.Preprocess tells the effective spec and where each value came from.
	Preprocess string
}

func (o *ModelOptions) toC() (C.chip_model_options, func()) {
	var c C.chip_model_options
	c.struct_size = C.size_t(unsafe.Sizeof(c))
	C.chip_model_options_default(&c)
	free := func() {}
	if o == nil {
		return c, free
	}
	c.device = C.chip_device(o.Device)
	c.device_id = C.int32_t(o.DeviceID)
	if o.Threads > 0 {
		c.threads = C.size_t(o.Threads)
	}
	var strs []*C.char
	if o.OrtLib != "" {
		s := C.CString(o.OrtLib)
		c.ort_lib = s
		strs = append(strs, s)
	}
	if o.Preprocess != "" {
		s := C.CString(o.Preprocess)
		c.preprocess = s
		strs = append(strs, s)
	}
	free = func() {
		for _, s := range strs {
			C.free(unsafe.Pointer(s))
		}
	}
	return c, free
}

// Model is a loaded ONNX image classifier.
type Model struct {
	*handle[*C.chip_model]
}

// Layer is a candidate layer of a model: a 4-D activation of Channels x Height x Width.
type Layer struct {
	Name                    string
	Channels, Height, Width int
}

func newModel(p *C.chip_model) *Model {
	return &Model{newHandle(p, func(p *C.chip_model) { C.chip_model_free(p) }, "model")}
}

// LoadModel loads an ONNX classifier from a file (and its optional <stem>.json sidecar).
// opts may be nil for the defaults.
func LoadModel(path string, opts *ModelOptions) (*Model, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	o, free := opts.toC()
	defer free()
	var p *C.chip_model
	if err := call(func() C.chip_status { return C.chip_model_load(cpath, &o, &p) }); err != nil {
		return nil, err
	}
	return newModel(p), nil
}

// LoadModelBytes loads an ONNX classifier from memory. There is no sidecar: the preprocessing is
// opts.Preprocess where given, else what the graph says and the library's assumptions (see
// Model.Preprocess).
func LoadModelBytes(data []byte, opts *ModelOptions) (*Model, error) {
	if len(data) == 0 {
		return nil, invalid("the model is 0 bytes")
	}
	o, free := opts.toC()
	defer free()
	var p *C.chip_model
	err := call(func() C.chip_status {
		return C.chip_model_load_bytes((*C.uint8_t)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &o, &p)
	})
	if err != nil {
		return nil, err
	}
	return newModel(p), nil
}

// ClassCount is the number of classes the model outputs.
func (m *Model) ClassCount() (int, error) {
	p, err := m.ptr()
	if err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(m)
	var n C.size_t
	if err := call(func() C.chip_status { return C.chip_model_class_count(p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// InputSize is the model's input size in pixels.
func (m *Model) InputSize() (Size, error) {
	p, err := m.ptr()
	if err != nil {
		return Size{}, err
	}
	defer runtime.KeepAlive(m)
	var s C.chip_size
	if err := call(func() C.chip_status { return C.chip_model_input_size(p, &s) }); err != nil {
		return Size{}, err
	}
	return sizeFromC(s), nil
}

// ClassLabel is the name of a class (its decimal id for models without labels).
func (m *Model) ClassLabel(class int) (string, error) {
	p, err := m.ptr()
	if err != nil {
		return "", err
	}
	defer runtime.KeepAlive(m)
	return getString(func(buf *C.char, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_model_class_label(p, index(class), buf, n, out)
	})
}

// Preprocess is the model's effective preprocessing as JSON text: {"spec": {...}, "sources": {key:
// "given" | "sidecar" | "graph" | "probe" | "assumed"}, "fingerprint": "..."}. "assumed" marks a
// value nothing stated (the library's default).
func (m *Model) Preprocess() (string, error) {
	p, err := m.ptr()
	if err != nil {
		return "", err
	}
	defer runtime.KeepAlive(m)
	return getString(func(buf *C.char, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_model_preprocess(p, buf, n, out)
	})
}

// Layers lists the candidate layers (4-D activations) in graph order.
func (m *Model) Layers() ([]Layer, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	var count C.size_t
	if err := call(func() C.chip_status { return C.chip_model_layer_count(p, &count) }); err != nil {
		return nil, err
	}
	layers := make([]Layer, count)
	for i := range layers {
		var c, h, w C.size_t
		name, err := getString(func(buf *C.char, n C.size_t, out *C.size_t) C.chip_status {
			return C.chip_model_layer_info(p, C.size_t(i), buf, n, out, &c, &h, &w)
		})
		if err != nil {
			return nil, err
		}
		layers[i] = Layer{Name: name, Channels: int(c), Height: int(h), Width: int(w)}
	}
	return layers, nil
}

// tensorLen is the length of one preprocessed image, or 0 when unknown.
func (m *Model) tensorLen() int {
	s, err := m.InputSize()
	if err != nil {
		return 0
	}
	return 3 * s.Width * s.Height
}

// PreprocessFile decodes and preprocesses an image file as the model expects.
func (m *Model) PreprocessFile(path string) (*Prepared, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var size C.chip_size
	data, err := getFloats(m.tensorLen(), func(buf *C.float, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_model_preprocess_file(p, cpath, buf, n, out, &size)
	})
	if err != nil {
		return nil, err
	}
	return &Prepared{Data: data, Size: sizeFromC(size)}, nil
}

// PreprocessEncoded decodes and preprocesses an encoded image (PNG, JPEG, ...) held in memory.
func (m *Model) PreprocessEncoded(encoded []byte) (*Prepared, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	var ptr *C.uint8_t
	if len(encoded) > 0 {
		ptr = (*C.uint8_t)(unsafe.Pointer(&encoded[0]))
	}
	var size C.chip_size
	data, err := getFloats(m.tensorLen(), func(buf *C.float, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_model_preprocess_encoded(p, ptr, C.size_t(len(encoded)), buf, n, out, &size)
	})
	if err != nil {
		return nil, err
	}
	return &Prepared{Data: data, Size: sizeFromC(size)}, nil
}

// Predict gives the class probabilities of n preprocessed images (data holds n x 3 x H x W floats):
// one slice of ClassCount floats per image.
func (m *Model) Predict(data []float32, n int) ([][]float32, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	if n < 0 {
		return nil, invalid("negative image count")
	}
	classes, err := m.ClassCount()
	if err != nil {
		return nil, err
	}
	flat, err := getFloats(n*classes, func(buf *C.float, cap C.size_t, out *C.size_t) C.chip_status {
		return C.chip_model_predict(p, floatPtr(data), C.size_t(len(data)), C.size_t(n), buf, cap, out)
	})
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return [][]float32{}, nil
	}
	per := len(flat) / n
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*per : (i+1)*per : (i+1)*per]
	}
	return out, nil
}
