"""Build the cycle's look-up table: (embeddings of S_k, ΔmAP_k) for K candidate batches."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from typing import Any

import numpy as np

from mgral_pipelines import detector as adapter
from mgral_pipelines.config import ALParams, LUTParams
from mgral_pipelines.mgral import variants
from mgral_pipelines.pipelines.common import cycle_key, detector_settings, for_cycle

logger = logging.getLogger(__name__)


def uses_mgral(al: dict[str, Any], step: str) -> bool:
    strategy = ALParams(**al).strategy
    if strategy != "mgral":
        logger.info("al.strategy=%s does not use the %s; skipping it (set al.strategy=mgral)",
                    strategy, step)
    return strategy == "mgral"


def build_lut(
    state: dict[str, Any], image_index: dict[str, Any], eval_labels: dict[str, Any],
    checkpoints: dict[str, Any], embeddings: dict[str, Any], detector: dict[str, Any],
    lut: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the reference and K semi-supervised variants from D_t; ΔmAP on V per batch.

    Only the labels of L_t and V are passed on: the candidates' labels are never read.
    """
    if not uses_mgral(al, "LUT"):
        return {}, {}
    params = LUTParams(**lut)
    base_config, run_dir = detector_settings(detector)
    config = dataclasses.replace(base_config, epochs=params.epochs)
    semi = adapter.SemiSupervisedConfig.from_dict(params.semi_supervised)
    candidates = variants.sample_candidate_batches(
        state["pool_ids"], params.num_batches, params.batch_size, seed=[params.seed, state["cycle"]]
    )
    learner_labels = {**state["labels"], **eval_labels["val"]}
    common = dict(
        records=image_index["images"], annotations=learner_labels, classes=image_index["classes"],
        labelled_ids=state["labelled_ids"], val_ids=sorted(eval_labels["val"]), config=config,
        semi=semi, initial_weights=for_cycle(checkpoints, state, "detector"),
        torch_threads=params.torch_threads,
    )
    folder = run_dir / cycle_key(state) / "lut"
    jobs = [variants.VariantJob(name="reference", unlabelled_ids=[],
                                run_dir=str(folder / "reference"), **common)]
    jobs += [variants.VariantJob(name=f"batch_{k}", unlabelled_ids=batch,
                                 run_dir=str(folder / f"batch_{k}"), **common)
             for k, batch in enumerate(candidates)]
    started = time.perf_counter()
    table = variants.delta_map_table(variants.train_variants(jobs, params.workers), params.metric)
    seconds = time.perf_counter() - started

    features = for_cycle(embeddings, state, "embedding")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    vectors = np.asarray(features["vectors"])
    for entry in table["entries"]:
        entry["embeddings"] = vectors[[row_of[i] for i in entry["image_ids"]]].tolist()
    table.update(cycle=state["cycle"], schedule={
        "epochs": params.epochs, "batch_size": params.batch_size, "seed": params.seed,
        "semi_supervised": dataclasses.asdict(semi), "detector": dataclasses.asdict(config)})
    deltas = [entry["delta_map"] for entry in table["entries"]]
    logger.info("LUT of %d variants in %.0f s: ΔmAP mean %.4f, min %.4f, max %.4f",
                len(deltas), seconds, np.mean(deltas), min(deltas), max(deltas))
    metrics = {
        "lut/delta_map_mean": float(np.mean(deltas)), "lut/delta_map_std": float(np.std(deltas)),
        "lut/delta_map_max": max(deltas), "lut/reference_map": table["reference"][params.metric],
        "lut/build_seconds": seconds,
        "lut/variant_seconds_median": statistics.median(
            [table["reference"]["train_time_s"]] + [e["train_time_s"] for e in table["entries"]]),
    }
    step = state["cycle"]
    return (
        {cycle_key(state): table},
        {key: {"value": float(value), "step": step} for key, value in metrics.items()},
    )
