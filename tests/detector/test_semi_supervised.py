"""The semi-supervised variants: the split loss, same-kind mixing and the trained variants."""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from mgral_pipelines.detector.checkpoints import load_model
from mgral_pipelines.detector.config import SemiSupervisedConfig
from mgral_pipelines.detector.inference import predict
from mgral_pipelines.detector.semi_supervised import (
    SemiSupervisedDetectionTrainer,
    SemiSupervisedLoss,
    train_semi_supervised,
)
from mgral_pipelines.detector.training import ProjectDetectionTrainer, _train_overrides
from mgral_pipelines.detector.yolo_dataset import _view_image_path, write_yolo_dataset
from tests.conftest import DetectorDataset
from tests.detector.conftest import CONFIG, Trained

# Fine-tuning the package's detector (D_t) for 3 epochs on 6 labelled + 12 unlabelled images, with
# mosaic on for two of them, so the mixing confinement runs too.
SEMI_CONFIG = replace(CONFIG, epochs=3, lr0=0.002, mosaic=1.0, close_mosaic=1)
SEMI = SemiSupervisedConfig(pseudo_label_conf=0.25, unsupervised_weight=1.0, ramp_up_epochs=2.0)


@dataclass
class Variant:
    labelled: list[str]
    unlabelled: list[str]
    weights: bytes
    info: dict[str, float]


class _GuardedAnnotations(Mapping):
    """Annotations with garbage for the unlabelled images, which fail any access to them."""

    def __init__(self, annotations: Mapping[str, Any], forbidden: set[str]):
        self.annotations = {**annotations, **{i: "garbage" for i in forbidden}}
        self.forbidden = forbidden

    def __getitem__(self, key: str) -> Any:
        if key in self.forbidden:
            raise AssertionError(f"the labels of unlabelled image {key} were read")
        return self.annotations[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the annotations were enumerated")

    def __len__(self) -> int:
        return len(self.annotations)


def _semi_run(trained: Trained, annotations: Mapping, unlabelled: bool, run_dir: Path) -> Variant:
    data = trained.dataset
    labelled, pool = data.train_ids[:6], data.train_ids[6:]
    unlabelled_ids = pool if unlabelled else []
    weights, info = train_semi_supervised(
        data.records, annotations, data.classes, labelled, unlabelled_ids, data.val_ids,
        SEMI_CONFIG, run_dir, trained.weights, SEMI, progress=False,
    )
    return Variant(labelled, unlabelled_ids, weights, info)


@pytest.fixture(scope="module")
def detector_semi_variant(
    detector_trained: Trained, tmp_path_factory: pytest.TempPathFactory
) -> Variant:
    """A variant trained with the plain annotations dict (all labels present)."""
    return _semi_run(detector_trained, detector_trained.dataset.annotations, True,
                     tmp_path_factory.mktemp("semi_variant"))


def test_semi_supervised_inputs_are_picklable_for_worker_processes() -> None:
    payload = (train_semi_supervised, SEMI_CONFIG, SEMI, Path("run"), b"weights")

    assert pickle.loads(pickle.dumps(payload)) == payload


def _hand_made_batch() -> dict[str, Any]:
    """4 images, the 2nd and 4th pseudo-labelled; labels in collate order (sorted by image)."""
    return {
        "img": torch.zeros(4, 3, 64, 64),
        "im_file": ["l0.png", "p0.png", "l1.png", "p1.png"],
        "batch_idx": torch.tensor([0.0, 0.0, 1.0, 2.0, 3.0, 3.0]),
        "cls": torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [0.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.7, 0.3, 0.3], [0.5, 0.5, 0.4, 0.4],
                                [0.4, 0.6, 0.2, 0.3], [0.2, 0.2, 0.1, 0.1], [0.8, 0.5, 0.2, 0.2]]),
    }


