"""Training: the checkpoint and info train_detector returns, fine-tuning, reproducibility, and the
arguments ultralytics gets (train_args passed through, AMP following the device)."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mgral_pipelines.detector.checkpoints import load_model
from mgral_pipelines.detector.config import ADAPTER_TRAIN_ARGS
from mgral_pipelines.detector.inference import embed
from mgral_pipelines.detector.training import (
    ProjectDetectionTrainer,
    _train_overrides,
    epoch_list,
    train_detector,
)
from tests.conftest import DetectorDataset
from tests.detector.conftest import CONFIG, Trained

from ultralytics.data.augment import RandomFlip
from ultralytics.utils.torch_utils import one_cycle


@pytest.mark.slow
def test_training_returns_a_loadable_checkpoint(detector_trained: Trained) -> None:
    detector = load_model(detector_trained.weights)

    assert detector.class_names == detector_trained.dataset.classes
    assert detector_trained.info["epochs"] == CONFIG.epochs
    assert set(detector_trained.info) >= {
        "best_epoch", "best_fitness", "train_time_s", "train/box_loss", "val_map50", "val_map50_95"
    }
    assert detector_trained.info["val_map50_95"] > 0.1  # it learned something


@pytest.mark.slow
def test_training_writes_only_under_run_dir(detector_trained: Trained) -> None:
    run_dir = detector_trained.run_dir

    assert (run_dir / "dataset" / "data.yaml").is_file()
    assert (run_dir / "train" / "weights" / "best.pt").is_file()
    assert not (run_dir / "train2").exists()
    assert not (Path.cwd() / "runs").exists()


@pytest.mark.slow
def test_fine_tuning_starts_from_the_given_weights(
    detector_trained: Trained, tmp_path: Path
) -> None:
    data = detector_trained.dataset
    config = replace(CONFIG, epochs=1, lr0=1e-4)
    base = tmp_path / "base.pt"
    base.write_bytes(detector_trained.weights)
    splits = (data.records, data.annotations, data.classes, data.train_ids, data.val_ids)

    _, from_bytes = train_detector(*splits, config, tmp_path / "a", detector_trained.weights,
                                   progress=False)
    _, from_config = train_detector(*splits, replace(config, weights=str(base)), tmp_path / "b",
                                    progress=False)

    # One gentle epoch keeps most of what the base learned; from scratch it would be ~0.
    assert from_bytes["val_map50_95"] > 0.5 * detector_trained.info["val_map50_95"]
    assert from_config["val_map50_95"] == pytest.approx(from_bytes["val_map50_95"])


@pytest.mark.slow
def test_training_is_reproducible(detector_square_dataset: DetectorDataset, tmp_path: Path) -> None:
    data = detector_square_dataset
    config = replace(CONFIG, epochs=2)
    runs = [
        train_detector(data.records, data.annotations, data.classes, data.train_ids[:8],
                       data.val_ids, config, tmp_path / name, progress=False)[0]
        for name in ("first", "second")
    ]

    first, second = (embed(w, data.records, data.val_ids, config, progress=False) for w in runs)
    np.testing.assert_array_equal(first, second)


@pytest.mark.slow
def test_skipping_validation_keeps_the_last_epoch_and_says_so(
    detector_trained: Trained, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The LUT's variants score their checkpoint themselves: without ultralytics' validations the
    weights are the very same, and the info says the run was not validated."""
    data = detector_trained.dataset
    config = replace(CONFIG, epochs=1, lr0=1e-4, checkpoint="last")
    splits = (data.records, data.annotations, data.classes, data.train_ids[:8], data.val_ids)
    with caplog.at_level("INFO", logger="mgral_pipelines.detector.training"):
        runs = {validate: train_detector(*splits, config, tmp_path / str(validate),
                                         detector_trained.weights, progress=False,
                                         validate=validate)
                for validate in (True, False)}
    trained = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Trained")]
    assert "(val mAP50-95 0." in trained[0] and trained[1].endswith("(not validated)")

    validated, skipped = (torch.load(io.BytesIO(runs[v][0]), map_location="cpu",
                                     weights_only=False)["model"].state_dict()
                          for v in (True, False))
    assert validated.keys() == skipped.keys()
    assert all(torch.equal(validated[key], skipped[key]) for key in validated)
    assert runs[True][1]["val_map50_95"] > 0
    assert np.isnan(runs[False][1]["val_map50_95"]) and np.isnan(runs[False][1]["val_map50"])
    assert runs[False][1]["optimizer_steps"] == runs[True][1]["optimizer_steps"]
    assert load_model(runs[False][0]).class_names == data.classes  # inference weights
    with pytest.raises(ValueError, match='validate=False needs keep="last"'):
        train_detector(*splits, config, tmp_path / "best", detector_trained.weights,
                       progress=False, keep="best", validate=False)


