"""Import a dataset, split it by seed, and write the initial AL state (cycle 0).

Nothing is written until every check has passed: the import and the split are one node, so the
manifest, the oracle and the index are saved only for a dataset that splits. A new `prepare` of the
same data keeps the AL progress that is still valid (see `al_state.carry_over`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mgral_pipelines import al_state
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import import_dataset, load_yolo_dataset
from mgral_pipelines.data.manifest import Manifest, image_index, select_annotations
from mgral_pipelines.data.splits import assign_splits
from mgral_pipelines.data.unlabelled import add_unlabelled_folder

logger = logging.getLogger(__name__)


def generate_embedded(dataset: dict[str, Any]) -> str:
    """The path `import_source` reads. With `dataset.source: embedded`, the embedded dataset is
    written to `dataset.raw_dir` first (reused when generated from the same config) and this is its
    data.yaml; for your own data it is `dataset.path`, and `raw_dir` is left an empty folder, so
    DVC's `embedded` stage has its output whatever the source."""
    params = DatasetParams(**dataset)
    if params.source != "embedded":
        Path(params.raw_dir).mkdir(parents=True, exist_ok=True)
        return str(params.path)
    return str(generate_embedded_dataset(Path(params.raw_dir), EmbeddedDatasetConfig(**params.embedded)))


def import_source(source_path: str, dataset: dict[str, Any]) -> Manifest:
    """The canonical manifest of the configured source, read from `source_path`, plus the images
    of `dataset.unlabelled` when given."""
    params = DatasetParams(**dataset)
    if params.source == "embedded":
        manifest = load_yolo_dataset(Path(source_path))
        manifest["source"] = "embedded"
    else:
        manifest = import_dataset(params.source, source_path, params.class_names(),
                                  params.images_dir)
    logger.info(
        "Imported %d labelled images, %d classes from %s (%s): %s", len(manifest["images"]),
        len(manifest["classes"]), manifest["root"], manifest["source"], manifest["classes"],
    )
    if params.unlabelled:
        manifest = add_unlabelled_folder(manifest, params.unlabelled)
    return manifest


def split_dataset(manifest: Manifest, dataset: dict[str, Any]) -> dict[str, Any]:
    """Validation, test, initial labelled set and pool, fixed by `dataset.splits.seed`."""
    params = DatasetParams(**dataset)
    result = assign_splits(manifest, params)
    logger.info("Splits: %s", {name: len(part) for name, part in result.items()})
    return {**result, "seed": params.splits.seed}


def import_and_split(source_path: str, dataset: dict[str, Any]) -> tuple[Manifest, dict[str, Any]]:
    """Both checks first, then both outputs: a dataset that cannot be split writes nothing."""
    manifest = import_source(source_path, dataset)
    return manifest, split_dataset(manifest, dataset)


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
    evaluation = al_state.evaluation_fingerprint(index["classes"], evaluation_labels(oracle, splits))
    return al_state.initial_state(
        splits, labels, al_state.fingerprint(index, splits), evaluation
    )


def keep_progress(fresh: dict[str, Any], states: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The state to save: the latest one continued on the new data while its progress is valid,
    else cycle 0 (earlier cycles are then archived by the state store, never deleted)."""
    if not states:
        return fresh
    latest = states[max(states)]
    # Without cycle 0 (e.g. `dvc repro` removed it, as it does with a stage's outputs) the run
    # reproduces from the start.
    kept, reason = al_state.carry_over(latest, fresh) if 0 in states else (None, "no cycle 0 state")
    if kept is None:
        logger.warning("Starting again at cycle 0 (cycles %s go to the archive): %s",
                       sorted(states), reason)
        return fresh
    added = len(set(kept["pool_ids"]) - set(latest["pool_ids"]))
    removed = len(set(latest["pool_ids"]) - set(kept["pool_ids"]))
    logger.info("Kept the AL progress of cycle %d (%d labelled images); pool: %d added, %d removed",
                kept["cycle"], len(kept["labelled_ids"]), added, removed)
    return kept
