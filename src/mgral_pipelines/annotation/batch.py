"""The query batch people label, and the checks every returned label passes before it is used.

Each format reader turns a tool's file into `ReturnedImage`s (names and pixel boxes as the tool
wrote them); `check_returned` then matches them to the batch and refuses, naming the file, the
image and the problem: an image that is not in the batch, an unknown class, a box outside the
image or degenerate, an image size that does not match, or an image labelled twice with
conflicting boxes. An image returned with no boxes was marked empty: labelled, no objects.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from mgral_pipelines.data.manifest import Boxes, InvalidDatasetError, check_box

# Label Studio prefixes uploaded files with 8 hex digits and a dash.
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")


class InvalidLabelsError(ValueError):
    """Returned labels failed a check. The message names the file, the image and the problem."""


class AwaitingLabels(RuntimeError):
    """The cycle's batch is not labelled yet; the message says how much is done. Nothing changed."""


@dataclass(frozen=True)
class ReturnedImage:
    """One image as an annotation tool returned it."""

    key: str
    """The image as the tool names it: an image id, a file name or a URL."""
    boxes: list[tuple[str, list[float]]]
    """(class name, [x1, y1, x2, y2] in pixels)."""
    where: str
    """File and position, for error messages (e.g. `export.json: task 17`)."""
    size: tuple[int, int] | None = None
    """Width and height the tool says it annotated, when it says so."""


@dataclass(frozen=True)
class BatchImages:
    """The awaiting batch of one cycle with what is needed to name, draw and check its images."""

    cycle: int
    records: dict[str, dict[str, Any]]
    """image_id -> manifest record (file, width, height), in query order."""
    classes: list[str]
    _by_name: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_state(cls, state: Mapping[str, Any], image_index: Mapping[str, Any]) -> BatchImages:
        batch = state["awaiting"]
        records = {record["image_id"]: record for record in image_index["images"]}
        return cls.of(batch["cycle"], batch["image_ids"], records, image_index["classes"])

    @classmethod
    def of(cls, cycle: int, image_ids: Sequence[str], records: Mapping[str, Mapping[str, Any]],
           classes: Sequence[str]) -> BatchImages:
        chosen = {image_id: dict(records[image_id]) for image_id in image_ids}
        by_name: dict[str, str] = {}
        basenames = [Path(record["file"]).name for record in chosen.values()]
        for image_id, record in chosen.items():
            by_name[package_name(record)] = image_id
            if basenames.count(Path(record["file"]).name) == 1:
                by_name.setdefault(Path(record["file"]).name, image_id)
        return cls(cycle, chosen, list(classes), by_name)

    def name(self, image_id: str) -> str:
        return package_name(self.records[image_id])

    def find(self, key: str) -> str | None:
        """The batch image a tool's name for it refers to, or None."""
        if key in self.records:
            return key
        name = tool_file_name(key)
        return self._by_name.get(name) or self._by_name.get(_UPLOAD_PREFIX.sub("", name))


def package_name(record: Mapping[str, Any]) -> str:
    """The file name of an image in an annotation package: its id with its own suffix."""
    return f"{record['image_id']}{Path(record['file']).suffix.lower()}"


def tool_file_name(key: str) -> str:
    """The file name inside a tool's image reference: a path, a URL, or LS's `?d=<path>`."""
    parsed = urlparse(key)
    local = parse_qs(parsed.query).get("d")
    path = local[0] if local else unquote(parsed.path or key)
    return PurePosixPath(path.replace("\\", "/")).name


def prelabels(detections: Mapping[str, Sequence[Mapping[str, Any]]], image_id: str,
              min_score: float) -> list[dict[str, Any]]:
    """The detector's boxes on one image that are confident enough to show people."""
    return [
        {"class_id": int(d["class_id"]), "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])}
        for d in detections.get(image_id, []) if d["score"] >= min_score
    ]


def check_returned(returned: Sequence[ReturnedImage], batch: BatchImages) -> dict[str, Boxes]:
    """Labels per batch image id, after every check; raises InvalidLabelsError at the first fault."""
    labels: dict[str, Boxes] = {}
    first_seen: dict[str, str] = {}
    for image in returned:
        image_id = batch.find(image.key)
        if image_id is None:
            raise InvalidLabelsError(
                f"{image.where}: image '{image.key}' is not in the awaiting batch of cycle "
                f"{batch.cycle} ({len(batch.records)} images)"
            )
        boxes = _checked_boxes(image, batch.records[image_id], batch.classes)
        if image_id in labels and _canonical(labels[image_id]) != _canonical(boxes):
            raise InvalidLabelsError(
                f"{image.where}: image '{image.key}' is labelled twice with conflicting boxes "
                f"(also at {first_seen[image_id]})"
            )
        labels[image_id] = boxes
        first_seen.setdefault(image_id, image.where)
    return labels


def _checked_boxes(image: ReturnedImage, record: Mapping[str, Any], classes: list[str]) -> Boxes:
    width, height = record["width"], record["height"]
    where = f"{image.where}: image '{image.key}'"
    if image.size is not None and tuple(image.size) != (width, height):
        raise InvalidLabelsError(
            f"{where}: annotated at {image.size[0]}x{image.size[1]} but the image is {width}x{height}"
        )
    boxes = []
    for name, bbox in image.boxes:
        if name not in classes:
            raise InvalidLabelsError(f"{where}: unknown class '{name}' (classes: {classes})")
        try:
            check_box(bbox, width, height, where)
        except InvalidDatasetError as error:
            raise InvalidLabelsError(str(error)) from error
        # A micro-pixel grid: the float noise of percent and xywh conversions (57.60000000000001)
        # goes, so labels saved as COCO and imported again are the same labels, bit for bit.
        boxes.append({"class_id": classes.index(name), "bbox": [round(float(v), 6) for v in bbox]})
    return boxes


def _canonical(boxes: Boxes) -> list[tuple[int, tuple[float, ...]]]:
    return sorted((box["class_id"], tuple(round(v, 2) for v in box["bbox"])) for box in boxes)
