"""The canonical dataset manifest every importer produces and every pipeline reads.

A manifest is a plain JSON-serialisable dict, so Kedro's JSONDataset stores it as is:

    {
      "source": "yolo",                      # where it came from: embedded | yolo | voc | coco
      "root": "data/01_raw/embedded",         # the imported folder or file, as given
      "classes": ["zero", "one", ...],        # class id = index in this list
      "images": [                             # ordered by image_id
        {"image_id": "000017", "file": "data/01_raw/embedded/images/000017.png",
         "width": 160, "height": 160},
      ],
      "annotations": {                        # image_id -> boxes in absolute pixels (x1, y1, x2, y2)
        "000017": [{"class_id": 3, "bbox": [12.0, 40.5, 38.0, 77.0]}],
      },
      "unlabelled_ids": ["day2__img_0001"],    # optional: images nobody has labelled yet
    }

Every labelled image has an `annotations` entry (an empty list: no objects); an image in
`unlabelled_ids` has none. `annotations` is the *oracle*: in simulation it holds the pool's labels
too, so only `prepare` and the annotation step may read it. Everything a strategy sees goes through
`image_index()` (no labels) and the labels the learner has been given (`known_labels` in the
catalog).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

Manifest = dict[str, Any]
Boxes = list[dict[str, Any]]


class InvalidDatasetError(ValueError):
    """A dataset failed validation. The message names the file and the problem."""


def image_index(manifest: Manifest) -> Manifest:
    """The manifest without its annotations: what a strategy is allowed to see."""
    return {key: value for key, value in manifest.items() if key != "annotations"}


def records_by_id(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {record["image_id"]: record for record in manifest["images"]}


def select_annotations(annotations: dict[str, Boxes], image_ids: Iterable[str]) -> dict[str, Boxes]:
    """Annotations of `image_ids`. Every labelled image has an entry (empty: no objects); an id
    without one was never labelled, and inventing "no objects" for it would be a wrong label."""
    image_ids = list(image_ids)
    unlabelled = [image_id for image_id in image_ids if image_id not in annotations]
    if unlabelled:
        raise InvalidDatasetError(
            f"{len(unlabelled)} image(s) have no labels in the dataset (e.g. {unlabelled[:3]}): "
            "they are unlabelled, so only people can label them (al.annotator=label_studio or files)"
        )
    return {image_id: list(annotations[image_id]) for image_id in image_ids}


def check_image_file(path: Path) -> tuple[int, int]:
    """Width and height of a readable image; InvalidDatasetError if missing or corrupt."""
    if not path.is_file():
        raise InvalidDatasetError(f"{path}: image file is missing")
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise InvalidDatasetError(f"{path}: image file is corrupt or unreadable ({error})") from error


def check_box(bbox: list[float], width: int, height: int, where: str) -> None:
    """Reject degenerate boxes and boxes outside the image, naming where the box came from."""
    if len(bbox) != 4:
        raise InvalidDatasetError(f"{where}: box needs 4 coordinates, got {bbox}")
    x1, y1, x2, y2 = bbox
    if not (x2 > x1 and y2 > y1):
        raise InvalidDatasetError(f"{where}: degenerate box {bbox} (zero or negative width/height)")
    # Half a pixel of slack: converters round box edges to the pixel grid.
    tolerance = 0.5
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise InvalidDatasetError(
            f"{where}: box {bbox} lies outside the {width}x{height} image"
        )


def validate_manifest(manifest: Manifest, check_files: bool = True) -> Manifest:
    """Check a manifest as a whole; returns it unchanged or raises InvalidDatasetError.

    Importers validate each record as they read it (so errors can name the source file); this is
    the last gate before anything is written, and it re-checks what importers cannot see alone:
    duplicate ids, an empty dataset, annotations of unknown images or classes.
    """
    classes = manifest.get("classes") or []
    if not classes:
        raise InvalidDatasetError(f"{manifest.get('root')}: dataset declares no classes")
    if len(set(classes)) != len(classes):
        raise InvalidDatasetError(f"{manifest.get('root')}: duplicate class names in {classes}")
    images = manifest.get("images") or []
    if not images:
        raise InvalidDatasetError(f"{manifest.get('root')}: dataset is empty (no images found)")
    seen: dict[str, dict[str, Any]] = {}
    for record in images:
        image_id = record["image_id"]
        if image_id in seen:
            raise InvalidDatasetError(
                f"{record['file']}: duplicate image id '{image_id}' "
                f"(also used by {seen[image_id]['file']})"
            )
        seen[image_id] = record
        if check_files:
            check_image_file(Path(record["file"]))
    for image_id, boxes in manifest.get("annotations", {}).items():
        if image_id not in seen:
            raise InvalidDatasetError(
                f"{manifest.get('root')}: annotations for unknown image id '{image_id}'"
            )
        record = seen[image_id]
        for box in boxes:
            class_id = box["class_id"]
            if not isinstance(class_id, int) or not 0 <= class_id < len(classes):
                raise InvalidDatasetError(
                    f"{record['file']}: unknown class id {class_id} "
                    f"(dataset has {len(classes)} classes)"
                )
            check_box(box["bbox"], record["width"], record["height"], record["file"])
    for image_id in manifest.get("unlabelled_ids", []):
        if image_id not in seen:
            raise InvalidDatasetError(f"{manifest.get('root')}: unlabelled id '{image_id}' has no image")
        if image_id in manifest.get("annotations", {}):
            raise InvalidDatasetError(f"{seen[image_id]['file']}: listed as unlabelled but has labels")
    return manifest
