"""The yardstick of MGRAL's reward: does the LUT predict what labelling a batch is really worth?

    kedro run --env transfer --pipeline=prepare
    python benchmarks/bench_reward_fidelity.py --env transfer --split-seed 0 --batches 30 \
        --repeats 2 --out docs/results/reward_fidelity/split0_l20_kernel_lr0.002.csv

A benchmark, not part of the method: it reads the oracle. On the split of `--split-seed` it trains
D_0 on L_0 with the profile's detector settings, builds the cycle's LUT with the `lut` pipeline's
own function (`build_lut`, the profile's K), then draws `--batches` held-out candidate batches the
way the LUT draws its own (same strata, another seed) and measures, for each, `--repeats` times
with different seeds:
  * the true gain: test mAP50-95 of D_0 fine-tuned on L_0 plus the batch *with its real labels*,
    minus that of D_0 fine-tuned on L_0 alone with the same seed and schedule (common random
    numbers: data order and augmentation shared, so their noise cancels in the difference). The
    schedule is the profile detector's steps per epoch for `--true-epochs` epochs;
  * the semi-supervised ΔmAP: the LUT's own measurement (a variant on L_0 + the batch without
    labels, minus the step-matched reference, on V), which is what the table stores;
  * the LUT's prediction for the batch (the agent's reward), read once.
With `--random-labelled N` it measures one cycle further on: N random pool images, labelled by the
oracle, join L_0 before D_t is trained (as random queries would have added them).
Reports, each with a 95% interval (Fisher z of Spearman's ρ, with Fieller's 1.06 variance factor):
the repeatability of one true-gain measurement (ρ between repeats: the ceiling of any correlation),
the same for the semi-supervised ΔmAP, ρ(semi-supervised ΔmAP, true gain) and ρ(LUT, true gain),
and the LUT's own leave-one-out ρ. Writes one row per (batch, repeat) to `--out` and the summary
beside it (`.json`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import spearmanr
from tqdm.auto import tqdm

if __package__ in (None, ""):  # `python benchmarks/<script>.py`: import the package from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks._project import ROOT, require_development  # noqa: E402
from benchmarks.retired_lookups import DETECTION_WEIGHTS, KernelReadout  # noqa: E402

from kedro.framework.session import KedroSession  # noqa: E402
from kedro.framework.startup import bootstrap_project  # noqa: E402

from mgral_pipelines import al_state  # noqa: E402
from mgral_pipelines import detector as adapter  # noqa: E402
from mgral_pipelines.config import AgentParams, ALParams, LUTParams  # noqa: E402
from mgral_pipelines.mgral import variants  # noqa: E402
from mgral_pipelines.mgral.candidates import pool_strata, sample_candidate_batches  # noqa: E402
from mgral_pipelines.mgral.features import confident_detections  # noqa: E402
from mgral_pipelines.mgral.lookup import Estimator, LookupConfig, LookupTable  # noqa: E402
from mgral_pipelines.pipelines.al_cycle.cycle import as_loaders  # noqa: E402
from mgral_pipelines.pipelines.benchmark.curves import seed_data  # noqa: E402
from mgral_pipelines.pipelines.common import cycle_key, detector_settings  # noqa: E402
from mgral_pipelines.pipelines.detector.nodes import train_detector  # noqa: E402
from mgral_pipelines.pipelines.embedding.nodes import (  # noqa: E402
    embed_images,
    predict_pool,
    reduce_embeddings,
)
from mgral_pipelines.pipelines.lut.nodes import build_lut  # noqa: E402


def spearman_interval(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Spearman's ρ with a 95% interval: Fisher z with Fieller's variance 1.06 / (n - 3)."""
    rho = float(spearmanr(x, y).statistic)
    n = len(x)
    half = 1.96 * np.sqrt(1.06 / (n - 3)) if n > 3 else float("nan")
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    return {"rho": rho, "low": float(np.tanh(z - half)), "high": float(np.tanh(z + half)), "n": n}


