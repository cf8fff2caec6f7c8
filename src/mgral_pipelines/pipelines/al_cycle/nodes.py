"""Annotation and state update: the end of one active-learning cycle."""

from __future__ import annotations

import logging
from typing import Any

from mgral_pipelines import al_state
from mgral_pipelines.config import ALParams
from mgral_pipelines.data.manifest import select_annotations
from mgral_pipelines.pipelines.common import for_cycle

logger = logging.getLogger(__name__)


def annotate_from_oracle(
    queries: dict[str, Any], state: dict[str, Any], oracle: dict[str, Any]
) -> dict[str, Any]:
    """Simulated annotation: the oracle reveals the labels of the queried images only."""
    query = for_cycle(queries, state, "query")
    return select_annotations(oracle, query["image_id"].astype(str).tolist())


def update_state(
    state: dict[str, Any], queries: dict[str, Any], new_labels: dict[str, Any], al: dict[str, Any]
) -> dict[str, Any]:
    """L_{t+1} = L_t ∪ Q, U_{t+1} = U_t \\ Q: the state of the next cycle."""
    query = for_cycle(queries, state, "query")
    next_state = al_state.advance(
        state, query["image_id"].astype(str).tolist(), new_labels, ALParams(**al).strategy
    )
    logger.info(
        "Cycle %d -> %d: %d labelled, %d left in the pool", state["cycle"], next_state["cycle"],
        len(next_state["labelled_ids"]), len(next_state["pool_ids"]),
    )
    return next_state
