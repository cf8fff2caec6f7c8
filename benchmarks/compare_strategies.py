"""Every strategy of a benchmark against every other, paired seed by seed.

    python benchmarks/compare_strategies.py docs/benchmark_transfer_al_curve.csv \
        --out docs/benchmark_transfer_pairs.csv

The benchmark's `summary.csv` compares each strategy with random; this answers the other
questions of a comparison, such as "is MGRAL distinguishable from the best baseline?", from the
`al_curve.csv` the benchmark writes, with the same statistics (the normalised AUC of each seed's
curve, the mean of the per-seed differences and its 95% Student-t interval, the paired t-test's
p-value; not corrected for comparing several pairs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mgral_pipelines.pipelines.benchmark.statistics import pairwise_auc_gains


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curve", type=Path, help="a benchmark's al_curve.csv")
    parser.add_argument("--out", type=Path, default=None, help="CSV to write the pairs to")
    args = parser.parse_args()
    if not args.curve.is_file():
        raise SystemExit(f"{args.curve}: no such file (a benchmark's al_curve.csv)")
    pairs = pairwise_auc_gains(pd.read_csv(args.curve))
    if args.out is not None:
        pairs.to_csv(args.out, index=False)
    with pd.option_context("display.float_format", "{:+.4f}".format, "display.width", 120):
        print(pairs.to_string(index=False))


if __name__ == "__main__":
    main()
