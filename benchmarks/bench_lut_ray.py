"""LUT build time: the same variants sequentially in this process vs as Ray tasks, interleaved.

    python benchmarks/bench_lut_ray.py --variants 8 --ray-workers 2 --repeats 2 \
        [--address HOST:PORT] [--num-gpus 0.25 --device 0] \
        --out docs/results/lut_ray/lut_ray.json

Uses the committed base detector and the embedded dataset (generated if missing): `--labelled`
images as L_t, `--val` as V, and `--variants` jobs (the reference plus `--variants - 1` candidate
batches of `--batch-size` pool images), each a semi-supervised fine-tune with the shipped LUT's
settings (`conf/base`: learning rate, step-matched epoch of `--images-per-epoch` images, no
warm-up, last weights) plus its evaluation on V, what `kedro run --pipeline=lut` trains.
Sequential: one process with torch's default threads (all cores). Ray: a local instance with
`--ray-workers` CPUs (or the cluster at `--address`), one CPU per task, so `--ray-workers`
variants train at once with one torch thread each; the Ray time includes starting the instance and
shipping the images and checkpoint.

The two are measured `--repeats` times, alternating which goes first (ABBA...), so that a load
that comes and goes on a shared machine weighs on both; the result is each pair's ratio
sequential / Ray and their median, with the load average around each measurement. Both builds must
give the same ΔmAP table up to float noise from the different thread counts (reported), on a table
whose ΔmAPs differ (reported too: a constant table would compare nothing).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks._measure import load_average, run_conditions  # noqa: E402
from benchmarks._project import ROOT, profile_parameters  # noqa: E402
from mgral_pipelines import detector as adapter  # noqa: E402
from mgral_pipelines.config import LUTParams  # noqa: E402
from mgral_pipelines.data.embedded import (  # noqa: E402
    EmbeddedDatasetConfig,
    generate_embedded_dataset,
)
from mgral_pipelines.data.importers import load_yolo_dataset  # noqa: E402
from mgral_pipelines.execution import Executor, RayParams  # noqa: E402
from mgral_pipelines.mgral import variants  # noqa: E402
from mgral_pipelines.mgral.candidates import sample_candidate_batches  # noqa: E402
from mgral_pipelines.pipelines.lut.nodes import variant_settings  # noqa: E402


def timed(build: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
    load_before, started = load_average(), time.perf_counter()
    results = build()
    return {"seconds": time.perf_counter() - started, "load_average_1min_before": load_before,
            "load_average_1min_after": load_average(), "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=8, help="jobs, the reference included")
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of measurements")
    parser.add_argument("--address", default=None, help="a Ray cluster; default: local instance")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray task")
    parser.add_argument("--device", default="cpu", help="torch device of the detector")
    parser.add_argument("--labelled", type=int, default=60)
    parser.add_argument("--val", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images-per-epoch", type=int, default=128)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--note", default=None, help="conditions to record with the results")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    conditions = run_conditions(args.note)  # at the start: the commit and load it began with
    manifest = load_yolo_dataset(
        generate_embedded_dataset(ROOT / "data/01_raw/embedded", EmbeddedDatasetConfig()))
    ids = [r["image_id"] for r in manifest["images"]]
    labelled, val = ids[:args.labelled], ids[args.labelled:args.labelled + args.val]
    pool = ids[args.labelled + args.val:]
    batches = [b["image_ids"] for b in
               sample_candidate_batches(pool, args.variants - 1, args.batch_size, seed=0)]
    annotations = {a_id: manifest["annotations"][a_id] for a_id in labelled + val}
    # The shipped LUT's variant schedule (pipelines/lut/nodes.py), at this benchmark's size.
    shipped = profile_parameters("base")
    lut = LUTParams(**{**shipped["lut"], "epochs": args.epochs,
                       "images_per_epoch": args.images_per_epoch})
    detector = {**shipped["detector"], "imgsz": args.imgsz, "device": args.device}
    config, _ = variant_settings(detector, lut, len(labelled), args.batch_size)
    weights = (ROOT / "src/mgral_pipelines/assets/base_detector.pt").read_bytes()
    semi = adapter.SemiSupervisedConfig.from_dict(lut.semi_supervised)
    work = ROOT / "data/06_models/runs/bench_lut_ray"

    def jobs(tag: str) -> list[variants.VariantJob]:
        named = [("reference", [])] + [(f"batch_{k}", b) for k, b in enumerate(batches)]
        return [variants.VariantJob(
            name=name, unlabelled_ids=batch, records=manifest["images"], annotations=annotations,
            classes=manifest["classes"], labelled_ids=labelled, val_ids=val, config=config,
            semi=semi, initial_weights=weights, run_dir=str(work / tag / name))
            for name, batch in named]

    ray_params = RayParams(address=args.address, num_cpus=1, num_gpus=args.num_gpus,
                           local_num_cpus=None if args.address else args.ray_workers)
    builds = {
        "sequential": lambda r: variants.train_variants(jobs(f"sequential_{r}"), Executor()),
        "ray": lambda r: variants.train_variants(jobs(f"ray_{r}"),
                                                 Executor(kind="ray", ray=ray_params)),
    }
    pairs = []
    for repeat in range(args.repeats):
        order = ("sequential", "ray") if repeat % 2 == 0 else ("ray", "sequential")
        pair = {"repeat": repeat, "order": list(order)}
        for kind in order:
            pair[kind] = timed(lambda: builds[kind](repeat))
            print(f"repeat {repeat} {kind:10s}: {pair[kind]['seconds']:7.1f} s (load "
                  f"{pair[kind]['load_average_1min_before']:.1f} -> "
                  f"{pair[kind]['load_average_1min_after']:.1f})", flush=True)
        pair["ratio_sequential_over_ray"] = pair["sequential"]["seconds"] / pair["ray"]["seconds"]
        pairs.append(pair)

    tables = [variants.delta_map_table(pair[kind]["results"], lut.map_metric)
              for pair in pairs for kind in ("sequential", "ray")]
    deltas = [[entry["delta_map"] for entry in table["entries"]] for table in tables]
    ratios = [pair["ratio_sequential_over_ray"] for pair in pairs]
    result = {
        "conditions": {**conditions, "load_average_1_5_15min_at_end": list(os.getloadavg())},
        "settings": {"variants": args.variants, "ray_workers": args.ray_workers,
                     "address": args.address, "num_gpus_per_task": args.num_gpus,
                     "labelled": args.labelled, "val": args.val, "batch_size": args.batch_size,
                     "epochs": args.epochs, "images_per_epoch": args.images_per_epoch,
                     "imgsz": args.imgsz, "lr0": config.lr0, "repeats": args.repeats},
        "ratio_sequential_over_ray_median": statistics.median(ratios),
        "ratios_sequential_over_ray": ratios,
        "seconds": [{kind: pair[kind]["seconds"] for kind in ("sequential", "ray")}
                    for pair in pairs],
        "delta_map_sequential": deltas[0],
        "delta_maps_differ": len(set(deltas[0])) > 1,
        "max_abs_delta_map_difference": max(abs(a - b) for other in deltas[1:]
                                            for a, b in zip(deltas[0], other)) if len(deltas) > 1
        else 0.0,
        "variant_train_s": [{kind: [r["train_time_s"] for r in pair[kind]["results"]]
                             for kind in ("sequential", "ray")} for pair in pairs],
        "load_average_1min": [{kind: [pair[kind]["load_average_1min_before"],
                                      pair[kind]["load_average_1min_after"]]
                               for kind in ("sequential", "ray")} for pair in pairs],
    }
    print(json.dumps({k: v for k, v in result.items() if k not in ("conditions",
                                                                 "variant_train_s")}, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
