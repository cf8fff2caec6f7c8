"""What one benchmark curve is, and one cycle of it as a record.

A curve is one (strategy, seed): the seed's split (`seed_data`), the parameters its al_cycle nodes
get and the digest of what a saved cycle depends on (`make_curve`). Each cycle runs through the
al_cycle pipeline's own nodes (`al_cycle.cycle.Cycle`) and becomes the small record `records.py`
keeps (`run_cycle`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from mgral_pipelines import al_state
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.mgral.features import OBJECT_CONFIDENCE
from mgral_pipelines.pipelines.al_cycle.cycle import Cycle
from mgral_pipelines.pipelines.benchmark import provenance, records
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams
from mgral_pipelines.pipelines.prepare.nodes import evaluation_labels, initial_state
from mgral_pipelines.strategies import get_strategy, policy_reward


@dataclass(frozen=True)
class SeedData:
    """What is fixed per seed: the dataset, its split, V/T labels and the initial state."""

    seed: int
    image_index: dict[str, Any]
    oracle: dict[str, Any]
    eval_labels: dict[str, Any]
    initial_state: dict[str, Any]


def seed_data(
    image_index: dict[str, Any], oracle: dict[str, Any], dataset: dict[str, Any], seed: int
) -> SeedData:
    """The split of `seed` with the sizes of `dataset.splits`, as `prepare` would make it."""
    sizes = DatasetParams(**dataset).splits
    ids = [record["image_id"] for record in image_index["images"]]
    splits = {**al_state.split_ids(ids, sizes.val, sizes.test, sizes.initial, seed), "seed": seed}
    return SeedData(seed, image_index, oracle, evaluation_labels(oracle, splits),
                    initial_state(image_index, splits, oracle))


@dataclass(frozen=True)
class Curve:
    """One (strategy, seed): its folder and the parameters its al_cycle nodes get."""

    strategy: str
    seed: int
    folder: Path
    params: dict[str, dict[str, Any]]
    """`detector`, `embedding`, `lut`, `agent`, `al`: what the nodes read as `params:<key>`."""
    needs: frozenset[str]
    reward: str | None
    """What the strategy's policy is trained on (`lut`, `rare_detections`), None without one."""
    settings: str
    """Digest of what a saved cycle depends on; a saved cycle with another one is refused."""
    code_version: str
    """`provenance.code_version` of the strategy: the code its cycles run through."""

    @property
    def name(self) -> str:
        return f"{self.strategy}/seed_{self.seed}"

    def cycle(self, state: dict[str, Any], data: SeedData, shared: Cycle | None = None) -> Cycle:
        """Cycle `state` of this curve; outputs the strategy does not read are fixed empty."""
        unused: dict[str, Any] = {}
        if not self.needs & {"embeddings", "policy"}:
            unused["embeddings"] = {}
        if self.reward != "lut":  # only MGRAL's policy is trained on the LUT
            unused |= {"lookup_tables": {}, "lut_metrics": {}}
        if self.reward is None:
            unused |= {"agent_policies": {}, "agent_metrics": {}}
        inputs = {"state": state, "image_index": data.image_index, "eval_labels": data.eval_labels,
                  "oracle_annotations": data.oracle, "ignored_parameters": [], **unused}
        return Cycle(inputs, self.params, shared)


# `al` keys that say who labels a query and how; they do not change what a strategy selects.
ANNOTATION_KEYS = frozenset({"annotator", "accept_partial", "prelabel_conf", "label_studio",
                             "files"})


def scratch(detector: dict[str, Any], name: str, seed: int) -> str:
    """Ultralytics' scratch folder of one run: <detector.run_dir>/benchmark/<name>/seed_<s>."""
    return str(Path(detector["run_dir"]) / "benchmark" / name / f"seed_{seed}")


