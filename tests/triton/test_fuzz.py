"""The backend's request parser against random requests from a client: random tensors, shapes and
data types for IMAGE and CLASS, random and damaged bytes in IMAGE_BYTES (also as raw serialized BYTES
tensors whose length prefixes lie), unknown inputs and outputs. After every bad request the server
must still be up and answer a good request exactly as the C API does.

CHIP_TRITON_FUZZ_REQUESTS sets the number of random requests (default 150), CHIP_TRITON_FUZZ_SEED the seed.
"""
import json
import os
import re
import struct
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from harness import MODEL_NAME, PHOTOS
from test_backend import ALL_OUTPUTS, assert_matches, bytes_input, infer

REQUESTS = int(os.environ.get("CHIP_TRITON_FUZZ_REQUESTS", "150"))
SEED = int(os.environ.get("CHIP_TRITON_FUZZ_SEED", "20261"))
DTYPES = {"FP32": np.float32, "FP16": np.float16, "FP64": np.float64, "INT32": np.int32, "INT8": np.int8,
          "UINT8": np.uint8, "INT64": np.int64, "BOOL": np.bool_}
DIMS = [0, 1, 2, 3, 7, 224, 225]


@pytest.fixture(scope="module")
def photos():
    return [p.read_bytes() for p in PHOTOS]


def random_shape(rng, batched_image=False):
    if batched_image and rng.random() < 0.5:
        # Close to the real one: [n, 3, 224, 224] with one dimension off.
        shape = [int(rng.choice([1, 2])), 3, 224, 224]
        i = int(rng.integers(0, 4))
        shape[i] = int(rng.choice(DIMS))
        return shape
    return [int(rng.choice(DIMS[:5])) for _ in range(int(rng.integers(0, 5)))]


