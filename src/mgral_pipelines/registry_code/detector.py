"""MLflow models-from-code entry of `mgral-detector`."""

import mlflow

from mgral_pipelines.registry import DetectorModel

mlflow.models.set_model(DetectorModel())
