"""The detector adapter: the only module of the project that imports ultralytics.

It trains, evaluates, predicts and embeds with a YOLO detector, taking the project's manifest
records and annotations (absolute `[x1, y1, x2, y2]` boxes) and giving back plain Python / numpy
values.
Checkpoints travel as bytes (Kedro stores them as a binary dataset) or as a path.

Ultralytics is kept inside the project: offline, settings in the project-local YOLO_CONFIG_DIR, its
own integrations (MLflow, DVC, hub, ...) off because the project logs through kedro-mlflow, and run
folders fixed under the `run_dir` a caller passes. It is extended through its hooks only: a
`DetectionTrainer` subclass (`ProjectDetectionTrainer`, the base for custom trainers such as the
semi-supervised one) and a `DetectionPredictor` subclass that keeps each detection's class scores.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from PIL import Image
from tqdm.auto import tqdm

# Importing the package sets YOLO_OFFLINE and YOLO_CONFIG_DIR, which ultralytics reads on import.
import mgral_pipelines  # noqa: F401
from mgral_pipelines.evaluation import coco_evaluate

from ultralytics import YOLO
from ultralytics import settings as ultralytics_settings
from ultralytics.cfg import DEFAULT_CFG
from ultralytics.data.augment import BaseMixTransform, Compose
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionTrainer
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER
from ultralytics.utils import USER_CONFIG_DIR, nms
from ultralytics.utils import patches as _ultralytics_patches
from ultralytics.utils.torch_utils import unwrap_model

# Importing ultralytics replaces PIL.Image.open process-wide with a version that tries to install
# pi-heif whenever Pillow cannot identify a file. Restore Pillow's own, so a corrupt image in a
# user's dataset is reported as corrupt (manifest.check_image_file) and nothing is installed.
Image.open = _ultralytics_patches._image_open

logger = logging.getLogger(__name__)

Weights = bytes | Path | str | None
Records = Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]]
Annotations = Mapping[str, Sequence[Mapping[str, Any]]]

# Written to the project-local settings.json (YOLO_CONFIG_DIR): no third-party logging, no
# analytics, and what ultralytics would put under ./runs goes to the ignored tool folder instead.
_ULTRALYTICS_SETTINGS = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
    "runs_dir": str(USER_CONFIG_DIR / "runs"),
}
# Modules whose callbacks report to outside services; ultralytics adds them to every trainer.
_INTEGRATION_MODULES = ("ultralytics.utils.events", "ultralytics.utils.callbacks.")
_CORE_CALLBACK_MODULE = "ultralytics.utils.callbacks.base"


def _configure_ultralytics() -> None:
    stale = {k: v for k, v in _ULTRALYTICS_SETTINGS.items() if ultralytics_settings.get(k) != v}
    if stale:  # write only on change: parallel processes share the settings file
        ultralytics_settings.update(stale)


_configure_ultralytics()


# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------


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
    batch: int = 16
    """Training batch size; also the inference batch size of `evaluate_detector`."""
    lr0: float = 0.002
    """Initial learning rate."""
    nbs: int | None = None
    """Nominal batch size: gradients accumulate over nbs / batch batches before a step. None means
    `batch` (no accumulation); ultralytics' 64 leaves a small labelled set only a few steps."""
    warmup_epochs: float = 3.0
    """Epochs of learning-rate warmup (capped so the last epoch trains at the scheduled rate)."""
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
    verbose: bool = False
    """Show ultralytics' own logging."""

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
        check("warmup_epochs", self.warmup_epochs >= 0, ">= 0")
        for name in ("eval_conf", "eval_iou", "mosaic"):
            check(name, 0.0 <= getattr(self, name) <= 1.0, "in [0, 1]")


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
    """The semi-supervised variant's extra parameters (DESIGN.md §2 step 3); `from_dict` as above.

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
    ramp_up_epochs: float = 3.0
    """T of the sigmoid ramp-up w(t) = w_max * exp(-5 (1 - min(t, T) / T)^2) (Laine & Aila 2017),
    t the 0-based epoch, updated at each epoch's start; T = 0 means w = w_max throughout."""
    checkpoint: str = "last"
    """"last": the final epoch's weights, validating only once at the end (no per-epoch validation,
    no early stopping), so that every variant and the reference get exactly the same schedule and
    V is not also used to pick an epoch. "best": the best epoch on val_ids, as train_detector."""

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
            "checkpoint": (self.checkpoint in ("best", "last"), '"best" or "last"'),
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


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class LoadedDetector:
    """A checkpoint loaded once. Pass it wherever weights are expected to skip re-loading."""

    yolo: YOLO
    digest: str
    """SHA-256 of the checkpoint bytes."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Serialises inference: ultralytics keeps per-call state on the model's predictor."""

    @property
    def class_names(self) -> list[str]:
        names = self.yolo.names
        return [names[i] for i in range(len(names))]

    @property
    def embedding_layers(self) -> list[int]:
        """Indices of the neck outputs that feed the Detect head."""
        return list(self.yolo.model.model[-1].f)


