"""Sending a batch to people and taking their labels back: what the al_cycle nodes call.

Order of events, so that a crash anywhere loses nothing: the annotation package (files) is written,
then state t is saved with the batch as `awaiting`, then the tasks are sent to Label Studio. A
later run that finds state t awaiting first sends any task that is still missing (a run that
stopped between the two), then reads the labels; only a complete batch (or a partial one, when
`al.accept_partial` is set) becomes state t+1.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mgral_pipelines import al_state
from mgral_pipelines.annotation.batch import (
    AwaitingLabels,
    BatchImages,
    InvalidLabelsError,
    ReturnedImage,
    check_returned,
    prelabels,
)
from mgral_pipelines.annotation.coco_yolo import read_coco, read_yolo_folder, to_coco, yolo_to_pixels
from mgral_pipelines.annotation.cvat import read_cvat
from mgral_pipelines.annotation.label_studio import make_tasks, read_export, read_export_file, task_key
from mgral_pipelines.annotation.server import LabelStudioServer
from mgral_pipelines.config import ALParams, LabelStudioParams

logger = logging.getLogger(__name__)

Detections = Mapping[str, list[dict[str, Any]]]


def image_url(params: LabelStudioParams) -> Callable[[Mapping[str, Any]], str]:
    """How Label Studio (and the package's tasks.json) refers to an image file."""
    if params.image_url_prefix is not None:
        root, prefix = Path(params.image_root).resolve(), params.image_url_prefix
        return lambda record: prefix + quote(_relative(record["file"], root, "al.label_studio.image_root"))
    root = Path(params.document_root).resolve()
    return lambda record: "/data/local-files/?d=" + quote(
        _relative(record["file"], root, "al.label_studio.document_root"))


def _relative(file: str, root: Path, setting: str) -> str:
    path = Path(file).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"{path}: image is outside {setting}={root}, so Label Studio cannot show it")
    return path.relative_to(root).as_posix()


def batch_prelabels(batch: BatchImages, detections: Detections, al: ALParams) -> Detections:
    return {image_id: prelabels(detections, image_id, al.prelabel_conf) for image_id in batch.records}


def send_to_label_studio(server: LabelStudioServer, batch: BatchImages, detections: Detections,
                         al: ALParams) -> int:
    """Tasks for the batch images that have none yet in the project; returns the project id."""
    project_id = server.project(al.label_studio.project, batch.classes)
    if al.label_studio.image_url_prefix is None:
        folders = [str(Path(record["file"]).resolve().parent) for record in batch.records.values()]
        server.serve_local_folder(project_id, Path(os.path.commonpath(folders)))
    tasks = make_tasks(batch, batch_prelabels(batch, detections, al), image_url(al.label_studio))
    added, present = server.add_tasks(project_id, tasks)
    logger.info("Cycle %d: %d tasks sent to Label Studio project '%s' at %s (%d already there)",
                batch.cycle, added, al.label_studio.project, server.url, present)
    return project_id


def collect_labels(batch: BatchImages, al: ALParams, server: LabelStudioServer,
                   detections: Detections, package: str | None) -> tuple[dict[str, Any], str]:
    """The checked labels people have finished so far, and where they came from."""
    if al.annotator == "label_studio":
        project_id = send_to_label_studio(server, batch, detections, al)
        source = f"Label Studio project '{al.label_studio.project}' at {server.url}"
        ours = [task for task in server.tasks(project_id) if batch.find(task_key(task))]
        returned = read_export(ours, source)
    else:
        if al.files.labels is None:
            where = f"the annotation package {package}" if package else "no package found"
            return {}, f"{where}; when labels are done, add --params=al.files.labels=<export>"
        source = f"al.files.labels={al.files.labels}"
        returned = read_returned_file(Path(al.files.labels), al.files.format, batch)
    return check_returned(returned, batch), source


def read_returned_file(path: Path, fmt: str, batch: BatchImages) -> list[ReturnedImage]:
    """Finished labels from a file or folder in one of the formats people's tools export."""
    if not path.exists():
        raise InvalidLabelsError(f"{path}: returned labels not found")
    if fmt == "auto":
        fmt = _guess_format(path)
    if fmt == "yolo":
        if not path.is_dir():
            raise InvalidLabelsError(f"{path}: YOLO labels are a folder of .txt files")
        return yolo_to_pixels(read_yolo_folder(path, batch.classes), batch)
    if path.is_dir():
        raise InvalidLabelsError(f"{path}: a {fmt} export is a file, not a folder")
    if fmt == "cvat":
        return read_cvat(path)
    return read_export_file(path) if fmt == "label_studio" else read_coco(path)


def _guess_format(path: Path) -> str:
    if path.is_dir():
        return "yolo"
    if path.suffix.lower() == ".xml":
        return "cvat"
    head = path.read_bytes()[:4096].lstrip()
    if head.startswith(b"["):
        return "label_studio"
    if head.startswith(b"{"):
        return "coco"
    raise InvalidLabelsError(f"{path}: cannot tell its format; set al.files.format "
                             "(label_studio, cvat, coco or yolo)")


def receive(state: dict[str, Any], image_index: Mapping[str, Any], al: ALParams,
            server: LabelStudioServer, detections: Detections,
            package: str | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """State t+1 and the COCO file of the imported labels, or AwaitingLabels (nothing changes)."""
    batch = BatchImages.from_state(state, image_index)
    if al.annotator == "oracle":
        raise ValueError(
            f"cycle {batch.cycle}'s batch was sent to people ({state['awaiting']['annotator']}); "
            "take their labels with al.annotator=label_studio or files, not the oracle"
        )
    labels, source = collect_labels(batch, al, server, detections, package)
    done = [image_id for image_id in batch.records if image_id in labels]
    missing = [image_id for image_id in batch.records if image_id not in labels]
    status = f"cycle {batch.cycle} waits for labels: {len(done)} of {len(batch.records)} images done"
    if not done or (missing and not al.accept_partial):
        hint = "" if not done else "; to go on with the finished ones, add al.accept_partial=true"
        raise AwaitingLabels(f"{status} ({source}){hint}. Nothing was changed.")
    following = al_state.complete_batch(state, {image_id: labels[image_id] for image_id in done},
                                        al.annotator)
    logger.info("Cycle %d: imported labels of %d images from %s; %d returned to the pool",
                batch.cycle, len(done), source, len(missing))
    info = {"description": f"labels people gave the query batch of MGRAL cycle {batch.cycle}",
            "cycle": batch.cycle, "annotator": al.annotator, "source": source,
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "returned_to_pool": missing}
    return following, to_coco({image_id: labels[image_id] for image_id in done}, batch, info)
