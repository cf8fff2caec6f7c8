"""A throwaway copy of the project for running pipelines through a real Kedro session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml
from kedro.framework.project import LOGGING
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The repo's conf, pyproject and base checkpoint in tmp_path; data/ and MLflow are fresh.

    The working directory moves there, because the catalog's paths are relative to the project,
    and the project's logging is applied there (logs/kedro.log in the copy).
    The MLflow store gets an absolute path: mlflow caches one store per tracking-URI string, so
    the relative `sqlite:///mlflow.db` of two test projects would share the first one's database.
    """
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    assets = root / "src" / "mgral_pipelines" / "assets"
    shutil.copytree(REPO / "src" / "mgral_pipelines" / "assets", assets)
    config = yaml.safe_load((root / "conf/base/mlflow.yml").read_text())
    server = {**config["server"], "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}"}
    (root / "conf/tiny/mlflow.yml").write_text(yaml.safe_dump({"server": server}))
    monkeypatch.chdir(root)
    bootstrap_project(root)
    # As `kedro` would at its start here: the project's logging, its log file in the copy.
    (root / "logs").mkdir()
    LOGGING.configure(yaml.safe_load((root / "conf/logging.yml").read_text()))
    return root


def run_pipeline(root: Path, pipeline: str, params: dict | None = None, env: str = "tiny") -> None:
    """One `kedro run` in its own MLflow run.

    kedro-mlflow 2.0.3 re-opens its run at every node and ends it once, so after a session the
    finished run still looks active and the next session in this process would log into it.
    """
    environment = dict(os.environ)
    _end_stale_runs()
    try:
        with KedroSession.create(project_path=root, env=env, runtime_params=params or {}) as session:
            session.run(pipeline_names=[pipeline])
    finally:
        _end_stale_runs()
        # kedro-mlflow exports MLFLOW_* variables (e.g. the experiment id of this project's
        # store); they must not leak into the next test's project.
        os.environ.clear()
        os.environ.update(environment)


def run_kedro_cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`kedro <args>` as a person types it in the project copy, importing this checkout."""
    environment = {**os.environ, "COLUMNS": "1000",  # one log record per line
                   "PYTHONPATH": os.pathsep.join([str(REPO / "src"),
                                                  os.environ.get("PYTHONPATH", "")])}
    environment.pop("KEDRO_LOGGING_CONFIG", None)  # the project's conf/logging.yml, as for people
    return subprocess.run([sys.executable, "-m", "kedro", *args], cwd=root, env=environment,
                          capture_output=True, text=True, timeout=1800)


def _end_stale_runs() -> None:
    while mlflow.active_run():
        mlflow.end_run()


def read_json(path: Path) -> object:
    return json.loads(path.read_text())
