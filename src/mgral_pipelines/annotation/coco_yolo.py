"""COCO JSON and YOLO folders of returned labels, and the COCO file of each cycle's imported labels.

COCO: every image listed counts as labelled (no annotations: no objects); categories are matched
by name. YOLO: `<image name>.txt` per labelled image (an empty file: no objects; no file: not done)
in the folder or its `labels/`, class indices in the order of the project's classes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mgral_pipelines.annotation.batch import BatchImages, InvalidLabelsError, ReturnedImage


def read_coco(path: Path) -> list[ReturnedImage]:
    try:
        coco = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidLabelsError(f"{path}: not valid JSON, truncated or corrupt ({error})") from error
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list) \
            or not isinstance(coco.get("categories"), list):
        raise InvalidLabelsError(f"{path}: a COCO file needs 'images' and 'categories' lists")
    try:
        names = {c["id"]: str(c["name"]) for c in coco["categories"]}
        images = {entry["id"]: entry for entry in coco["images"]}
    except (KeyError, TypeError) as error:
        raise InvalidLabelsError(f"{path}: category or image entry without id/name/file_name") from error
    boxes: dict[Any, list[tuple[str, list[float]]]] = {image_id: [] for image_id in images}
    for ann in coco.get("annotations") or []:
        where = f"{path}: annotation {ann.get('id')}"
        if ann.get("image_id") not in images:
            raise InvalidLabelsError(f"{where}: refers to unknown image id {ann.get('image_id')}")
        if ann.get("category_id") not in names:
            raise InvalidLabelsError(f"{where}: unknown category_id {ann.get('category_id')}")
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidLabelsError(f"{where}: needs a 'bbox' of 4 numbers [x, y, w, h]") from error
        boxes[ann["image_id"]].append((names[ann["category_id"]], [x, y, x + w, y + h]))
    returned = []
    for image_id, entry in images.items():
        if "file_name" not in entry:
            raise InvalidLabelsError(f"{path}: image {image_id} has no file_name")
        size = (int(entry["width"]), int(entry["height"])) if "width" in entry and "height" in entry \
            else None
        returned.append(ReturnedImage(str(entry["file_name"]), boxes[image_id],
                                      f"{path}: image {image_id}", size))
    return returned


def read_yolo_folder(path: Path, classes: list[str]) -> list[ReturnedImage]:
    folder = Path(path) / "labels" if (Path(path) / "labels").is_dir() else Path(path)
    _check_yolo_names(Path(path), classes)
    returned = []
    for label_file in sorted(folder.glob("*.txt")):
        if label_file.name == "classes.txt":
            continue
        try:
            lines = label_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise InvalidLabelsError(f"{label_file}: not a text file ({error})") from error
        rows = [(number, line.split()) for number, line in enumerate(lines, 1) if line.strip()]
        returned.append(ReturnedImage(label_file.stem, [], str(label_file), None))
        for number, fields in rows:
            try:
                class_id, values = int(fields[0]), [float(v) for v in fields[1:]]
                if len(values) != 4 or not 0 <= class_id < len(classes):
                    raise ValueError
            except (ValueError, IndexError) as error:
                raise InvalidLabelsError(
                    f"{label_file}:{number}: image '{label_file.stem}': cannot read '{' '.join(fields)}'"
                    f" (expected 'class cx cy w h' with class 0..{len(classes) - 1})"
                ) from error
            returned[-1].boxes.append((classes[class_id], values))
    return returned


def yolo_to_pixels(returned: list[ReturnedImage], batch: BatchImages) -> list[ReturnedImage]:
    """YOLO rows are normalised centre boxes: convert once the image (and its size) is known."""
    converted = []
    for image in returned:
        image_id = batch.find(image.key)
        if image_id is None:
            converted.append(image)
            continue
        width, height = batch.records[image_id]["width"], batch.records[image_id]["height"]
        boxes = [(name, [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                         (cy + h / 2) * height]) for name, (cx, cy, w, h) in image.boxes]
        converted.append(ReturnedImage(image.key, boxes, image.where, None))
    return converted


def _check_yolo_names(folder: Path, classes: list[str]) -> None:
    names = None
    if (folder / "classes.txt").is_file():
        names = [n.strip() for n in (folder / "classes.txt").read_text().splitlines() if n.strip()]
    elif (folder / "data.yaml").is_file():
        names = (yaml.safe_load((folder / "data.yaml").read_text()) or {}).get("names")
        names = list(names.values()) if isinstance(names, dict) else names
    if names is not None and list(names) != list(classes):
        raise InvalidLabelsError(f"{folder}: class list {names} differs from the project's {classes}")


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
