package chip

/*
#include <stdlib.h>
#include <chip.h>

extern int chipGoProgress(uintptr_t handle, int32_t kind, size_t done, size_t total);

// A C function pointer for the Go callback; user_data carries a cgo.Handle.
static int chip_go_progress(void *user_data, chip_progress_kind kind, size_t done, size_t total) {
	return chipGoProgress((uintptr_t)user_data, (int32_t)kind, done, total);
}

static void chip_go_set_progress(chip_fit_options *o, uintptr_t handle) {
	o->progress = chip_go_progress;
	o->user_data = (void *)handle;
}
*/
import "C"

import (
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// Target is what each class's linear model regresses in a fit.
type Target int32

const (
	TargetProbability    Target = C.CHIP_TARGET_PROBABILITY // the CHIP paper's objective (without intercept)
	TargetLogit          Target = C.CHIP_TARGET_LOGIT
	TargetLogProbability Target = C.CHIP_TARGET_LOG_PROBABILITY
)

// FitOptions are the options of a fit. Start from DefaultFitOptions(); nil means the defaults.
type FitOptions struct {
	Gates      int     // number of random gate vectors
	LambdaRel  float64 // sparsity weight relative to the smallest lambda that zeroes a class
	Sigma2Rel  float64 // sigma^2 of the gate proximity relative to the number of channels
	Seed       uint64  // seed of the gate generator
	GateBatch  int     // gates per suffix run
	ImageBatch int     // images per prefix run
	MaxIter    int     // ADMM iteration limit per class
	Rho        float64 // ADMM penalty; 0 picks one from the scale of the problem
	Classes    []int   // class ids to solve; nil for all
	Target     Target  // what each class's linear model regresses
	Intercept  bool    // an unpenalised per-class intercept
	Nonneg     bool    // weights constrained to be >= 0
	Augment    int     // augmented views (random resized crops and flips) per image
	// 2x2 mosaics per image, tiled from four of the images of one call: only with 0 do merged
	// statistics of several shards equal one fit over all their images.
	Mosaics int
	// Progress, if set, is called as the fit advances (possibly from another thread, never two at
	// once); returning false cancels the fit, which then fails with ErrCancelled.
	Progress func(Progress) bool
}

func defaultFitOptionsC() C.chip_fit_options {
	var c C.chip_fit_options
	c.struct_size = C.size_t(unsafe.Sizeof(c))
	// Cannot fail: struct_size is the header's, and the header is the library's (see ABIVersion).
	C.chip_fit_options_default(&c)
	return c
}

// DefaultFitOptions are libchip's defaults.
func DefaultFitOptions() FitOptions {
	c := defaultFitOptionsC()
	return FitOptions{
		Gates:      int(c.gates),
		LambdaRel:  float64(c.lambda_rel),
		Sigma2Rel:  float64(c.sigma2_rel),
		Seed:       uint64(c.seed),
		GateBatch:  int(c.gate_batch),
		ImageBatch: int(c.image_batch),
		MaxIter:    int(c.max_iter),
		Rho:        float64(c.rho),
		Target:     Target(c.target),
		Intercept:  c.intercept != 0,
		Nonneg:     c.nonneg != 0,
		Augment:    int(c.augment),
		Mosaics:    int(c.mosaics),
	}
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// fitCall fills the C options, runs the fit and re-raises a panic of the progress callback.
func fitCall(opts *FitOptions, run func(o *C.chip_fit_options) error) error {
	o := defaultFitOptionsC()
	var st *progressState
	if opts != nil {
		for _, v := range []struct {
			n    int
			name string
		}{{opts.Gates, "Gates"}, {opts.GateBatch, "GateBatch"}, {opts.ImageBatch, "ImageBatch"}, {opts.MaxIter, "MaxIter"},
			{opts.Augment, "Augment"}, {opts.Mosaics, "Mosaics"}} {
			if v.n < 0 {
				return invalid(v.name + " is negative")
			}
		}
		o.gates = C.size_t(opts.Gates)
		o.lambda_rel = C.double(opts.LambdaRel)
		o.sigma2_rel = C.double(opts.Sigma2Rel)
		o.seed = C.uint64_t(opts.Seed)
		o.gate_batch = C.size_t(opts.GateBatch)
		o.image_batch = C.size_t(opts.ImageBatch)
		o.max_iter = C.size_t(opts.MaxIter)
		o.rho = C.double(opts.Rho)
		o.target = C.int(opts.Target)
		o.intercept = cBool(opts.Intercept)
		o.nonneg = cBool(opts.Nonneg)
		o.augment = C.size_t(opts.Augment)
		o.mosaics = C.size_t(opts.Mosaics)
		classes, free, err := cSizes(opts.Classes)
		if err != nil {
			return err
		}
		defer free()
		o.classes = classes
		o.class_count = C.size_t(len(opts.Classes))
		if opts.Progress != nil {
			st = &progressState{fn: opts.Progress}
			h := cgo.NewHandle(st)
			defer h.Delete()
			C.chip_go_set_progress(&o, C.uintptr_t(h))
		}
	}
	err := run(&o)
	if st != nil && st.panicked != nil {
		panic(st.panicked)
	}
	return err
}

// FitLayer fits a layer's class-by-channel importance on images of any kind (Files, Encoded,
// Tensor). It runs images x gates forward passes; see FitOptions.Progress to follow or cancel it.
func (m *Model) FitLayer(layer string, images Images, opts *FitOptions) (*LayerFit, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	clayer := C.CString(layer)
	defer C.free(unsafe.Pointer(clayer))
	var f *C.chip_layer_fit
	err = fitCall(opts, func(o *C.chip_fit_options) error {
		return images.withC(func(d *C.chip_images) C.chip_status { return C.chip_fit_layer(p, clayer, d, o, &f) })
	})
	if err != nil {
		return nil, err
	}
	return newLayerFit(f), nil
}

// LayerFit is one fitted layer: the class-by-channel importance weights. Immutable.
type LayerFit struct {
	*handle[*C.chip_layer_fit]
}

func newLayerFit(p *C.chip_layer_fit) *LayerFit {
	return &LayerFit{newHandle(p, func(p *C.chip_layer_fit) { C.chip_layer_fit_free(p) }, "layer fit")}
}

// LoadLayerFit reads a fit written by Save (or the command line tool).
func LoadLayerFit(path string) (*LayerFit, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var f *C.chip_layer_fit
	if err := call(func() C.chip_status { return C.chip_layer_fit_load(cpath, &f) }); err != nil {
		return nil, err
	}
	return newLayerFit(f), nil
}

// Save writes the fit to path atomically (a failure leaves no file behind).
func (f *LayerFit) Save(path string) error {
	p, err := f.ptr()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(f)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return call(func() C.chip_status { return C.chip_layer_fit_save(p, cpath) })
}

// LayerName is the name of the fitted layer.
func (f *LayerFit) LayerName() (string, error) {
	p, err := f.ptr()
	if err != nil {
		return "", err
	}
	defer runtime.KeepAlive(f)
	return getString(func(buf *C.char, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_layer_fit_layer_name(p, buf, n, out)
	})
}

// ChannelCount is the number of channels K of the fitted layer.
func (f *LayerFit) ChannelCount() (int, error) {
	p, err := f.ptr()
	if err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(f)
	var n C.size_t
	if err := call(func() C.chip_status { return C.chip_layer_fit_channel_count(p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// ClassCount is the number of classes C (weight rows).
func (f *LayerFit) ClassCount() (int, error) {
	p, err := f.ptr()
	if err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(f)
	var n C.size_t
	if err := call(func() C.chip_status { return C.chip_layer_fit_class_count(p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// WeightsRow is the importance of each channel for a class (zero for classes not solved).
func (f *LayerFit) WeightsRow(class int) ([]float32, error) {
	p, err := f.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(f)
	k, err := f.ChannelCount()
	if err != nil {
		return nil, err
	}
	return getFloats(k, func(buf *C.float, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_layer_fit_weights_row(p, index(class), buf, n, out)
	})
}
