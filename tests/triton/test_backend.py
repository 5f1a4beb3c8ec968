"""The chip backend in the real tritonserver, through tritonclient over HTTP and gRPC, compared with
libchip's C API on the same model, fits and photos."""
import concurrent.futures as cf
import pathlib
import time

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from harness import MODEL, MODEL_NAME, PHOTOS, Server, add_model, config_text, model_files

TOL = 1e-5
ALL_OUTPUTS = ["PROBABILITIES", "TOP1", "CHIP_MAP", "REFINED_MAP", "BOX"]
PROTOCOLS = {"http": httpclient, "grpc": grpcclient}


def client_for(server, protocol):
    return server.client(protocol)


def bytes_input(mod, images, batched=True):
    arr = np.array([[img] for img in images] if batched else [images[0]], dtype=np.object_)
    t = mod.InferInput("IMAGE_BYTES", list(arr.shape), "BYTES")
    t.set_data_from_numpy(arr)
    return t


def tensor_input(mod, tensor, dtype="FP32"):
    t = mod.InferInput("IMAGE", list(tensor.shape), dtype)
    t.set_data_from_numpy(tensor)
    return t


def class_input(mod, classes, batched=True):
    arr = np.array([[c] for c in classes] if batched else [classes[0]], dtype=np.int32)
    t = mod.InferInput("CLASS", list(arr.shape), "INT32")
    t.set_data_from_numpy(arr)
    return t


def infer(client, mod, inputs, outputs=ALL_OUTPUTS, model=MODEL_NAME):
    req = [mod.InferRequestedOutput(o) for o in outputs]
    result = client.infer(model, inputs, outputs=req)
    return {o: result.as_numpy(o) for o in outputs}


def assert_matches(got, ref, outputs=ALL_OUTPUTS):
    """`got` holds one image's outputs (no batch dimension)."""
    if "PROBABILITIES" in outputs:
        d = np.abs(got["PROBABILITIES"] - ref["PROBABILITIES"]).max()
        assert d <= TOL, f"PROBABILITIES differ by {d}"
    if "TOP1" in outputs:
        assert int(got["TOP1"][0]) == ref["TOP1"]
    if "CHIP_MAP" in outputs:
        assert got["CHIP_MAP"].shape == ref["CHIP_MAP"].shape
        d = np.abs(got["CHIP_MAP"] - ref["CHIP_MAP"]).max()
        assert d <= TOL, f"CHIP_MAP differs by {d}"
        assert ref["CHIP_MAP"].max() > 0, "the reference map is empty: the test would prove little"
    if "REFINED_MAP" in outputs:
        d = np.abs(got["REFINED_MAP"] - ref["REFINED_MAP"]).max()
        assert d <= TOL, f"REFINED_MAP differs by {d}"
    if "BOX" in outputs:
        assert list(got["BOX"]) == list(ref["BOX"])


@pytest.fixture(scope="module")
def photos():
    return [p.read_bytes() for p in PHOTOS]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_photos_match_the_c_api(server, reference, fits, photos, protocol):
    mod = PROTOCOLS[protocol]
    client = client_for(server, protocol)
    for path, data in zip(PHOTOS, photos):
        ref = reference.explain_encoded(data)
        assert ref["TOP1"] == fits["top1"][path.name]
        got = infer(client, mod, [bytes_input(mod, [data])])
        assert_matches({k: v[0] for k, v in got.items()}, ref)
        assert got["CHIP_MAP"].shape == (1, 2, 224, 224)
        assert got["BOX"].dtype == np.int32 and got["TOP1"].dtype == np.int32


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_float_tensor_input_matches_the_c_api(server, reference, protocol):
    mod = PROTOCOLS[protocol]
    client = client_for(server, protocol)
    tensor = reference.preprocess_file(PHOTOS[0])
    ref = reference.explain_tensor(tensor)
    got = infer(client, mod, [tensor_input(mod, tensor[None].astype(np.float32))])
    assert_matches({k: v[0] for k, v in got.items()}, ref)
    # Decoding in the server gives the same as decoding here.
    by_bytes = infer(client, mod, [bytes_input(mod, [PHOTOS[0].read_bytes()])])
    assert np.abs(by_bytes["CHIP_MAP"] - got["CHIP_MAP"]).max() <= TOL


