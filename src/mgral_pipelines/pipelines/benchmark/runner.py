"""The benchmark's runner: strategies × seeds × cycles, each cycle through the al_cycle pipeline.

For each seed the split is drawn once (`curves.seed_data`) and every strategy starts from it and
from the same base detector (`detector.weights`). Each (strategy, seed) curve then runs `cycles`
AL cycles through the al_cycle pipeline's own nodes (`al_cycle.cycle.Cycle`), and a last detector
is trained and evaluated on the final labelled set, so a curve has `cycles + 1` points. Cycle 0 is
the same for every strategy of a seed, so its detector is trained once per seed and shared.

Each finished cycle is saved as a small record, `<records_dir>/<strategy>/seed_<s>/cycle_<t>.json`
(atomic write; see `records.py`); a re-run replays what is saved and continues from there, and
refuses records made by other code or settings (`provenance.py`).

Each curve is one job of `execution.stream_tasks`: with `executor: local` the curves run one after
another in this process; with `executor: ray` every curve is a Ray task that streams its cycles
back as they finish (`shipping.py`). Only this process writes the resume points and MLflow child
runs.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from mgral_pipelines import benchmark_tracking, execution
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.pipelines.al_cycle.cycle import Cycle
from mgral_pipelines.pipelines.benchmark import data_sets, provenance, records
from mgral_pipelines.pipelines.benchmark.curves import (
    Curve,
    SeedData,
    make_curve,
    run_cycle,
    scratch,
    seed_data,
)
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams
from mgral_pipelines.pipelines.benchmark.shipping import on_this_node, shipped_files

logger = logging.getLogger(__name__)


def load_finished_cycles(curve: Curve, params: BenchmarkParams) -> list[dict[str, Any]]:
    """The saved cycles 0, 1, ... of `curve` that this benchmark can continue from."""
    return records.load_records(curve.folder, params.records_folder(), curve.strategy,
                                (curve.code_version, curve.settings), params.cycles,
                                rerun_command="kedro run --pipeline=benchmark with its --env")


@dataclass(frozen=True)
class _CurveJob:
    """One curve, continued after its saved cycles `done`; `first` is its seed's shared D_0."""

    curve: Curve
    data: SeedData
    first: Cycle
    params: BenchmarkParams
    done: list[dict[str, Any]]


def _remaining_cycles(job: _CurveJob) -> Iterator[dict[str, Any]]:
    """The curve's remaining cycles, one record each (no I/O besides ultralytics' scratch)."""
    curve, data, first = on_this_node(job.curve, job.data, job.first)
    params = job.params
    state = records.replay(data.initial_state, job.done, data.oracle, curve.strategy)
    for t in range(len(job.done), params.cycles + 1):
        cycle = curve.cycle(state, data, shared=first if t == 0 else None)
        record = run_cycle(cycle, curve, t == params.cycles)
        if not params.keep_scratch:
            shutil.rmtree(Path(curve.params["detector"]["run_dir"]) / f"cycle_{t}",
                          ignore_errors=True)
        yield record
        state = record["next_state"]


def _save(curve: Curve, record: dict[str, Any], tracker: benchmark_tracking.ChildRun,
          cycles: int) -> dict[str, Any]:
    """Write the cycle's record and log it; returns the record as saved."""
    # The commit is read here, in the driver: a Ray task's node may hold no git checkout.
    saved = {**{k: v for k, v in record.items() if k != "next_state"},
             "git_commit": provenance.git_commit()}
    records.save_record(curve.folder, saved)
    tracker.log_cycle(record)
    test = record["metrics"]["test"]
    logger.info(
        "Benchmark %s cycle %d/%d: %d labelled, test mAP50-95=%.4f mAP50=%.4f (%.0f s)",
        curve.name, record["cycle"], cycles, record["n_labelled"], test["map50_95"], test["map50"],
        record["wall_time_s"])
    return saved


def _check_pool(image_index: dict[str, Any], dataset: dict[str, Any],
                params: BenchmarkParams) -> None:
    unlabelled = image_index.get("unlabelled_ids", [])
    if unlabelled or DatasetParams(**dataset).assign.paths():
        raise ValueError(
            "the benchmark draws V, T and L_0 by seed from dataset.splits and labels its queries "
            f"with the oracle, so it needs labelled data only ({len(unlabelled)} images of "
            "dataset.unlabelled have no labels; dataset.assign is not used): prepare such a "
            "dataset, or give the benchmark its own environment"
        )
    sizes = DatasetParams(**dataset).splits
    pool = len(image_index["images"]) - sizes.val - sizes.test - sizes.initial
    if params.cycles * params.budget > pool:
        raise ValueError(
            f"benchmark needs cycles × budget = {params.cycles} × {params.budget} pool images, "
            f"but the pool has {pool} (dataset.splits leaves {pool} of "
            f"{len(image_index['images'])} images)"
        )


def run_benchmark(
    image_index: dict[str, Any], oracle: dict[str, Any], benchmark: dict[str, Any],
    dataset: dict[str, Any], detector: dict[str, Any], embedding: dict[str, Any],
    lut: dict[str, Any], agent: dict[str, Any], al: dict[str, Any],
) -> list[dict[str, Any]]:
    """Every (strategy, seed, cycle) of this run, as its record (`records.py`)."""
    params = BenchmarkParams(**benchmark)
    _check_pool(image_index, dataset, params)
    data_sets.check_prepared(image_index, params)
    jobs = []
    for seed in params.run_seeds():
        data = seed_data(image_index, oracle, dataset, seed)
        curves = [make_curve(s, data, params, detector, embedding, lut, agent, al)
                  for s in params.strategies_of_seed(seed)]
        # D_0 (and its embeddings and pool predictions) is the same for every strategy.
        shared = {**curves[0].params["detector"], "run_dir": scratch(detector, "shared", seed)}
        first = Cycle({"state": data.initial_state, "image_index": data.image_index,
                       "eval_labels": data.eval_labels},
                      {**curves[0].params, "detector": shared})
        jobs += [_CurveJob(curve, data, first, params, load_finished_cycles(curve, params))
                 for curve in curves]
    results = [record for job in jobs for record in job.done]
    units = len(jobs) * (params.cycles + 1)
    with tqdm(total=units, desc="benchmark", unit="cycle") as progress, ExitStack() as stack:
        trackers = [stack.enter_context(benchmark_tracking.child_run(job.curve.strategy,
                                                                     job.curve.seed))
                    for job in jobs]
        for job, tracker in zip(jobs, trackers):
            if job.done:
                logger.info("Benchmark %s: cycles 0-%d already done, resuming", job.curve.name,
                            len(job.done) - 1)
            for record in job.done:
                tracker.log_cycle(record)
        progress.update(len(results))
        todo = [i for i, job in enumerate(jobs) if len(job.done) <= params.cycles]
        for index, record in execution.stream_tasks(
                _remaining_cycles, [jobs[i] for i in todo], execution.executor_from(params),
                desc="benchmark curves", files=shipped_files(image_index, detector)):
            index = todo[index]
            results.append(_save(jobs[index].curve, record, trackers[index], params.cycles))
            progress.update(1)
    if not params.keep_scratch:
        for job in jobs:
            shutil.rmtree(job.first.params["detector"]["run_dir"], ignore_errors=True)
    order = {name: i for i, name in enumerate(params.strategies)}
    results.sort(key=lambda r: (order[r["strategy"]], r["seed"], r["cycle"]))
    return results
