"""A throwaway copy of the project for running pipelines through a real Kedro session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The repo's conf, pyproject and base checkpoint in tmp_path; data/ and mlflow.db are fresh.

    The working directory moves there, because the catalog's paths are relative to the project.
    """
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    assets = root / "src" / "mgral_pipelines" / "assets"
    shutil.copytree(REPO / "src" / "mgral_pipelines" / "assets", assets)
    monkeypatch.chdir(root)
    bootstrap_project(root)
    return root


def run_pipeline(root: Path, pipeline: str, params: dict | None = None, env: str = "tiny") -> None:
    with KedroSession.create(project_path=root, env=env, runtime_params=params or {}) as session:
        session.run(pipeline_name=pipeline)
