"""Pool the reward yardstick's Spearman ρs over independent runs (other splits, other D_0).

    python benchmarks/pool_yardsticks.py docs/results/reward_fidelity/split0_l20_uniform.csv \
        docs/results/reward_fidelity/split1_l20_uniform.csv --out docs/results/reward_fidelity/pooled_l20_uniform.json

Each CSV holds one `bench_reward_fidelity.py` run's rows; its ρs are recomputed from them (the
same `correlations` as the run's own summary), then pooled by the weighted mean of Fisher's z
(weights n − 3, Fieller's variance 1.06 / Σ(n − 3)), which assumes the runs measure the same ρ
on independent batches. Printed as one column per run and one for the pool.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.bench_reward_fidelity import correlations  # noqa: E402


def pooled_interval(intervals: list[dict[str, float]]) -> dict[str, float]:
    """ρ and its 95% interval from the Fisher z of several independent samples."""
    weights = np.array([i["n"] - 3 for i in intervals], dtype=float)
    z = np.arctanh(np.clip([i["rho"] for i in intervals], -0.999999, 0.999999))
    mean = float((weights * z).sum() / weights.sum())
    half = 1.96 * np.sqrt(1.06 / weights.sum())
    return {"rho": float(np.tanh(mean)), "low": float(np.tanh(mean - half)),
            "high": float(np.tanh(mean + half)), "n": int(sum(i["n"] for i in intervals))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="bench_reward_fidelity.py CSVs")
    parser.add_argument("--out", type=Path, default=None, help="JSON to write the pool to")
    args = parser.parse_args()
    missing = [str(path) for path in args.runs if not path.is_file()]
    if missing:
        raise SystemExit(f"no such yardstick CSV: {', '.join(missing)}")
    per_run = {path.stem: correlations(pd.read_csv(path)) for path in args.runs}
    shared = [key for key, value in next(iter(per_run.values())).items()
              if isinstance(value, dict) and all(key in run for run in per_run.values())]
    pooled = {key: pooled_interval([run[key] for run in per_run.values()]) for key in shared}
    if args.out is not None:
        args.out.write_text(json.dumps({"runs": per_run, "pooled": pooled}, indent=1))
    table = pd.DataFrame({name: {key: run[key]["rho"] for key in shared}
                          for name, run in per_run.items()})
    table["pooled"] = [f"{p['rho']:+.2f} ({p['low']:+.2f} to {p['high']:+.2f}, n = {p['n']})"
                       for p in pooled.values()]
    with pd.option_context("display.float_format", "{:+.2f}".format, "display.width", 160):
        print(table.to_string())


if __name__ == "__main__":
    main()
