"""The benchmark's runner: strategies × seeds × cycles through the al_cycle node functions.

For each seed the split is drawn once (`al_state.split_ids`) and every strategy starts from it and
from the same base detector (`detector.weights`). Each (strategy, seed) then runs `cycles` AL
cycles with the very node functions of `al_cycle`, and a last detector is trained and evaluated on
the final labelled set, so a curve has `cycles + 1` points. Cycle 0 is the same for every strategy
of a seed, so its detector is trained once per seed and shared.

Each finished cycle is saved as a small record, `<records_dir>/<strategy>/seed_<s>/cycle_<t>.json`
(atomic write; see `records.py`); a re-run replays what is saved and continues from there, and
refuses records made by other code or settings (`provenance.py`).

Each (strategy, seed) curve is one job of `execution.stream_tasks`: with `executor: local` the
curves run one after another in this process (a seed's cycle-0 detector is trained once and
shared); with `executor: ray` every curve is a Ray task that streams its cycles back as they
finish (each task trains its own cycle-0 detector, the same for the same seed and settings). Only
this process writes the resume points and MLflow child runs.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from tqdm.auto import tqdm

from mgral_pipelines import al_state, benchmark_tracking, execution
from mgral_pipelines.config import DatasetParams
from mgral_pipelines.mgral.features import OBJECT_CONFIDENCE
from mgral_pipelines.pipelines.agent.nodes import train_agent
from mgral_pipelines.pipelines.al_cycle.nodes import annotate_from_oracle, update_state
from mgral_pipelines.pipelines.benchmark import data_sets, provenance, records
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams
from mgral_pipelines.pipelines.common import cycle_key
from mgral_pipelines.pipelines.detector.nodes import evaluate_detector, train_detector
from mgral_pipelines.pipelines.embedding.nodes import (
    embed_images,
    predict_pool,
    reduce_embeddings,
)
from mgral_pipelines.pipelines.lut.nodes import build_lut
from mgral_pipelines.pipelines.prepare.nodes import evaluation_labels, initial_state
from mgral_pipelines.pipelines.query.nodes import select_query
from mgral_pipelines.strategies import get_strategy, policy_reward

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Adapter to the al_cycle nodes: they take Kedro partitions {f"cycle_{t}": loader}
# --------------------------------------------------------------------------------------------------


def _partitions(values: dict[str, Any]) -> dict[str, Callable[[], Any]]:
    return {key: (lambda value=value: value) for key, value in values.items()}


@dataclass(frozen=True)
class _SeedData:
    """What is fixed per seed: the dataset, its split, V/T labels and the initial state."""

    seed: int
    image_index: dict[str, Any]
    oracle: dict[str, Any]
    eval_labels: dict[str, Any]
    initial_state: dict[str, Any]


def seed_data(
    image_index: dict[str, Any], oracle: dict[str, Any], dataset: dict[str, Any], seed: int
) -> _SeedData:
    """The split of `seed` with the sizes of `dataset.splits`, as `prepare` would make it."""
    sizes = DatasetParams(**dataset).splits
    ids = [record["image_id"] for record in image_index["images"]]
    splits = {**al_state.split_ids(ids, sizes.val, sizes.test, sizes.initial, seed), "seed": seed}
    return _SeedData(seed, image_index, oracle, evaluation_labels(oracle, splits),
                     initial_state(image_index, splits, oracle))


def _time(timings: dict[str, float], step: str, call: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = call()
    timings[step] = time.perf_counter() - started
    return result


class _Detector:
    """D_t for one state and what strategies read from it; each step runs on first use, timed."""

    def __init__(self, state: dict[str, Any], data: _SeedData, detector: dict[str, Any],
                 embedding: dict[str, Any], al: dict[str, Any]) -> None:
        self.state, self.data, self.detector, self.embedding, self.al = (
            state, data, detector, embedding, al)
        self.timings: dict[str, float] = {}

    @functools.cached_property
    def checkpoints(self) -> dict[str, Callable[[], bytes]]:
        trained, _ = _time(self.timings, "train_detector", lambda: train_detector(
            self.state, self.data.image_index, self.data.eval_labels, self.detector))
        return _partitions(trained)

    @functools.cached_property
    def report(self) -> dict[str, Any]:
        reports = _time(self.timings, "evaluate_detector", lambda: evaluate_detector(
            self.checkpoints, self.state, self.data.image_index, self.data.eval_labels,
            self.detector))
        return reports[cycle_key(self.state)]

    @functools.cached_property
    def embeddings(self) -> dict[str, Callable[[], Any]]:
        def embed() -> dict[str, Any]:
            raw, _ = embed_images(self.checkpoints, self.state, self.data.image_index,
                                  self.detector, self.embedding)
            return reduce_embeddings(_partitions(raw), self.state, self.embedding)[0]
        return _partitions(_time(self.timings, "embedding", embed))

    @functools.cached_property
    def pool_detections(self) -> dict[str, Callable[[], Any]]:
        return _partitions(_time(self.timings, "predict_pool", lambda: predict_pool(
            self.checkpoints, self.state, self.data.image_index, self.detector, self.al)))


@dataclass(frozen=True)
class _Run:
    """One (strategy, seed): its folder and the parameters its al_cycle nodes get."""

    strategy: str
    seed: int
    folder: Path
    detector: dict[str, Any]
    al: dict[str, Any]
    lut: dict[str, Any]
    agent: dict[str, Any]
    needs: frozenset[str]
    reward: str | None
    """What the strategy's policy is trained on (`lut`, `rare_detections`), None without one."""
    settings: str
    """Digest of what a saved cycle depends on; a saved cycle with another one is refused."""
    code_version: str
    """`provenance.code_version` of the strategy: the code its cycles run through."""

    @property
    def name(self) -> str:
        return f"{self.strategy}/seed_{self.seed}"


