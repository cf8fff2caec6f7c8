"""MLflow child runs of the benchmark: one nested run per (strategy, seed).

kedro-mlflow opens the parent run of `kedro run --pipeline=benchmark` and logs its parameters and
artifacts from the catalog. A catalog dataset cannot open runs, so this module (the only place
besides kedro-mlflow that calls `mlflow`) adds a child per (strategy, seed) whose metrics
`benchmark/map50_95` and `benchmark/map50` are stepped by the number of labelled images: selecting
the children in the MLflow UI and comparing them draws the AL curves.

Without an active run (a node called directly, e.g. in tests) nothing is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildRun:
    """Logs one AL curve; `run_id` None means there is no parent run and nothing is logged."""

    run_id: str | None

    def log_cycle(self, record: dict[str, Any]) -> None:
        """The cycle's test mAP and labelled boxes at step = its number of labelled images."""
        if self.run_id is None:
            return
        test = record["metrics"]["test"]
        mlflow.log_metrics(
            {"benchmark/map50_95": float(test["map50_95"]),
             "benchmark/map50": float(test["map50"]),
             "benchmark/cycle": float(record["cycle"]),
             "benchmark/n_boxes": float(record["n_boxes"]),
             "benchmark/wall_time_s": float(record["wall_time_s"])},
            step=int(record["n_labelled"]), run_id=self.run_id,
        )


@contextmanager
def child_run(strategy: str, seed: int) -> Iterator[ChildRun]:
    """A nested run `<strategy>/seed_<seed>` under the active run; FAILED if the body raises.

    Created through the client, not made the active run: the curves of a benchmark on Ray
    finish in any order, so all their child runs are open at once.
    """
    parent = mlflow.active_run()
    if parent is None:
        logger.debug("No active MLflow run: %s/seed_%d is not tracked", strategy, seed)
        yield ChildRun(None)
        return
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id=parent.info.experiment_id, run_name=f"{strategy}/seed_{seed}",
        tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id, "strategy": strategy, "seed": str(seed),
              "benchmark_parent": parent.info.run_id},
    )
    status = "FAILED"
    try:
        yield ChildRun(run.info.run_id)
        status = "FINISHED"
    finally:
        client.set_terminated(run.info.run_id, status=status)
