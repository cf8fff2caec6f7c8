"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

import mgral_pipelines  # noqa: F401  (sets the offline environment before any plugin loads)
from mgral_pipelines.environment import import_kedro_mlflow_model_quietly

import_kedro_mlflow_model_quietly()  # before Kedro loads kedro-mlflow's hook and CLI

from mgral_pipelines.hooks import (  # noqa: E402
    PrepareOnFirstRun,
    TrackImportedLabels,
    TrackingTags,
    VersionedDatasetsAreFolders,
)

# pluggy calls the last registered first: the check of the workspace precedes PrepareOnFirstRun.
HOOKS = (PrepareOnFirstRun(), TrackingTags(), TrackImportedLabels(), VersionedDatasetsAreFolders())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
