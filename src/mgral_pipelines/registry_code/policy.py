"""MLflow models-from-code entry of `mgral-policy`."""

import mlflow

from mgral_pipelines.registry import PolicyModel

mlflow.models.set_model(PolicyModel())
