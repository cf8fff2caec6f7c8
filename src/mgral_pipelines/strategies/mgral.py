"""MGRAL: the trained LSTM policy scores every pool image; the top-B form the query.

The policy itself is trained by the `agent` pipeline on LUT rewards (see `mgral/agent.py`); this
strategy only runs query inference, so it plugs into the same cycle and benchmark as the others.

`mgral_fixed_reward` is its ablation: the same policy, inputs and query, trained with the reward
fixed to the heuristic MGRAL's default read-out reduces to (the batch's mean rarity-weighted count
of D_t's confident detections), with no variants and no LUT. If MGRAL does not beat it, the
variants and the table are not what selects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgral_pipelines.mgral.agent import policy_from_bytes, score_pool, select_top
from mgral_pipelines.mgral.features import policy_inputs
from mgral_pipelines.strategies.base import PoolView, Selection, check_budget


@dataclass(frozen=True)
class MGRALConfig:
    """Query inference settings."""

    contexts: int | None = None
    """Random contexts (of the policy's training `sequence_length` images) each pool image is
    scored in; None = the policy's `scoring_contexts`."""


class MGRALStrategy:
    """Top-B pool images by the MGRAL policy's selection score."""

    name: str = "mgral"
    needs: frozenset[str] = frozenset({"embeddings", "detections", "policy"})
    policy_reward: str = "lut"
    """What the cycle trains the policy on: `lut`, the LUT's estimated ΔmAP of a batch."""

    def __init__(self, config: MGRALConfig = MGRALConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        policy, agent_config = policy_from_bytes(view.policy)
        # A canonical order (by id), so the query does not depend on the order of the pool.
        ids = sorted(view.pool_ids)
        detections = view.detections if agent_config.detector_features else None
        if agent_config.detector_features and detections is None:
            raise ValueError("the MGRAL policy reads the detector's predictions: PoolView.detections "
                             "is missing")
        pool = np.stack([policy_inputs(view.embeddings[image_id],
                                       None if detections is None else detections[image_id],
                                       view.num_classes) for image_id in ids])
        expected = policy.feature_mean.numel()
        if pool.shape[1] != expected:
            raise ValueError(f"the MGRAL policy reads {expected} inputs per image, but this cycle "
                             f"gives {pool.shape[1]}: train the agent on this cycle's embeddings "
                             "(`kedro run --pipeline=agent`)")
        contexts = self.config.contexts or agent_config.scoring_contexts
        scores = score_pool(policy, pool, agent_config.sequence_length, contexts,
                            seed=agent_config.seed)
        chosen = select_top(scores, ids, budget)
        return Selection(image_ids=[i for i, _ in chosen], scores=[s for _, s in chosen])


class MGRALFixedRewardStrategy(MGRALStrategy):
    """MGRAL's policy trained on the batch's mean rarity-weighted detections: no variants, no LUT."""

    name: str = "mgral_fixed_reward"
    policy_reward: str = "rare_detections"
