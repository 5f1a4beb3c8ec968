package chip

/*
#include <stdlib.h>
#include <chip.h>
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// Size is a size in pixels.
type Size struct {
	Width, Height int
}

func sizeFromC(s C.chip_size) Size { return Size{Width: int(s.width), Height: int(s.height)} }

// Images are the images of one fit, statistics collection or explanation: files (Files), encoded
// images in memory (Encoded) or preprocessed images (Tensor). Nothing is copied until the call.
type Images struct {
	kind    C.chip_images_kind
	paths   []string
	encoded [][]byte
	tensor  []float32
	n       int
	sizes   []Size
}

// Files are image files (PNG, JPEG, BMP, TIFF, WebP).
func Files(paths ...string) Images {
	return Images{kind: C.CHIP_IMAGES_FILES, paths: paths, n: len(paths)}
}

// Encoded are encoded images (PNG, JPEG, BMP, TIFF, WebP) held in memory.
func Encoded(images ...[]byte) Images {
	return Images{kind: C.CHIP_IMAGES_ENCODED, encoded: images, n: len(images)}
}

// Tensor are n preprocessed images: n x 3 x H x W floats at the model's input size (see
// Model.PreprocessFile). sizes holds the original size of each image, the size the maps of an
// explanation are scaled to, or is nil for the input size; fits ignore it.
func Tensor(data []float32, n int, sizes []Size) Images {
	return Images{kind: C.CHIP_IMAGES_TENSOR, tensor: data, n: n, sizes: sizes}
}

// Prepared is a preprocessed image: 3 x H x W floats at the model's input size, and the size of
// the original image the maps are scaled to.
type Prepared struct {
	Data []float32
	Size Size
}

// withC fills a chip_images descriptor for the duration of f. Go memory is pinned rather than
// copied (the descriptor holds pointers to it); paths need C strings.
func (im Images) withC(f func(*C.chip_images) C.chip_status) error {
	if im.n < 0 {
		return invalid("negative image count")
	}
	var pin runtime.Pinner
	defer pin.Unpin()
	var d C.chip_images
	d.struct_size = C.size_t(unsafe.Sizeof(d))
	d.kind = im.kind
	d.count = C.size_t(im.n)
	switch im.kind {
	case C.CHIP_IMAGES_FILES:
		paths, free := cStrings(im.paths)
		defer free()
		d.paths = paths
	case C.CHIP_IMAGES_ENCODED:
		if len(im.encoded) > 0 {
			ptrs := make([]*C.uint8_t, len(im.encoded))
			lens := make([]C.size_t, len(im.encoded))
			for i, b := range im.encoded {
				if len(b) > 0 {
					pin.Pin(&b[0])
					ptrs[i] = (*C.uint8_t)(unsafe.Pointer(&b[0]))
				}
				lens[i] = C.size_t(len(b))
			}
			pin.Pin(&ptrs[0])
			pin.Pin(&lens[0])
			d.data = (**C.uint8_t)(unsafe.Pointer(&ptrs[0]))
			d.lens = &lens[0]
		}
	case C.CHIP_IMAGES_TENSOR:
		if len(im.tensor) > 0 {
			pin.Pin(&im.tensor[0])
			d.tensor = floatPtr(im.tensor)
		}
		d.tensor_len = C.size_t(len(im.tensor))
		if im.sizes != nil {
			if len(im.sizes) != im.n {
				return invalid(fmt.Sprintf("%d sizes for %d images", len(im.sizes), im.n))
			}
			cs := make([]C.chip_size, len(im.sizes))
			for i, s := range im.sizes {
				// Out of range sides go to libchip as 0, which it rejects with a message.
				if s.Width > 0 && s.Width <= 1<<31 {
					cs[i].width = C.uint32_t(s.Width)
				}
				if s.Height > 0 && s.Height <= 1<<31 {
					cs[i].height = C.uint32_t(s.Height)
				}
			}
			if len(cs) > 0 {
				pin.Pin(&cs[0])
				d.sizes = &cs[0]
			}
		}
	}
	return call(func() C.chip_status { return f(&d) })
}
