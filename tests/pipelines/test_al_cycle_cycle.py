"""`Cycle`: the al_cycle pipeline's own nodes run on values, each output made once on first need."""

from __future__ import annotations

from pathlib import Path

import yaml
from kedro.pipeline import Node

from mgral_pipelines.pipelines.al_cycle import cycle as cycle_module
from mgral_pipelines.pipelines.al_cycle.cycle import PARTITIONED, STEP_OF_NODE, Cycle, cycle_nodes
from mgral_pipelines.pipelines.al_cycle.pipeline import create_pipeline

CATALOG = Path(__file__).resolve().parents[2] / "conf" / "base" / "catalog.yml"


def test_a_simulated_cycle_runs_the_al_cycle_pipelines_own_nodes():
    pipeline_nodes = {node.name: node for node in create_pipeline().nodes}
    for node in cycle_nodes().values():
        assert node == pipeline_nodes[node.name] and node.func is pipeline_nodes[node.name].func
    assert {node.name for node in cycle_nodes().values()} == set(STEP_OF_NODE)


def test_the_outputs_kept_per_cycle_are_those_the_catalog_keeps_per_cycle():
    catalog = yaml.safe_load(CATALOG.read_text())

    per_cycle = {name for name in cycle_nodes()  # the type, or the type an MLflow artifact wraps
                 if "CyclePartitionsDataset" in str(catalog.get(name, {}))}
    assert PARTITIONED == per_cycle


def _counting(monkeypatch, calls):
    """Each node of the detector and embedding steps replaced by one that counts its calls."""
    def fake(name, outputs):
        def run(*_inputs):
            calls.append(name)
            values = [{"cycle_0": f"{name}:{output}"} for output in outputs]
            return values if len(values) > 1 else values[0]
        return run

    nodes = cycle_nodes()
    for name in ("train_detector", "evaluate_detector", "embed_images", "reduce_embeddings",
                 "predict_pool"):
        real = next(node for node in nodes.values() if node.name == name)
        outputs = real.outputs if len(real.outputs) > 1 else real.outputs[0]
        replacement = Node(fake(name, real.outputs), real.inputs, outputs, name=name)
        for output in real.outputs:
            monkeypatch.setitem(nodes, output, replacement)


PARAMS = {"detector": {}, "embedding": {}, "al": {}}
STATE = {"cycle": 0}


def test_each_output_is_made_on_first_need_and_once(monkeypatch):
    calls: list[str] = []
    _counting(monkeypatch, calls)
    cycle = Cycle({"state": STATE, "image_index": {}, "eval_labels": {}}, PARAMS)
    assert cycle.current("detector_reports") == "evaluate_detector:detector_reports"
    assert calls == ["train_detector", "evaluate_detector"]
    cycle.get("pool_detections")
    cycle.get("detector_reports")
    assert calls == ["train_detector", "evaluate_detector", "predict_pool"]
    assert list(cycle.step_seconds()) == ["train_detector", "evaluate_detector", "predict_pool"]


def test_a_fixed_input_keeps_its_step_from_running(monkeypatch):
    calls: list[str] = []
    _counting(monkeypatch, calls)
    cycle = Cycle({"state": STATE, "image_index": {}, "eval_labels": {}, "embeddings": {}}, PARAMS)
    assert cycle.get("embeddings") == {}
    assert calls == []


def test_a_shared_detector_trains_once_and_counts_for_every_cycle_that_used_it(monkeypatch):
    calls: list[str] = []
    _counting(monkeypatch, calls)
    inputs = {"state": STATE, "image_index": {}, "eval_labels": {}}
    shared = Cycle(inputs, PARAMS)
    plain, embedding = Cycle(inputs, PARAMS, shared), Cycle(inputs, PARAMS, shared)
    plain.get("detector_reports")
    embedding.get("embeddings")
    embedding.get("detector_reports")
    assert calls == ["train_detector", "evaluate_detector", "embed_images", "reduce_embeddings"]
    assert list(plain.step_seconds()) == ["train_detector", "evaluate_detector"]
    assert list(embedding.step_seconds()) == ["train_detector", "evaluate_detector", "embedding"]
    shared_seconds = shared.step_seconds()
    assert embedding.step_seconds() == shared_seconds  # in full, as if each had trained it


def test_a_node_reads_a_per_cycle_output_as_the_catalog_would_give_it(monkeypatch):
    seen = {}

    def reads(checkpoints, *_rest):
        seen.update({key: loader() for key, loader in checkpoints.items()})
        return {"cycle_0": {}}

    nodes = cycle_nodes()
    real = nodes["detector_reports"]
    monkeypatch.setitem(nodes, "detector_reports",
                        Node(reads, real.inputs, "detector_reports", name=real.name))
    cycle = Cycle({"state": STATE, "image_index": {}, "eval_labels": {},
                   "detector_checkpoints": {"cycle_0": b"weights"}}, PARAMS)
    cycle.get("detector_reports")
    assert seen == {"cycle_0": b"weights"}
    assert cycle_module.as_loaders({"cycle_0": 1})["cycle_0"]() == 1
