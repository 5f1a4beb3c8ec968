"""The chip package against independent references: ONNX Runtime's own Python API, libchip's C ABI
(ctypes on libchip.so) and the chip command line. Small fits (conv head, 16 gates, a few photos, a
few classes) keep it quick."""
import ctypes
import inspect
import json
import pathlib
import pickle
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import chip
from conftest import CLI, HEAD, LIBCHIP, MODEL, ROOT, STEM

SMALL = dict(gates=16, mosaics=0, image_batch=4)


@pytest.fixture(scope="module")
def four(photos):
    return photos[:4]


@pytest.fixture(scope="module")
def classes(model, four):
    probs = model.predict(chip.preprocess(model, four).data)
    return sorted({int(c) for c in probs.argmax(axis=1)})


@pytest.fixture(scope="module")
def head_fit(model, four, classes):
    return chip.fit_layer(model, HEAD, four, classes=classes, **SMALL)


# ------------------------------------------------------------------------------------- basics --

def test_version_is_the_crates():
    cargo = (ROOT / "Cargo.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', cargo, re.M).group(1)
    assert chip.__version__ == version
    assert chip._chip.LIBCHIP_VERSION == version


def test_model_properties(model):
    assert model.input_size == chip.Size(224, 224)
    assert model.input_size.width == 224 and isinstance(model.input_size, tuple)
    assert model.classes == 1000
    assert len(model.fingerprint) == 64
    assert model.labels is not None and len(model.labels) == 1000
    assert model.label(1) == model.labels[1]
    layers = model.layers()
    assert layers[0].name == STEM and (layers[0].channels, layers[0].height, layers[0].width) == (32, 112, 112)
    assert layers[-1].name == HEAD and (layers[-1].channels, layers[-1].height, layers[-1].width) == (1280, 7, 7)
    stem, head = model.default_layers()
    assert isinstance(head, chip.Layer) and head.name == HEAD
    assert "224x224" in repr(model)


def test_keyword_defaults_are_the_librarys():
    lib = chip.fit_options_default()
    sig = inspect.signature(chip.fit_layer).parameters
    for name, value in lib.items():
        assert sig[name].default == value, name
    for fn in (chip.collect_stats, chip.solve):
        for name, p in inspect.signature(fn).parameters.items():
            if name in lib:
                assert p.default == lib[name], (fn.__name__, name)


def test_ort_library_and_the_wheel():
    path = chip.ort_library()
    assert "libonnxruntime.so" in path
    wheel = chip.onnxruntime_wheel_lib()
    assert wheel is not None and "onnxruntime/capi/libonnxruntime.so" in wheel
    # A fresh process told to use the wheel's library loads that one.
    code = "import chip, sys; print(chip.ort_library(sys.argv[1]))"
    out = subprocess.run([sys.executable, "-c", code, wheel], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == wheel


# ---------------------------------------------------------------------------- preprocessing --

def test_preprocess_and_predict_equal_onnxruntime(model, four):
    import onnxruntime as ort
    from PIL import Image

    prepared = chip.preprocess(model, four)
    assert isinstance(prepared, chip.Prepared) and len(prepared) == 4
    assert prepared.data.dtype == np.float32 and prepared.data.shape == (4, 3, 224, 224)
    assert prepared.data.flags.c_contiguous
    assert prepared.sizes == [chip.Size(*Image.open(p).size) for p in four]
    # Encoded bytes preprocess the same as files.
    again = chip.preprocess(model, [pathlib.Path(p).read_bytes() for p in four])
    np.testing.assert_array_equal(again.data, prepared.data)

    probs = model.predict(prepared.data)
    assert probs.shape == (4, 1000) and probs.dtype == np.float32
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    raw = sess.run(None, {sess.get_inputs()[0].name: prepared.data})[0].astype(np.float64)
    ref = np.exp(raw - raw.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, ref, atol=1e-5)


def test_array_checks(model, four):
    data = chip.preprocess(model, four).data
    with pytest.raises(chip.InvalidArgumentError, match="dtype float32"):
        model.predict(data.astype(np.float64))
    with pytest.raises(chip.InvalidArgumentError, match="4 dimensions"):
        model.predict(data[0])
    with pytest.raises(chip.InvalidArgumentError, match="C-contiguous"):
        model.predict(np.asfortranarray(data))
    with pytest.raises(chip.InvalidArgumentError, match="C-contiguous"):
        model.predict(data[:, :, ::2, ::2])
    with pytest.raises(chip.InvalidArgumentError, match="numpy array"):
        model.predict([1.0, 2.0])
    with pytest.raises(chip.InvalidArgumentError):
        model.predict(data[:, :, :200, :200].copy())  # wrong spatial size: the library's check
    with pytest.raises(chip.InvalidArgumentError, match="bytes"):
        chip.preprocess(model, b"\xff\xd8")


# ----------------------------------------------------------------------------------------- fits --

def c_api_weights(chip_file, classes):
    """W rows read through libchip's C ABI (chip_layer_fit_load / chip_layer_fit_weights_row)."""
    lib = ctypes.CDLL(str(LIBCHIP))
    fit = ctypes.c_void_p()
    assert lib.chip_layer_fit_load(str(chip_file).encode(), ctypes.byref(fit)) == 0
    try:
        k = ctypes.c_size_t()
        assert lib.chip_layer_fit_channel_count(fit, ctypes.byref(k)) == 0
        rows = []
        for c in classes:
            buf = (ctypes.c_float * k.value)()
            n = ctypes.c_size_t()
            assert lib.chip_layer_fit_weights_row(fit, ctypes.c_size_t(c), buf, k, ctypes.byref(n)) == 0
            rows.append(np.frombuffer(buf, dtype=np.float32, count=n.value).copy())
        return np.stack(rows)
    finally:
        lib.chip_layer_fit_free.argtypes = [ctypes.c_void_p]
        lib.chip_layer_fit_free(fit)


def test_fit_equals_the_c_api(head_fit, four, classes, tmp_path):
    w = head_fit.weights
    assert w.dtype == np.float32 and w.shape == (1000, 1280) and w.flags.c_contiguous
    assert not w.flags.writeable
    assert head_fit.solved_classes == classes
    unsolved = np.setdiff1d(np.arange(1000), classes)
    assert not w[unsolved].any()
    assert np.abs(w[classes]).max() > 0
    assert (head_fit.layer, head_fit.channels, head_fit.height, head_fit.width) == (HEAD, 1280, 7, 7)
    assert (head_fit.gates, head_fit.images, head_fit.mosaics) == (16, 4, 0)
    assert head_fit.target == "log-probability" and head_fit.intercept

    listing = tmp_path / "photos.txt"
    listing.write_text("\n".join(four) + "\n")
    out = tmp_path / "cli.chip"
    subprocess.run([str(CLI), "fit", "--model", str(MODEL), "--layer", HEAD, "--images", str(listing),
                    "--gates", "16", "--mosaics", "0", "--image-batch", "4",
                    "--classes", ",".join(map(str, classes)), "--out", str(out)], check=True, capture_output=True)
    np.testing.assert_allclose(w[classes], c_api_weights(out, classes), atol=1e-5, rtol=0)
    # A list file is read as the library reads it, and gives the same fit as the list of paths.
    assert chip.list_images(listing) == four
    assert chip.fit_layer(chip.Model(MODEL), HEAD, str(listing), classes=classes, **SMALL) == head_fit


def test_fit_from_arrays_bytes_and_prepared_agree(model, four, classes, head_fit):
    prepared = chip.preprocess(model, four)
    from_prepared = chip.fit_layer(model, HEAD, prepared, classes=classes, **SMALL)
    from_array = chip.fit_layer(model, HEAD, prepared.data, classes=classes, **SMALL)
    from_bytes = chip.fit_layer(model, HEAD, [pathlib.Path(p).read_bytes() for p in four], classes=classes, **SMALL)
    np.testing.assert_array_equal(from_prepared.weights, head_fit.weights)
    np.testing.assert_array_equal(from_array.weights, head_fit.weights)
    np.testing.assert_array_equal(from_bytes.weights, head_fit.weights)


def test_shards_merge_and_solve(model, four, classes, head_fit, tmp_path):
    a = chip.collect_stats(model, HEAD, four[:2], **SMALL)
    b = chip.collect_stats(model, HEAD, four[2:], **SMALL)
    assert (a.images, b.images, a.layer, a.gates, a.channels, a.classes) == (2, 2, HEAD, 16, 1280, 1000)
    merged = chip.merge([a, b])
    assert merged.images == 4 and a.images == 2  # inputs unchanged
    fit = chip.solve(model, merged, classes=classes)
    # Summing b over shards changes the f64 rounding order, so W agrees to 1e-6, not bit for bit.
    np.testing.assert_allclose(fit.weights, head_fit.weights, atol=1e-6, rtol=0)
    # In place, the same order: bit-identical statistics.
    c = a.copy()
    c.merge(b)
    assert c == merged

    # Files and bytes round-trip exactly; saves leave no temporary behind.
    merged.save(tmp_path / "m.stats")
    assert chip.Stats.load(tmp_path / "m.stats") == merged
    assert chip.Stats.from_bytes(merged.to_bytes()) == merged
    assert pickle.loads(pickle.dumps(merged)) == merged
    fit.save(tmp_path / "f.chip")
    assert chip.LayerFit.load(tmp_path / "f.chip") == fit
    assert chip.LayerFit.from_bytes(fit.to_bytes()) == fit
    assert pickle.loads(pickle.dumps(fit)) == fit
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.chip", "m.stats"]
    assert "4 images" in repr(merged) and HEAD in repr(fit)


def test_progress_and_cancellation(model, four, classes):
    seen = []

    def record(kind, done, total):
        seen.append((kind, done, total))

    chip.fit_layer(model, HEAD, four[:2], classes=classes, progress=record, **SMALL)
    kinds = {k for k, _, _ in seen}
    assert kinds == {"images", "suffix_runs", "classes"}
    assert ("images", 2, 2) in seen and ("classes", len(classes), len(classes)) in seen

    calls = []

    def stop(kind, done, total):
        calls.append(kind)
        return False

    with pytest.raises(chip.CancelledError) as e:
        chip.fit_layer(model, HEAD, four, classes=classes, progress=stop, **SMALL)
    assert e.value.status == 15 and len(calls) == 1

    def boom(kind, done, total):
        raise KeyError("from the callback")

    with pytest.raises(KeyError, match="from the callback"):
        chip.collect_stats(model, HEAD, four, progress=boom, **SMALL)

    # progress=True: a tqdm bar when tqdm is installed, else silently nothing.
    stats = chip.collect_stats(model, HEAD, four[:1], progress=True, **SMALL)
    assert stats.images == 1


def test_gil_is_released_during_onnx_runtime_calls(model, photos):
    import time

    data = chip.preprocess(model, photos[:16]).data
    data = np.ascontiguousarray(np.concatenate([data, data]))
    stamps = []
    running = threading.Event()
    finished = threading.Event()

    def tick():
        running.set()
        while not finished.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)  # needs the GIL back to return

    t = threading.Thread(target=tick)
    t.start()
    running.wait()
    t0 = time.perf_counter()
    model.predict(data)  # one ONNX Runtime call, no callback
    t1 = time.perf_counter()
    finished.set()
    t.join()
    during = [s for s in stamps if t0 <= s <= t1]
    # With the GIL held through the call the other thread would stop for all of it.
    gap = float(np.diff([t0, *during, t1]).max())
    assert gap < (t1 - t0) / 2, (gap, t1 - t0, len(during))


# ------------------------------------------------------------------------------------ explain --

def test_explain_shapes_and_equality_with_the_cli(model, four, classes, head_fit, tmp_path):
    ex = chip.Explainer(model, [head_fit])
    assert ex.layers == [HEAD]
    out = ex.explain(four, classes=classes[:1], original_size=False)
    assert isinstance(out, chip.Explanation) and len(out) == 4
    assert out.maps.dtype == np.float32 and out.maps.shape == (4, 1, 1, 224, 224) and out.maps.flags.c_contiguous
    assert out.boxes.dtype == np.int32 and out.boxes.shape == (4, 1, 1, 4)
    assert out.probabilities.shape == (4, 1000)
    np.testing.assert_allclose(out.probabilities.sum(axis=1), 1, atol=1e-4)
    assert out.classes.dtype == np.int64 and (out.classes == classes[0]).all()
    np.testing.assert_array_equal(out.scores[:, 0], out.probabilities[:, classes[0]])
    assert out.refined is None and out.refined_boxes is None
    # Maps are max(0, Σ W·A) upsampled, so never negative; boxes lie inside the map or are all −1.
    assert (out.maps >= 0).all()
    for b in out.boxes.reshape(-1, 4):
        assert (b == -1).all() or (0 <= b[0] <= b[2] < 224 and 0 <= b[1] <= b[3] < 224)

    # Top-1 at each photo's original size (the default, as in Rust and C) equals `chip explain --save-map`
    # (the same library via the CLI).
    top = ex.explain(four)
    fit_file = tmp_path / "head.chip"
    head_fit.save(fit_file)
    res = subprocess.run([str(CLI), "explain", "--model", str(MODEL), "--fit", str(fit_file), *four,
                          "--out", str(tmp_path / "cli"), "--save-map", "--json"],
                         check=True, capture_output=True, text=True)
    records = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 4
    for i, rec in enumerate(records):
        assert top.sizes[i] == chip.Size(rec["width"], rec["height"])
        c = rec["classes"][0]
        assert top.classes[i, 0] == c["class"]
        assert abs(top.scores[i, 0] - c["probability"]) < 1e-5
        cli_map = np.load(c["layers"][0]["map"])
        ours = top.maps[i][0, 0]
        assert ours.shape == cli_map.shape == (rec["height"], rec["width"])
        np.testing.assert_allclose(ours, cli_map, atol=1e-5 * max(1.0, float(cli_map.max())))
        cli_box = c["layers"][0]["box"]
        assert top.boxes[i, 0, 0].tolist() == cli_box


def test_explain_refined_and_inputs(model, four, classes, head_fit):
    stem_fit = chip.fit_layer(model, STEM, four[:2], classes=classes, gates=8, mosaics=0)
    ex = chip.Explainer(model, [stem_fit, head_fit])
    out = ex.explain(chip.preprocess(model, four[:2]), classes=classes[:1], refined=True, original_size=False)
    assert out.maps.shape == (2, 1, 2, 224, 224)
    assert out.refined.shape == (2, 1, 224, 224) and out.refined_boxes.shape == (2, 1, 4)
    np.testing.assert_allclose(out.refined, out.maps[:, :, 0] * out.maps[:, :, 1], rtol=1e-5, atol=1e-12)
    # A float32 array with no sizes: boxes in input pixels; the same maps as from the files.
    arr = ex.explain(chip.preprocess(model, four[:2]).data, classes=classes[:1])
    np.testing.assert_array_equal(arr.maps, out.maps)
    assert arr.sizes == [chip.Size(224, 224)] * 2
    # An unsolved class in `classes` is refused with the library's message.
    unsolved = next(c for c in range(1000) if c not in classes)
    with pytest.raises(chip.InvalidArgumentError, match="not solved"):
        ex.explain(four[:1], classes=[unsolved])
    with pytest.raises(chip.InvalidArgumentError, match="top-k"):
        ex.explain(four[:1], top_k=0)


def test_explain_from_threads(model, four, head_fit):
    ex = chip.Explainer(model, [head_fit])
    ref = ex.explain(four, original_size=False).maps
    results = [None] * 4

    def work(i):
        results[i] = ex.explain(four, original_size=False).maps

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, ref)


