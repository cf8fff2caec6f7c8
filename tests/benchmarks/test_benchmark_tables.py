"""`benchmarks/benchmark_tables.py --mgral-from`: a development trial's tables, on the committed
development records."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from benchmarks.benchmark_tables import write_tables
from tests.pipelines.conftest import REPO

BASELINE = REPO / "benchmarks" / "records" / "transfer" / "development"


def test_a_trial_of_mgral_is_paired_with_the_baseline_and_the_mgral_it_changes(tmp_path):
    """A trial holds MGRAL alone; its tables pair it with the baseline's strategies and with the
    baseline's own MGRAL (`mgral_before`). A trial identical to the baseline differs from it by
    exactly 0 on every seed."""
    trial = tmp_path / "trial"
    shutil.copytree(BASELINE / "mgral", trial / "mgral")
    write_tables(BASELINE, tmp_path / "tables", mgral_from=trial)
    comparisons = pd.read_csv(tmp_path / "tables" / "comparisons.csv")
    same = comparisons[(comparisons["strategy"] == "mgral")
                       & (comparisons["against"] == "mgral_before")]
    assert list(same["axis"]) == ["images", "boxes"]
    assert (same["auc_gain_mean"] == 0).all() and (same["seeds"] == 5).all()
    assert {"random", "ppal", "rare_detections", "mgral_fixed_reward"} <= set(
        comparisons.loc[comparisons["strategy"] == "mgral", "against"])
    versions = pd.read_csv(tmp_path / "tables" / "versions.csv")
    assert (versions["strategy"] == "mgral").sum() == 1
    assert (versions["strategy"] == "mgral_before").sum() == 1


def test_a_trial_folder_holds_mgral_only(tmp_path):
    with pytest.raises(SystemExit, match="MGRAL's records only"):
        write_tables(BASELINE, tmp_path / "tables", mgral_from=BASELINE)