# `al` keys that say who labels a query and how; they do not change what a strategy selects.
ANNOTATION_KEYS = frozenset({"annotator", "accept_partial", "prelabel_conf", "label_studio",
                             "files"})


def _scratch(detector: dict[str, Any], name: str, seed: int) -> str:
    """Ultralytics' scratch folder of one run: <detector.run_dir>/benchmark/<name>/seed_<s>."""
    return str(Path(detector["run_dir"]) / "benchmark" / name / f"seed_{seed}")


def _make_run(strategy: str, data: _SeedData, params: BenchmarkParams, detector: dict[str, Any],
              embedding: dict[str, Any], lut: dict[str, Any], agent: dict[str, Any],
              al: dict[str, Any]) -> _Run:
    seed = data.seed
    options = params.strategy_options.get(strategy, {})
    run_al = {**al, "strategy": strategy, "budget": params.budget, "seed": seed,
              "from_cycle": None, "strategy_options": options,
              "annotator": "oracle"}  # a simulation: never people, whatever al.annotator says
    run_detector = {**detector, "seed": seed, "run_dir": _scratch(detector, strategy, seed)}
    run_lut = {**lut, "seed": seed}
    run_agent = {**agent, "policy": {**agent.get("policy", {}), "seed": seed}}
    needs = get_strategy(strategy, **options).needs
    reward = policy_reward(strategy)
    # What a saved cycle depends on; cycles, seeds and the strategy list may change between runs,
    # and so may who labels a query (the benchmark's annotator is always the oracle). The
    # evaluation fingerprint (classes, V and T with their labels) tells generated data sets apart.
    selection_al = {k: v for k, v in run_al.items() if k not in ANNOTATION_KEYS}
    settings = {"dataset": data.initial_state["dataset"],
                "evaluation": data.initial_state.get("evaluation"), "al": selection_al,
                "detector": {k: v for k, v in run_detector.items() if k != "run_dir"}}
    if needs & {"embeddings", "policy"}:
        settings["embedding"] = embedding
    if reward == "lut":
        # Where the variants train does not change them: moving to Ray keeps the resume points.
        settings["lut"] = {k: v for k, v in run_lut.items() if k not in ("executor", "ray")}
    if reward is not None:
        settings["agent"] = run_agent
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()
    return _Run(strategy, seed, params.records_folder() / strategy / f"seed_{seed}",
                run_detector, run_al, run_lut, run_agent, needs, reward, digest[:16],
                provenance.code_version(strategy))


# --------------------------------------------------------------------------------------------------
# One cycle, and resuming from saved cycles
# --------------------------------------------------------------------------------------------------


