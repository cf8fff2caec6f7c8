"""A real `kedro run --pipeline=benchmark --env tiny`: random and coreset, one seed, one cycle."""

import json
import subprocess
import sys

import mlflow
import pandas as pd
import pytest

from tests.notebooks.test_al_benchmark_notebook import run_notebook

from .conftest import REPO, run_pipeline

REPORTS = "data/08_reporting/benchmark"


def _run_files(root):
    return {str(p.relative_to(root / REPORTS / "runs")): p.stat().st_mtime_ns
            for p in sorted((root / REPORTS / "runs").rglob("cycle_*.json"))}


def test_benchmark_curves_summary_resume_and_mlflow(project):
    run_pipeline(project, "prepare")
    run_pipeline(project, "benchmark")

    reports = project / REPORTS
    curve = pd.read_csv(reports / "al_curve.csv")
    assert list(curve.columns) == ["strategy", "seed", "cycle", "n_labelled", "n_boxes",
                                   "mAP50-95", "mAP50"]
    assert curve[["strategy", "seed", "cycle", "n_labelled"]].values.tolist() == [
        ["random", 0, 0, 10], ["random", 0, 1, 15], ["coreset", 0, 0, 10], ["coreset", 0, 1, 15]]
    assert curve["mAP50-95"].between(0, 1).all()
    assert curve["mAP50-95"].nunique() > 1  # else the comparisons below would compare constants
    summary = pd.read_csv(reports / "summary.csv")
    assert summary["strategy"].tolist() == ["random", "coreset"]
    assert summary.loc[0, "auc_gain_vs_random_mean"] == 0.0
    assert (summary["wall_time_s"] > 0).all()
    run_notebook(reports)  # the analysis notebook reads what the pipeline writes
    assert (reports / "al_curve.png").stat().st_size > 10_000

    # Both strategies start from the seed's split and share the cycle-0 detector.
    first = {s: json.loads((reports / f"runs/{s}/seed_0/cycle_0.json").read_text())
             for s in ("random", "coreset")}
    assert first["random"]["labelled_ids"] == first["coreset"]["labelled_ids"]
    assert first["random"]["metrics"] == first["coreset"]["metrics"]
    assert len(first["random"]["query"]["image_ids"]) == 5
    # Ultralytics' scratch folders are removed once a cycle is saved.
    assert not [p for p in (project / "data/06_models/runs/benchmark").rglob("*") if p.is_file()]

    # MLflow: kedro-mlflow's run is the parent of one child run per (strategy, seed).
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(experiment_names=["mgral"], output_format="list")
    assert sorted(r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags) == [
        "benchmark", "prepare"]
    (parent,) = [r for r in runs if r.info.run_name == "benchmark"]
    children = {r.data.tags["mlflow.runName"]: r for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert sorted(children) == ["coreset/seed_0", "random/seed_0"]
    child = children["coreset/seed_0"]
    assert child.data.tags["strategy"] == "coreset" and child.data.tags["seed"] == "0"
    history = client.get_metric_history(child.info.run_id, "benchmark/map50_95")
    coreset = curve[curve["strategy"] == "coreset"]
    assert [(m.step, m.value) for m in history] == list(
        zip(coreset["n_labelled"], coreset["mAP50-95"]))
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "benchmark")} == {
        "benchmark/al_curve.png", "benchmark/summary.csv", "benchmark/comparisons.csv"}
    assert parent.data.params["benchmark.strategies"] == "['random', 'coreset']"

    # Resume: only the deleted cycle is computed again.
    before = _run_files(project)
    (reports / "runs/coreset/seed_0/cycle_1.json").unlink()
    run_pipeline(project, "benchmark")
    after = _run_files(project)
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert changed == ["coreset/seed_0/cycle_1.json"]
    assert pd.read_csv(reports / "al_curve.csv").iloc[:3].equals(curve.iloc[:3])
    # The new parent's children carry whole curves, the resumed cycles included.
    runs = mlflow.search_runs(experiment_names=["mgral"], output_format="list",
                              order_by=["attributes.start_time DESC"])
    resumed = [r for r in runs if r.info.run_name == "benchmark"][0]
    assert resumed.info.run_id != parent.info.run_id
    for child in runs:
        if child.data.tags.get("mlflow.parentRunId") == resumed.info.run_id:
            history = client.get_metric_history(child.info.run_id, "benchmark/map50_95")
            assert [m.step for m in history] == [10, 15]
    assert sum(r.data.tags.get("mlflow.parentRunId") == resumed.info.run_id for r in runs) == 2


def test_benchmark_runs_mgral_through_the_lut_and_agent(project):
    project = project
    run_pipeline(project, "prepare")
    run_pipeline(project, "benchmark", {"benchmark": {"strategies": ["mgral"]}})

    record = json.loads((project / REPORTS / "runs/mgral/seed_0/cycle_0.json").read_text())
    assert {"lut", "agent", "embedding", "select_query"} <= set(record["timings_s"])
    # The cycle's own checks travel with it into the summary.
    assert {"lut/loo_spearman", "agent/query_reward_percentile"} <= set(record["diagnostics"])
    assert len(record["query"]["image_ids"]) == 5
    assert record["code_version"] and record["settings"]
    summary = pd.read_csv(project / REPORTS / "summary.csv")
    assert summary["strategy"].tolist() == ["mgral"]
    assert summary["auc_gain_vs_random_mean"].isna().all()  # no random to compare with
    assert summary.loc[0, "query_reward_percentile_mean"] == pytest.approx(
        record["diagnostics"]["agent/query_reward_percentile"])


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "benchmarks" / name), *args],
                          capture_output=True, text=True, timeout=600)


def test_records_make_the_tables_and_survive_a_change_shown_equivalent(project):
    two_seeds = {"benchmark": {"strategies": ["random"], "seeds": [0, 1]}}
    run_pipeline(project, "prepare")
    run_pipeline(project, "benchmark", two_seeds)
    runs = project / REPORTS / "runs"

    tables = _script("benchmark_tables.py", str(runs), "--out", str(project / "tables"))
    assert tables.returncode == 0, tables.stderr
    curve = pd.read_csv(project / "tables" / "al_curve.csv")
    assert curve.drop(columns="n_boxes").equals(pd.read_csv(project / REPORTS / "al_curve.csv")
                                               .drop(columns="n_boxes"))
    assert pd.read_csv(project / "tables" / "versions.csv")["strategy"].tolist() == ["random"]

    # Records of "other code" on both seeds: refused by the benchmark, until a re-run of one seed
    # shows the same numbers; the settings are unchanged, so that covers the other seed as well.
    for path in runs.glob("random/seed_*/cycle_*.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "code_version": "0ld"}))
    with pytest.raises(Exception, match="made by code version 0ld"):
        run_pipeline(project, "benchmark", two_seeds)
    check = _script("check_record_equivalence.py", "--env", "tiny", "--strategy", "random",
                    "--seed", "0", "--project", str(project))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "random: equivalent" in check.stdout and "seed_1: code 0ld" in check.stdout
    entries = json.loads((runs / "equivalences.json").read_text())
    assert [e["from"]["code_version"] for e in entries] == ["0ld", "0ld"]
    assert "identical" in entries[0]["evidence"]
    assert entries[0]["from"]["settings"] != entries[1]["from"]["settings"]  # one per seed
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("cycle_*.json")}
    run_pipeline(project, "benchmark", two_seeds)
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("cycle_*.json")} == before  # resumed
