"""The benchmark's paired statistics on hand-made curves whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mgral_pipelines.pipelines.benchmark.comparisons import BETTER, TOO_FEW, UNDECIDED, WORSE
from mgral_pipelines.pipelines.benchmark.nodes import CURVE_COLUMNS, benchmark_metrics, compare
from mgral_pipelines.pipelines.benchmark.plots import plot_al_curve
from mgral_pipelines.pipelines.benchmark.statistics import (
    mean_interval,
    paired_differences,
    paired_p_value,
    summarise,
)

N = [50, 100, 150, 200]
SEEDS = range(6)


def _curves() -> pd.DataFrame:
    """random rises with seed noise; `better` is random + 0.05 (+ small noise) on every seed past
    the first point; `same` is random exactly; `worse` is random − 0.03 everywhere after cycle 0."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in SEEDS:
        base = 0.2 + 0.1 * np.arange(len(N)) + rng.normal(0, 0.03, len(N))
        noise = rng.normal(0, 0.005, len(N))
        lift = np.array([0.0] + [1.0] * (len(N) - 1))
        curves = {"random": base, "better": base + lift * (0.05 + noise), "same": base.copy(),
                  "worse": base - lift * 0.03}
        for strategy, values in curves.items():
            rows += [(strategy, seed, t, n, 2 * n, v, v) for t, (n, v) in enumerate(zip(N, values))]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_mean_interval_is_the_student_t_interval():
    values = [0.1, 0.3, 0.2, 0.4]
    mean, low, high = mean_interval(values)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert (mean, low, high) == pytest.approx((0.25, 0.25 - half, 0.25 + half))
    assert mean_interval([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    one = mean_interval([0.3])
    assert one[0] == 0.3 and math.isnan(one[1]) and math.isnan(one[2])


def _summary(curve: pd.DataFrame, results: list | None = None) -> pd.DataFrame:
    return summarise(curve, results or [], compare(curve)).set_index("strategy")


def test_summary_tells_better_identical_and_worse_apart():
    summary = _summary(_curves())

    better, same, worse = summary.loc["better"], summary.loc["same"], summary.loc["worse"]
    assert better["verdict_per_image"] == BETTER == better["verdict_per_box"]
    assert 0 < better["auc_gain_ci95_low"] < better["auc_gain_vs_random_mean"]
    assert better["auc_gain_ci95_high"] > better["auc_gain_vs_random_mean"]
    # The lift is 0.05 on 3 of the 4 points: trapezoids give 0.05 * (0.5 + 1 + 1) / 3.
    assert better["auc_gain_vs_random_mean"] == pytest.approx(0.05 * 2.5 / 3, abs=0.004)
    assert better["auc_gain_p_value"] < 0.001
    assert same["verdict_per_image"] == UNDECIDED
    assert same["auc_gain_vs_random_mean"] == 0.0
    assert same["auc_gain_ci95_low"] == same["auc_gain_ci95_high"] == 0.0
    assert same["auc_gain_p_value"] == 1.0
    assert worse["verdict_per_image"] == WORSE and worse["auc_gain_ci95_high"] < 0
    assert summary.loc["random", "verdict_per_image"] == "baseline"
    # Each seed's `better` curve reaches random's final mAP before the last point; `same` at it.
    assert better["reached_random_final"] == f"{len(SEEDS)}/{len(SEEDS)}"
    assert better["labels_to_reach_random_final"] < N[-1]
    assert better["labels_to_reach_ci95_low"] <= better["labels_to_reach_random_final"]
    assert same["labels_to_reach_random_final"] == pytest.approx(N[-1], abs=1e-9)
    assert worse["reached_random_final"] == f"0/{len(SEEDS)}"
    assert math.isnan(worse["labels_to_reach_random_final"])


def test_a_single_seed_cannot_decide():
    curve = _curves()
    summary = _summary(curve[curve["seed"] == 0])
    assert summary.loc["better", "verdict_per_image"] == TOO_FEW
    assert math.isnan(summary.loc["better", "auc_gain_ci95_low"])


def test_paired_differences_subtract_random_of_the_same_seed():
    differences = paired_differences(_curves())
    same = differences[differences["strategy"] == "same"]["difference"]
    assert (same == 0).all()
    worse = differences[(differences["strategy"] == "worse") & (differences["n_labelled"] > 50)]
    assert worse["difference"].to_numpy() == pytest.approx(-0.03)


def test_paired_p_value_edge_cases():
    assert math.isnan(paired_p_value([0.1]))
    assert paired_p_value([0.0, 0.0]) == 1.0
    assert paired_p_value([0.02, 0.02]) == 0.0


def test_plot_has_bands_and_a_difference_panel():
    figure = plot_al_curve(_curves())
    left, middle, right = figure.axes
    assert middle.get_xlabel() == "labelled boxes (mean over seeds)"
    assert middle.get_lines()[0].get_xdata().tolist() == [2 * n for n in N]
    assert [line.get_label() for line in left.get_lines()] == ["random", "better", "same", "worse"]
    assert len(left.collections) == 4  # one 95% band per strategy
    assert [line.get_label() for line in right.get_lines()][:3] == ["better", "same", "worse"]


def test_parent_run_metrics_name_strategy_and_column():
    metrics = benchmark_metrics(summarise(_curves(), []))
    assert metrics["benchmark/better/auc_gain_ci95_low"]["value"] > 0
    assert "benchmark/worse/labels_to_reach_random_final" not in metrics  # NaN is not logged


def test_summary_averages_a_policy_strategys_own_checks_over_its_cycles():
    def record(strategy: str, seed: int, diagnostics: dict[str, float] | None) -> dict:
        return {"strategy": strategy, "seed": seed, "wall_time_s": 1.0, "query": None,
                "diagnostics": diagnostics}

    results = [record("better", 0, {"lut/loo_spearman": 0.2,
                                    "agent/query_reward_percentile": 0.9}),
               record("better", 1, {"lut/loo_spearman": 0.6,
                                    "agent/query_reward_percentile": 0.7}),
               record("better", 2, {}),  # the final cycle queries nothing
               record("random", 0, None)]  # saved before cycles recorded checks

    summary = summarise(_curves(), results).set_index("strategy")

    assert summary.loc["better", "lut_loo_spearman_mean"] == pytest.approx(0.4)
    assert summary.loc["better", "query_reward_percentile_mean"] == pytest.approx(0.8)
    assert math.isnan(summary.loc["random", "lut_loo_spearman_mean"])
