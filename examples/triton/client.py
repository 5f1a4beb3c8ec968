#!/usr/bin/env python3
"""Sends a photo to the chip backend in Triton and saves the returned CHIP map as a PNG overlay with
the localization box.

    python examples/triton/client.py data/images/skimage/chelsea.png --out chelsea_chip.png
    python examples/triton/client.py photo.jpg --protocol grpc --url 127.0.0.1:8001 --class 281

Needs tritonclient[http,grpc], numpy and pillow (scripts/setup_triton.sh installs them).
"""
import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw

OUTPUTS = ["PROBABILITIES", "TOP1", "CHIP_MAP", "REFINED_MAP", "BOX"]


def colormap(v):
    """A perceptually ordered blue-green-yellow ramp for values in 0..1 (viridis' end points)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)
    x = np.clip(v, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    t = (x - i)[..., None]
    return (stops[i] * (1 - t) + stops[i + 1] * t).astype(np.uint8)


def overlay(photo, m, box, alpha=0.5):
    """The map (model input size) stretched over the photo, like the model's preprocessing."""
    mh, mw = m.shape
    norm = m / m.max() if m.max() > 0 else m
    heat = Image.fromarray(colormap(norm)).resize(photo.size, Image.BILINEAR)
    out = Image.blend(photo.convert("RGB"), heat, alpha)
    if box is not None and box[0] >= 0:
        sx, sy = photo.width / mw, photo.height / mh
        x1, y1, x2, y2 = box
        ImageDraw.Draw(out).rectangle([x1 * sx, y1 * sy, (x2 + 1) * sx - 1, (y2 + 1) * sy - 1],
                                      outline=(255, 40, 40), width=max(2, photo.width // 200))
    return out


def main():
    ap = argparse.ArgumentParser(description="CHIP explanation of a photo through Triton")
    ap.add_argument("image", type=pathlib.Path)
    ap.add_argument("--url", default=None, help="server address (default 127.0.0.1:8000 http, :8001 grpc)")
    ap.add_argument("--protocol", choices=["http", "grpc"], default="http")
    ap.add_argument("--model", default="chip_lite0")
    ap.add_argument("--class", dest="target", type=int, default=-1, help="class to explain (-1: top-1)")
    ap.add_argument("--layer", default="refined",
                    help="map to save: 'refined' or a fitted layer's index (0 = first in fit_files)")
    ap.add_argument("--labels", type=pathlib.Path,
                    default=pathlib.Path(__file__).resolve().parents[2] / "data/models/imagenet_classes.txt")
    ap.add_argument("--out", type=pathlib.Path, default=None, help="PNG to write (default <image stem>_chip.png)")
    args = ap.parse_args()

    if args.protocol == "http":
        import tritonclient.http as mod
        url = args.url or "127.0.0.1:8000"
    else:
        import tritonclient.grpc as mod
        url = args.url or "127.0.0.1:8001"
    client = mod.InferenceServerClient(url)

    data = args.image.read_bytes()
    image_bytes = mod.InferInput("IMAGE_BYTES", [1, 1], "BYTES")
    image_bytes.set_data_from_numpy(np.array([[data]], dtype=np.object_))
    target = mod.InferInput("CLASS", [1, 1], "INT32")
    target.set_data_from_numpy(np.array([[args.target]], dtype=np.int32))
    result = client.infer(args.model, [image_bytes, target], outputs=[mod.InferRequestedOutput(o) for o in OUTPUTS])
    out = {o: result.as_numpy(o)[0] for o in OUTPUTS}
    client.close()

    labels = args.labels.read_text().splitlines() if args.labels.exists() else None
    name = (lambda c: labels[c] if labels and c < len(labels) else str(c))
    probs = out["PROBABILITIES"]
    print(f"top-1: {name(int(out['TOP1'][0]))}")
    for c in np.argsort(-probs)[:5]:
        print(f"  {probs[c]:.3f}  {c:4d}  {name(int(c))}")
    explained = int(out["TOP1"][0]) if args.target < 0 else args.target
    print(f"explained class: {explained} {name(explained)}; box (input pixels): {out['BOX'].tolist()}")

    if args.layer == "refined":
        m = out["REFINED_MAP"]
        box = out["BOX"]  # the example configuration takes boxes from Refined CHIP
    else:
        m = out["CHIP_MAP"][int(args.layer)]
        box = None
    path = args.out or args.image.with_name(args.image.stem + "_chip.png")
    overlay(Image.open(args.image), m, box).save(path)
    print(f"saved {path}")


if __name__ == "__main__":
    main()
