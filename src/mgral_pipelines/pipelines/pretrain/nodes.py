"""Pretrain the base detector on embedded-style scenes disjoint from pool, V and T.

The scenes are drawn from the other half of the MNIST digits (`digit_split: pretrain`) with their
own seed, so no digit instance of the AL dataset is seen during pretraining. The result is the
committed `assets/base_detector.pt`; users with real data start from COCO weights the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mgral_pipelines import al_state
from mgral_pipelines import detector as adapter
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import load_yolo_dataset
from mgral_pipelines.pipelines.common import detector_settings

logger = logging.getLogger(__name__)


def pretrain_base_detector(pretrain: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Train from the architecture YAML; returns the checkpoint and its provenance."""
    data_config = EmbeddedDatasetConfig(**pretrain["dataset"])
    if data_config.digit_split != "pretrain":
        raise ValueError("pretrain.dataset.digit_split must be 'pretrain' (disjoint from the AL data)")
    manifest = load_yolo_dataset(generate_embedded_dataset(Path(pretrain["raw_dir"]), data_config))
    ids = [record["image_id"] for record in manifest["images"]]
    split = al_state.split_ids(ids, val=pretrain["val_size"], test=0, initial=0, seed=data_config.seed)
    config, run_dir = detector_settings(pretrain["detector"])
    checkpoint, info = adapter.train_detector(
        records=manifest["images"], annotations=manifest["annotations"],
        classes=manifest["classes"], train_ids=split["pool"], val_ids=split["val"],
        config=config, run_dir=run_dir,
    )
    metrics = adapter.evaluate_detector(
        checkpoint, manifest["images"], manifest["annotations"], manifest["classes"],
        split["val"], config,
    )
    logger.info("Base detector: val mAP50-95=%.3f mAP50=%.3f", metrics["map50_95"], metrics["map50"])
    provenance = {
        "produced_by": pretrain.get("produced_by", "kedro run --pipeline=pretrain"),
        "data": {**pretrain["dataset"], "train_images": len(split["pool"]),
                 "val_images": len(split["val"]), "classes": manifest["classes"]},
        "detector": pretrain["detector"],
        "training": info,
        "val_metrics": metrics,
    }
    return checkpoint, provenance
