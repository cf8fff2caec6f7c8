"""VOC07 mAP@0.5 on hand-made cases whose answer is worked out by hand below."""

from __future__ import annotations

import math

import pytest

from mgral_pipelines.voc_evaluation import voc07_evaluate

CLASSES = ["cat", "dog", "bird"]


def _box(class_id, x1, y1, x2, y2, **extra):
    return {"class_id": class_id, "bbox": [float(x1), float(y1), float(x2), float(y2)], **extra}


def _det(class_id, score, x1, y1, x2, y2):
    return {**_box(class_id, x1, y1, x2, y2), "score": score}


ANNOTATIONS = {
    "a": [
        _box(0, 0, 0, 10, 10),                      # cat 1
        _box(0, 20, 20, 30, 30),                    # cat 2
        _box(0, 40, 40, 50, 50, difficult=True),    # a difficult cat
        _box(1, 60, 60, 70, 70),                    # the only dog
    ],
    "b": [_box(2, 0, 0, 10, 10, difficult=True)],   # birds are all difficult
}

# Cat detections, by decreasing score, and what the VOC07 rule makes of them:
#   0.9 on cat 1           TP   cum TP 1 FP 0   P 1     R 0.5
#   0.8 on the difficult   --   (ignored: neither TP nor FP)
#   0.7 on nothing         FP   cum TP 1 FP 1   P 1/2   R 0.5
#   0.6 on cat 2           TP   cum TP 2 FP 1   P 2/3   R 1
#   0.5 on cat 1 again     FP   cum TP 2 FP 2   P 1/2   R 1
# 11-point AP: t = 0 .. 0.5 (6 points) best P = 1; t = 0.6 .. 1 (5 points) best P = 2/3
#   AP(cat) = (6 * 1 + 5 * 2/3) / 11 = 28/33. No dog detection: AP(dog) = 0.
#   Birds have no non-difficult box: no AP, left out. mAP = (28/33 + 0) / 2 = 14/33.
DETECTIONS = {
    "a": [
        _det(0, 0.6, 20, 20, 30, 30),
        _det(0, 0.9, 0, 0, 10, 10),
        _det(0, 0.5, 0, 0, 10, 10),
        _det(0, 0.8, 40, 40, 50, 50),
        _det(0, 0.7, 80, 80, 90, 90),
    ],
    "b": [_det(2, 0.9, 0, 0, 10, 10)],
}


def test_difficult_objects_are_neither_positives_nor_false_positives():
    result = voc07_evaluate(CLASSES, ANNOTATIONS, DETECTIONS, ["a", "b"])

    assert result["per_class_voc07_ap50"] == pytest.approx({"cat": 28 / 33, "dog": 0.0})
    assert result["voc07_map50"] == pytest.approx(14 / 33)


def test_ignoring_the_flag_would_give_another_answer():
    """Same boxes with `difficult` dropped: 3 positive cats, the 0.8 detection becomes a TP.
    Cum (TP, FP): (1,0) (2,0) (2,1) (3,1) (3,2); R = 1/3, 2/3, 2/3, 1, 1; P = 1, 1, 2/3, 3/4, 3/5.
    AP = (7 * 1 + 4 * 3/4) / 11 = 10/11."""
    plain = {image: [{k: v for k, v in box.items() if k != "difficult"} for box in boxes]
             for image, boxes in ANNOTATIONS.items()}

    result = voc07_evaluate(CLASSES, plain, DETECTIONS, ["a", "b"])

    assert result["per_class_voc07_ap50"]["cat"] == pytest.approx(10 / 11)


def test_iou_threshold_is_inclusive_at_one_half_and_matches_only_within_the_image():
    # [0, 0, 10, 10] against [0, 0, 10, 20]: IoU = 100 / 200 = 0.5, a match in the devkit.
    annotations = {"x": [_box(0, 0, 0, 10, 20)], "y": []}
    half = {"x": [_det(0, 0.9, 0, 0, 10, 10)]}
    assert voc07_evaluate(CLASSES, annotations, half, ["x", "y"])["voc07_map50"] == 1.0

    # The same box in another image is a false positive; ranked first it halves precision.
    elsewhere = {"y": [_det(0, 0.95, 0, 0, 10, 20)], **half}
    result = voc07_evaluate(CLASSES, annotations, elsewhere, ["x", "y"])
    assert result["voc07_map50"] == pytest.approx(0.5)


def test_detections_outside_the_evaluated_images_are_ignored_and_no_truth_gives_nan():
    result = voc07_evaluate(CLASSES, ANNOTATIONS, DETECTIONS, ["a", "b", "a"])
    assert result["voc07_map50"] == pytest.approx(14 / 33)  # a repeated id counts once

    empty = voc07_evaluate(CLASSES, {"b": ANNOTATIONS["b"]}, DETECTIONS, ["b"])
    assert math.isnan(empty["voc07_map50"]) and empty["per_class_voc07_ap50"] == {}
