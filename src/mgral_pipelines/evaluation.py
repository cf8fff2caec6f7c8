"""Detection mAP with pycocotools' COCOeval: the one place the project's mAP numbers come from.

Inputs are in the project's own formats: manifest records and annotations (absolute
`[x1, y1, x2, y2]` boxes) and detections as `detector.predict` returns them. Class ids are used as
COCO category ids.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

logger = logging.getLogger(__name__)

Records = Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]
Boxes = Sequence[Mapping[str, Any]]


def coco_evaluate(
    classes: Sequence[str],
    records: Records,
    annotations: Mapping[str, Boxes],
    detections: Mapping[str, Boxes],
    image_ids: Sequence[str],
) -> dict[str, Any]:
    """COCO bbox mAP of `detections` against `annotations` on `image_ids`.

    Returns `map50_95` (mAP@[.5:.95], area "all", maxDets=100), `map50` (mAP@.5),
    `per_class_ap50_95` and `num_images`. Edge cases:
    - an image without ground-truth boxes counts, and its detections are false positives;
    - a class without ground-truth boxes in `image_ids` has no defined AP: it is left out of
      `per_class_ap50_95` and, as in COCO, its detections do not affect the mAP;
    - no detections at all gives mAP 0.0 (pycocotools cannot load an empty result list);
    - no ground-truth box in any image leaves mAP undefined: NaN, with a warning.
    """
    image_ids = list(dict.fromkeys(image_ids))  # keep order, drop repeats
    coco_ids = {image_id: index + 1 for index, image_id in enumerate(image_ids)}
    ground_truth = _coco_ground_truth(classes, _index_records(records), annotations, coco_ids)
    results = _coco_results(detections, coco_ids)
    num_gt = len(ground_truth.dataset["annotations"])
    if num_gt == 0:
        logger.warning("No ground-truth box in the %d evaluated images: no mAP", len(image_ids))
        return _summary(math.nan, math.nan, {}, len(image_ids))
    classes_in_gt = sorted({ann["category_id"] for ann in ground_truth.dataset["annotations"]})
    if not results:
        return _summary(0.0, 0.0, {classes[c]: 0.0 for c in classes_in_gt}, len(image_ids))

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and tables
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    per_class = {classes[c]: _class_ap(evaluator, c) for c in classes_in_gt}
    return _summary(float(evaluator.stats[0]), float(evaluator.stats[1]), per_class, len(image_ids))


def _summary(
    map50_95: float, map50: float, per_class: dict[str, float], num_images: int
) -> dict[str, Any]:
    return {
        "map50_95": map50_95,
        "map50": map50,
        "per_class_ap50_95": per_class,
        "num_images": num_images,
    }


def _index_records(records: Records) -> dict[str, Mapping[str, Any]]:
    """Records by image id, from a manifest's `images` list or an id -> record mapping."""
    values = records.values() if isinstance(records, Mapping) else records
    return {record["image_id"]: record for record in values}


def _xywh(bbox: Sequence[float]) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [x1, y1, x2 - x1, y2 - y1]


def _coco_ground_truth(
    classes: Sequence[str],
    records: Mapping[str, Mapping[str, Any]],
    annotations: Mapping[str, Boxes],
    coco_ids: Mapping[str, int],
) -> COCO:
    images, boxes = [], []
    for image_id, coco_id in coco_ids.items():
        if image_id not in records:
            raise ValueError(f"image id {image_id!r} is not in the records")
        record = records[image_id]
        images.append(
            {"id": coco_id, "width": record["width"], "height": record["height"],
             "file_name": image_id}
        )
        for box in annotations.get(image_id, []):
            x, y, w, h = _xywh(box["bbox"])
            boxes.append(
                {
                    "id": len(boxes) + 1,  # COCOeval skips id 0
                    "image_id": coco_id,
                    "category_id": int(box["class_id"]),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": boxes,
        "categories": [{"id": index, "name": name} for index, name in enumerate(classes)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _coco_results(
    detections: Mapping[str, Boxes], coco_ids: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Detections of the evaluated images in COCO result format; other images are ignored."""
    return [
        {
            "image_id": coco_ids[image_id],
            "category_id": int(detection["class_id"]),
            "bbox": _xywh(detection["bbox"]),
            "score": float(detection["score"]),
        }
        for image_id in coco_ids
        for detection in detections.get(image_id, [])
    ]


def _class_ap(evaluator: COCOeval, category_id: int) -> float:
    """AP@[.5:.95] of one category, from COCOeval's accumulated precision (area "all", maxDets=100).

    `precision` has shape [iou, recall, category, area, maxDets]; -1 marks "no ground truth".
    """
    k = list(evaluator.params.catIds).index(category_id)
    precision = evaluator.eval["precision"][:, :, k, 0, -1]
    valid = precision[precision > -1]
    return float(np.mean(valid)) if valid.size else math.nan
