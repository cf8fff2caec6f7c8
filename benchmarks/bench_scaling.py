"""Time and peak memory of embedding, agent training and query inference against the pool size.

    python benchmarks/bench_scaling.py --sizes 10000 30000 120000 --embed-limit 1000 \
        --out docs/results/scaling/scaling.json --plot docs/results/scaling/scaling.png

Each (step, pool size) runs in a fresh process, so its peak RSS (`ru_maxrss`) is its own; the RSS
after the imports (torch; ultralytics for embedding) is reported beside it. Wall time and CPU
time (user + system, all threads) are both reported: on a shared machine the CPU time is the
cost. The agent and the query use a profile's settings (`--env`, default the shipped `base`):
its `agent.policy` with B = `al.budget`, its `agent.lookup` read-out and K = `lut.num_batches`.
The synthetic pool:

- embedding: N image files that are hard links to 256 generated 160×160 scenes (bright shapes
  on noise; the cost of a forward pass does not depend on the content), embedded by the
  committed base detector exactly as the `embedding` pipeline does (`adapter.embed`, batch 32,
  then PCA to `--dim` dimensions fitted on all N). `--embed-limit L` runs the forward passes on
  only L of the N images and says so (`embedded`, `extrapolated`): the forward time is then
  scaled by N / L (each image is one independent forward pass), while the PCA runs on a full
  N × 448 matrix (the embedded rows repeated), so its time and the peak memory are measured at N;
- agent: `train_policy` on N random `--dim`-d inputs, rewarded by the profile's LUT read-out on
  a random table of K entries of B images, each image with an embedding and a detection count
  (as the `agent` pipeline reads them);
- query: `score_pool` (the profile's context length and number of contexts) + `select_top` of B
  over the same N inputs, with an untrained policy (the cost does not depend on the weights).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from benchmarks._measure import cpu_seconds, peak_rss_mib, run_conditions  # noqa: E402
from benchmarks._project import ROOT, agent_settings  # noqa: E402

STEPS = ("embedding", "agent", "query")


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

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    result = {"step": step, "pool_size": size, "torch_threads": args.threads, "env": args.env}
    if step == "embedding":
        from sklearn.decomposition import PCA

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
        started, cpu = time.perf_counter(), cpu_seconds()
        PCA(n_components=min(args.dim, *vectors.shape), random_state=0).fit_transform(vectors)
        pca_s, pca_cpu = time.perf_counter() - started, cpu_seconds() - cpu
        scale = size / count  # 1 when every image was embedded
        result.update(embedded=count, raw_dim=int(vectors.shape[1]), forward_seconds=forward_s,
                      forward_cpu_seconds=forward_cpu, pca_seconds=pca_s, pca_cpu_seconds=pca_cpu,
                      seconds=forward_s * scale + pca_s, cpu_seconds=forward_cpu * scale + pca_cpu,
                      extrapolated=count < size)
    else:
        from mgral_pipelines.mgral.agent import (
            SelectionPolicy,
            score_pool,
            select_top,
            train_policy,
        )
        from mgral_pipelines.mgral.lookup import Estimator, LookupTable

        settings = agent_settings(args.env, args.episodes)
        config = settings["agent"]
        inputs = rng.normal(size=(size, args.dim)).astype(np.float32)
        result["rss_before_mib"] = peak_rss_mib()
        started, cpu = time.perf_counter(), cpu_seconds()
        if step == "agent":
            # What the reward reads per image: its embedding and its detection count.
            rows = np.column_stack([inputs, rng.poisson(2.0, size)])
            entries = settings["lut_entries"]
            table = LookupTable([rng.normal(size=(config.batch_size, args.dim))
                                 for _ in range(entries)],
                                rng.normal(0.0, 0.02, entries),
                                [rng.poisson(2.0, config.batch_size) for _ in range(entries)])
            estimate = Estimator(table, settings["lookup"])
            train_policy(inputs, lambda batch: estimate(batch[:, :-1], batch[:, -1]), config,
                         progress=False, reward_inputs=rows)
            result.update(episodes=config.episodes, lut_entries=entries,
                          read_out="trend")
        else:
            policy = SelectionPolicy(args.dim, config.hidden_size, config.num_layers,
                                     config.bidirectional)
            policy.fit_standardisation(torch.as_tensor(inputs))
            scores = score_pool(policy, inputs, config.sequence_length, config.scoring_contexts,
                                seed=config.seed)
            select_top(scores, [f"img{i:07d}" for i in range(size)], min(config.batch_size, size))
            result.update(context_size=config.sequence_length,
                          contexts=config.scoring_contexts)
        result.update(seconds=time.perf_counter() - started, cpu_seconds=cpu_seconds() - cpu,
                      budget=config.batch_size)
    result["peak_rss_mib"] = peak_rss_mib()
    return result


def plot(results: list[dict], path: Path) -> None:
    """CPU seconds against pool size, one line per step, log-log (a slope of 1 is linear)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for step in STEPS:
        rows = sorted((r["pool_size"], r["cpu_seconds"]) for r in results if r["step"] == step)
        if rows:
            axis.plot(*zip(*rows), marker="o", label=step)
    axis.set(xscale="log", yscale="log", xlabel="pool size N", ylabel="CPU seconds",
             title="Cost against pool size (each step in a fresh process)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 120_000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=STEPS)
    parser.add_argument("--env", default="base", help="profile whose agent settings are timed")
    parser.add_argument("--episodes", type=int, default=None,
                        help="agent episodes (default: the profile's)")
    parser.add_argument("--dim", type=int, default=32, help="embedding dimension (after PCA)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--embed-limit", type=int, default=None,
                        help="embed at most this many images of each pool (reported)")
    parser.add_argument("--work-dir", default=None, help="where the synthetic images go")
    parser.add_argument("--note", default=None, help="conditions to record with the results")
    parser.add_argument("--one", nargs=2, metavar=("STEP", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help="results as JSON")
    parser.add_argument("--plot", type=Path, help="CPU seconds against N as PNG")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_step(args.one[0], int(args.one[1]), args)))
        return
    work = args.work_dir or tempfile.mkdtemp(prefix="mgral-scaling-")
    output = {"conditions": run_conditions(args.note), "results": []}
    for step in args.steps:
        for size in args.sizes:
            command = [sys.executable, __file__, "--one", step, str(size), "--dim",
                       str(args.dim), "--threads", str(args.threads), "--work-dir", work,
                       "--env", args.env]
            if args.embed_limit:
                command += ["--embed-limit", str(args.embed_limit)]
            if args.episodes is not None:
                command += ["--episodes", str(args.episodes)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                raise SystemExit(f"{step} at N={size} failed:\n{done.stderr[-3000:]}")
            result = {**json.loads(done.stdout.strip().splitlines()[-1]),
                      "load_average_1min_after": os.getloadavg()[0]}
            output["results"].append(result)
            print(f"{step:9s} N={size:>7}: {result['seconds']:8.2f} s wall, "
                  f"{result['cpu_seconds']:8.2f} s CPU, peak RSS "
                  f"{result['peak_rss_mib']:6.0f} MiB (after imports "
                  f"{result['rss_before_mib']:.0f})"
                  + (f", forward passes on {result['embedded']} images"
                     + (" (time extrapolated to N)" if result["extrapolated"] else "")
                     if step == "embedding" else ""),
                  flush=True)
            if args.out:  # after every row: a long run that is stopped keeps what finished
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(output, indent=1) + "\n")
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(output["results"], args.plot)


if __name__ == "__main__":
    main()
