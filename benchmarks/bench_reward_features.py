"""What could a reward see? Batch features against the yardstick's true gains.

    python benchmarks/bench_reward_features.py docs/results/reward_fidelity/split0_l20_uniform.csv \
        docs/results/reward_fidelity/split1_l20_uniform.csv --env transfer \
        --out docs/results/reward_features/l20.csv

A benchmark, not part of the method: it reads the oracle. For each `bench_reward_fidelity.py` run
(its CSV and the summary beside it), it rebuilds that run's state (split seed, and the random
labels of `--random-labelled`), takes D_t (the run's own checkpoint,
`<run_dir>/reward_fidelity/<stem>/cycle_<t>/lut/reference/initial_weights.pt`, or a fresh training
where that is gone), and computes for each held-out batch:
  * what the oracle knows (the ceiling of a reward that could see labels):
      - `oracle_objects`: the batch's objects;
      - `oracle_class_gain`: Σ_c log(1 + n_c(L_t) + n_c(batch)) − log(1 + n_c(L_t)), the labels'
        worth if each class's AP grows with the log of its labelled objects and mAP averages the
        classes: an object of a class L_t barely holds counts most;
      - `oracle_classes`: how many classes the batch holds;
  * what D_t gives a reward without labels (`mgral.features`' confidence):
      - `detected_objects`: confident detections (what the `trend` read-out ranks by);
      - `detected_class_gain`: `oracle_class_gain` with D_t's confident detections per predicted
        class for the batch's counts (L_t's counts are its labels);
      - `detected_rarity_weighted`: Σ_c n̂_c(batch) / (1 + n_c(L_t)), the first-order term of
        that gain, a per-image sum a look-up coordinate could carry;
      - `detected_score_class_gain`: the class gain with soft counts, the summed class scores of
        all the detections the strategies see (`al.pool_detection_conf`), for a D_t whose
        confident detections fall into one class;
      - `embedding_distance_to_labelled`: W2² between the batch's and L_t's embeddings;
      - `embedding_cluster_gain`: the class gain with k-means clusters of the embeddings (as many
        as there are classes, fitted on L_t and the pool) for classes: what a reward could use if
        the embedding's clusters were the classes;
  * `lut_prediction` and `semi_delta`, the run's own.
Reports Spearman's ρ of each with the mean true gain (95% interval as the yardstick's), per run and
pooled over the runs (`pool_yardsticks.pooled_interval`). Writes the ρs to `--out`, the per-batch
features beside it (`_batches.csv`) and a chart (`.png`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import ot  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import ROOT, require_development  # noqa: E402
from benchmarks.bench_reward_fidelity import spearman_interval, yardstick_state  # noqa: E402
from benchmarks.pool_yardsticks import pooled_interval  # noqa: E402

from kedro.framework.session import KedroSession  # noqa: E402
from kedro.framework.startup import bootstrap_project  # noqa: E402

from mgral_pipelines.mgral.features import OBJECT_CONFIDENCE, class_counts  # noqa: E402
from mgral_pipelines.pipelines.al_cycle.cycle import as_loaders  # noqa: E402
from mgral_pipelines.pipelines.benchmark.curves import seed_data  # noqa: E402
from mgral_pipelines.pipelines.common import cycle_key  # noqa: E402
from mgral_pipelines.pipelines.detector.nodes import train_detector  # noqa: E402
from mgral_pipelines.pipelines.embedding.nodes import (  # noqa: E402
    embed_images,
    predict_pool,
    reduce_embeddings,
)

ORACLE = ("oracle_objects", "oracle_class_gain", "oracle_classes")
LABEL_FREE = ("detected_objects", "detected_class_gain", "detected_rarity_weighted",
              "detected_score_class_gain", "embedding_distance_to_labelled",
              "embedding_cluster_gain")
RUN_OWN = ("lut_prediction", "semi_delta")


def class_gain(labelled: np.ndarray, batch: np.ndarray) -> float:
    """Σ_c log(1 + n_c(L) + n_c(batch)) − log(1 + n_c(L)) for per-class object counts."""
    return float(np.sum(np.log1p(labelled + batch) - np.log1p(labelled)))


@dataclass(frozen=True)
class Labelled:
    """What the features compare a batch with: L_t's class counts (from its labels), embeddings
    and counts per embedding cluster."""

    classes: np.ndarray
    points: np.ndarray
    clusters: np.ndarray


def batch_features(batch_ids: list[str], labelled: Labelled, oracle: dict[str, Any],
                   detections: dict[str, Any], points_of: Callable[[list[str]], np.ndarray],
                   cluster_of: Mapping[str, int]) -> dict[str, float]:
    """The module doc's features of one batch; `points_of` gives the embeddings of a list of image
    ids, `cluster_of` an image's embedding cluster."""
    num_classes = len(labelled.classes)
    truth = class_counts([a for i in batch_ids for a in oracle[i]], num_classes)
    seen = class_counts([d for i in batch_ids for d in detections[i]
                         if d["score"] >= OBJECT_CONFIDENCE], num_classes)
    scored = np.sum([d["class_scores"] for i in batch_ids for d in detections[i]]
                    or [np.zeros(num_classes)], axis=0)
    clusters = np.bincount([cluster_of[i] for i in batch_ids],
                           minlength=len(labelled.clusters)).astype(np.float64)
    points = points_of(batch_ids)
    return {
        "oracle_objects": float(truth.sum()),
        "oracle_class_gain": class_gain(labelled.classes, truth),
        "oracle_classes": float(np.count_nonzero(truth)),
        "detected_objects": float(seen.sum()),
        "detected_class_gain": class_gain(labelled.classes, seen),
        "detected_rarity_weighted": float(np.sum(seen / (1 + labelled.classes))),
        "detected_score_class_gain": class_gain(labelled.classes, scored),
        "embedding_distance_to_labelled": float(ot.emd2(
            ot.unif(len(points)), ot.unif(len(labelled.points)),
            ot.dist(points, labelled.points))),
        "embedding_cluster_gain": class_gain(labelled.clusters, clusters),
    }


