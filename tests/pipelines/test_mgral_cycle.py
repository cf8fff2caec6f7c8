"""MGRAL end to end through Kedro on the tiny profile, and proof that it never reads the oracle."""

import json
import shutil

import mlflow
import pandas as pd

from mgral_pipelines.mgral.features import class_rarity_weights

from .conftest import run_pipeline

MGRAL = {"al": {"strategy": "mgral"}}


def test_mgral_cycle_builds_lut_trains_agent_and_queries(project):
    run_pipeline(project, "al_cycle", MGRAL)

    lut = json.loads((project / "data/06_models/mgral/cycle_0/lut.json").read_text())
    assert len(lut["entries"]) == 2
    for entry in lut["entries"]:
        assert len(entry["image_ids"]) == 3 and len(entry["embeddings"]) == 3
        # D_t's detected objects per image, weighted by class rarity: the look-up's coordinate
        assert len(entry["detections"]) == 3 and all(
            isinstance(count, float) and count >= 0 for count in entry["detections"])
        assert entry["delta_map"] == entry["map50_95"] - lut["reference"]["map50_95"]
    assert lut["class_weights"] and min(lut["class_weights"]) > 0  # one per class
    assert lut["schedule"]["epochs"] == 1
    assert (project / "data/06_models/mgral/cycle_0/policy.pt").exists()
    assert (project / "data/08_reporting/agent_reward_curve.png").exists()
    query = pd.read_csv(project / "data/07_model_output/queries/cycle_0.csv", dtype={"image_id": str})
    assert len(query) == 5 and query["score"].is_monotonic_decreasing
    state = json.loads((project / "data/05_model_input/al_state/cycle_1.json").read_text())
    assert state["history"][0]["strategy"] == "mgral"

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    run = mlflow.search_runs(experiment_names=["mgral"], output_format="list")[0]
    assert "lut/delta_map_mean" in run.data.metrics
    assert {"lut/trend_slope", "lut/bandwidth", "lut/loo_spearman"} <= set(run.data.metrics)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "agent/reward")
    assert len(history) == 4  # 32 episodes / 8 per update
    logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"mgral", "agent_reward_curve.png"} <= logged
    (version,) = mlflow.MlflowClient().search_model_versions("name='mgral-policy'")
    assert (version.tags["mgral.strategy"], version.tags["mgral.cycle"]) == ("mgral", "0")
    policy = mlflow.pyfunc.load_model("models:/mgral-policy/latest").unwrap_python_model()
    assert policy.agent_config.hidden_size == 16  # the tiny profile's policy

    # The summary says what the LUT could tell and what the policy made of it: with 2 entries
    # the table has no leave-one-out skill.
    summary = (project / "logs/kedro.log").read_text().split("MGRAL cycle 0 finished")[1]
    deltas = [entry["delta_map"] for entry in lut["entries"]]
    assert (f"LUT: 2 detector variants, ΔmAP {min(deltas):+.4f} to {max(deltas):+.4f}; "
            "leave-one-out ρ nan, skill nan: it cannot tell batches apart") in summary
    metrics = run.data.metrics
    assert (f"Policy: trained on that reward although it has no skill, its query's estimated ΔmAP "
            f"{metrics['agent/query_reward']:+.4f} beats "
            f"{100 * metrics['agent/query_reward_percentile']:.0f}% of random batches of 5"
            ) in summary
    assert "policy rewards  data/08_reporting/agent_reward_curve.png" in summary


def _without_timings(project):
    """The LUT as built: entries, ΔmAP, embeddings and schedule (wall-clock times excluded)."""
    lut = json.loads((project / "data/06_models/mgral/cycle_0/lut.json").read_text())
    for variant in [lut["reference"], *lut["entries"]]:
        variant.pop("train_time_s")
    return lut


# Rarity weighting (the default) reads labels, L_t's, to weigh detections: never the pool's.
MGRAL_RARITY = {**MGRAL, "lut": {"object_weighting": "rarity"}}


def test_lut_agent_and_query_never_read_the_pool_oracle(project):
    """Run the cycle's steps, then delete every copy of the pool labels and run them again; then
    T's labels too."""
    steps = ["detector", "embedding", "lut", "agent", "query"]
    for step in steps:
        run_pipeline(project, step, MGRAL_RARITY)
    lut_before = _without_timings(project)
    deltas = [entry["delta_map"] for entry in lut_before["entries"]]
    assert len(set(deltas)) > 1, f"ΔmAPs all equal ({deltas}): comparing would prove nothing"
    # The weights come from L_0's labels alone.
    labels = json.loads((project / "data/05_model_input/al_state/cycle_0.json").read_text())[
        "labels"]
    weights = lut_before["class_weights"]
    assert weights == class_rarity_weights(labels, len(weights)).tolist()
    query_before = (project / "data/07_model_output/queries/cycle_0.csv").read_text()

    # Without the oracle file any read of it fails, so identical outputs prove none happened.
    (project / "data/03_primary/oracle_annotations.json").unlink()
    (project / "data/02_intermediate/manifest.json").unlink()  # the import, labels included
    for layer in ("02_intermediate", "03_primary"):  # and any archived copy of either
        shutil.rmtree(project / "data" / layer / "archive", ignore_errors=True)
    raw = project / "data/01_raw/embedded_tiny"  # the generated YOLO labels and COCO JSON
    shutil.rmtree(raw / "labels")
    (raw / "annotations_coco.json").unlink()
    for produced in ("06_models/mgral", "07_model_output/queries"):
        shutil.rmtree(project / "data" / produced)
    for step in ["lut", "agent", "query"]:
        run_pipeline(project, step, MGRAL_RARITY)

    assert _without_timings(project) == lut_before

    # Detector runs and policy runs are told apart by tag in the MLflow UI.
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    kinds = [run.data.tags["mgral.run_kind"]
             for run in mlflow.search_runs(experiment_names=["mgral"], output_format="list")]
    assert sorted(kinds) == sorted(["detector", "detector", "policy", "policy", "query"] +
                                   ["policy", "policy", "query"])
    assert (project / "data/07_model_output/queries/cycle_0.csv").read_text() == query_before

    # T only scores the curve: with its labels gone too, selection is the same. (V's labels stay:
    # they score the LUT's variants, as the method allows.)
    eval_labels = project / "data/03_primary/eval_labels.json"
    kept = json.loads(eval_labels.read_text())
    assert kept["test"], "T has no labels: removing them would prove nothing"
    eval_labels.write_text(json.dumps({**kept, "test": {}}))
    for produced in ("06_models/mgral", "07_model_output/queries"):
        shutil.rmtree(project / "data" / produced)
    for step in ["lut", "agent", "query"]:
        run_pipeline(project, step, MGRAL_RARITY)
    assert _without_timings(project) == lut_before
    assert (project / "data/07_model_output/queries/cycle_0.csv").read_text() == query_before
