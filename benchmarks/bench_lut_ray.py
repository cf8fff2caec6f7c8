"""LUT build time: the same variants sequentially in this process vs as Ray tasks.

    python benchmarks/bench_lut_ray.py --variants 8 --ray-workers 2 [--address HOST:PORT] \
        [--num-gpus 0.25 --device 0] [--out result.json]

Uses the committed base detector and the embedded dataset (generated if missing): `--labelled`
images as L_t, `--val` as V, and `--variants` jobs (the reference plus `--variants - 1` candidate
batches of `--batch-size` pool images), each a semi-supervised fine-tune of `--epochs` epochs of
`--images-per-epoch` images plus its evaluation on V, exactly what `kedro run --pipeline=lut`
trains. Sequential: one process with torch's default threads (all cores). Ray: a local instance
with `--ray-workers` CPUs (or the cluster at `--address`), one CPU per task, so `--ray-workers`
variants train at once with one torch thread each; the Ray time includes starting the instance and
shipping the images and checkpoint. Both must give the same ΔmAP table up to float noise from the
different thread counts (reported).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mgral_pipelines import detector as adapter
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import load_yolo_dataset
from mgral_pipelines.execution import Executor, RayParams
from mgral_pipelines.mgral import variants
from mgral_pipelines.mgral.candidates import sample_candidate_batches

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=8, help="jobs, the reference included")
    parser.add_argument("--ray-workers", type=int, default=2)
    parser.add_argument("--address", default=None, help="a Ray cluster; default: local instance")
    parser.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per Ray task")
    parser.add_argument("--device", default="cpu", help="torch device of the detector")
    parser.add_argument("--labelled", type=int, default=60)
    parser.add_argument("--val", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images-per-epoch", type=int, default=128)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    manifest = load_yolo_dataset(
        generate_embedded_dataset(ROOT / "data/01_raw/embedded", EmbeddedDatasetConfig()))
    ids = [r["image_id"] for r in manifest["images"]]
    labelled, val = ids[:args.labelled], ids[args.labelled:args.labelled + args.val]
    pool = ids[args.labelled + args.val:]
    batches = [b["image_ids"] for b in
               sample_candidate_batches(pool, args.variants - 1, args.batch_size, seed=0)]
    annotations = {a_id: manifest["annotations"][a_id] for a_id in labelled + val}
    # The LUT's variant schedule (pipelines/lut/nodes.py): a fixed number of steps, last epoch.
    config = adapter.DetectorConfig(imgsz=args.imgsz, epochs=args.epochs, batch=16,
                                    images_per_epoch=args.images_per_epoch, warmup_epochs=0.0,
                                    checkpoint="last", device=args.device, seed=0)
    weights = (ROOT / "src/mgral_pipelines/assets/base_detector.pt").read_bytes()
    semi = adapter.SemiSupervisedConfig()
    work = ROOT / "data/06_models/runs/bench_lut_ray"

    def jobs(tag: str) -> list[variants.VariantJob]:
        named = [("reference", [])] + [(f"batch_{k}", b) for k, b in enumerate(batches)]
        return [variants.VariantJob(
            name=name, unlabelled_ids=batch, records=manifest["images"], annotations=annotations,
            classes=manifest["classes"], labelled_ids=labelled, val_ids=val, config=config,
            semi=semi, initial_weights=weights, run_dir=str(work / tag / name))
            for name, batch in named]

    started = time.perf_counter()
    sequential = variants.train_variants(jobs("sequential"), Executor())
    sequential_s = time.perf_counter() - started

    ray_params = RayParams(address=args.address, num_cpus=1, num_gpus=args.num_gpus,
                           local_num_cpus=None if args.address else args.ray_workers)
    started = time.perf_counter()
    on_ray = variants.train_variants(jobs("ray"), Executor(kind="ray", ray=ray_params))
    ray_s = time.perf_counter() - started

    deltas = {name: variants.delta_map_table(results, "map50_95") for name, results in
              (("sequential", sequential), ("ray", on_ray))}
    differences = [abs(a["delta_map"] - b["delta_map"]) for a, b in
                   zip(deltas["sequential"]["entries"], deltas["ray"]["entries"])]
    result = {
        "variants": args.variants, "ray_workers": args.ray_workers, "address": args.address,
        "num_gpus_per_task": args.num_gpus, "epochs": args.epochs,
        "images_per_epoch": args.images_per_epoch, "labelled": args.labelled,
        "val": args.val, "batch_size": args.batch_size, "imgsz": args.imgsz,
        "sequential_s": sequential_s, "ray_s": ray_s, "speedup": sequential_s / ray_s,
        "variant_train_s_sequential": [r["train_time_s"] for r in sequential],
        "variant_train_s_ray": [r["train_time_s"] for r in on_ray],
        "max_abs_delta_map_difference": max(differences),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
