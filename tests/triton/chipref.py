"""Reference results through libchip's C API (ctypes on libchip.so), to compare the backend with."""
import ctypes as C

import numpy as np

CHIP_REFINED = C.c_size_t(-1).value  # SIZE_MAX


class ModelOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("device", C.c_int32), ("device_id", C.c_int32),
                ("threads", C.c_size_t), ("ort_lib", C.c_char_p), ("preprocess", C.c_char_p)]


class ExplainOptions(C.Structure):
    _fields_ = [("struct_size", C.c_size_t), ("top_k", C.c_size_t), ("classes", C.POINTER(C.c_size_t)),
                ("class_count", C.c_size_t), ("refined", C.c_int), ("threshold", C.c_float),
                ("original_size", C.c_int)]


class Box(C.Structure):
    """Inclusive corners; no box is all four -1."""
    _fields_ = [("x1", C.c_int32), ("y1", C.c_int32), ("x2", C.c_int32), ("y2", C.c_int32)]


class Size(C.Structure):
    _fields_ = [("width", C.c_uint32), ("height", C.c_uint32)]


CHIP_IMAGES_ENCODED = 2
CHIP_IMAGES_TENSOR = 3


class Images(C.Structure):
    """chip_images: the one descriptor of chip_explain's images."""
    _fields_ = [("struct_size", C.c_size_t), ("kind", C.c_int), ("count", C.c_size_t),
                ("paths", C.c_void_p), ("data", C.c_void_p), ("lens", C.POINTER(C.c_size_t)),
                ("tensor", C.POINTER(C.c_float)), ("tensor_len", C.c_size_t), ("sizes", C.POINTER(Size))]


class ChipError(RuntimeError):
    pass