def yardstick_state(data: Any, oracle: dict[str, Any], random_labelled: int) -> dict[str, Any]:
    """The state the yardstick measures at: the split's L_0, plus `random_labelled` pool images
    (drawn with the split seed) labelled by the oracle, as random queries would have added them."""
    state = data.initial_state
    if not random_labelled:
        return state
    if not 0 < random_labelled < len(state["pool_ids"]):
        raise SystemExit(f"--random-labelled {random_labelled} must leave a pool: the pool of "
                         f"split {data.seed} has {len(state['pool_ids'])} images")
    rng = np.random.default_rng([data.seed, random_labelled])
    extra = sorted(rng.choice(state["pool_ids"], random_labelled, replace=False).tolist())
    return al_state.advance(state, extra, {i: oracle[i] for i in extra}, "random")


def _check_same_batches(held_out: list[dict[str, Any]], path: Path) -> None:
    """Exit unless the earlier run in `path` measured these batches (by their image ids)."""
    earlier = pd.read_csv(path).groupby("batch")["image_ids"].first()
    drawn = pd.Series([" ".join(batch["image_ids"]) for batch in held_out])
    if len(earlier) < len(drawn) or not (earlier.iloc[:len(drawn)].to_numpy()
                                         == drawn.to_numpy()).all():
        raise SystemExit(f"{path} was measured on other batches than this D_0 draws: give that "
                         "run's D_0 (--initial-detector) and the same --env, --split-seed and "
                         "--batches")


