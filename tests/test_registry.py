"""Detectors and policies registered as versions of named models in a real local MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from kedro_mlflow.io.models import MlflowModelRegistryDataset
from PIL import Image, ImageDraw

from mgral_pipelines.mgral.agent import AgentConfig, SelectionPolicy, policy_to_bytes, score_pool
from mgral_pipelines.registry import (
    RegisteredModelDataset,
    cycle_tags,
    detector_model,
    labelled_by,
    policy_model,
)

BASE_DETECTOR = Path(__file__).resolve().parents[1] / "src/mgral_pipelines/assets/base_detector.pt"


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite tracking + registry store; no run left open afterwards."""
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("registry-test")
    yield tmp_path
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def _policy_bytes(seed: int) -> bytes:
    torch.manual_seed(seed)
    config = AgentConfig(hidden_size=8, sequence_length=4)
    return policy_to_bytes(SelectionPolicy(5, config.hidden_size), config)


def _state(cycle: int, strategies: list[str]) -> dict:
    return {"cycle": cycle, "dataset": "fp123",
            "history": [{"cycle": t, "strategy": s} for t, s in enumerate(strategies)]}


def test_each_cycle_is_a_new_version_tagged_and_loadable_by_name(store):
    dataset = RegisteredModelDataset(registered_model_name="mgral-policy", name="policy")
    payloads = {0: _policy_bytes(0), 1: _policy_bytes(1)}
    for cycle, payload in payloads.items():
        with mlflow.start_run():
            state = _state(cycle, ["mgral"] * cycle)
            dataset.save({f"cycle_{cycle}": policy_model(payload, cycle_tags(state, "mgral"))})

    client = mlflow.MlflowClient()
    versions = sorted(client.search_model_versions("name='mgral-policy'"),
                      key=lambda v: int(v.version))
    assert [int(v.version) for v in versions] == [1, 2]
    assert versions[1].tags == {"mgral.strategy": "mgral", "mgral.cycle": "1",
                                "mgral.dataset": "fp123"}

    latest = mlflow.pyfunc.load_model("models:/mgral-policy/latest")
    embeddings = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32)
    scores = latest.predict(embeddings.tolist())
    policy = latest.unwrap_python_model().policy
    config = latest.unwrap_python_model().agent_config
    np.testing.assert_allclose(scores, score_pool(policy, embeddings, config.sequence_length,
                                                  config.scoring_contexts, seed=config.seed),
                               rtol=1e-6)
    # The latest version holds cycle 1's weights, not cycle 0's.
    first = mlflow.pyfunc.load_model("models:/mgral-policy/1")
    assert not np.allclose(first.predict(embeddings.tolist()), scores)

    # The same through kedro-mlflow's registry dataset, as a catalog entry would load it.
    by_catalog = MlflowModelRegistryDataset(model_name="mgral-policy", stage_or_version="latest")
    np.testing.assert_allclose(by_catalog.load().predict(embeddings.tolist()), scores, rtol=1e-6)


def test_a_cycle_without_a_model_registers_nothing(store):
    with mlflow.start_run():
        RegisteredModelDataset(registered_model_name="mgral-policy", name="policy").save({})
    assert mlflow.MlflowClient().search_registered_models() == []


def test_registered_detector_predicts_and_hands_out_its_checkpoint(store):
    image = Image.new("RGB", (96, 96), (10, 10, 10))
    ImageDraw.Draw(image).rectangle([20, 20, 60, 60], fill=(240, 240, 240))
    image.save(store / "scene.png")
    classes = [f"digit_{i}" for i in range(6)]
    tags = cycle_tags(_state(0, []), labelled_by(_state(0, [])))
    model = detector_model(BASE_DETECTOR.read_bytes(), classes,
                           {"imgsz": 96, "device": "cpu", "batch": 2}, tags, conf=0.001)
    with mlflow.start_run():
        RegisteredModelDataset(registered_model_name="mgral-detector", name="detector").save(
            {"cycle_0": model})

    version = mlflow.MlflowClient().get_model_version("mgral-detector", "1")
    assert version.tags["mgral.strategy"] == "initial" and version.tags["mgral.cycle"] == "0"
    loaded = mlflow.pyfunc.load_model("models:/mgral-detector/latest")
    checkpoint = loaded.unwrap_python_model().checkpoint
    assert checkpoint.name == "detector.pt"
    assert checkpoint.read_bytes() == BASE_DETECTOR.read_bytes()
    assert loaded.predict([str(store / "scene.png")]) == [[]]  # no digit above conf 0.001
    # A square is no digit: only a threshold far below the default lets boxes through.
    lower = mlflow.pyfunc.load_model("models:/mgral-detector/latest", model_config={"conf": 1e-4})
    (detections,) = lower.predict([str(store / "scene.png")])
    assert detections
    for detection in detections:
        assert detection["class_name"] == classes[detection["class_id"]]
        assert len(detection["bbox"]) == 4 and 0.0 <= detection["score"] <= 1.0


def test_labelled_by_names_the_strategies_behind_a_labelled_set():
    assert labelled_by(_state(0, [])) == "initial"
    assert labelled_by(_state(2, ["random", "mgral"])) == "mgral,random"