def test_target_class(server, reference, fits, photos):
    client = client_for(server, "http")
    mod = httpclient
    top1 = fits["top1"][PHOTOS[0].name]
    other = next(c for c in fits["classes"] if c != top1)
    ref = reference.explain_encoded(photos[0], target=other)
    assert ref["CLASS"] == other and ref["TOP1"] == top1
    got = infer(client, mod, [bytes_input(mod, [photos[0]]), class_input(mod, [other])])
    assert_matches({k: v[0] for k, v in got.items()}, ref)
    # -1 means the top-1 class.
    got = infer(client, mod, [bytes_input(mod, [photos[0]]), class_input(mod, [-1])])
    assert_matches({k: v[0] for k, v in got.items()}, reference.explain_encoded(photos[0]))


def test_predictions_only(server, reference, photos):
    client = client_for(server, "grpc")
    mod = grpcclient
    got = infer(client, mod, [bytes_input(mod, [photos[1]])], outputs=["PROBABILITIES", "TOP1"])
    assert set(got) == {"PROBABILITIES", "TOP1"}
    assert_matches({k: v[0] for k, v in got.items()}, reference.explain_encoded(photos[1]), ["PROBABILITIES", "TOP1"])
    np.testing.assert_allclose(got["PROBABILITIES"].sum(), 1.0, atol=1e-4)


def test_batch_in_one_request_equals_single_requests(server, reference, photos):
    client = client_for(server, "http")
    mod = httpclient
    # Mixed targets in one request: top-1 for two images, a fixed class for the third.
    got = infer(client, mod, [bytes_input(mod, photos), class_input(mod, [-1, -1, 285])])
    assert got["CHIP_MAP"].shape == (3, 2, 224, 224)
    for i, data in enumerate(photos):
        ref = reference.explain_encoded(data, target=285 if i == 2 else None)
        assert_matches({k: v[i] for k, v in got.items()}, ref)


def test_model_without_batching(server, reference_last, photos):
    client = client_for(server, "grpc")
    mod = grpcclient
    got = infer(client, mod, [bytes_input(mod, [photos[2]], batched=False)],
                outputs=["PROBABILITIES", "TOP1", "CHIP_MAP", "BOX"], model="chip_nobatch")
    assert got["CHIP_MAP"].shape == (2, 224, 224) and got["BOX"].shape == (4,)
    assert_matches(got, reference_last.explain_encoded(photos[2]), ["PROBABILITIES", "TOP1", "CHIP_MAP", "BOX"])


def test_concurrent_clients_are_batched_and_correct(server, reference, photos):
    refs = [reference.explain_encoded(p) for p in photos]
    stats_client = server.client()

    def counts():
        s = stats_client.get_inference_statistics(MODEL_NAME)["model_stats"][0]
        return s["inference_count"], s["execution_count"]

    inf0, exe0 = counts()

    def worker(k):
        protocol = "http" if k % 2 == 0 else "grpc"
        mod = PROTOCOLS[protocol]
        client = client_for(server, protocol)
        for j in range(4):
            i = (k + j) % len(photos)
            outputs = ALL_OUTPUTS if j % 2 == 0 else ["PROBABILITIES", "TOP1"]
            got = infer(client, mod, [bytes_input(mod, [photos[i]])], outputs=outputs)
            assert_matches({k2: v[0] for k2, v in got.items()}, refs[i], outputs)
        return True

    with cf.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(worker, range(8)))
    # Statistics are reported just after the responses go out.
    for _ in range(50):
        inf1, exe1 = counts()
        if inf1 - inf0 >= 32:
            break
        time.sleep(0.1)
    assert inf1 - inf0 == 32
    # Dynamic batching joined requests: fewer executions than requests.
    assert exe1 - exe0 < 32, (inf1 - inf0, exe1 - exe0)


