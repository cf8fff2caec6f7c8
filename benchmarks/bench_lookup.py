"""Time one LUT reward: the agent's `Estimator` for a batch against K entries of n x d embeddings
(and their images' detected-object counts).

This is the cost that replaces training and evaluating one detector variant per reward.

    python benchmarks/bench_lookup.py --entries 16 --batch-size 8 --dim 64 --out lookup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

try:
    from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=16, help="K, number of LUT entries")
    parser.add_argument("--batch-size", type=int, default=8, help="n, images per batch and entry")
    parser.add_argument("--dim", type=int, default=64, help="d, embedding dimension")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    lut = LookupTable(
        [rng.normal(size=(args.batch_size, args.dim)) for _ in range(args.entries)],
        rng.normal(scale=0.01, size=args.entries),
        entry_detections=[rng.integers(0, 4, size=args.batch_size) for _ in range(args.entries)],
    )
    batches = rng.normal(size=(args.repeats, args.batch_size, args.dim))
    counts = rng.integers(0, 4, size=(args.repeats, args.batch_size))

    start = time.perf_counter()
    estimate = Estimator(lut, LookupConfig())  # line and bandwidth are fitted once per table
    setup_s = time.perf_counter() - start
    for batch, count in zip(batches[:5], counts[:5]):  # warm-up
        estimate(batch, count)
    times = []
    for batch, count in zip(batches, counts):
        start = time.perf_counter()
        estimate(batch, count)
        times.append(time.perf_counter() - start)

    result = {
        "benchmark": "lookup/estimator",
        "entries": args.entries, "batch_size": args.batch_size, "dim": args.dim,
        "bandwidth_selection_s": setup_s, "repeats": args.repeats,
        "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
    }
    print(f"look-up K={args.entries} n={args.batch_size} d={args.dim} "
          f"(bandwidth chosen in {setup_s:.3f} s): median {result['median_s']:.6f} s over "
          f"{args.repeats} calls "
          f"(min {result['min_s']:.6f}, max {result['max_s']:.6f})")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
