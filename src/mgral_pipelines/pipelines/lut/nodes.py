"""Build the cycle's look-up table: (embeddings of S_k, ΔmAP_k) for K candidate batches."""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from mgral_pipelines import detector as adapter
from mgral_pipelines import execution
from mgral_pipelines.config import AgentParams, ALParams, LUTParams
from mgral_pipelines.mgral import variants
from mgral_pipelines.mgral.candidates import pool_strata, sample_candidate_batches
from mgral_pipelines.mgral.features import class_rarity_weights, confident_detections
from mgral_pipelines.mgral.lookup import LookupConfig, LookupTable, table_fidelity
from mgral_pipelines.pipelines.common import cycle_key, detector_settings, for_cycle
from mgral_pipelines.strategies import policy_reward

logger = logging.getLogger(__name__)


def uses_lut(al: dict[str, Any], step: str) -> bool:
    """Whether the cycle's strategy trains its policy on the LUT (MGRAL); logs the skip if not."""
    strategy = ALParams(**al).strategy
    if policy_reward(strategy) != "lut":
        logger.info("al.strategy=%s does not use the %s; skipping it (set al.strategy=mgral)",
                    strategy, step)
    return policy_reward(strategy) == "lut"


def step_matched_images_per_epoch(images_per_epoch: int | None, labelled: int,
                                  batch_size: int) -> int | None:
    """The images per epoch of every variant and the reference: `lut.images_per_epoch`, or L_t + B
    when that is more. An epoch never takes fewer images than its training set, so a variant on
    L_t + S_k larger than the setting would take more optimiser steps than the reference on L_t
    and its ΔmAP would measure the extra steps too; raising the setting for all keeps them equal."""
    if images_per_epoch is None or labelled + batch_size <= images_per_epoch:
        return images_per_epoch
    logger.info("L_t + B = %d images exceed lut.images_per_epoch=%d: every variant and the "
                "reference take %d images per epoch, so their optimiser steps stay equal",
                labelled + batch_size, images_per_epoch, labelled + batch_size)
    return labelled + batch_size


def variant_settings(detector: dict[str, Any], params: LUTParams, num_labelled: int,
                     batch_size: int) -> tuple[adapter.DetectorConfig, Path]:
    """The variants' (and reference's) detector config, step-matched and without warm-up, and
    the detector's run folder."""
    base_config, run_dir = detector_settings(detector)
    images_per_epoch = step_matched_images_per_epoch(
        params.images_per_epoch, num_labelled, batch_size)
    config = dataclasses.replace(base_config, epochs=params.epochs,
                                 images_per_epoch=images_per_epoch,
                                 lr0=params.lr0 or base_config.lr0,
                                 warmup_epochs=0.0, checkpoint="last")
    return config, run_dir


