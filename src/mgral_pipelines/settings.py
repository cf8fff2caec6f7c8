"""Kedro project settings."""

from kedro.config import OmegaConfigLoader

import mgral_pipelines  # noqa: F401  (sets the offline environment before any plugin loads)
from mgral_pipelines.environment import import_kedro_mlflow_model_quietly

import_kedro_mlflow_model_quietly()  # before Kedro loads kedro-mlflow's hook and CLI

from mgral_pipelines.hooks import (  # noqa: E402
    CredentialsOfTheEnvironment,
    CycleSummary,
    PrepareOnFirstRun,
    PreparedDataAreFiles,
    RunsEndWithTheirReason,
    TrackImportedLabels,
    TrackingTags,
)

# pluggy calls the last registered first: the layout of the workspace is fixed before
# PrepareOnFirstRun looks at it.
HOOKS = (PrepareOnFirstRun(), TrackingTags(), RunsEndWithTheirReason(), TrackImportedLabels(),
         CredentialsOfTheEnvironment(), PreparedDataAreFiles(), CycleSummary())

CONFIG_LOADER_CLASS = OmegaConfigLoader
# Parameters merge softly: a profile (conf/<env>) lists only the values it changes, and a nested
# key it sets (e.g. `lut: {epochs: 3}`) replaces that value alone instead of base's whole section.
# The catalog and the other config types keep Kedro's default, where a profile's key replaces
# base's whole entry (a dataset's definition is never half base, half profile).
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "merge_strategy": {"parameters": "soft"},
}