def run_features(csv: Path, context: dict[str, Any]) -> pd.DataFrame:
    """One row per held-out batch of the yardstick run in `csv`: its features and true gain."""
    summary_path = csv.with_suffix(".json")
    if not summary_path.is_file():
        raise SystemExit(f"{csv} has no summary beside it ({summary_path.name}): it is not a "
                         "finished bench_reward_fidelity.py run")
    summary = json.loads(summary_path.read_text())
    index, oracle, params = context["index"], context["oracle"], context["params"]
    require_development(params, index, [summary["split_seed"]], "the reward feature study")
    data = seed_data(index, oracle, params["dataset"], summary["split_seed"])
    initial = len(data.initial_state["labelled_ids"])
    state = yardstick_state(data, oracle, summary.get("labelled", initial) - initial)
    detector = {**params["detector"], "seed": summary["split_seed"],
                "run_dir": str(Path(params["detector"]["run_dir"]) / "reward_features" / csv.stem)}
    weights = (Path(params["detector"]["run_dir"]) / "reward_fidelity" / csv.stem
               / cycle_key(state) / "lut" / "reference" / "initial_weights.pt")
    if weights.is_file():
        checkpoints = {cycle_key(state): weights.read_bytes()}
    else:
        print(f"{csv.stem}: {weights} is gone, training D_t again", flush=True)
        checkpoints, _ = train_detector(state, index, data.eval_labels, detector)
    raw, _ = embed_images(as_loaders(checkpoints), state, index, detector, params["embedding"])
    embeddings, _ = reduce_embeddings(as_loaders(raw), state, params["embedding"])
    detections = predict_pool(as_loaders(checkpoints), state, index, detector,
                              {**params["al"], "strategy": "mgral"})
    rows = pd.read_csv(csv)
    batches = rows.groupby("batch").agg(
        image_ids=("image_ids", "first"), true_gain=("true_gain", "mean"),
        lut_prediction=("lut_prediction", "first"), semi_delta=("semi_delta", "mean"))
    vectors = embeddings[cycle_key(state)]
    row_of = {image_id: row for row, image_id in enumerate(vectors["image_ids"])}
    matrix = np.asarray(vectors["vectors"], dtype=np.float64)

    def points_of(ids: list[str]) -> np.ndarray:
        return matrix[[row_of[i] for i in ids]]

    num_classes = len(index["classes"])
    clusters = KMeans(n_clusters=num_classes, n_init=10, random_state=0).fit_predict(matrix)
    cluster_of = dict(zip(vectors["image_ids"], clusters))
    labelled = Labelled(
        classes=class_counts([a for i in state["labelled_ids"] for a in state["labels"][i]],
                             num_classes),
        points=points_of(state["labelled_ids"]),
        clusters=np.bincount([cluster_of[i] for i in state["labelled_ids"]],
                             minlength=num_classes).astype(np.float64))
    features = [batch_features(ids.split(), labelled, oracle, detections[cycle_key(state)],
                               points_of, cluster_of)
                for ids in batches["image_ids"]]
    return batches.join(pd.DataFrame(features, index=batches.index)).assign(
        run=csv.stem, split_seed=summary["split_seed"], labelled=len(state["labelled_ids"]),
        d_t="run's own" if weights.is_file() else "trained again")


