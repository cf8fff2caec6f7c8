"""Training: `train_detector` and `ProjectDetectionTrainer`, the base of the project's trainers."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mgral_pipelines.detector._ultralytics import _is_integration, _ultralytics_verbosity
from mgral_pipelines.detector.checkpoints import Weights, _checkpoint_bytes
from mgral_pipelines.detector.config import DetectorConfig
from mgral_pipelines.detector.yolo_dataset import Annotations, Records, write_yolo_dataset

from ultralytics.cfg import DEFAULT_CFG
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.torch_utils import strip_optimizer

logger = logging.getLogger(__name__)


class ProjectDetectionTrainer(DetectionTrainer):
    """ultralytics' DetectionTrainer without its third-party integrations.

    Ultralytics adds MLflow, DVC, platform and analytics callbacks to every trainer; they would log
    into (or replace) the MLflow run kedro-mlflow opened. Custom trainers subclass this one and
    override ultralytics' template methods (`get_model`, `build_dataset`, `get_dataloader`, ...).
    """

    # False skips ultralytics' two validations of a run that keeps its last epoch (the final
    # epoch's and final_eval's of best.pt, itself the last epoch then): a caller that scores the
    # checkpoint with evaluate_detector anyway, as the LUT's variants do, would pay for V three
    # times. Set by train_detector(validate=False).
    validates: bool = True

    def __init__(
        self, cfg: Any = DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None
    ):
        super().__init__(cfg, overrides, _callbacks)
        # The validator is built later from this same dict, so it inherits the clean-up.
        for callbacks in self.callbacks.values():
            callbacks[:] = [c for c in callbacks if not _is_integration(c)]

    def run_callbacks(self, event: str) -> None:
        # Also covers the on_pretrain_routine_start event fired inside DetectionTrainer.__init__.
        for callback in self.callbacks.get(event, []):
            if not _is_integration(callback):
                callback(self)

    def validate(self) -> tuple[dict[str, Any] | None, float | None]:
        if not self.validates:
            return self.metrics, None  # fitness None: what ultralytics' val=False gives
        return super().validate()

    def final_eval(self) -> None:
        if not self.validates:
            if self.last.exists():
                strip_optimizer(self.last)  # final_eval's other job: last.pt as inference weights
            return
        super().final_eval()


TrainerFactory = Callable[..., DetectionTrainer]


def train_detector(
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    config: DetectorConfig,
    run_dir: Path,
    initial_weights: Weights = None,
    progress: bool = True,
    trainer_cls: TrainerFactory = ProjectDetectionTrainer,
    keep: str | None = None,
    validate: bool = True,
) -> tuple[bytes, dict[str, float]]:
    """Train on `train_ids`, select the best epoch on `val_ids`; return its checkpoint and info.

    Starts from `initial_weights`, else `config.weights`, else `config.model` built from YAML. All
    files go under `run_dir` (`dataset/` the YOLO view of the images, `train/` ultralytics' run).
    `trainer_cls` is called as `trainer_cls(overrides=...)`: a `ProjectDetectionTrainer` subclass,
    or a `functools.partial` of one carrying extra inputs. `keep` (default `config.checkpoint`):
    "best" or "last", the final epoch, validated only at the end. With `config.images_per_epoch`
    each epoch trains on the training set repeated to that length (`epoch_list`).
    `validate=False` (with keep "last" only) skips that validation: the checkpoint is the same,
    and info's `val_map50_95`/`val_map50` are NaN; for callers that evaluate it themselves.
    """
    keep = keep or config.checkpoint
    if not validate and keep != "last":
        raise ValueError(f'validate=False needs keep="last": keep="{keep}" picks an epoch by '
                         "its validation")
    if not train_ids or not val_ids:
        raise ValueError(
            f"Training needs train and val images (got {len(train_ids)} and {len(val_ids)})"
        )
    run_dir = Path(run_dir).resolve()
    epoch_ids = epoch_list(train_ids, config.images_per_epoch, config.seed)
    data_yaml = write_yolo_dataset(
        run_dir / "dataset", records, annotations, classes, {"train": epoch_ids, "val": val_ids}
    )
    model = _initial_model(initial_weights, config, run_dir)
    overrides = _train_overrides(config, data_yaml, model, run_dir)
    if keep == "last":
        # ultralytics still validates the final epoch; without per-epoch fitness there is no early
        # stopping, and best.pt ends up as the final epoch too.
        overrides["val"] = False
    with _ultralytics_verbosity(config.verbose):
        trainer = trainer_cls(overrides=overrides)
        trainer.validates = validate
        started = time.perf_counter()
        with _epoch_progress(trainer, config.epochs, enabled=progress):
            trainer.train()
        seconds = time.perf_counter() - started
    if keep == "last":
        checkpoint = trainer.last
    else:
        checkpoint = trainer.best if trainer.best.exists() else trainer.last
    info = _training_info(trainer, seconds)
    if not validate:
        info.update(val_map50=float("nan"), val_map50_95=float("nan"))
    logger.info(
        "Trained detector on %d images for %d epochs (%d optimiser steps) in %.1f s (%s)",
        len(train_ids), info["epochs"], info["optimizer_steps"], seconds,
        f"val mAP50-95 {info['val_map50_95']:.4f}" if validate else "not validated",
    )
    return checkpoint.read_bytes(), info


def epoch_list(train_ids: Sequence[str], images_per_epoch: int | None, seed: int) -> list[str]:
    """The images one epoch trains on: `train_ids` repeated to `images_per_epoch` entries.

    Each id appears k or k + 1 times (the k + 1 drawn with `seed`); None, or a training set at
    least that large, gives every id once. Ultralytics shuffles the list every epoch.
    """
    ids = list(train_ids)
    if images_per_epoch is None or len(ids) >= images_per_epoch:
        if images_per_epoch is not None and len(ids) > images_per_epoch:
            logger.warning("%d training images exceed images_per_epoch=%d: each epoch takes them "
                           "all, so this run trains for more optimiser steps than its schedule",
                           len(ids), images_per_epoch)
        return ids
    repeats, extra = divmod(images_per_epoch, len(ids))
    chosen = np.random.default_rng(seed).choice(len(ids), extra, replace=False)
    return ids * repeats + [ids[i] for i in sorted(chosen)]


def _initial_model(initial_weights: Weights, config: DetectorConfig, run_dir: Path) -> str:
    """The `model` argument of the trainer: a checkpoint copied into the run, or the YAML."""
    source = initial_weights if initial_weights is not None else config.weights
    if source is None:
        return config.model
    # A copy with a .pt suffix: the trainer only loads weights from paths ending in .pt.
    path = run_dir / "initial_weights.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_checkpoint_bytes(source))
    return str(path)


def _train_overrides(
    config: DetectorConfig, data_yaml: Path, model: str, run_dir: Path
) -> dict[str, Any]:
    """ultralytics' training arguments: `config.train_args` plus the ones the adapter sets (the
    keys of ADAPTER_TRAIN_ARGS, which DetectorConfig refuses in train_args)."""
    return {
        **config.train_args,
        "task": "detect",
        "mode": "train",
        "model": model,
        "data": str(data_yaml),
        "imgsz": config.imgsz,
        "epochs": config.epochs,
        "batch": config.batch,
        "lr0": config.lr0,
        "nbs": config.nbs or config.batch,
        "warmup_epochs": config.warmup_epochs,
        "warmup_bias_lr": config.warmup_bias_lr,
        "freeze": config.freeze,
        "optimizer": config.optimizer,
        "seed": config.seed,
        "deterministic": True,
        "workers": config.workers,
        "device": config.device,
        "patience": config.patience,
        "mosaic": config.mosaic,
        "close_mosaic": config.close_mosaic,
        # Validation during training scores epochs the way evaluate_detector will.
        "conf": config.eval_conf,
        "iou": config.eval_iou,
        "max_det": config.max_det,
        "amp": _amp(config),
        "plots": False,  # plots download fonts
        "project": str(run_dir),
        "name": "train",
        "exist_ok": True,
        "verbose": config.verbose,
    }


def _amp(config: DetectorConfig) -> bool:
    """`config.amp`, else AMP where ultralytics uses it: on CUDA devices, not on CPU or MPS.

    On CUDA ultralytics' AMP check would download a model; `_ultralytics` makes it offline.
    """
    if config.amp is not None:
        return config.amp
    device = str(config.device).strip().lower()
    if device in ("", "-1"):  # ultralytics picks: the (idlest) GPU when there is one
        return torch.cuda.is_available()
    return not device.startswith(("cpu", "mps"))


def _training_info(trainer: DetectionTrainer, seconds: float) -> dict[str, float]:
    losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
    metrics = trainer.metrics or {}
    return {
        "epochs": int(trainer.epoch + 1),
        "optimizer_steps": int((trainer.epoch + 1) * len(trainer.train_loader)
                               // max(trainer.accumulate, 1)),
        "best_epoch": int(trainer.stopper.best_epoch),
        "best_fitness": float(trainer.best_fitness or 0.0),
        "train_time_s": round(seconds, 3),
        **{key: float(value) for key, value in losses.items()},
        "val_map50": float(metrics.get("metrics/mAP50(B)", 0.0)),
        "val_map50_95": float(metrics.get("metrics/mAP50-95(B)", 0.0)),
    }


@contextmanager
def _epoch_progress(trainer: DetectionTrainer, epochs: int, enabled: bool) -> Iterator[None]:
    """A tqdm bar over epochs, fed by ultralytics' on_fit_epoch_end event."""
    bar = tqdm(total=epochs, desc="train detector", unit="epoch", disable=not enabled)

    def update(trainer: DetectionTrainer) -> None:
        # Absolute position: the final evaluation of best.pt fires this event once more.
        bar.update(min(trainer.epoch + 1, bar.total) - bar.n)
        if trainer.tloss:
            losses = trainer.label_loss_items(trainer.tloss, prefix="train")
            bar.set_postfix({key.split("/")[-1]: f"{value:.3f}" for key, value in losses.items()})

    trainer.add_callback("on_fit_epoch_end", update)
    try:
        yield
    finally:
        bar.close()
