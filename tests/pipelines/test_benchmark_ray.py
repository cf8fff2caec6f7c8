"""The benchmark grid through `kedro run` on a real two-node Ray cluster (tests/ray_cluster.py):
the same curves as the local executor, resume points and MLflow child runs kept by the driver."""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from .conftest import run_pipeline

LOCAL, REMOTE = "data/08_reporting/benchmark_local", "data/08_reporting/benchmark_ray"
TIMINGS = ("timings_s", "wall_time_s", "query_seconds", "recorded_at")


def _kedro_run_on_ray(project, cluster):
    """`kedro run` as a user types it, in the cluster's network namespace (the Ray driver)."""
    kedro = str(Path(sys.executable).with_name("kedro"))
    params = (f"benchmark.output_dir={REMOTE},benchmark.executor=ray,"
              f"benchmark.ray.address={cluster.address}")
    done = subprocess.run(
        cluster.command([kedro, "run", "--env", "tiny", "--pipeline", "benchmark",
                         "--params", params]),
        env=cluster.env(), cwd=project, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-5000:]


def _records(root):
    return {str(p.relative_to(root)): json.loads(p.read_text())
            for p in sorted((root / "runs").rglob("cycle_*.json"))}


def _without_timings(records):
    """Records without wall-clock times and stamps, query scores rounded: a core-set's distances differ
    between processes in the sixth significant digit (float noise in the embeddings); the
    queried images, labels and later cycles must be identical."""
    def rounded(query):
        return query and {**query, "scores": [float(f"{x:.4g}") for x in query["scores"]]}
    return {name: {k: rounded(v) if k == "query" else v for k, v in r.items() if k not in TIMINGS}
            for name, r in records.items()}


@pytest.mark.ray
@pytest.mark.slow
def test_benchmark_grid_on_a_ray_cluster_equals_local_and_resumes(project, ray_cluster):
    run_pipeline(project, "prepare")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task (num_cpus 1): identical floating-point sums
    try:
        run_pipeline(project, "benchmark", {"benchmark": {"output_dir": LOCAL}})
    finally:
        torch.set_num_threads(threads)
    _kedro_run_on_ray(project, ray_cluster)

    local, remote = _records(project / LOCAL), _records(project / REMOTE)
    # Curves whose points differ, or comparing them would prove nothing.
    assert pd.read_csv(project / LOCAL / "al_curve.csv")["mAP50-95"].nunique() > 1
    assert sorted(remote) == ["runs/coreset/seed_0/cycle_0.json",
                              "runs/coreset/seed_0/cycle_1.json",
                              "runs/random/seed_0/cycle_0.json", "runs/random/seed_0/cycle_1.json"]
    assert _without_timings(remote) == _without_timings(local)
    # The catalog writes each run's curve beside its resume points: Ray's equals the local one.
    assert (project / REMOTE / "al_curve.csv").read_text() == (
        project / LOCAL / "al_curve.csv").read_text()

    # The driver logged the curves into MLflow child runs of the Ray run's parent.
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["mgral"], output_format="list",
                              order_by=["attributes.start_time DESC"])
    parent = [r for r in runs if r.info.run_name == "benchmark"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["coreset/seed_0", "random/seed_0"]
    assert {r.info.status for r in children} == {"FINISHED"}

    # An interrupted grid resumes: only the missing cycle is computed again, with the same result.
    missing = project / REMOTE / "runs/coreset/seed_0/cycle_1.json"
    missing.unlink()
    before = {p: p.stat().st_mtime_ns for p in (project / REMOTE / "runs").rglob("cycle_*.json")}
    _kedro_run_on_ray(project, ray_cluster)
    after = {p: p.stat().st_mtime_ns for p in (project / REMOTE / "runs").rglob("cycle_*.json")}
    assert [p for p in after if after[p] != before.get(p)] == [missing]
    assert _without_timings(_records(project / REMOTE)) == _without_timings(local)
