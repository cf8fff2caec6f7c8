"""LUT speedup on the current cycle: one look-up against one detector variant.

    kedro run --pipeline=al_cycle             # an mgral cycle: detector, embedding, lut, ...
    python benchmarks/bench_lut.py [--env ENV] [--cycle T] [--lookups 200] [--out result.json]

Reads the cycle's LUT and embeddings through the catalog, times `--lookups` reward look-ups of a
random batch of B pool images (the agent's `Estimator`, bandwidth resolved once as in training) and
compares their median with the median train-and-score time of the LUT's own variants (recorded in
the LUT when it was built). Whether the look-up *predicts* the gain is another question, answered by
`bench_reward_fidelity.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import load_cycle  # noqa: E402

from mgral_pipelines.config import AgentParams, ALParams  # noqa: E402
from mgral_pipelines.mgral.features import confident_detections  # noqa: E402
from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=200, help="look-ups to time")
    parser.add_argument("--env", default=None)
    parser.add_argument("--cycle", type=int, default=None, help="default: the latest cycle")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    cycle = load_cycle(args.env, args.cycle)
    state, params = cycle["state"], cycle["params"]
    table = cycle["partition"]("lookup_tables")
    lut = LookupTable.from_lut(table)
    started = time.perf_counter()
    estimate = Estimator(lut, LookupConfig(**AgentParams(**params["agent"]).lookup))
    setup_seconds = time.perf_counter() - started
    features = cycle["partition"]("embeddings")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    vectors = np.asarray(features["vectors"])
    # What the agent's reward reads per image beside its embedding (pipelines/agent/nodes.py):
    # D_t's confident detections, weighted as the table weighted its entries'.
    detections = cycle["partition"]("pool_detections")
    weights = table.get("class_weights")
    detected = {i: confident_detections(detections[i], class_weights=weights)
                for i in state["pool_ids"]}
    budget = min(ALParams(**params["al"]).budget, len(state["pool_ids"]))
    rng = np.random.default_rng(0)
    seconds = []
    for _ in range(args.lookups):
        batch = rng.choice(state["pool_ids"], budget, replace=False)
        rows = vectors[[row_of[i] for i in batch]]
        counts = np.array([detected[i] for i in batch])
        started = time.perf_counter()
        estimate(rows, counts)
        seconds.append(time.perf_counter() - started)
    variant_seconds = statistics.median(
        [table["reference"]["train_time_s"]] + [e["train_time_s"] for e in table["entries"]])
    result = {
        "cycle": state["cycle"], "lut_entries": len(lut), "batch_size": budget,
        "embedding_dim": int(vectors.shape[1]),
        "bandwidth_selection_seconds": setup_seconds,
        "lookup_seconds_median": statistics.median(seconds),
        "variant_train_seconds_median": variant_seconds,
        "speedup": variant_seconds / statistics.median(seconds),
        "lut_loo_spearman": table.get("fidelity", {}).get("loo_spearman"),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
