"""CVAT for images 1.1 XML: pre-labels to upload into a CVAT task, and the finished export.

Format: https://docs.cvat.ai/docs/manual/advanced/xml_format/ . Boxes are `<box label xtl ytl xbr
ybr>` in pixels. A CVAT export lists every image of the task, so every batch image it lists counts
as labelled (one without boxes: no objects); export when the job is finished.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mgral_pipelines.annotation.batch import BatchImages, InvalidLabelsError, ReturnedImage


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


def read_cvat(path: Path) -> list[ReturnedImage]:
    """Every image of a CVAT for images 1.1 export, with its boxes."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise InvalidLabelsError(f"{path}: not valid XML, truncated or corrupt ({error})") from error
    if root.tag != "annotations":
        raise InvalidLabelsError(f"{path}: not a CVAT for images export (root <{root.tag}>)")
    returned = []
    for image in root.iter("image"):
        name = image.get("name")
        where = f"{path}: <image id={image.get('id')}>"
        if not name:
            raise InvalidLabelsError(f"{where}: no name")
        try:
            size = (int(image.get("width")), int(image.get("height")))
        except (TypeError, ValueError):
            size = None
        boxes = []
        for shape in image:
            if shape.tag in ("tag",):
                continue
            if shape.tag != "box":
                raise InvalidLabelsError(f"{where}: image '{name}': unsupported shape <{shape.tag}> "
                                         "(only boxes are detection labels)")
            try:
                bbox = [float(shape.get(key)) for key in ("xtl", "ytl", "xbr", "ybr")]
            except (TypeError, ValueError) as error:
                raise InvalidLabelsError(f"{where}: image '{name}': box without numeric "
                                         "xtl/ytl/xbr/ybr") from error
            if float(shape.get("rotation") or 0) != 0:
                raise InvalidLabelsError(f"{where}: image '{name}': rotated box "
                                         f"({shape.get('rotation')}°) is not a detection label")
            boxes.append((shape.get("label") or "", bbox))
        returned.append(ReturnedImage(name, boxes, where, size))
    return returned
