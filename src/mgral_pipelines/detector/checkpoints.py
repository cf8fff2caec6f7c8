"""Checkpoints: taken as bytes or a path, loaded once (a small cache keyed by their SHA-256)."""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mgral_pipelines.detector.config import DetectorConfig

from ultralytics import YOLO

Weights = bytes | Path | str | None


@dataclass(eq=False)
class LoadedDetector:
    """A checkpoint loaded once. Pass it wherever weights are expected to skip re-loading."""

    yolo: YOLO
    digest: str
    """SHA-256 of the checkpoint bytes."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Serialises inference: ultralytics keeps per-call state on the model's predictor."""

    @property
    def class_names(self) -> list[str]:
        names = self.yolo.names
        return [names[i] for i in range(len(names))]

    @property
    def embedding_layers(self) -> list[int]:
        """Indices of the neck outputs that feed the Detect head."""
        return list(self.yolo.model.model[-1].f)


_CACHE_SIZE = 4
_cache: OrderedDict[str, LoadedDetector] = OrderedDict()
_cache_lock = threading.Lock()


def load_model(weights: Weights | LoadedDetector) -> LoadedDetector:
    """Load a checkpoint (bytes or path), reusing one of the last few loaded with the same bytes."""
    if isinstance(weights, LoadedDetector):
        return weights
    if weights is None:
        raise ValueError("No detector weights given (neither as argument nor as config.weights)")
    data = _checkpoint_bytes(weights)
    digest = hashlib.sha256(data).hexdigest()
    with _cache_lock:
        if digest in _cache:
            _cache.move_to_end(digest)
            return _cache[digest]
    with tempfile.TemporaryDirectory(prefix="mgral-weights-") as folder:
        path = Path(folder) / "weights.pt"
        path.write_bytes(data)
        loaded = LoadedDetector(YOLO(path, task="detect"), digest)
    with _cache_lock:
        _cache[digest] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def _checkpoint_bytes(weights: bytes | Path | str) -> bytes:
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return bytes(weights)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector checkpoint not found")
    return path.read_bytes()


def _resolve(weights: Weights | LoadedDetector, config: DetectorConfig) -> LoadedDetector:
    return load_model(weights if weights is not None else config.weights)


def _check_classes(detector: LoadedDetector, classes: Sequence[str]) -> None:
    if len(detector.class_names) != len(classes):
        raise ValueError(
            f"The detector has {len(detector.class_names)} classes {detector.class_names}, "
            f"the dataset {len(classes)} {list(classes)}"
        )
