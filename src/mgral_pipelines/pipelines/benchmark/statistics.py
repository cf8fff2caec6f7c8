"""The benchmark's statistics: area under the AL curve, paired comparison with random, verdicts.

AL gains are small next to training noise, so every comparison is *paired*: a strategy's curve of
seed s is compared with random's curve of the same seed s (same split, same initial labelled set,
same detector seed), and the per-seed differences are summarised by their mean and a 95%
Student-t interval. With the 5-10 seeds a CPU benchmark can afford, a percentile bootstrap over
seeds covers less than its nominal 95% (it ignores the uncertainty of the spread itself), while
the t interval is exact for normal differences and close to it otherwise; the paired t-test's
p-value is reported beside it. The verdicts are not made here: `comparisons.py` corrects them for
the number of comparisons and makes them per image and per box, and the summary quotes them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.stats import entropy

logger = logging.getLogger(__name__)

BASELINE = "random"
METRIC = "mAP50-95"
CONFIDENCE = 0.95



def normalised_auc(n_labelled: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under the curve divided by its n_labelled range (a mean mAP)."""
    order = np.argsort(n_labelled)
    x, y = np.asarray(n_labelled, dtype=float)[order], np.asarray(values, dtype=float)[order]
    if x[-1] == x[0]:
        return float(y.mean())
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def labels_to_reach(n_labelled: np.ndarray, values: np.ndarray, target: float) -> float:
    """First n_labelled where the curve reaches `target` (linear between points); NaN if never."""
    order = np.argsort(n_labelled)
    x, y = np.asarray(n_labelled, dtype=float)[order], np.asarray(values, dtype=float)[order]
    if y[0] >= target:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= target:
            return float(x[i - 1] + (target - y[i - 1]) / (y[i] - y[i - 1]) * (x[i] - x[i - 1]))
    return float("nan")


