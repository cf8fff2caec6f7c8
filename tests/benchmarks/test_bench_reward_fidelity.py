"""The reward yardstick (`benchmarks/bench_reward_fidelity.py`) run as its README command runs it,
on the tiny profile: a fresh measurement, then the LUT-only re-read of the same batches."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd

from tests.pipelines.conftest import REPO, project, run_pipeline  # noqa: F401 (fixture)


def _yardstick(root, *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "benchmarks/bench_reward_fidelity.py", "--env", "tiny",
         "--split-seed", "0", "--batches", "4", "--repeats", "2", "--lut-batches", "3",
         *arguments],
        cwd=root, check=True)


def test_yardstick_measures_then_rereads_the_same_batches(project):  # noqa: F811
    shutil.copytree(REPO / "benchmarks", project / "benchmarks")
    run_pipeline(project, "prepare")

    _yardstick(project, "--out", "yardstick/trend.csv")
    rows = pd.read_csv(project / "yardstick/trend.csv")
    assert rows[["batch", "repeat"]].values.tolist() == [[b, r] for b in range(4) for r in (0, 1)]
    assert np.isfinite(rows[["true_gain", "semi_delta", "lut_prediction"]].to_numpy()).all()
    assert (rows.groupby("batch")["image_ids"].first().str.split().str.len() == 3).all()
    summary = json.loads((project / "yardstick/trend.json").read_text())
    assert summary["lookup"]["estimator"] == "trend" and summary["batches"] == 4
    rho = summary["lut_vs_true"]["rho"]  # NaN where tiny's predictions or gains are constant
    assert summary["lut_vs_true"]["n"] == 4 and (np.isnan(rho) or -1 <= rho <= 1)

    # Same D_0, so the same held-out batches: true gains and ΔmAPs reused, only the LUT re-read.
    initial = (project / "data/06_models/runs/reward_fidelity/trend/cycle_0/lut/reference"
               / "initial_weights.pt")
    _yardstick(project, "--initial-detector", str(initial), "--true-from", "yardstick/trend.csv",
               "--lut-only", "--lookup", "estimator=kernel", "--out", "yardstick/kernel.csv")
    reread = pd.read_csv(project / "yardstick/kernel.csv")
    assert reread["image_ids"].tolist() == rows["image_ids"].tolist()
    assert reread[["true_gain", "semi_delta"]].equals(rows[["true_gain", "semi_delta"]])
    assert json.loads((project / "yardstick/kernel.json").read_text())["lookup"][
        "estimator"] == "kernel"
