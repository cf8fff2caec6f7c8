"""The YOLO view of the project's images and annotations."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines.detector.yolo_dataset import write_yolo_dataset


def test_yolo_view_links_images_and_normalises_clipped_labels(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    Image.new("RGB", (100, 50)).save(image)
    records = [{"image_id": "a", "file": str(image), "width": 100, "height": 50},
               {"image_id": "b", "file": str(image), "width": 100, "height": 50}]
    annotations = {"a": [{"class_id": 1, "bbox": [-0.4, 10.0, 50.0, 50.3]}]}  # b: no objects

    data_yaml = write_yolo_dataset(tmp_path / "view", records, annotations, ["x", "y"],
                                   {"train": ["a"], "val": ["a", "b"]})

    view = tmp_path / "view"
    assert (view / "images" / "a.png").resolve() == image.resolve()
    assert (view / "labels" / "a.txt").read_text() == "1 0.250000 0.600000 0.500000 0.800000\n"
    assert (view / "labels" / "b.txt").read_text() == ""
    listed = (view / "val.txt").read_text().split()
    assert listed == [str(view / "images" / f"{image_id}.png") for image_id in "ab"]
    assert "names:\n  0: x\n  1: y" in data_yaml.read_text()


def test_yolo_view_rejects_ids_that_are_paths(tmp_path: Path) -> None:
    records = [{"image_id": "../a", "file": "a.png", "width": 1, "height": 1}]

    with pytest.raises(ValueError, match="file name"):
        write_yolo_dataset(tmp_path / "view", records, {}, ["x"], {"train": ["../a"]})
