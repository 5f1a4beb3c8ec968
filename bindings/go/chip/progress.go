package chip

/*
#include <stddef.h>
#include <stdint.h>
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
)

// ProgressKind is the stage of a fit a progress report is about.
type ProgressKind int32

const (
	ProgressImages     ProgressKind = 0 // images through the layer's prefix
	ProgressSuffixRuns ProgressKind = 1 // gated suffix runs
	ProgressClasses    ProgressKind = 2 // classes solved
)

func (k ProgressKind) String() string {
	switch k {
	case ProgressImages:
		return "images"
	case ProgressSuffixRuns:
		return "suffix runs"
	case ProgressClasses:
		return "classes"
	}
	return fmt.Sprintf("ProgressKind(%d)", int32(k))
}

// Progress is one progress report of a fit.
type Progress struct {
	Kind        ProgressKind
	Done, Total int
}

type progressState struct {
	fn       func(Progress) bool
	panicked any
}

// chipGoProgress is the C progress callback; a panic in the Go callback must not unwind into
// libchip, so it cancels the fit and is raised again in the caller.
//
//export chipGoProgress
func chipGoProgress(handle C.uintptr_t, kind C.int32_t, done, total C.size_t) (ret C.int) {
	st := cgo.Handle(handle).Value().(*progressState)
	defer func() {
		if r := recover(); r != nil {
			st.panicked = r
			ret = 1
		}
	}()
	if st.fn(Progress{Kind: ProgressKind(kind), Done: int(done), Total: int(total)}) {
		return 0
	}
	return 1
}
