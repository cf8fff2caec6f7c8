"""The local executor: jobs in this process, or in spawned processes on this machine."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from typing import Any

import torch
from tqdm.auto import tqdm


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
              torch_threads: int | None, *, desc: str,
              on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
    """Every job, in `workers` spawned processes when > 1; results in job order, each handed to
    `on_result(index, result)` as it arrives. The first failure cancels the jobs not started."""
    call = partial(_with_threads, fn, torch_threads)
    results: list[Any] = [None] * len(jobs)

    def arrived(index: int, result: Any) -> None:
        results[index] = result
        if on_result is not None:
            on_result(index, result)

    if workers <= 1:
        for index, job in enumerate(tqdm(jobs, desc=desc, unit="task")):
            arrived(index, call(job))
        return results
    # spawn: a forked torch/ultralytics process can deadlock on inherited thread pools.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(call, job): index for index, job in enumerate(jobs)}
        try:
            for future in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="task"):
                arrived(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results


def stream_tasks(fn: Callable[[Any], Iterator[Any]],
                 jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
    """The jobs' generators one after another, in this process."""
    for index, job in enumerate(jobs):
        for item in fn(job):
            yield index, item


def _with_threads(fn: Callable[[Any], Any], threads: int | None, job: Any) -> Any:
    if not threads:
        return fn(job)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(job)
    finally:
        torch.set_num_threads(previous)
