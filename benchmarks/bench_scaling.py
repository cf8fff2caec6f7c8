"""Time and peak memory of embedding, agent training and query inference against the pool size.

    python benchmarks/bench_scaling.py --sizes 10000 30000 120000 --out scaling.json

Each (step, pool size) runs in a fresh process, so its peak RSS (`ru_maxrss`) is its own; the RSS
after the imports (torch; ultralytics for embedding) is reported beside it. Wall time and CPU
time (user + system, all threads) are both reported: on a shared machine the CPU time is the
cost. The synthetic pool:

- embedding: N image files that are hard links to 256 generated 160×160 scenes (bright shapes
  on noise; the cost of a forward pass does not depend on the content), embedded by the
  committed base detector exactly as the `embedding` pipeline does (`adapter.embed`, batch 32,
  then PCA to 32 dimensions fitted on all N). `--embed-limit L` runs the forward passes on only
  L of the N images and says so (`embedded`, `extrapolated`): the forward time is then scaled
  by N / L (each image is one independent forward pass), while the PCA runs on a full N × 448
  matrix (the embedded rows repeated), so its time and the peak memory are measured at N;
- agent: `train_policy` with the default AgentConfig on N random 32-d embeddings and a random
  look-up table of 6 entries × 20 images (a LUT look-up per reward, as in the pipeline);
- query: `score_pool` + `select_top` of 100 images over the same N embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("embedding", "agent", "query")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: unlike wall time, it does not grow
    when other jobs share the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _synthetic_images(folder: Path, size: int, distinct: int = 256) -> list[dict]:
    """`size` records whose files link to `distinct` generated scenes."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    scenes = folder / "scenes"
    scenes.mkdir(parents=True, exist_ok=True)
    for k in range(distinct):
        path = scenes / f"scene_{k}.png"
        if path.exists():
            continue
        image = Image.fromarray(rng.integers(0, 40, (160, 160, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            x, y = (int(v) for v in rng.integers(0, 120, 2))
            s = int(rng.integers(14, 40))
            colour = tuple(int(c) for c in rng.integers(150, 255, 3))
            draw.rectangle([x, y, x + s, y + s], fill=colour)
        image.save(path)
    pool = folder / f"pool_{size}"
    pool.mkdir(exist_ok=True)
    records = []
    for i in range(size):
        path = pool / f"img{i:07d}.png"
        if not path.exists():
            os.link(scenes / f"scene_{i % distinct}.png", path)
        records.append({"image_id": f"img{i:07d}", "file": str(path), "width": 160,
                        "height": 160})
    return records


def run_step(step: str, size: int, args: argparse.Namespace) -> dict:
    """One measurement, in this (fresh) process."""
    import numpy as np
    import torch

    from mgral_pipelines.mgral.agent import AgentConfig, score_pool, select_top, train_policy
    from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    result = {"step": step, "pool_size": size, "torch_threads": args.threads}
    if step == "embedding":
        from mgral_pipelines import detector as adapter

        records = _synthetic_images(Path(args.work_dir), size)
        count = min(size, args.embed_limit or size)
        config = adapter.DetectorConfig(
            weights=str(ROOT / "src/mgral_pipelines/assets/base_detector.pt"), imgsz=160)
        model = adapter.load_model(config.weights)
        ids = [r["image_id"] for r in records[:count]]
        result["rss_before_mib"] = peak_rss_mib()
        started, cpu = time.perf_counter(), cpu_seconds()
        vectors = adapter.embed(model, records, ids, config, batch_size=32, progress=False)
        forward_s, forward_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        if count < size:  # the other rows: copies of the embedded ones (the PCA input's size)
            vectors = np.resize(vectors, (size, vectors.shape[1]))
        from sklearn.decomposition import PCA

        started, cpu = time.perf_counter(), cpu_seconds()
        PCA(n_components=32, random_state=0).fit_transform(vectors)
        pca_s, pca_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        scale = size / count  # 1 when every image was embedded
        result.update(embedded=count, raw_dim=int(vectors.shape[1]), forward_seconds=forward_s,
                      forward_cpu_seconds=forward_cpu, pca_seconds=pca_s, pca_cpu_seconds=pca_cpu,
                      seconds=forward_s * scale + pca_s, cpu_seconds=forward_cpu * scale + pca_cpu,
                      extrapolated=count < size)
    else:
        pool = rng.normal(size=(size, args.dim)).astype(np.float32)
        result["rss_before_mib"] = peak_rss_mib()
        started, cpu = time.perf_counter(), cpu_seconds()
        if step == "agent":
            entries = [rng.normal(size=(20, args.dim)).astype(np.float32) for _ in range(6)]
            counts = [rng.integers(0, 4, size=20).astype(float) for _ in range(6)]
            table = LookupTable(entries, np.linspace(-0.02, 0.05, 6), entry_detections=counts)
            estimate = Estimator(table, LookupConfig())  # once per table, as the agent does
            config = AgentConfig(batch_size=20)
            # As the agent: the reward reads each image's embedding and its detected objects.
            reward_inputs = np.column_stack([pool, rng.integers(0, 4, size=size)])
            train_policy(pool, lambda rows: estimate(rows[:, :-1], rows[:, -1]), config,
                         progress=False, reward_inputs=reward_inputs)
            result["episodes"] = config.episodes
        else:
            from mgral_pipelines.mgral.agent import SelectionPolicy

            policy = SelectionPolicy(args.dim)
            policy.fit_standardisation(torch.as_tensor(pool))
            scores = score_pool(policy, pool, AgentConfig().sequence_length)
            select_top(scores, [f"img{i:07d}" for i in range(size)], 100)
        result.update(seconds=time.perf_counter() - started, cpu_seconds=cpu_seconds() - cpu)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 120_000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--dim", type=int, default=32, help="embedding dimension (after PCA)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--embed-limit", type=int, default=None,
                        help="embed at most this many images of each pool (reported)")
    parser.add_argument("--work-dir", default=None, help="where the synthetic images go")
    parser.add_argument("--one", nargs=2, metavar=("STEP", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_step(args.one[0], int(args.one[1]), args)))
        return
    work = args.work_dir or tempfile.mkdtemp(prefix="mgral-scaling-")
    results = []
    for step in args.steps:
        for size in args.sizes:
            command = [sys.executable, __file__, "--one", step, str(size), "--dim",
                       str(args.dim), "--threads", str(args.threads), "--work-dir", work]
            if args.embed_limit:
                command += ["--embed-limit", str(args.embed_limit)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{step} at N={size} failed:\n{done.stderr[-3000:]}")
            output = done.stdout
            result = json.loads(output.strip().splitlines()[-1])
            results.append(result)
            print(f"{step:9s} N={size:>7}: {result['seconds']:8.2f} s wall, "
                  f"{result['cpu_seconds']:8.2f} s CPU, peak RSS "
                  f"{result['peak_rss_mib']:6.0f} MiB (after imports "
                  f"{result['rss_before_mib']:.0f})"
                  + (f", forward passes on {result['embedded']} images"
                     + (" (time extrapolated to N)" if result["extrapolated"] else "")
                     if step == "embedding" else ""),
                  flush=True)
            if args.out:
                args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
