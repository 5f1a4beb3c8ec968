"""Shared fixtures: the real EfficientNet-Lite0, real photos, and the built libchip/CLI for references."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODEL = ROOT / "data" / "models" / "efficientnet_lite0.onnx"
PHOTOS = sorted((ROOT / "data" / "images" / "aib").glob("*.jpg"))
HEAD = "/_swish_1/Clip_output_0"
STEM = "/_conv_stem/Conv_output_0"
CLI = ROOT / "target" / "release" / "chip"
LIBCHIP = ROOT / "target" / "release" / "libchip.so"

# Ray otherwise replaces 127.0.0.1 by the machine's outward address when connecting, and the test
# cluster listens on loopback only.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("CHIP_ORT_LIB", str(ROOT / "third_party" / "onnxruntime" / "lib" / "libonnxruntime.so"))


@pytest.fixture(scope="session")
def model():
    import chip

    if not MODEL.is_file():
        pytest.fail(f"{MODEL} is missing: run scripts/setup.sh")
    return chip.Model(MODEL)


@pytest.fixture(scope="session")
def photos():
    assert len(PHOTOS) >= 16, "data/images/aib needs its photos: run scripts/setup.sh"
    return [str(p) for p in PHOTOS]