def mean_interval(values: list[float] | np.ndarray,
                  confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean; low = high = NaN below 2 values.

    Identical values give a zero-width interval at their mean.
    """
    values = np.asarray([v for v in values if not np.isnan(v)], dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def paired_p_value(differences: list[float]) -> float:
    """Two-sided p-value of the paired t-test (mean difference = 0); NaN below 2 differences,
    0 or 1 when every difference is the same (no spread to test against)."""
    values = np.asarray(differences, dtype=float)
    if len(values) < 2:
        return float("nan")
    if np.allclose(values, values[0]):
        return 1.0 if values[0] == 0 else 0.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


def per_seed(curve: pd.DataFrame, strategy: str) -> dict[int, pd.DataFrame]:
    rows = curve[curve["strategy"] == strategy]
    return {int(seed): group.sort_values("n_labelled") for seed, group in rows.groupby("seed")}


def seed_aucs(curve: pd.DataFrame, strategy: str, metric: str = METRIC) -> dict[int, float]:
    """The normalised AUC of each seed's curve of `strategy`."""
    return {seed: normalised_auc(g["n_labelled"], g[metric])
            for seed, g in per_seed(curve, strategy).items()}


def paired_differences(curve: pd.DataFrame, metric: str = METRIC) -> pd.DataFrame:
    """(strategy, seed, n_labelled, difference): each curve minus random's of the same seed."""
    baseline = curve[curve["strategy"] == BASELINE][["seed", "n_labelled", metric]]
    merged = curve.merge(baseline, on=["seed", "n_labelled"], suffixes=("", "_random"))
    merged["difference"] = merged[metric] - merged[f"{metric}_random"]
    return merged[["strategy", "seed", "n_labelled", "difference"]]


def _std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _class_report(results: list[dict[str, Any]]) -> tuple[Counter, float]:
    counts = Counter(c for r in results if r.get("query") for c in r["query"]["true_classes"])
    return counts, float(entropy(list(counts.values()))) if counts else float("nan")


# A policy strategy's own checks, averaged over its cycles (NaN for the others): the LUT's
# leave-one-out fidelity and where the query's LUT reward falls among random batches'.
DIAGNOSTICS = {"lut_loo_spearman_mean": "lut/loo_spearman",
               "query_reward_percentile_mean": "agent/query_reward_percentile"}


def _mean_of(diagnostics: list[dict[str, float]], key: str) -> float:
    values = [d[key] for d in diagnostics if key in d]
    return float(np.mean(values)) if values else float("nan")


def summarise(curve: pd.DataFrame, results: list[dict[str, Any]],
              comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per strategy: AUC, its paired gain over random with a 95% interval and the
    corrected verdicts against random per image and per box (`comparisons.compare`), labels needed
    to reach random's final mAP (with its interval), labelled boxes, queried boxes per image and
    empty frames, queried classes, wall time, for MGRAL its cycles' own checks (`DIAGNOSTICS`),
    and the code versions its records were made by.

    AUC is the normalised area under the test mAP50-95 curve. Means and stds are over seeds (std
    with ddof=1: NaN for a single seed). "Labels to reach" is taken per seed against random's final
    mAP50-95 of that seed; seeds whose curve never reaches it are counted in `reached` and left out
    of the mean and its interval.
    """
    verdicts = {} if comparisons is None else {
        (row["strategy"], row["axis"]): row["verdict"]
        for row in comparisons.to_dict("records") if row["against"] == BASELINE}
    baseline = per_seed(curve, BASELINE)
    baseline_auc = seed_aucs(curve, BASELINE)
    if not baseline:
        logger.warning("No %r strategy in the benchmark: comparisons with it are left empty",
                       BASELINE)
    rows = []
    for strategy in curve["strategy"].drop_duplicates():
        seeds = per_seed(curve, strategy)
        auc = seed_aucs(curve, strategy)
        paired = [s for s in seeds if s in baseline]
        gains = [auc[s] - baseline_auc[s] for s in paired]
        gain, gain_low, gain_high = mean_interval(gains)
        reach = [labels_to_reach(seeds[s]["n_labelled"], seeds[s][METRIC],
                                 baseline[s][METRIC].iloc[-1]) for s in paired]
        reached = [n for n in reach if not np.isnan(n)]
        reach_mean, reach_low, reach_high = mean_interval(reached)
        mine = [r for r in results if r["strategy"] == strategy and r["seed"] in seeds]
        counts, class_entropy = _class_report(mine)
        walls = Counter()
        for r in mine:
            walls[r["seed"]] += r["wall_time_s"]
        query_seconds = [r["query_seconds"] for r in mine if r.get("query_seconds") is not None]
        final = [g[METRIC].iloc[-1] for g in seeds.values()]
        diagnostics = [r.get("diagnostics") or {} for r in mine]
        is_baseline = strategy == BASELINE
        queries = [r["query"] for r in mine if r.get("query")]
        queried = sum(len(q["image_ids"]) for q in queries)
        rows.append({
            "strategy": strategy,
            "seeds": len(seeds),
            "auc_map50_95_mean": float(np.mean(list(auc.values()))),
            "auc_map50_95_std": _std(list(auc.values())),
            "auc_gain_vs_random_mean": gain,
            "auc_gain_vs_random_std": _std(gains),
            "auc_gain_ci95_low": gain_low,
            "auc_gain_ci95_high": gain_high,
            "auc_gain_p_value": float("nan") if is_baseline else paired_p_value(gains),
            "verdict_per_image": "baseline" if is_baseline else verdicts.get((strategy, "images"),
                                                                             ""),
            "verdict_per_box": "baseline" if is_baseline else verdicts.get((strategy, "boxes"), ""),
            "labels_to_reach_random_final": reach_mean,
            "labels_to_reach_ci95_low": reach_low,
            "labels_to_reach_ci95_high": reach_high,
            "reached_random_final": f"{len(reached)}/{len(paired)}" if paired else "",
            "final_map50_95_mean": float(np.mean(final)),
            "final_map50_95_std": _std(final),
            "final_boxes_mean": float(np.mean([g["n_boxes"].iloc[-1] for g in seeds.values()]))
            if "n_boxes" in curve else float("nan"),
            "queried_boxes_per_image": sum(q["boxes"] for q in queries) / queried
            if queried else float("nan"),
            "empty_frame_share": sum(q["empty_images"] for q in queries) / queried
            if queried else float("nan"),
            "worst_query_empty_share": max(q["empty_images"] / len(q["image_ids"])
                                           for q in queries) if queries else float("nan"),
            "queried_classes": json.dumps(dict(sorted(counts.items()))),
            "queried_class_entropy_nats": class_entropy,
            "wall_time_s": float(np.mean(list(walls.values()))) if walls else float("nan"),
            "query_seconds_per_cycle": float(np.mean(query_seconds)) if query_seconds
            else float("nan"),
            **{column: _mean_of(diagnostics, key) for column, key in DIAGNOSTICS.items()},
            "code_versions": " ".join(sorted({r["code_version"] for r in mine
                                              if r.get("code_version")})),
        })
    summary = pd.DataFrame(rows)
    logger.info("Benchmark summary:\n%s", summary.drop(columns="queried_classes").to_string())
    return summary


def parent_run_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """The summary as MLflow metrics of the parent run: `benchmark/<strategy>/<column>`."""
    columns = ["auc_map50_95_mean", "auc_gain_vs_random_mean", "auc_gain_ci95_low",
               "auc_gain_ci95_high", "labels_to_reach_random_final", "final_map50_95_mean",
               "queried_class_entropy_nats"]
    metrics = {}
    for row in summary.to_dict("records"):
        for column in columns:
            value = row[column]
            if value is not None and not np.isnan(value):
                metrics[f"benchmark/{row['strategy']}/{column}"] = {"value": float(value),
                                                                    "step": 0}
    return metrics
