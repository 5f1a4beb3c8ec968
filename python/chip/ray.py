"""CHIP fits at dataset scale on a Ray cluster.

The images are split into shards; one Ray task per shard gathers the shard's sufficient statistics
(each worker process loads the model once and keeps it), returns them serialized, and the driver
merges them in shard order (so the result does not depend on which task finishes first), solves and
writes the ``.chip`` file atomically. A task whose worker dies is retried by Ray; an error in a shard
(an unreadable image) fails the whole fit with the library's message, cancels the other tasks and
writes nothing.

    import ray, chip.ray
    ray.init(address="auto")                      # or "ray://head:10001", or nothing for a local Ray
    fit = chip.ray.fit_layer("model.onnx", "/_swish_1/Clip_output_0", "photos/", "head.chip",
                             shard_size=64, num_cpus=1, gates=256, mosaics=0)

Paths must be readable by every node (a shared file system); encoded images (a list of bytes) travel
through Ray's object store instead. Mosaics are tiled within a shard, so only ``mosaics=0`` gives the
same W as one process fitting all images at once.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import chip
from chip._types import CancelledError, ChipError, InvalidArgumentError

PathLike = Union[str, "os.PathLike[str]"]
ShardProgress = Callable[[int, int], Optional[bool]]

# Models loaded by this worker process, so a worker loads each model once for all its shards.
_MODELS: Dict[Tuple[str, Optional[str], str, int], "chip.Model"] = {}


def _model(path: str, ort_lib: Optional[str], device: str, threads: int) -> "chip.Model":
    key = (path, ort_lib, device, threads)
    m = _MODELS.get(key)
    if m is None:
        m = _MODELS[key] = chip.Model(path, ort_lib=ort_lib, device=device, threads=threads)
    return m


def _collect_shard(model_path: str, ort_lib: Optional[str], device: str, threads: int, layer: str,
                   images: Any, options: Dict[str, Any]) -> Tuple[bytes, float, float]:
    """Statistics of one shard, serialized; with the seconds spent collecting and serializing."""
    model = _model(model_path, ort_lib, device, threads)
    t0 = time.perf_counter()
    stats = chip.collect_stats(model, layer, images, **options)
    t1 = time.perf_counter()
    data = stats.to_bytes()
    return data, t1 - t0, time.perf_counter() - t1


_remote = None


def _remote_fn():
    """The Ray remote function, made on first use so that importing chip.ray needs no Ray."""
    global _remote
    if _remote is None:
        import ray

        # The name is the worker's process title while it runs a shard ("ray::chip_collect_shard").
        def chip_collect_shard(*args):
            return _collect_shard(*args)

        _remote = ray.remote(chip_collect_shard)
    return _remote


def _image_list(images: Any) -> List[Any]:
    """The images as a list of paths or of encoded bytes (a folder or a list file is listed by the
    library, in its order)."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise InvalidArgumentError("invalid argument: no images given")
        if all(isinstance(i, bytes) for i in images):
            return list(images)
        return [os.fspath(p) for p in images]
    if isinstance(images, (str, os.PathLike)):
        return chip._chip.list_images(images)
    raise InvalidArgumentError(
        f"invalid argument: images: expected a folder, a list file, or a list of paths or encoded images, got {type(images).__name__}")


