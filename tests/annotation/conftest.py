"""A small awaiting batch on real image files, with the detector's boxes as pre-labels."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines.annotation.batch import BatchImages

CLASSES = ["cat", "dog"]
SIZES = {"a": (64, 48), "b": (80, 60), "c": (50, 50)}


@pytest.fixture
def batch(tmp_path: Path) -> BatchImages:
    records = {}
    for image_id, size in SIZES.items():
        path = tmp_path / "pool" / f"{image_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (30, 60, 90)).save(path)
        records[image_id] = {"image_id": image_id, "file": str(path), "width": size[0],
                             "height": size[1]}
    return BatchImages.of(3, list(SIZES), records, CLASSES)


@pytest.fixture
def detections() -> dict[str, list[dict]]:
    """Pool detections as the query step saves them (one below the pre-label threshold)."""
    return {
        "a": [{"class_id": 1, "bbox": [10.0, 5.0, 30.0, 40.0], "score": 0.9},
              {"class_id": 0, "bbox": [1.0, 1.0, 5.0, 5.0], "score": 0.1}],
        "b": [{"class_id": 0, "bbox": [-0.4, 2.0, 40.0, 60.3], "score": 0.6}],
        "c": [],
    }