# ------------------------------------------------------------------------------------- errors --

def test_error_types(model, four, head_fit, tmp_path):
    def check(exc, status, fn, match):
        with pytest.raises(exc, match=match) as e:
            fn()
        assert isinstance(e.value, chip.ChipError)
        assert e.value.status == status and e.value.message == str(e.value)
        return e.value

    check(chip.InvalidArgumentError, 1, lambda: chip.fit_layer(model, HEAD, four, gates=0), "gates must be at least 1")
    check(chip.InvalidArgumentError, 1, lambda: chip._chip.fit_layer(model, HEAD, four, {"bogus": 1}), "unknown fit option 'bogus'")
    check(chip.InvalidArgumentError, 1, lambda: chip.fit_layer(model, HEAD, four, target="nope"), "unknown target 'nope'")
    check(chip.InvalidArgumentError, 1, lambda: chip.merge([]), "at least one")
    check(chip.IoError, 5, lambda: chip.Model(tmp_path / "missing.onnx"), "missing.onnx")
    check(chip.IoError, 5, lambda: chip.LayerFit.load(tmp_path / "missing.chip"), "missing.chip")
    check(chip.IoError, 5, lambda: head_fit.save(tmp_path / "no" / "such" / "dir.chip"), "dir.chip")

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    check(chip.ModelError, 8, lambda: chip.Model(garbage), "garbage.onnx")
    # The CPU-only ONNX Runtime of this tree refuses to run on CUDA (on a CUDA build this loads).
    if "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers():
        check(chip.OrtError, 7, lambda: chip.Model(MODEL, device="cuda:0"), "CUDA")
    check(chip.InvalidArgumentError, 1, lambda: chip.Model(MODEL, device="tpu"), "device 'tpu'")

    check(chip.UnknownLayerError, 9, lambda: chip.fit_layer(model, "/no/such/layer", four), "unknown layer '/no/such/layer'")

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(pathlib.Path(four[0]).read_bytes()[:2000])
    check(chip.ImageError, 10, lambda: chip.collect_stats(model, HEAD, [four[1], str(broken)], **SMALL), "broken.jpg")

    check(chip.FitFileError, 11, lambda: chip.LayerFit.from_bytes(b"not a fit at all"), "not a CHIP fit file")
    check(chip.FitFileError, 11, lambda: chip.Stats.from_bytes(b"CHIPSTAT\x03\x00"), ".")
    raw = bytearray(head_fit.to_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    check(chip.FitVersionError, 12, lambda: chip.LayerFit.from_bytes(bytes(raw)), "version 99")

    a = chip.collect_stats(model, HEAD, four[:1], **SMALL)
    b = chip.collect_stats(model, HEAD, four[:1], **{**SMALL, "gates": 8})
    check(chip.FitMismatchError, 13, lambda: a.merge(b), "another gate set")
    check(chip.FitMismatchError, 13, lambda: chip.solve(model, a, target="probability"), "target")

    nan = chip.preprocess(model, four[:1]).data.copy()
    nan[0, 0, 0, 0] = np.nan
    check(chip.NonFiniteError, 14, lambda: chip.collect_stats(model, HEAD, nan, **SMALL), "non-finite")
    check(chip.CancelledError, 15, lambda: chip.collect_stats(model, HEAD, four[:1], progress=lambda *a: False, **SMALL), "cancelled")

    # Classes for the two that cannot be provoked here (ONNX Runtime is always found in this
    # tree, and the library does not panic): their status codes as in chip.h.
    assert chip.OrtNotFoundError("x").status == 6 and chip.PanicError("x").status == 16
    # Exceptions pickle with their status (Ray ships them between processes).
    e = pickle.loads(pickle.dumps(chip.ImageError("image x: bad", 10)))
    assert type(e) is chip.ImageError and e.status == 10 and str(e) == "image x: bad"


# ------------------------------------------------------------------------------ preprocessing --

NORM_0_1 = {"mean": [0, 0, 0], "std": [255, 255, 255]}


def test_preprocess_spec_as_dict_str_or_path(model, four, head_fit, tmp_path):
    side = model.preprocess
    assert set(side) == {"spec", "sources", "fingerprint"} and len(side["fingerprint"]) == 64
    assert side["sources"]["mean"] == "sidecar" and side["spec"]["mean"] == [127.0, 127.0, 127.0]
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(NORM_0_1))
    models = [chip.Model(MODEL, preprocess=p) for p in (NORM_0_1, json.dumps(NORM_0_1), spec_file, str(spec_file))]
    for m in models:
        d = m.preprocess
        assert d["sources"]["mean"] == "given" and d["sources"]["std"] == "given", d
        assert d["sources"]["scale"] == "sidecar" and d["spec"]["std"] == [255.0, 255.0, 255.0], d
        assert d["fingerprint"] == models[0].preprocess["fingerprint"] != side["fingerprint"]
    given = models[0]
    # The sidecar's x = (p - 127) / 128, re-normalised here to p / 255, is the spec's tensor.
    a = chip.preprocess(model, four[:2]).data
    b = chip.preprocess(given, four[:2]).data
    np.testing.assert_allclose(b, (a * 128 + 127) / 255, atol=1e-5)
    moved = np.abs(model.predict(a) - given.predict(b)).max()
    assert moved > 1e-3, moved
    # A fit made under the sidecar's preprocessing is refused under another.
    with pytest.raises(chip.FitMismatchError, match="another preprocessing.*mean"):
        chip.Explainer(given, [head_fit])


