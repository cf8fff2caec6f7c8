"""The lines a person reads at the end of a cycle (printed by `hooks.CycleSummary`): what the cycle
did (sizes, D_t's test mAP beside D_{t-1}'s, the LUT's skill and what the policy made of it, the
query) and where to look next. Pure: the cycle's outputs in, text out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mgral_pipelines.mgral.features import OBJECT_CONFIDENCE

TOP_CLASSES = 5  # the query's most predicted classes named; the rest are counted


@dataclass(frozen=True)
class CycleOutputs:
    """What one run of `al_cycle` produced, as its nodes returned or saved it."""

    state: Mapping[str, Any]
    """State t, which the cycle started from."""
    saved: Mapping[str, Any]
    """The state `update_state` saved: t + 1, or t with its query awaiting people's labels."""
    reports: Mapping[int, Mapping[str, Any]]
    """Detector reports by cycle: t, and t - 1 when it exists."""
    query_ids: Sequence[str]
    detections: Mapping[str, Sequence[Mapping[str, Any]]]
    """D_t's predictions on the pool, by image id."""
    classes: Sequence[str]
    strategy: str
    lut: Mapping[str, Any] | None = None
    """The cycle's look-up table (al.strategy=mgral)."""
    policy_check: Mapping[str, float] | None = None
    """`agent/query_reward*` and `agent/random_batch_reward*`: the policy's query against random
    batches, by the reward it was trained on (strategies with a policy)."""


@dataclass(frozen=True)
class WhereToLook:
    query_csv: str
    tracking_uri: str
    mlflow_run_id: str | None = None
    reward_plot: str | None = None
    """The agent's reward curve, named when this cycle trained a policy."""
    log_file: str | None = None


def summary_lines(outputs: CycleOutputs, where: WhereToLook, seconds: float) -> list[str]:
    """The summary, one line per fact, then the places to look."""
    t = outputs.state["cycle"]
    minutes, rest = divmod(round(seconds), 60)
    lines = [f"MGRAL cycle {t} finished in {minutes} min {rest} s "
             f"(strategy {outputs.strategy}, {len(outputs.query_ids)} images queried)",
             _sizes(outputs), _detector(outputs.reports, t)]
    if outputs.lut is None and outputs.policy_check is None:
        lines.append(f"LUT and policy: not built; strategy {outputs.strategy} needs neither "
                     "(al.strategy=mgral builds them)")
    if outputs.lut is not None:
        lines.append(_lut(outputs.lut))
    if outputs.policy_check is not None:
        lines.append(_policy(outputs.policy_check, outputs.lut, len(outputs.query_ids)))
    lines.append(_query(outputs, t))
    trained_policy = outputs.policy_check is not None
    return lines + ["Where to look next:", *_where(where, trained_policy)]


def _sizes(outputs: CycleOutputs) -> str:
    before, saved = outputs.state, outputs.saved
    labelled, pool = len(before["labelled_ids"]), len(before["pool_ids"])
    if "awaiting" in saved:
        batch = saved["awaiting"]
        return (f"Labelled {labelled} images, pool {pool}: the {len(batch['image_ids'])} queried "
                f"images await labels from {batch['annotator']}; the next run takes them back")
    return (f"Labelled {labelled} -> {len(saved['labelled_ids'])} images, "
            f"pool {pool} -> {len(saved['pool_ids'])}")


def _detector(reports: Mapping[int, Mapping[str, Any]], t: int) -> str:
    if t not in reports:
        return f"D_{t}: no test report (run `kedro run --pipeline=detector`)"
    test = reports[t]["test"]
    line = f"D_{t} test mAP50-95 {test['map50_95']:.3f} (mAP50 {test['map50']:.3f})"
    if t - 1 not in reports:
        return line + "; no earlier cycle to compare with"
    previous = reports[t - 1]["test"]["map50_95"]
    return line + f"; D_{t - 1}: {previous:.3f} ({test['map50_95'] - previous:+.3f})"


def _has_skill(lut: Mapping[str, Any]) -> bool:
    skill = lut.get("fidelity", {}).get("loo_skill", math.nan)
    return skill > 0  # NaN (too few entries) has none


def _lut(lut: Mapping[str, Any]) -> str:
    fidelity = lut.get("fidelity", {})
    deltas = [entry["delta_map"] for entry in lut["entries"]]
    verdict = ("it tells batches apart" if _has_skill(lut) else
               "it cannot tell batches apart (more variants, lut.num_batches, help)")
    return (f"LUT: {len(deltas)} detector variants, ΔmAP {min(deltas):+.4f} to {max(deltas):+.4f}; "
            f"leave-one-out ρ {fidelity.get('loo_spearman', math.nan):.2f}, "
            f"skill {fidelity.get('loo_skill', math.nan):.2f}: {verdict}")


def _policy(check: Mapping[str, float], lut: Mapping[str, Any] | None, budget: int) -> str:
    reward = "estimated ΔmAP" if lut is not None else "reward"
    beats = (f"its query's {reward} {check['agent/query_reward']:+.4f} beats "
             f"{100 * check['agent/query_reward_percentile']:.0f}% of random batches of {budget} "
             f"({check['agent/random_batch_reward_mean']:+.4f} ± "
             f"{check['agent/random_batch_reward_std']:.4f})")
    if lut is None:  # an ablation that trains the policy on a fixed reward
        return f"Policy: trained on a fixed reward without a LUT, {beats}"
    if _has_skill(lut):
        return f"Policy: trained on that reward, {beats}"
    return f"Policy: trained on that reward although it has no skill, {beats}: a ranking the LUT " \
           "cannot back"


def _query(outputs: CycleOutputs, t: int) -> str:
    confident = [detection for image_id in outputs.query_ids
                 for detection in outputs.detections.get(image_id, [])
                 if detection["score"] >= OBJECT_CONFIDENCE]
    counts = Counter(outputs.classes[int(d["class_id"])] for d in confident).most_common()
    named = ", ".join(f"{name} {count}" for name, count in counts[:TOP_CLASSES])
    others = f" and {len(counts) - TOP_CLASSES} more classes" if len(counts) > TOP_CLASSES else ""
    classes = f"; predicted classes: {named}{others}" if counts else ""
    return (f"Queried {len(outputs.query_ids)} images: D_{t} detects {len(confident)} objects in "
            f"them (score >= {OBJECT_CONFIDENCE}){classes}")


def _where(where: WhereToLook, trained_policy: bool) -> list[str]:
    run = f" (run {where.mlflow_run_id})" if where.mlflow_run_id else ""
    places = [("the query", where.query_csv),
              ("MLflow", f"mlflow ui --backend-store-uri {where.tracking_uri}{run}")]
    if where.reward_plot and trained_policy:
        places.append(("policy rewards", where.reward_plot))
    if where.log_file:
        places.append(("full log", where.log_file))
    places += [("next cycle", "make demo (kedro run --pipelines=al_cycle)"),
               ("AL curve", "kedro run --pipelines=report, then dvc plots show")]
    return [f"  {name:<15} {place}" for name, place in places]
