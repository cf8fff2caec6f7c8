"""Benchmark nodes: run strategies × seeds × cycles, then the AL curve, its plot and the summary.

The rooms: `params.py` validates `benchmark`, `data_sets.py` keeps development and evaluation data
apart, `runner.py` runs the curves, `curves.py` says what a curve is and makes one cycle's record,
`shipping.py` moves a curve to a Ray task, `records.py` keeps one record per cycle (the resume
points), `provenance.py` names the code a record was made by, `statistics.py` summarises each
strategy, `comparisons.py` holds the declared comparisons with their corrected verdicts per image
and per box, `plots.py` draws the curves.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mgral_pipelines.pipelines.benchmark.comparisons import compare
from mgral_pipelines.pipelines.benchmark.curves import seed_data
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams
from mgral_pipelines.pipelines.benchmark.plots import plot_al_curve
from mgral_pipelines.pipelines.benchmark.runner import run_benchmark
from mgral_pipelines.pipelines.benchmark.statistics import (
    labels_to_reach,
    normalised_auc,
    parent_run_metrics,
    summarise,
)

__all__ = ["CURVE_COLUMNS", "BenchmarkParams", "al_curve", "benchmark_metrics", "compare",
           "labels_to_reach", "normalised_auc", "plot_al_curve", "run_benchmark", "seed_data",
           "summarise"]

CURVE_COLUMNS = ["strategy", "seed", "cycle", "n_labelled", "n_boxes", "mAP50-95", "mAP50"]


def al_curve(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (strategy, seed, cycle): test mAP against labelled images and boxes."""
    rows = [(r["strategy"], r["seed"], r["cycle"], r["n_labelled"], r["n_boxes"],
             r["metrics"]["test"]["map50_95"], r["metrics"]["test"]["map50"]) for r in results]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def benchmark_metrics(summary: pd.DataFrame) -> dict[str, Any]:
    """The summary's AUC gains, intervals and labels-to-reach as metrics of the parent MLflow run."""
    return parent_run_metrics(summary)