def test_preprocess_spec_errors(tmp_path):
    with pytest.raises(chip.InvalidArgumentError, match="unknown key 'colour'.*known keys") as e:
        chip.Model(MODEL, preprocess={"mean": 0.5, "colour": "RGB"})
    assert e.value.status == 1
    with pytest.raises(chip.InvalidArgumentError, match="'resize'"):
        chip.Model(MODEL, preprocess='{"resize": "squash"}')
    with pytest.raises(chip.InvalidArgumentError, match="expected a dict, a JSON object as a str, or the path"):
        chip.Model(MODEL, preprocess=42)
    with pytest.raises(chip.InvalidArgumentError, match="not JSON-serialisable"):
        chip.Model(MODEL, preprocess={"mean": object()})
    with pytest.raises(chip.IoError, match="missing.json"):
        chip.Model(MODEL, preprocess=tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"std": 1, "size": 3}')
    with pytest.raises(chip.InvalidArgumentError, match="bad.json.*unknown key 'size'"):
        chip.Model(MODEL, preprocess=bad)


def test_preprocess_warning_names_the_assumed_keys(model, tmp_path):
    # The model without its sidecar: nothing states the normalisation.
    bare = tmp_path / "bare.onnx"
    bare.symlink_to(MODEL)
    with pytest.warns(chip.PreprocessWarning, match=r"does not state these keys; assumed .*mean=.*std=") as w:
        m = chip.Model(bare)
    assert issubclass(chip.PreprocessWarning, UserWarning)
    assert str(bare) in str(w[0].message)
    assumed = {k for k, v in m.preprocess["sources"].items() if v in ("assumed", "probe")}
    assert {"mean", "std", "scale"} <= assumed
    for k in assumed:
        assert f"{k}=" in str(w[0].message)
    # Every key stated: no warning.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", chip.PreprocessWarning)
        full = chip.Model(bare, preprocess=model.preprocess["spec"])
    assert "assumed" not in full.preprocess["sources"].values()
