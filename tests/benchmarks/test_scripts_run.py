"""Every measuring script in benchmarks/ runs, at its smallest size, as its README command runs it
(`python benchmarks/<script>.py ...`), in a throwaway copy of the project: a script the code has
moved away from fails here, not in front of the next person who measures.

The reward yardstick, its features and pooling (bench_reward_fidelity, bench_reward_features,
pool_yardsticks) and bench_lookup_generalisation run in test_bench_reward_fidelity.py, on a
yardstick measured there."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipelines.conftest import REPO, project, run_pipeline  # noqa: F401 (fixture)

pytestmark = pytest.mark.smoke


@pytest.fixture
def copy(project):  # noqa: F811
    """The project copy with benchmarks/ beside its conf/ (the scripts find the root from it)."""
    shutil.copytree(REPO / "benchmarks", project / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return project


def _script(root: Path, name: str, *arguments: str, timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, f"benchmarks/{name}.py", *arguments], cwd=root,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-5000:]
    return done.stdout


def test_bench_query(copy):
    _script(copy, "bench_query", "--sizes", "200", "400", "--repeats", "1", "--out", "q.json")
    output = json.loads((copy / "q.json").read_text())
    assert [r["pool_size"] for r in output["results"]] == [200, 400]
    assert all(r["median_cpu_s"] > 0 and r["peak_rss_mib"] > 0 for r in output["results"])
    # The shipped agent's query settings, and the conditions a reader needs to judge a timing.
    assert output["results"][0]["context_size"] == 256 and output["results"][0]["budget"] == 100
    assert {"commit", "load_average_1_5_15min", "cpu_count"} <= set(output["conditions"])


def test_benchmark_tables_reads_an_older_curve(copy, tmp_path):
    """A curve saved before records existed: the corrected comparisons per image only."""
    rng = np.random.default_rng(0)
    rows = [{"strategy": strategy, "seed": seed, "cycle": cycle, "n_labelled": 10 + 5 * cycle,
             "mAP50-95": 0.3 + 0.05 * cycle + rng.normal(0, 0.01), "mAP50": 0.5}
            for strategy in ("random", "mgral") for seed in range(3) for cycle in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "al_curve.csv", index=False)
    _script(copy, "benchmark_tables", str(tmp_path / "al_curve.csv"), "--out", "tables")
    comparisons = pd.read_csv(copy / "tables" / "comparisons.csv")
    assert comparisons[["axis", "strategy", "against", "seeds"]].values.tolist() == [
        ["images", "mgral", "random", 3]]
    assert (copy / "tables" / "tables.md").read_text().startswith("| axis | comparison")


@pytest.mark.slow
def test_bench_scaling(copy, tmp_path):
    _script(copy, "bench_scaling", "--env", "tiny", "--sizes", "64", "128", "--embed-limit", "8",
            "--episodes", "8", "--work-dir", str(tmp_path / "pool"), "--out", "s.json",
            "--plot", "s.png")
    output = json.loads((copy / "s.json").read_text())
    rows = {(r["step"], r["pool_size"]): r for r in output["results"]}
    assert set(rows) == {(s, n) for s in ("embedding", "agent", "query") for n in (64, 128)}
    assert rows[("embedding", 128)]["embedded"] == 8 and rows[("embedding", 128)]["extrapolated"]
    assert rows[("agent", 64)]["episodes"] == 8 and rows[("agent", 64)]["read_out"] == "trend"
    assert all(r["cpu_seconds"] > 0 for r in rows.values())
    assert (copy / "s.png").stat().st_size > 0


@pytest.mark.slow
def test_bench_embedding(copy):
    _script(copy, "bench_embedding", "--images", "8", "--repeats", "1", "--out", "e.json")
    assert json.loads((copy / "e.json").read_text())


@pytest.mark.slow
def test_bench_detector_noise(copy):
    run_pipeline(copy, "prepare")
    _script(copy, "bench_detector_noise", "--env", "tiny", "--seeds", "2", "--extra", "2",
            "--out", "noise.csv")
    trainings = pd.read_csv(copy / "noise.csv")
    assert len(trainings) == 4  # 2 schedules x 2 seeds


@pytest.mark.slow
def test_bench_lut_and_bench_variant_time_on_a_finished_cycle(copy):
    run_pipeline(copy, "al_cycle", {"al": {"strategy": "mgral"}})
    _script(copy, "bench_lut", "--env", "tiny", "--cycle", "0", "--lookups", "5", "--out",
            "lut.json")
    lut = json.loads((copy / "lut.json").read_text())
    assert lut["lut_entries"] == 2 and lut["lookup_seconds_median"] > 0
    _script(copy, "bench_variant_time", "--env", "tiny", "--cycle", "0", "--repeats", "1",
            "--out", "variant.json")
    assert json.loads((copy / "variant.json").read_text())


@pytest.mark.slow
@pytest.mark.ray
def test_bench_lut_ray(copy):
    _script(copy, "bench_lut_ray", "--variants", "2", "--repeats", "1", "--ray-workers", "1",
            "--labelled", "8", "--val", "8", "--batch-size", "2", "--images-per-epoch", "8",
            "--imgsz", "64", "--out", "lut_ray.json", timeout=900)
    output = json.loads((copy / "lut_ray.json").read_text())
    assert len(output["ratios_sequential_over_ray"]) == 1 and output["seconds"][0]["ray"] > 0
    assert output["settings"]["lr0"] == 0.0002  # the shipped LUT's rate, not the detector's
    assert isinstance(output["delta_maps_differ"], bool)
