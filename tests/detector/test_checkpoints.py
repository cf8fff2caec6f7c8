"""Checkpoints: loaded once, from bytes or a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgral_pipelines.detector.checkpoints import load_model
from mgral_pipelines.detector.inference import predict
from tests.conftest import DetectorDataset
from tests.detector.conftest import CONFIG, Trained


@pytest.mark.slow
def test_load_model_reuses_a_loaded_checkpoint(detector_trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / "copy.pt"
    path.write_bytes(detector_trained.weights)

    loaded = load_model(detector_trained.weights)

    assert load_model(bytes(detector_trained.weights)) is loaded
    assert load_model(path) is loaded
    assert load_model(loaded) is loaded


def test_missing_weights_are_an_error(detector_square_dataset: DetectorDataset) -> None:
    data = detector_square_dataset
    with pytest.raises(ValueError, match="No detector weights"):
        predict(None, data.records, ["0000"], CONFIG)
