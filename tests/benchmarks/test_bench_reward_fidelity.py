"""The reward yardstick (`benchmarks/bench_reward_fidelity.py`) run as its README command runs it,
on the tiny profile: a fresh measurement, then the LUT-only re-read of the same batches."""

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.pipelines.conftest import REPO, project, run_pipeline  # noqa: F401 (fixture)


def _yardstick(root, *arguments: str) -> None:
    subprocess.run(
        [sys.executable, "benchmarks/bench_reward_fidelity.py", "--env", "tiny",
         "--split-seed", "0", "--batches", "4", "--repeats", "2", "--lut-batches", "3",
         "--true-epochs", "1",
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
    assert summary["detected_objects_vs_true"]["n"] == 4
    assert {"loo_spearman", "trend_slope", "bandwidth"} <= set(summary["lut_fidelity"])

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

    # Which look-up carries the ΔmAP to batches it has not seen, on the same measurements and D_0.
    subprocess.run([sys.executable, "benchmarks/bench_lookup_generalisation.py", "--env", "tiny",
                    "--split-seed", "0", "--rows", "yardstick/trend.csv", "--weights",
                    str(initial), "--out", "yardstick/generalisation.csv"],
                   cwd=project, check=True)
    generalisation = pd.read_csv(project / "yardstick/generalisation.csv")
    assert len(generalisation) == 4  # one leave-one-out prediction per batch and look-up
    assert {"wasserstein_kernel", "predicted_objects_linear"} <= set(generalisation.columns)
    assert json.loads((project / "yardstick/generalisation.json").read_text())["batches"] == 4

    # What a reward could see, per batch, against the same true gains (D_0 is the run's own).
    subprocess.run([sys.executable, "benchmarks/bench_reward_features.py", "yardstick/trend.csv",
                    "--env", "tiny", "--out", "yardstick/features.csv"], cwd=project, check=True)
    features = pd.read_csv(project / "yardstick/features.csv")
    assert set(features["run"]) == {"trend", "pooled"}
    assert {"oracle_class_gain", "detected_class_gain", "detected_score_class_gain",
            "embedding_cluster_gain", "lut_prediction"} <= set(features["feature"])
    assert (features["n"] == 4).all()
    batches = pd.read_csv(project / "yardstick/features_batches.csv")
    assert (batches["d_t"] == "run's own").all()
    assert batches["oracle_objects"].tolist() == rows.groupby("batch")["objects"].first().tolist()
    # Gains are never negative: a batch only adds objects (or images) to a class (or cluster).
    assert (batches[["oracle_class_gain", "detected_score_class_gain",
                     "embedding_cluster_gain"]] >= 0).all().all()
    assert (project / "yardstick/features.png").stat().st_size > 0

    # Two runs pooled: the pool spans both runs' batches.
    subprocess.run([sys.executable, "benchmarks/pool_yardsticks.py", "yardstick/trend.csv",
                    "yardstick/kernel.csv", "--out", "yardstick/pooled.json"],
                   cwd=project, check=True)
    pooled = json.loads((project / "yardstick/pooled.json").read_text())
    assert sorted(pooled["runs"]) == ["kernel", "trend"]
    assert pooled["pooled"]["objects_vs_true"]["n"] == 8


def test_pooling_fisher_z_of_equal_samples_keeps_rho_and_narrows_the_interval():
    from benchmarks.pool_yardsticks import pooled_interval

    one = {"rho": 0.4, "low": 0.05, "high": 0.66, "n": 30}
    pooled = pooled_interval([one, one])
    assert pooled["rho"] == pytest.approx(0.4) and pooled["n"] == 60
    assert pooled["low"] > 0.05 and pooled["high"] < 0.66
    # 1.96 sqrt(1.06 / 54) on the z scale.
    assert np.arctanh(pooled["high"]) - np.arctanh(0.4) == pytest.approx(1.96 * np.sqrt(1.06 / 54))


def test_class_gain_counts_an_object_of_a_class_the_labels_lack_most():
    from benchmarks.bench_reward_features import class_gain

    from mgral_pipelines.mgral.features import class_counts

    labelled = class_counts([{"class_id": 0}] * 9, 3)
    assert labelled.tolist() == [9, 0, 0]
    common, rare = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    assert class_gain(labelled, rare) == pytest.approx(np.log(2))
    assert class_gain(labelled, common) == pytest.approx(np.log(11 / 10))
    # Two objects of one new class are worth less than one each of two new classes.
    assert class_gain(labelled, np.array([0, 2.0, 0])) < class_gain(labelled, np.array([0, 1, 1.0]))


def test_yardstick_state_labels_random_pool_images_like_a_random_query():
    from benchmarks.bench_reward_fidelity import yardstick_state

    from mgral_pipelines import al_state

    splits = {"initial": ["a"], "pool": ["b", "c", "d", "e"]}
    oracle = {i: [{"class_id": 0, "bbox": [0, 0, 1, 1]}] for i in "abcde"}
    data = SimpleNamespace(seed=3, initial_state=al_state.initial_state(
        splits, {"a": oracle["a"]}, "tiny"))
    assert yardstick_state(data, oracle, 0) is data.initial_state
    state = yardstick_state(data, oracle, 2)
    assert state == yardstick_state(data, oracle, 2)  # seeded by the split
    assert len(state["labelled_ids"]) == 3 and len(state["pool_ids"]) == 2
    assert set(state["labels"]) == set(state["labelled_ids"]) and state["cycle"] == 1
    with pytest.raises(SystemExit, match="must leave a pool"):
        yardstick_state(data, oracle, 4)


def test_a_reread_of_other_batches_stops_before_any_training(tmp_path):
    from benchmarks.bench_reward_fidelity import _check_same_batches

    earlier = tmp_path / "earlier.csv"
    pd.DataFrame({"batch": [0, 0, 1, 1], "repeat": [0, 1, 0, 1],
                  "image_ids": ["a b", "a b", "c d", "c d"]}).to_csv(earlier, index=False)
    _check_same_batches([{"image_ids": ["a", "b"]}, {"image_ids": ["c", "d"]}], earlier)
    with pytest.raises(SystemExit, match="other batches than this D_0 draws"):
        _check_same_batches([{"image_ids": ["a", "b"]}, {"image_ids": ["c", "e"]}], earlier)
    with pytest.raises(SystemExit, match="other batches"):  # more batches than were measured
        _check_same_batches([{"image_ids": ["a", "b"]}] * 3, earlier)


def test_studies_refuse_the_evaluation_set(project):  # noqa: F811
    """A profile that declares an evaluation set: the yardstick and the other studies exit with
    the reason, before training anything, on its split seeds (and on its images)."""
    shutil.copytree(REPO / "benchmarks", project / "benchmarks")
    run_pipeline(project, "prepare")
    declared = ("benchmark:\n  data_sets:\n"
                "    development: {generator_seed: 0, split_seeds: [0]}\n"
                "    evaluation: {generator_seed: 7, split_seeds: [9]}\n"
                "  data_set: development\n  seeds: null\n")
    (project / "conf/tiny/parameters_benchmark.yml").write_text(declared)
    (project / "x.pt").write_bytes(b"")  # checked for existence only, before the gate
    (project / "rows.csv").write_text("batch,repeat,image_ids,semi_delta,true_gain,lut_prediction\n"
                                      "0,0,a b,0.0,0.0,0.0\n")
    for script, extra in [("bench_reward_fidelity.py", ["--batches", "2"]),
                          ("bench_detector_noise.py", []),
                          ("bench_lookup_generalisation.py", ["--rows", "rows.csv", "--weights", "x.pt"])]:
        refused = subprocess.run(
            [sys.executable, f"benchmarks/{script}", "--env", "tiny", "--split-seed", "9", *extra],
            cwd=project, capture_output=True, text=True)
        assert refused.returncode != 0, script
        assert "reads development data only, but split seeds [9] are evaluation split seeds" in \
            refused.stderr, (script, refused.stderr[-600:])
    assert not (project / "data/06_models/runs/reward_fidelity").exists()  # nothing trained
