"""CHIP (channel-wise disentangled interpretation) saliency maps for image-classification CNNs on
ONNX Runtime: Python bindings of libchip.

    model = chip.Model("efficientnet_lite0.onnx")      # preprocess={"mean": ..., "std": ...} overrides the sidecar
    fit = chip.fit_layer(model, "/_swish_1/Clip_output_0", "photos/", gates=256)
    out = chip.Explainer(model, [fit]).explain(["photo.jpg"])
    out.maps, out.boxes, out.probabilities            # numpy arrays

Fit options are keyword arguments with the field names of the C API's ``chip_fit_options``.
Every ONNX Runtime call runs without the GIL.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _chip
from ._types import (
    CancelledError,
    ChipError,
    Explanation,
    FitFileError,
    FitMismatchError,
    FitVersionError,
    ImageError,
    InvalidArgumentError,
    IoError,
    Layer,
    ModelError,
    NonFiniteError,
    OrtError,
    OrtNotFoundError,
    PanicError,
    PreprocessWarning,
    Prepared,
    Size,
    UnknownLayerError,
    onnxruntime_wheel_lib,
)

__version__: str = _chip.__version__

Model = _chip.Model
Stats = _chip.Stats
LayerFit = _chip.LayerFit

__all__ = [
    "__version__", "Model", "Stats", "LayerFit", "Explainer", "Explanation", "Prepared", "Size", "Layer",
    "fit_layer", "collect_stats", "solve", "merge", "preprocess", "list_images", "ort_library", "fit_options_default",
    "ChipError", "InvalidArgumentError", "IoError", "OrtNotFoundError", "OrtError", "ModelError",
    "UnknownLayerError", "ImageError", "FitFileError", "FitVersionError", "FitMismatchError",
    "NonFiniteError", "CancelledError", "PanicError", "PreprocessWarning",
]

Images = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], Sequence[bytes], np.ndarray, Prepared]
ProgressCallback = Callable[[str, int, int], Optional[bool]]
Progress = Union[None, bool, ProgressCallback]


def ort_library(ort_lib: Union[str, "os.PathLike[str]", None] = None) -> str:
    """Loads ONNX Runtime once per process and returns the library's path. Search: ``ort_lib``,
    CHIP_ORT_LIB, beside the module, beside the executable, the project's third_party/onnxruntime/lib,
    then the ``onnxruntime`` PyPI wheel's library."""
    return _chip.ensure_ort(ort_lib)


def list_images(path: Union[str, "os.PathLike[str]"]) -> List[str]:
    """The images a fit reads from a folder (its image files, sorted) or a list file (one path a line,
    relative to the file)."""
    return _chip.list_images(path)


def fit_options_default() -> dict:
    """The library's default fit options (the defaults of the keyword arguments below)."""
    return _chip.fit_options_default()


def preprocess(model: "Model", images: Images) -> Prepared:
    """Decodes and preprocesses images for ``model`` (N×3×H×W float32 and the original sizes)."""
    data, sizes = model._preprocess(images)
    return Prepared(data, [Size(w, h) for w, h in sizes])


