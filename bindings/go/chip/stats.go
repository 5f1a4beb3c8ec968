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

// Stats are the sufficient statistics of a fit collected on the images of one shard. They are
// additive: Merge the shards' statistics and Solve them for the fit of all their images (equal to
// one FitLayer over all of them when FitOptions.Mosaics is 0). They remember the model, layer,
// gates, seed, target, views and mosaics they were collected with; merging or solving with any of
// these different fails with ErrFitMismatch. Merge must not race with other use.
type Stats struct {
	*handle[*C.chip_stats]
}

func newStats(p *C.chip_stats) *Stats {
	return &Stats{newHandle(p, func(p *C.chip_stats) { C.chip_stats_free(p) }, "statistics")}
}

// CollectStats collects the statistics of a layer on the images of one shard. Of opts, the gates,
// seed, Sigma2Rel, target, views and mosaics are used; LambdaRel, Rho, MaxIter and Classes are not.
func (m *Model) CollectStats(layer string, images Images, opts *FitOptions) (*Stats, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	clayer := C.CString(layer)
	defer C.free(unsafe.Pointer(clayer))
	var s *C.chip_stats
	err = fitCall(opts, func(o *C.chip_fit_options) error {
		return images.withC(func(d *C.chip_images) C.chip_status { return C.chip_collect_stats(p, clayer, d, o, &s) })
	})
	if err != nil {
		return nil, err
	}
	return newStats(s), nil
}

// Solve solves statistics into a fit of their layer. Of opts, LambdaRel, Rho, MaxIter, Classes,
// the objective (Target, which must be the one collected with, Intercept, Nonneg) and Progress are
// used.
func (m *Model) Solve(stats *Stats, opts *FitOptions) (*LayerFit, error) {
	p, err := m.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(m)
	sp, err := stats.ptr()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(stats)
	var f *C.chip_layer_fit
	err = fitCall(opts, func(o *C.chip_fit_options) error {
		return call(func() C.chip_status { return C.chip_solve(p, sp, o, &f) })
	})
	if err != nil {
		return nil, err
	}
	return newLayerFit(f), nil
}

// LoadStats reads statistics written by Save (or `chip fit --stats-only`).
func LoadStats(path string) (*Stats, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var s *C.chip_stats
	if err := call(func() C.chip_status { return C.chip_stats_load(cpath, &s) }); err != nil {
		return nil, err
	}
	return newStats(s), nil
}

// Save writes the statistics to path atomically (a failure leaves no file behind).
func (s *Stats) Save(path string) error {
	p, err := s.ptr()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(s)
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	return call(func() C.chip_status { return C.chip_stats_save(p, cpath) })
}

// Merge adds other's statistics to s, which then holds the images of both; on failure s is
// unchanged.
func (s *Stats) Merge(other *Stats) error {
	p, err := s.ptr()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(s)
	op, err := other.ptr()
	if err != nil {
		return err
	}
	defer runtime.KeepAlive(other)
	if p == op {
		return invalid("statistics cannot be merged into themselves")
	}
	return call(func() C.chip_status { return C.chip_stats_merge(p, op) })
}

// ImageCount is the number of images (views and mosaics included) the statistics hold.
func (s *Stats) ImageCount() (int, error) {
	p, err := s.ptr()
	if err != nil {
		return 0, err
	}
	defer runtime.KeepAlive(s)
	var n C.size_t
	if err := call(func() C.chip_status { return C.chip_stats_image_count(p, &n) }); err != nil {
		return 0, err
	}
	return int(n), nil
}

// LayerName is the name of the layer the statistics were collected at.
func (s *Stats) LayerName() (string, error) {
	p, err := s.ptr()
	if err != nil {
		return "", err
	}
	defer runtime.KeepAlive(s)
	return getString(func(buf *C.char, n C.size_t, out *C.size_t) C.chip_status {
		return C.chip_stats_layer_name(p, buf, n, out)
	})
}
