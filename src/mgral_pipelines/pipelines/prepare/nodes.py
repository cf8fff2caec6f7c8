"""Import a dataset, split it by seed, and write the initial AL state (cycle 0)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mgral_pipelines import al_state
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import import_dataset, load_yolo_dataset
from mgral_pipelines.data.manifest import Manifest, image_index, select_annotations

logger = logging.getLogger(__name__)


def import_source(dataset: dict[str, Any]) -> Manifest:
    """The canonical manifest of the configured source; the embedded one is generated first."""
    params = DatasetParams(**dataset)
    if params.source == "embedded":
        data_yaml = generate_embedded_dataset(
            Path(params.raw_dir), EmbeddedDatasetConfig(**params.embedded)
        )
        manifest = load_yolo_dataset(data_yaml)
        manifest["source"] = "embedded"
    else:
        manifest = import_dataset(params.source, params.path, params.classes)
    logger.info(
        "Imported %d images, %d classes from %s (%s)",
        len(manifest["images"]), len(manifest["classes"]), manifest["root"], manifest["source"],
    )
    return manifest


def split_dataset(manifest: Manifest, dataset: dict[str, Any]) -> dict[str, Any]:
    """Validation, test, initial labelled set and pool, fixed by `dataset.splits.seed`."""
    splits = DatasetParams(**dataset).splits
    ids = [record["image_id"] for record in manifest["images"]]
    result = al_state.split_ids(ids, splits.val, splits.test, splits.initial, splits.seed)
    logger.info("Splits: %s", {name: len(part) for name, part in result.items()})
    return {**result, "seed": splits.seed}


def separate_oracle(manifest: Manifest) -> tuple[Manifest, dict[str, Any]]:
    """What strategies may see (no labels) and the oracle (all labels, pool included)."""
    return image_index(manifest), manifest["annotations"]


def evaluation_labels(oracle: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    """Labels of V and T: fixed and owned by the learner from the start."""
    return {
        "val": select_annotations(oracle, splits["val"]),
        "test": select_annotations(oracle, splits["test"]),
    }


def initial_state(index: Manifest, splits: dict[str, Any], oracle: dict[str, Any]) -> dict[str, Any]:
    """Cycle 0: L_0 labelled (its labels revealed by the oracle), the rest of the pool unlabelled."""
    labels = select_annotations(oracle, splits["initial"])
    return al_state.initial_state(splits, labels, al_state.fingerprint(index, splits))
