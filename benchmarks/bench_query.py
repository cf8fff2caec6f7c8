"""Time query inference: `score_pool` + `select_top` over random pools, with peak RSS.

The policy is untrained (random weights): inference cost does not depend on the weights. Its
size, context length and number of contexts are those of a profile's `agent.policy` (`--env`,
default the shipped `base`) unless given.

    python benchmarks/bench_query.py --sizes 10000 100000 --dim 32 --budget 100 \
        --out docs/results/query/query.json
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._measure import cpu_seconds, peak_rss_mib, run_conditions  # noqa: E402
from benchmarks._project import agent_settings  # noqa: E402
from mgral_pipelines.mgral.agent import SelectionPolicy, score_pool, select_top  # noqa: E402


def main() -> None:
    profile = argparse.ArgumentParser(add_help=False)
    profile.add_argument("--env", default="base", help="profile whose agent.policy is timed")
    defaults = agent_settings(profile.parse_known_args()[0].env)["agent"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[profile])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000],
                        help="pool sizes, run in this order (peak RSS is cumulative)")
    parser.add_argument("--dim", type=int, default=32, help="policy input dimension")
    parser.add_argument("--budget", type=int, default=defaults.batch_size,
                        help="images queried (select_top); default: the profile's al.budget")
    parser.add_argument("--context-size", type=int, default=defaults.sequence_length)
    parser.add_argument("--contexts", type=int, default=defaults.scoring_contexts)
    parser.add_argument("--hidden-size", type=int, default=defaults.hidden_size)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default=None, help="conditions to record with the results")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    conditions = run_conditions(args.note)  # at the start: the commit and load it began with
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
        times, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), cpu_seconds()
            scores = score_pool(policy, pool, args.context_size, args.contexts)
            select_top(scores, ids, min(args.budget, size))
            times.append(time.perf_counter() - start)
            cpu.append(cpu_seconds() - start_cpu)
        result = {
            "benchmark": "query/score_pool+select_top", "pool_size": size, "dim": args.dim,
            "budget": min(args.budget, size), "context_size": args.context_size,
            "contexts": args.contexts,
            "hidden_size": args.hidden_size, "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "median_s": statistics.median(times), "median_cpu_s": statistics.median(cpu),
            "peak_rss_mib": peak_rss_mib(),
            "peak_rss_before_scoring_mib": baseline_rss,
        }
        results.append(result)
        print(f"pool {size:>7} d={args.dim}: median {result['median_s']:.3f} s wall, "
              f"{result['median_cpu_s']:.3f} s CPU over "
              f"{args.repeats} runs, peak RSS {result['peak_rss_mib']:.0f} MiB "
              f"({result['torch_threads']} torch threads)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"conditions": conditions,
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
