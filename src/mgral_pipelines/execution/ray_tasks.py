"""The Ray executor: one Ray task per job, on a cluster given by address or on a private instance.

Connection (`connect`): inside a Ray task, or when the caller is already connected, the existing
connection is used (so a benchmark curve running as a task can start LUT tasks of its own).
Otherwise `ray.address` or `$RAY_ADDRESS` names a running cluster; with neither, a local Ray
instance is started for the call (its sessions under `ray.temp_dir`) and stopped after it.

Failing fast (Ray itself would wait): before `ray.init`, the cluster's address must accept a TCP
connection within `ray.connect_timeout_s` (against a dead address Ray retries for about 14
minutes); once connected, some live node must hold one task's CPUs and GPUs (`ray.nodes()`: an
infeasible task would wait forever); and one of the call's tasks must have started within
`ray.start_timeout_s` (a cluster whose CPUs another job holds), or the call stops and says what
the cluster holds and what is waiting. A task reports its start by yielding a first item: every
task is a streaming generator (`_run_task`, `_stream_task`), the public way for a driver to hear
from a running task.

The private instance listens on the loopback interface only (no other machine has any business
joining it) and authenticates with a per-process token. The token goes through Ray's documented
settings (`RAY_AUTH_TOKEN` in the environment, so Ray writes no token file into the user's home).
The loopback address has no public setting: on Linux a local `ray.init` advertises the host's
network address, and its `_node_ip_address` keyword (one of ray.init's "hidden / experimental"
options) does not change that for a local instance (Ray 2.60: tasks still ran on the host's
address). What does is Ray's switch for single-machine platforms, the environment variable
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` for the processes Ray spawns and, for this already imported
process, its constant `ray._private.ray_constants.ENABLE_RAY_CLUSTER`; `_private_instance_settings`
sets both for the instance's lifetime only and restores them after. The temp dir is ray.init's
`_temp_dir`, the keyword Ray's "Configuring Ray" guide names for it.

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
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
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

DEFAULT_PORT = 6379
"""The port of a cluster address given without one (Ray's default GCS port)."""


class ClusterUnreachable(ConnectionError):
    """Nothing answers at the cluster's address."""


class NoNodeFits(ValueError):
    """No live node of the cluster has the CPUs and GPUs one task asks for."""


class TasksNotStarted(TimeoutError):
    """None of the call's tasks started within `ray.start_timeout_s`."""


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
        source = "ray.address" if params.address else "$RAY_ADDRESS"
        check_reachable(address, params.connect_timeout_s, source)
        logger.info("Connecting to the Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, logging_level=logging.WARNING)
        try:
            yield
        finally:
            ray.shutdown()
        return
    temp_dir = str(Path(params.temp_dir).resolve()) if params.temp_dir else None
    with _private_instance_settings():
        logger.info("Starting a local Ray instance (%s CPUs, temp dir %s)",
                    params.local_num_cpus or "all", temp_dir or "Ray's default")
        ray.init(address="local", num_cpus=params.local_num_cpus, include_dashboard=False,
                 runtime_env=runtime_env, logging_level=logging.WARNING, _temp_dir=temp_dir)
        try:
            yield
        finally:
            ray.shutdown()


def check_reachable(address: str, timeout_s: float, source: str = "ray.address") -> None:
    """Refuse an address where no Ray cluster answers: a TCP connection to its host and port
    must open within `timeout_s` (`auto` is left to Ray, which finds a cluster of this machine or
    says it found none)."""
    if address == "auto":
        return
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except OSError as error:
        reason = "no answer" if isinstance(error, TimeoutError) else (error.strerror or str(error))
        raise ClusterUnreachable(
            f"no Ray cluster answers at {address} ({source}): a connection to {host}:{port} "
            f"failed within {timeout_s:g} s ({reason}). Start the cluster's head there (`ray "
            f"start --head --port={port}`), correct {source} (host:port of the head node), or "
            "leave ray.address null and unset $RAY_ADDRESS to run on a local Ray instance"
        ) from None


def _host_port(address: str) -> tuple[str, int]:
    """Host and port of `host:port`, `[v6]:port` or `ray://host:port` (Ray Client)."""
    rest = address.split("://", 1)[-1].rstrip("/")
    if rest.startswith("["):  # [IPv6]:port
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    elif rest.count(":") == 1:
        host, _, port = rest.partition(":")
    else:  # a bare host (or IPv6 address) without a port
        host, port = rest, ""
    if not port:
        return host, DEFAULT_PORT
    if not port.isdigit():
        raise ClusterUnreachable(f"{address!r} is not a Ray address: expected host:port, e.g. "
                                 f"10.0.0.5:{DEFAULT_PORT}")
    return host, int(port)


def _runtime_env(params: RayParams) -> dict[str, Any]:
    env: dict[str, Any] = {"env_vars": dict(OFFLINE_ENV)}
    if params.ship_code:
        # The workers run the driver's code; the committed checkpoint is shipped as a file if used.
        env["py_modules"] = [str(Path(mgral_pipelines.__file__).parent)]
        env["excludes"] = ["__pycache__", "*.pt"]
    return env


@contextmanager
def _private_instance_settings() -> Iterator[None]:
    """Loopback-only addresses and a per-process token for an instance nobody else joins (why
    these settings: the module docstring)."""
    saved_env = {key: os.environ.get(key) for key in (
        ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    saved_cluster = ray_constants.ENABLE_RAY_CLUSTER
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


def check_some_node_fits(params: RayParams) -> None:
    """Refuse tasks that no live node could ever run: Ray would keep them waiting forever.

    A cluster that adds nodes on demand must keep one node of the tasks' shape running."""
    asked = _asked(params)
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if any(all(node["Resources"].get(name, 0) >= amount for name, amount in asked.items())
           for node in nodes):
        return
    held = "; ".join(f"{node['NodeManagerAddress']}: {_describe(node['Resources'])}"
                     for node in nodes) or "no live node"
    raise NoNodeFits(
        f"each Ray task asks for {_describe(asked)} (ray.num_cpus, ray.num_gpus) but no node of "
        f"the cluster has that much ({held}); lower ray.num_cpus / ray.num_gpus, or run on a "
        "cluster with such a node (ray.address; for the local instance, ray.local_num_cpus)")


def _asked(params: RayParams) -> dict[str, float]:
    asked = {"CPU": params.num_cpus, "GPU": params.num_gpus}
    return {name: amount for name, amount in asked.items() if amount > 0}


def _describe(resources: dict[str, float]) -> str:
    return ", ".join(f"{resources.get(name, 0):g} {name}" for name in ("CPU", "GPU"))


def _not_started_error(params: RayParams, waiting: int, desc: str) -> TasksNotStarted:
    """What the cluster holds and what is waiting, when no task started in time."""
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    total, free = ray.cluster_resources(), ray.available_resources()
    holds = ", ".join(f"{free.get(name, 0):g} of {total.get(name, 0):g} {name} free"
                      for name in ("CPU", "GPU"))
    return TasksNotStarted(
        f"no Ray task of '{desc}' started within {params.start_timeout_s:g} s "
        f"(ray.start_timeout_s). Waiting: {waiting} task(s), each asking for "
        f"{_describe(_asked(params))}. The cluster holds {len(nodes)} live node(s) with {holds}: "
        "other jobs may hold its CPUs or GPUs (`ray status` on the head node shows them). The "
        "waiting tasks were cancelled; run again when the cluster has room, lower ray.num_cpus / "
        "ray.num_gpus, or raise ray.start_timeout_s")


# --------------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------------


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], params: RayParams, *, desc: str,
              files: Iterable[str] = (),
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """One Ray task per job; results in job order, each handed to `on_result(index, result)` as
    it arrives. The first failure cancels the others."""
    results: list[Any] = [None] * len(jobs)
    with (connect(params), tqdm(total=len(jobs), desc=desc, unit="task") as progress,
          closing(_submit(_run_task, fn, jobs, params, desc, files)) as arrived):
        for position, result in arrived:
            results[position] = result
            if on_result is not None:
                on_result(position, result)
            progress.update(1)
    return results


def stream_tasks(fn: Callable[[Any], Iterator[Any]], jobs: Sequence[Any], params: RayParams, *,
                 desc: str, files: Iterable[str] = ()) -> Iterator[tuple[int, Any]]:
    """One streaming generator task per job; `(job index, item)` as items arrive."""
    with connect(params):
        yield from _submit(_stream_task, fn, jobs, params, desc, files)


def _submit(task: Callable[..., Iterator[Any]], fn: Callable[[Any], Any], jobs: Sequence[Any],
            params: RayParams, desc: str, paths: Iterable[str]) -> Iterator[tuple[int, Any]]:
    """Start one `task` per job; `(job index, item)` for every item after its start marker.

    Until one task has started, the wait is bounded by `ray.start_timeout_s`. Leaving the
    generator early (a failure here or in the caller) cancels the tasks still running."""
    check_some_node_fits(params)
    shipped = _ship(paths, params)
    remote = ray.remote(num_cpus=params.num_cpus, num_gpus=params.num_gpus,
                        max_retries=params.max_retries, retry_exceptions=False,
                        num_returns="streaming")(task)
    generators = [remote.options(name=_task_name(desc, i)).remote(fn, job, shipped,
                                                                   _threads(params))
                  for i, job in enumerate(jobs)]
    pending = list(range(len(generators)))
    started: set[int] = set()
    deadline = time.monotonic() + params.start_timeout_s
    try:
        while pending:
            timeout = None if started else max(0.0, deadline - time.monotonic())
            ready, _ = ray.wait([generators[i] for i in pending], num_returns=1, timeout=timeout)
            if not ready:
                raise _not_started_error(params, len(pending), desc)
            index = next(i for i in pending if generators[i] is ready[0])
            try:
                ref = next(generators[index])
            except StopIteration:
                pending.remove(index)
                continue
            item = _get(ref, _task_name(desc, index))
            if index in started:
                yield index, item
            else:
                started.add(index)  # its first item is the start marker
    finally:
        _cancel([generators[i] for i in pending])


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

_STARTED = "started"
"""The first item of every task: it tells the driver the task is running."""


def _run_task(fn: Callable[[Any], Any], job: Any, shipped: Any, threads: int) -> Iterator[Any]:
    yield _STARTED
    _set_threads(threads)
    with files.task_context(_localise(shipped)):
        yield fn(job)


def _stream_task(fn: Callable[[Any], Iterator[Any]], job: Any, shipped: Any,
                 threads: int) -> Iterator[Any]:
    yield _STARTED
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
