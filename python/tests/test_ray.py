"""chip.ray on a real two-node local Ray cluster (two raylets bound to 127.0.0.1, one CPU each),
started here and stopped at the end."""
import faulthandler
import os
import pathlib
import signal
import time
import uuid

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

import chip
import chip.ray
from conftest import HEAD, MODEL

OPTS = dict(gates=16, mosaics=0, image_batch=4)
# Marks this test's Ray processes: the raylets inherit it, and so do their workers.
MARK = f"CHIP_RAY_TEST={uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def cluster():
    key, value = MARK.split("=")
    os.environ[key] = value
    # A cluster that cannot start must fail the run, not hang it: dump the stacks and exit.
    faulthandler.dump_traceback_later(400, exit=True)
    node = dict(num_cpus=1, node_ip_address="127.0.0.1", object_store_memory=80 * 1024 * 1024)
    c = Cluster(initialize_head=True, head_node_args=dict(node, include_dashboard=False))
    c.add_node(**node)
    c.connect()
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def twelve(photos):
    return photos[4:16]


@pytest.fixture(scope="module")
def classes(model, twelve):
    probs = model.predict(chip.preprocess(model, twelve[:4]).data)
    return sorted({int(c) for c in probs.argmax(axis=1)})[:2]


@pytest.fixture(scope="module")
def sharded_reference(model, twelve, classes):
    """The single-process fit over the same shards, merged in the same order."""
    shards = [chip.collect_stats(model, HEAD, twelve[i:i + 4], **OPTS) for i in range(0, 12, 4)]
    return chip.solve(model, chip.merge(shards), classes=classes)


def shard_workers():
    """Pids of this test cluster's workers that are running a shard right now."""
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if not (d / "cmdline").read_bytes().startswith(b"ray::chip_collect_shard"):
                continue
            if MARK.encode() in (d / "environ").read_bytes().split(b"\0"):
                pids.append(int(d.name))
        except OSError:
            pass
    return pids


def test_distributed_fit_equals_single_process(cluster, model, twelve, classes, sharded_reference, tmp_path):
    seen = []
    out = tmp_path / "head.chip"
    fit = chip.ray.fit_layer(MODEL, HEAD, twelve, out, shard_size=4, classes=classes,
                             progress=lambda done, total: seen.append((done, total)), **OPTS)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert chip.LayerFit.load(out) == fit and fit.images == 12
    # Merged in shard order whatever order the tasks finished in: bit-identical to the same shards
    # merged in one process.
    np.testing.assert_array_equal(fit.weights, sharded_reference.weights)
    # One process over all 12 photos at once sums b image by image rather than shard by shard, so
    # the f64 rounding differs: equal to 1e-6.
    whole = chip.fit_layer(model, HEAD, twelve, classes=classes, **OPTS)
    np.testing.assert_allclose(fit.weights, whole.weights, atol=1e-6, rtol=0)
    # Encoded images travel through the object store and give the same W.
    encoded = chip.ray.fit_layer(MODEL, HEAD, [pathlib.Path(p).read_bytes() for p in twelve], shard_size=4,
                                 classes=classes, **OPTS)
    np.testing.assert_array_equal(encoded.weights, fit.weights)


def test_killed_worker_is_retried_with_the_same_result(cluster, twelve, classes, sharded_reference, tmp_path):
    killed = []

    def kill_one(done, total):
        if killed:
            return
        deadline = time.time() + 30
        while time.time() < deadline:
            pids = shard_workers()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.02)

    # Shards of 4 with the reference's boundaries; one task's worker dies mid-shard.
    fit = chip.ray.fit_layer(MODEL, HEAD, twelve, tmp_path / "head.chip", shard_size=4, classes=classes,
                             progress=kill_one, max_retries=3, **OPTS)
    assert killed, "no shard was running to be killed"
    np.testing.assert_array_equal(fit.weights, sharded_reference.weights)


def test_corrupt_image_fails_the_whole_fit(cluster, twelve, classes, tmp_path):
    broken = tmp_path / "broken_photo.jpg"
    broken.write_bytes(pathlib.Path(twelve[0]).read_bytes()[:3000])
    images = twelve[:8] + [str(broken)] + twelve[8:]
    out = tmp_path / "out" / "head.chip"
    out.parent.mkdir()
    with pytest.raises(chip.ImageError) as e:
        chip.ray.fit_layer(MODEL, HEAD, images, out, shard_size=4, classes=classes, **OPTS)
    assert "broken_photo.jpg" in str(e.value) and e.value.status == 10
    assert "shard 2" in str(e.value)
    assert list(out.parent.iterdir()) == []


def test_cancel_stops_the_tasks(cluster, twelve, classes, tmp_path):
    out = tmp_path / "head.chip"
    with pytest.raises(chip.CancelledError):
        chip.ray.fit_layer(MODEL, HEAD, twelve, out, shard_size=2, classes=classes,
                           progress=lambda done, total: False, **OPTS)
    assert not out.exists()
    # Cancelled tasks stop: no worker of this cluster goes on with a shard.
    deadline = time.time() + 30
    while shard_workers() and time.time() < deadline:
        time.sleep(0.1)
    assert shard_workers() == []


def test_bad_arguments(cluster, twelve, tmp_path):
    with pytest.raises(chip.InvalidArgumentError, match="shard_size"):
        chip.ray.collect_stats(MODEL, HEAD, twelve, shard_size=0)
    with pytest.raises(chip.IoError, match="no such model"):
        chip.ray.collect_stats(tmp_path / "none.onnx", HEAD, twelve)
    with pytest.raises(chip.UnknownLayerError, match="nope"):
        chip.ray.fit_layer(MODEL, "nope", twelve[:2], **OPTS)
    with pytest.raises(chip.IoError, match="does not exist"):
        chip.ray.fit_layer(MODEL, HEAD, twelve[:2], tmp_path / "no" / "x.chip", **OPTS)
