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
    Checked,
    Faults,
    InvalidLabelsError,
    Limits,
    ReturnedImage,
    Roots,
    check_returned,
    prelabels,
    shown,
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


def roots(al: ALParams, package: str | None) -> Roots:
    """The folders a returned file may name images in: the package and what Label Studio serves."""
    params = al.label_studio
    return Roots(
        package=Path(package) if package and "://" not in package else None,
        document_root=Path(params.document_root),
        url_prefix=params.image_url_prefix,
        url_root=Path(params.image_root) if params.image_root else None,
    )


def limits(al: ALParams) -> Limits:
    return Limits(al.max_boxes_per_image, al.max_returned_mb)


def collect_labels(batch: BatchImages, al: ALParams, server: LabelStudioServer,
                   detections: Detections, package: str | None) -> tuple[Checked, str]:
    """The checked labels people have finished so far, what was returned but is not the batch's,
    and where they came from. Every fault of the returned file is raised at once."""
    bounds = limits(al)
    if al.annotator == "label_studio":
        project_id = send_to_label_studio(server, batch, detections, al)
        source = f"Label Studio project '{al.label_studio.project}' at {server.url}"
        tasks = server.tasks(project_id, bounds.max_file_bytes)
        ours = [task for task in tasks if _task_image(task, batch) in batch.records]
        others = [task for task in tasks if _task_image(task, batch) not in batch.records]
        faults = Faults()
        checked = check_returned(read_export(ours, source, bounds, faults), batch, source,
                                 limits=bounds, faults=faults)
        checked.not_imported += _other_tasks(others, batch, source, bounds)
        return checked, source
    if al.files.labels is None:
        where = f"the annotation package {package}" if package else "no package found"
        hint = "when labels are done, add --params=al.files.labels=<export>"
        return Checked({}, []), f"{where}; {hint}"
    source = f"al.files.labels={al.files.labels}"
    faults = Faults()
    returned = read_returned_file(Path(al.files.labels), al.files.format, batch, bounds, faults)
    return check_returned(returned, batch, al.files.labels, limits=bounds, faults=faults), source


def _task_image(task: Any, batch: BatchImages) -> str | None:
    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        return None
    return batch.locate(task_key(task)).image_id


def _other_tasks(tasks: list[Any], batch: BatchImages, source: str,
                 bounds: Limits) -> list[dict[str, str]]:
    """Finished tasks of the project that are not this batch's (earlier cycles, tasks added by
    hand): never imported, never refused; listed unless they hold exactly the labels imported."""
    listed = []
    for task in tasks:
        faults = Faults()
        returned = read_export([task], source, bounds, faults)
        if faults:
            where = f"{source}: task {task.get('id') if isinstance(task, dict) else '?'}"
            reason = f"unreadable ({', '.join(faults.problems())})"
            listed.append({"image": shown(task_key(task)) if isinstance(task, dict) else "?",
                           "where": where, "reason": reason})
            continue
        listed += check_returned(returned, batch, source, strangers_are_faults=False,
                                 limits=bounds).not_imported
    return listed


def read_returned_file(path: Path, fmt: str, batch: BatchImages, bounds: Limits = Limits(),
                       faults: Faults | None = None) -> list[ReturnedImage]:
    """Finished labels from a file or folder in one of the formats people's tools export."""
    if not path.exists():
        raise InvalidLabelsError(f"{path}: returned labels not found")
    if fmt == "auto":
        fmt = _guess_format(path)
    if fmt == "yolo":
        if not path.is_dir():
            raise InvalidLabelsError(f"{path}: YOLO labels are a folder of .txt files")
        return yolo_to_pixels(read_yolo_folder(path, batch.classes, bounds, faults), batch)
    if path.is_dir():
        raise InvalidLabelsError(f"{path}: a {fmt} export is a file, not a folder")
    if fmt == "cvat":
        return read_cvat(path, bounds, faults)
    if fmt == "label_studio":
        return read_export_file(path, bounds, faults)
    return read_coco(path, bounds, faults)


def _guess_format(path: Path) -> str:
    if path.is_dir():
        return "yolo"
    if path.suffix.lower() == ".xml":
        return "cvat"
    with path.open("rb") as file:
        head = file.read(4096).lstrip()
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
    batch = BatchImages.from_state(state, image_index, roots(al, package))
    if al.annotator == "oracle":
        raise ValueError(
            f"cycle {batch.cycle}'s batch was sent to people ({state['awaiting']['annotator']}); "
            "take their labels with al.annotator=label_studio or files, not the oracle"
        )
    checked, source = collect_labels(batch, al, server, detections, package)
    labels = checked.labels
    _log_not_imported(checked.not_imported, batch.cycle, source)
    done = [image_id for image_id in batch.records if image_id in labels]
    missing = [image_id for image_id in batch.records if image_id not in labels]
    status = f"cycle {batch.cycle} waits for labels: {len(done)} of {len(batch.records)} images done"
    if not done or (missing and not al.accept_partial):
        hint = "" if not done else "; to go on with the finished ones, add al.accept_partial=true"
        listed = (f" {len(checked.not_imported)} returned images are not this batch's and were "
                  "not imported (listed in the log)." if checked.not_imported else "")
        raise AwaitingLabels(f"{status} ({source}){hint}. Nothing was changed.{listed}")
    following = al_state.complete_batch(state, {image_id: labels[image_id] for image_id in done},
                                        al.annotator)
    logger.info("Cycle %d: imported labels of %d images from %s; %d returned to the pool",
                batch.cycle, len(done), source, len(missing))
    info = {"description": f"labels people gave the query batch of MGRAL cycle {batch.cycle}",
            "cycle": batch.cycle, "annotator": al.annotator, "source": source,
            "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "returned_to_pool": missing, "not_imported": checked.not_imported}
    return following, to_coco({image_id: labels[image_id] for image_id in done}, batch, info)


def _log_not_imported(listed: list[dict[str, str]], cycle: int, source: str) -> None:
    """Everything returned that is not imported, in the log: grouped by reason, the first few."""
    if not listed:
        return
    by_reason: dict[str, list[str]] = {}
    for entry in listed:
        by_reason.setdefault(entry["reason"], []).append(f"{entry['image']} ({entry['where']})")
    lines = [f"  {reason} ({len(images)}): {', '.join(images[:5])}"
             + (f", ... and {len(images) - 5} more" if len(images) > 5 else "")
             for reason, images in by_reason.items()]
    logger.warning("Cycle %d: %d returned images from %s are not this batch's and are not "
                   "imported:\n%s", cycle, len(listed), source, "\n".join(lines))