def expect_error(fn, *needles):
    with pytest.raises(InferenceServerException) as e:
        fn()
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    return msg


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_bad_requests_get_errors_and_the_server_keeps_serving(server, reference, photos, protocol):
    mod = PROTOCOLS[protocol]
    client = client_for(server, protocol)
    good = lambda: infer(client, mod, [bytes_input(mod, [photos[0]])])  # noqa: E731
    # Wrong shape and wrong type are refused by Triton against the configuration.
    expect_error(lambda: infer(client, mod, [tensor_input(mod, np.zeros((1, 3, 100, 100), np.float32))]), "IMAGE")
    expect_error(lambda: infer(client, mod, [tensor_input(mod, np.zeros((1, 3, 224, 224), np.float64), "FP64")]), "IMAGE")
    # The backend's own checks.
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [b"this is not an image"])]), "IMAGE_BYTES[0]")
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [b""])]), "IMAGE_BYTES[0] is empty")
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [photos[0][: len(photos[0]) // 3]])]), "IMAGE_BYTES[0]")
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [photos[0]]), class_input(mod, [1000])]),
                 "CLASS 1000 is out of range")
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [photos[0]]), class_input(mod, [-2])]), "CLASS -2")
    nan = np.zeros((1, 3, 224, 224), np.float32)
    nan[0, 1, 5, 7] = np.nan
    expect_error(lambda: infer(client, mod, [tensor_input(mod, nan)]), "non-finite")
    expect_error(lambda: infer(client, mod, [tensor_input(mod, np.zeros((1, 3, 224, 224), np.float32)),
                                             bytes_input(mod, [photos[0]])]), "not both")
    expect_error(lambda: infer(client, mod, [class_input(mod, [1])]), "no image")
    # Triton itself checks that the inputs agree on the batch size.
    expect_error(lambda: infer(client, mod, [bytes_input(mod, [photos[0], photos[1]]), class_input(mod, [1])]),
                 "batch size")
    assert_matches({k: v[0] for k, v in good().items()}, reference.explain_encoded(photos[0]))


def test_a_bad_request_in_a_batch_fails_alone(server, reference, photos):
    ref = reference.explain_encoded(photos[1])

    def send(k):
        client = server.client()
        if k % 3 == 0:
            try:
                infer(client, httpclient, [bytes_input(httpclient, [b"\x89PNG garbage"])])
            except InferenceServerException as e:
                return "IMAGE_BYTES[0]" in str(e)
            return False
        got = infer(client, httpclient, [bytes_input(httpclient, [photos[1]])])
        assert_matches({k2: v[0] for k2, v in got.items()}, ref)
        return True

    with cf.ThreadPoolExecutor(6) as pool:
        assert all(pool.map(send, range(12)))


def test_unload_load_reload(server, reference, photos):
    client = server.client()
    before = infer(client, httpclient, [bytes_input(httpclient, [photos[2]])])
    client.unload_model(MODEL_NAME)
    assert not client.is_model_ready(MODEL_NAME)
    expect_error(lambda: infer(client, httpclient, [bytes_input(httpclient, [photos[2]])]))
    client.load_model(MODEL_NAME)
    assert client.is_model_ready(MODEL_NAME)
    after = infer(client, httpclient, [bytes_input(httpclient, [photos[2]])])
    for k in ALL_OUTPUTS:
        assert np.array_equal(before[k], after[k]), k
    # Reloading a loaded model replaces it in place.
    client.load_model(MODEL_NAME)
    assert_matches({k: v[0] for k, v in infer(client, httpclient, [bytes_input(httpclient, [photos[2]])]).items()},
                   reference.explain_encoded(photos[2]))


def altered_model_bytes():
    # The same graph with an unknown field appended (number 100, varint 1): parsers skip it, but the
    # file's fingerprint changes, so fits made on the original must be refused.
    return MODEL.read_bytes() + bytes([0xA0, 0x06, 0x01])


