"""How noisy is one point of the AL curve? One labelled set, trained with several detector seeds.

    kedro run --env transfer --pipeline=prepare
    python benchmarks/bench_detector_noise.py --env transfer --seeds 6 --extra 80 \
        --out docs/results/detector_noise/transfer_80_labelled.csv

Takes the labelled set of a mid-curve point (the split's L_0 plus `--extra` pool images drawn with
`--split-seed`, labelled from the oracle: a benchmark may read it), and fine-tunes the profile's
base detector on it once per detector seed under two schedules:
  * `epochs` (the schedule before issue 7): epochs over the labelled set, as many as give the
    profile's number of optimiser steps at this labelled-set size (so both train equally long
    here), 3 warm-up epochs with ultralytics' bias warm-up from lr 0.1, the best epoch on V;
  * `profile`: the profile's own `detector` parameters (for `transfer`: a fixed number of optimiser
    steps at every labelled-set size, no warm-up, the last weights).
Prints, per schedule, the mean and standard deviation of test mAP50-95 over detector seeds with a
95% chi-square interval for the standard deviation, and the ratio of the two standard deviations
with its 95% F interval; writes one row per training to `--out`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import ROOT, require_development  # noqa: E402

from kedro.framework.session import KedroSession  # noqa: E402
from kedro.framework.startup import bootstrap_project  # noqa: E402

from mgral_pipelines import al_state  # noqa: E402
from mgral_pipelines import detector as adapter  # noqa: E402
from mgral_pipelines.config import DatasetParams  # noqa: E402
from mgral_pipelines.pipelines.common import detector_settings  # noqa: E402


def std_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Sample std and its chi-square interval (normal data)."""
    n = len(values)
    std = float(np.std(values, ddof=1))
    low_q, high_q = stats.chi2.ppf([(1 + confidence) / 2, (1 - confidence) / 2], n - 1)
    return std, std * np.sqrt((n - 1) / low_q), std * np.sqrt((n - 1) / high_q)


def ratio_interval(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, ...]:
    """std(a) / std(b) and its interval from the F distribution of the variance ratio."""
    ratio = float(np.std(a, ddof=1) / np.std(b, ddof=1))
    da, db = len(a) - 1, len(b) - 1
    f_high, f_low = stats.f.ppf([(1 + confidence) / 2, (1 - confidence) / 2], da, db)
    return ratio, ratio / np.sqrt(f_high), ratio / np.sqrt(f_low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="transfer", help="Kedro env (profile)")
    parser.add_argument("--seeds", type=int, default=6, help="detector seeds per schedule")
    parser.add_argument("--extra", type=int, default=80, help="pool images added to L_0")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="CSV of every training")
    args = parser.parse_args()

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        index, oracle = catalog.load("image_index"), catalog.load("oracle_annotations")
    require_development(params, index, [args.split_seed], "the detector noise study")
    sizes = DatasetParams(**params["dataset"]).splits
    ids = [record["image_id"] for record in index["images"]]
    split = al_state.split_ids(ids, sizes.val, sizes.test, sizes.initial, args.split_seed)
    rng = np.random.default_rng(args.split_seed)
    labelled = split["initial"] + sorted(rng.choice(split["pool"], args.extra, replace=False))
    profile, run_dir = detector_settings(params["detector"])
    steps = profile.epochs * math.ceil(
        max(profile.images_per_epoch or 0, len(labelled)) / profile.batch)
    epochs = max(1, round(steps / math.ceil(len(labelled) / profile.batch)))
    schedules = {
        "epochs": dataclasses.replace(profile, epochs=epochs, images_per_epoch=None,
                                      warmup_epochs=3.0, warmup_bias_lr=0.1, checkpoint="best"),
        "profile": profile,
    }
    print(f"{args.env}: {len(labelled)} labelled images, V {len(split['val'])}, "
          f"T {len(split['test'])}; {args.seeds} detector seeds per schedule", flush=True)
    rows = []
    for name, config in schedules.items():
        for seed in range(args.seeds):
            started = time.perf_counter()
            checkpoint, info = adapter.train_detector(
                index["images"], oracle, index["classes"], labelled, split["val"],
                dataclasses.replace(config, seed=seed), run_dir / "noise" / name,
                progress=False, keep=config.checkpoint)
            test = adapter.evaluate_detector(checkpoint, index["images"], oracle,
                                             index["classes"], split["test"], config,
                                             progress=False)
            rows.append({"schedule": name, "seed": seed, "n_labelled": len(labelled),
                         "map50_95": test["map50_95"], "map50": test["map50"],
                         "optimizer_steps": info["optimizer_steps"],
                         "seconds": time.perf_counter() - started})
            print(f"  {name} seed {seed}: test mAP50-95 {test['map50_95']:.4f} "
                  f"({info['optimizer_steps']} steps, {rows[-1]['seconds']:.0f} s)", flush=True)
    frame = pd.DataFrame(rows)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    values = {name: group["map50_95"].to_numpy() for name, group in frame.groupby("schedule")}
    for name in schedules:
        std, low, high = std_interval(values[name])
        print(f"{name:>8}: mAP50-95 mean {values[name].mean():.4f}, std {std:.4f} "
              f"(95% CI {low:.4f}-{high:.4f})")
    ratio, low, high = ratio_interval(values["epochs"], values["profile"])
    print(f"std(epochs) / std(profile) = {ratio:.2f} (95% CI {low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main()
