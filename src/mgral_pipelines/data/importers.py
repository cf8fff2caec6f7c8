"""Importers for users' datasets: YOLO `data.yaml`, Pascal VOC folders and COCO JSON.

Each returns the canonical manifest (see `manifest.py`) and validates every record as it reads it,
raising `InvalidDatasetError` with the offending file and the problem. Importers only read: a bad
dataset never leaves anything half-written.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mgral_pipelines.data.manifest import (
    InvalidDatasetError,
    Manifest,
    check_box,
    check_image_file,
    validate_manifest,
)

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VOC_CLASSES = [
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
]


def import_dataset(
    source: str, path: str | Path, classes: list[str] | None = None,
    images_dir: str | Path | None = None,
) -> Manifest:
    """Dispatch on `source` (yolo | voc | coco); `images_dir` is COCO's image folder."""
    loaders: dict[str, Callable[..., Manifest]] = {
        "yolo": load_yolo_dataset, "voc": load_voc_dataset, "coco": load_coco_dataset,
    }
    if source not in loaders:
        raise InvalidDatasetError(
            f"unknown dataset source '{source}'; valid sources: {', '.join(sorted(loaders))}"
        )
    path = Path(path)
    if not path.exists():
        raise InvalidDatasetError(f"{path}: dataset path does not exist")
    if source == "coco":
        return load_coco_dataset(path, classes, images_dir)
    return loaders[source](path, classes)


def _manifest(source: str, root: Path, classes: list[str], images: list[dict[str, Any]],
              annotations: dict[str, list[dict[str, Any]]]) -> Manifest:
    seen: dict[str, str] = {}
    for record in images:
        if record["image_id"] in seen:
            raise InvalidDatasetError(
                f"{record['file']}: duplicate image id '{record['image_id']}' "
                f"(also used by {seen[record['image_id']]})"
            )
        seen[record["image_id"]] = record["file"]
    manifest = {
        "source": source, "root": str(root), "classes": list(classes),
        "images": sorted(images, key=lambda r: r["image_id"]), "annotations": annotations,
    }
    return validate_manifest(manifest, check_files=False)


def image_record(image_id: str, path: Path) -> dict[str, Any]:
    """The manifest record of a readable image; InvalidDatasetError if missing or corrupt."""
    width, height = check_image_file(path)
    return {"image_id": image_id, "file": str(path), "width": width, "height": height}


# --- YOLO ------------------------------------------------------------------------------------------

