"""Inference: `predict` (with each box's class scores), `embed`, and COCO mAP evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mgral_pipelines.detector._ultralytics import _ultralytics_verbosity
from mgral_pipelines.detector.checkpoints import (
    LoadedDetector,
    Weights,
    _check_classes,
    _resolve,
)
from mgral_pipelines.detector.config import DetectorConfig
from mgral_pipelines.detector.yolo_dataset import (
    Annotations,
    Records,
    _index_records,
    write_yolo_dataset,
)
from mgral_pipelines.evaluation import coco_evaluate
from mgral_pipelines.voc_evaluation import voc07_evaluate

from ultralytics.models.yolo.detect import DetectionPredictor
from ultralytics.utils import nms


class _ScoredDetectionPredictor(DetectionPredictor):
    """DetectionPredictor that keeps each detection's class-score vector (as `Results.feats`).

    Same NMS call as ultralytics' postprocess, plus the indices of the kept candidates
    (`return_idxs`) to read their scores from the raw head output.
    """

    multi_label = False

    def postprocess(
        self, preds: Any, img: torch.Tensor, orig_imgs: list[np.ndarray], **kwargs: Any
    ) -> list:
        if getattr(self.model, "end2end", False):
            raise ValueError("NMS-free (end-to-end) heads give no per-class scores; use YOLOv8/11")
        kept, indices = nms.non_max_suppression(
            preds,
            self.args.conf,
            self.args.iou,
            self.args.classes,
            self.args.agnostic_nms,
            multi_label=self.multi_label,
            max_det=self.args.max_det,
            return_idxs=True,
        )
        raw = preds[0] if isinstance(preds, (list, tuple)) else preds  # (B, 4 + nc, candidates)
        nc = len(self.model.names)
        results = self.construct_results(kept, img, orig_imgs)
        for result, scores, index in zip(results, raw, indices):
            # NMS leaves a float (0, 1) placeholder for images without detections.
            result.feats = scores[4 : 4 + nc, index.long().view(-1)].T
        return results


class _MultiLabelDetectionPredictor(_ScoredDetectionPredictor):
    """Keeps a box once per class scoring above `conf`, as ultralytics' validator does for mAP."""

    multi_label = True