class Reference:
    """A model with fitted layers, explained through the C API exactly as the backend is configured:
    maps at the model's input size, the box from Refined CHIP (refined=True) or the last layer."""

    def __init__(self, libchip, model_path, fit_paths, ort_lib, refined=True, threshold=0.25, preprocess=None):
        self.lib = lib = C.CDLL(str(libchip))
        vp = C.c_void_p
        lib.chip_last_error.restype = C.c_char_p
        for name in ["chip_model_free", "chip_layer_fit_free", "chip_explainer_free", "chip_explanation_free"]:
            getattr(lib, name).argtypes = [vp]
            getattr(lib, name).restype = None
        self.refined = refined
        self.threshold = threshold

        opts = ModelOptions(struct_size=C.sizeof(ModelOptions))
        self._ok(lib.chip_model_options_default(C.byref(opts)))
        opts.ort_lib = str(ort_lib).encode()
        if preprocess is not None:
            opts.preprocess = preprocess.encode()
        self.model = vp()
        self._ok(lib.chip_model_load(str(model_path).encode(), C.byref(opts), C.byref(self.model)))
        n = C.c_size_t()
        self._ok(lib.chip_model_class_count(self.model, C.byref(n)))
        self.classes = n.value
        size = Size()
        self._ok(lib.chip_model_input_size(self.model, C.byref(size)))
        self.width, self.height = size.width, size.height
        fits = []
        for p in fit_paths:
            f = vp()
            self._ok(lib.chip_layer_fit_load(str(p).encode(), C.byref(f)))
            fits.append(f)
        arr = (vp * len(fits))(*fits)
        self.explainer = vp()
        if fits:
            self._ok(lib.chip_explainer_new(self.model, arr, len(fits), C.byref(self.explainer)))
        for f in fits:
            lib.chip_layer_fit_free(f)
        self.layers = len(fits)

    def _ok(self, status):
        if status != 0:
            raise ChipError(f"libchip status {status}: {self.lib.chip_last_error().decode()}")

    def _options(self, target):
        o = ExplainOptions(struct_size=C.sizeof(ExplainOptions))
        self._ok(self.lib.chip_explain_options_default(C.byref(o)))
        if target is not None and target >= 0:
            self._ids = (C.c_size_t * 1)(target)
            o.classes = self._ids
            o.class_count = 1
        else:
            o.top_k = 1
        o.refined = 1 if self.refined else 0
        o.threshold = self.threshold
        o.original_size = 0
        return o

    def preprocess_file(self, path):
        n = 3 * self.height * self.width
        buf = (C.c_float * n)()
        out_len, size = C.c_size_t(), Size()
        self._ok(self.lib.chip_model_preprocess_file(self.model, str(path).encode(), buf, n, C.byref(out_len),
                                                     C.byref(size)))
        return np.ctypeslib.as_array(buf).reshape(3, self.height, self.width).copy()

    def predict_encoded(self, data):
        """The probabilities of one encoded image (chip_model_preprocess_encoded, chip_model_predict)."""
        n = 3 * self.height * self.width
        buf = (C.c_float * n)()
        out_len = C.c_size_t()
        self._ok(self.lib.chip_model_preprocess_encoded(self.model, data, len(data), buf, n, C.byref(out_len), None))
        probs = (C.c_float * self.classes)()
        self._ok(self.lib.chip_model_predict(self.model, buf, n, 1, probs, self.classes, C.byref(out_len)))
        return np.ctypeslib.as_array(probs).copy()

    def explain_encoded(self, data, target=None):
        o = self._options(target)
        bufs = (C.c_char_p * 1)(data)
        lens = (C.c_size_t * 1)(len(data))
        images = Images(struct_size=C.sizeof(Images), kind=CHIP_IMAGES_ENCODED, count=1,
                        data=C.cast(bufs, C.c_void_p), lens=lens)
        ex = C.c_void_p()
        self._ok(self.lib.chip_explain(self.explainer, C.byref(images), C.byref(o), C.byref(ex)))
        try:
            return self._read(ex)
        finally:
            self.lib.chip_explanation_free(ex)

    def explain_tensor(self, tensor, target=None):
        o = self._options(target)
        t = np.ascontiguousarray(tensor, dtype=np.float32)
        images = Images(struct_size=C.sizeof(Images), kind=CHIP_IMAGES_TENSOR, count=1,
                        tensor=t.ctypes.data_as(C.POINTER(C.c_float)), tensor_len=t.size)
        ex = C.c_void_p()
        self._ok(self.lib.chip_explain(self.explainer, C.byref(images), C.byref(o), C.byref(ex)))
        try:
            return self._read(ex)
        finally:
            self.lib.chip_explanation_free(ex)

    def _map(self, ex, layer):
        n = self.height * self.width
        buf = (C.c_float * n)()
        out_len = C.c_size_t()
        self._ok(self.lib.chip_explanation_map(ex, 0, 0, C.c_size_t(layer), buf, n, C.byref(out_len)))
        assert out_len.value == n
        return np.ctypeslib.as_array(buf).reshape(self.height, self.width).copy()

    def _box(self, ex, layer):
        b = Box()
        self._ok(self.lib.chip_explanation_box(ex, 0, 0, C.c_size_t(layer), C.byref(b)))
        return [b.x1, b.y1, b.x2, b.y2]

    def _read(self, ex):
        probs = (C.c_float * self.classes)()
        out_len = C.c_size_t()
        self._ok(self.lib.chip_explanation_probabilities(ex, 0, probs, self.classes, C.byref(out_len)))
        top, p = C.c_size_t(), C.c_float()
        self._ok(self.lib.chip_explanation_top(ex, 0, 0, C.byref(top), C.byref(p)))
        cls, cp = C.c_size_t(), C.c_float()
        self._ok(self.lib.chip_explanation_class(ex, 0, 0, C.byref(cls), C.byref(cp)))
        maps = np.stack([self._map(ex, l) for l in range(self.layers)])
        refined = self._map(ex, CHIP_REFINED) if self.refined else None
        box = self._box(ex, CHIP_REFINED) if self.refined else self._box(ex, self.layers - 1)
        return {
            "PROBABILITIES": np.ctypeslib.as_array(probs).copy(),
            "TOP1": top.value,
            "CLASS": cls.value,
            "CHIP_MAP": maps,
            "REFINED_MAP": refined,
            "BOX": box,
        }
