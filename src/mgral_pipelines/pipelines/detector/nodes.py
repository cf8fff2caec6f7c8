"""Train the cycle's detector D_t on L_t and evaluate it on V and T (COCO and VOC07 mAP)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from mgral_pipelines import detector as adapter
from mgral_pipelines.pipelines.common import cycle_key, detector_settings, for_cycle
from mgral_pipelines.registry import RegisteredModel, cycle_tags, detector_model, labelled_by

logger = logging.getLogger(__name__)


def _eval_annotations(state: dict[str, Any], eval_labels: dict[str, Any]) -> dict[str, Any]:
    return {**eval_labels["val"], **eval_labels["test"], **state["labels"]}


def train_detector(
    state: dict[str, Any], image_index: dict[str, Any], eval_labels: dict[str, Any],
    detector: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """Fine-tune the base detector on L_t (model selection on V); returns the checkpoint."""
    config, run_dir = detector_settings(detector)
    logger.info("Cycle %d: training on %d labelled images", state["cycle"], len(state["labelled_ids"]))
    checkpoint, info = adapter.train_detector(
        records=image_index["images"],
        annotations=_eval_annotations(state, eval_labels),
        classes=image_index["classes"],
        train_ids=state["labelled_ids"],
        val_ids=sorted(eval_labels["val"]),
        config=config,
        run_dir=run_dir / cycle_key(state),
    )
    return {cycle_key(state): checkpoint}, {**info, "cycle": state["cycle"]}


def package_detector(
    checkpoints: dict[str, Any], state: dict[str, Any], image_index: dict[str, Any],
    detector: dict[str, Any],
) -> dict[str, RegisteredModel]:
    """D_t for the MLflow model registry (`mgral-detector`), tagged with the strategies that chose
    its labelled set, the cycle and the dataset."""
    config, _ = detector_settings(detector)
    weights = for_cycle(checkpoints, state, "detector")
    tags = cycle_tags(state, labelled_by(state))
    return {cycle_key(state): detector_model(weights, image_index["classes"],
                                             dataclasses.asdict(config), tags)}


def evaluate_detector(
    checkpoints: dict[str, Any], state: dict[str, Any], image_index: dict[str, Any],
    eval_labels: dict[str, Any], detector: dict[str, Any],
) -> dict[str, Any]:
    """COCO mAP@[.5:.95], mAP@.5, VOC07 mAP@0.5 and per-class AP on T (the AL curve) and on V."""
    config, _ = detector_settings(detector)
    weights = for_cycle(checkpoints, state, "detector")
    report: dict[str, Any] = {"cycle": state["cycle"], "n_labelled": len(state["labelled_ids"])}
    for split in ("test", "val"):
        report[split] = adapter.evaluate_detector(
            weights, image_index["images"], eval_labels[split], image_index["classes"],
            sorted(eval_labels[split]), config,
        )
    logger.info(
        "Cycle %d detector: test mAP50-95=%.3f mAP50=%.3f", state["cycle"],
        report["test"]["map50_95"], report["test"]["map50"],
    )
    return {cycle_key(state): report}


def detector_metrics(reports: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """Namespaced MLflow metrics, stepped by cycle so the UI draws the AL curve."""
    report = for_cycle(reports, state, "detector")
    step = state["cycle"]
    metrics = {"detector/n_labelled": report["n_labelled"]}
    for split in ("test", "val"):
        metrics[f"detector/{split}_map50_95"] = report[split]["map50_95"]
        metrics[f"detector/{split}_map50"] = report[split]["map50"]
        metrics[f"detector/{split}_voc07_map50"] = report[split]["voc07_map50"]
    return {key: {"value": float(value), "step": step} for key, value in metrics.items()}