def test_semi_supervised_loss_splits_the_batch_by_image_kind() -> None:
    seen: list[dict] = []

    def criterion(preds: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        seen.append(batch)
        loss = torch.stack([preds["scores"].sum(), preds["feats"][0].sum(), batch["cls"].sum()])
        return loss, {"box_loss": loss[0].detach(), "cls_loss": loss[1].detach()}

    preds = {"scores": torch.arange(4.0).view(4, 1) + 1, "feats": [torch.ones(4, 2)]}
    split = SemiSupervisedLoss(criterion, ["p0.png", "./p1.png"], weight=0.5)

    loss, items = split(preds, _hand_made_batch())

    labelled, pseudo = seen[1], seen[0]
    assert labelled["im_file"] == ["l0.png", "l1.png"]
    assert labelled["batch_idx"].tolist() == [0.0, 0.0, 1.0]
    assert labelled["cls"].view(-1).tolist() == [0.0, 1.0, 0.0]
    assert labelled["bboxes"][2].tolist() == pytest.approx([0.4, 0.6, 0.2, 0.3])
    assert pseudo["im_file"] == ["p0.png", "p1.png"]
    assert pseudo["batch_idx"].tolist() == [0.0, 1.0, 1.0]
    assert pseudo["img"].shape == (2, 3, 64, 64)
    # L_S = (1 + 3, 2 * 2, 1) and L_U = (2 + 4, 2 * 2, 2), weighted 0.5.
    assert loss.tolist() == [4 + 0.5 * 6, 4 + 0.5 * 4, 1 + 0.5 * 2]
    assert set(items) == {"box_loss", "cls_loss", "u_box_loss", "u_cls_loss"}
    assert (items["box_loss"].item(), items["u_box_loss"].item()) == (4.0, 6.0)

    seen.clear()
    plain_loss, plain_items = SemiSupervisedLoss(criterion, [])(preds, _hand_made_batch())
    assert len(seen) == 1 and seen[0]["batch_idx"].tolist() == [0, 0, 1, 2, 3, 3]  # untouched
    assert plain_items["u_box_loss"].item() == 0.0


@pytest.mark.slow
def test_zero_weight_keeps_pseudo_labelled_images_out_of_the_update(
    detector_trained: Trained,
) -> None:
    """With ultralytics' own criterion: w = 0 gives exactly L_S of the labelled images."""
    model = copy.deepcopy(load_model(detector_trained.weights).yolo.model).float().train()
    model.args = SimpleNamespace(box=7.5, cls=0.5, dfl=1.5)  # ultralytics' default gains
    criterion = model.init_criterion()
    torch.manual_seed(0)
    with torch.no_grad():
        preds = model(torch.rand(4, 3, 64, 64))
    leaves = {"boxes": preds["boxes"].clone().requires_grad_(),
              "scores": preds["scores"].clone().requires_grad_(),
              "feats": [f.clone().requires_grad_() for f in preds["feats"]]}
    batch = _hand_made_batch()
    split = SemiSupervisedLoss(criterion, ["p0.png", "p1.png"], weight=0.0)

    loss, _ = split(leaves, batch)
    loss.sum().backward()
    labelled = [0, 2]
    alone, _ = criterion({k: (v[labelled] if torch.is_tensor(v) else [f[labelled] for f in v])
                          for k, v in leaves.items()},
                         {"batch_idx": torch.tensor([0.0, 0.0, 1.0]),
                          "cls": batch["cls"][[0, 1, 3]], "bboxes": batch["bboxes"][[0, 1, 3]]})

    torch.testing.assert_close(loss, alone, rtol=0, atol=0)
    assert leaves["scores"].grad[[1, 3]].abs().sum() == 0
    assert leaves["boxes"].grad[[1, 3]].abs().sum() == 0
    assert leaves["scores"].grad[labelled].abs().sum() > 0
    # Other pseudo-labels (labels 2, 4 and 5 belong to images 1 and 3) change L_U, not the loss.
    other = {**batch, "cls": batch["cls"].clone(), "bboxes": batch["bboxes"].clone()}
    other["cls"][[2, 4, 5]] = 1 - other["cls"][[2, 4, 5]]
    other["bboxes"][[2, 4, 5]] = torch.tensor([0.5, 0.5, 0.9, 0.9])
    torch.testing.assert_close(split(leaves, other)[0], loss, rtol=0, atol=0)
    on = SemiSupervisedLoss(criterion, ["p0.png", "p1.png"], weight=1.0)
    assert not torch.equal(on(leaves, other)[0], on(leaves, batch)[0])
    # Without pseudo-labelled images the criterion sees the batch as ultralytics would.
    whole, _ = criterion(leaves, batch)
    torch.testing.assert_close(SemiSupervisedLoss(criterion, [])(leaves, batch)[0], whole,
                               rtol=0, atol=0)


def test_mixing_augmentations_combine_one_kind_of_image(
    detector_square_dataset: DetectorDataset, tmp_path: Path
) -> None:
    """Mosaics of the train set: only labelled or only pseudo-labelled tiles, never both.

    Labelled images get class 0 boxes and pseudo-labelled ones class 1, so a sample's classes
    tell which kinds of tile it holds. Ultralytics' own trainer (the control) mixes them.
    """
    data = detector_square_dataset
    ids = data.train_ids[:12]
    pseudo_ids = set(ids[6:])
    annotations = {i: [{**box, "class_id": int(i in pseudo_ids)} for box in data.annotations[i]]
                   for i in ids}
    view = tmp_path / "view"
    data_yaml = write_yolo_dataset(view, data.records, annotations, data.classes,
                                   {"train": ids, "val": data.val_ids})
    pseudo_files = {str(_view_image_path(view, r)) for r in data.records
                    if r["image_id"] in pseudo_ids}
    overrides = _train_overrides(replace(CONFIG, mosaic=1.0), data_yaml, "yolov8n.yaml", tmp_path)

    def samples(trainer: ProjectDetectionTrainer) -> Iterator[tuple[bool, set[float]]]:
        trainer.setup_model()
        dataset = trainer.build_dataset(str(view / "train.txt"), "train", CONFIG.batch)
        for index in list(range(len(dataset))) * 3:
            sample = dataset[index]
            yield sample["im_file"] in pseudo_files, set(sample["cls"].view(-1).tolist())

    confined = list(samples(SemiSupervisedDetectionTrainer(overrides=overrides,
                                                           pseudo_files=pseudo_files)))
    control = list(samples(ProjectDetectionTrainer(overrides=overrides)))

    assert {is_pseudo for is_pseudo, _ in confined} == {False, True}
    for is_pseudo, classes in confined:
        assert classes <= {float(is_pseudo)}
    assert any(len(classes) == 2 for _, classes in control)


@pytest.mark.slow
def test_semi_supervised_variant_trains_on_pseudo_labels(
    detector_trained: Trained, detector_semi_variant: Variant
) -> None:
    data = detector_trained.dataset
    variant = detector_semi_variant
    teacher = predict(detector_trained.weights, data.records, variant.unlabelled, SEMI_CONFIG,
                      conf=SEMI.pseudo_label_conf, progress=False)

    detector = load_model(variant.weights)

    assert detector.class_names == data.classes
    assert type(detector.yolo.model).__name__ == "DetectionModel"  # not a project class
    info = variant.info
    assert info["num_unlabelled"] == len(variant.unlabelled) == 12
    assert info["num_labelled"] == 6
    assert info["num_pseudo_boxes"] == sum(map(len, teacher.values())) > 0
    assert info["final_unsup_weight"] == SEMI.unsupervised_weight  # ramp over after 2 epochs
    assert info["epochs"] == SEMI_CONFIG.epochs
    assert info["train/u_box_loss"] > 0
    assert info["val_map50_95"] > 0.1


@pytest.mark.slow
def test_reference_variant_trains_on_the_labelled_images_alone(
    detector_trained: Trained, tmp_path: Path
) -> None:
    data = detector_trained.dataset
    reference = _semi_run(detector_trained, data.annotations, False, tmp_path)

    load_model(reference.weights)
    assert reference.info["num_unlabelled"] == reference.info["num_pseudo_boxes"] == 0
    assert reference.info["train/u_box_loss"] == 0.0
    assert reference.info["epochs"] == SEMI_CONFIG.epochs
    listed = (tmp_path / "dataset" / "train.txt").read_text().split()
    assert len(listed) == len(reference.labelled)


@pytest.mark.slow
def test_unlabelled_images_labels_are_never_read(
    detector_trained: Trained, detector_semi_variant: Variant, tmp_path: Path
) -> None:
    """Garbage labels behind a tripwire train exactly the same detector as the true labels."""
    data = detector_trained.dataset
    guarded = _GuardedAnnotations(data.annotations, set(detector_semi_variant.unlabelled))

    again = _semi_run(detector_trained, guarded, True, tmp_path)

    # The checkpoint bytes hold a date, so compare the weights and the metrics.
    first = load_model(detector_semi_variant.weights).yolo.model.state_dict()
    second = load_model(again.weights).yolo.model.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)
    timing = {"train_time_s"}
    assert {k: v for k, v in again.info.items() if k not in timing} == {
        k: v for k, v in detector_semi_variant.info.items() if k not in timing
    }
    pseudo_rows = (tmp_path / "dataset" / "labels" / f"{again.unlabelled[0]}.txt").read_text()
    assert "garbage" not in pseudo_rows


@pytest.mark.slow
def test_semi_supervised_variants_train_with_the_train_args(
    detector_trained: Trained, tmp_path: Path
) -> None:
    data = detector_trained.dataset
    config = replace(SEMI_CONFIG, epochs=1, train_args={"cos_lr": True, "fliplr": 0.0})

    weights, _ = train_semi_supervised(
        data.records, data.annotations, data.classes, data.train_ids[:4], data.train_ids[4:8],
        data.val_ids, config, tmp_path, detector_trained.weights, SEMI, progress=False,
    )

    saved = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=False)["train_args"]
    assert (saved["cos_lr"], saved["fliplr"]) == (True, 0.0)
