"""Select the cycle's query batch Q with the configured strategy."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from mgral_pipelines.config import ALParams
from mgral_pipelines.pipelines.common import cycle_key, for_cycle
from mgral_pipelines.strategies import PoolView, check_selection, get_strategy

logger = logging.getLogger(__name__)


def labelled_class_counts(state: dict[str, Any], num_classes: int) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.int64)
    for boxes in state["labels"].values():
        for box in boxes:
            counts[box["class_id"]] += 1
    return counts


def pool_view(
    state: dict[str, Any], image_index: dict[str, Any], embeddings: dict[str, Any],
    pool_detections: dict[str, Any], policies: dict[str, Any], needs: frozenset[str],
) -> PoolView:
    """What the strategy may see: ids, the learner's labels' class counts, and the artefacts it
    declares in `needs`. Never the oracle."""
    vectors = None
    if "embeddings" in needs:
        features = for_cycle(embeddings, state, "embedding")
        vectors = dict(zip(features["image_ids"], np.asarray(features["vectors"])))
    return PoolView(
        pool_ids=state["pool_ids"],
        labelled_ids=state["labelled_ids"],
        num_classes=len(image_index["classes"]),
        embeddings=vectors,
        detections=for_cycle(pool_detections, state, "embedding") if "detections" in needs else None,
        labelled_class_counts=labelled_class_counts(state, len(image_index["classes"])),
        policy=for_cycle(policies, state, "agent") if "policy" in needs else None,
    )


def select_query(
    state: dict[str, Any], image_index: dict[str, Any], embeddings: dict[str, Any],
    pool_detections: dict[str, Any], policies: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Top-B pool images by the strategy's score, as `image_id,file,score`."""
    params = ALParams(**al)
    strategy = get_strategy(params.strategy, **params.strategy_options)
    view = pool_view(state, image_index, embeddings, pool_detections, policies, strategy.needs)
    rng = np.random.default_rng([params.seed, state["cycle"]])
    started = time.perf_counter()
    selection = strategy.select(view, params.budget, rng)
    seconds = time.perf_counter() - started
    check_selection(selection, view, params.budget)
    files = {record["image_id"]: record["file"] for record in image_index["images"]}
    query = pd.DataFrame(
        {"image_id": selection.image_ids,
         "file": [files[i] for i in selection.image_ids],
         "score": selection.scores}
    )
    logger.info("Cycle %d: %s selected %d of %d pool images in %.2f s", state["cycle"],
                strategy.name, len(query), len(state["pool_ids"]), seconds)
    step = state["cycle"]
    metrics = {"query/budget": float(params.budget), "query/seconds": seconds,
               "query/pool_size": float(len(state["pool_ids"]))}
    return (
        {cycle_key(state): query},
        {key: {"value": value, "step": step} for key, value in metrics.items()},
    )
