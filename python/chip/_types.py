"""Plain Python types of the chip package: exceptions, Size, Layer, Prepared, Explanation."""
from __future__ import annotations

import glob
import importlib.util
import os
from dataclasses import dataclass
from typing import List, NamedTuple, Optional, Union

import numpy as np


class ChipError(Exception):
    """An error of libchip: ``message`` is the library's message, ``status`` its C ``chip_status``."""

    status: int = -1

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message, self.status if status is None else status)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(ChipError, ValueError):
    status = 1


class IoError(ChipError):
    status = 5


class OrtNotFoundError(ChipError):
    status = 6


class OrtError(ChipError):
    status = 7


class ModelError(ChipError):
    status = 8


class UnknownLayerError(ChipError, KeyError):
    status = 9

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ImageError(ChipError):
    status = 10


class FitFileError(ChipError):
    status = 11


class FitVersionError(ChipError):
    status = 12


class FitMismatchError(ChipError):
    status = 13


class NonFiniteError(ChipError):
    status = 14


class CancelledError(ChipError):
    status = 15


class PanicError(ChipError):
    status = 16


class PreprocessWarning(UserWarning):
    """A model was loaded with preprocessing values that nothing stated (neither ``preprocess=`` nor
    the sidecar ``<model>.json``): the library assumed them. The message names each key and its value."""


class Size(NamedTuple):
    """A size in pixels."""

    width: int
    height: int


class Layer(NamedTuple):
    """A candidate layer and its activation shape."""

    name: str
    op_type: str
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class Prepared:
    """Preprocessed images: ``data`` N×3×H×W float32 at the model's input size, ``sizes`` the
    original size of each image (maps and boxes at the original size use it)."""

    data: np.ndarray
    sizes: List[Size]

    def __len__(self) -> int:
        return len(self.sizes)


@dataclass(frozen=True)
class Explanation:
    """Maps of a batch of N images, M classes per image and L fitted layers.

    ``maps`` is a list of N float32 arrays M×L×h×w at each image's own size (``original_size=True``,
    the default), or one float32 array N×M×L×H×W at the model's input size (``original_size=False``); ``boxes`` int32 N×M×L×4 (x1, y1, x2, y2 inclusive, in
    the maps' pixels; a row of −1 when a map has no box). ``refined``/``refined_boxes`` hold Refined
    CHIP (first × last fitted layer) when asked for, else None.
    """

    probabilities: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    maps: Union[np.ndarray, List[np.ndarray]]
    boxes: np.ndarray
    sizes: List[Size]
    layers: List[str]
    refined: Union[np.ndarray, List[np.ndarray], None] = None
    refined_boxes: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.sizes)


def onnxruntime_wheel_lib() -> Optional[str]:
    """The ONNX Runtime library of the installed ``onnxruntime`` PyPI wheel (found without importing
    it), or None."""
    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(base, "capi", "libonnxruntime.so*")))
        if found:
            return found[0]
    return None
