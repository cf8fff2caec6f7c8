"""The local executor: jobs in this process, or in spawned processes on this machine."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

import torch
from tqdm.auto import tqdm


def run_tasks(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int,
              torch_threads: int | None, *, desc: str) -> list[Any]:
    """Every job in order, in `workers` spawned processes when > 1; results in job order."""
    call = partial(_with_threads, fn, torch_threads)
    if workers <= 1:
        return [call(job) for job in tqdm(jobs, desc=desc, unit="task")]
    # spawn: a forked torch/ultralytics process can deadlock on inherited thread pools.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(call, job) for job in jobs]
        return [future.result() for future in tqdm(futures, desc=desc, unit="task")]


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