_CACHE_SIZE = 4
_cache: OrderedDict[str, LoadedDetector] = OrderedDict()
_cache_lock = threading.Lock()


def load_model(weights: Weights | LoadedDetector) -> LoadedDetector:
    """Load a checkpoint (bytes or path), reusing one of the last few loaded with the same bytes."""
    if isinstance(weights, LoadedDetector):
        return weights
    if weights is None:
        raise ValueError("No detector weights given (neither as argument nor as config.weights)")
    data = _checkpoint_bytes(weights)
    digest = hashlib.sha256(data).hexdigest()
    with _cache_lock:
        if digest in _cache:
            _cache.move_to_end(digest)
            return _cache[digest]
    with tempfile.TemporaryDirectory(prefix="mgral-weights-") as folder:
        path = Path(folder) / "weights.pt"
        path.write_bytes(data)
        loaded = LoadedDetector(YOLO(path, task="detect"), digest)
    with _cache_lock:
        _cache[digest] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def _checkpoint_bytes(weights: bytes | Path | str) -> bytes:
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return bytes(weights)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: detector checkpoint not found")
    return path.read_bytes()


def _resolve(weights: Weights | LoadedDetector, config: DetectorConfig) -> LoadedDetector:
    return load_model(weights if weights is not None else config.weights)


# --------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------


class ProjectDetectionTrainer(DetectionTrainer):
    """ultralytics' DetectionTrainer without its third-party integrations.

    Ultralytics adds MLflow, DVC, platform and analytics callbacks to every trainer; they would log
    into (or replace) the MLflow run kedro-mlflow opened. Custom trainers subclass this one and
    override ultralytics' template methods (`get_model`, `build_dataset`, `get_dataloader`, ...).
    """

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


def _is_integration(callback: Callable) -> bool:
    module = getattr(callback, "__module__", "") or ""
    return module.startswith(_INTEGRATION_MODULES) and module != _CORE_CALLBACK_MODULE


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
    keep: str = "best",
) -> tuple[bytes, dict[str, float]]:
    """Train on `train_ids`, select the best epoch on `val_ids`; return its checkpoint and info.

    Starts from `initial_weights`, else `config.weights`, else `config.model` built from YAML. All
    files go under `run_dir` (`dataset/` the YOLO view of the images, `train/` ultralytics' run).
    `trainer_cls` is called as `trainer_cls(overrides=...)`: a `ProjectDetectionTrainer` subclass,
    or a `functools.partial` of one carrying extra inputs. `keep="last"` returns the final epoch
    instead, validated only at the end.
    """
    if not train_ids or not val_ids:
        raise ValueError(
            f"Training needs train and val images (got {len(train_ids)} and {len(val_ids)})"
        )
    run_dir = Path(run_dir).resolve()
    data_yaml = write_yolo_dataset(
        run_dir / "dataset", records, annotations, classes, {"train": train_ids, "val": val_ids}
    )
    model = _initial_model(initial_weights, config, run_dir)
    overrides = _train_overrides(config, data_yaml, model, run_dir)
    if keep == "last":
        # ultralytics still validates the final epoch; without per-epoch fitness there is no early
        # stopping, and best.pt ends up as the final epoch too.
        overrides["val"] = False
    with _ultralytics_verbosity(config.verbose):
        trainer = trainer_cls(overrides=overrides)
        started = time.perf_counter()
        with _epoch_progress(trainer, config.epochs, enabled=progress):
            trainer.train()
        seconds = time.perf_counter() - started
    if keep == "last":
        checkpoint = trainer.last
    else:
        checkpoint = trainer.best if trainer.best.exists() else trainer.last
    info = _training_info(trainer, seconds)
    logger.info(
        "Trained detector on %d images for %d epochs in %.1f s (val mAP50-95 %.4f)",
        len(train_ids), info["epochs"], seconds, info["val_map50_95"],
    )
    return checkpoint.read_bytes(), info


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
    return {
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
        "amp": False,  # the AMP check downloads a model
        "plots": False,  # plots download fonts
        "project": str(run_dir),
        "name": "train",
        "exist_ok": True,
        "verbose": config.verbose,
    }


