"""LUT speedup and fidelity on the current cycle.

    kedro run --pipeline=al_cycle                 # an mgral cycle: detector, embedding, lut, ...
    python benchmarks/bench_lut.py --cycle 0 [--holdout 6] [--out result.json]

Needs the current cycle's detector, embeddings and LUT (run `detector`, `embedding` and `lut`
first). Trains `--holdout` extra variants on fresh candidate batches with the LUT's own schedule,
then reports:
  * speedup: median time of one train+evaluate of a variant / median time of one LUT lookup;
  * fidelity: Spearman's rho between the LUT's predicted ΔmAP of those batches and the ΔmAP
    actually obtained (against the LUT's reference variant, same schedule and seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import load_cycle  # noqa: E402

from mgral_pipelines import detector as adapter  # noqa: E402
from mgral_pipelines.config import AgentParams, LUTParams  # noqa: E402
from mgral_pipelines.mgral import variants  # noqa: E402
from mgral_pipelines.mgral.lookup import LookupConfig, estimate_delta_map  # noqa: E402
from mgral_pipelines.pipelines.agent.nodes import lookup_table  # noqa: E402
from mgral_pipelines.pipelines.common import detector_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout", type=int, default=6, help="extra variants to train")
    parser.add_argument("--lookups", type=int, default=200, help="lookups to time")
    parser.add_argument("--env", default=None)
    parser.add_argument("--cycle", type=int, default=None, help="default: the latest cycle")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    cycle = load_cycle(args.env, args.cycle)
    state, params = cycle["state"], cycle["params"]
    table = cycle["partition"]("lookup_tables")
    lut = lookup_table(table)
    lookup = LookupConfig(**AgentParams(**params["agent"]).lookup)
    lut_params = LUTParams(**params["lut"])
    features = cycle["partition"]("embeddings")
    row_of = {image_id: row for row, image_id in enumerate(features["image_ids"])}
    vectors = np.asarray(features["vectors"])

    # Held-out batches: a seed the LUT never used.
    batches = variants.sample_candidate_batches(
        state["pool_ids"], args.holdout, lut_params.batch_size, seed=[lut_params.seed, state["cycle"], 999]
    )
    base_config, run_dir = detector_settings(params["detector"])
    config = dataclasses.replace(base_config, epochs=lut_params.epochs)
    eval_labels = cycle["eval_labels"]
    jobs = [
        variants.VariantJob(
            name=f"holdout_{k}", unlabelled_ids=batch, records=cycle["image_index"]["images"],
            annotations={**state["labels"], **eval_labels["val"]},
            classes=cycle["image_index"]["classes"], labelled_ids=state["labelled_ids"],
            val_ids=sorted(eval_labels["val"]), config=config,
            semi=adapter.SemiSupervisedConfig.from_dict(lut_params.semi_supervised),
            initial_weights=cycle["partition"]("detector_checkpoints"),
            run_dir=str(run_dir / f"cycle_{state['cycle']}" / "lut_holdout" / f"holdout_{k}"),
            torch_threads=lut_params.torch_threads,
        )
        for k, batch in enumerate(batches)
    ]
    variant_seconds, actual, predicted = [], [], []
    for job in jobs:
        started = time.perf_counter()
        result = variants.train_variant(job)
        variant_seconds.append(time.perf_counter() - started)
        actual.append(result[table["metric"]] - table["reference"][table["metric"]])
        batch = vectors[[row_of[i] for i in job.unlabelled_ids]]
        predicted.append(estimate_delta_map(batch, lut, lookup))

    probe = vectors[[row_of[i] for i in batches[0]]]
    lookup_seconds = []
    for _ in range(args.lookups):
        started = time.perf_counter()
        estimate_delta_map(probe, lut, lookup)
        lookup_seconds.append(time.perf_counter() - started)

    rho, p_value = spearmanr(predicted, actual)
    result = {
        "cycle": state["cycle"], "lut_entries": len(lut), "holdout_variants": len(jobs),
        "variant_train_eval_seconds_median": statistics.median(variant_seconds),
        "lookup_seconds_median": statistics.median(lookup_seconds),
        "speedup": statistics.median(variant_seconds) / statistics.median(lookup_seconds),
        "spearman_rho": float(rho), "spearman_p": float(p_value),
        "predicted_delta_map": predicted, "actual_delta_map": actual,
    }
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))
    print("predicted ΔmAP:", np.round(predicted, 4).tolist())
    print("actual    ΔmAP:", np.round(actual, 4).tolist())
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
