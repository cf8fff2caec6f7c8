"""Where independent jobs run: in this process, in local processes, or as Ray tasks on a cluster.

The costly parts of MGRAL are independent detector trainings (the LUT's variants, the benchmark's
curves). Their callers hand a top-level function and a list of picklable jobs to `run_tasks`
(results in job order) or, for generator functions, to `stream_tasks` (items as they arrive), with
an `Executor` saying where to run them:

- `local` (default): in this process, or in `workers` spawned processes (`run_tasks` only);
- `ray`: one Ray task per job, on the cluster at `ray.address` (or `$RAY_ADDRESS`), else on a
  local Ray instance that lives as long as the call. Each task declares `num_cpus` and
  (fractional) `num_gpus`, sets torch's thread count from its CPUs, and is re-run up to
  `max_retries` times when its worker or node dies. Files the jobs name (images, checkpoints)
  travel through Ray's object store, so the cluster needs no shared file system; inside a task,
  `local_file(path)` gives the node-local copy of a shipped file and `scratch_dir(path)` a
  task-private folder for what the driver would have written under `path`.

Only the caller (the driver) writes catalog outputs and talks to MLflow: tasks return values.
A task that fails for good (its own exception, or its worker dying more than `max_retries` times)
fails the call with that task's error after the results that arrived were handed over: to
`on_result` for `run_tasks` (so a caller can keep them, as the LUT does), as yielded items for
`stream_tasks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from mgral_pipelines.execution import local
from mgral_pipelines.execution.config import RayParams
from mgral_pipelines.execution.files import in_ray_task, local_file, scratch_dir

__all__ = ["Executor", "RayParams", "executor_from", "in_ray_task", "local_file", "run_tasks",
           "scratch_dir", "stream_tasks"]

Job = TypeVar("Job")
Result = TypeVar("Result")


@dataclass(frozen=True)
class Executor:
    """Where jobs run; built from a pipeline's `executor`, `workers`, `torch_threads` and `ray`."""

    kind: Literal["local", "ray"] = "local"
    workers: int = 1
    """local: > 1 runs `run_tasks` jobs in that many spawned processes."""
    torch_threads: int | None = None
    """local processes: torch threads per process (None: torch's default)."""
    ray: RayParams = field(default_factory=RayParams)

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', got {self.kind!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")


def run_tasks(fn: Callable[[Job], Result], jobs: Sequence[Job], executor: Executor, *,
              desc: str, files: Iterable[str] = (),
              on_result: Callable[[int, Result], None] | None = None) -> list[Result]:
    """`[fn(job) for job in jobs]`, run where `executor` says; `files` are shipped to Ray tasks.

    `on_result(index, result)` is called on the driver as each job finishes, before a later
    failure can end the call."""
    if not jobs:
        return []
    if executor.kind == "ray":
        from mgral_pipelines.execution import ray_tasks  # Ray is imported only when used
        return ray_tasks.run_tasks(fn, jobs, executor.ray, desc=desc, files=files,
                                   on_result=on_result)
    return local.run_tasks(fn, jobs, executor.workers, executor.torch_threads, desc=desc,
                           on_result=on_result)


def stream_tasks(fn: Callable[[Job], Iterator[Result]], jobs: Sequence[Job], executor: Executor,
                 *, desc: str, files: Iterable[str] = ()) -> Iterator[tuple[int, Result]]:
    """`(job index, item)` for every item of every `fn(job)` generator, as soon as it exists.

    Local: the jobs run one after another in this process (so they may share in-memory state).
    Ray: all jobs run at once as streaming generator tasks; items come in the order they finish.
    A failing job stops the stream with its error; the items already yielded stay yielded.
    """
    if not jobs:
        return iter(())
    if executor.kind == "ray":
        from mgral_pipelines.execution import ray_tasks
        return ray_tasks.stream_tasks(fn, jobs, executor.ray, desc=desc, files=files)
    return local.stream_tasks(fn, jobs)


def executor_from(params: Any) -> Executor:
    """The Executor of a validated parameter model with `executor`, `ray` and maybe `workers`."""
    return Executor(kind=params.executor, workers=getattr(params, "workers", 1),
                    torch_threads=getattr(params, "torch_threads", None), ray=params.ray)
