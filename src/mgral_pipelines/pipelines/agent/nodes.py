"""Train the MGRAL policy with REINFORCE, rewarded by the LUT's read-out (or, for the
`mgral_fixed_reward` ablation, by the batch's mean rarity-weighted detections)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: nodes only write files
import matplotlib.pyplot as plt
import numpy as np

from mgral_pipelines.config import AgentParams, ALParams
from mgral_pipelines.mgral.agent import AgentConfig, policy_to_bytes, score_pool, train_policy
from mgral_pipelines.mgral.features import (
    class_rarity_weights,
    confident_detections,
    policy_inputs,
)
from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable
from mgral_pipelines.pipelines.common import cycle_key, for_cycle
from mgral_pipelines.registry import RegisteredModel, cycle_tags, policy_model
from mgral_pipelines.strategies import policy_reward

logger = logging.getLogger(__name__)


def lookup_table(table: dict[str, Any]) -> LookupTable:
    return LookupTable.from_lut(table)


def train_agent(
    tables: dict[str, Any], embeddings: dict[str, Any], pool_detections: dict[str, Any],
    state: dict[str, Any], image_index: dict[str, Any], agent: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any], plt.Figure]:
    """An LSTM policy over the pool; reward = the LUT's estimated ΔmAP of the sampled batch (for
    `mgral_fixed_reward`: the batch's mean rarity-weighted count of confident detections).

    Episodes pick batches of the query budget B, the size the policy is then asked for. The policy
    reads `mgral.features.policy_inputs` (embedding and D_t's detections); the reward reads what
    the LUT's entries hold: the embeddings and each image's number of detected objects. After
    training, the reward of the policy's own query is compared with that of random batches of B
    (`agent/query_reward_percentile`).
    """
    reward_kind = trains_policy(al, "agent")
    if reward_kind is None:
        return {}, {}, _note_figure("No policy trained: al.strategy has no policy.")
    params, budget = AgentParams(**agent), ALParams(**al).budget
    config = AgentConfig(**{**params.policy, "batch_size": budget})
    ids = sorted(state["pool_ids"])  # the canonical order the MGRAL strategy scores in
    features = for_cycle(embeddings, state, "embedding")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    embedded = np.asarray(features["vectors"])[[row_of[i] for i in ids]]
    detections = for_cycle(pool_detections, state, "embedding")
    classes = len(image_index["classes"])
    if reward_kind == "lut":
        table = for_cycle(tables, state, "lut")
        estimate = Estimator(lookup_table(table), LookupConfig(**params.lookup))
        weights = table.get("class_weights")  # as the table weighted its entries (None: counts)

        def reward(rows: np.ndarray) -> float:
            return estimate(rows[:, :-1], rows[:, -1])

        logger.info("Agent: LUT read-out ΔmAP %+.4f per detected object per image, plus the "
                    "kernel on the residuals (bandwidth %.3g)", estimate.trend[1],
                    estimate.bandwidth)
    else:  # the ablation: the heuristic the default read-out reduces to, with no table
        weights = class_rarity_weights(state["labels"], classes).tolist()

        def reward(rows: np.ndarray) -> float:
            return float(rows[:, -1].mean())

        logger.info("Agent: reward fixed to the batch's mean rarity-weighted detections (no LUT)")
    # One row per image of what the reward reads: its embedding, then its detected objects.
    lut_inputs = np.column_stack([embedded, [confident_detections(detections[i],
                                                                  class_weights=weights)
                                             for i in ids]])
    inputs = np.stack([policy_inputs(embedded[row], detections[image_id]
                                     if config.detector_features else None, classes)
                       for row, image_id in enumerate(ids)])

    policy, history = train_policy(inputs, reward, config, reward_inputs=lut_inputs)
    first, last = np.mean(history["agent/reward"][:5]), np.mean(history["agent/reward"][-5:])
    logger.info("Agent: mean reward %.4f over the first 5 updates, %.4f over the last 5", first, last)
    metrics: dict[str, Any] = {key: [{"value": float(v), "step": i} for i, v in enumerate(values)]
                               for key, values in history.items()}
    check = query_against_random(policy, config, inputs, lut_inputs, reward)
    logger.info("Agent: reward of its query %.4f; random batches of %d: %.4f ± %.4f "
                "(the query beats %.0f%% of them)", check["agent/query_reward"], budget,
                check["agent/random_batch_reward_mean"], check["agent/random_batch_reward_std"],
                100 * check["agent/query_reward_percentile"])
    metrics.update({key: {"value": value, "step": state["cycle"]} for key, value in check.items()})
    return {cycle_key(state): policy_to_bytes(policy, config)}, metrics, _reward_figure(history)


def trains_policy(al: dict[str, Any], step: str) -> str | None:
    """The reward the cycle's strategy trains a policy on, or None (logged) when it has none."""
    strategy = ALParams(**al).strategy
    kind = policy_reward(strategy)
    if kind is None:
        logger.info("al.strategy=%s does not use the %s; skipping it (set al.strategy=mgral)",
                    strategy, step)
    return kind


def query_against_random(policy: Any, config: AgentConfig, inputs: np.ndarray,
                         lut_inputs: np.ndarray, estimate: Callable[[np.ndarray], float],
                         random_batches: int = 200) -> dict[str, float]:
    """The LUT reward of the policy's top-B against the rewards of random batches of B
    (`estimate` reads rows of `lut_inputs`)."""
    scores = score_pool(policy, inputs, config.sequence_length, config.scoring_contexts,
                        seed=config.seed)
    top = np.argsort(-scores, kind="stable")[: config.batch_size]
    query = estimate(lut_inputs[top])
    rng = np.random.default_rng(config.seed)
    rewards = np.array([estimate(lut_inputs[rng.choice(len(inputs), config.batch_size,
                                                       replace=False)])
                        for _ in range(random_batches)])
    return {"agent/query_reward": float(query),
            "agent/random_batch_reward_mean": float(rewards.mean()),
            "agent/random_batch_reward_std": float(rewards.std()),
            # Ties count half: a table without skill gives every batch the same reward.
            "agent/query_reward_percentile": float(np.mean(rewards < query - 1e-12)
                                                   + 0.5 * np.mean(np.isclose(rewards, query,
                                                                              rtol=0, atol=1e-12)))}


def package_policy(
    policies: dict[str, Any], state: dict[str, Any], al: dict[str, Any],
) -> dict[str, RegisteredModel]:
    """The cycle's policy for the MLflow model registry (`mgral-policy`); none for other strategies."""
    if trains_policy(al, "policy registry") is None:
        return {}
    policy = for_cycle(policies, state, "agent")
    return {cycle_key(state): policy_model(policy, cycle_tags(state, "mgral"))}


def _reward_figure(history: dict[str, list[float]]) -> plt.Figure:
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    top.plot(history["agent/reward"], label="mean reward (estimated ΔmAP)")
    top.plot(history["agent/baseline"], label="baseline")
    top.set_ylabel("ΔmAP")
    top.legend()
    bottom.plot(history["agent/loss"], color="tab:red")
    bottom.set_ylabel("REINFORCE loss")
    bottom.set_xlabel("policy update")
    figure.suptitle("MGRAL agent training")
    return figure


def _note_figure(text: str) -> plt.Figure:
    figure, axes = plt.subplots(figsize=(5, 1.2))
    axes.axis("off")
    axes.text(0.5, 0.5, text, ha="center", va="center")
    return figure
