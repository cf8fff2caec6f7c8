"""Train the MGRAL policy with REINFORCE, rewarded by the LUT's Wasserstein lookup."""

from __future__ import annotations

import logging
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: nodes only write files
import matplotlib.pyplot as plt
import numpy as np

from mgral_pipelines.config import AgentParams, LUTParams
from mgral_pipelines.mgral.agent import AgentConfig, policy_to_bytes, train_policy
from mgral_pipelines.mgral.lookup import LookupConfig, LookupTable, estimate_delta_map
from mgral_pipelines.pipelines.common import cycle_key, for_cycle
from mgral_pipelines.pipelines.lut.nodes import uses_mgral

logger = logging.getLogger(__name__)


def lookup_table(table: dict[str, Any]) -> LookupTable:
    return LookupTable(
        entry_embeddings=[np.asarray(entry["embeddings"]) for entry in table["entries"]],
        delta_map=np.asarray([entry["delta_map"] for entry in table["entries"]]),
    )


def train_agent(
    tables: dict[str, Any], embeddings: dict[str, Any], state: dict[str, Any],
    agent: dict[str, Any], lut: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, bytes], dict[str, Any], plt.Figure]:
    """An LSTM policy over pool embeddings; reward = estimated ΔmAP of the sampled batch."""
    if not uses_mgral(al, "agent"):
        return {}, {}, _note_figure("No policy trained: al.strategy is not mgral.")
    params = AgentParams(**agent)
    config = AgentConfig(**{**params.policy, "batch_size": LUTParams(**lut).batch_size})
    table = lookup_table(for_cycle(tables, state, "lut"))
    lookup = LookupConfig(**params.lookup)
    features = for_cycle(embeddings, state, "embedding")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    pool = np.asarray(features["vectors"])[[row_of[i] for i in state["pool_ids"]]]

    policy, history = train_policy(pool, lambda batch: estimate_delta_map(batch, table, lookup),
                                   config)
    first, last = np.mean(history["agent/reward"][:5]), np.mean(history["agent/reward"][-5:])
    logger.info("Agent: mean reward %.4f over the first 5 updates, %.4f over the last 5", first, last)
    metrics = {key: [{"value": float(v), "step": i} for i, v in enumerate(values)]
               for key, values in history.items()}
    return {cycle_key(state): policy_to_bytes(policy, config)}, metrics, _reward_figure(history)


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
