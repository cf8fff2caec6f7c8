"""The adapter's configuration: DetectorConfig and SemiSupervisedConfig from parameters."""

from __future__ import annotations

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
