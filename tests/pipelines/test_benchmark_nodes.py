"""Benchmark nodes without a detector: the summary's arithmetic, parameters, and the resume logic
of `run_benchmark` with the detector nodes replaced by fakes (the real ones: test_benchmark.py)."""

from __future__ import annotations

import json
import math
import re

import mlflow
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from kedro.pipeline import Node

from mgral_pipelines.pipelines.al_cycle.cycle import cycle_nodes
from mgral_pipelines.pipelines.benchmark import provenance, records
from mgral_pipelines.pipelines.benchmark.nodes import (
    CURVE_COLUMNS,
    BenchmarkParams,
    al_curve,
    labels_to_reach,
    normalised_auc,
    plot_al_curve,
    run_benchmark,
    seed_data,
    summarise,
)
from mgral_pipelines.pipelines.common import cycle_key

# --- summarise on a hand-made AL curve ------------------------------------------------------------

N = [10, 20, 30]
CURVES = {  # (strategy, seed) -> mAP50-95 at N
    ("random", 0): [0.1, 0.2, 0.3],
    ("random", 1): [0.1, 0.3, 0.4],
    ("coreset", 0): [0.1, 0.4, 0.5],   # reaches random's final 0.3 between 10 and 20
    ("coreset", 1): [0.1, 0.2, 0.3],   # never reaches random's 0.4
}


def _curve() -> pd.DataFrame:
    rows = [(s, seed, t, n, 2 * n, v, 2 * v) for (s, seed), values in CURVES.items()
            for t, (n, v) in enumerate(zip(N, values))]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def _results() -> list[dict]:
    results = []
    for (strategy, seed), values in CURVES.items():
        for t in range(len(values)):
            final = t == len(values) - 1
            classes = ["a", "a", "b"] if strategy == "coreset" else ["a", "a", "a", "a"]
            results.append({
                "strategy": strategy, "seed": seed, "cycle": t, "wall_time_s": 10.0 * (seed + 1),
                "query_seconds": None if final else 0.5,
                "query": None if final else {
                    "true_classes": classes, "image_ids": ["x", "y", "z"],
                    "boxes": len(classes), "empty_images": 1 if strategy == "coreset" else 0},
            })
    return results


def test_normalised_auc_is_the_mean_height_of_the_trapezoids():
    assert normalised_auc(np.array(N), np.array([0.1, 0.2, 0.3])) == pytest.approx(0.2)
    # Unequal spacing: (0.5 * 10 * (0 + 1) + 0.5 * 30 * (1 + 1)) / 40 = 35 / 40.
    assert normalised_auc(np.array([0, 10, 40]), np.array([0.0, 1.0, 1.0])) == pytest.approx(0.875)
    assert normalised_auc(np.array([5]), np.array([0.3])) == pytest.approx(0.3)  # one point


def test_labels_to_reach_interpolates_and_reports_never_as_nan():
    assert labels_to_reach(np.array(N), np.array([0.1, 0.4, 0.5]), 0.3) == pytest.approx(16.6667,
                                                                                        rel=1e-4)
    assert labels_to_reach(np.array(N), np.array([0.5, 0.6, 0.7]), 0.3) == 10.0  # from the start
    assert labels_to_reach(np.array(N), np.array([0.1, 0.4, 0.2]), 0.4) == 20.0  # exact hit
    assert math.isnan(labels_to_reach(np.array(N), np.array([0.1, 0.2, 0.3]), 0.4))