def correlate(batches: pd.DataFrame) -> pd.DataFrame:
    """ρ(feature, mean true gain) with its interval, per run and pooled over the runs."""
    rows = []
    for feature in ORACLE + LABEL_FREE + RUN_OWN:
        per_run = {run: spearman_interval(group[feature].to_numpy(),
                                          group["true_gain"].to_numpy())
                   for run, group in batches.groupby("run", sort=False)}
        per_run["pooled"] = pooled_interval(list(per_run.values()))
        rows += [{"run": run, "feature": feature, **interval}
                 for run, interval in per_run.items()]
    return pd.DataFrame(rows)


def plot(table: pd.DataFrame, path: Path, labels: dict[str, str]) -> None:
    """ρ with its 95% interval per feature: one marker per run (`labels` name them), a bar for
    the pool."""
    features = list(dict.fromkeys(table["feature"]))
    runs = [run for run in dict.fromkeys(table["run"]) if run != "pooled"]
    figure, axes = plt.subplots(figsize=(9, 0.5 * len(features) + 2))
    pooled = table[table["run"] == "pooled"].set_index("feature").loc[features]
    positions = np.arange(len(features))[::-1]
    colours = ["tab:grey" if f in ORACLE else "tab:blue" if f in LABEL_FREE else "tab:orange"
               for f in features]
    axes.barh(positions, pooled["rho"], color=colours, alpha=0.4)
    axes.errorbar(pooled["rho"], positions, xerr=[pooled["rho"] - pooled["low"],
                                                  pooled["high"] - pooled["rho"]],
                  fmt="none", ecolor="black", capsize=3)
    for offset, run in zip(np.linspace(-0.25, 0.25, len(runs)), runs):
        values = table[table["run"] == run].set_index("feature").loc[features]
        axes.plot(values["rho"], positions + offset, "o", markersize=4, label=labels[run])
    axes.axvline(0, color="black", linewidth=0.8)
    axes.axvline(0.5, color="tab:red", linestyle="--", linewidth=0.8, label="issue 8's target")
    axes.set_yticks(positions, features)
    axes.set_xlabel("Spearman ρ with the true gain (bar: pooled, 95% interval; dots: runs)")
    axes.set_title("Grey: the oracle's features; blue: D_t's, without labels; orange: the run's")
    axes.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="bench_reward_fidelity.py CSVs")
    parser.add_argument("--env", default="transfer")
    parser.add_argument("--out", type=Path, default=Path("docs/results/reward_features/features.csv"))
    args = parser.parse_args()
    missing = [str(path) for path in args.runs if not path.is_file()]
    if missing:
        raise SystemExit(f"no such yardstick CSV: {', '.join(missing)}")
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        loaded = {"index": context.catalog.load("image_index"),
                  "oracle": context.catalog.load("oracle_annotations"), "params": context.params}
    batches = pd.concat([run_features(path, loaded) for path in args.runs])
    table = correlate(batches)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    batches.to_csv(args.out.with_name(f"{args.out.stem}_batches.csv"))
    labels = {run: f"{run}: split {group['split_seed'].iloc[0]}, |L_t| = "
              f"{group['labelled'].iloc[0]}" for run, group in batches.groupby("run")}
    plot(table, args.out.with_suffix(".png"), labels)
    wide = table.assign(value=[f"{r:+.2f} ({lo:+.2f} to {hi:+.2f})" for r, lo, hi
                               in zip(table["rho"], table["low"], table["high"])])
    print(wide.pivot(index="feature", columns="run", values="value")
          .loc[list(ORACLE + LABEL_FREE + RUN_OWN)].to_string())


if __name__ == "__main__":
    main()
