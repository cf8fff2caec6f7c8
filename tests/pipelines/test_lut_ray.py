"""The LUT through `kedro run --pipeline=lut` on a real two-node Ray cluster (tests/ray_cluster.py):
a worker process is killed in the middle of a variant, and the LUT still equals the local one."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .conftest import run_pipeline

MGRAL = {"al": {"strategy": "mgral"}}
LUT = "data/06_models/mgral/cycle_0/lut.json"
RUNS = "data/06_models/runs"  # the driver's run_dir: Ray tasks must not write into it


def _without_timings(project: Path) -> dict:
    lut = json.loads((project / LUT).read_text())
    for variant in [lut["reference"], *lut["entries"]]:
        variant.pop("train_time_s")
    return lut


def _running_variant_task(cluster) -> int | None:
    """The pid of a cluster worker that is training a LUT variant now (Ray names the process)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::mgral.lut_variants.") and cluster.owns(int(entry.name)):
                return int(entry.name)
    return None


def _kill_one_variant_mid_task(cluster, killed: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        pid = _running_variant_task(cluster)
        if pid is not None:
            time.sleep(1.0)  # well into loading, predicting or training
            if _running_variant_task(cluster) == pid:
                os.kill(pid, signal.SIGKILL)  # a worker process of the test's own cluster
                killed.append(pid)
                return
        time.sleep(0.1)


def _kedro_lut(project: Path, params: str, env: dict[str, str],
               wrap=lambda argv: argv) -> subprocess.CompletedProcess:
    """`kedro run --pipeline=lut` as a user types it."""
    kedro = str(Path(sys.executable).with_name("kedro"))
    return subprocess.run(
        wrap([kedro, "run", "--env", "tiny", "--pipeline", "lut", "--params", params]),
        env=env, cwd=project, capture_output=True, text=True, timeout=900)


@pytest.mark.ray
@pytest.mark.slow
def test_lut_on_a_ray_cluster_equals_local_despite_a_killed_worker(project, ray_cluster):
    for step in ("detector", "embedding"):
        run_pipeline(project, step, MGRAL)
    # The local LUT in a fresh process too, one torch thread per variant as each Ray task
    # (num_cpus 1). Built in this process instead, its candidate variants (not the reference)
    # differed from Ray's: their teacher, the cycle's detector, was already loaded here by the
    # earlier steps, under two threads.
    local_run = _kedro_lut(project, "al.strategy=mgral,lut.torch_threads=1", ray_cluster.env())
    assert local_run.returncode == 0, local_run.stderr[-5000:]
    local = _without_timings(project)
    deltas = [entry["delta_map"] for entry in local["entries"]]
    assert len(set(deltas)) > 1, f"ΔmAPs all equal ({deltas}): comparing would prove nothing"
    written_locally = sorted((project / RUNS).rglob("*"))
    (project / LUT).unlink()

    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_one_variant_mid_task, args=(ray_cluster, killed, stop))
    killer.start()
    params = (f"al.strategy=mgral,lut.executor=ray,lut.ray.address={ray_cluster.address},"
              "lut.ray.max_retries=2")
    try:  # the Ray driver runs in the cluster's network namespace
        done = _kedro_lut(project, params, ray_cluster.env(), ray_cluster.command)
    finally:
        stop.set()
        killer.join()
    assert done.returncode == 0, done.stderr[-5000:]
    assert killed, "no variant task was seen running on the cluster"
    # The killed variant was re-run; the driver wrote the same LUT (same seeds, 1 thread).
    assert _without_timings(project) == local
    assert sorted((project / RUNS).rglob("*")) == written_locally, (
        "Ray tasks must write into their own scratch folders, not the driver's run_dir")