def _shard_error(index: int, err: BaseException) -> BaseException:
    """The library's exception of a failed shard (its message names the image), or the Ray error."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, ChipError):
        return type(cause)(f"shard {index}: {cause.message}", cause.status)
    return err


def collect_stats(model: Union[PathLike, "chip.Model"], layer: str, images: Any, *, shard_size: int = 64,
                  num_cpus: float = 1, num_gpus: float = 0, max_retries: int = 3, ort_lib: Optional[PathLike] = None,
                  device: str = "cpu", threads: Optional[int] = None, gates: int = 256, sigma2_rel: float = 0.5,
                  seed: int = 0, gate_batch: int = 64, image_batch: int = 8, target: str = "log-probability",
                  augment: int = 0, mosaics: int = 2, progress: Optional[ShardProgress] = None,
                  timings: Optional[Dict[str, Any]] = None) -> "chip.Stats":
    """Statistics of ``layer`` over all images, one Ray task per shard of ``shard_size`` images,
    merged in shard order. ``progress(done, total)`` is called as shards complete; False cancels
    the tasks (``CancelledError``). ``timings``, when a dict, receives per-shard collect and
    serialization seconds and the driver's deserialize+merge seconds."""
    import ray

    if shard_size < 1:
        raise InvalidArgumentError(f"invalid argument: shard_size must be at least 1, got {shard_size}")
    model_path = os.path.abspath(model.path if isinstance(model, chip.Model) else os.fspath(model))
    if not os.path.isfile(model_path):
        raise chip.IoError(f"{model_path}: no such model file")
    ort = None if ort_lib is None else os.fspath(ort_lib)
    items = _image_list(images)
    shards = [items[i:i + shard_size] for i in range(0, len(items), shard_size)]
    options = dict(gates=gates, sigma2_rel=sigma2_rel, seed=seed, gate_batch=gate_batch, image_batch=image_batch,
                   target=target, augment=augment, mosaics=mosaics)
    if not ray.is_initialized():
        ray.init()
    task = _remote_fn().options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                                retry_exceptions=False)
    n_threads = int(max(1, num_cpus)) if threads is None else threads
    refs = [task.remote(model_path, ort, device, n_threads, layer, shard, options) for shard in shards]
    index = {ref: i for i, ref in enumerate(refs)}
    results: List[Optional[bytes]] = [None] * len(refs)
    collect_s = [0.0] * len(refs)
    serialize_s = [0.0] * len(refs)
    pending = list(refs)

    def cancel() -> None:
        for r in pending:
            ray.cancel(r, force=True)

    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                i = index[ref]
                try:
                    results[i], collect_s[i], serialize_s[i] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:
                    raise _shard_error(i, e) from e
                done = sum(r is not None for r in results)
                if progress is not None and progress(done, len(refs)) is False:
                    raise CancelledError("cancelled", 15)
    except BaseException:
        cancel()
        raise

    t0 = time.perf_counter()
    stats = chip.Stats.from_bytes(results[0])
    for data in results[1:]:
        stats.merge(chip.Stats.from_bytes(data))
    if timings is not None:
        timings.update(shards=len(refs), collect=collect_s, serialize=serialize_s,
                       merge=time.perf_counter() - t0, bytes=[len(r) for r in results])
    return stats


def fit_layer(model: Union[PathLike, "chip.Model"], layer: str, images: Any, out: Optional[PathLike] = None, *,
              shard_size: int = 64, num_cpus: float = 1, num_gpus: float = 0, max_retries: int = 3,
              ort_lib: Optional[PathLike] = None, device: str = "cpu", threads: Optional[int] = None,
              gates: int = 256, lambda_rel: float = 0.001, sigma2_rel: float = 0.5, seed: int = 0,
              gate_batch: int = 64, image_batch: int = 8, max_iter: int = 2000, rho: Optional[float] = None,
              classes: Optional[Iterable[int]] = None, target: str = "log-probability", intercept: bool = True,
              nonneg: bool = False, augment: int = 0, mosaics: int = 2,
              progress: Optional[ShardProgress] = None) -> "chip.LayerFit":
    """Fits W of ``layer`` on the Ray cluster (``collect_stats`` per shard, merge, solve on the
    driver) and writes it to ``out`` when given (atomically: a failed fit leaves no file). The fit
    options are ``chip.fit_layer``'s; ``num_cpus``/``num_gpus`` are per task, ``threads`` the ONNX
    Runtime threads of each worker (default: ``num_cpus``)."""
    if out is not None:
        chip_out = os.fspath(out)
        parent = os.path.dirname(os.path.abspath(chip_out))
        if not os.path.isdir(parent):
            raise chip.IoError(f"{chip_out}: the folder {parent} does not exist")
    stats = collect_stats(model, layer, images, shard_size=shard_size, num_cpus=num_cpus, num_gpus=num_gpus,
                          max_retries=max_retries, ort_lib=ort_lib, device=device, threads=threads, gates=gates,
                          sigma2_rel=sigma2_rel, seed=seed, gate_batch=gate_batch, image_batch=image_batch,
                          target=target, augment=augment, mosaics=mosaics, progress=progress)
    driver_model = model if isinstance(model, chip.Model) else chip.Model(model, ort_lib=ort_lib)
    fit = chip.solve(driver_model, stats, lambda_rel=lambda_rel, max_iter=max_iter, rho=rho, classes=classes,
                     target=target, intercept=intercept, nonneg=nonneg)
    if out is not None:
        fit.save(out)
    return fit
