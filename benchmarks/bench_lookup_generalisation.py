"""Which look-up carries the semi-supervised ΔmAP to batches it has not seen? A follow-up of the
yardstick (bench_reward_fidelity.py), reusing its held-out batches, their measurements and its D_0:

    python benchmarks/bench_lookup_generalisation.py --env transfer --split-seed 0 \
        --rows docs/results/reward_fidelity/split0_l20_kernel.csv \
        --weights data/06_models/runs/reward_fidelity/split0_l20_kernel/cycle_0/lut/reference/initial_weights.pt \
        --out docs/results/lookup_generalisation/split0_l20.csv

A benchmark, not part of the method: it reads the true gains the yardstick measured with the oracle.
The yardstick's 30 held-out batches were drawn the way the LUT draws its entries and each carries
the semi-supervised ΔmAP a LUT entry would store, so leaving one batch out and reading its ΔmAP off
a table of the other 29 is a LUT of K = 29 asked about a new batch. Each look-up below is asked so,
for every batch; the report is Spearman's ρ (95% interval) of its predictions with the batch's
semi-supervised ΔmAP (what the look-up is fitted to) and with its true gain (what it is for).
Only what a strategy may see enters the look-ups: D_0's embeddings (as the `embedding` pipeline
makes them from the yardstick's D_0 weights) and D_0's detections on the pool. The look-ups are
fitted to the mean of the yardstick's repeats, or with `--repeat R` to repeat R alone (one
measurement per batch, as a LUT entry holds).

Look-ups:
  * `wasserstein_kernel`: MGRAL's (kernel regression on exp(-W/h), W the Wasserstein distance
    between the batches' embeddings, h by leave-one-out cross-validation within the 29);
  * `mean_embedding_kernel`: the same kernel on the distance between the batches' mean embeddings;
  * `wasserstein_objects_kernel`: MGRAL's kernel with one more coordinate per image, its number of
    detections (standardised over the pool) times a weight s; s and h are both chosen by
    leave-one-out within the 29 (s = 0 is MGRAL's kernel), so the held-out batch chooses neither;
  * `predicted_objects_linear`: a least-squares line on the number of D_0's detections in the batch
    with a score of at least `--object-conf`;
  * `predicted_objects` itself (no look-up: its rank is the prediction), for reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import ROOT, require_development  # noqa: E402
from benchmarks.bench_reward_fidelity import spearman_interval  # noqa: E402

from kedro.framework.session import KedroSession  # noqa: E402
from kedro.framework.startup import bootstrap_project  # noqa: E402

from mgral_pipelines.mgral.lookup import (  # noqa: E402
    LookupTable,
    choose_bandwidth,
    entry_distances,
    kernel_regression,
    leave_one_out,
)
from mgral_pipelines.pipelines.al_cycle.cycle import as_loaders  # noqa: E402
from mgral_pipelines.pipelines.benchmark.curves import seed_data  # noqa: E402
from mgral_pipelines.pipelines.common import cycle_key  # noqa: E402
from mgral_pipelines.pipelines.embedding.nodes import (  # noqa: E402
    embed_images,
    predict_pool,
    reduce_embeddings,
)


WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def kernel_leave_one_out(distances: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each batch's target from the others, with the bandwidth cross-validated on the others only
    (so the held-out batch never chooses its own h)."""
    predictions = []
    for k in range(len(target)):
        rest = np.flatnonzero(np.arange(len(target)) != k)
        bandwidth = choose_bandwidth(distances[np.ix_(rest, rest)], target[rest])
        predictions.append(kernel_regression(distances[k, rest], target[rest], bandwidth))
    return np.array(predictions)


def _loo_error(distances: np.ndarray, target: np.ndarray) -> float:
    bandwidth = choose_bandwidth(distances, target)
    return float(np.mean((leave_one_out(distances, target, bandwidth) - target) ** 2))