def test_summarise_on_a_hand_made_curve():
    summary = summarise(_curve(), _results()).set_index("strategy")

    assert list(summary.index) == ["random", "coreset"]
    random, coreset = summary.loc["random"], summary.loc["coreset"]
    # AUCs: random 0.2 (seed 0) and 0.275 (seed 1); coreset 0.35 and 0.2.
    assert random["auc_map50_95_mean"] == pytest.approx(0.2375)
    assert random["auc_map50_95_std"] == pytest.approx(np.std([0.2, 0.275], ddof=1))
    assert coreset["auc_map50_95_mean"] == pytest.approx(0.275)
    # Paired by seed: +0.15 and -0.075.
    assert coreset["auc_gain_vs_random_mean"] == pytest.approx(0.0375)
    assert coreset["auc_gain_vs_random_std"] == pytest.approx(np.std([0.15, -0.075], ddof=1))
    assert random["auc_gain_vs_random_mean"] == 0.0
    # Labels to reach random's final mAP of the same seed: seed 0 at 16.67 (0.1 -> 0.4 over
    # 10 -> 20 crosses 0.3 at 2/3), seed 1 never; random reaches its own at its last point.
    assert coreset["labels_to_reach_random_final"] == pytest.approx(10 + 10 * 2 / 3)
    assert coreset["reached_random_final"] == "1/2"
    assert random["labels_to_reach_random_final"] == 30.0
    assert random["reached_random_final"] == "2/2"
    # Queried objects over all seeds and cycles: coreset 2 cycles x 2 seeds x (a, a, b).
    assert json.loads(coreset["queried_classes"]) == {"a": 8, "b": 4}
    assert coreset["queried_class_entropy_nats"] == pytest.approx(
        -(2 / 3) * math.log(2 / 3) - (1 / 3) * math.log(1 / 3))
    assert random["queried_class_entropy_nats"] == 0.0
    # Wall time: per-seed totals 30 s and 60 s, averaged.
    assert random["wall_time_s"] == pytest.approx(45.0)
    assert random["query_seconds_per_cycle"] == pytest.approx(0.5)
    # Boxes: each query holds 3 images; coreset's 3 boxes with one empty frame, random's 4.
    assert coreset["queried_boxes_per_image"] == pytest.approx(1.0)
    assert random["queried_boxes_per_image"] == pytest.approx(4 / 3)
    assert coreset["empty_frame_share"] == pytest.approx(1 / 3)
    assert coreset["worst_query_empty_share"] == pytest.approx(1 / 3)
    assert random["empty_frame_share"] == 0.0
    assert coreset["final_boxes_mean"] == pytest.approx(60.0)  # 2 × 30 labelled images


def test_summarise_without_random_leaves_the_comparisons_empty():
    curve = _curve()
    summary = summarise(curve[curve["strategy"] == "coreset"], _results())
    row = summary.iloc[0]
    assert row["strategy"] == "coreset"
    assert math.isnan(row["auc_gain_vs_random_mean"])
    assert math.isnan(row["labels_to_reach_random_final"])
    assert row["reached_random_final"] == ""


def test_plot_al_curve_draws_one_line_per_strategy():
    figure = plot_al_curve(_curve())
    labelled = [line.get_label() for line in figure.axes[0].get_lines()
                if not line.get_label().startswith("_")]
    assert labelled == ["random", "coreset"]
    # Two seeds are too few for a readable 95% band: each seed's curve is drawn, dashed.
    assert not figure.axes[0].collections
    assert sum(line.get_linestyle() == "--" for line in figure.axes[0].get_lines()) == 4


# --- parameters -----------------------------------------------------------------------------------

VALID = {"strategies": ["random", "coreset"], "seeds": [0, 1], "cycles": 2, "budget": 3}
DATA_SETS = {"development": {"generator_seed": 0, "split_seeds": [0, 1]},
             "evaluation": {"generator_seed": 7, "split_seeds": [700, 701, 702]}}


def test_a_declared_data_set_gives_the_seeds_and_the_first_seeds_of_costly_baselines():
    params = BenchmarkParams(**{**VALID, "seeds": None, "data_sets": DATA_SETS,
                                "data_set": "evaluation", "max_seeds": {"coreset": 2}})
    assert params.run_seeds() == [700, 701, 702]
    assert params.strategies_of_seed(701) == ["random", "coreset"]
    assert params.strategies_of_seed(702) == ["random"]
    # The first N of the declared seeds, whichever seeds a run restricts itself to.
    only_last = BenchmarkParams(**{**VALID, "seeds": [702], "data_sets": DATA_SETS,
                                   "data_set": "evaluation", "max_seeds": {"coreset": 2}})
    assert only_last.strategies_of_seed(702) == ["random"]