def predict(
    weights: Weights | LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    conf: float = 0.25,
    batch_size: int = 32,
    progress: bool = True,
    multi_label: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Detections per image: `[{"class_id", "bbox": [x1, y1, x2, y2] absolute px, "score",
    "class_scores"}]`.

    `class_scores` holds the box's nc per-class confidences (independent sigmoids, they do not sum
    to 1) and `score == class_scores[class_id]`. Without `multi_label` a box has its best class
    only; with it, one detection per class above `conf` (the same box and class_scores). NMS uses
    `config.eval_iou` and `config.max_det`; inputs are letterboxed to `config.imgsz`.
    """
    detector = _resolve(weights, config)
    detections: dict[str, list[dict[str, Any]]] = {}
    batches = _inference_batches(
        detector, records, image_ids, config, batch_size, progress, "predict",
        predictor=_MultiLabelDetectionPredictor if multi_label else _ScoredDetectionPredictor,
        conf=conf, iou=config.eval_iou, max_det=config.max_det,
    )
    for batch_ids, results in batches:
        for image_id, result in zip(batch_ids, results):
            detections[image_id] = _detections(result)
    return detections


def _detections(result: Any) -> list[dict[str, Any]]:
    boxes = result.boxes
    rows = zip(
        boxes.cls.int().tolist(), boxes.xyxy.tolist(), boxes.conf.tolist(), result.feats.tolist()
    )
    return [
        {"class_id": c, "bbox": bbox, "score": score, "class_scores": scores}
        for c, bbox, score, scores in rows
    ]


def embed(
    weights: Weights | LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """One feature vector per image: float32, shape (len(image_ids), d), rows in `image_ids` order.

    The vector concatenates the global-average-pooled neck feature maps that feed the Detect head
    (ultralytics' `embed=` mechanism; d = 448 for yolov8n), after the same letterbox as `predict`.
    No image ids give an empty (0, 0) array.
    """
    detector = _resolve(weights, config)
    vectors: list[np.ndarray] = []
    batches = _inference_batches(
        detector, records, image_ids, config, batch_size, progress, "embed",
        predictor=_ScoredDetectionPredictor, embed=detector.embedding_layers,
    )
    for _, batch_vectors in batches:
        vectors.extend(vector.float().cpu().numpy() for vector in batch_vectors)
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(vectors).astype(np.float32, copy=False)


def _inference_batches(
    detector: LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    batch_size: int,
    progress: bool,
    desc: str,
    **arguments: Any,
) -> Iterator[tuple[list[str], list[Any]]]:
    """Run ultralytics' predictor batch by batch; yields (ids, outputs) in `image_ids` order.

    A list of paths is one in-memory batch to ultralytics, which keeps its order (a folder or a
    long list would be re-sorted by file name).
    """
    by_id = _index_records(records)
    missing = [image_id for image_id in image_ids if image_id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} image ids are not in the records, e.g. {missing[:3]}")
    common = {
        "imgsz": config.imgsz,
        "device": config.device,
        # Square letterbox for every batch: an image's output must not depend on its batch-mates.
        "rect": False,
        "verbose": False,
        "save": False,
    }
    with tqdm(total=len(image_ids), desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, len(image_ids), batch_size):
            batch_ids = list(image_ids[start : start + batch_size])
            paths = [str(by_id[image_id]["file"]) for image_id in batch_ids]
            with detector.lock, _ultralytics_verbosity(config.verbose):
                outputs = detector.yolo.predict(source=paths, **common, **arguments)
            bar.update(len(batch_ids))
            yield batch_ids, outputs


def evaluate_detector(
    weights: Weights | LoadedDetector,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    image_ids: Sequence[str],
    config: DetectorConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """COCO mAP on `image_ids`: `{"map50_95", "map50", "per_class_ap50_95", "num_images"}`, and
    beside it VOC07 mAP@0.5: `{"voc07_map50", "per_class_voc07_ap50"}`.

    Detections come from `predict` with `config.eval_conf`, `eval_iou`, `max_det` and multi-label
    NMS (as ultralytics' val: a box also counts for its runner-up classes, which matters for weak
    detectors); the COCO mAP from pycocotools (see `evaluation.coco_evaluate`), the VOC07 one by
    the devkit's rule, which ignores boxes flagged `difficult` (see `voc_evaluation`).
    """
    detector = _resolve(weights, config)
    _check_classes(detector, classes)
    detections = predict(
        detector, records, image_ids, config, conf=config.eval_conf, batch_size=config.batch,
        progress=progress, multi_label=True,
    )
    return {**coco_evaluate(classes, records, annotations, detections, image_ids),
            **voc07_evaluate(classes, annotations, detections, image_ids)}


def ultralytics_val_metrics(
    weights: Weights | LoadedDetector,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    image_ids: Sequence[str],
    config: DetectorConfig,
    run_dir: Path,
) -> dict[str, float]:
    """ultralytics' own `model.val()` mAP on `image_ids`, for cross-checking `evaluate_detector`.

    It runs with `rect=False`, the square letterbox `predict` uses: on square images of `imgsz`
    pixels both then see the same input. ultralytics' default rectangular val batches pad every
    image by half a stride, which changes a small-input model's predictions, so the comparison
    would measure preprocessing rather than the mAP computation.
    """
    detector = _resolve(weights, config)
    _check_classes(detector, classes)
    run_dir = Path(run_dir).resolve()
    data_yaml = write_yolo_dataset(
        run_dir / "dataset", records, annotations, classes, {"train": image_ids, "val": image_ids}
    )
    with detector.lock, _ultralytics_verbosity(config.verbose):
        metrics = detector.yolo.val(
            data=str(data_yaml),
            split="val",
            rect=False,
            imgsz=config.imgsz,
            batch=config.batch,
            conf=config.eval_conf,
            iou=config.eval_iou,
            max_det=config.max_det,
            device=config.device,
            plots=False,
            project=str(run_dir),
            name="val",
            exist_ok=True,
            verbose=config.verbose,
        )
    return {
        "map50_95": float(metrics.box.map),
        "map50": float(metrics.box.map50),
        "num_images": len(image_ids),
    }