def _training_info(trainer: DetectionTrainer, seconds: float) -> dict[str, float]:
    losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
    metrics = trainer.metrics or {}
    return {
        "epochs": int(trainer.epoch + 1),
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


@contextmanager
def _ultralytics_verbosity(verbose: bool) -> Iterator[None]:
    """Let ultralytics log at INFO for one call when `verbose` (YOLO_VERBOSE=false mutes it)."""
    if not verbose:
        yield
        return
    # Its logger and its own stdout handler both sit at ERROR.
    targets = [ULTRALYTICS_LOGGER, *ULTRALYTICS_LOGGER.handlers]
    previous = [target.level for target in targets]
    for target in targets:
        target.setLevel(logging.INFO)
    try:
        yield
    finally:
        for target, level in zip(targets, previous):
            target.setLevel(level)


def write_yolo_dataset(
    dataset_dir: Path,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    splits: Mapping[str, Sequence[str]],
) -> Path:
    """Write a YOLO-format view of the images in `splits`; returns its `data.yaml`.

    `images/<id><ext>` link to the original files (copies where links are not allowed),
    `labels/<id>.txt` hold normalised `cls cx cy w h` rows, `<split>.txt` list the images.
    The folder is rebuilt from scratch so no stale label survives.
    """
    dataset_dir = Path(dataset_dir).resolve()
    shutil.rmtree(dataset_dir, ignore_errors=True)
    (dataset_dir / "images").mkdir(parents=True)
    (dataset_dir / "labels").mkdir()
    by_id = _index_records(records)
    written: dict[str, Path] = {}
    for split, image_ids in splits.items():
        lines = []
        for image_id in image_ids:
            if image_id not in written:
                written[image_id] = _write_image(dataset_dir, by_id, annotations, image_id)
            lines.append(str(written[image_id]))
        (dataset_dir / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    data = {
        "path": str(dataset_dir),
        **{split: str(dataset_dir / f"{split}.txt") for split in splits},
        "names": dict(enumerate(classes)),
    }
    data_yaml = dataset_dir / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return data_yaml


def _write_image(
    dataset_dir: Path,
    records: Mapping[str, Mapping[str, Any]],
    annotations: Annotations,
    image_id: str,
) -> Path:
    if image_id not in records:
        raise ValueError(f"image id {image_id!r} is not in the records")
    if Path(image_id).name != image_id:
        raise ValueError(f"image id {image_id!r} cannot be used as a file name")
    record = records[image_id]
    source = Path(record["file"]).resolve()
    image = _view_image_path(dataset_dir, record)
    try:
        image.symlink_to(source)
    except OSError:  # e.g. Windows without symlink rights
        shutil.copy2(source, image)
    rows = "".join(
        _label_row(box, record["width"], record["height"]) for box in annotations.get(image_id, [])
    )
    (dataset_dir / "labels" / f"{image_id}.txt").write_text(rows, encoding="utf-8")
    return image


def _view_image_path(dataset_dir: Path, record: Mapping[str, Any]) -> Path:
    """Where the YOLO view links an image (ultralytics' `im_file` for it)."""
    suffix = Path(record["file"]).resolve().suffix.lower()
    return Path(dataset_dir).resolve() / "images" / f"{record['image_id']}{suffix}"


def _label_row(box: Mapping[str, Any], width: int, height: int) -> str:
    # Clip first: the manifest allows half a pixel outside the image, ultralytics drops such images.
    x1, y1, x2, y2 = box["bbox"]
    x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
    y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{int(box['class_id'])} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


def _index_records(records: Records) -> dict[str, Mapping[str, Any]]:
    values = records.values() if isinstance(records, Mapping) else records
    return {record["image_id"]: record for record in values}


# --------------------------------------------------------------------------------------------------
# Inference
# --------------------------------------------------------------------------------------------------


class _ScoredDetectionPredictor(DetectionPredictor):
    """DetectionPredictor that keeps each detection's class-score vector (as `Results.feats`).

    Same NMS call as ultralytics' postprocess, plus the indices of the kept candidates
    (`return_idxs`) to read their scores from the raw head output.
    """

    multi_label = False

    def postprocess(
        self, preds: Any, img: torch.Tensor, orig_imgs: list[np.ndarray], **kwargs: Any
    ) -> list:
        if getattr(self.model, "end2end", False):
            raise ValueError("NMS-free (end-to-end) heads give no per-class scores; use YOLOv8/11")
        kept, indices = nms.non_max_suppression(
            preds,
            self.args.conf,
            self.args.iou,
            self.args.classes,
            self.args.agnostic_nms,
            multi_label=self.multi_label,
            max_det=self.args.max_det,
            return_idxs=True,
        )
        raw = preds[0] if isinstance(preds, (list, tuple)) else preds  # (B, 4 + nc, candidates)
        nc = len(self.model.names)
        results = self.construct_results(kept, img, orig_imgs)
        for result, scores, index in zip(results, raw, indices):
            # NMS leaves a float (0, 1) placeholder for images without detections.
            result.feats = scores[4 : 4 + nc, index.long().view(-1)].T
        return results


class _MultiLabelDetectionPredictor(_ScoredDetectionPredictor):
    """Keeps a box once per class scoring above `conf`, as ultralytics' validator does for mAP."""

    multi_label = True


def predict(
    weights: Weights | LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    conf: float = 0.25,
    batch_size: int = 32,
    progress: bool = True,
    multi_label: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Detections per image: `[{"class_id", "bbox": [x1, y1, x2, y2] absolute px, "score",
    "class_scores"}]`.

    `class_scores` holds the box's nc per-class confidences (independent sigmoids, they do not sum
    to 1) and `score == class_scores[class_id]`. Without `multi_label` a box has its best class
    only; with it, one detection per class above `conf` (the same box and class_scores). NMS uses
    `config.eval_iou` and `config.max_det`; inputs are letterboxed to `config.imgsz`.
    """
    detector = _resolve(weights, config)
    detections: dict[str, list[dict[str, Any]]] = {}
    batches = _inference_batches(
        detector, records, image_ids, config, batch_size, progress, "predict",
        predictor=_MultiLabelDetectionPredictor if multi_label else _ScoredDetectionPredictor,
        conf=conf, iou=config.eval_iou, max_det=config.max_det,
    )
    for batch_ids, results in batches:
        for image_id, result in zip(batch_ids, results):
            detections[image_id] = _detections(result)
    return detections


def _detections(result: Any) -> list[dict[str, Any]]:
    boxes = result.boxes
    rows = zip(
        boxes.cls.int().tolist(), boxes.xyxy.tolist(), boxes.conf.tolist(), result.feats.tolist()
    )
    return [
        {"class_id": c, "bbox": bbox, "score": score, "class_scores": scores}
        for c, bbox, score, scores in rows
    ]


def embed(
    weights: Weights | LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    batch_size: int = 32,
    progress: bool = True,
) -> np.ndarray:
    """One feature vector per image: float32, shape (len(image_ids), d), rows in `image_ids` order.

    The vector concatenates the global-average-pooled neck feature maps that feed the Detect head
    (ultralytics' `embed=` mechanism; d = 448 for yolov8n), after the same letterbox as `predict`.
    No image ids give an empty (0, 0) array.
    """
    detector = _resolve(weights, config)
    vectors: list[np.ndarray] = []
    batches = _inference_batches(
        detector, records, image_ids, config, batch_size, progress, "embed",
        predictor=_ScoredDetectionPredictor, embed=detector.embedding_layers,
    )
    for _, batch_vectors in batches:
        vectors.extend(vector.float().cpu().numpy() for vector in batch_vectors)
    if not vectors:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(vectors).astype(np.float32, copy=False)


def _inference_batches(
    detector: LoadedDetector,
    records: Records,
    image_ids: Sequence[str],
    config: DetectorConfig,
    batch_size: int,
    progress: bool,
    desc: str,
    **arguments: Any,
) -> Iterator[tuple[list[str], list[Any]]]:
    """Run ultralytics' predictor batch by batch; yields (ids, outputs) in `image_ids` order.

    A list of paths is one in-memory batch to ultralytics, which keeps its order (a folder or a
    long list would be re-sorted by file name).
    """
    by_id = _index_records(records)
    missing = [image_id for image_id in image_ids if image_id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} image ids are not in the records, e.g. {missing[:3]}")
    common = {
        "imgsz": config.imgsz,
        "device": config.device,
        # Square letterbox for every batch: an image's output must not depend on its batch-mates.
        "rect": False,
        "verbose": False,
        "save": False,
    }
    with tqdm(total=len(image_ids), desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, len(image_ids), batch_size):
            batch_ids = list(image_ids[start : start + batch_size])
            paths = [str(by_id[image_id]["file"]) for image_id in batch_ids]
            with detector.lock, _ultralytics_verbosity(config.verbose):
                outputs = detector.yolo.predict(source=paths, **common, **arguments)
            bar.update(len(batch_ids))
            yield batch_ids, outputs


def evaluate_detector(
    weights: Weights | LoadedDetector,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    image_ids: Sequence[str],
    config: DetectorConfig,
    progress: bool = True,
) -> dict[str, Any]:
    """COCO mAP on `image_ids`: `{"map50_95", "map50", "per_class_ap50_95", "num_images"}`.

    Detections come from `predict` with `config.eval_conf`, `eval_iou`, `max_det` and multi-label
    NMS (as ultralytics' val: a box also counts for its runner-up classes, which matters for weak
    detectors); the mAP from pycocotools (see `evaluation.coco_evaluate`).
    """
    detector = _resolve(weights, config)
    _check_classes(detector, classes)
    detections = predict(
        detector, records, image_ids, config, conf=config.eval_conf, batch_size=config.batch,
        progress=progress, multi_label=True,
    )
    return coco_evaluate(classes, records, annotations, detections, image_ids)


def ultralytics_val_metrics(
    weights: Weights | LoadedDetector,
    records: Records,
    annotations: Annotations,
    classes: Sequence[str],
    image_ids: Sequence[str],
    config: DetectorConfig,
    run_dir: Path,
) -> dict[str, float]:
    """ultralytics' own `model.val()` mAP on `image_ids`, for cross-checking `evaluate_detector`.

    It runs with `rect=False`, the square letterbox `predict` uses: on square images of `imgsz`
    pixels both then see the same input. ultralytics' default rectangular val batches pad every
    image by half a stride, which changes a small-input model's predictions, so the comparison
    would measure preprocessing rather than the mAP computation.
    """
    detector = _resolve(weights, config)
    _check_classes(detector, classes)
    run_dir = Path(run_dir).resolve()
    data_yaml = write_yolo_dataset(
        run_dir / "dataset", records, annotations, classes, {"train": image_ids, "val": image_ids}
    )
    with detector.lock, _ultralytics_verbosity(config.verbose):
        metrics = detector.yolo.val(
            data=str(data_yaml),
            split="val",
            rect=False,
            imgsz=config.imgsz,
            batch=config.batch,
            conf=config.eval_conf,
            iou=config.eval_iou,
            max_det=config.max_det,
            device=config.device,
            plots=False,
            project=str(run_dir),
            name="val",
            exist_ok=True,
            verbose=config.verbose,
        )
    return {
        "map50_95": float(metrics.box.map),
        "map50": float(metrics.box.map50),
        "num_images": len(image_ids),
    }


def _check_classes(detector: LoadedDetector, classes: Sequence[str]) -> None:
    if len(detector.class_names) != len(classes):
        raise ValueError(
            f"The detector has {len(detector.class_names)} classes {detector.class_names}, "
            f"the dataset {len(classes)} {list(classes)}"
        )


# --------------------------------------------------------------------------------------------------
# Semi-supervised variants (the look-up table's detectors)
# --------------------------------------------------------------------------------------------------


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
) -> tuple[bytes, dict[str, float]]:
    """Fine-tune `initial_weights` (the cycle's detector D_t) on `L_S + w(t) * L_U`; return the
    checkpoint (`semi.checkpoint`: last or best epoch) and info.

    L_S is ultralytics' detection loss on the `labelled_ids` images against their `annotations`;
    L_U the same loss on the `unlabelled_ids` images against D_t's detections scoring at least
    `semi.pseudo_label_conf`, predicted once before training. Both kinds of image share the train
    list, the batches and ultralytics' augmentation; mosaic, mixup and cutmix combine only images
    of the same kind, so each image is either labelled or pseudo-labelled. `w(t)` follows
    `semi.weight_at(epoch)`. With no `unlabelled_ids` this is the reference variant: the same
    trainer, seed and schedule on the labelled images alone.

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
        run_dir, initial_weights, progress, trainer_cls, keep=semi.checkpoint,
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
