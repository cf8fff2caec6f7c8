"""The agent node's check of its query against random batches of the same size."""

from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.mgral.agent import AgentConfig, SelectionPolicy
from mgral_pipelines.pipelines.agent.nodes import query_against_random


def _policy_and_pool(dim: int = 4, pool: int = 40) -> tuple[SelectionPolicy, AgentConfig, np.ndarray]:
    config = AgentConfig(hidden_size=8, sequence_length=16, batch_size=5, scoring_contexts=2)
    policy = SelectionPolicy(dim, config.hidden_size, config.num_layers, config.bidirectional)
    inputs = np.random.default_rng(0).normal(size=(pool, dim)).astype(np.float32)
    return policy, config, inputs


def test_a_reward_that_tells_no_batch_apart_puts_the_query_in_the_middle():
    policy, config, inputs = _policy_and_pool()

    check = query_against_random(policy, config, inputs, inputs, lambda batch: -0.003)

    assert check["agent/query_reward"] == check["agent/random_batch_reward_mean"] == -0.003
    assert check["agent/query_reward_percentile"] == 0.5


def test_the_percentile_counts_the_random_batches_below_the_query():
    policy, config, inputs = _policy_and_pool()

    # Reward: the batch's mean first feature; the best possible batch beats every random one.
    check = query_against_random(policy, config, inputs, inputs,
                                 lambda batch: float(np.mean(batch[:, 0])))

    assert 0.0 <= check["agent/query_reward_percentile"] <= 1.0
    top = np.sort(inputs[:, 0])[-config.batch_size:].mean()
    assert check["agent/query_reward"] <= top + 1e-6
    assert check["agent/random_batch_reward_std"] > 0
    assert check["agent/random_batch_reward_mean"] == pytest.approx(inputs[:, 0].mean(), abs=0.1)


def test_the_fixed_reward_ablation_trains_without_a_table_on_rare_detections():
    """`mgral_fixed_reward`: no LUT partition at all; the reward is the batch's mean
    rarity-weighted count, so the trained query prefers images with confident rare-class boxes."""
    from mgral_pipelines.pipelines.agent.nodes import train_agent

    rng = np.random.default_rng(0)
    pool = [f"p{i:02d}" for i in range(48)]
    rare = {"class_id": 1, "bbox": [0, 0, 8, 8], "score": 0.9, "class_scores": [0.05, 0.9]}
    common = {"class_id": 0, "bbox": [0, 0, 8, 8], "score": 0.9, "class_scores": [0.9, 0.05]}
    detections = {i: [rare, rare] if n % 4 == 0 else [common] if n % 4 == 1 else []
                  for n, i in enumerate(pool)}
    state = {"cycle": 0, "pool_ids": pool, "labelled_ids": ["l0"],
             "labels": {"l0": [{"class_id": 0, "bbox": [0, 0, 4, 4]}] * 6}}
    embeddings = {"cycle_0": lambda: {"image_ids": pool + ["l0"],
                                      "vectors": rng.normal(size=(49, 4)).astype(np.float32)}}
    agent = {"policy": {"hidden_size": 8, "sequence_length": 24, "episodes": 240,
                        "episodes_per_update": 8, "seed": 0}, "lookup": {}}
    al = {"strategy": "mgral_fixed_reward", "budget": 6}

    policies, metrics, _ = train_agent({}, embeddings, {"cycle_0": lambda: detections}, state,
                                       {"classes": ["common", "rare"]}, agent, al)

    assert list(policies) == ["cycle_0"]
    assert metrics["agent/query_reward_percentile"]["value"] > 0.9