def build_lut(
    state: dict[str, Any], image_index: dict[str, Any], eval_labels: dict[str, Any],
    checkpoints: dict[str, Any], embeddings: dict[str, Any], pool_detections: dict[str, Any],
    detector: dict[str, Any], lut: dict[str, Any], agent: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train the reference and K semi-supervised variants from D_t; ΔmAP on V per batch.

    Only the labels of L_t and V are passed on: the candidates' labels are never read. Each entry
    keeps its images' embeddings and their numbers of objects D_t detects (the look-up's points),
    weighted by class rarity with `lut.object_weighting: rarity` (the table's `class_weights`).
    The table's leave-one-out fidelity is measured with the agent's look-up settings
    (`agent.lookup`).
    """
    if not uses_lut(al, "LUT"):
        return {}, {}
    params = LUTParams(**lut)
    batch_size = params.batch_size or ALParams(**al).budget
    config, run_dir = variant_settings(detector, params, len(state["labelled_ids"]), batch_size)
    semi = adapter.SemiSupervisedConfig.from_dict(params.semi_supervised)
    features = for_cycle(embeddings, state, "embedding")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    vectors = np.asarray(features["vectors"])
    detections = for_cycle(pool_detections, state, "embedding")
    strata = pool_strata(
        state["pool_ids"], vectors[[row_of[i] for i in state["pool_ids"]]],
        detections, len(image_index["classes"]),
        params.clusters, seed=params.seed, min_size=max(1, batch_size // 4))
    candidates = sample_candidate_batches(
        state["pool_ids"], params.num_batches, batch_size, [params.seed, state["cycle"]], strata,
        params.stratified_share)
    learner_labels = {**state["labels"], **eval_labels["val"]}
    common = dict(
        records=image_index["images"], annotations=learner_labels, classes=image_index["classes"],
        labelled_ids=state["labelled_ids"], val_ids=sorted(eval_labels["val"]), config=config,
        semi=semi, initial_weights=for_cycle(checkpoints, state, "detector"),
    )
    folder = run_dir / cycle_key(state) / "lut"
    jobs = [variants.VariantJob(name="reference", unlabelled_ids=[],
                                run_dir=str(folder / "reference"), **common)]
    jobs += [variants.VariantJob(name=f"batch_{k}", unlabelled_ids=batch["image_ids"],
                                 run_dir=str(folder / f"batch_{k}"), **common)
             for k, batch in enumerate(candidates)]
    started = time.perf_counter()
    executor = execution.executor_from(params)
    results = variants.train_variants(jobs, executor, finished_dir=folder / "finished")
    table = variants.delta_map_table(results, params.map_metric)
    seconds = time.perf_counter() - started

    weights = (class_rarity_weights(state["labels"], len(image_index["classes"])).tolist()
               if params.object_weighting == "rarity" else None)
    for entry, batch in zip(table["entries"], candidates, strict=True):
        entry["embeddings"] = vectors[[row_of[i] for i in entry["image_ids"]]].tolist()
        entry["detections"] = [confident_detections(detections[i], class_weights=weights)
                               for i in entry["image_ids"]]
        entry.update(stratum=batch["stratum"], stratum_share=batch["share"])
    table.update(cycle=state["cycle"], class_weights=weights, schedule={
        "epochs": params.epochs, "images_per_epoch": config.images_per_epoch,
        "batch_size": batch_size, "seed": params.seed,
        "semi_supervised": dataclasses.asdict(semi), "detector": dataclasses.asdict(config)})
    deltas = [entry["delta_map"] for entry in table["entries"]]
    fidelity = table_fidelity(LookupTable.from_lut(table), LookupConfig(**AgentParams(**agent).lookup))
    table["fidelity"] = fidelity
    logger.info("LUT of %d variants in %.0f s: ΔmAP mean %.4f, min %.4f, max %.4f; "
                "leave-one-out Spearman ρ %.3f (trend %+.4f per object per image, bandwidth "
                "%.3g)", len(deltas), seconds, np.mean(deltas), min(deltas), max(deltas),
                fidelity["loo_spearman"], fidelity["trend_slope"], fidelity["bandwidth"])
    if not fidelity.get("loo_skill", 0) > 0:
        logger.warning("The LUT's entries do not predict each other better than their mean "
                       "(leave-one-out skill %.3f): this cycle's reward barely tells batches "
                       "apart. More variants (lut.num_batches) or quieter ones help.",
                       fidelity.get("loo_skill", float("nan")))
    metrics = {
        "lut/delta_map_mean": float(np.mean(deltas)), "lut/delta_map_std": float(np.std(deltas)),
        "lut/delta_map_max": max(deltas),
        "lut/reference_map": table["reference"][params.map_metric],
        "lut/build_seconds": seconds,
        **{f"lut/{key}": value for key, value in fidelity.items()},
        "lut/variant_seconds_median": statistics.median(
            [table["reference"]["train_time_s"]] + [e["train_time_s"] for e in table["entries"]]),
    }
    step = state["cycle"]
    return (
        {cycle_key(state): table},
        {key: {"value": float(value), "step": step} for key, value in metrics.items()},
    )
