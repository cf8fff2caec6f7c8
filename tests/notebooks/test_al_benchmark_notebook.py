"""The analysis notebook runs top to bottom on benchmark outputs (its code cells, in order)."""

import json
import os
from pathlib import Path

import matplotlib
import pandas as pd

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "al_benchmark.ipynb"


def run_notebook(benchmark_dir: Path) -> dict:
    """Execute the notebook's code cells in order on `benchmark_dir`; returns their namespace."""
    matplotlib.use("Agg")
    namespace: dict = {}
    os.environ["BENCHMARK_DIR"] = str(benchmark_dir)
    try:
        for cell in json.loads(NOTEBOOK.read_text())["cells"]:
            if cell["cell_type"] == "code":
                exec("".join(cell["source"]), namespace)  # noqa: S102 - our own notebook
    finally:
        del os.environ["BENCHMARK_DIR"]
    return namespace


def test_notebook_runs_on_benchmark_outputs(tmp_path):
    rows = [(s, seed, c, 100 + 50 * c, 0.5 + 0.02 * c + 0.01 * (s == "mgral"), 0.8)
            for s in ("random", "mgral") for seed in (0, 1) for c in range(3)]
    pd.DataFrame(rows, columns=["strategy", "seed", "cycle", "n_labelled", "mAP50-95", "mAP50"]
                 ).to_csv(tmp_path / "al_curve.csv", index=False)
    pd.DataFrame([
        {"strategy": s, "auc_map50_95_mean": 0.5, "auc_map50_95_std": 0.01,
         "auc_gain_vs_random_mean": 0.0, "auc_gain_vs_random_std": 0.0,
         "labels_to_reach_random_final": 200.0, "reached_random_final": "2/2",
         "queried_classes": json.dumps({"digit_0": 10, "digit_5": 2}),
         "queried_class_entropy_nats": 0.45, "wall_time_s": 10.0} for s in ("random", "mgral")
    ]).to_csv(tmp_path / "summary.csv", index=False)
    namespace = run_notebook(tmp_path)
    assert list(namespace["counts"].index) == ["random", "mgral"]
    assert namespace["shares"].sum(axis=1).round(6).tolist() == [1.0, 1.0]