def _run_cycle(state: dict[str, Any], run: _Run, data: _SeedData, detector: _Detector,
               final: bool) -> dict[str, Any]:
    """Train and evaluate D_t; unless `final`, query B images, annotate them and advance.

    `wall_time_s` sums the steps this strategy used, so a shared cycle-0 detector counts for every
    strategy as if each had trained it.
    """
    report = detector.report
    used = ["train_detector", "evaluate_detector"]
    timings: dict[str, float] = {}
    query, next_state, query_seconds = None, None, None
    diagnostics: dict[str, float] = {}
    if not final:
        embeddings: dict[str, Any] = {}
        if run.needs & {"embeddings", "policy"}:
            embeddings = detector.embeddings
            used.append("embedding")
        policies: dict[str, Any] = {}
        tables, lut_metrics = {}, {}
        if run.reward == "lut":  # only MGRAL's policy is trained on the LUT
            tables, lut_metrics = _time(timings, "lut", lambda: build_lut(
                state, data.image_index, data.eval_labels, detector.checkpoints, embeddings,
                detector.pool_detections, run.detector, run.lut, run.agent, run.al))
        if run.reward is not None:
            policies, agent_metrics, figure = _time(timings, "agent", lambda: train_agent(
                _partitions(tables), embeddings, detector.pool_detections, state,
                data.image_index, run.agent, run.al))
            plt.close(figure)
            # The cycle's own checks (LUT fidelity, the query's LUT reward against random
            # batches): one value each; the agent's per-update curves stay in its own runs.
            diagnostics = {key: float(value["value"])
                           for key, value in {**lut_metrics, **agent_metrics}.items()
                           if isinstance(value, dict)}
        queries, metrics = _time(timings, "select_query", lambda: select_query(
            state, data.image_index, embeddings, detector.pool_detections, _partitions(policies),
            run.al))
        used.append("predict_pool")
        new_labels, next_state = _time(timings, "annotate", lambda: _annotate(
            state, _partitions(queries), data.oracle, run.al))
        frame = queries[cycle_key(state)]
        ids = frame["image_id"].astype(str).tolist()
        detections = detector.pool_detections[cycle_key(state)]()
        classes = data.image_index["classes"]
        query = {
            "image_ids": ids,
            "scores": [float(s) for s in frame["score"]],
            "predicted_classes": [classes[d["class_id"]] for i in ids for d in detections.get(i, [])
                                  if d["score"] >= OBJECT_CONFIDENCE],
            "true_classes": [classes[box["class_id"]] for i in ids for box in new_labels[i]],
            "boxes": sum(len(new_labels[i]) for i in ids),
            "empty_images": sum(not new_labels[i] for i in ids),
        }
        query_seconds = float(metrics["query/seconds"]["value"])
    timings = {**{step: detector.timings[step] for step in used}, **timings}
    return {
        "strategy": run.strategy, "seed": run.seed, "cycle": state["cycle"],
        "n_labelled": len(state["labelled_ids"]), "n_boxes": records.labelled_boxes(state),
        "labelled_ids": list(state["labelled_ids"]),
        "metrics": report, "query": query, "query_seconds": query_seconds,
        "timings_s": timings, "wall_time_s": sum(timings.values()), "diagnostics": diagnostics,
        "settings": run.settings, "code_version": run.code_version, "next_state": next_state,
    }


