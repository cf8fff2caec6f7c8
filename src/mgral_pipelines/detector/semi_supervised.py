"""The semi-supervised variants (the look-up table's detectors): `L_S + w(t) * L_U` training."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from mgral_pipelines.detector.checkpoints import Weights, _check_classes, _resolve
from mgral_pipelines.detector.config import DetectorConfig, SemiSupervisedConfig
from mgral_pipelines.detector.inference import predict
from mgral_pipelines.detector.training import ProjectDetectionTrainer, train_detector
from mgral_pipelines.detector.yolo_dataset import (
    Annotations,
    Records,
    _index_records,
    _view_image_path,
)

from ultralytics.cfg import DEFAULT_CFG
from ultralytics.data.augment import BaseMixTransform, Compose
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import unwrap_model


def train_semi_supervised(
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    labelled_ids: Sequence[str],
    unlabelled_ids: Sequence[str],
    val_ids: Sequence[str],
    config: DetectorConfig,
    run_dir: Path,
    initial_weights: Weights,
    semi: SemiSupervisedConfig,
    progress: bool = True,
    validate: bool = True,
) -> tuple[bytes, dict[str, float]]:
    """Fine-tune `initial_weights` (the cycle's detector D_t) on `L_S + w(t) * L_U`; return the
    last epoch's checkpoint and info.

    L_S is ultralytics' detection loss on the `labelled_ids` images against their `annotations`;
    L_U the same loss on the `unlabelled_ids` images against D_t's detections scoring at least
    `semi.pseudo_label_conf`, predicted once before training. The last epoch's weights, so every
    variant and the reference get exactly the same schedule and V picks no epoch (there is no
    per-epoch validation and no early stopping). Both kinds of image share the train
    list, the batches and ultralytics' augmentation; mosaic, mixup and cutmix combine only images
    of the same kind, so each image is either labelled or pseudo-labelled. `w(t)` follows
    `semi.weight_at(epoch)`. With no `unlabelled_ids` this is the reference variant: the same
    trainer, seed and schedule on the labelled images alone. `validate` as in train_detector.

    `annotations` is read only for `labelled_ids` and `val_ids` (it may lack the unlabelled images:
    their labels are never looked up). Top-level and with plain arguments, so it runs in
    `ProcessPoolExecutor` workers (spawn context too). Info: train_detector's keys plus
    `num_labelled`, `num_unlabelled`, `num_pseudo_boxes`, `final_unsup_weight` and the running
    means of L_U's parts as `train/u_box_loss`, ... (0 for batches without unlabelled images).
    """
    labelled_ids, unlabelled_ids, val_ids = list(labelled_ids), list(unlabelled_ids), list(val_ids)
    _check_disjoint(labelled_ids, unlabelled_ids, val_ids)
    run_dir = Path(run_dir).resolve()
    pseudo: dict[str, list[dict[str, Any]]] = {}
    if unlabelled_ids:
        teacher = _resolve(initial_weights, config)
        _check_classes(teacher, classes)
        pseudo = predict(
            teacher, records, unlabelled_ids, config, conf=semi.pseudo_label_conf,
            progress=progress,
        )
    # Only the labelled and validation images' labels are looked up.
    view_annotations = {
        image_id: list(annotations.get(image_id, [])) for image_id in [*labelled_ids, *val_ids]
    }
    view_annotations.update(pseudo)
    by_id = _index_records(records)
    pseudo_files = frozenset(
        os.path.normpath(_view_image_path(run_dir / "dataset", by_id[image_id]))
        for image_id in unlabelled_ids
    )
    trainer_cls = partial(SemiSupervisedDetectionTrainer, pseudo_files=pseudo_files, semi=semi)
    weights, info = train_detector(
        records, view_annotations, classes, [*labelled_ids, *unlabelled_ids], val_ids, config,
        run_dir, initial_weights, progress, trainer_cls, keep="last", validate=validate,
    )
    info.update(
        num_labelled=len(labelled_ids),
        num_unlabelled=len(unlabelled_ids),
        num_pseudo_boxes=sum(len(boxes) for boxes in pseudo.values()),
        final_unsup_weight=semi.weight_at(info["epochs"] - 1),
    )
    return weights, info


def _check_disjoint(labelled: list[str], unlabelled: list[str], val: list[str]) -> None:
    for name, ids in (("labelled", labelled), ("unlabelled", unlabelled)):
        if len(set(ids)) != len(ids):
            raise ValueError(f"The {name} image ids repeat")
    for name, other in (("labelled", labelled), ("val", val)):
        shared = sorted(set(unlabelled) & set(other))
        if shared:
            raise ValueError(
                f"{len(shared)} unlabelled image ids are also {name} ids, e.g. {shared[:3]}"
            )


class SemiSupervisedLoss:
    """A detection criterion `(preds, batch) -> (loss, items)` split into `L_S + weight * L_U`.

    An image of the batch is pseudo-labelled when its `im_file` is in `pseudo_files` (normalised
    paths). The wrapped criterion (ultralytics' v8DetectionLoss) runs once per kind on that kind's
    sub-batch: the predictions sliced on the image axis and the labels masked, with `batch_idx`
    renumbered. It normalises by the sub-batch's own target-score sum and returns its loss times
    the sub-batch size, so each part keeps the per-image scale of the full-batch loss and
    `L_S + 1 * L_U` is close to the plain loss over the whole batch. A batch without pseudo-labelled
    images goes to the criterion unchanged (the reference variant trains exactly as ultralytics).

    Items: the criterion's (L_S parts, e.g. `box_loss`) followed by the same names prefixed `u_`
    (L_U parts); a part whose kind is absent from the batch reads 0.
    """

    def __init__(self, criterion: Callable, pseudo_files: Iterable[str], weight: float = 0.0):
        self.criterion = criterion
        self.pseudo_files = frozenset(os.path.normpath(f) for f in pseudo_files)
        self.weight = float(weight)

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        device = batch["img"].device
        pseudo = torch.tensor(
            [os.path.normpath(f) in self.pseudo_files for f in batch["im_file"]],
            dtype=torch.bool, device=device,
        )
        if not pseudo.any():
            loss, items = self.criterion(preds, batch)
            return loss, {**items, **{f"u_{k}": torch.zeros_like(v) for k, v in items.items()}}
        unsupervised, unsup_items = self.criterion(
            _take(preds, pseudo.nonzero().view(-1)), _sub_batch(batch, pseudo)
        )
        if pseudo.all():
            supervised = torch.zeros_like(unsupervised)
            sup_items = {k: torch.zeros_like(v) for k, v in unsup_items.items()}
        else:
            labelled = ~pseudo
            supervised, sup_items = self.criterion(
                _take(preds, labelled.nonzero().view(-1)), _sub_batch(batch, labelled)
            )
        loss = supervised + self.weight * unsupervised
        return loss, {**sup_items, **{f"u_{k}": v for k, v in unsup_items.items()}}

    def __getattr__(self, name: str) -> Any:
        # e.g. `update`, which the trainer calls once an epoch where the criterion has it.
        if name == "criterion":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.criterion, name)


def _take(preds: Any, index: torch.Tensor) -> Any:
    """The predictions of the images `index` (the batch axis leads every tensor of the head)."""
    if isinstance(preds, torch.Tensor):
        return preds.index_select(0, index.to(preds.device))
    if isinstance(preds, dict):
        return {key: _take(value, index) for key, value in preds.items()}
    if isinstance(preds, (list, tuple)):
        return type(preds)(_take(value, index) for value in preds)
    return preds


def _sub_batch(batch: Mapping[str, Any], keep: torch.Tensor) -> dict[str, Any]:
    """The images `keep` (bool per image) of a collated detection batch, labels renumbered."""
    batch_idx = batch["batch_idx"].view(-1)
    image_of_label = batch_idx.long().to(keep.device)
    kept_labels = keep[image_of_label]
    new_index = torch.cumsum(keep.long(), 0) - 1
    sub: dict[str, Any] = {
        "batch_idx": new_index[image_of_label[kept_labels]].to(batch_idx),
        "cls": batch["cls"][kept_labels.to(batch["cls"].device)],
        "bboxes": batch["bboxes"][kept_labels.to(batch["bboxes"].device)],
        "img": batch["img"][keep.to(batch["img"].device)],
    }
    flags = keep.tolist()
    for key, value in batch.items():  # per-image lists: im_file, ori_shape, ...
        if key not in sub and isinstance(value, (list, tuple)) and len(value) == len(flags):
            sub[key] = [item for item, kept in zip(value, flags) if kept]
    return sub


class SemiSupervisedDetectionTrainer(ProjectDetectionTrainer):
    """ProjectDetectionTrainer minimising `L_S + w(t) * L_U` (see `SemiSupervisedLoss`).

    Through ultralytics' hooks: `on_train_start` puts a `SemiSupervisedLoss` around the model's own
    criterion (`model.criterion`, which `DetectionModel.loss` uses when set), `on_train_epoch_start`
    sets its weight to `semi.weight_at(epoch)`, and `build_dataset` confines the train set's mixing
    augmentations to one kind of image. The model stays a plain DetectionModel: the EMA copy that
    ultralytics checkpoints is taken before the criterion is set and is saved without a criterion,
    and validation computes the plain loss.
    """

    def __init__(
        self,
        cfg: Any = DEFAULT_CFG,
        overrides: dict | None = None,
        _callbacks: dict | None = None,
        *,
        pseudo_files: Iterable[str] = (),
        semi: SemiSupervisedConfig = SemiSupervisedConfig(),
    ):
        super().__init__(cfg, overrides, _callbacks)
        self.pseudo_files = frozenset(os.path.normpath(f) for f in pseudo_files)
        self.semi = semi
        self.semi_loss: SemiSupervisedLoss | None = None
        self.add_callback("on_train_start", self._install_loss)
        self.add_callback("on_train_epoch_start", self._update_weight)

    def _install_loss(self, trainer: DetectionTrainer) -> None:
        model = unwrap_model(self.model)
        self.semi_loss = SemiSupervisedLoss(model.init_criterion(), self.pseudo_files)
        model.criterion = self.semi_loss

    def _update_weight(self, trainer: DetectionTrainer) -> None:
        if self.semi_loss is not None:
            self.semi_loss.weight = self.semi.weight_at(self.epoch)

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        dataset = super().build_dataset(img_path, mode, batch)
        if mode == "train" and self.pseudo_files:
            _confine_mixing(dataset, self.pseudo_files)
        return dataset


def _confine_mixing(dataset: Any, pseudo_files: frozenset[str]) -> None:
    """Make the dataset's mixing augmentations combine only labelled or only pseudo-labelled images.

    Mosaic, MixUp and CutMix draw their partner images from the whole train list; a mosaic of both
    kinds would put pseudo-labels into L_S (or real labels into L_U) under one `im_file`.
    """
    files = [os.path.normpath(label["im_file"]) for label in dataset.labels]
    kind_of_file = {file: file in pseudo_files for file in files}
    pools = {
        kind: [index for index, file in enumerate(files) if kind_of_file[file] == kind]
        for kind in set(kind_of_file.values())
    }
    for transform in _mix_transforms(dataset.transforms, set()):
        _SameKindPartners(transform, kind_of_file, pools)


def _mix_transforms(transform: Any, seen: set[int]) -> Iterator[BaseMixTransform]:
    if transform is None or id(transform) in seen:
        return
    seen.add(id(transform))
    if isinstance(transform, BaseMixTransform):
        yield transform
        yield from _mix_transforms(transform.pre_transform, seen)
    elif isinstance(transform, Compose):
        for inner in transform.transforms:
            yield from _mix_transforms(inner, seen)


class _SameKindPartners:
    """Replaces a mix transform's partner sampling (`get_indexes`) by one within the kind of the
    image being augmented (read from the labels its `get_params` receives)."""

    def __init__(
        self,
        transform: BaseMixTransform,
        kind_of_file: Mapping[str, bool],
        pools: Mapping[bool, list[int]],
    ):
        self.kind_of_file = kind_of_file
        self.pools = pools
        self.kind: bool | None = None
        self.unconfined_get_params = transform.get_params
        self.unconfined_get_indexes = transform.get_indexes
        transform.get_params = self.get_params
        transform.get_indexes = self.get_indexes

    def get_params(self, labels: dict[str, Any]) -> dict[str, Any]:
        self.kind = self.kind_of_file[os.path.normpath(labels["im_file"])]
        return self.unconfined_get_params(labels)

    def get_indexes(self) -> int | list[int]:
        drawn = self.unconfined_get_indexes()  # the transform's own number of partners
        pool = self.pools[self.kind]
        if isinstance(drawn, int):
            return random.choice(pool)
        return [random.choice(pool) for _ in drawn]
