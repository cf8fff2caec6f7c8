"""COCO JSON and YOLO folders of returned labels, and the COCO file of each cycle's imported labels.

COCO: every image listed counts as labelled (no annotations: no objects); categories are matched
by name. YOLO: `<image name>.txt` per labelled image (an empty file: no objects; no file: not done)
in the folder or its `labels/`, class indices in the order of the project's classes.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

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


def read_coco(path: Path, limits: Limits = Limits(),
              faults: Faults | None = None) -> list[ReturnedImage]:
    faults = faults if faults is not None else Faults()
    limits.check_size(path)
    try:
        coco = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidLabelsError(f"{path}: not valid JSON, truncated or corrupt "
                                 f"({decoding_error(error)})") from error
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("categories"), list):
        raise InvalidLabelsError(f"{path}: a COCO file needs 'images' and 'categories' lists")
    names = {}
    for number, category in enumerate(coco["categories"]):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            faults.add("malformed entry", f"{path}: category #{number} needs an id and a name")
        else:
            names[_hashable(category["id"])] = str(category["name"])
    images: dict[Any, dict[str, Any]] = {}
    for number, entry in enumerate(coco["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            faults.add("malformed entry", f"{path}: image #{number} needs an id and a file_name")
        elif _hashable(entry["id"]) in images:
            faults.add("malformed entry", f"{path}: image id {shown(entry['id'])} appears twice")
        else:
            images[_hashable(entry["id"])] = entry
    boxes: dict[Any, list[tuple[str, list[float]]]] = {image_id: [] for image_id in images}
    extra = dict.fromkeys(images, 0)
    for number, ann in enumerate(coco.get("annotations") or []):
        if not isinstance(ann, dict):
            faults.add("malformed entry", f"{path}: annotation #{number} is not an object")
            continue
        where = f"{path}: annotation {shown(ann.get('id', f'#{number}'))}"
        image_id, category = _hashable(ann.get("image_id")), _hashable(ann.get("category_id"))
        bbox = ann.get("bbox")
        if image_id not in images:
            faults.add("unknown image id", f"{where}: refers to unknown image id {shown(image_id)}")
        elif category not in names:
            faults.add("unknown class", f"{where}: unknown category_id {shown(category)}")
        elif not isinstance(bbox, list) or len(bbox) != 4 or not all(is_number(v) for v in bbox):
            text = isinstance(bbox, list) and any(isinstance(v, str) for v in bbox)
            faults.add("coordinate is text" if text else "malformed box",
                       f"{where}: needs a 'bbox' of 4 numbers [x, y, w, h]"
                       + (" (a coordinate is given as text)" if text else ""))
        elif len(boxes[image_id]) >= limits.max_boxes_per_image:
            extra[image_id] += 1  # counted for the message, not kept
        else:
            x, y, w, h = (float(v) for v in bbox)
            boxes[image_id].append((names[category], [x, y, x + w, y + h]))
    returned = []
    for image_id, entry in images.items():
        size = (entry.get("width"), entry.get("height"))
        size = (int(size[0]), int(size[1])) if all(is_number(v) and math.isfinite(v)
                                                     for v in size) else None
        returned.append(ReturnedImage(str(entry["file_name"]), boxes[image_id],
                                      f"{path}: image {shown(image_id)}", size, extra[image_id]))
    return returned


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | type(None)) else repr(value)


def read_yolo_folder(path: Path, classes: list[str], limits: Limits = Limits(),
                     faults: Faults | None = None) -> list[ReturnedImage]:
    """`<name>.txt` per labelled image. Nothing is read through a symbolic link that leads out
    of the returned folder, and no file larger than the limit is read."""
    faults = faults if faults is not None else Faults()
    root = Path(path)
    folder = root / "labels" if (root / "labels").is_dir() else root
    _inside_or_refuse(folder, root)
    _check_yolo_names(root, classes, limits)
    files = [f for f in sorted(folder.glob("*.txt")) if f.name != "classes.txt"]
    total = 0
    returned = []
    for label_file in files:
        if not _inside(label_file, root):
            faults.add("link outside the folder",
                       f"{label_file}: a symbolic link that leads outside {root}; not read")
            continue
        total += label_file.stat().st_size
        limits.check_size(label_file)
        limits.check_size(root, total, "the YOLO labels in total ")
        image = _read_yolo_file(label_file, classes, limits, faults)
        if image is not None:
            returned.append(image)
    return returned


def _read_yolo_file(label_file: Path, classes: list[str], limits: Limits,
                    faults: Faults) -> ReturnedImage | None:
    try:
        lines = label_file.read_bytes().decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        faults.add("not a text file", f"{label_file}: not UTF-8 text (byte {error.start})")
        return None
    rows = [(number, line.split()) for number, line in enumerate(lines, 1) if line.strip()]
    boxes: list[tuple[str, list[float]]] = []
    for number, fields in rows[: limits.max_boxes_per_image]:
        expected = f"expected 'class cx cy w h' with class 0..{len(classes) - 1}"
        if len(fields) != 5:
            faults.add("unreadable line", f"{label_file}:{number}: image {shown(label_file.stem)}: "
                       f"{len(fields)} fields, {expected}")
            continue
        try:
            class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            faults.add("unreadable line", f"{label_file}:{number}: image {shown(label_file.stem)}: "
                       f"a field is not a number, {expected}")
            continue
        if not 0 <= class_id < len(classes):
            faults.add("unknown class", f"{label_file}:{number}: image {shown(label_file.stem)}: "
                       f"class index {class_id} is not in 0..{len(classes) - 1}")
            continue
        boxes.append((classes[class_id], values))
    extra = max(len(rows) - limits.max_boxes_per_image, 0)
    return ReturnedImage(label_file.stem, boxes, str(label_file), None, extra)


def _inside(path: Path, root: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def _inside_or_refuse(path: Path, root: Path) -> None:
    if not _inside(path, root):
        raise InvalidLabelsError(f"{path}: a symbolic link that leads outside {root}; nothing was "
                                 "read. Copy the files into the folder instead")


def yolo_to_pixels(returned: list[ReturnedImage], batch: BatchImages) -> list[ReturnedImage]:
    """YOLO rows are normalised centre boxes: convert once the image (and its size) is known."""
    converted = []
    for image in returned:
        image_id = batch.locate(image.key).image_id
        if image_id is None:
            converted.append(image)
            continue
        width, height = batch.dataset[image_id]["width"], batch.dataset[image_id]["height"]
        boxes = [(name, [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                         (cy + h / 2) * height]) for name, (cx, cy, w, h) in image.boxes]
        converted.append(ReturnedImage(image.key, boxes, image.where, None, image.extra_boxes))
    return converted


def _check_yolo_names(folder: Path, classes: list[str], limits: Limits) -> None:
    names, source = None, None
    for candidate in ("classes.txt", "data.yaml"):
        if (folder / candidate).is_file():
            source = folder / candidate
            _inside_or_refuse(source, folder)
            limits.check_size(source)
            break
    if source is None:
        return
    try:
        text = source.read_bytes().decode("utf-8")
        if source.name == "classes.txt":
            names = [n.strip() for n in text.splitlines() if n.strip()]
        else:
            names = (yaml.safe_load(text) or {}).get("names")
            names = list(names.values()) if isinstance(names, dict) else names
    except (UnicodeDecodeError, yaml.YAMLError, AttributeError) as error:
        raise InvalidLabelsError(f"{source}: unreadable ({type(error).__name__}); it should list "
                                 "the classes") from error
    if names is not None and list(map(str, names)) != list(classes):
        names = list(map(str, names))
        first = next((i for i, (a, b) in enumerate(zip(names, classes)) if a != b),
                     min(len(names), len(classes)))
        got = shown(names[first]) if first < len(names) else "nothing"
        raise InvalidLabelsError(
            f"{source}: its class list ({len(names)} classes) differs from the project's "
            f"{classes}: class {first} is {got}, the project's is "
            f"{shown(classes[first]) if first < len(classes) else 'nothing'}")


def yolo_rows(boxes: list[dict[str, Any]], width: int, height: int) -> str:
    rows = []
    for box in boxes:
        x1, y1, x2, y2 = box["bbox"]
        x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height)
        rows.append(f"{box['class_id']} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
                    f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}\n")
    return "".join(rows)


def to_coco(labels: Mapping[str, list[dict[str, Any]]], batch: BatchImages,
            info: Mapping[str, Any]) -> dict[str, Any]:
    """A cycle's imported labels as COCO (`file_name` is the image's path): readable by any tool,
    and importable again with `al.files.format=coco`."""
    images, annotations = [], []
    for number, (image_id, boxes) in enumerate(labels.items(), start=1):
        record = batch.records[image_id]
        images.append({"id": number, "file_name": batch.name(image_id), "mgral_image_id": image_id,
                       "path": record["file"], "width": record["width"], "height": record["height"]})
        for box in boxes:
            x1, y1, x2, y2 = box["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": number,
                                "category_id": box["class_id"] + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(batch.classes)]
    return {"info": dict(info), "images": images, "annotations": annotations,
            "categories": categories}