def _annotate(state: dict[str, Any], queries: dict[str, Any], oracle: dict[str, Any],
              al: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    new_labels = annotate_from_oracle(queries, state, oracle)
    return new_labels, update_state(state, queries, new_labels, al)


def load_finished_cycles(run: _Run, params: BenchmarkParams) -> list[dict[str, Any]]:
    """The saved cycles 0, 1, ... of `run` that this benchmark can continue from."""
    return records.load_records(run.folder, params.records_folder(), run.strategy,
                                (run.code_version, run.settings), params.cycles,
                                rerun_command="kedro run --pipeline=benchmark with its --env")


@dataclass(frozen=True)
class _CurveJob:
    """One (strategy, seed) curve, continued after its saved cycles `done`."""

    run: _Run
    data: _SeedData
    first: _Detector
    params: BenchmarkParams
    done: list[dict[str, Any]]


def _curve(job: _CurveJob) -> Iterator[dict[str, Any]]:
    """The curve's remaining cycles, one record each (no I/O besides ultralytics' scratch)."""
    run, data, first = _on_this_node(job)
    params = job.params
    detector_for = functools.partial(_Detector, data=data, detector=run.detector,
                                     embedding=first.embedding, al=run.al)
    state = records.replay(data.initial_state, job.done, data.oracle, run.strategy)
    for t in range(len(job.done), params.cycles + 1):
        detector = first if t == 0 else detector_for(state)
        record = _run_cycle(state, run, data, detector, t == params.cycles)
        if not params.keep_scratch:
            shutil.rmtree(Path(run.detector["run_dir"]) / f"cycle_{t}", ignore_errors=True)
        yield record
        state = record["next_state"]


def _on_this_node(job: _CurveJob) -> tuple[_Run, _SeedData, _Detector]:
    """In a Ray task: node-local images and checkpoint, a task-private scratch folder."""
    if not execution.in_ray_task():
        return job.run, job.data, job.first
    images = [{**r, "file": execution.local_file(r["file"])}
              for r in job.data.image_index["images"]]
    data = dataclasses.replace(job.data, image_index={**job.data.image_index, "images": images})

    def local(detector: dict[str, Any]) -> dict[str, Any]:
        moved = {**detector, "run_dir": str(execution.scratch_dir(detector["run_dir"]))}
        if detector.get("weights"):
            moved["weights"] = execution.local_file(detector["weights"])
        return moved

    first = job.first
    return (dataclasses.replace(job.run, detector=local(job.run.detector)), data,
            _Detector(first.state, data, local(first.detector), first.embedding, first.al))


def _shipped_files(image_index: dict[str, Any], detector: dict[str, Any]) -> list[str]:
    weights = [detector["weights"]] if detector.get("weights") else []
    return [r["file"] for r in image_index["images"]] + weights


def _save(run: _Run, record: dict[str, Any], tracker: benchmark_tracking.ChildRun,
          cycles: int) -> dict[str, Any]:
    """Write the cycle's record and log it; returns the record as saved."""
    # The commit is read here, in the driver: a Ray task's node may hold no git checkout.
    saved = {**{k: v for k, v in record.items() if k != "next_state"},
             "git_commit": provenance.git_commit()}
    records.save_record(run.folder, saved)
    tracker.log_cycle(record)
    test = record["metrics"]["test"]
    logger.info(
        "Benchmark %s cycle %d/%d: %d labelled, test mAP50-95=%.4f mAP50=%.4f (%.0f s)",
        run.name, record["cycle"], cycles, record["n_labelled"], test["map50_95"], test["map50"],
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
        runs = [_make_run(s, data, params, detector, embedding, lut, agent, al)
                for s in params.strategies_of_seed(seed)]
        # D_0 (and its embeddings and pool predictions) is the same for every strategy.
        shared = {**runs[0].detector, "run_dir": _scratch(detector, "shared", seed)}
        first = _Detector(data.initial_state, data, shared, embedding, runs[0].al)
        jobs += [_CurveJob(run, data, first, params, load_finished_cycles(run, params))
                 for run in runs]
    results = [record for job in jobs for record in job.done]
    units = len(jobs) * (params.cycles + 1)
    with tqdm(total=units, desc="benchmark", unit="cycle") as progress, ExitStack() as stack:
        trackers = [stack.enter_context(benchmark_tracking.child_run(job.run.strategy,
                                                                     job.run.seed))
                    for job in jobs]
        for job, tracker in zip(jobs, trackers):
            if job.done:
                logger.info("Benchmark %s: cycles 0-%d already done, resuming", job.run.name,
                            len(job.done) - 1)
            for record in job.done:
                tracker.log_cycle(record)
        progress.update(len(results))
        todo = [i for i, job in enumerate(jobs) if len(job.done) <= params.cycles]
        for index, record in execution.stream_tasks(
                _curve, [jobs[i] for i in todo], execution.executor_from(params),
                desc="benchmark curves", files=_shipped_files(image_index, detector)):
            index = todo[index]
            results.append(_save(jobs[index].run, record, trackers[index], params.cycles))
            progress.update(1)
    if not params.keep_scratch:
        for job in jobs:
            shutil.rmtree(job.first.detector["run_dir"], ignore_errors=True)
    order = {name: i for i, name in enumerate(params.strategies)}
    results.sort(key=lambda r: (order[r["strategy"]], r["seed"], r["cycle"]))
    return results
