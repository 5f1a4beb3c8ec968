"""Runs a model written by `chip export --class-input` in ONNX Runtime's Python package.

usage: run_export.py MODEL INPUT.f32 OUTDIR N,C,H,W TARGETS
Writes OUTDIR/chip_maps.f32 and OUTDIR/chip_refined.f32 (little-endian float32) and prints a JSON
report (output names, shapes, chip_class) on stdout. When the `onnx` package is importable the file
is also checked with onnx.checker (full check, with shape inference).
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, data, outdir, shape, targets = sys.argv[1:6]
    shape = [int(s) for s in shape.split(",")]
    targets = np.array([int(t) for t in targets.split(",")], dtype=np.int64)
    x = np.fromfile(data, dtype="<f4").reshape(shape)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    assert "chip_target_class" in inputs, f"no chip_target_class input: {list(inputs)}"
    image = next(n for n in inputs if n != "chip_target_class")
    names = [o.name for o in session.get_outputs()]
    outs = dict(zip(names, session.run(names, {image: x, "chip_target_class": targets})))
    meta = session.get_modelmeta().custom_metadata_map
    assert "chip.export" in meta, f"no chip.export metadata: {list(meta)}"
    for name in ("chip_maps", "chip_refined"):
        outs[name].astype("<f4").tofile(os.path.join(outdir, f"{name}.f32"))
    checked = None
    try:
        import onnx
    except ImportError:
        pass
    else:
        onnx.checker.check_model(model, full_check=True)
        checked = onnx.__version__
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "onnx_checker": checked,
        "outputs": names,
        "shapes": {n: list(v.shape) for n, v in outs.items()},
        "classes": outs["chip_class"].tolist(),
        "fits": [f["layer"] for f in json.loads(meta["chip.export"])["fits"]],
    }))


if __name__ == "__main__":
    main()
