"""The annotation package of a batch (`al.annotator=files`): everything any tool needs.

    cycle_<t>/
      README.txt             what is here and how to return the labels
      images/<id><ext>       the batch images (hard links or copies), named as the pre-labels name them
      images.txt             the original paths of the images, one per line
      tasks.json             Label Studio tasks with the detector's boxes as predictions
      cvat_annotations.xml   CVAT for images 1.1 with the detector's boxes
      labels/<id>.txt        YOLO pre-labels (class cx cy w h, normalised); with classes.txt and
      classes.txt, data.yaml data.yaml, images/ + labels/ is a YOLO dataset
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.io import AbstractDataset

from mgral_pipelines.annotation.batch import BatchImages
from mgral_pipelines.annotation.coco_yolo import yolo_rows
from mgral_pipelines.annotation.cvat import write_cvat
from mgral_pipelines.annotation.label_studio import make_tasks

_README = """Annotation package of MGRAL cycle {cycle}: {count} images to label.

Label the images with any tool, starting from the detector's boxes:
  - Label Studio: create a project with the labelling config below, import tasks.json
    (images are referenced as {example}), then Export > JSON;
  - CVAT: create a task from images/, upload cvat_annotations.xml as "CVAT for images 1.1",
    then export the task as "CVAT for images 1.1";
  - YOLO tools: images/ + labels/ (classes.txt, data.yaml); fix labels/*.txt in place.
An image returned without boxes counts as labelled with no objects.

Then continue the cycle with the finished labels:
  kedro run --pipeline=al_cycle --params=al.annotator=files,al.files.labels=<export file or folder>
(add al.accept_partial=true to take the finished images now and return the rest to the pool).

Classes: {classes}

Label Studio labelling config:
{config}
"""


def build_package(batch: BatchImages, prelabels: Mapping[str, list[dict[str, Any]]],
                  image_url: Callable[[Mapping[str, Any]], str], config: str) -> dict[str, Any]:
    """`{"cycle", "images": {name: source file}, "files": {relative path: text}}`."""
    files = {
        "images.txt": "".join(f"{record['file']}\n" for record in batch.records.values()),
        "tasks.json": json.dumps(make_tasks(batch, prelabels, image_url), indent=1),
        "cvat_annotations.xml": write_cvat(batch, prelabels),
        "classes.txt": "".join(f"{name}\n" for name in batch.classes),
        "data.yaml": yaml.safe_dump({"path": ".", "train": "images", "val": "images",
                                     "names": dict(enumerate(batch.classes))}, sort_keys=False),
    }
    for image_id, record in batch.records.items():
        rows = yolo_rows(prelabels.get(image_id, []), record["width"], record["height"])
        files[f"labels/{Path(batch.name(image_id)).stem}.txt"] = rows
    example = image_url(next(iter(batch.records.values())))
    files["README.txt"] = _README.format(cycle=batch.cycle, count=len(batch.records),
                                         classes=", ".join(batch.classes), example=example,
                                         config=config)
    images = {batch.name(image_id): record["file"] for image_id, record in batch.records.items()}
    return {"cycle": batch.cycle, "images": images, "files": files}


class AnnotationPackageDataset(AbstractDataset[dict[str, Any], dict[str, str]]):
    """Annotation packages, one folder per cycle: `<path>/cycle_<t>/`.

    A package is written in a temporary folder and renamed into place, so a crash never leaves
    half a package; images are hard-linked where the file system allows, else copied. `load()`
    returns `{"cycle_<t>": folder}` of the packages written so far. Saving `{}` writes nothing
    (the cycle's annotator does not use packages).
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        if not self._path.is_dir():
            return {}
        return {child.name: str(child) for child in sorted(self._path.glob("cycle_*")) if child.is_dir()}

    def save(self, data: dict[str, Any]) -> None:
        if not data:
            return
        target = self._path / f"cycle_{data['cycle']}"
        self._path.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self._path, prefix=f".{target.name}."))
        try:
            for relative, text in data["files"].items():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_text(text, encoding="utf-8")
            (staging / "images").mkdir(exist_ok=True)
            for name, source in data["images"].items():
                _link_or_copy(Path(source), staging / "images" / name)
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _exists(self) -> bool:
        return bool(self.load())

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)