@pytest.mark.parametrize("change, message", [
    ({"strategies": ["random", "magic"]}, "unknown strategies ['magic']"),
    ({"seeds": [0, 0]}, "duplicates"),
    ({"cycles": 0}, "greater than or equal to 1"),
    ({"cycle": 2}, "Extra inputs are not permitted"),
    ({"strategy_options": {"ppal": {}}}, "not benchmarked: ['ppal']"),
    ({"strategy_options": {"coreset": {"typo": 1}}}, "has no parameter typo"),
    ({"seeds": None}, "benchmark.seeds is required without a declared data_set"),
    ({"max_seeds": {"ppal": 2}}, "max_seeds needs benchmarked strategies"),
    ({"data_sets": DATA_SETS}, "set benchmark.data_set to the one this run reads"),
    ({"data_sets": DATA_SETS, "data_set": "evaluation", "seeds": [0, 700]},
     "seeds [0] are not split seeds of the evaluation data set"),
    ({"data_sets": {**DATA_SETS, "evaluation": {"generator_seed": 0, "split_seeds": [700]}},
      "data_set": "evaluation", "seeds": None}, "must differ in both"),
    ({"data_set": "evaluation", "seeds": None}, "is not declared in benchmark.data_sets"),
])
def test_benchmark_params_reject_mistakes(change, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        BenchmarkParams(**{**VALID, **change})


# --- run_benchmark with fake detector nodes -------------------------------------------------------

CLASSES = ["a", "b", "c"]


@pytest.fixture
def dataset():
    """40 images with 1-2 objects each: val 5, test 5, initial 5, pool 25."""
    rng = np.random.default_rng(0)
    ids = [f"{i:04d}" for i in range(40)]
    records = [{"image_id": i, "file": f"{i}.png", "width": 32, "height": 32} for i in ids]
    index = {"images": records, "classes": CLASSES}
    oracle = {i: [{"class_id": int(rng.integers(3)), "bbox": [0.0, 0.0, 8.0, 8.0]}
                  for _ in range(int(rng.integers(1, 3)))] for i in ids}
    return index, oracle, {"splits": {"val": 5, "test": 5, "initial": 5, "seed": 0}}


@pytest.fixture
def fakes(monkeypatch):
    """Replace the nodes that run ultralytics; record which states a detector was trained on."""
    trained: list[tuple[int, int]] = []

    def train_detector(state, image_index, eval_labels, detector):
        trained.append((state["cycle"], len(state["labelled_ids"])))
        return {cycle_key(state): b"weights"}, {}

    def evaluate_detector(checkpoints, state, image_index, eval_labels, detector):
        n = len(state["labelled_ids"])
        scores = {"map50_95": n / 100, "map50": n / 50}
        return {cycle_key(state): {"cycle": state["cycle"], "n_labelled": n,
                                   "test": scores, "val": scores}}

    def embed_images(checkpoints, state, image_index, detector, embedding):
        ids = state["pool_ids"] + state["labelled_ids"]
        vectors = np.random.default_rng(len(ids)).normal(size=(len(ids), 6)).astype(np.float32)
        return {cycle_key(state): {"image_ids": ids, "vectors": vectors}}, {}

    def predict_pool(checkpoints, state, image_index, detector, al):
        box = {"class_id": 1, "bbox": [0, 0, 8, 8], "score": 0.9, "class_scores": [0.1, 0.9, 0.0]}
        return {cycle_key(state): {i: [box] for i in state["pool_ids"]}}

    # The cycle's own nodes, with these functions in their places: the wiring stays al_cycle's.
    nodes = cycle_nodes()
    for fake in [train_detector, evaluate_detector, embed_images, predict_pool]:
        real = next(node for node in nodes.values() if node.name == fake.__name__)
        outputs = real.outputs if len(real.outputs) > 1 else real.outputs[0]
        for output in real.outputs:
            monkeypatch.setitem(nodes, output, Node(fake, real.inputs, outputs, name=real.name))
    return trained


def _run(dataset, tmp_path, al_changes=None, **benchmark):
    index, oracle, data_params = dataset
    params = {**VALID, "output_dir": str(tmp_path / "bench"), **benchmark}
    al = {"strategy": "mgral", "budget": 99, "seed": 7, "from_cycle": None,
          "strategy_options": {}, "pool_detection_conf": 0.05, **(al_changes or {})}
    return run_benchmark(index, oracle, params, data_params,
                         {"run_dir": str(tmp_path / "scratch"), "seed": 0},
                         {"batch_size": 4, "pca_components": 4}, {}, {}, al)


def test_run_benchmark_runs_every_strategy_from_the_seeds_split(dataset, tmp_path, fakes):
    assert mlflow.active_run() is None  # nothing to nest under: runs untracked
    results = _run(dataset, tmp_path)

    curve = al_curve(results)
    assert list(curve.columns) == CURVE_COLUMNS
    assert len(curve) == 2 * 2 * 3
    assert set(curve.groupby(["strategy", "seed"])["n_labelled"].apply(tuple)) == {(5, 8, 11)}
    assert list(curve["strategy"].drop_duplicates()) == ["random", "coreset"]
    # D_0 is trained once per seed and shared; then 2 more per (strategy, seed).
    assert len(fakes) == 2 * (1 + 2 * 2)

    runs = tmp_path / "bench" / "runs"
    for seed in (0, 1):
        first = {s: json.loads((runs / s / f"seed_{seed}" / "cycle_0.json").read_text())
                 for s in ("random", "coreset")}
        initial = seed_data(*dataset[:2], dataset[2], seed).initial_state
        assert first["random"]["labelled_ids"] == first["coreset"]["labelled_ids"]
        assert first["random"]["labelled_ids"] == initial["labelled_ids"]
        assert first["random"]["n_boxes"] == sum(len(b) for b in initial["labels"].values())
        assert first["random"]["metrics"] == first["coreset"]["metrics"]
    splits = [json.loads((runs / "random" / f"seed_{s}" / "cycle_0.json").read_text())
              for s in (0, 1)]
    assert splits[0]["labelled_ids"] != splits[1]["labelled_ids"]

    record = json.loads((runs / "coreset" / "seed_1" / "cycle_1.json").read_text())
    assert len(record["query"]["image_ids"]) == 3
    assert record["query"]["predicted_classes"] == ["b"] * 3
    oracle = dataset[1]
    assert record["query"]["true_classes"] == [
        CLASSES[box["class_id"]] for i in record["query"]["image_ids"] for box in oracle[i]]
    assert record["query"]["boxes"] == len(record["query"]["true_classes"])
    assert record["query"]["empty_images"] == 0  # every image of this oracle holds an object
    # The labelled boxes count the labels the learner owns: L_0's and the first query's.
    previous = json.loads((runs / "coreset" / "seed_1" / "cycle_0.json").read_text())
    assert record["n_boxes"] == previous["n_boxes"] + previous["query"]["boxes"]
    assert set(record["timings_s"]) >= {"train_detector", "embedding", "select_query"}
    assert record["code_version"] == provenance.code_version("coreset")
    assert record["git_commit"] and record["recorded_at"]
    last = json.loads((runs / "coreset" / "seed_1" / "cycle_2.json").read_text())
    assert last["query"] is None and len(last["labelled_ids"]) == 11
    assert "next_state" not in last and "state" not in last  # records stay small
    assert results[-1] == {k: v for k, v in last.items() if k != "recorded_at"}
    # Each summary row names the code its records were made by.
    summary = summarise(curve, results).set_index("strategy")
    assert summary.loc["coreset", "code_versions"] == provenance.code_version("coreset")


def test_run_benchmark_resumes_and_extends(dataset, tmp_path, fakes):
    first = al_curve(_run(dataset, tmp_path, seeds=[0]))
    (tmp_path / "bench" / "runs" / "coreset" / "seed_0" / "cycle_2.json").unlink()
    fakes.clear()

    pd.testing.assert_frame_equal(al_curve(_run(dataset, tmp_path, seeds=[0])), first)
    assert fakes == [(2, 11)]  # only the deleted cycle was trained again

    fakes.clear()
    _run(dataset, tmp_path, seeds=[0], cycles=3)  # one more cycle: the last points now query
    assert sorted(fakes) == [(2, 11), (2, 11), (3, 14), (3, 14)]


def test_a_resumed_curve_replays_its_queries_and_ends_as_a_fresh_one(dataset, tmp_path, fakes):
    fresh = _run(dataset, tmp_path / "fresh", seeds=[0])
    _run(dataset, tmp_path / "resumed", seeds=[0], cycles=1)
    resumed = _run(dataset, tmp_path / "resumed", seeds=[0])

    def strip(records):
        return [{k: v for k, v in r.items() if k not in ("recorded_at", "timings_s",
                                                         "wall_time_s", "query_seconds")}
                for r in records]
    assert strip(resumed) == strip(fresh)


def test_run_benchmark_refuses_runs_made_with_other_settings(dataset, tmp_path, fakes):
    _run(dataset, tmp_path, seeds=[0], cycles=1)
    with pytest.raises(ValueError, match="made by code version .* with settings"):
        _run(dataset, tmp_path, seeds=[0], cycles=1, budget=4)


def _rewrite(path, **changes):
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, **changes}))
    return record


