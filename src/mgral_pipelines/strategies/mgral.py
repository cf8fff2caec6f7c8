"""MGRAL: the trained LSTM policy scores every pool image in one pass; the top-B form the query.

The policy itself is trained by the `agent` pipeline on LUT rewards (see `mgral/agent.py`); this
strategy only runs query inference, so it plugs into the same cycle and benchmark as the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgral_pipelines.mgral.agent import policy_from_bytes, score_pool, select_top
from mgral_pipelines.strategies.base import PoolView, Selection, check_budget


@dataclass(frozen=True)
class MGRALConfig:
    """Query inference settings."""

    chunk_size: int | None = None
    """Images per forward pass; None = the policy's training `sequence_length`, so the LSTM sees
    contexts as long as those it was trained on."""


class MGRALStrategy:
    """Top-B pool images by the MGRAL policy's selection score."""

    name: str = "mgral"
    needs: frozenset[str] = frozenset({"embeddings", "policy"})

    def __init__(self, config: MGRALConfig = MGRALConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        policy, agent_config = policy_from_bytes(view.policy)
        pool = np.stack([view.embeddings[image_id] for image_id in view.pool_ids])
        chunk_size = self.config.chunk_size or agent_config.sequence_length
        chosen = select_top(score_pool(policy, pool, chunk_size), view.pool_ids, budget)
        return Selection(image_ids=[i for i, _ in chosen], scores=[s for _, s in chosen])
