"""The adapter's configuration: DetectorConfig and SemiSupervisedConfig from parameters."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from mgral_pipelines.detector.config import DetectorConfig, SemiSupervisedConfig


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"\['epoch', 'lr'\]"):
        DetectorConfig.from_dict({"epoch": 3, "lr": 0.1, "imgsz": 64})


def test_config_converts_yaml_numbers() -> None:
    config = DetectorConfig.from_dict({"lr0": "2e-3", "epochs": 3.0, "nbs": None})

    assert config.lr0 == 0.002
    assert config.epochs == 3 and isinstance(config.epochs, int)
    assert config.nbs is None


@pytest.mark.parametrize(
    "values", [{"epochs": "many"}, {"epochs": 2.5}, {"imgsz": 0}, {"eval_iou": 1.5}, {"nbs": 0}]
)
def test_config_rejects_bad_values(values: dict) -> None:
    with pytest.raises(ValueError):
        DetectorConfig.from_dict(values)


def test_ramp_up_weight_is_the_sigmoid_schedule() -> None:
    semi = SemiSupervisedConfig(unsupervised_weight=2.0, ramp_up_epochs=4.0)
    ts = np.linspace(0.0, 6.0, 61)
    weights = np.array([semi.weight_at(t) for t in ts])

    assert semi.weight_at(0) == pytest.approx(2.0 * np.exp(-5.0))  # near 0
    assert semi.weight_at(2.0) == pytest.approx(2.0 * np.exp(-5.0 * 0.25))
    assert semi.weight_at(4.0) == 2.0 and semi.weight_at(5.5) == 2.0
    assert np.all(np.diff(weights) >= 0) and np.all(np.diff(weights[:40]) > 0)
    assert SemiSupervisedConfig(ramp_up_epochs=0.0).weight_at(0) == 1.0


def test_semi_supervised_config_from_dict() -> None:
    semi = SemiSupervisedConfig.from_dict({"pseudo_label_conf": "5e-1", "ramp_up_epochs": 2})

    assert semi == SemiSupervisedConfig(pseudo_label_conf=0.5, ramp_up_epochs=2.0)
    for bad in ({"conf": 0.5}, {"pseudo_label_conf": 1.5}, {"unsupervised_weight": -1.0},
                {"checkpoint": "first"}):
        with pytest.raises(ValueError):
            SemiSupervisedConfig.from_dict(bad)


def test_train_args_typo_fails_with_the_closest_ultralytics_names() -> None:
    with pytest.raises(ValueError, match=r"'cos_lrr' is not an ultralytics argument; did you mean "
                                         r"'cos_lr'\?"):
        DetectorConfig.from_dict({"train_args": {"fliplr": 0.0, "cos_lrr": True}})
    with pytest.raises(ValueError, match="'hsv' .* did you mean .*'hsv_h'"):
        DetectorConfig(train_args={"hsv": 0.1})


@pytest.mark.parametrize(
    ("key", "field"),
    [("epochs", "detector.epochs"), ("conf", "detector.eval_conf"), ("iou", "detector.eval_iou"),
     ("amp", "detector.amp"), ("model", "detector.weights"), ("val", "detector.checkpoint"),
     ("project", "detector.run_dir"), ("data", "fixed")],
)
def test_train_args_refuse_what_the_adapter_sets(key: str, field: str) -> None:
    with pytest.raises(ValueError, match=rf"'{key}' is set by the adapter; .*{field}"):
        DetectorConfig.from_dict({"train_args": {key: 1}})


@pytest.mark.parametrize("bad", [{"fliplr": "half"}, {"fliplr": 1.5}, {"cos_lr": "yes"}, ["x"]])
def test_train_args_values_follow_ultralytics_rules(bad: object) -> None:
    with pytest.raises(ValueError, match="train_args"):
        DetectorConfig.from_dict({"train_args": bad})


def test_train_args_survive_replace_asdict_and_hashing() -> None:
    given = {"cos_lr": True, "fliplr": 0.0, "cache": "disk"}
    config = DetectorConfig.from_dict({"train_args": given, "epochs": 3})
    given["mixup"] = 0.5  # the config keeps its own copy

    assert config.train_args == {"cos_lr": True, "fliplr": 0.0, "cache": "disk"}
    assert replace(config, epochs=4).train_args == config.train_args
    assert DetectorConfig.from_dict(asdict(config)) == config
    assert hash(config) == hash(DetectorConfig.from_dict(asdict(config)))
    assert config != replace(config, train_args={})
    assert DetectorConfig.from_dict({"train_args": None}).train_args == {}


def test_amp_is_a_bool_or_null() -> None:
    assert DetectorConfig.from_dict({"amp": None}).amp is None
    assert DetectorConfig.from_dict({"amp": False}).amp is False
    with pytest.raises(ValueError, match="amp must be true, false or null"):
        DetectorConfig.from_dict({"amp": "fp16"})
