#!/usr/bin/env python3
"""Reference predictions for tests/conventions.rs, written without the library.

Reads a manifest {"models": [{"name", "model", "spec"}], "photos": [...]}, preprocesses every photo
as each spec says with PIL and numpy (resampling with PIL's filters, which antialias when they
shrink), feeds the ORIGINAL graph in its own layout and element type through ONNX Runtime's Python
API, and writes {name: [[probabilities per class] per photo]} as JSON.

The spec's meaning, as the README's "Preprocessing" table states it:
  stretch: the image to input / crop_ratio (default 1), then the centre crop (floor offsets);
  crop:    the side that limits the crop to round(input / crop_ratio) (default 0.875), the other
           keeping the aspect ratio (truncated, as torchvision), then the centre crop;
  x = (pixel * scale - mean) / std per channel, after the channel order is applied;
  no scale/mean/std stated: ImageNet's on 0..1 values (a uint8 input takes the pixels as they are).
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "area": Image.BOX,
}


def resized_size(w, h, ow, oh, resize, ratio):
    if resize == "stretch":
        return max(round(ow / ratio), ow), max(round(oh / ratio), oh)
    if ow * h >= oh * w:  # the width limits the crop
        rw = round(ow / ratio)
        return max(rw, ow), max(rw * h // w, oh)
    rh = round(oh / ratio)
    return max(rh * w // h, ow), max(rh, oh)


def preprocess(path, spec, in_shape, in_type):
    nhwc = in_shape[3] == 3 and in_shape[1] != 3
    oh, ow = (in_shape[1], in_shape[2]) if nhwc else (in_shape[2], in_shape[3])
    resize = spec.get("resize", "stretch")
    ratio = spec.get("crop_ratio", 0.875 if resize == "crop" else 1.0)
    img = Image.open(path).convert("RGB")
    rw, rh = resized_size(img.width, img.height, ow, oh, resize, ratio)
    img = img.resize((rw, rh), FILTERS[spec.get("interpolation", "bilinear")])
    x0, y0 = (rw - ow) // 2, (rh - oh) // 2
    arr = np.asarray(img, dtype=np.float32)[y0:y0 + oh, x0:x0 + ow, :]
    if spec.get("channel_order", "RGB") == "BGR":
        arr = arr[:, :, ::-1]
    uint8 = in_type == "tensor(uint8)"
    stated = any(k in spec for k in ("scale", "mean", "std"))
    if uint8:
        scale, mean, std = 1.0, 0.0, 1.0
    elif not stated:
        scale, mean, std = 1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    else:
        scale, mean, std = spec.get("scale", 1.0), spec.get("mean", 0.0), spec.get("std", 1.0)
    x = (arr * np.float32(scale) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    if uint8:
        x = x.astype(np.uint8)
    x = x if nhwc else x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[np.newaxis])


def final_op(model, output):
    producers = {o: n for n in model.graph.node for o in n.output}
    node = producers.get(output)
    while node is not None and node.op_type in ("Identity", "Flatten", "Reshape", "Squeeze"):
        node = producers.get(node.input[0])
    return None if node is None else node.op_type


def main():
    manifest = json.load(open(sys.argv[1]))
    out = {}
    for entry in manifest["models"]:
        spec = entry["spec"]
        sess = ort.InferenceSession(entry["model"], providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        names = [o.name for o in sess.get_outputs()]
        output = spec.get("output_name", names[0])
        op = final_op(onnx.load(entry["model"]), output)
        rows = []
        for photo in manifest["photos"]:
            x = preprocess(photo, spec, inp.shape, inp.type)
            raw = sess.run([output], {inp.name: x})[0][0].astype(np.float64)
            if op == "Sigmoid" or op == "Softmax":
                p = raw
            else:
                e = np.exp(raw - raw.max())
                p = e / e.sum()
            rows.append([float(v) for v in p])
        out[entry["name"]] = rows
    with open(sys.argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