@pytest.mark.parametrize("case", ["missing_fit", "mismatched_fit", "truncated_fit", "wrong_dims", "missing_model"])
def test_models_that_must_not_load(server, repo, fits, case):
    client = server.client()
    name = f"bad_{case}"
    files = dict(model_files(), **{p.name: p for p in fits["paths"]})
    fit_names = [p.name for p in fits["paths"]]
    config = config_text(name, fit_names)
    if case == "missing_fit":
        config = config_text(name, [fit_names[0], "nowhere.chip"])
        want = ["fit file not found", "nowhere.chip"]
    elif case == "mismatched_fit":
        files["efficientnet_lite0.onnx"] = altered_model_bytes()
        want = ["fit files do not belong to model", "fit mismatch"]
    elif case == "truncated_fit":
        files[fit_names[1]] = fits["paths"][1].read_bytes()[:-100]
        want = ["cannot load fit file", fit_names[1]]
    elif case == "wrong_dims":
        config = config_text(name, fit_names, layers=3)
        want = ["CHIP_MAP has dims [3, 224, 224], the model gives [2, 224, 224]"]
    else:
        config = config_text(name, fit_names, model_file="absent.onnx")
        want = ["model file not found", "absent.onnx"]
    add_model(repo, name, config, files)
    msg = expect_error(lambda: client.load_model(name), *want)
    assert not client.is_model_ready(name), msg
    # The server still serves the good model.
    assert client.is_model_ready(MODEL_NAME)


SPEC_0_1 = '{"mean": [0, 0, 0], "std": [255, 255, 255]}'


def test_preprocess_parameter(server, repo, fits, photos):
    """Parameter `preprocess` reaches the model load: the predictions equal the C API's with the same
    spec in chip_model_options.preprocess, and differ from the sidecar's; fits made under the sidecar's
    preprocessing are refused, and a spec with an unknown key keeps the model from loading."""
    from chipref import Reference
    from harness import BUILD, ORT_LIB

    client = server.client()
    outputs = {"PROBABILITIES": ("TYPE_FP32", [1000]), "TOP1": ("TYPE_INT32", [1])}
    name = "chip_spec"
    add_model(repo, name, config_text(name, [], outputs=outputs, extra_params={"preprocess": SPEC_0_1}), model_files())
    client.load_model(name)
    got = infer(client, httpclient, [bytes_input(httpclient, [photos[0]])], outputs=["PROBABILITIES", "TOP1"], model=name)
    ref = Reference(BUILD / "libchip.so", MODEL, [], ORT_LIB, preprocess=SPEC_0_1)
    sidecar = Reference(BUILD / "libchip.so", MODEL, [], ORT_LIB)
    want = ref.predict_encoded(photos[0])
    d = np.abs(got["PROBABILITIES"][0] - want).max()
    assert d <= TOL, f"PROBABILITIES differ from the C API's under the same spec by {d}"
    assert int(got["TOP1"][0][0]) == int(want.argmax())
    assert np.abs(want - sidecar.predict_encoded(photos[0])).max() > 1e-3, "the spec changed nothing"
    client.unload_model(name)

    fit_names = [p.name for p in fits["paths"]]
    files = dict(model_files(), **{p.name: p for p in fits["paths"]})
    add_model(repo, "bad_spec_fits", config_text("bad_spec_fits", fit_names, extra_params={"preprocess": SPEC_0_1}), files)
    expect_error(lambda: client.load_model("bad_spec_fits"), "fit files do not belong to model", "another preprocessing", "mean")
    add_model(repo, "bad_spec_key", config_text("bad_spec_key", fit_names,
                                                extra_params={"preprocess": '{"mean": 0.5, "colour": "RGB"}'}), files)
    expect_error(lambda: client.load_model("bad_spec_key"), "parameter preprocess", "unknown key 'colour'")
    assert client.is_model_ready(MODEL_NAME)


def test_server_stops_cleanly(repo, backend_dir, tmp_path, photos):
    s = Server(repo, backend_dir, tmp_path / "tritonserver.log")
    try:
        client = s.client()
        client.load_model(MODEL_NAME)
        got = infer(client, httpclient, [bytes_input(httpclient, [photos[0]])], outputs=["TOP1"])
        assert got["TOP1"].shape == (1, 1)
    finally:
        rc = s.stop()
    log = pathlib.Path(tmp_path / "tritonserver.log").read_text(errors="replace")
    assert rc == 0, log[-3000:]
    assert "model 'chip' finalized" in log, log[-3000:]
    # ONNX Runtime was found beside the backend, as deployed.
    assert f"ready on Cpu (ONNX Runtime {backend_dir}/chip/libonnxruntime.so" in log, log[-3000:]
    assert "panicked" not in log
