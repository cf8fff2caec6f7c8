"""Embedding throughput next to ultralytics' predict, same model and images.

    python benchmarks/bench_embedding.py [--images 400] [--repeats 3] [--out result.json]

Uses the committed base detector and the embedded dataset (generated if missing). `predict` is
ultralytics' DetectionPredictor (with the adapter's class-score gather after NMS); `embed` is the
same predictor with `embed=` on the layers feeding the Detect head.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from mgral_pipelines import detector as adapter
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig, generate_embedded_dataset
from mgral_pipelines.data.importers import load_yolo_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    manifest = load_yolo_dataset(
        generate_embedded_dataset(ROOT / "data/01_raw/embedded", EmbeddedDatasetConfig())
    )
    ids = [r["image_id"] for r in manifest["images"]][: args.images]
    config = adapter.DetectorConfig(weights=str(ROOT / "src/mgral_pipelines/assets/base_detector.pt"),
                                    imgsz=args.imgsz)
    model = adapter.load_model(config.weights)
    adapter.embed(model, manifest["images"], ids[:32], config, progress=False)  # warm-up
    timings: dict[str, list[float]] = {"embed": [], "predict": []}
    for _ in range(args.repeats):
        for name, run in (("embed", adapter.embed), ("predict", adapter.predict)):
            started = time.perf_counter()
            run(model, manifest["images"], ids, config, batch_size=args.batch_size, progress=False)
            timings[name].append(len(ids) / (time.perf_counter() - started))
    result = {name: statistics.median(values) for name, values in timings.items()}
    result["embed_over_predict"] = result["embed"] / result["predict"]
    result.update(images=len(ids), imgsz=args.imgsz, repeats=args.repeats)
    print(f"embed   {result['embed']:.1f} images/s (median of {args.repeats})")
    print(f"predict {result['predict']:.1f} images/s (median of {args.repeats})")
    print(f"ratio embed/predict {result['embed_over_predict']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