def test_records_of_other_code_are_refused_until_a_rerun_shows_them_equal(dataset, tmp_path,
                                                                           fakes):
    _run(dataset, tmp_path, seeds=[0], cycles=1)
    folder = tmp_path / "bench" / "runs"
    saved = [_rewrite(folder / "random" / "seed_0" / f"cycle_{t}.json", code_version="0ld")
             for t in (0, 1)]
    with pytest.raises(ValueError, match=r"made by code version 0ld .* Re-run them .*"
                                         r"check_record_equivalence.py --strategy random"):
        _run(dataset, tmp_path, seeds=[0], cycles=1)

    current = (provenance.code_version("random"), saved[0]["settings"])
    records.accept_equivalent(folder, "random", ("0ld", current[1]), current, "test")
    fakes.clear()
    _run(dataset, tmp_path, seeds=[0], cycles=1)
    assert fakes == []  # accepted: nothing trained again
    assert records.accepted_versions(folder, "coreset", current) == {current}  # per strategy


def test_a_truncated_record_is_named_with_what_to_do(dataset, tmp_path, fakes):
    _run(dataset, tmp_path, seeds=[0], cycles=1)
    path = tmp_path / "bench" / "runs" / "random" / "seed_0" / "cycle_1.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(ValueError, match=re.escape(f"{path} is not valid JSON")):
        _run(dataset, tmp_path, seeds=[0], cycles=1)


