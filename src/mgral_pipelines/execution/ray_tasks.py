"""The Ray executor: one Ray task per job, on a cluster given by address or on a private instance.

Connection (`connect`): inside a Ray task, or when the caller is already connected, the existing
connection is used (so a benchmark curve running as a task can start LUT tasks of its own).
Otherwise `ray.address` or `$RAY_ADDRESS` names a running cluster; with neither, a local Ray
instance is started for the call and stopped after it. That private instance listens on the
loopback interface only (no other machine has any business joining it) and authenticates with a
per-process token, so Ray writes no token file into the user's home directory.

Tasks: the job's function runs in `_run_task` / `_stream_task` on a worker, which sets torch's
thread count from the task's CPUs (Ray sets OMP_NUM_THREADS, but a reused worker process keeps
the thread pool of its previous task), installs the files context (`files.py`) and calls the
function. Ray re-runs a task whose worker or node dies (`max_retries`); exceptions raised by the
function itself are not retried: they are the job's own error and fail the call.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants
from tqdm.auto import tqdm

import mgral_pipelines
from mgral_pipelines.environment import _DEFAULTS as OFFLINE_ENV
from mgral_pipelines.execution import files
from mgral_pipelines.execution.config import RayParams

logger = logging.getLogger(__name__)

_PROCESS_TOKEN = secrets.token_hex(32)
"""Token of the private instances this process starts (one per process: Ray caches it)."""


_private_instance = False
"""Whether this process is connected to a private instance it started (its resources are fixed)."""


# --------------------------------------------------------------------------------------------------
# Connecting
# --------------------------------------------------------------------------------------------------


@contextmanager
def connect(params: RayParams) -> Iterator[None]:
    """Be connected to Ray for the duration of the block (see the module docstring)."""
    if ray.is_initialized():
        yield
        return
    address = params.address or os.environ.get("RAY_ADDRESS")
    runtime_env = _runtime_env(params)
    if address:
        logger.info("Connecting to the Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        try:
            yield
        finally:
            ray.shutdown()
        return
    global _private_instance
    with _private_instance_settings():
        logger.info("Starting a local Ray instance (%s CPUs)", params.local_num_cpus or "all")
        ray.init(address="local", num_cpus=params.local_num_cpus, include_dashboard=False,
                 runtime_env=runtime_env, logging_level=logging.WARNING)
        _private_instance = True
        try:
            yield
        finally:
            _private_instance = False
            ray.shutdown()


def _runtime_env(params: RayParams) -> dict[str, Any]:
    env: dict[str, Any] = {"env_vars": dict(OFFLINE_ENV)}
    if params.ship_code:
        # The workers run the driver's code; the committed checkpoint is shipped as a file if used.
        env["py_modules"] = [str(Path(mgral_pipelines.__file__).parent)]
        env["excludes"] = ["__pycache__", "*.pt"]
    return env


@contextmanager
def _private_instance_settings() -> Iterator[None]:
    """Loopback-only addresses and a per-process token for an instance nobody else joins."""
    saved_env = {key: os.environ.get(key) for key in (
        ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    saved_cluster = ray_constants.ENABLE_RAY_CLUSTER
    # Ray on Linux advertises the host's network address even for a single node; with
    # "clusters" off it uses the loopback address, as it does on macOS and Windows. The spawned
    # Ray processes read the variable, this process the constant.
    os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    # A local ray.init turns token authentication on; with a token in the environment Ray does
    # not generate one into ~/.ray/auth_token.
    os.environ.setdefault("RAY_AUTH_TOKEN", _PROCESS_TOKEN)
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_cluster
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_resources(params: RayParams) -> None:
    """A private instance never grows: refuse tasks it could never schedule (Ray would wait)."""
    if not _private_instance:
        return  # a cluster may gain nodes (autoscaling); Ray reports infeasible tasks itself
    available = ray.cluster_resources()
    for name, wanted in (("CPU", params.num_cpus), ("GPU", params.num_gpus)):
        if wanted > available.get(name, 0):
            raise ValueError(
                f"each Ray task asks for {wanted} {name} (ray.num_{name.lower()}s) but the local "
                f"Ray instance has {available.get(name, 0)}; lower it, or set ray.address to a "
                "cluster that has them"
            )


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], params: RayParams, *, desc: str,
              files: Iterable[str] = (),
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """One Ray task per job; results in job order, each handed to `on_result(index, result)` as
    it arrives. The first failure cancels the others."""
    with connect(params):
        _check_resources(params)
        shipped = _ship(files, params)
        remote = _remote(_run_task, params)
        refs = [remote.options(name=_task_name(desc, i)).remote(fn, job, shipped, _threads(params))
                for i, job in enumerate(jobs)]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc=desc, unit="task") as progress:
            try:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    position = index[done[0]]
                    results[position] = _get(done[0], _task_name(desc, position))
                    if on_result is not None:
                        on_result(position, results[position])
                    progress.update(1)
            finally:
                _cancel(pending)
        return results


def stream_tasks(fn: Callable[[Any], Iterator[Any]], jobs: Sequence[Any], params: RayParams, *,
                 desc: str, files: Iterable[str] = ()) -> Iterator[tuple[int, Any]]:
    """One streaming generator task per job; `(job index, item)` as items arrive."""
    with connect(params):
        _check_resources(params)
        shipped = _ship(files, params)
        remote = _remote(_stream_task, params)
        generators = [remote.options(name=_task_name(desc, i)).remote(fn, job, shipped,
                                                                       _threads(params))
                      for i, job in enumerate(jobs)]
        pending = list(range(len(generators)))
        try:
            while pending:
                ready, _ = ray.wait([generators[i] for i in pending], num_returns=1)
                index = next(i for i in pending if generators[i] is ready[0])
                try:
                    ref = next(generators[index])
                except StopIteration:
                    pending.remove(index)
                    continue
                yield index, _get(ref, _task_name(desc, index))
        finally:
            _cancel([generators[i] for i in pending])


def _remote(function: Callable[..., Any], params: RayParams) -> Any:
    return ray.remote(num_cpus=params.num_cpus, num_gpus=params.num_gpus,
                      max_retries=params.max_retries, retry_exceptions=False)(function)


def _threads(params: RayParams) -> int:
    return max(1, int(params.num_cpus))


def _task_name(desc: str, index: int) -> str:
    return f"mgral.{desc.replace(' ', '_')}.{index}"


def _ship(paths: Iterable[str], params: RayParams) -> Any:
    """Each distinct file once into the object store; None when the nodes share the files."""
    if not params.ship_files:
        return None
    shipped = {}
    for path in dict.fromkeys(paths):
        digest, data = files.file_digest(path)
        shipped[path] = files.ShippedFile(digest, Path(path).suffix.lower(), ray.put(data))
    return ray.put(shipped)  # one reference for every task; resolved when a task starts


def _get(ref: Any, name: str) -> Any:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        logger.error("Ray task %s failed:\n%s", name, error)
        if isinstance(error.cause, BaseException):
            # The job's own exception (type and message), with the remote traceback chained.
            raise error.cause from error
        raise
    except ray.exceptions.RayError as error:  # e.g. its worker died more than max_retries times
        logger.error("Ray task %s failed for good: %s", name, error)
        raise


def _cancel(refs: Sequence[Any]) -> None:
    for ref in refs:
        try:
            ray.cancel(ref, force=False)
        except Exception as error:  # noqa: BLE001  best effort: the call is failing already
            logger.debug("could not cancel %s: %s", ref, error)


# --------------------------------------------------------------------------------------------------
# On the worker
# --------------------------------------------------------------------------------------------------


def _run_task(fn: Callable[[Any], Any], job: Any, shipped: Any, threads: int) -> Any:
    _set_threads(threads)
    with files.task_context(_localise(shipped)):
        return fn(job)


def _stream_task(fn: Callable[[Any], Iterator[Any]], job: Any, shipped: Any,
                 threads: int) -> Iterator[Any]:
    _set_threads(threads)
    with files.task_context(_localise(shipped)):
        yield from fn(job)


def _localise(shipped: dict[str, files.ShippedFile] | None) -> dict[str, str] | None:
    if shipped is None:
        return None
    return files.materialise(shipped, lambda refs: ray.get(list(refs)))


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