def make_curve(strategy: str, data: SeedData, params: BenchmarkParams,
               detector: dict[str, Any], embedding: dict[str, Any], lut: dict[str, Any],
               agent: dict[str, Any], al: dict[str, Any]) -> Curve:
    seed = data.seed
    options = params.strategy_options.get(strategy, {})
    run_al = {**al, "strategy": strategy, "budget": params.budget, "seed": seed,
              "from_cycle": None, "strategy_options": options,
              "annotator": "oracle"}  # a simulation: never people, whatever al.annotator says
    run_detector = {**detector, "seed": seed, "run_dir": scratch(detector, strategy, seed)}
    run_lut = {**lut, "seed": seed}
    run_agent = {**agent, "policy": {**agent.get("policy", {}), "seed": seed}}
    needs = get_strategy(strategy, **options).needs
    reward = policy_reward(strategy)
    # What a saved cycle depends on; cycles, seeds and the strategy list may change between runs,
    # and so may who labels a query (the benchmark's annotator is always the oracle). The
    # evaluation fingerprint (classes, V and T with their labels) tells generated data sets apart.
    selection_al = {k: v for k, v in run_al.items() if k not in ANNOTATION_KEYS}
    settings = {"dataset": data.initial_state["dataset"],
                "evaluation": data.initial_state.get("evaluation"), "al": selection_al,
                "detector": {k: v for k, v in run_detector.items() if k != "run_dir"}}
    if needs & {"embeddings", "policy"}:
        settings["embedding"] = embedding
    if reward == "lut":
        # Where the variants train does not change them: moving to Ray keeps the resume points.
        settings["lut"] = {k: v for k, v in run_lut.items() if k not in ("executor", "ray")}
    if reward is not None:
        settings["agent"] = run_agent
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    nodes_params = {"detector": run_detector, "embedding": embedding, "lut": run_lut,
                    "agent": run_agent, "al": run_al}
    return Curve(strategy, seed, params.records_folder() / strategy / f"seed_{seed}",
                 nodes_params, needs, reward, digest[:16], provenance.code_version(strategy))


def run_cycle(cycle: Cycle, curve: Curve, final: bool) -> dict[str, Any]:
    """Train and evaluate D_t; unless `final`, query B images, annotate them and advance.

    `wall_time_s` sums the steps this strategy used, so a shared cycle-0 detector counts for every
    strategy as if each had trained it.
    """
    state = cycle.get("state")
    report = cycle.current("detector_reports")
    query, next_state, query_seconds = None, None, None
    diagnostics: dict[str, float] = {}
    if not final:
        # In the order the steps depend on each other, so their times never overlap.
        for name in ("embeddings", "pool_detections", "lookup_tables", "agent_policies"):
            cycle.get(name)
        if curve.reward is not None:
            plt.close(cycle.get("agent_reward_curve"))
            # The cycle's own checks (LUT fidelity, the query's LUT reward against random
            # batches): one value each; the agent's per-update curves stay in its own runs.
            diagnostics = {key: float(value["value"])
                           for key, value in {**cycle.get("lut_metrics"),
                                              **cycle.get("agent_metrics")}.items()
                           if isinstance(value, dict)}
        frame = cycle.current("queries")
        new_labels, next_state = cycle.get("new_labels"), cycle.get("next_al_state")
        ids = frame["image_id"].astype(str).tolist()
        detections = cycle.current("pool_detections")
        classes = cycle.get("image_index")["classes"]
        query = {
            "image_ids": ids,
            "scores": [float(s) for s in frame["score"]],
            "predicted_classes": [classes[d["class_id"]] for i in ids for d in detections.get(i, [])
                                  if d["score"] >= OBJECT_CONFIDENCE],
            "true_classes": [classes[box["class_id"]] for i in ids for box in new_labels[i]],
            "boxes": sum(len(new_labels[i]) for i in ids),
            "empty_images": sum(not new_labels[i] for i in ids),
        }
        query_seconds = float(cycle.get("query_metrics")["query/seconds"]["value"])
    timings = cycle.step_seconds()
    return {
        "strategy": curve.strategy, "seed": curve.seed, "cycle": state["cycle"],
        "n_labelled": len(state["labelled_ids"]), "n_boxes": records.labelled_boxes(state),
        "labelled_ids": list(state["labelled_ids"]),
        "metrics": report, "query": query, "query_seconds": query_seconds,
        "timings_s": timings, "wall_time_s": sum(timings.values()), "diagnostics": diagnostics,
        "settings": curve.settings, "code_version": curve.code_version, "next_state": next_state,
    }
