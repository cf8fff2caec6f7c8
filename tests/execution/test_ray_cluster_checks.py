"""The Ray executor fails fast on the two-node test cluster (tests/ray_cluster.py, 1 CPU a node):
a dead address, a task no node can hold, and a cluster whose CPUs another job holds.

Each case is a Ray driver run as a user runs one, in the cluster's network namespace; it prints
what `run_tasks` raised and how long that took."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from tests.ray_cluster import REPO

pytestmark = pytest.mark.ray

_RUN = """
import json, sys, time
from mgral_pipelines.execution import Executor, RayParams, run_tasks

started = time.monotonic()
try:
    executor = Executor(kind="ray", ray=RayParams(**json.loads(sys.argv[1])))
    result = run_tasks(abs, [-1, -2], executor, desc="checks")
    outcome = {"result": result}
except Exception as error:
    outcome = {"error": type(error).__name__, "message": str(error)}
print(json.dumps({**outcome, "seconds": time.monotonic() - started}))
"""

# Another job: holds every CPU of the cluster until it is stopped.
_HOLD = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="WARNING")
hold = ray.remote(num_cpus=1)(lambda: time.sleep(600))
refs = [hold.remote() for _ in range(2)]
print("holding", flush=True)
ray.get(refs)
"""


def _run(cluster, **params) -> dict:
    """`run_tasks(abs, [-1, -2])` on the cluster with these `ray` parameters, in a fresh driver."""
    done = subprocess.run(
        cluster.command([sys.executable, "-c", textwrap.dedent(_RUN), json.dumps(params)]),
        env=cluster.env(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_cpus(cluster) -> float:
    code = ("import ray; ray.init(address='%s', logging_level='WARNING'); "
            "print(ray.available_resources().get('CPU', 0))" % cluster.address)
    done = subprocess.run(cluster.command([sys.executable, "-c", code]), env=cluster.env(),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def test_a_dead_address_is_refused_in_seconds_with_the_fix(ray_cluster):
    host, port = ray_cluster.address.split(":")
    dead = f"{host}:{int(port) + 7}"  # nothing listens there
    outcome = _run(ray_cluster, address=dead, connect_timeout_s=3)
    assert outcome["error"] == "ClusterUnreachable"
    assert outcome["seconds"] < 10  # Ray alone retries for about 14 minutes
    message = outcome["message"]
    assert f"no Ray cluster answers at {dead} (ray.address)" in message
    assert f"ray start --head --port={int(port) + 7}" in message
    assert "leave ray.address null" in message


def test_a_task_no_node_can_hold_is_refused_before_it_waits(ray_cluster):
    outcome = _run(ray_cluster, address=ray_cluster.address, num_cpus=2)
    assert outcome["error"] == "NoNodeFits"
    assert "each Ray task asks for 2 CPU, 0 GPU" in outcome["message"]
    assert outcome["message"].count("127.0.0.1: 1 CPU, 0 GPU") == 2  # what each node holds
    gpu = _run(ray_cluster, address=ray_cluster.address, num_gpus=1)
    assert gpu["error"] == "NoNodeFits" and "asks for 1 CPU, 1 GPU" in gpu["message"]


def test_a_cluster_held_by_another_job_stops_the_call_and_says_what_waits(ray_cluster):
    holder = subprocess.Popen(
        ray_cluster.command([sys.executable, "-c", textwrap.dedent(_HOLD), ray_cluster.address]),
        env=ray_cluster.env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        deadline = time.monotonic() + 120
        while _free_cpus(ray_cluster) > 0:  # both tasks of the other job running
            assert time.monotonic() < deadline, "the other job's tasks did not start"
            time.sleep(1)
        outcome = _run(ray_cluster, address=ray_cluster.address, start_timeout_s=5)
    finally:
        holder.terminate()  # the other job's driver: Ray ends its tasks with it
        holder.wait(timeout=60)
    assert outcome["error"] == "TasksNotStarted"
    message = outcome["message"]
    assert "no Ray task of 'checks' started within 5 s (ray.start_timeout_s)" in message
    assert "Waiting: 2 task(s), each asking for 1 CPU, 0 GPU" in message
    assert "2 live node(s) with 0 of 2 CPU free" in message
    # Its tasks were cancelled: once the other job ends, the same call runs.
    assert _run(ray_cluster, address=ray_cluster.address)["result"] == [1, 2]