def test_epoch_list_repeats_every_image_evenly():
    ids = ["a", "b", "c"]
    listed = epoch_list(ids, 8, seed=0)
    assert len(listed) == 8
    counts = {i: listed.count(i) for i in ids}
    assert sorted(counts.values()) == [2, 3, 3]
    assert epoch_list(ids, 8, seed=0) == listed  # seeded
    assert epoch_list(ids, None, seed=0) == ids
    assert epoch_list(ids, 2, seed=0) == ids  # never drops an image


@pytest.mark.slow
def test_images_per_epoch_fixes_the_optimiser_steps(
    detector_square_dataset: DetectorDataset, tmp_path: Path
) -> None:
    """Two labelled-set sizes, one schedule: the same number of optimiser steps."""
    data = detector_square_dataset
    config = replace(CONFIG, epochs=2, images_per_epoch=16, checkpoint="last")
    steps = [
        train_detector(data.records, data.annotations, data.classes, data.train_ids[:n],
                       data.val_ids, config, tmp_path / str(n), progress=False)[1]
        ["optimizer_steps"]
        for n in (3, 10)
    ]
    assert steps == [2 * 16 // config.batch] * 2
    _, unrepeated = train_detector(data.records, data.annotations, data.classes,
                                   data.train_ids[:10], data.val_ids,
                                   replace(config, images_per_epoch=None), tmp_path / "plain",
                                   progress=False)
    assert unrepeated["optimizer_steps"] == 2 * 3  # ceil(10 / 4) batches per epoch


def _overrides(**fields: object) -> dict:
    config = replace(CONFIG, **fields)
    return _train_overrides(config, Path("data.yaml"), "yolov8n.yaml", Path("run"))


def test_train_args_reach_ultralytics_beside_the_adapters_arguments() -> None:
    train_args = {"cos_lr": True, "fliplr": 0.0, "hsv_h": 0.0, "degrees": 5.0, "mixup": 0.1}
    overrides = _overrides(train_args=train_args)

    assert {key: overrides[key] for key in train_args} == train_args
    # The adapter's own keys are exactly those DetectorConfig refuses ("val" is added for
    # checkpoint="last"), so train_args can never silently override one of them.
    assert set(_overrides()) | {"val"} == set(ADAPTER_TRAIN_ARGS)


@pytest.mark.parametrize(
    ("device", "amp", "expected"),
    [("cpu", None, False), ("mps", None, False), ("0", None, True), ("cuda:0", None, True),
     (0, None, True), ("0,1", None, True), ("cuda:0", False, False), ("cpu", True, True)],
)
def test_amp_follows_the_device_unless_set(device: object, amp: bool | None, expected: bool):
    assert _overrides(device=device, amp=amp)["amp"] is expected


@pytest.mark.slow
def test_train_args_are_what_ultralytics_trains_with(
    detector_square_dataset: DetectorDataset, tmp_path: Path
) -> None:
    data = detector_square_dataset
    config = replace(CONFIG, epochs=2, train_args={"cos_lr": True, "fliplr": 0.0})
    trainers: list[ProjectDetectionTrainer] = []

    class RecordingTrainer(ProjectDetectionTrainer):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(**kwargs)
            trainers.append(self)

    weights, _ = train_detector(data.records, data.annotations, data.classes, data.train_ids[:8],
                                data.val_ids, config, tmp_path, progress=False,
                                trainer_cls=RecordingTrainer)

    (trainer,) = trainers
    assert (trainer.args.cos_lr, trainer.args.fliplr, trainer.args.amp) == (True, 0.0, False)
    cosine = one_cycle(1, trainer.args.lrf, config.epochs)
    assert [trainer.lf(epoch) for epoch in (0.5, 1.0)] == [cosine(0.5), cosine(1.0)]
    flips = [t for t in trainer.train_loader.dataset.transforms.transforms
             if isinstance(t, RandomFlip) and t.direction == "horizontal"]
    assert [flip.p for flip in flips] == [0.0]
    saved = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=False)["train_args"]
    assert (saved["cos_lr"], saved["fliplr"]) == (True, 0.0)
