"""Time of one LUT variant (train + score on V), with and without ultralytics' own validations.

    kedro run --pipeline=al_cycle        # any cycle: its state, D_t and settings
    python benchmarks/bench_variant_time.py [--env ENV] [--cycle T] [--repeats 4] [--out r.json]

A LUT variant is fine-tuned for one short epoch and scored on V by `evaluate_detector`
(pycocotools). Ultralytics also validates the last epoch and, in `final_eval`, best.pt (the same
epoch then) on V: two passes over V whose numbers the variant never uses. The LUT now skips
them (`train_detector(validate=False)`). This script trains the same variant (L_t plus the first
B pool images, the LUT's settings, D_t's weights) alternately with and without them, `--repeats`
times each after one warm-up, and reports the median seconds of each, their ratio and the
variant's mAP, which must not change (the weights are the same).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import load_cycle  # noqa: E402

from mgral_pipelines import detector as adapter  # noqa: E402
from mgral_pipelines.config import ALParams, LUTParams  # noqa: E402
from mgral_pipelines.pipelines.lut.nodes import variant_settings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=None)
    parser.add_argument("--cycle", type=int, default=None, help="default: the latest cycle")
    parser.add_argument("--repeats", type=int, default=4, help="timed runs of each kind")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    cycle = load_cycle(args.env, args.cycle)
    state, params = cycle["state"], cycle["params"]
    lut = LUTParams(**params["lut"])
    batch_size = lut.batch_size or ALParams(**params["al"]).budget
    if len(state["pool_ids"]) < batch_size:
        raise SystemExit(f"the pool holds {len(state['pool_ids'])} images, fewer than B = "
                         f"{batch_size}")
    config, run_dir = variant_settings(params["detector"], lut, len(state["labelled_ids"]),
                                       batch_size)
    semi = adapter.SemiSupervisedConfig.from_dict(lut.semi_supervised)
    index, eval_labels = cycle["image_index"], cycle["eval_labels"]
    val_ids = sorted(eval_labels["val"])
    annotations = {**state["labels"], **eval_labels["val"]}
    weights = cycle["partition"]("detector_checkpoints")

    def variant(validate: bool) -> tuple[float, float]:
        started = time.perf_counter()
        checkpoint, _ = adapter.train_semi_supervised(
            records=index["images"], annotations=annotations, classes=index["classes"],
            labelled_ids=state["labelled_ids"], unlabelled_ids=state["pool_ids"][:batch_size],
            val_ids=val_ids, config=config, run_dir=run_dir / "bench_variant_time",
            initial_weights=weights, semi=semi, progress=False, validate=validate)
        metrics = adapter.evaluate_detector(checkpoint, index["images"], annotations,
                                            index["classes"], val_ids, config, progress=False)
        return time.perf_counter() - started, metrics["map50_95"]

    variant(False)  # warm-up: imports, caches
    runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _ in range(args.repeats):
        for validate in (True, False):
            runs[validate].append(variant(validate))
    medians = {v: statistics.median(s for s, _ in runs[v]) for v in runs}
    result = {
        "cycle": state["cycle"], "labelled": len(state["labelled_ids"]), "batch_size": batch_size,
        "val_images": len(val_ids), "repeats": args.repeats,
        "seconds_with_validation": [round(s, 3) for s, _ in runs[True]],
        "seconds_without_validation": [round(s, 3) for s, _ in runs[False]],
        "median_with_validation_s": round(medians[True], 3),
        "median_without_validation_s": round(medians[False], 3),
        "ratio_without_to_with": round(medians[False] / medians[True], 3),
        "map50_95": sorted({m for v in runs for _, m in runs[v]}),
    }
    print(json.dumps(result, indent=1))
    if len(result["map50_95"]) != 1:
        raise SystemExit("the variant's mAP changed between runs: the timing compares different "
                         "trainings")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
