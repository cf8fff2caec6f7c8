"""The Ray executor on a private local instance (the `ray.address: null` case): task results,
resources, shipped files, errors. The two-node cluster tests are next to the LUT and benchmark."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
import ray
import torch

from mgral_pipelines.execution import (
    Executor,
    RayParams,
    in_ray_task,
    local_file,
    ray_tasks,
    run_tasks,
    scratch_dir,
    stream_tasks,
)

pytestmark = pytest.mark.ray
# The workers import the project's package, not the tests: send these functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _describe(x: int) -> dict:
    return {"square": x * x, "threads": torch.get_num_threads(), "in_task": in_ray_task(),
            "node_ip": ray.util.get_node_ip_address()}


def _read(path: str) -> dict:
    local = local_file(path)
    return {"local": local, "data": Path(local).read_bytes(),
            "scratch": str(scratch_dir("data/06_models/runs/x"))}


def _count_then_fail(n: int):
    for i in range(n):
        yield i
    if n == 3:
        raise ValueError(f"curve {n} broke after {n} cycles")


def _die_once_then_count(job: tuple[str, int]):
    """Yields 0..n-1; on its first attempt its worker process dies (SIGKILL) after item 0."""
    marker, n = job
    for i in range(n):
        yield i
        if i == 0 and not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)  # this task's own worker, of the test's instance


def _die_once(marker: str) -> int:
    if not Path(marker).exists():
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return os.getpid()


def test_private_instance_tasks_files_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    image = tmp_path / "image.png"
    image.write_bytes(b"not really a png")
    # Ray puts Unix sockets under its temp dir: a short path (pytest's tmp_path is too long).
    temp_dir = Path(tempfile.mkdtemp(prefix="mgral-ray-"))
    params = RayParams(local_num_cpus=2, num_cpus=2, temp_dir=str(temp_dir))
    executor = Executor(kind="ray", ray=params)
    with ray_tasks.connect(params):  # one instance for the whole test (each call would start one)
        described = run_tasks(_describe, [3, 1, 2], executor, desc="describe")
        assert [d["square"] for d in described] == [9, 1, 4]  # job order, whatever finished first
        # torch threads = the task's CPUs; the private instance is on the loopback address only.
        assert {(d["threads"], d["in_task"], d["node_ip"]) for d in described} == {
            (2, True, "127.0.0.1")}

        (shipped,) = run_tasks(_read, [str(image)], executor, desc="read", files=[str(image)])
        assert shipped["data"] == image.read_bytes()
        assert Path(shipped["local"]) != image and "mgral-files" in shipped["local"]
        assert "mgral-task-" in shipped["scratch"]
        assert shipped["scratch"].endswith("data/06_models/runs/x")
        with pytest.raises(FileNotFoundError, match="image.png was not shipped with this Ray"):
            run_tasks(_read, [str(image)], executor, desc="read")
        with pytest.raises(FileNotFoundError, match="cannot ship .*missing.png"):
            run_tasks(_read, ["x"], executor, desc="read", files=[str(tmp_path / "missing.png")])

        # A job's own exception fails the call with its type and message.
        with pytest.raises(TypeError, match="can't multiply sequence"):
            run_tasks(_describe, [1, "x"], executor, desc="describe")
        # Streaming: what a failing job yielded before it failed is handed over first.
        received = []
        with pytest.raises(ValueError, match="curve 3 broke after 3 cycles"):
            for index, item in stream_tasks(_count_then_fail, [3], executor, desc="curves"):
                received.append((index, item))
        assert received == [(0, 0), (0, 1), (0, 2)]
        assert sorted(stream_tasks(_count_then_fail, [1, 2], executor, desc="curves")) == [
            (0, 0), (1, 0), (1, 1)]
        # The instance's sessions live in the temp dir the parameters name.
        assert list(temp_dir.glob("session_*/logs"))

        # A task whose worker dies is re-run: a curve streams every item once, in order.
        executor_with_retries = Executor(kind="ray", ray=RayParams(num_cpus=2, max_retries=1))
        streamed = list(stream_tasks(_die_once_then_count, [(str(tmp_path / "curve"), 3)],
                                     executor_with_retries, desc="curves"))
        assert streamed == [(0, 0), (0, 1), (0, 2)] and (tmp_path / "curve").exists()
        # (run_tasks' retry: tests/mgral/test_variants.py, on the two-node cluster.) Without
        # retries the worker's death fails the call with Ray's own error.
        no_retries = Executor(kind="ray", ray=RayParams(num_cpus=2, max_retries=0))
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            run_tasks(_die_once, [str(tmp_path / "dies")], no_retries, desc="die")

        # The instance has no GPU: asking for one fails now instead of waiting forever.
        gpu = Executor(kind="ray", ray=RayParams(num_gpus=0.5))
        with pytest.raises(ray_tasks.NoNodeFits,
                           match=r"asks for 1 CPU, 0.5 GPU .* no node .*: 2 CPU, 0 GPU\)"):
            run_tasks(_describe, [1], gpu, desc="describe")
    assert not ray.is_initialized()  # the step stopped the instance it started
    shutil.rmtree(temp_dir, ignore_errors=True)


def test_executor_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="executor must be 'local' or 'ray', got 'dask'"):
        Executor(kind="dask")
