"""Shared fixtures of the adapter's tests: one detector trained on a tiny synthetic set.

The detector is trained once for the whole package (about 15 s on 2 CPU cores) and shared by the
tests; every test that needs it is marked slow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mgral_pipelines.detector import DetectorConfig, train_detector
from tests.conftest import DetectorDataset, make_detector_dataset

# Small, square inputs the size of the images: fast, and predict and ultralytics' val then see the
# same pixels. No mosaic and short warmup so ~200 optimizer steps give a usable detector.
CONFIG = DetectorConfig(
    imgsz=64, epochs=40, batch=4, lr0=0.01, mosaic=0.0, close_mosaic=0, warmup_epochs=1.0
)


@dataclass
class Trained:
    dataset: DetectorDataset
    weights: bytes
    info: dict[str, float]
    run_dir: Path


@pytest.fixture(scope="package")
def detector_square_dataset(tmp_path_factory: pytest.TempPathFactory) -> DetectorDataset:
    """24 images of 64x64 px (the model's input size)."""
    return make_detector_dataset(tmp_path_factory.mktemp("square"), num_images=24, sizes=(64,))


@pytest.fixture(scope="package")
def detector_trained(
    detector_square_dataset: DetectorDataset, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    data = detector_square_dataset
    run_dir = tmp_path_factory.mktemp("detector_run")
    weights, info = train_detector(
        data.records, data.annotations, data.classes, data.train_ids, data.val_ids, CONFIG, run_dir,
        progress=False,
    )
    return Trained(data, weights, info, run_dir)