def test_a_record_of_another_split_is_refused_on_replay(dataset, tmp_path, fakes):
    _run(dataset, tmp_path, seeds=[0], cycles=2)
    path = tmp_path / "bench" / "runs" / "random" / "seed_0" / "cycle_1.json"
    record = _rewrite(path)
    _rewrite(path, labelled_ids=record["labelled_ids"][1:])
    (path.parent / "cycle_2.json").unlink()
    with pytest.raises(ValueError, match="labelled images differ"):
        _run(dataset, tmp_path, seeds=[0], cycles=2)


def test_the_ablations_run_through_the_benchmark(dataset, tmp_path, fakes):
    results = _run(dataset, tmp_path, seeds=[0], cycles=1,
                   strategies=["random", "detections", "rare_detections", "mgral_fixed_reward"])
    by_strategy = {r["strategy"]: r for r in results if r["cycle"] == 0}
    assert set(by_strategy) == {"random", "detections", "rare_detections", "mgral_fixed_reward"}
    fixed = by_strategy["mgral_fixed_reward"]
    assert "agent" in fixed["timings_s"] and "lut" not in fixed["timings_s"]  # no table
    assert fixed["diagnostics"]["agent/query_reward_percentile"] >= 0.5


def test_max_seeds_runs_a_costly_baseline_on_the_first_seeds_only(dataset, tmp_path, fakes):
    results = _run(dataset, tmp_path, cycles=1, max_seeds={"coreset": 1})
    assert {(r["strategy"], r["seed"]) for r in results} == {
        ("random", 0), ("random", 1), ("coreset", 0)}


def test_who_labels_a_query_does_not_invalidate_saved_cycles(dataset, tmp_path, fakes):
    _run(dataset, tmp_path, seeds=[0], cycles=1)
    fakes.clear()

    _run(dataset, tmp_path, {"annotator": "label_studio", "accept_partial": True,
                             "prelabel_conf": 0.5, "label_studio": {"project": "mine"},
                             "files": {"labels": "x.json"}}, seeds=[0], cycles=1)
    assert fakes == []  # every cycle resumed

    with pytest.raises(ValueError, match="with settings .* this checkout runs"):
        _run(dataset, tmp_path, {"pool_detection_conf": 0.2}, seeds=[0], cycles=1)


def test_the_benchmark_labels_with_the_oracle_whatever_al_annotator_says(dataset, tmp_path, fakes):
    people = {"annotator": "label_studio", "label_studio": {"project": "mine"}}
    _run(dataset, tmp_path, people, seeds=[0], cycles=2)
    for t in (0, 1):
        record = json.loads((tmp_path / f"bench/runs/random/seed_0/cycle_{t}.json").read_text())
        assert len(record["labelled_ids"]) == 5 + 3 * t  # each query labelled at once


def test_run_benchmark_refuses_a_pool_without_labels(dataset, tmp_path, fakes):
    index, oracle, data_params = dataset
    unlabelled = ({**index, "unlabelled_ids": ["0039"]}, oracle, data_params)
    with pytest.raises(ValueError, match=r"labelled data only \(1 images of dataset.unlabelled"):
        _run(unlabelled, tmp_path)
    assert fakes == []


def test_run_benchmark_checks_the_pool_is_large_enough(dataset, tmp_path, fakes):
    with pytest.raises(ValueError, match="5 × 6 pool images, but the pool has 25"):
        _run(dataset, tmp_path, cycles=5, budget=6)
    assert fakes == []
