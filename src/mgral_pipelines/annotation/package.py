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
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from kedro.io import AbstractDataset

from mgral_pipelines.annotation.batch import BatchImages
from mgral_pipelines.annotation.coco_yolo import yolo_rows
from mgral_pipelines.annotation.cvat import write_cvat
from mgral_pipelines.annotation.label_studio import make_tasks
from mgral_pipelines.datasets import Storage

_README = """Annotation package of MGRAL cycle {cycle}: {count} images to label.

Label the images with any tool, starting from the detector's boxes:
  - Label Studio: create a project with the labelling config below, import tasks.json
    (images are referenced as {example}{serving}), then Export > JSON;
  - CVAT: create a task from images/, upload cvat_annotations.xml as "CVAT for images 1.1",
    then export the task as "CVAT for images 1.1";
  - YOLO tools: images/ + labels/ (classes.txt, data.yaml); fix labels/*.txt in place. Every
    image with a .txt counts as done: delete the files of images nobody has checked.
An image returned without boxes counts as labelled with no objects.

Then continue the cycle with the finished labels:
  kedro run --pipeline=al_cycle --params=al.annotator=files,al.files.labels=<export file or folder>
(add al.accept_partial=true to take the finished images now and return the rest to the pool).

Classes: {classes}

Label Studio labelling config:
{config}
"""

_LOCAL_FILES = (";\n    the server needs LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true, its "
                "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT\n    as al.label_studio.document_root, "
                "and a Local Files storage on the images' folder")


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
    serving = _LOCAL_FILES if example.startswith("/data/local-files/") else ""
    files["README.txt"] = _README.format(cycle=batch.cycle, count=len(batch.records),
                                         classes=", ".join(batch.classes), example=example,
                                         serving=serving, config=config)
    images = {batch.name(image_id): record["file"] for image_id, record in batch.records.items()}
    return {"cycle": batch.cycle, "images": images, "files": files}


class AnnotationPackageDataset(AbstractDataset[dict[str, Any], dict[str, str]]):
    """Annotation packages, one folder per cycle: `<path>/cycle_<t>/`, on any fsspec filesystem
    (`s3://bucket/annotation` with `credentials`, as kedro-datasets take them).

    On the local filesystem a package is written in a temporary folder and renamed into place, so a
    crash never leaves half a package (the next save of that cycle removes the temporary folder a
    killed one left), and images are hard-linked where the file system allows, else copied.
    Elsewhere its files are uploaded one by one (the state that records the batch is saved after
    the package, so a crash is repaired by the next run). A package of the same cycle written
    before (a cycle run again, e.g. after a new `prepare`) moves to `<path>/archive/<UTC time>/`
    first: people may have edited its labels/ in place. `load()` returns `{"cycle_<t>": folder}`
    of the packages written so far (a local path, or a URL such as `s3://...`). Saving `{}`
    writes nothing (the cycle's annotator does not use packages). No kedro-datasets dataset
    writes a folder of text files and linked images.
    """

    def __init__(self, path: str, credentials: dict[str, Any] | None = None,
                 fs_args: dict[str, Any] | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._location = path
        self._storage = Storage(path, credentials, fs_args)
        self.metadata = metadata

    def load(self) -> dict[str, str]:
        fs, root = self._storage.fs, str(self._storage.path)
        if not fs.isdir(root):
            return {}
        folders = sorted(entry["name"] for entry in fs.ls(root, detail=True)
                         if entry["type"] == "directory"
                         and PurePosixPath(entry["name"]).name.startswith("cycle_"))
        if self._storage.protocol == "file":
            return {PurePosixPath(folder).name: folder for folder in folders}
        return {PurePosixPath(folder).name: fs.unstrip_protocol(folder) for folder in folders}

    def save(self, data: dict[str, Any]) -> None:
        if not data:
            return
        if self._storage.protocol == "file":
            self._save_local(Path(self._storage.path), data)
        else:
            self._upload(data)

    def _save_local(self, root: Path, data: dict[str, Any]) -> None:
        target = root / f"cycle_{data['cycle']}"
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f".{target.name}.*"):  # what a killed save of this cycle left
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{target.name}."))
        try:
            for relative, text in data["files"].items():
                (staging / relative).parent.mkdir(parents=True, exist_ok=True)
                (staging / relative).write_text(text, encoding="utf-8")
            (staging / "images").mkdir(exist_ok=True)
            for name, source in data["images"].items():
                _link_or_copy(Path(source), staging / "images" / name)
            if target.exists():
                archive = root / "archive" / _now()
                archive.mkdir(parents=True)
                os.replace(target, archive / target.name)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _upload(self, data: dict[str, Any]) -> None:
        fs = self._storage.fs
        target = self._storage.child(f"cycle_{data['cycle']}")
        if fs.exists(target):
            fs.mv(target, self._storage.child(f"archive/{_now()}/cycle_{data['cycle']}"),
                  recursive=True)
        for relative, text in data["files"].items():
            fs.pipe_file(f"{target}/{relative}", text.encode("utf-8"))
        for name, source in data["images"].items():
            fs.put_file(source, f"{target}/images/{name}")
        fs.invalidate_cache(target)

    def _exists(self) -> bool:
        return bool(self.load())

    def _describe(self) -> dict[str, Any]:
        return {"path": self._location, "protocol": self._storage.protocol}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)
