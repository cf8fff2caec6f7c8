"""The detector adapter: the only package of the project that imports ultralytics.

It trains, evaluates, predicts and embeds with a YOLO detector, taking the project's manifest
records and annotations (absolute `[x1, y1, x2, y2]` boxes) and giving back plain Python / numpy
values.
Checkpoints travel as bytes (Kedro stores them as a binary dataset) or as a path.

Ultralytics is kept inside the project (`_ultralytics`, imported first): offline, settings in the
project-local YOLO_CONFIG_DIR, its own integrations (MLflow, DVC, hub, ...) off because the project
logs through kedro-mlflow, and run folders fixed under the `run_dir` a caller passes. It is extended
through its hooks only: a `DetectionTrainer` subclass (`ProjectDetectionTrainer`, the base for
custom trainers such as the semi-supervised one) and a `DetectionPredictor` subclass that keeps
each detection's class scores.

Modules: `config` (DetectorConfig, SemiSupervisedConfig), `checkpoints` (load_model),
`yolo_dataset` (the YOLO view ultralytics trains on), `training` (train_detector),
`semi_supervised` (train_semi_supervised and its loss), `inference` (predict, embed,
evaluate_detector). Callers use the names re-exported here.
"""

# First, before any module below imports ultralytics: the settings and patches it needs.
from mgral_pipelines.detector import _ultralytics  # noqa: F401  isort: skip
from mgral_pipelines.detector.checkpoints import LoadedDetector, Weights, load_model
from mgral_pipelines.detector.config import DetectorConfig, SemiSupervisedConfig
from mgral_pipelines.detector.inference import (
    embed,
    evaluate_detector,
    predict,
    ultralytics_val_metrics,
)
from mgral_pipelines.detector.semi_supervised import (
    SemiSupervisedDetectionTrainer,
    SemiSupervisedLoss,
    train_semi_supervised,
)
from mgral_pipelines.detector.training import (
    ProjectDetectionTrainer,
    TrainerFactory,
    train_detector,
)
from mgral_pipelines.detector.yolo_dataset import Annotations, Records, write_yolo_dataset

__all__ = [
    "Annotations",
    "DetectorConfig",
    "LoadedDetector",
    "ProjectDetectionTrainer",
    "Records",
    "SemiSupervisedConfig",
    "SemiSupervisedDetectionTrainer",
    "SemiSupervisedLoss",
    "TrainerFactory",
    "Weights",
    "embed",
    "evaluate_detector",
    "load_model",
    "predict",
    "train_detector",
    "train_semi_supervised",
    "ultralytics_val_metrics",
    "write_yolo_dataset",
]