def random_array(rng, shape, dtype):
    n = int(np.prod(shape)) if shape else 1
    if n > 2_000_000:
        shape, n = [1, 3, 224, 224], 3 * 224 * 224
    if dtype == np.bool_:
        return rng.random(n).reshape(shape) < 0.5
    if np.issubdtype(dtype, np.floating):
        v = rng.standard_normal(n) * float(rng.choice([1, 1e3, 1e30]))
        if n > 0 and rng.random() < 0.3:
            v[rng.integers(0, n, size=max(1, n // 100))] = rng.choice([np.nan, np.inf, -np.inf])
        with np.errstate(over="ignore"):  # 1e30 becomes inf in FP16: wanted
            return v.astype(dtype).reshape(shape)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=n, dtype=dtype, endpoint=True).reshape(shape)


def damaged(rng, data):
    """A real photo with bit flips, a cut, random bytes spliced in, or its header dimensions raised."""
    b = bytearray(data)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        for _ in range(int(rng.integers(1, 20))):
            i = int(rng.integers(0, len(b)))
            b[i] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == 2:
        i = int(rng.integers(0, len(b)))
        b[i:i] = rng.bytes(int(rng.integers(1, 200)))
    elif b[:8] == b"\x89PNG\r\n\x1a\n":
        # IHDR width and height (CRC left stale or not).
        struct.pack_into(">II", b, 16, int(rng.choice([0, 16385, 100000, 2**31 - 1])), int(rng.choice([1, 16385, 2**31 - 1])))
    else:
        # A JPEG frame header's height and width.
        i = b.find(b"\xff\xc0")
        if i >= 0:
            struct.pack_into(">HH", b, i + 5, int(rng.choice([0, 16385, 65535])), int(rng.choice([0, 65535])))
    return bytes(b)


def random_image_bytes(rng, photos):
    kind = int(rng.integers(0, 4))
    if kind == 0:
        return rng.bytes(int(rng.integers(0, 3000)))
    if kind == 1:
        magic = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"II*\x00", b"RIFF\x00\x00\x00\x00WEBP"][int(rng.integers(0, 5))]
        return magic + rng.bytes(int(rng.integers(0, 500)))
    return damaged(rng, photos[int(rng.integers(0, len(photos)))])


def raw_http(server, rng, photos):
    """POST a binary request by hand: IMAGE_BYTES whose serialized elements (u32 length + bytes)
    are random, so the length prefixes can point past the end or leave stray bytes."""
    n = int(rng.choice([1, 1, 2, 3]))
    kind = int(rng.integers(0, 3))
    if kind == 0:
        body = rng.bytes(int(rng.integers(0, 64)))
    elif kind == 1:
        photo = photos[0]
        body = struct.pack("<I", int(rng.choice([len(photo) + 1, 2**32 - 1, len(photo) // 2]))) + photo
    else:
        body = b"".join(struct.pack("<I", len(e)) + e for e in [random_image_bytes(rng, photos) for _ in range(n)])
        if rng.random() < 0.5:
            body = body[: int(rng.integers(0, len(body) + 1))]
    header = {"inputs": [{"name": "IMAGE_BYTES", "shape": [n, 1], "datatype": "BYTES",
                          "parameters": {"binary_data_size": len(body)}}],
              "outputs": [{"name": o, "parameters": {"binary_data": True}} for o in ["TOP1", "BOX"]]}
    h = json.dumps(header).encode()
    req = urllib.request.Request(f"http://{server.http_url}/v2/models/{MODEL_NAME}/infer", data=h + body, method="POST",
                                 headers={"Inference-Header-Content-Length": str(len(h)),
                                          "Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return f"raw ok {r.status}"
    except urllib.error.HTTPError as e:
        return f"raw http {e.code} " + json.loads(e.read() or b"{}").get("error", "")[:60]


def random_request(server, client, mod, rng, photos):
    """Sends one random request; returns what happened ("ok ..." or "error ...")."""
    kind = int(rng.integers(0, 5))
    if kind == 4:
        return raw_http(server, rng, photos)
    inputs = []
    if kind == 0:
        name = str(rng.choice(list(DTYPES)))
        arr = random_array(rng, random_shape(rng, batched_image=True), DTYPES[name])
        t = mod.InferInput("IMAGE", list(arr.shape), name)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    elif kind == 1:
        n = int(rng.choice([1, 1, 2, 3]))
        inputs.append(bytes_input(mod, [random_image_bytes(rng, photos) for _ in range(n)]))
    elif kind == 2:
        # A good image with a random CLASS tensor.
        inputs.append(bytes_input(mod, [photos[0]]))
        name = str(rng.choice(["INT32", "INT32", "INT64", "FP32", "UINT8"]))
        shape = [1, 1] if rng.random() < 0.5 else random_shape(rng)
        arr = random_array(rng, shape, DTYPES[name])
        t = mod.InferInput("CLASS", list(arr.shape), name)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    else:
        # Strings where numbers belong, unknown input names, both image inputs.
        arr = np.array([[rng.bytes(int(rng.integers(0, 40)))]], dtype=np.object_)
        name = str(rng.choice(["IMAGE", "CLASS", "IMAGE_BYTES", "NOT_AN_INPUT"]))
        t = mod.InferInput(name, list(arr.shape), "BYTES")
        t.set_data_from_numpy(arr)
        inputs.append(t)
        if rng.random() < 0.5:
            inputs.append(bytes_input(mod, [photos[1]]))
    outputs = list(rng.choice(ALL_OUTPUTS, size=int(rng.integers(1, 4)), replace=False))
    if rng.random() < 0.1:
        outputs.append("NOT_AN_OUTPUT")
    try:
        infer(client, mod, inputs, outputs=outputs)
        return "ok"
    except InferenceServerException as e:
        return "error " + str(e)[:60]


def test_random_requests_never_take_the_server_down(server, reference, photos):
    rng = np.random.default_rng(SEED)
    clients = {"http": (server.client("http"), httpclient), "grpc": (server.client("grpc"), grpcclient)}
    ref = reference.explain_encoded(photos[0])
    outcomes = {}
    for i in range(REQUESTS):
        client, mod = clients["http" if i % 2 == 0 else "grpc"]
        what = random_request(server, client, mod, rng, photos)
        key = re.sub(r"\d+", "N", what)[:48]
        outcomes[key] = outcomes.get(key, 0) + 1
        assert server.proc.poll() is None, f"tritonserver died after request {i} ({what}):\n{server.log_text()[-4000:]}"
        got = infer(client, mod, [bytes_input(mod, [photos[0]])])
        assert_matches({k: v[0] for k, v in got.items()}, ref)
    print(f"{REQUESTS} random requests (seed {SEED}):", json.dumps(outcomes, indent=1))
    assert "panicked" not in server.log_text()
    # Most random requests must be refused: the generator is not just sending good ones.
    assert sum(v for k, v in outcomes.items() if k.startswith("error") or k.startswith("raw http")) > REQUESTS // 2, outcomes

