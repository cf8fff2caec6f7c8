"""The AL curve of one run of cycles and its summary numbers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

CURVE_COLUMNS = ["cycle", "n_labelled", "test_map50_95", "test_map50", "test_voc07_map50",
                 "val_map50_95", "val_map50"]


def al_curve(reports: dict[str, Callable[[], dict[str, Any]]]) -> pd.DataFrame:
    """One row per cycle with a detector report (`data/08_reporting/detector/cycle_<t>.json`)."""
    if not reports:
        raise ValueError("no detector report found: run `kedro run --pipeline=detector` first")
    rows = []
    for load in reports.values():
        report = load()
        test, val = report["test"], report["val"]
        rows.append([report["cycle"], report["n_labelled"], test["map50_95"], test["map50"],
                     test.get("voc07_map50", np.nan), val["map50_95"], val["map50"]])
    curve = pd.DataFrame(rows, columns=CURVE_COLUMNS).sort_values("cycle", ignore_index=True)
    logger.info("AL curve of %d cycles: test mAP50-95 %s", len(curve),
                ", ".join(f"{v:.3f}" for v in curve["test_map50_95"]))
    return curve


def al_summary(curve: pd.DataFrame) -> dict[str, float | int]:
    """The last point, and the area under the test mAP50-95 curve over labelled images divided by
    their range (the benchmark's AUC; the single value when there is one cycle)."""
    x = curve["n_labelled"].to_numpy(dtype=float)
    y = curve["test_map50_95"].to_numpy(dtype=float)
    area = float(np.trapezoid(y, x) / (x[-1] - x[0])) if len(curve) > 1 else float(y[0])
    last = curve.iloc[-1]
    return {
        "cycles": len(curve),
        "n_labelled": int(last["n_labelled"]),
        "test_map50_95": float(last["test_map50_95"]),
        "test_map50": float(last["test_map50"]),
        "test_voc07_map50": float(last["test_voc07_map50"]),
        "auc_test_map50_95": area,
    }