def _progress(progress: Progress, desc: str) -> Optional[ProgressCallback]:
    """A callable as given, or with True a tqdm bar (when tqdm is installed) over images and classes."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    bars: dict = {}

    def update(kind: str, done: int, total: int) -> bool:
        if kind == "suffix_runs":
            return True
        bar = bars.get(kind)
        if bar is None:
            for b in bars.values():
                b.close()
            bar = bars[kind] = tqdm(total=total, desc=f"{desc}: {kind}", unit=kind.rstrip("s") or kind)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
        return True

    return update


# The library's fit defaults (FitOptions::default()), read once: the signatures below use them.
_FIT = _chip.fit_options_default()


def _options(gates, lambda_rel, sigma2_rel, seed, gate_batch, image_batch, max_iter, rho, classes, target,
             intercept, nonneg, augment, mosaics) -> dict:
    return dict(gates=gates, lambda_rel=lambda_rel, sigma2_rel=sigma2_rel, seed=seed, gate_batch=gate_batch,
                image_batch=image_batch, max_iter=max_iter, rho=rho,
                classes=None if classes is None else [int(c) for c in classes], target=target,
                intercept=intercept, nonneg=nonneg, augment=augment, mosaics=mosaics)


def fit_layer(model: "Model", layer: str, images: Images, *, gates: int = _FIT["gates"],
              lambda_rel: float = _FIT["lambda_rel"], sigma2_rel: float = _FIT["sigma2_rel"], seed: int = _FIT["seed"],
              gate_batch: int = _FIT["gate_batch"], image_batch: int = _FIT["image_batch"],
              max_iter: int = _FIT["max_iter"], rho: Optional[float] = _FIT["rho"],
              classes: Optional[Iterable[int]] = _FIT["classes"], target: str = _FIT["target"],
              intercept: bool = _FIT["intercept"], nonneg: bool = _FIT["nonneg"], augment: int = _FIT["augment"],
              mosaics: int = _FIT["mosaics"], progress: Progress = None) -> "LayerFit":
    """Fits W of one layer from images: a folder (sorted image files) or a list file, a list of paths,
    a list of encoded images (bytes), an N×3×H×W float32 array or a ``Prepared``.

    ``progress(kind, done, total)`` (kind "images", "suffix_runs" or "classes") is called with the
    GIL held; returning False or raising cancels (``CancelledError``, or the callback's exception).
    ``progress=True`` shows a tqdm bar when tqdm is installed.
    """
    opts = _options(gates, lambda_rel, sigma2_rel, seed, gate_batch, image_batch, max_iter, rho, classes, target,
                    intercept, nonneg, augment, mosaics)
    return _chip.fit_layer(model, layer, images, opts, _progress(progress, "fit"))


def collect_stats(model: "Model", layer: str, images: Images, *, gates: int = _FIT["gates"],
                  sigma2_rel: float = _FIT["sigma2_rel"], seed: int = _FIT["seed"], gate_batch: int = _FIT["gate_batch"],
                  image_batch: int = _FIT["image_batch"], target: str = _FIT["target"], augment: int = _FIT["augment"],
                  mosaics: int = _FIT["mosaics"], progress: Progress = None) -> "Stats":
    """Sufficient statistics of one layer over images (a shard): merge shards with ``merge`` or
    ``Stats.merge``, then ``solve``. The options are those of ``fit_layer`` that the statistics depend on."""
    opts = dict(gates=gates, sigma2_rel=sigma2_rel, seed=seed, gate_batch=gate_batch, image_batch=image_batch,
                target=target, augment=augment, mosaics=mosaics)
    return _chip.collect_stats(model, layer, images, opts, _progress(progress, "statistics"))


def solve(model: "Model", stats: "Stats", *, lambda_rel: float = _FIT["lambda_rel"], max_iter: int = _FIT["max_iter"],
          rho: Optional[float] = _FIT["rho"], classes: Optional[Iterable[int]] = _FIT["classes"],
          target: str = _FIT["target"], intercept: bool = _FIT["intercept"], nonneg: bool = _FIT["nonneg"],
          progress: Progress = None) -> "LayerFit":
    """Solves statistics into a fitted layer (the layer the statistics were collected at)."""
    opts = dict(lambda_rel=lambda_rel, max_iter=max_iter, rho=rho,
                classes=None if classes is None else [int(c) for c in classes], target=target,
                intercept=intercept, nonneg=nonneg)
    return _chip.solve(model, stats, opts, _progress(progress, "solve"))


def merge(stats: Sequence["Stats"]) -> "Stats":
    """Merges statistics in the order given into a new ``Stats`` (the inputs are unchanged)."""
    return _chip.merge(list(stats))


class Explainer:
    """Maps for a set of fits of one model (one fit per layer). Thread-safe."""

    def __init__(self, model: "Model", fits: Sequence["LayerFit"]) -> None:
        self._inner = _chip.Explainer(model, list(fits))
        self.model = model

    @property
    def layers(self) -> List[str]:
        return self._inner.layers

    def explain(self, images: Images, *, classes: Optional[Iterable[int]] = None, top_k: int = 1,
                refined: bool = False, threshold: Optional[float] = None, original_size: bool = True,
                sizes: Optional[Sequence[Any]] = None) -> Explanation:
        """Maps of each image for ``classes`` (the same for every image) or its ``top_k`` most probable classes.

        ``images`` as in ``fit_layer``; for a float32 array ``sizes`` gives the original sizes
        (default: the input size). ``threshold`` is the box threshold relative to the map's maximum.
        """
        size_list = None if sizes is None else [(int(w), int(h)) for w, h in sizes]
        class_list = None if classes is None else [int(c) for c in classes]
        d = self._inner._explain(images, sizes=size_list, classes=class_list, top_k=top_k, refined=refined,
                                 threshold=threshold, original_size=original_size)
        return Explanation(**d)

    def __repr__(self) -> str:
        return f"chip.Explainer(layers {self.layers})"
