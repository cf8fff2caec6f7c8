"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

import mgral_pipelines  # noqa: F401  (sets the offline environment before any plugin loads)
from mgral_pipelines.hooks import PrepareOnFirstRun, TrackImportedLabels, TrackingTags

HOOKS = (PrepareOnFirstRun(), TrackingTags(), TrackImportedLabels())

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
}
