"""Time query inference: `score_pool` + `select_top` over random pools, with peak RSS.

The policy is untrained (random weights): inference cost does not depend on the weights.

    python benchmarks/bench_query.py --sizes 10000 100000 --dim 64 --out query.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

try:
    from mgral_pipelines.mgral.agent import AgentConfig, SelectionPolicy, score_pool, select_top
except ModuleNotFoundError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from mgral_pipelines.mgral.agent import AgentConfig, SelectionPolicy, score_pool, select_top


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    defaults = AgentConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="pool sizes, run in this order (peak RSS is cumulative)")
    parser.add_argument("--dim", type=int, default=64, help="embedding dimension")
    parser.add_argument("--budget", type=int, default=1000, help="images queried (select_top)")
    parser.add_argument("--context-size", type=int, default=defaults.sequence_length)
    parser.add_argument("--contexts", type=int, default=defaults.scoring_contexts)
    parser.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    policy = SelectionPolicy(args.dim, args.hidden_size, defaults.num_layers,
                             defaults.bidirectional)

    baseline_rss = peak_rss_mib()  # after importing torch and building the policy
    print(f"peak RSS before scoring: {baseline_rss:.0f} MiB")
    results = []
    for size in args.sizes:
        pool = rng.normal(size=(size, args.dim)).astype(np.float32)
        ids = [f"img{i:07d}" for i in range(size)]
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            scores = score_pool(policy, pool, args.context_size, args.contexts)
            select_top(scores, ids, min(args.budget, size))
            times.append(time.perf_counter() - start)
        result = {
            "benchmark": "query/score_pool+select_top", "pool_size": size, "dim": args.dim,
            "budget": min(args.budget, size), "context_size": args.context_size,
            "contexts": args.contexts,
            "hidden_size": args.hidden_size, "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "median_s": statistics.median(times), "peak_rss_mib": peak_rss_mib(),
            "peak_rss_before_scoring_mib": baseline_rss,
        }
        results.append(result)
        print(f"pool {size:>7} d={args.dim}: median {result['median_s']:.3f} s over "
              f"{args.repeats} runs, peak RSS {result['peak_rss_mib']:.0f} MiB "
              f"({result['torch_threads']} torch threads)")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
