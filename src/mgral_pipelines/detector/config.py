"""The adapter's configuration: the detector's and the semi-supervised variant's parameters."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

# ultralytics' training arguments the adapter sets itself (training._train_overrides), refused in
# `train_args`: the DetectorConfig field (or parameter) that sets each, or why it is fixed.
ADAPTER_TRAIN_ARGS: dict[str, str] = {
    **{name: f"use detector.{name}" for name in (
        "imgsz", "epochs", "batch", "lr0", "nbs", "warmup_epochs", "warmup_bias_lr", "optimizer",
        "seed", "workers", "device", "patience", "mosaic", "close_mosaic", "max_det", "freeze",
        "amp", "verbose",
    )},
    "model": "use detector.model or detector.weights",
    "conf": "use detector.eval_conf",
    "iou": "use detector.eval_iou",
    "val": 'use detector.checkpoint ("last" turns per-epoch validation off)',
    "project": "use detector.run_dir",
    "name": "fixed: the run folder is run_dir/train",
    "exist_ok": "fixed: the run folder is run_dir/train",
    "data": "fixed: the adapter writes the YOLO dataset from the manifest",
    "task": "fixed: the adapter trains detectors",
    "mode": "fixed: the adapter trains",
    "deterministic": "fixed: training is reproducible",
    "plots": "fixed: plots download fonts (offline)",
}


@dataclass(frozen=True)
class DetectorConfig:
    """Detector hyper-parameters; `from_dict` builds it from the pipelines' parameters."""

    model: str = "yolov8n.yaml"
    """Architecture YAML (ultralytics name or path), built from scratch when weights are None."""
    weights: str | None = None
    """Local checkpoint path (e.g. the committed base detector); overrides `model`."""
    imgsz: int = 160
    """Square input size in pixels for training and inference (a multiple of 32)."""
    epochs: int = 10
    """Training epochs."""
    images_per_epoch: int | None = None
    """Images one epoch trains on. None: the training set once (so the number of optimiser steps
    grows with the labelled set). A number: the training set repeated to that length (each image
    k or k + 1 times; all of them once when the set is larger), so every labelled-set size of an AL
    curve gets the same epochs * images_per_epoch / batch optimiser steps and the same schedule."""
    batch: int = 16
    """Training batch size; also the inference batch size of `evaluate_detector`."""
    lr0: float = 0.002
    """Initial learning rate."""
    nbs: int | None = None
    """Nominal batch size: gradients accumulate over nbs / batch batches before a step. None means
    `batch` (no accumulation); ultralytics' 64 leaves a small labelled set only a few steps."""
    freeze: int | None = None
    """Keep the first N layers of the model frozen (ultralytics' `freeze`; 10 = the backbone of
    yolov8n): cheaper steps, and a small labelled set trains the neck and head on features the
    base learned from far more images."""
    warmup_epochs: float = 3.0
    """Epochs of learning-rate warmup (capped so the last epoch trains at the scheduled rate)."""
    warmup_bias_lr: float = 0.0
    """Learning rate the biases start the warm-up at. Ultralytics' 0.1 is 50x lr0 here and, in a
    short fine-tune of a trained detector, knocks it off its optimum; 0 warms the biases up from 0
    like every other parameter (what ultralytics itself does with optimizer=auto)."""
    optimizer: str = "AdamW"
    """Optimizer name; fixed (not "auto", which picks by dataset size) so runs are reproducible."""
    seed: int = 0
    """Training seed (ultralytics seeds python, numpy and torch from it)."""
    workers: int = 0
    """Dataloader workers (ultralytics forces 0 on CPU)."""
    device: str = "cpu"
    """Torch device: "cpu", "0", "cuda:0", ..."""
    patience: int = 100
    """Early stopping: epochs without validation improvement."""
    mosaic: float = 1.0
    """Mosaic augmentation probability."""
    close_mosaic: int = 2
    """Turn mosaic off for the last N epochs."""
    eval_conf: float = 0.001
    """Confidence threshold of detections kept for mAP (as ultralytics' val)."""
    eval_iou: float = 0.7
    """NMS IoU threshold for evaluation and prediction."""
    max_det: int = 100
    """Maximum detections per image (COCO's maxDets=100)."""
    checkpoint: str = "best"
    """Which weights training returns: "best", the epoch with the best mAP on V (validating every
    epoch); "last", the final weights, validated once at the end (cheaper, and V picks nothing)."""
    verbose: bool = False
    """Show ultralytics' own logging."""
    amp: bool | None = None
    """Automatic mixed precision (ultralytics' float16 AMP with a gradient scaler). None follows
    the device: on for CUDA (and other accelerators), off on CPU and Apple MPS, where ultralytics
    never uses it. true/false force it (false on a GPU where AMP gives NaN losses or zero mAP)."""
    train_args: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Further ultralytics training arguments, passed through unchanged: `cos_lr`, `cache`,
    `fliplr`, `hsv_h`, `degrees`, `mixup`, ... (https://docs.ultralytics.com/usage/cfg). Checked
    against ultralytics' own list and value rules, so a typo fails with the closest names; the
    arguments this config sets (ADAPTER_TRAIN_ARGS) are refused with the field to use instead."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> DetectorConfig:
        """Build from a parameters dict; unknown keys and unconvertible values raise ValueError.

        Numbers are converted, because YAML 1.1 reads `2e-3` (no dot) as a string.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"Unknown detector parameter(s) {unknown}; known: {sorted(known)}")
        return cls(**{name: _convert(name, known[name].type, v) for name, v in values.items()})

    def __post_init__(self) -> None:
        def check(name: str, valid: bool, rule: str) -> None:
            if not valid:
                value = getattr(self, name)
                raise ValueError(f"detector parameter {name} must be {rule}, got {value}")

        for name in ("imgsz", "epochs", "batch", "max_det"):
            check(name, getattr(self, name) >= 1, ">= 1")
        check("nbs", self.nbs is None or self.nbs >= 1, ">= 1 or null")
        check("freeze", self.freeze is None or self.freeze >= 1, ">= 1 or null")
        check("images_per_epoch", self.images_per_epoch is None or self.images_per_epoch >= 1,
              ">= 1 or null")
        check("warmup_epochs", self.warmup_epochs >= 0, ">= 0")
        check("warmup_bias_lr", self.warmup_bias_lr >= 0, ">= 0")
        check("checkpoint", self.checkpoint in ("best", "last"), '"best" or "last"')
        for name in ("eval_conf", "eval_iou", "mosaic"):
            check(name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")
        check("amp", self.amp is None or isinstance(self.amp, bool), "true, false or null")
        # A copy of its own, so the caller's dict can change. YAML reads an empty `train_args:` as
        # None.
        train_args = {} if self.train_args is None else self.train_args
        object.__setattr__(self, "train_args", _checked_train_args(train_args))


def _checked_train_args(train_args: Mapping[str, Any]) -> dict[str, Any]:
    """`train_args` checked by ultralytics' rules (`check_cfg`, which also normalises values)."""
    if not isinstance(train_args, Mapping):
        raise ValueError(f"detector parameter train_args must be a mapping, got {train_args!r}")
    for key in train_args:
        if key in ADAPTER_TRAIN_ARGS:
            raise ValueError(f"detector.train_args: {key!r} is set by the adapter; "
                             f"{ADAPTER_TRAIN_ARGS[key]}")
        if key not in DEFAULT_CFG_DICT:
            close = difflib.get_close_matches(str(key), list(DEFAULT_CFG_DICT), n=3)
            hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "no close match."
            raise ValueError(f"detector.train_args: {key!r} is not an ultralytics argument; {hint} "
                             "(list: https://docs.ultralytics.com/usage/cfg)")
    checked = dict(train_args)
    try:
        check_cfg(checked, hard=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"detector.train_args: {error}") from error
    return checked


def _convert(name: str, annotation: str, value: Any, kind: str = "detector") -> Any:
    converters: dict[str, Callable[[Any], Any]] = {"int": int, "float": float}
    annotation = annotation.removesuffix(" | None")
    convert = converters.get(annotation)
    if convert is None or value is None or isinstance(value, bool):
        return value
    try:
        converted = convert(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{kind} parameter {name}: {value!r} is not a number") from error
    if annotation == "int" and converted != float(value):
        raise ValueError(f"{kind} parameter {name}: {value!r} is not an integer")
    return converted


@dataclass(frozen=True)
class SemiSupervisedConfig:
    """The semi-supervised variant's extra parameters (docs/method.md, step 3); `from_dict` as
    above.

    The variant minimises `L_S + w(t) * L_U`: ultralytics' detection loss on the labelled images
    plus the same loss on the unlabelled images against the starting detector's pseudo-labels.
    """

    pseudo_label_conf: float = 0.5
    """The starting detector's detections scoring at least this are the unlabelled images'
    pseudo-labels (best class per box, NMS at the detector config's eval_iou and max_det); an
    image without any becomes a background image (every anchor a negative)."""
    unsupervised_weight: float = 1.0
    """w_max, the weight of L_U once the ramp-up is over. 0 keeps the unlabelled images in the
    batches (they still shape batch-norm statistics and mosaics) but out of the gradient."""
    ramp_up_epochs: float = 0.0
    """T of the sigmoid ramp-up w(t) = w_max * exp(-5 (1 - min(t, T) / T)^2) (Laine & Aila 2017),
    t the 0-based epoch, updated at each epoch's start; T = 0 means w = w_max throughout. Default
    0: a variant is one short epoch, too short to ramp up in."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> SemiSupervisedConfig:
        """Build from a parameters dict; unknown keys and unconvertible values raise ValueError."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(
                f"Unknown semi-supervised parameter(s) {unknown}; known: {sorted(known)}"
            )
        return cls(**{
            name: _convert(name, known[name].type, v, "semi-supervised")
            for name, v in values.items()
        })

    def __post_init__(self) -> None:
        rules = {
            "pseudo_label_conf": (0.0 <= self.pseudo_label_conf <= 1.0, "in [0, 1]"),
            "unsupervised_weight": (self.unsupervised_weight >= 0, ">= 0"),
            "ramp_up_epochs": (self.ramp_up_epochs >= 0, ">= 0"),
        }
        for name, (valid, rule) in rules.items():
            if not valid:
                raise ValueError(
                    f"semi-supervised parameter {name} must be {rule}, got {getattr(self, name)}"
                )

    def weight_at(self, epoch: float) -> float:
        """w(t): the sigmoid ramp-up from w_max * exp(-5) at t = 0 to w_max from t = T on."""
        if self.ramp_up_epochs <= 0:
            return float(self.unsupervised_weight)
        phase = 1.0 - min(max(float(epoch), 0.0), self.ramp_up_epochs) / self.ramp_up_epochs
        return float(self.unsupervised_weight * np.exp(-5.0 * phase * phase))