def _with_earlier_true_gains(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`frame` with the true gains of an earlier run, matched by batch and repeat and checked by
    the batch's stratum and object count (the same draw gives the same batches, if D_0 trains to
    the same weights: CPU thread scheduling can change them, and then this check fails)."""
    earlier = pd.read_csv(path).set_index(["batch", "repeat"])
    keys = list(zip(frame["batch"], frame["repeat"]))
    missing = [key for key in keys if key not in earlier.index]
    if missing:
        raise SystemExit(f"{path} has no true gain for (batch, repeat) {missing[:3]}: wait until "
                         "that run has finished, or measure with the same --batches and --repeats")
    matched = earlier.loc[keys]
    same = (matched["stratum"].fillna("").to_numpy()  # uniform batches have no stratum
            == frame["stratum"].fillna("").to_numpy()) & (
        matched["objects"].to_numpy() == frame["objects"].to_numpy())
    if "image_ids" in matched and "image_ids" in frame:
        same &= matched["image_ids"].to_numpy() == frame["image_ids"].to_numpy()
    if not same.all():
        raise SystemExit(f"{path} was measured on other batches (stratum or object count differ):"
                         " use the same --env, --split-seed and --batches")
    return frame.assign(true_gain=matched["true_gain"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="transfer")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=30, help="held-out candidate batches")
    parser.add_argument("--repeats", type=int, default=2, help="seeds per measurement")
    parser.add_argument("--true-epochs", type=int, default=2,
                        help="epochs (of detector.images_per_epoch images) of the true-gain "
                        "fine-tune")
    parser.add_argument("--lut-batches", type=int, default=None,
                        help="K of the LUT (default: the profile's lut.num_batches)")
    parser.add_argument("--lut-lr0", type=float, default=None,
                        help="lut.lr0 of the variants (default: the profile's)")
    parser.add_argument("--object-weighting", choices=["rarity", "uniform"], default=None,
                        help="lut.object_weighting of the table (default: the profile's)")
    parser.add_argument("--semi", action="append", default=[], metavar="KEY=VALUE",
                        help="override lut.semi_supervised (e.g. pseudo_label_conf=0.4), "
                        "repeatable")
    parser.add_argument("--lookup", action="append", default=[], metavar="KEY=VALUE",
                        help="override agent.lookup, how the LUT is read (e.g. bandwidth=0.5); "
                        "estimator=kernel reads it with the retired kernel read-out "
                        "(benchmarks/retired_lookups.py, with detection_weights=[...]), "
                        "repeatable")
    parser.add_argument("--true-from", type=Path, default=None,
                        help="reuse the true gains of an earlier run's CSV (same split seed, "
                        "batches and repeats; checked batch by batch) and measure only the proxy")
    parser.add_argument("--initial-detector", type=Path, default=None,
                        help="D_0 to use instead of training one (e.g. an earlier run's "
                        "<run_dir>/reward_fidelity/<out stem>/cycle_0/lut/reference/"
                        "initial_weights.pt): same D_0, same held-out batches")
    parser.add_argument("--lut-only", action="store_true",
                        help="with --true-from: reuse its semi-supervised ΔmAPs as well and "
                        "measure only the LUT (its build and its predictions)")
    parser.add_argument("--random-labelled", type=int, default=0, metavar="N",
                        help="measure at a later state: N random pool images (seeded by the split "
                        "seed) labelled by the oracle and added to L_0 before D_t is trained, as "
                        "random queries would; one cycle further on than L_0")
    parser.add_argument("--out", type=Path, default=Path("docs/results/reward_fidelity/yardstick.csv"))
    parser.add_argument("--summarise-only", action="store_true",
                        help="train nothing: summarise the rows already in --out (joining "
                        "--true-from's true gains when given)")
    args = parser.parse_args()
    if args.lut_only and args.true_from is None:
        parser.error("--lut-only reuses an earlier run's measurements: give --true-from")
    if args.summarise_only:
        frame = pd.read_csv(args.out)
        if args.true_from is not None:
            frame = _with_earlier_true_gains(frame, args.true_from)
            frame.to_csv(args.out, index=False)
        report(frame, args, {"semi_supervised": dict(item.split("=", 1) for item in args.semi)})
        return

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        catalog, params = context.catalog, context.params
        index, oracle = catalog.load("image_index"), catalog.load("oracle_annotations")
    require_development(params, index, [args.split_seed], "the reward yardstick")
    data = seed_data(index, oracle, params["dataset"], args.split_seed)
    state = yardstick_state(data, oracle, args.random_labelled)
    scratch = Path(params["detector"]["run_dir"]) / "reward_fidelity" / args.out.stem
    detector = {**params["detector"], "run_dir": str(scratch), "seed": args.split_seed}
    al = {**params["al"], "strategy": "mgral"}
    lut = {**params["lut"], "seed": args.split_seed}
    if args.lut_batches is not None:
        lut["num_batches"] = args.lut_batches
    if args.lut_lr0 is not None:
        lut["lr0"] = args.lut_lr0
    if args.object_weighting is not None:
        lut["object_weighting"] = args.object_weighting
    overrides = dict(item.split("=", 1) for item in args.semi)
    lut["semi_supervised"] = {**lut.get("semi_supervised", {}),
                              **{k: yaml.safe_load(v) for k, v in overrides.items()}}
    reuse_true = args.true_from is not None
    started = time.perf_counter()

    # D_0, its embeddings and pool predictions, then the cycle's LUT: as al_cycle makes them.
    if args.initial_detector is not None:
        checkpoints = {cycle_key(state): args.initial_detector.read_bytes()}
        checkpoint = args.initial_detector
    else:
        checkpoints, _ = train_detector(state, index, data.eval_labels, detector)
        checkpoint = checkpoints[cycle_key(state)]
    raw, _ = embed_images(as_loaders(checkpoints), state, index, detector, params["embedding"])
    embeddings, _ = reduce_embeddings(as_loaders(raw), state, params["embedding"])
    detections = predict_pool(as_loaders(checkpoints), state, index, detector, al)

    # Held-out batches, drawn as the LUT draws its own, with another seed.
    params_lut = LUTParams(**lut)
    batch_size = params_lut.batch_size or ALParams(**al).budget
    vectors = embeddings[cycle_key(state)]
    row_of = {image_id: row for row, image_id in enumerate(vectors["image_ids"])}
    matrix = np.asarray(vectors["vectors"])
    pool = state["pool_ids"]
    strata = pool_strata(pool, matrix[[row_of[i] for i in pool]], detections[cycle_key(state)],
                         len(index["classes"]), params_lut.clusters, seed=params_lut.seed,
                         min_size=max(1, batch_size // 4))
    held_out = sample_candidate_batches(pool, args.batches, batch_size,
                                        [params_lut.seed + 1000, state["cycle"]], strata,
                                        params_lut.stratified_share)
    if reuse_true:  # before any training: another D_0 draws other batches
        _check_same_batches(held_out, args.true_from)

    lookup = {**AgentParams(**params["agent"]).lookup,
              **{k: yaml.safe_load(v) for k, v in (i.split("=", 1) for i in args.lookup)}}
    readout = lookup.pop("estimator", "trend")
    weights = tuple(lookup.pop("detection_weights", DETECTION_WEIGHTS))
    if readout not in ("trend", "kernel"):
        raise SystemExit(f"--lookup estimator={readout}: trend (shipped) or kernel (retired)")
    agent = {**params["agent"], "lookup": lookup}
    tables, _ = build_lut(state, index, data.eval_labels, as_loaders(checkpoints),
                          as_loaders(embeddings), as_loaders(detections), detector, lut,
                          agent, al)
    table = tables[cycle_key(state)]
    (scratch / "lut.json").write_text(json.dumps(table))  # for a look at the entries afterwards
    if readout == "kernel":  # the retired read-out of the same table, its fidelity too
        estimate = KernelReadout(LookupTable.from_lut(table), lookup.get("bandwidth"), weights)
        table["fidelity"] = estimate.fidelity()
        lookup = {"estimator": readout, **lookup, "detection_weights": list(weights)}
    else:
        estimate = Estimator(LookupTable.from_lut(table), LookupConfig(**lookup))
        lookup = {"estimator": readout, **lookup}
    print(f"LUT: {len(table['entries'])} entries, fidelity {table['fidelity']} "
          f"({time.perf_counter() - started:.0f} s)", flush=True)

    config, _ = detector_settings(detector)
    true_config = dataclasses.replace(config, epochs=args.true_epochs, warmup_epochs=0.0,
                                      checkpoint="last")
    semi_config = adapter.DetectorConfig(**table["schedule"]["detector"])
    semi = adapter.SemiSupervisedConfig(**table["schedule"]["semi_supervised"])
    test_ids = sorted(data.eval_labels["test"])
    labels = {**state["labels"], **data.eval_labels["val"], **data.eval_labels["test"]}

    def true_map(train_ids: list[str], seed: int, name: str) -> float:
        annotations = {**labels, **{i: oracle[i] for i in train_ids}}
        weights, _ = adapter.train_detector(
            index["images"], annotations, index["classes"], train_ids,
            sorted(data.eval_labels["val"]), dataclasses.replace(true_config, seed=seed),
            scratch / "true" / name, initial_weights=checkpoint, progress=False)
        return adapter.evaluate_detector(weights, index["images"], annotations, index["classes"],
                                         test_ids, true_config, progress=False)["map50_95"]

    def semi_map(unlabelled: list[str], seed: int, name: str) -> float:
        job = variants.VariantJob(
            name=name, unlabelled_ids=unlabelled, records=index["images"],
            annotations={**state["labels"], **data.eval_labels["val"]}, classes=index["classes"],
            labelled_ids=state["labelled_ids"], val_ids=sorted(data.eval_labels["val"]),
            config=dataclasses.replace(semi_config, seed=seed), semi=semi,
            initial_weights=checkpoint, run_dir=str(scratch / "semi" / name))
        return variants.train_variant(job)[table["map_metric"]]

    references = {
        r: (None if reuse_true else true_map(state["labelled_ids"], r, "reference"),
            None if args.lut_only else semi_map([], r, "reference"))
        for r in range(args.repeats)}
    rows = []
    earlier = pd.read_csv(args.true_from).set_index(["batch", "repeat"]) if args.lut_only else None
    for k, batch in enumerate(tqdm(held_out, desc="held-out batches", unit="batch")):
        prediction = estimate(matrix[[row_of[i] for i in batch["image_ids"]]],
                              [confident_detections(detections[cycle_key(state)][i],
                                                    class_weights=table.get("class_weights"))
                               for i in batch["image_ids"]])
        objects = sum(len(oracle[i]) for i in batch["image_ids"])
        for r in range(args.repeats):
            if reuse_true:
                true_gain = float("nan")  # read from --true-from once every proxy is measured
            else:
                true_gain = true_map(state["labelled_ids"] + batch["image_ids"], r, "batch") \
                    - references[r][0]
            if earlier is not None:  # checked against the batch with the true gains below
                semi_delta = float(earlier.loc[(k, r), "semi_delta"])
            else:
                semi_delta = semi_map(batch["image_ids"], r, "batch") - references[r][1]
            rows.append({"batch": k, "stratum": batch["stratum"], "share": batch["share"],
                         "repeat": r, "true_gain": true_gain, "semi_delta": semi_delta,
                         "lut_prediction": prediction, "objects": objects,
                         "predicted_objects": sum(
                             confident_detections(detections[cycle_key(state)][i])
                             for i in batch["image_ids"]),
                         "image_ids": " ".join(batch["image_ids"]),
                         "lut_loo_spearman": table["fidelity"]["loo_spearman"],
                         "lut_detection_weight": estimate.detection_weight
                         if readout == "kernel" else 0.0})
        frame = pd.DataFrame(rows)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)  # after every batch: an interrupted run keeps its rows

    if reuse_true:
        frame = _with_earlier_true_gains(frame, args.true_from)
        frame.to_csv(args.out, index=False)
    report(frame, args, {"semi_supervised": lut["semi_supervised"], "lut_lr0": lut.get("lr0"),
                         "lookup": lookup,
                         "object_weighting": LUTParams(**lut).object_weighting,
                         # leave-one-out ρ and skill, chosen bandwidth, detection weight, slope
                         "lut_fidelity": table["fidelity"],
                         "initial_detector": str(args.initial_detector or "trained"),
                         "reused": str(args.true_from) if reuse_true else None,
                         "lut_batches": lut["num_batches"], "batch_size": batch_size,
                         "labelled": len(state["labelled_ids"]),
                         "seconds": time.perf_counter() - started})


def correlations(frame: pd.DataFrame) -> dict[str, Any]:
    """The yardstick's ρs (with 95% intervals) and gain statistics of the rows in `frame`, one
    entry per batch (means over repeats); rows written before `predicted_objects` existed skip
    the ρs that need it."""
    wide = frame.pivot_table(index="batch", columns="repeat", values=["true_gain", "semi_delta"])
    means = frame.groupby("batch")[["true_gain", "semi_delta", "lut_prediction"]].mean()
    batch = frame.groupby("batch")
    result = {
        "true_gain_repeatability": spearman_interval(wide[("true_gain", 0)],
                                                     wide[("true_gain", 1)]),
        "semi_delta_repeatability": spearman_interval(wide[("semi_delta", 0)],
                                                      wide[("semi_delta", 1)]),
        "semi_vs_true": spearman_interval(means["semi_delta"], means["true_gain"]),
        "lut_vs_true": spearman_interval(means["lut_prediction"], means["true_gain"]),
        "objects_vs_true": spearman_interval(batch["objects"].first(), means["true_gain"]),
    }
    if "predicted_objects" in frame:  # D_0's confident detections: what a strategy may count
        detected = batch["predicted_objects"].first()
        result |= {
            "detected_objects_vs_true": spearman_interval(detected, means["true_gain"]),
            "semi_vs_detected_objects": spearman_interval(means["semi_delta"], detected),
            "lut_vs_detected_objects": spearman_interval(means["lut_prediction"], detected),
        }
    return result | {
        "true_gain_mean": float(means["true_gain"].mean()),
        "true_gain_std_between_batches": float(means["true_gain"].std()),
        "semi_delta_mean": float(means["semi_delta"].mean()),
    }


def report(frame: pd.DataFrame, args: argparse.Namespace, run: dict[str, Any]) -> None:
    """The summary of the rows in `frame`: printed and written beside `--out` (`.json`)."""
    summary = {
        "env": args.env, "split_seed": args.split_seed, "batches": int(frame["batch"].nunique()),
        "repeats": int(frame["repeat"].nunique()), **run,
        "lut_loo_spearman": float(frame["lut_loo_spearman"].iloc[0])
        if "lut_loo_spearman" in frame else None,  # rows written before the column existed
        **correlations(frame),
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print_summary(summary)


def print_summary(summary: dict[str, Any]) -> None:
    for key, value in summary.items():
        if isinstance(value, dict) and "rho" in value:
            print(f"{key:>26}: ρ = {value['rho']:+.3f} (95% CI {value['low']:+.3f} to "
                  f"{value['high']:+.3f}, n = {value['n']})")
        else:
            print(f"{key:>26}: {value}")

if __name__ == "__main__":
    main()
