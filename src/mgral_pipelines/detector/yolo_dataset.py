"""The YOLO-format view of the project's images and annotations that ultralytics trains on."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Records = Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]
Annotations = Mapping[str, Sequence[Mapping[str, Any]]]


def write_yolo_dataset(
    dataset_dir: Path,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    splits: Mapping[str, Sequence[str]],
) -> Path:
    """Write a YOLO-format view of the images in `splits`; returns its `data.yaml`.

    `images/<id><ext>` link to the original files (copies where links are not allowed),
    `labels/<id>.txt` hold normalised `cls cx cy w h` rows, `<split>.txt` list the images.
    The folder is rebuilt from scratch so no stale label survives.
    """
    dataset_dir = Path(dataset_dir).resolve()
    shutil.rmtree(dataset_dir, ignore_errors=True)
    (dataset_dir / "images").mkdir(parents=True)
    (dataset_dir / "labels").mkdir()
    by_id = _index_records(records)
    written: dict[str, Path] = {}
    for split, image_ids in splits.items():
        lines = []
        for image_id in image_ids:
            if image_id not in written:
                written[image_id] = _write_image(dataset_dir, by_id, annotations, image_id)
            lines.append(str(written[image_id]))
        (dataset_dir / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {
        "path": str(dataset_dir),
        **{split: str(dataset_dir / f"{split}.txt") for split in splits},
        "names": dict(enumerate(classes)),
    }
    data_yaml = dataset_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data_yaml


def _write_image(
    dataset_dir: Path,
    records: Mapping[str, Mapping[str, Any]],
    annotations: Annotations,
    image_id: str,
) -> Path:
    if image_id not in records:
        raise ValueError(f"image id {image_id!r} is not in the records")
    if Path(image_id).name != image_id:
        raise ValueError(f"image id {image_id!r} cannot be used as a file name")
    record = records[image_id]
    source = Path(record["file"]).resolve()
    image = _view_image_path(dataset_dir, record)
    try:
        image.symlink_to(source)
    except OSError:  # e.g. Windows without symlink rights
        shutil.copy2(source, image)
    rows = "".join(
        _label_row(box, record["width"], record["height"]) for box in annotations.get(image_id, [])
    )
    (dataset_dir / "labels" / f"{image_id}.txt").write_text(rows, encoding="utf-8")
    return image


def _view_image_path(dataset_dir: Path, record: Mapping[str, Any]) -> Path:
    """Where the YOLO view links an image (ultralytics' `im_file` for it)."""
    suffix = Path(record["file"]).resolve().suffix.lower()
    return Path(dataset_dir).resolve() / "images" / f"{record['image_id']}{suffix}"


def _label_row(box: Mapping[str, Any], width: int, height: int) -> str:
    # Clip first: the manifest allows half a pixel outside the image, ultralytics drops such images.
    x1, y1, x2, y2 = box["bbox"]
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{int(box['class_id'])} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


def _index_records(records: Records) -> dict[str, Mapping[str, Any]]:
    values = records.values() if isinstance(records, Mapping) else records
    return {record["image_id"]: record for record in values}
