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
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

# Importing the package sets YOLO_OFFLINE and YOLO_CONFIG_DIR, which ultralytics reads on import.
import mgral_pipelines  # noqa: F401
from mgral_pipelines.evaluation import coco_evaluate

# Ultralytics imports matplotlib; keep its font cache out of $HOME as well.
os.environ.setdefault("MPLCONFIGDIR", str(Path(os.environ["YOLO_CONFIG_DIR"]) / "matplotlib"))

from ultralytics import YOLO  # noqa: E402
from ultralytics import settings as ultralytics_settings  # noqa: E402
from ultralytics.cfg import DEFAULT_CFG  # noqa: E402
from ultralytics.models.yolo.detect import DetectionPredictor, DetectionTrainer  # noqa: E402
from ultralytics.utils import LOGGER as ULTRALYTICS_LOGGER  # noqa: E402
from ultralytics.utils import USER_CONFIG_DIR, nms  # noqa: E402

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


def _convert(name: str, annotation: str, value: Any) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {"int": int, "float": float}
    annotation = annotation.removesuffix(" | None")
    convert = converters.get(annotation)
    if convert is None or value is None or isinstance(value, bool):
        return value
    try:
        converted = convert(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"detector parameter {name}: {value!r} is not a number") from error
    if annotation == "int" and converted != float(value):
        raise ValueError(f"detector parameter {name}: {value!r} is not an integer")
    return converted


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
) -> tuple[bytes, dict[str, float]]:
    """Train on `train_ids`, select the best epoch on `val_ids`; return its checkpoint and info.

    Starts from `initial_weights`, else `config.weights`, else `config.model` built from YAML. All
    files go under `run_dir` (`dataset/` the YOLO view of the images, `train/` ultralytics' run).
    `trainer_cls` is called as `trainer_cls(overrides=...)`: a `ProjectDetectionTrainer` subclass,
    or a `functools.partial` of one carrying extra inputs.
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
    with _ultralytics_verbosity(config.verbose):
        trainer = trainer_cls(overrides=overrides)
        started = time.perf_counter()
        with _epoch_progress(trainer, config.epochs, enabled=progress):
            trainer.train()
        seconds = time.perf_counter() - started
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
    image = dataset_dir / "images" / f"{image_id}{source.suffix.lower()}"
    try:
        image.symlink_to(source)
    except OSError:  # e.g. Windows without symlink rights
        shutil.copy2(source, image)
    rows = "".join(
        _label_row(box, record["width"], record["height"]) for box in annotations.get(image_id, [])
    )
    (dataset_dir / "labels" / f"{image_id}.txt").write_text(rows, encoding="utf-8")
    return image


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
