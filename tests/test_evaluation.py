"""COCO mAP from hand-made detections: known answers for the edge cases the AL loop meets."""

from __future__ import annotations

import math

import pytest

from mgral_pipelines.evaluation import coco_evaluate

CLASSES = ["cat", "dog", "bird"]
RECORDS = [
    {"image_id": "a", "file": "a.png", "width": 100, "height": 100},
    {"image_id": "b", "file": "b.png", "width": 100, "height": 80},
    {"image_id": "empty", "file": "empty.png", "width": 100, "height": 100},
]
ANNOTATIONS = {
    "a": [
        {"class_id": 0, "bbox": [10.0, 10.0, 40.0, 40.0]},
        {"class_id": 1, "bbox": [50.0, 50.0, 90.0, 90.0]},
    ],
    "b": [{"class_id": 0, "bbox": [5.0, 5.0, 35.0, 45.0]}],
    "empty": [],
}
IDS = ["a", "b", "empty"]


def _perfect() -> dict[str, list[dict]]:
    return {
        image_id: [{**box, "score": 0.9} for box in boxes]
        for image_id, boxes in ANNOTATIONS.items()
    }


def test_perfect_detections_score_one() -> None:
    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), IDS)

    assert result["map50_95"] == pytest.approx(1.0)
    assert result["map50"] == pytest.approx(1.0)
    assert result["num_images"] == 3


def test_class_without_ground_truth_is_left_out_of_per_class_ap() -> None:
    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), IDS)

    assert result["per_class_ap50_95"] == pytest.approx({"cat": 1.0, "dog": 1.0})


def test_no_detections_at_all_score_zero() -> None:
    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, {}, IDS)

    assert result["map50_95"] == 0.0
    assert result["map50"] == 0.0
    assert result["per_class_ap50_95"] == {"cat": 0.0, "dog": 0.0}


def test_wrong_class_detection_lowers_map() -> None:
    detections = _perfect()
    detections["a"][1] = {**detections["a"][1], "class_id": 0}  # the dog called a cat

    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, detections, IDS)

    assert result["per_class_ap50_95"]["dog"] == 0.0
    assert result["map50_95"] < 1.0


def test_false_positive_on_empty_image_lowers_map() -> None:
    detections = _perfect()
    detections["empty"] = [{"class_id": 0, "bbox": [0.0, 0.0, 30.0, 30.0], "score": 0.99}]

    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, detections, IDS)

    assert result["per_class_ap50_95"]["cat"] < 1.0
    assert result["per_class_ap50_95"]["dog"] == pytest.approx(1.0)


def test_empty_image_without_detections_changes_nothing() -> None:
    with_empty = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), IDS)
    without = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), ["a", "b"])

    assert with_empty["map50_95"] == without["map50_95"]


def test_loose_box_counts_at_iou_half_only() -> None:
    # IoU of [10, 10, 40, 40] with [10, 10, 40, 52] is 30*30 / (30*42) = 0.71.
    detections = _perfect()
    detections["a"][0] = {**detections["a"][0], "bbox": [10.0, 10.0, 40.0, 52.0]}

    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, detections, IDS)

    assert result["map50"] == pytest.approx(1.0)
    assert result["map50_95"] < 1.0


def test_detections_of_other_images_are_ignored() -> None:
    detections = _perfect()
    detections["not-evaluated"] = [{"class_id": 0, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 1.0}]

    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, detections, ["a", "b"])

    assert result["map50_95"] == pytest.approx(1.0)


def test_records_may_be_given_by_id() -> None:
    by_id = {record["image_id"]: record for record in RECORDS}

    result = coco_evaluate(CLASSES, by_id, ANNOTATIONS, _perfect(), IDS)

    assert result["map50_95"] == pytest.approx(1.0)


def test_no_ground_truth_at_all_is_undefined() -> None:
    result = coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), ["empty"])

    assert math.isnan(result["map50_95"])
    assert math.isnan(result["map50"])
    assert result["per_class_ap50_95"] == {}


def test_unknown_image_id_is_an_error() -> None:
    with pytest.raises(ValueError, match="missing"):
        coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), ["a", "missing"])


def test_pycocotools_output_is_silenced(capsys: pytest.CaptureFixture[str]) -> None:
    coco_evaluate(CLASSES, RECORDS, ANNOTATIONS, _perfect(), IDS)

    assert capsys.readouterr().out == ""
