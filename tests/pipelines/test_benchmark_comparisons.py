"""The declared comparisons, Holm's correction and the box axis, on curves whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mgral_pipelines.pipelines.benchmark.comparisons import (
    BETTER,
    UNDECIDED,
    WORSE,
    auc_between,
    compare,
    declared_comparisons,
    holm,
    sign_test_p,
)
from mgral_pipelines.pipelines.benchmark.nodes import CURVE_COLUMNS

N = [20, 50, 80, 110]


def _curves(seeds: int = 8) -> pd.DataFrame:
    """random: 1.5 boxes per image. `crowded` picks images of 4 boxes: per image it is random +
    0.02 from the first query on, but per box it reaches each mAP only with far more boxes.
    `mgral` equals random + 0.001 (noise-sized), `lucky` is random + 0.04 on 1 seed only."""
    rng = np.random.default_rng(1)
    rows = []
    for seed in range(seeds):
        base = 0.1 + 0.004 * (np.array(N) - 20) + rng.normal(0, 0.02, len(N))
        lift = np.array([0.0, 1.0, 1.0, 1.0])
        boxes = 30 + 1.5 * (np.array(N) - 20)
        crowded_boxes = 30 + 4.0 * (np.array(N) - 20)
        curves = {
            "random": (base, boxes),
            "crowded": (base + 0.02 * lift, crowded_boxes),
            "mgral": (base + lift * rng.normal(0.001, 0.01, len(N)), boxes),
            "lucky": (base + lift * (0.04 if seed == 0 else 0.0), boxes),
        }
        for strategy, (values, counts) in curves.items():
            rows += [(strategy, seed, t, n, b, v, v)
                     for t, (n, b, v) in enumerate(zip(N, counts, values))]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def test_the_family_is_every_strategy_against_random_then_mgral_against_the_others():
    assert declared_comparisons(["random", "ppal", "mgral", "rare_detections"]) == [
        ("ppal", "random"), ("mgral", "random"), ("rare_detections", "random"),
        ("mgral", "ppal"), ("mgral", "rare_detections")]


def test_holm_matches_the_textbook_example():
    # m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, 0.06, max(0.06, 0.04).
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.2, float("nan")])
    assert adjusted[0] == 0.2 and math.isnan(adjusted[1])  # NaN does not count in m


def test_sign_test_p_is_the_exact_binomial():
    assert sign_test_p([1.0] * 5) == pytest.approx(2 / 32)  # the best 5 seeds can do
    assert sign_test_p([1.0, -1.0]) == 1.0
    assert math.isnan(sign_test_p([0.0, 0.0]))


def test_auc_between_interpolates_and_steps_where_boxes_repeat():
    x, y = np.array([10, 20, 20, 30]), np.array([0.0, 1.0, 2.0, 2.0])
    assert auc_between(x, y, 10, 30) == pytest.approx(25 / 20)
    assert auc_between(x, y, 15, 25) == pytest.approx((0.5 * 5 * (0.5 + 1) + 5 * 2) / 10)
    assert math.isnan(auc_between(x, y, 5, 30))  # never extrapolated
    assert math.isnan(auc_between(x, y, 20, 20))


def test_crowded_wins_per_image_and_loses_per_box():
    table = compare(_curves()).set_index(["axis", "strategy", "against"])
    assert table.loc[("images", "crowded", "random"), "verdict"] == BETTER
    assert table.loc[("boxes", "crowded", "random"), "verdict"] == WORSE
    assert table.loc[("images", "crowded", "random"), "seeds_better"] == "8/8"
    # The box range: L_0's boxes up to the fewest final boxes of the pair (random's).
    assert table.loc[("boxes", "crowded", "random"), "box_range"] == "30-165"


def test_a_lucky_seed_is_not_a_verdict_and_holm_is_never_below_the_raw_p():
    table = compare(_curves())
    lucky = table[(table["strategy"] == "lucky") & (table["axis"] == "images")].iloc[0]
    assert lucky["verdict"] == UNDECIDED and lucky["seeds_better"] == "1/8"
    assert (table["p_holm"] >= table["p_value"] - 1e-12).all()
    assert (table["comparisons"] == 5).all()  # 3 against random + mgral against 2 others
    # The corrected interval is wider than the raw one.
    raw = table["ci95_high"] - table["ci95_low"]
    assert ((table["corrected_ci_high"] - table["corrected_ci_low"]) > raw).all()


def test_a_raw_p_below_005_can_lose_its_verdict_after_correction():
    curve = _curves(seeds=5)
    table = compare(curve).set_index(["axis", "strategy", "against"])
    row = table.loc[("images", "mgral", "random")]
    assert row["p_holm"] == pytest.approx(min(1.0, row["p_value"] * 5), rel=1e-9) or \
        row["p_holm"] >= row["p_value"]
    assert row["verdict"] in (UNDECIDED, BETTER, WORSE)
    assert (row["verdict"] == UNDECIDED) == (row["p_holm"] >= 0.05)


def test_mgral_against_another_strategy_is_the_paired_difference_of_their_aucs():
    table = compare(_curves()).set_index(["axis", "strategy", "against"])
    mgral_random = table.loc[("images", "mgral", "random"), "auc_gain_mean"]
    lucky_random = table.loc[("images", "lucky", "random"), "auc_gain_mean"]
    assert table.loc[("images", "mgral", "lucky"), "auc_gain_mean"] == pytest.approx(
        mgral_random - lucky_random)
