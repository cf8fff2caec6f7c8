"""PASCAL VOC2007 detection AP (mAP@0.5, 11-point interpolation), honouring `difficult` flags.

The AL papers on VOC (MI-AOD, PPAL, MGRAL) report this number, and pycocotools has no VOC07 mode,
so this module implements the rule of the VOC2007 development kit (`VOCdevkit/VOCcode/
VOCevaldet.m`; Everingham et al., "The PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010,
Sec. 4.2). Per class:

1. Detections of all images are sorted by decreasing confidence (stable, like Matlab's `sort`).
2. Each detection is assigned to the ground-truth box of its image and class with the highest
   IoU (the first one on ties). With IoU >= 0.5 it is a true positive if that box is not
   `difficult` and not yet detected, a false positive if it was already detected, and *neither*
   if the box is `difficult`. Below 0.5 (or no box) it is a false positive.
3. Recall = TP / (ground-truth boxes that are not difficult); precision = TP / (TP + FP),
   cumulated over the sorted detections.
4. AP = mean over t in {0, 0.1, ..., 1} of the highest precision at recall >= t (0 if none).

mAP is the mean AP over the classes that have at least one non-difficult box in the evaluated
images; a class without one has no defined AP (the devkit would divide by zero) and is left out,
as `evaluation.coco_evaluate` leaves out classes without ground truth.

Boxes are the manifest's continuous `[x1, y1, x2, y2]`. The devkit adds 1 to widths because its
boxes are 1-based inclusive pixel indices; the VOC importer already turns `xmin..xmax` into
`[xmin - 1, xmax]`, whose width `xmax - xmin + 1` is the devkit's, so no +1 is added here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

Boxes = Sequence[Mapping[str, Any]]

IOU_THRESHOLD = 0.5
RECALL_POINTS = np.linspace(0.0, 1.0, 11)


def voc07_evaluate(
    classes: Sequence[str],
    annotations: Mapping[str, Boxes],
    detections: Mapping[str, Boxes],
    image_ids: Sequence[str],
) -> dict[str, Any]:
    """VOC07 mAP@0.5 of `detections` against `annotations` on `image_ids`.

    Returns `voc07_map50` (NaN when no class has a non-difficult box) and `per_class_voc07_ap50`.
    Ground-truth boxes with `"difficult": True` neither count as positives nor penalise the
    detections matched to them.
    """
    image_ids = list(dict.fromkeys(image_ids))
    per_class = {}
    for class_id, name in enumerate(classes):
        ap = class_ap(class_id, annotations, detections, image_ids)
        if ap is not None:
            per_class[name] = ap
    mean_ap = float(np.mean(list(per_class.values()))) if per_class else math.nan
    return {"voc07_map50": mean_ap, "per_class_voc07_ap50": per_class}


def class_ap(
    class_id: int,
    annotations: Mapping[str, Boxes],
    detections: Mapping[str, Boxes],
    image_ids: Sequence[str],
) -> float | None:
    """VOC07 AP@0.5 of one class; None when it has no non-difficult ground-truth box."""
    truth = {}
    for image_id in image_ids:
        boxes = [box for box in annotations.get(image_id, []) if int(box["class_id"]) == class_id]
        truth[image_id] = (
            np.asarray([box["bbox"] for box in boxes], dtype=float).reshape(-1, 4),
            np.asarray([bool(box.get("difficult", False)) for box in boxes], dtype=bool),
            np.zeros(len(boxes), dtype=bool),  # already detected
        )
    positives = sum(int((~difficult).sum()) for _, difficult, _ in truth.values())
    if positives == 0:
        return None

    found = [(float(det["score"]), image_id, det["bbox"]) for image_id in image_ids
             for det in detections.get(image_id, []) if int(det["class_id"]) == class_id]
    order = np.argsort([-score for score, _, _ in found], kind="stable")
    true_positive = np.zeros(len(found))
    false_positive = np.zeros(len(found))
    for rank, index in enumerate(order):
        _, image_id, bbox = found[index]
        boxes, difficult, detected = truth[image_id]
        overlaps = iou(np.asarray(bbox, dtype=float), boxes)
        best = int(np.argmax(overlaps)) if overlaps.size else -1
        if best < 0 or overlaps[best] < IOU_THRESHOLD:
            false_positive[rank] = 1
        elif difficult[best]:
            continue  # matched a difficult box: neither a true nor a false positive
        elif detected[best]:
            false_positive[rank] = 1  # a second detection of the same object
        else:
            true_positive[rank] = 1
            detected[best] = True
    return eleven_point_ap(np.cumsum(true_positive), np.cumsum(false_positive), positives)


def eleven_point_ap(tp: np.ndarray, fp: np.ndarray, positives: int) -> float:
    """VOC07 AP from cumulative TP and FP counts: mean of the best precision at recall >= t."""
    recall = tp / positives
    precision = tp / np.maximum(tp + fp, np.finfo(float).eps)
    return float(np.mean([precision[recall >= t].max(initial=0.0) for t in RECALL_POINTS]))


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one `[x1, y1, x2, y2]` box with each row of `boxes` (continuous coordinates)."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    intersection = width * height
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - intersection
    return intersection / union
