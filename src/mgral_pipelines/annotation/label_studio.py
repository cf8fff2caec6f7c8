"""Label Studio's formats: the labelling config, tasks with pre-annotations, and the JSON export.

Boxes travel as `rectanglelabels` results: x, y, width and height in percent of the image size,
(x, y) the top-left corner (https://labelstud.io/guide/predictions). Nothing here talks to a
server; `server.py` does, with these payloads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from mgral_pipelines.annotation.batch import (
    BatchImages,
    Faults,
    InvalidLabelsError,
    Limits,
    ReturnedImage,
    decoding_error,
    is_number,
    shown,
)

FROM_NAME, TO_NAME = "label", "image"
# Results of these types carry no geometry (a choice, a text...): they are not labels to import.
_NO_GEOMETRY = {"choices", "textarea", "rating", "number", "datetime", "taxonomy", "relation",
                "pairwise", "ranker"}


def label_config(classes: Sequence[str]) -> str:
    """A box-drawing interface with one label per class."""
    labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in classes)
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
        f'  <RectangleLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n'
        "  </RectangleLabels>\n</View>"
    )


def make_tasks(batch: BatchImages, prelabels: Mapping[str, list[dict[str, Any]]],
               image_url: Callable[[Mapping[str, Any]], str]) -> list[dict[str, Any]]:
    """One task per batch image; the detector's boxes as a prediction people correct."""
    tasks = []
    for image_id, record in batch.records.items():
        task: dict[str, Any] = {"data": {"image": image_url(record), "mgral_image_id": image_id,
                                         "mgral_cycle": batch.cycle}}
        boxes = prelabels.get(image_id, [])
        if boxes:
            task["predictions"] = [{
                "model_version": f"mgral-cycle-{batch.cycle}",
                "score": sum(box["score"] for box in boxes) / len(boxes),
                "result": [_region(box, record, batch.classes, index) for index, box in
                           enumerate(boxes)],
            }]
        tasks.append(task)
    return tasks


def _region(box: Mapping[str, Any], record: Mapping[str, Any], classes: Sequence[str],
            index: int) -> dict[str, Any]:
    width, height = record["width"], record["height"]
    x1, y1, x2, y2 = box["bbox"]
    x1, y1 = max(x1, 0.0), max(y1, 0.0)  # detections may poke out of the image by a pixel
    x2, y2 = min(x2, width), min(y2, height)
    return {
        "id": f"mgral{index}", "from_name": FROM_NAME, "to_name": TO_NAME,
        "type": "rectanglelabels", "original_width": width, "original_height": height,
        "image_rotation": 0, "score": box["score"],
        "value": {"x": 100 * x1 / width, "y": 100 * y1 / height,
                  "width": 100 * (x2 - x1) / width, "height": 100 * (y2 - y1) / height,
                  "rotation": 0, "rectanglelabels": [classes[box["class_id"]]]},
    }


def read_export_file(path: Path, limits: Limits = Limits(),
                     faults: Faults | None = None) -> list[ReturnedImage]:
    """A Label Studio JSON export (Export > JSON): the finished tasks in it."""
    limits.check_size(path)
    try:
        tasks = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidLabelsError(f"{path}: not valid JSON, truncated or corrupt "
                                 f"({decoding_error(error)})") from error
    return read_export(tasks, str(path), limits, faults)


def read_export(tasks: Any, where: str, limits: Limits = Limits(),
                faults: Faults | None = None) -> list[ReturnedImage]:
    """Tasks with at least one submitted (not skipped) annotation; the others are not done.
    A task's faults go to `faults` (raised by the caller, with the rest of the file's)."""
    faults = faults if faults is not None else Faults()
    if not isinstance(tasks, list):
        raise InvalidLabelsError(f"{where}: a Label Studio JSON export is a list of tasks")
    returned = []
    for position, task in enumerate(tasks):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            faults.add("malformed task", f"{where}: task #{position} has no 'data' object")
            continue
        task_id = task.get("id", f"#{position}")
        task_where = f"{where}: task {shown(task_id) if not is_number(task_id) else task_id}"
        annotation = _finished_annotation(task, task_where, faults)
        if annotation is not None:
            image = _returned_image(task, annotation, task_where, limits, faults)
            if image is not None:
                returned.append(image)
    return returned


