"""Process-wide settings that must be in place before any tool is imported.

The project runs on machines without internet: telemetry of Kedro, MLflow and DVC is switched off
and ultralytics is kept offline with a project-local config dir (it otherwise writes to $HOME).
Values already set by the user win.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_DEFAULTS = {
    "DO_NOT_TRACK": "true",
    "KEDRO_DISABLE_TELEMETRY": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    # Ultralytics checks this exact string.
    "YOLO_OFFLINE": "true",
    "YOLO_VERBOSE": "false",
}


def project_root() -> Path:
    """The project root: the source checkout for editable installs, else the working directory."""
    if (PROJECT_ROOT / "pyproject.toml").exists() and (PROJECT_ROOT / "conf").exists():
        return PROJECT_ROOT
    return Path.cwd()


def configure_offline_environment() -> None:
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(project_root() / ".ultralytics"))
    # matplotlib (imported by ultralytics and the plots) would put its font cache in $HOME.
    os.environ.setdefault("MPLCONFIGDIR", str(Path(os.environ["YOLO_CONFIG_DIR"]) / "matplotlib"))


def import_kedro_mlflow_model_quietly() -> None:
    """Import kedro-mlflow's `KedroPipelineModel` once, without the warning its definition raises.

    Every `kedro` command used to print MLflow's "Add type hints to the `predict` method" warning.
    Its cause: kedro-mlflow 2.0.3 (the latest release) defines `KedroPipelineModel(PythonModel)`
    with an untyped `predict`, and MLflow 3 warns when such a subclass is *defined*; kedro-mlflow's
    hook and CLI import that class on every command, though this project never logs that model.
    MLflow raises it inside its own `catch_warnings` with a "once" filter, which overrides any
    `warnings.filterwarnings` of ours, so the class is imported here (from `settings.py`, before
    Kedro loads its plugins) while warnings are recorded; every other recorded warning is re-issued.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import kedro_mlflow.mlflow  # noqa: F401
    for warning in caught:
        if "Add type hints to the `predict` method" not in str(warning.message):
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno, source=warning.source)
