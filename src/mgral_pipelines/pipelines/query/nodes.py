"""Select the cycle's query batch Q with the configured strategy."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mgral_pipelines.config import ALParams
from mgral_pipelines.pipelines.common import cycle_key
from mgral_pipelines.strategies import PoolView, get_strategy

logger = logging.getLogger(__name__)


def labelled_class_counts(state: dict[str, Any], num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.int64)
    for boxes in state["labels"].values():
        for box in boxes:
            counts[box["class_id"]] += 1
    return counts


def select_query(
    state: dict[str, Any], image_index: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Top-B pool images by the strategy's score, as `image_id,file,score`."""
    params = ALParams(**al)
    strategy = get_strategy(params.strategy, **params.strategy_options)
    view = PoolView(
        pool_ids=state["pool_ids"],
        labelled_ids=state["labelled_ids"],
        num_classes=len(image_index["classes"]),
        labelled_class_counts=labelled_class_counts(state, len(image_index["classes"])),
    )
    rng = np.random.default_rng([params.seed, state["cycle"]])
    selection = strategy.select(view, params.budget, rng)
    files = {record["image_id"]: record["file"] for record in image_index["images"]}
    query = pd.DataFrame(
        {"image_id": selection.image_ids,
         "file": [files[i] for i in selection.image_ids],
         "score": selection.scores}
    )
    logger.info("Cycle %d: %s selected %d of %d pool images", state["cycle"], strategy.name,
                len(query), len(state["pool_ids"]))
    metrics = {"query/budget": {"value": float(params.budget), "step": state["cycle"]}}
    return {cycle_key(state): query}, metrics
