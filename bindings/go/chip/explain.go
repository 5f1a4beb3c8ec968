package chip

/*
#include <stdlib.h>
#include <string.h>
#include <chip.h>
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

// Refined is the layer index of the Refined CHIP map (product of the first and last fitted
// layer's maps) in Explanation.Map and Explanation.Box.
const Refined = -1

func layerIndex(layer int) C.size_t {
	if layer == Refined {
		return ^C.size_t(0)
	}
	return index(layer)
}

// Explainer is a model with fitted layers, ready to explain images.
type Explainer struct {
	*handle[*C.chip_explainer]
}

// NewExplainer makes an explainer from a model and fits (copied; their order is the layer order
// of the maps). It fails with ErrFitMismatch when a fit belongs to another model or layer shape.
func NewExplainer(model *Model, fits ...*LayerFit) (*Explainer, error) {
	mp, err := model.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(model)
	defer runtime.KeepAlive(fits)
	var arr **C.chip_layer_fit
	if len(fits) > 0 {
		// C memory: a Go array of C pointers would be fine, but this keeps the rule obvious.
		mem := C.malloc(C.size_t(len(fits)) * C.size_t(unsafe.Sizeof((*C.chip_layer_fit)(nil))))
		defer C.free(mem)
		view := unsafe.Slice((**C.chip_layer_fit)(mem), len(fits))
		for i, f := range fits {
			fp, err := f.ptr()
			if err != nil {
				return nil, fmt.Errorf("fit %d: %w", i, err)
			}
			view[i] = fp
		}
		arr = (**C.chip_layer_fit)(mem)
	}
	var p *C.chip_explainer
	if err := call(func() C.chip_status { return C.chip_explainer_new(mp, arr, C.size_t(len(fits)), &p) }); err != nil {
		return nil, err
	}
	return &Explainer{newHandle(p, func(p *C.chip_explainer) { C.chip_explainer_free(p) }, "explainer")}, nil
}

// LayerNames are the explainer's fitted layers, in map order.
func (e *Explainer) LayerNames() ([]string, error) {
	p, err := e.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(e)
	var n C.size_t
	if err := call(func() C.chip_status { return C.chip_explainer_layer_count(p, &n) }); err != nil {
		return nil, err
	}
	names := make([]string, n)
	for i := range names {
		names[i], err = getString(func(buf *C.char, cap C.size_t, out *C.size_t) C.chip_status {
			return C.chip_explainer_layer_name(p, C.size_t(i), buf, cap, out)
		})
		if err != nil {
			return nil, err
		}
	}
	return names, nil
}

// ExplainOptions select what to explain. Start from DefaultExplainOptions(); nil means the defaults.
type ExplainOptions struct {
	TopK         int     // explain the TopK most probable classes (used when Classes is empty)
	Classes      []int   // explain these class ids instead
	Refined      bool    // also compute Refined CHIP (read with layer index Refined)
	Threshold    float32 // localization threshold relative to a map's maximum
	OriginalSize bool    // maps at the original image size (else at the model's input size)
}

// DefaultExplainOptions are libchip's defaults.
func DefaultExplainOptions() ExplainOptions {
	c := defaultExplainOptionsC()
	return ExplainOptions{TopK: int(c.top_k), Refined: c.refined != 0, Threshold: float32(c.threshold), OriginalSize: c.original_size != 0}
}

// Explain explains images of any kind (Files, Encoded, Tensor).
func (e *Explainer) Explain(images Images, opts *ExplainOptions) (*Explanation, error) {
	p, err := e.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(e)
	o := defaultExplainOptionsC()
	if opts != nil {
		if opts.TopK < 0 {
			return nil, invalid("TopK is negative")
		}
		o.top_k = C.size_t(opts.TopK)
		classes, free, err := cSizes(opts.Classes)
		if err != nil {
			return nil, err
		}
		defer free()
		o.classes = classes
		o.class_count = C.size_t(len(opts.Classes))
		o.refined = cBool(opts.Refined)
		o.threshold = C.float(opts.Threshold)
		o.original_size = cBool(opts.OriginalSize)
	}
	var x *C.chip_explanation
	if err := images.withC(func(d *C.chip_images) C.chip_status { return C.chip_explain(p, d, &o, &x) }); err != nil {
		return nil, err
	}
	return &Explanation{newHandle(x, func(p *C.chip_explanation) { C.chip_explanation_free(p) }, "explanation")}, nil
}

// Explanation is the result of one explain call: per image the probabilities, top classes and, per
// explained class, one map per fitted layer (plus the refined map when asked) with its box.
type Explanation struct {
	*handle[*C.chip_explanation]
}

// ClassProb is a class id with its probability.
type ClassProb struct {
	Class       int
	Probability float32
}

// Box is a bounding box with inclusive pixel corners, x to the right, y down. No box (a map
// without a positive value) is NoBox, all four corners -1.
type Box struct {
	X1, Y1, X2, Y2 int
}

// NoBox is the box of a map without a positive value.
var NoBox = Box{X1: -1, Y1: -1, X2: -1, Y2: -1}

// Found tells a box from NoBox.
func (b Box) Found() bool { return b.X1 >= 0 }

// Map is an explanation map: Height rows of Width floats.
type Map struct {
	Size
	Data []float32
}

// At is the value at column x, row y.
func (m *Map) At(x, y int) float32 { return m.Data[y*m.Width+x] }

// Sum is the sum of all values (in float64).
func (m *Map) Sum() float64 {
	s := 0.0
	for _, v := range m.Data {
		s += float64(v)
	}
	return s
}

// Max is the largest value (0 for an empty map).
func (m *Map) Max() float32 {
	var mx float32
	for i, v := range m.Data {
		if i == 0 || v > mx {
			mx = v
		}
	}
	return mx
}

func (x *Explanation) count(f func(p *C.chip_explanation, out *C.size_t) C.chip_status) (int, error) {
	p, err := x.ptr()
	if err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(x)
	var n C.size_t
	if err := call(func() C.chip_status { return f(p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// ImageCount is the number of images explained.
func (x *Explanation) ImageCount() (int, error) {
	return x.count(func(p *C.chip_explanation, out *C.size_t) C.chip_status {
		return C.chip_explanation_image_count(p, out)
	})
}

// LayerCount is the number of maps per explained class (the refined map is extra).
func (x *Explanation) LayerCount() (int, error) {
	return x.count(func(p *C.chip_explanation, out *C.size_t) C.chip_status {
		return C.chip_explanation_layer_count(p, out)
	})
}

// ImageSize is the original size of an image in pixels.
func (x *Explanation) ImageSize(image int) (Size, error) {
	p, err := x.ptr()
	if err != nil {
		return Size{}, err
	}
	defer runtime.KeepAlive(x)
	var s C.chip_size
	if err := call(func() C.chip_status { return C.chip_explanation_image_size(p, index(image), &s) }); err != nil {
		return Size{}, err
	}
	return sizeFromC(s), nil
}

// Probabilities are the class probabilities of an image.
func (x *Explanation) Probabilities(image int) ([]float32, error) {
	p, err := x.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(x)
	return getFloats(0, func(buf *C.float, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_explanation_probabilities(p, index(image), buf, n, out)
	})
}

func (x *Explanation) classList(image int, count func(*C.chip_explanation, C.size_t, *C.size_t) C.chip_status,
	get func(*C.chip_explanation, C.size_t, C.size_t, *C.size_t, *C.float) C.chip_status) ([]ClassProb, error) {
	p, err := x.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(x)
	var n C.size_t
	if err := call(func() C.chip_status { return count(p, index(image), &n) }); err != nil {
		return nil, err
	}
	out := make([]ClassProb, n)
	for i := range out {
		var c C.size_t
		var pr C.float
		if err := call(func() C.chip_status { return get(p, index(image), C.size_t(i), &c, &pr) }); err != nil {
			return nil, err
		}
		out[i] = ClassProb{Class: int(c), Probability: float32(pr)}
	}
	return out, nil
}

// Top are the most probable classes of an image (at most 5), most probable first.
func (x *Explanation) Top(image int) ([]ClassProb, error) {
	return x.classList(image,
		func(p *C.chip_explanation, i C.size_t, n *C.size_t) C.chip_status {
			return C.chip_explanation_top_count(p, i, n)
		},
		func(p *C.chip_explanation, i, r C.size_t, c *C.size_t, pr *C.float) C.chip_status {
			return C.chip_explanation_top(p, i, r, c, pr)
		})
}

// Classes are the explained classes of an image, in the order of their maps.
func (x *Explanation) Classes(image int) ([]ClassProb, error) {
	return x.classList(image,
		func(p *C.chip_explanation, i C.size_t, n *C.size_t) C.chip_status {
			return C.chip_explanation_class_count(p, i, n)
		},
		func(p *C.chip_explanation, i, r C.size_t, c *C.size_t, pr *C.float) C.chip_status {
			return C.chip_explanation_class(p, i, r, c, pr)
		})
}

// Map is the map of an image's explained class number index (not the class id) for a fitted
// layer, or for Refined.
func (x *Explanation) Map(image, index, layer int) (*Map, error) {
	p, err := x.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(x)
	img, idx, lay := indexOf(image), indexOf(index), layerIndex(layer)
	var s C.chip_size
	if err := call(func() C.chip_status { return C.chip_explanation_map_size(p, img, idx, lay, &s) }); err != nil {
		return nil, err
	}
	size := sizeFromC(s)
	data, err := getFloats(size.Width*size.Height, func(buf *C.float, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_explanation_map(p, img, idx, lay, buf, n, out)
	})
	if err != nil {
		return nil, err
	}
	return &Map{Size: size, Data: data}, nil
}

// Box is the localization box of a map; NoBox when the map has no positive value.
func (x *Explanation) Box(image, index, layer int) (Box, error) {
	p, err := x.ptr()
	if err != nil {
		return NoBox, err
	}
	defer runtime.KeepAlive(x)
	var cb C.chip_box
	err = call(func() C.chip_status {
		return C.chip_explanation_box(p, indexOf(image), indexOf(index), layerIndex(layer), &cb)
	})
	if err != nil {
		return NoBox, err
	}
	return boxFromC(cb), nil
}

func indexOf(i int) C.size_t { return index(i) }

func boxFromC(b C.chip_box) Box {
	return Box{X1: int(b.x1), Y1: int(b.y1), X2: int(b.x2), Y2: int(b.y2)}
}

func boxToC(b Box) (C.chip_box, error) {
	for _, v := range []int{b.X1, b.Y1, b.X2, b.Y2} {
		if v < -1 || v > math.MaxInt32 {
			return C.chip_box{}, invalid(fmt.Sprintf("box %+v has a corner outside -1..2^31-1", b))
		}
	}
	return C.chip_box{x1: C.int32_t(b.X1), y1: C.int32_t(b.Y1), x2: C.int32_t(b.X2), y2: C.int32_t(b.Y2)}, nil
}

// Localize is the box of the largest 8-connected region of {map >= threshold * max}; NoBox when
// the map has no positive value or holds NaN.
func Localize(m *Map, threshold float32) (Box, error) {
	if m == nil || m.Width < 0 || m.Height < 0 || len(m.Data) != m.Width*m.Height {
		return NoBox, invalid("map data does not match its width x height")
	}
	var cb C.chip_box
	err := call(func() C.chip_status {
		return C.chip_localize(floatPtr(m.Data), C.size_t(m.Width), C.size_t(m.Height), C.float(threshold), &cb)
	})
	if err != nil {
		return NoBox, err
	}
	return boxFromC(cb), nil
}

// IoU is the intersection over union of two boxes (inclusive corners), in 0..1; 0 when either is
// NoBox.
func IoU(a, b Box) (float64, error) {
	ca, err := boxToC(a)
	if err != nil {
		return 0, err
	}
	cb, err := boxToC(b)
	if err != nil {
		return 0, err
	}
	var out C.double
	if err := call(func() C.chip_status { return C.chip_iou(&ca, &cb, &out) }); err != nil {
		return 0, err
	}
	return float64(out), nil
}

func defaultExplainOptionsC() C.chip_explain_options {
	var c C.chip_explain_options
	c.struct_size = C.size_t(unsafe.Sizeof(c))
	C.chip_explain_options_default(&c)
	return c
}
