"""Inference: predict, embed and the COCO mAP of evaluate_detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mgral_pipelines.detector.inference import (
    embed,
    evaluate_detector,
    predict,
    ultralytics_val_metrics,
)
from tests.conftest import DetectorDataset
from tests.detector.conftest import CONFIG, Trained


def _all_ids(data: DetectorDataset) -> list[str]:
    return [record["image_id"] for record in data.records]


def _own_class_score(detection: dict) -> float:
    return detection["class_scores"][detection["class_id"]]


@pytest.mark.slow
def test_embed_gives_one_row_per_image_in_order(detector_trained: Trained) -> None:
    data = detector_trained.dataset
    ids = _all_ids(data)

    vectors = embed(detector_trained.weights, data.records, ids, CONFIG, progress=False)
    # 23 + 1: other batch compositions, including a batch of one.
    reversed_small_batches = embed(detector_trained.weights, data.records, ids[::-1], CONFIG,
                                   batch_size=23, progress=False)

    assert vectors.shape == (len(ids), 448)  # yolov8n neck: 64 + 128 + 256 channels
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(reversed_small_batches[::-1], vectors, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_identical_images_get_identical_embeddings(detector_trained: Trained) -> None:
    data = detector_trained.dataset
    ids = _all_ids(data)
    (copy_id, original_id), = data.duplicate_of.items()

    vectors = embed(detector_trained.weights, data.records, ids, CONFIG, progress=False)

    np.testing.assert_array_equal(vectors[ids.index(copy_id)], vectors[ids.index(original_id)])
    assert not np.array_equal(vectors[ids.index(original_id)], vectors[ids.index("0001")])


@pytest.mark.slow
def test_predict_returns_the_documented_structure(detector_trained: Trained) -> None:
    data = detector_trained.dataset
    ids = _all_ids(data)

    detections = predict(detector_trained.weights, data.records, ids, CONFIG, conf=0.05,
                         progress=False)

    assert list(detections) == ids
    assert any(detections.values())
    sizes = {record["image_id"]: (record["width"], record["height"]) for record in data.records}
    for image_id, found in detections.items():
        width, height = sizes[image_id]
        for detection in found:
            assert set(detection) == {"class_id", "bbox", "score", "class_scores"}
            assert len(detection["class_scores"]) == len(data.classes)
            assert detection["score"] >= 0.05
            assert detection["score"] == pytest.approx(max(detection["class_scores"]))
            assert _own_class_score(detection) == pytest.approx(detection["score"])
            x1, y1, x2, y2 = detection["bbox"]
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height


@pytest.mark.slow
def test_multi_label_predict_repeats_boxes_for_runner_up_classes(detector_trained: Trained) -> None:
    data = detector_trained.dataset
    single = predict(detector_trained.weights, data.records, data.val_ids, CONFIG, conf=0.001,
                     progress=False)
    multi = predict(detector_trained.weights, data.records, data.val_ids, CONFIG, conf=0.001,
                    multi_label=True, progress=False)

    assert sum(map(len, multi.values())) > sum(map(len, single.values()))
    for found in multi.values():
        for detection in found:
            assert _own_class_score(detection) == pytest.approx(detection["score"])


@pytest.mark.slow
def test_predicted_boxes_are_in_original_image_pixels(
    detector_trained: Trained, tmp_path: Path
) -> None:
    data = detector_trained.dataset
    original = next(r for r in data.records if r["image_id"] == "0001")
    with Image.open(original["file"]) as image:
        image.resize((128, 128), Image.Resampling.NEAREST).save(tmp_path / "big.png")
        # A non-square image must come back in its own coordinates too.
        canvas = Image.new("RGB", (96, 64))
        canvas.paste(image, (32, 0))
        canvas.save(tmp_path / "wide.png")
    records = [
        original,
        {"image_id": "big", "file": str(tmp_path / "big.png"), "width": 128, "height": 128},
        {"image_id": "wide", "file": str(tmp_path / "wide.png"), "width": 96, "height": 64},
    ]

    found = predict(detector_trained.weights, records, ["0001", "big", "wide"], CONFIG, conf=0.05,
                    progress=False)

    assert found["0001"]
    # Halving a 2x nearest-neighbour upscale gives back the exact pixels, so the same boxes at 2x.
    small = np.array([d["bbox"] for d in found["0001"]])
    big = np.array([d["bbox"] for d in found["big"]])
    np.testing.assert_allclose(big, 2 * small, atol=1e-3)
    for detection in found["wide"]:
        x1, y1, x2, y2 = detection["bbox"]
        assert 0 <= x1 < x2 <= 96 and 0 <= y1 < y2 <= 64


@pytest.mark.slow
def test_pycocotools_map_agrees_with_ultralytics_val(
    detector_trained: Trained, tmp_path: Path
) -> None:
    """evaluate_detector (pycocotools) and ultralytics' val agree within 0.03 mAP.

    Both see the same pixels (square 64 px images at imgsz 64, square letterbox) and the same
    multi-label NMS at conf 0.001 and max_det 100, so their detections are identical; what remains
    is how mAP is computed. Both match greedily in score order (ultralytics 8.4 does it like
    COCOeval), but ultralytics integrates the linearly interpolated precision envelope over 101
    recall points with the trapezoid rule, where COCOeval averages the envelope sampled at the first
    recall reaching each of its 101 thresholds. On this set the difference measured 0.002-0.020
    (mAP50-95) and 0.002-0.007 (mAP50) over 4 seeds x 3 subsets, pycocotools always slightly
    higher. 0.03 leaves room for that and still catches real errors (xyxy/xywh mix-ups, class-id
    offsets or unscaled boxes move mAP by far more).
    """
    data = detector_trained.dataset
    ids = _all_ids(data)

    ours = evaluate_detector(detector_trained.weights, data.records, data.annotations, data.classes,
                             ids, CONFIG, progress=False)
    theirs = ultralytics_val_metrics(detector_trained.weights, data.records, data.annotations,
                                     data.classes, ids, CONFIG, tmp_path)

    print(f"pycocotools {ours['map50_95']:.4f} / {ours['map50']:.4f}, "
          f"ultralytics {theirs['map50_95']:.4f} / {theirs['map50']:.4f}")
    assert ours["map50_95"] > 0.1
    assert ours["map50_95"] == pytest.approx(theirs["map50_95"], abs=0.03)
    assert ours["map50"] == pytest.approx(theirs["map50"], abs=0.03)
    assert set(ours["per_class_ap50_95"]) == set(data.classes)
    assert ours["num_images"] == len(ids)