def task_key(task: Mapping[str, Any]) -> str:
    """The image a task shows: our id when we made the task, else its image reference."""
    data = task["data"]
    return str(data.get("mgral_image_id") or data.get(TO_NAME) or next(iter(data.values()), ""))


def _finished_annotation(task: Mapping[str, Any], where: str,
                         faults: Faults) -> dict[str, Any] | None:
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        faults.add("malformed task", f"{where}: 'annotations' is not a list")
        return None
    submitted = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not submitted:
        return None
    chosen = [a for a in submitted if a.get("ground_truth")] or submitted
    results = {json.dumps(_boxes_only(a.get("result")), sort_keys=True) for a in chosen}
    if len(results) > 1:
        ids = [a.get("id") if is_number(a.get("id")) else "?" for a in chosen]
        faults.add("conflicting annotations",
                   f"{where}: image {shown(task_key(task))} is labelled twice with conflicting "
                   f"boxes (annotations {ids}); delete one or mark one as ground truth")
        return None
    return chosen[0]


def _boxes_only(result: Any) -> Any:
    if not isinstance(result, list):
        return result
    return [{"type": r.get("type"), "value": r.get("value")} for r in result if isinstance(r, dict)]


def _returned_image(task: Mapping[str, Any], annotation: Mapping[str, Any], where: str,
                    limits: Limits, faults: Faults) -> ReturnedImage | None:
    key = task_key(task)
    where_image = f"{where}: image {shown(key)}"
    result = annotation.get("result")
    if not isinstance(result, list):
        faults.add("malformed task", f"{where_image}: annotation has no result list")
        return None
    boxes, size, extra = [], None, 0
    for item in result:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind in _NO_GEOMETRY:
            continue
        if kind != "rectanglelabels":
            faults.add("not a rectangle", f"{where_image}: unsupported region type "
                       f"{shown(kind)} (only rectangles are detection labels)")
            continue
        if len(boxes) >= limits.max_boxes_per_image:
            extra += 1  # counted for the message, not kept: memory stays bounded
            continue
        box, item_size = _rectangle(item, where_image, faults)
        if box is not None:
            boxes.append(box)
            size = item_size
    # With the faults noted, the image's readable boxes go on to be checked too: one pass finds
    # every fault of the file.
    return ReturnedImage(key, boxes, where, size, extra)


def _rectangle(item: Mapping[str, Any], where: str,
               faults: Faults) -> tuple[tuple[str, list[float]] | None, tuple[int, int] | None]:
    value = item.get("value")
    value = value if isinstance(value, dict) else {}
    keys = ("x", "y", "width", "height")
    wrong = [k for k in keys if not is_number(value.get(k))]
    sizes = (item.get("original_width"), item.get("original_height"))
    if wrong or not all(is_number(v) and math.isfinite(v) for v in sizes):
        texts = [k for k in keys if isinstance(value.get(k), str)]
        problem = "coordinate is text" if texts else "malformed rectangle"
        detail = (f"{'/'.join(texts)} given as text, not a number" if texts else
                  f"needs numbers x, y, width, height, original_width and original_height "
                  f"(missing or not a number: {', '.join(wrong) or 'original size'})")
        faults.add(problem, f"{where}: rectangle {detail}")
        return None, None
    names = value.get("rectanglelabels")
    rotation = value.get("rotation") or 0
    if not is_number(rotation) or rotation != 0:
        faults.add("rotated box", f"{where}: rotated box is not an axis-aligned detection label")
        return None, None
    if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
        count = len(names) if isinstance(names, list) else 0
        faults.add("not one label per box", f"{where}: a box needs exactly one label, got {count}")
        return None, None
    x, y, w, h = (float(value[k]) for k in keys)
    width, height = int(sizes[0]), int(sizes[1])
    return (names[0], [x * width / 100, y * height / 100, (x + w) * width / 100,
                       (y + h) * height / 100]), (width, height)
