"""CVAT for images 1.1 XML: pre-labels to upload into a CVAT task, and the finished export.

Format: https://docs.cvat.ai/docs/manual/advanced/xml_format/ . Boxes are `<box label xtl ytl xbr
ybr>` in pixels. A CVAT export lists every image of the task, so every batch image it lists counts
as labelled (one without boxes: no objects); export when the job is finished.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from xml.parsers import expat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgral_pipelines.annotation.batch import (
    BatchImages,
    Faults,
    InvalidLabelsError,
    Limits,
    ReturnedImage,
    shown,
)


def write_cvat(batch: BatchImages, prelabels: Mapping[str, list[dict[str, Any]]]) -> str:
    """The batch with the detector's boxes (`source="auto"`), named as in the package's images/."""
    root = ElementTree.Element("annotations")
    ElementTree.SubElement(root, "version").text = "1.1"
    task = ElementTree.SubElement(ElementTree.SubElement(root, "meta"), "task")
    ElementTree.SubElement(task, "name").text = f"mgral cycle {batch.cycle}"
    ElementTree.SubElement(task, "size").text = str(len(batch.records))
    labels = ElementTree.SubElement(task, "labels")
    for name in batch.classes:
        label = ElementTree.SubElement(labels, "label")
        ElementTree.SubElement(label, "name").text = name
        ElementTree.SubElement(label, "attributes")
    for index, (image_id, record) in enumerate(batch.records.items()):
        image = ElementTree.SubElement(root, "image", id=str(index), name=batch.name(image_id),
                                       width=str(record["width"]), height=str(record["height"]))
        for box in prelabels.get(image_id, []):
            x1, y1, x2, y2 = box["bbox"]
            ElementTree.SubElement(
                image, "box", label=batch.classes[box["class_id"]], source="auto", occluded="0",
                xtl=f"{max(x1, 0.0):.2f}", ytl=f"{max(y1, 0.0):.2f}",
                xbr=f"{min(x2, record['width']):.2f}", ybr=f"{min(y2, record['height']):.2f}",
                z_order="0",
            )
    ElementTree.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ElementTree.tostring(root, "unicode") + "\n"


class _DeclaresEntities(Exception):
    """A CVAT export declares no XML entity; one that does may expand to gigabytes."""


def _refuse_entities(*_: Any) -> None:
    raise _DeclaresEntities


def read_cvat(path: Path, limits: Limits = Limits(),
              faults: Faults | None = None) -> list[ReturnedImage]:
    """Every image of a CVAT for images 1.1 export, with its boxes."""
    faults = faults if faults is not None else Faults()
    limits.check_size(path)
    data = Path(path).read_bytes()
    # A first pass refuses entity declarations (the "billion laughs") before any expands.
    scanner = expat.ParserCreate()
    scanner.EntityDeclHandler = _refuse_entities
    scanner.UnparsedEntityDeclHandler = _refuse_entities
    try:
        scanner.Parse(data, True)
        root = ElementTree.fromstring(data)
    except _DeclaresEntities as error:
        raise InvalidLabelsError(f"{path}: declares XML entities, which a CVAT export never "
                                 "does (they can expand to gigabytes); refused unread") from error
    except (expat.ExpatError, ElementTree.ParseError) as error:
        line, column = getattr(error, "position", (getattr(error, "lineno", "?"),
                                                   getattr(error, "offset", "?")))
        raise InvalidLabelsError(f"{path}: not valid XML, truncated or corrupt "
                                 f"(at line {line} column {column})") from error
    if root.tag != "annotations":
        raise InvalidLabelsError(
            f"{path}: not a CVAT for images export (root <{str(root.tag)[:30]}>)")
    returned = []
    for image in root.iter("image"):
        name = image.get("name")
        number = image.get("id") or "?"
        where = f"{path}: <image id={number if number.isdigit() else shown(number)}>"
        if not name:
            faults.add("malformed entry", f"{where}: no name")
            continue
        try:
            size = (int(image.get("width")), int(image.get("height")))
        except (TypeError, ValueError):
            size = None
        image_where = f"{where}: image {shown(name)}"
        boxes, extra = [], 0
        for shape in image:
            if shape.tag in ("tag",):
                continue
            if shape.tag != "box":
                faults.add("not a rectangle", f"{image_where}: unsupported shape "
                           f"<{str(shape.tag)[:30]}> (only boxes are detection labels)")
                continue
            if len(boxes) >= limits.max_boxes_per_image:
                extra += 1  # counted for the message, not kept
                continue
            try:
                bbox = [float(shape.get(key)) for key in ("xtl", "ytl", "xbr", "ybr")]
                rotation = float(shape.get("rotation") or 0)
            except (TypeError, ValueError):
                faults.add("malformed box", f"{image_where}: box without numeric xtl/ytl/xbr/ybr")
                continue
            if rotation != 0:
                faults.add("rotated box", f"{image_where}: rotated box is not a detection label")
                continue
            boxes.append((shape.get("label") or "", bbox))
        returned.append(ReturnedImage(name, boxes, where, size, extra))  # faults noted apart
    return returned