def load_yolo_dataset(data_yaml: Path, classes: list[str] | None = None) -> Manifest:
    """A YOLO `data.yaml`: every split's images, labels found by ultralytics' images->labels rule."""
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise InvalidDatasetError(f"{data_yaml}: data.yaml does not exist")
    try:
        config = yaml.safe_load(data_yaml.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise InvalidDatasetError(f"{data_yaml}: not valid YAML ({error})") from error
    if not isinstance(config, dict):
        raise InvalidDatasetError(f"{data_yaml}: expected a mapping with `names` and `train`")
    names = config.get("names")
    if isinstance(names, dict):
        # Label lines hold indices into `names`: a gap would silently shift every later class.
        try:
            by_index = {int(key): value for key, value in names.items()}
        except (TypeError, ValueError):
            by_index = {}
        if sorted(by_index) != list(range(len(names))):
            raise InvalidDatasetError(
                f"{data_yaml}: `names` keys must be 0..{len(names) - 1}, got {list(names)}"
            )
        names = [by_index[key] for key in range(len(by_index))]
    if not names:
        raise InvalidDatasetError(f"{data_yaml}: no class `names`")
    _check_class_order(data_yaml, names, classes)
    root = data_yaml.parent / config.get("path", ".") if not Path(config.get("path", ".")).is_absolute() \
        else Path(config["path"])
    images, annotations = [], {}
    for image_path in _yolo_image_paths(data_yaml, root, config):
        record = image_record(image_path.stem, image_path)
        images.append(record)
        annotations[record["image_id"]] = _yolo_labels(image_path, record, len(names))
    return _manifest("yolo", data_yaml, names, images, annotations)


def _yolo_image_paths(data_yaml: Path, root: Path, config: dict[str, Any]) -> list[Path]:
    entries: list[str] = []
    for split in ("train", "val", "test"):
        value = config.get(split)
        entries += value if isinstance(value, list) else [value] if value else []
    paths: list[Path] = []
    for entry in entries:
        location = root / entry
        if location.is_dir():
            paths += sorted(p for p in location.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif location.is_file() and location.suffix == ".txt":
            lines = [line.strip() for line in location.read_text().splitlines() if line.strip()]
            paths += [(root / line) if not Path(line).is_absolute() else Path(line) for line in lines]
        elif location.suffix.lower() in IMAGE_SUFFIXES:
            paths.append(location)
        else:
            raise InvalidDatasetError(f"{data_yaml}: split entry '{entry}' ({location}) not found")
    return list(dict.fromkeys(paths))  # a file listed by two splits is one image


def _yolo_label_path(image_path: Path) -> Path:
    parts = list(image_path.parts)
    index = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
    if index is None:
        return image_path.with_suffix(".txt")
    parts[index] = "labels"
    return Path(*parts).with_suffix(".txt")


def _yolo_labels(image_path: Path, record: dict[str, Any], num_classes: int) -> list[dict[str, Any]]:
    label_path = _yolo_label_path(image_path)
    if not label_path.is_file():
        return []  # ultralytics' convention: no label file = no objects
    width, height = record["width"], record["height"]
    boxes = []
    for number, line in enumerate(label_path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{label_path}:{number}"
        fields = line.split()
        try:
            class_id, cx, cy, w, h = int(fields[0]), *map(float, fields[1:5])
            if len(fields) != 5:
                raise ValueError
        except (ValueError, IndexError) as error:
            raise InvalidDatasetError(
                f"{where}: cannot parse label line '{line}' (expected 'class cx cy w h')"
            ) from error
        if not 0 <= class_id < num_classes:
            raise InvalidDatasetError(f"{where}: unknown class id {class_id} ({num_classes} classes)")
        bbox = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width,
                (cy + h / 2) * height]
        check_box(bbox, width, height, where)
        boxes.append({"class_id": class_id, "bbox": bbox})
    return boxes


# --- Pascal VOC ------------------------------------------------------------------------------------

def load_voc_dataset(voc_root: Path, classes: list[str] | None = None) -> Manifest:
    """A VOCdevkit-style folder: `Annotations/*.xml` describing images in `JPEGImages/`.

    Classes: `classes` when given (any other name is refused as an unknown class), else the names
    found in the annotation files, sorted, so the same files always give the same class ids (for
    VOC07/12 these are the 20 VOC classes in their usual order).
    """
    voc_root = Path(voc_root)
    annotation_dir, image_dir = voc_root / "Annotations", voc_root / "JPEGImages"
    for folder in (annotation_dir, image_dir):
        if not folder.is_dir():
            raise InvalidDatasetError(f"{folder}: missing VOC folder")
    parsed = [_voc_record(xml_path, image_dir) for xml_path in sorted(annotation_dir.glob("*.xml"))]
    if not parsed:
        raise InvalidDatasetError(f"{annotation_dir}: dataset is empty (no annotation files found)")
    if classes:
        names = list(classes)
    else:
        names = sorted({obj["name"] for _, objects in parsed for obj in objects})
        logger.info("Classes found in %s (sorted; set dataset.classes or dataset.classes_file for "
                    "another list): %s", annotation_dir, names)
    images, annotations = [], {}
    for record, objects in parsed:
        boxes = []
        for obj in objects:
            if obj["name"] not in names:
                raise InvalidDatasetError(
                    f"{obj['xml']}: unknown class '{obj['name']}' (dataset.classes: {names})"
                )
            box = {"class_id": names.index(obj["name"]), "bbox": obj["bbox"]}
            if obj["difficult"]:
                box["difficult"] = True
            boxes.append(box)
        images.append(record)
        annotations[record["image_id"]] = boxes
    return _manifest("voc", voc_root, names, images, annotations)


def _voc_record(xml_path: Path, image_dir: Path) -> tuple[dict, list[dict]]:
    try:
        root = ElementTree.parse(xml_path).getroot()
    except ElementTree.ParseError as error:
        raise InvalidDatasetError(f"{xml_path}: unparsable XML ({error})") from error
    filename = root.findtext("filename") or f"{xml_path.stem}.jpg"
    record = image_record(Path(filename).stem, image_dir / filename)
    size = root.find("size")
    if size is not None and size.findtext("width") and size.findtext("height"):
        try:
            declared = (int(float(size.findtext("width"))), int(float(size.findtext("height"))))
        except ValueError as error:
            raise InvalidDatasetError(f"{xml_path}: <size> is not numeric") from error
        # Some annotation tools write 0 x 0 when they did not know the size: nothing to compare.
        if declared != (0, 0) and declared != (record["width"], record["height"]):
            raise InvalidDatasetError(
                f"{xml_path}: size {declared} does not match the image's "
                f"{(record['width'], record['height'])}"
            )
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise InvalidDatasetError(f"{xml_path}: object without a <name>")
        bndbox = obj.find("bndbox")
        try:
            # VOC pixel indices are 1-based and inclusive.
            bbox = [float(bndbox.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError) as error:
            raise InvalidDatasetError(f"{xml_path}: object '{name}' has no valid bndbox") from error
        bbox = [bbox[0] - 1, bbox[1] - 1, bbox[2], bbox[3]]
        check_box(bbox, record["width"], record["height"], str(xml_path))
        objects.append({"name": name, "bbox": bbox, "xml": xml_path,
                        "difficult": obj.findtext("difficult", "0").strip() == "1"})
    return record, objects


# --- COCO ------------------------------------------------------------------------------------------

def load_coco_dataset(
    json_path: Path, classes: list[str] | None = None, images_dir: str | Path | None = None
) -> Manifest:
    """A COCO detection JSON. Images are looked for in `images_dir` when given, else next to the
    JSON, in `images/` beside it, or in COCO's own layout (`annotations/instances_train2017.json`
    with images in `train2017/` or `images/train2017/`)."""
    json_path = Path(json_path)
    try:
        coco = json.loads(json_path.read_text())
    except FileNotFoundError as error:
        raise InvalidDatasetError(f"{json_path}: COCO JSON file does not exist") from error
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidDatasetError(f"{json_path}: unparsable JSON ({error})") from error
    if not isinstance(coco, dict):
        raise InvalidDatasetError(f"{json_path}: expected a COCO object with 'images' and 'categories'")
    for key in ("images", "categories"):
        if not isinstance(coco.get(key), list):
            raise InvalidDatasetError(f"{json_path}: missing '{key}' list")
    _require_keys(json_path, "category", coco["categories"], ("id", "name"))
    _require_keys(json_path, "image", coco["images"], ("id", "file_name"))
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    names = [c["name"] for c in categories]
    _check_class_order(json_path, names, classes)
    class_of = {c["id"]: index for index, c in enumerate(categories)}
    images, by_coco_id = [], {}
    folder = _coco_image_folder(json_path, coco["images"], images_dir)
    for entry in coco["images"]:
        if entry["id"] in by_coco_id:
            raise InvalidDatasetError(f"{json_path}: duplicate image id '{entry['id']}'")
        record = image_record(str(entry["id"]), folder / entry["file_name"])
        by_coco_id[entry["id"]] = record
        images.append(record)
    annotations: dict[str, list[dict[str, Any]]] = {record["image_id"]: [] for record in images}
    for ann in coco.get("annotations", []):
        record = by_coco_id.get(ann.get("image_id"))
        if record is None:
            raise InvalidDatasetError(
                f"{json_path}: annotation {ann.get('id')} refers to unknown image id {ann.get('image_id')}"
            )
        if ann.get("category_id") not in class_of:
            raise InvalidDatasetError(
                f"{json_path}: annotation {ann.get('id')} has unknown category_id {ann.get('category_id')}"
            )
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidDatasetError(
                f"{json_path}: annotation {ann.get('id')} needs a 'bbox' of 4 numbers [x, y, w, h]"
            ) from error
        bbox = [x, y, x + w, y + h]
        check_box(bbox, record["width"], record["height"], f"{json_path} (annotation {ann.get('id')})")
        annotations[record["image_id"]].append({"class_id": class_of[ann["category_id"]], "bbox": bbox})
    return _manifest("coco", json_path, names, images, annotations)


def _coco_image_folder(
    json_path: Path, entries: list[dict[str, Any]], images_dir: str | Path | None
) -> Path:
    """The folder holding the images: the one that contains the first listed image."""
    if images_dir is not None:
        if not Path(images_dir).is_dir():
            raise InvalidDatasetError(f"{images_dir}: dataset.images_dir is not a folder")
        return Path(images_dir)
    split = json_path.stem.removeprefix("instances_")
    here, parent = json_path.parent, json_path.parent.parent
    candidates = [here, here / "images", parent / split, parent / "images" / split, parent / "images"]
    if not entries:
        return here
    first = entries[0]["file_name"]
    for folder in candidates:
        if (folder / first).is_file():
            return folder
    raise InvalidDatasetError(
        f"{here / first}: image file is missing (looked for {first} in "
        f"{', '.join(str(c) for c in candidates)}; set dataset.images_dir to the image folder)"
    )


def _require_keys(json_path: Path, kind: str, entries: list[Any], keys: tuple[str, ...]) -> None:
    for entry in entries:
        if not isinstance(entry, dict) or any(key not in entry for key in keys):
            raise InvalidDatasetError(f"{json_path}: {kind} entry {entry!r} needs {' and '.join(keys)}")


def _check_class_order(source: Path, names: list[str], classes: list[str] | None) -> None:
    if classes is not None and list(classes) != list(names):
        raise InvalidDatasetError(f"{source}: classes {names} differ from dataset.classes {classes}")
