"""The benchmark's verdicts: declared comparisons, paired over seeds, corrected for their number,
on two cost axes (labelled images and labelled boxes).

Declared comparisons (the family): every strategy against random, and MGRAL against every other
strategy. Each is a paired difference of normalised AUCs, seed by seed (same split, same detector
seed), summarised by its mean, the 95% Student-t interval, the paired t-test's p-value, the exact
sign test's p-value and the per-seed signs. The family's p-values are Holm-adjusted, separately
per axis, and the verdict reads the adjusted one: "better"/"worse" only when it is below 0.05.
The corrected interval is Bonferroni's (confidence 1 - 0.05/m for m comparisons), which contains
every value Holm's verdict could reject, so it never contradicts it by excluding zero alone.

Axes. Per image: the AUC of test mAP50-95 against labelled images, over the curve's range (every
strategy of a seed has the same image counts). Per box: the AUC of test mAP50-95 against labelled
boxes, over the box range every seed reaches with both strategies of the pair: from the largest
box count of L_0 over the seeds to the smallest final box count over the seeds and the two
strategies (linear between cycles). A strategy that wins per image by picking crowded images may
lose per box.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from mgral_pipelines.pipelines.benchmark.statistics import (
    BASELINE,
    CONFIDENCE,
    METRIC,
    mean_interval,
    normalised_auc,
    paired_p_value,
)

MGRAL = "mgral"
ALPHA = 1.0 - CONFIDENCE
BETTER, WORSE, UNDECIDED, TOO_FEW = "better", "worse", "not distinguishable", "too few seeds"
COLUMNS = ["axis", "strategy", "against", "seeds", "box_range", "auc_gain_mean", "ci95_low",
           "ci95_high", "p_value", "sign_test_p", "seeds_better", "p_holm", "comparisons",
           "corrected_ci_low", "corrected_ci_high", "verdict"]


def declared_comparisons(strategies: Iterable[str]) -> list[tuple[str, str]]:
    """(strategy, against): every strategy against random, then MGRAL against every other."""
    names = list(dict.fromkeys(strategies))
    pairs = [(s, BASELINE) for s in names if s != BASELINE and BASELINE in names]
    if MGRAL in names:
        pairs += [(MGRAL, s) for s in names if s not in (MGRAL, BASELINE)]
    return pairs


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (NaN stays NaN and does not count in m)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    m = len(valid)
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def sign_test_p(differences: list[float]) -> float:
    """Two-sided exact sign test of the per-seed differences (zeros dropped); NaN without any."""
    nonzero = [d for d in differences if d != 0]
    if not nonzero:
        return float("nan")
    return float(stats.binomtest(sum(d > 0 for d in nonzero), len(nonzero)).pvalue)


def auc_between(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Normalised area under the piecewise-linear curve (x non-decreasing) between low and high.

    Where x repeats (a batch of empty frames adds no box), the curve steps at that x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not high > low or x[0] > low or x[-1] < high:
        return float("nan")

    def at(point: float, from_right: bool) -> float:
        hits = np.flatnonzero(x == point)
        if hits.size:
            return float(y[hits[-1] if from_right else hits[0]])
        i = int(np.searchsorted(x, point)) - 1
        return float(y[i] + (point - x[i]) * (y[i + 1] - y[i]) / (x[i + 1] - x[i]))

    inside = (x > low) & (x < high)
    xs = np.concatenate([[low], x[inside], [high]])
    ys = np.concatenate([[at(low, True)], y[inside], [at(high, False)]])
    return float(np.trapezoid(ys, xs) / (high - low))


def _curves(curve: pd.DataFrame, strategy: str) -> dict[int, pd.DataFrame]:
    rows = curve[curve["strategy"] == strategy]
    return {int(seed): group.sort_values("cycle") for seed, group in rows.groupby("seed")}


def paired_aucs(curve: pd.DataFrame, strategy: str, against: str, axis: str
                ) -> tuple[dict[int, float], dict[int, float], tuple[float, float]]:
    """Per seed both strategies' normalised AUCs on `axis` (`images` or `boxes`), and the x range."""
    mine, theirs = _curves(curve, strategy), _curves(curve, against)
    seeds = sorted(set(mine) & set(theirs))
    if axis == "images":
        return ({s: normalised_auc(mine[s]["n_labelled"], mine[s][METRIC]) for s in seeds},
                {s: normalised_auc(theirs[s]["n_labelled"], theirs[s][METRIC]) for s in seeds},
                (float("nan"), float("nan")))
    if not seeds:
        return {}, {}, (float("nan"), float("nan"))
    low = max(float(mine[s]["n_boxes"].iloc[0]) for s in seeds)
    high = min(float(g[s]["n_boxes"].iloc[-1]) for g in (mine, theirs) for s in seeds)

    def auc(group: pd.DataFrame) -> float:
        return auc_between(group["n_boxes"].to_numpy(), group[METRIC].to_numpy(), low, high)
    return ({s: auc(mine[s]) for s in seeds}, {s: auc(theirs[s]) for s in seeds}, (low, high))


def compare(curve: pd.DataFrame, axes: tuple[str, ...] = ("images", "boxes")) -> pd.DataFrame:
    """One row per (axis, declared comparison): the paired AUC difference over seeds with raw and
    corrected intervals and p-values, per-seed signs and the verdict (see the module docstring)."""
    rows = []
    pairs = declared_comparisons(curve["strategy"])
    for axis in axes:
        family = []
        for strategy, against in pairs:
            mine, theirs, (low, high) = paired_aucs(curve, strategy, against, axis)
            gains = [mine[s] - theirs[s] for s in mine if not np.isnan(mine[s] - theirs[s])]
            mean, ci_low, ci_high = mean_interval(gains)
            family.append({
                "axis": axis, "strategy": strategy, "against": against, "seeds": len(gains),
                "box_range": "" if axis == "images" else f"{low:.0f}-{high:.0f}",
                "auc_gain_mean": mean, "ci95_low": ci_low, "ci95_high": ci_high,
                "p_value": paired_p_value(gains), "sign_test_p": sign_test_p(gains),
                "seeds_better": f"{sum(g > 0 for g in gains)}/{len(gains)}",
                "_gains": gains})
        adjusted = holm([row["p_value"] for row in family])
        m = sum(not np.isnan(p) for p in adjusted)
        for row, p_holm in zip(family, adjusted):
            gains = row.pop("_gains")
            _, low, high = mean_interval(gains, 1 - ALPHA / max(m, 1))
            row.update(p_holm=p_holm, comparisons=m, corrected_ci_low=low, corrected_ci_high=high,
                       verdict=_verdict(row["auc_gain_mean"], p_holm, len(gains)))
            rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _verdict(mean: float, p_holm: float, seeds: int) -> str:
    if seeds < 2 or np.isnan(p_holm):
        return TOO_FEW
    if p_holm < ALPHA:
        return BETTER if mean > 0 else WORSE
    return UNDECIDED
