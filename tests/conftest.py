"""Shared fixtures (detector fixtures are prefixed `detector_`) and the rule of the two lanes.

Lanes: `make test` runs every test (CI); `make test-fast` runs the unit tests only (`-m unit`).
A test is classified from what it uses, so a new test needs no marker of its own. At collection
(tests/lanes.py), the code of the test and of each fixture it requests, and of the helpers under
tests/ they call, is read for these uses:
  kedro       a Kedro session: KedroSession, bootstrap_project (the `project` fixture,
              run_pipeline)
  subprocess  another process: the subprocess module (Label Studio, the Ray cluster, kedro/dvc CLIs)
  ray         Ray: the ray module or mgral_pipelines.execution.ray_tasks
  slow        detector training: train_detector, train_semi_supervised, the trainers,
              train_variant(s)
A test that uses none of them, and is not marked `smoke` (a benchmarks/ script's smoke run), is
marked `unit`. A unit test that still does one of these things through the project's code (which
the reading cannot follow) fails with the marker to add.
"""

from __future__ import annotations

import importlib.util
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

pytest_plugins = ["pytester", "tests.lanes"]

# Kedro applies a logging config when first imported. The tests keep Kedro's own, which writes no
# file, so they never write to the checkout's logs/kedro.log; the `project` fixture applies the
# project's conf/logging.yml inside its copy, and a `kedro` command a test starts there reads it.
_KEDRO = importlib.util.find_spec("kedro").submodule_search_locations[0]
os.environ.setdefault("KEDRO_LOGGING_CONFIG",
                      os.path.join(_KEDRO, "framework", "project", "rich_logging.yml"))


@dataclass
class DetectorDataset:
    """A tiny synthetic detection set in manifest format (records, annotations, classes)."""

    root: Path
    classes: list[str]
    records: list[dict[str, Any]]
    annotations: dict[str, list[dict[str, Any]]]
    train_ids: list[str] = field(default_factory=list)
    val_ids: list[str] = field(default_factory=list)
    duplicate_of: dict[str, str] = field(default_factory=dict)
    """Image id -> id of an image with identical pixels (a separate file)."""


def make_detector_dataset(
    root: Path, num_images: int = 24, seed: int = 0, sizes: tuple[int, ...] = (64, 80, 96)
) -> DetectorDataset:
    """Bright squares (class 0) and discs (class 1) on a dark, noisy background.

    Image width and height are drawn from `sizes`.
    The last image repeats the first one's pixels in another file, one image has no objects.
    """
    rng = random.Random(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    records, annotations = [], {}
    for index in range(num_images - 1):
        image_id = f"{index:04d}"
        width, height = rng.choice(sizes), rng.choice(sizes)
        image = Image.new("RGB", (width, height), (rng.randint(0, 30),) * 3)
        draw = ImageDraw.Draw(image)
        for _ in range(40):  # speckle noise so the background is not flat
            x, y = rng.randrange(width), rng.randrange(height)
            draw.point((x, y), fill=(rng.randint(0, 60),) * 3)
        boxes = [] if index == 5 else _draw_objects(draw, rng, width, height)
        path = images_dir / f"{image_id}.png"
        image.save(path)
        records.append({"image_id": image_id, "file": str(path), "width": width, "height": height})
        annotations[image_id] = boxes
    first, copy_id = records[0], f"{num_images - 1:04d}"
    copy_path = images_dir / f"{copy_id}.png"
    copy_path.write_bytes(Path(first["file"]).read_bytes())
    records.append({**first, "image_id": copy_id, "file": str(copy_path)})
    annotations[copy_id] = [dict(box) for box in annotations[first["image_id"]]]
    ids = [record["image_id"] for record in records]
    cut = num_images * 3 // 4
    return DetectorDataset(
        root=root,
        classes=["square", "disc"],
        records=records,
        annotations=annotations,
        train_ids=ids[:cut],
        val_ids=ids[cut:],
        duplicate_of={copy_id: first["image_id"]},
    )


def _draw_objects(
    draw: ImageDraw.ImageDraw, rng: random.Random, width: int, height: int
) -> list[dict]:
    boxes: list[dict] = []
    for _ in range(rng.randint(1, 2)):
        size = rng.randint(18, 30)
        x1, y1 = rng.randint(0, width - size), rng.randint(0, height - size)
        box = [float(x1), float(y1), float(x1 + size), float(y1 + size)]
        if any(_overlaps(box, other["bbox"]) for other in boxes):
            continue
        class_id = rng.randint(0, 1)
        color = (rng.randint(200, 255), rng.randint(200, 255), rng.randint(120, 255))
        # PIL's shape corners are inclusive, so the drawn shape spans exactly [x1, x2).
        corners = [x1, y1, x1 + size - 1, y1 + size - 1]
        (draw.rectangle if class_id == 0 else draw.ellipse)(corners, fill=color)
        boxes.append({"class_id": class_id, "bbox": box})
    return boxes


def _overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.fixture(scope="session")
def detector_dataset(tmp_path_factory: pytest.TempPathFactory) -> DetectorDataset:
    """The synthetic detection set, written once per test session."""
    return make_detector_dataset(tmp_path_factory.mktemp("detector_dataset"))


# A real Label Studio server, once per session (see tests/label_studio_server.py).
from tests.label_studio_server import label_studio  # noqa: E402, F401

# A real Ray cluster on 127.0.0.1, once per session (see tests/ray_cluster.py).
from tests.ray_cluster import ray_cluster  # noqa: E402, F401