def weighted_kernel_leave_one_out(distances: dict[float, np.ndarray],
                                  target: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """`kernel_leave_one_out` over the distance matrices of several feature weights: for each
    held-out batch the weight (and bandwidth) with the least leave-one-out error on the others."""
    predictions, chosen = [], []
    for k in range(len(target)):
        rest = np.flatnonzero(np.arange(len(target)) != k)
        weight = min(distances, key=lambda w: _loo_error(distances[w][np.ix_(rest, rest)],
                                                         target[rest]))
        matrix = distances[weight]
        bandwidth = choose_bandwidth(matrix[np.ix_(rest, rest)], target[rest])
        predictions.append(kernel_regression(matrix[k, rest], target[rest], bandwidth))
        chosen.append(weight)
    return np.array(predictions), chosen


def wasserstein_matrix(clouds: list[np.ndarray]) -> np.ndarray:
    """The batches' pairwise Wasserstein distances, as the LUT computes them between its entries."""
    return entry_distances(LookupTable(clouds, np.zeros(len(clouds))))


def linear_leave_one_out(feature: np.ndarray, target: np.ndarray) -> np.ndarray:
    predictions = []
    for k in range(len(target)):
        rest = np.arange(len(target)) != k
        slope, intercept = np.polyfit(feature[rest], target[rest], 1)
        predictions.append(slope * feature[k] + intercept)
    return np.array(predictions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="transfer")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--rows", type=Path, required=True, help="the yardstick's CSV")
    parser.add_argument("--weights", type=Path, required=True, help="the yardstick's D_0 (.pt)")
    parser.add_argument("--object-conf", type=float, default=0.25)
    parser.add_argument("--repeat", type=int, default=None,
                        help="fit the look-ups to this one repeat's semi-supervised ΔmAP, one "
                        "measurement per batch as a LUT entry holds (default: the repeats' mean)")
    parser.add_argument("--out", type=Path, default=Path("docs/results/lookup_generalisation/generalisation.csv"))
    args = parser.parse_args()
    for path in (args.rows, args.weights):
        if not path.is_file():
            raise SystemExit(f"{path}: no such file (run bench_reward_fidelity.py first)")

    rows = pd.read_csv(args.rows)
    if args.repeat is not None:
        rows = rows.assign(semi_delta=rows["batch"].map(
            rows[rows["repeat"] == args.repeat].set_index("batch")["semi_delta"]))
    batches = rows.groupby("batch").agg(
        image_ids=("image_ids", "first"), semi_delta=("semi_delta", "mean"),
        true_gain=("true_gain", "mean"), stored_lut_prediction=("lut_prediction", "first"))
    batches["image_ids"] = batches["image_ids"].str.split(" ")

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        index, oracle = catalog.load("image_index"), catalog.load("oracle_annotations")
    require_development(params, index, [args.split_seed], "the look-up generalisation study")
    state = seed_data(index, oracle, params["dataset"], args.split_seed).initial_state
    pool = set(state["pool_ids"])
    outside = sorted({i for ids in batches["image_ids"] for i in ids} - pool)
    if outside:
        raise SystemExit(f"{args.rows}: {len(outside)} batch images are not in split "
                         f"{args.split_seed}'s pool (e.g. {outside[:3]}): use the yardstick's "
                         "--env and --split-seed")
    checkpoints = as_loaders({cycle_key(state): args.weights.read_bytes()})
    raw, _ = embed_images(checkpoints, state, index, params["detector"], params["embedding"])
    embeddings, _ = reduce_embeddings(as_loaders(raw), state, params["embedding"])
    detections = predict_pool(checkpoints, state, index, params["detector"],
                              params["al"])[cycle_key(state)]
    vectors = embeddings[cycle_key(state)]
    row_of = {image_id: row for row, image_id in enumerate(vectors["image_ids"])}
    matrix = np.asarray(vectors["vectors"])
    clouds = [matrix[[row_of[i] for i in ids]] for ids in batches["image_ids"]]

    size = len(clouds)
    wasserstein = wasserstein_matrix(clouds)
    means = np.stack([cloud.mean(axis=0) for cloud in clouds])
    mean_distance = ((means[:, None, :] - means[None, :, :]) ** 2).sum(axis=-1)
    predicted_objects = np.array([
        sum(d["score"] >= args.object_conf for i in ids for d in detections.get(i, []))
        for ids in batches["image_ids"]], dtype=float)

    # Per image: its detections, standardised over the pool, as one more embedding coordinate
    # whose spread is `weight` times the embeddings' own (root of their total variance).
    pool_ids = state["pool_ids"]
    per_image = np.array([sum(d["score"] >= args.object_conf for d in detections.get(i, []))
                          for i in pool_ids], dtype=float)
    standard = dict(zip(pool_ids, (per_image - per_image.mean()) / (per_image.std() or 1.0)))
    spread = float(np.sqrt(matrix[[row_of[i] for i in pool_ids]].var(axis=0).sum()))
    weighted = {}
    for weight in tqdm(WEIGHTS, desc="feature weights", unit="weight"):
        weighted[weight] = wasserstein_matrix([
            np.column_stack([cloud, weight * spread * np.array([standard[i] for i in ids])])
            for cloud, ids in zip(clouds, batches["image_ids"])])

    semi = batches["semi_delta"].to_numpy()
    with_objects, chosen = weighted_kernel_leave_one_out(weighted, semi)
    lookups = {
        "wasserstein_kernel": kernel_leave_one_out(wasserstein, semi),
        "mean_embedding_kernel": kernel_leave_one_out(mean_distance, semi),
        "wasserstein_objects_kernel": with_objects,
        "predicted_objects_linear": linear_leave_one_out(predicted_objects, semi),
        "predicted_objects": predicted_objects,
    }
    frame = batches.drop(columns="image_ids").assign(**lookups)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out)
    summary: dict[str, Any] = {"rows": str(args.rows), "env": args.env,
                               "split_seed": args.split_seed, "batches": size,
                               "object_conf": args.object_conf, "repeat": args.repeat,
                               "chosen_object_weights": chosen}
    for name, predictions in lookups.items():
        summary[name] = {"vs_semi_delta": spearman_interval(predictions, semi),
                         "vs_true_gain": spearman_interval(predictions, batches["true_gain"])}
    summary["semi_delta_vs_true_gain"] = spearman_interval(semi, batches["true_gain"])
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    for name, value in summary.items():
        if isinstance(value, dict) and "vs_true_gain" in value:
            semi_rho, true_rho = value["vs_semi_delta"], value["vs_true_gain"]
            print(f"{name:>26}: vs semi ΔmAP ρ {semi_rho['rho']:+.3f} "
                  f"({semi_rho['low']:+.2f} to {semi_rho['high']:+.2f}); vs true gain ρ "
                  f"{true_rho['rho']:+.3f} ({true_rho['low']:+.2f} to {true_rho['high']:+.2f})")
    rho = summary["semi_delta_vs_true_gain"]
    print(f"{'semi ΔmAP itself':>26}: vs true gain ρ {rho['rho']:+.3f} "
          f"({rho['low']:+.2f} to {rho['high']:+.2f})")


if __name__ == "__main__":
    main()
