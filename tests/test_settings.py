"""The Kedro project as a user's `kedro` commands see it (settings, plugins, kedro-viz)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.pipelines.conftest import REPO, project  # noqa: F401  (the fixture)


@pytest.fixture
def cli_project(project):
    """The tiny-profile project copy, with `kedro` subprocesses importing this checkout."""
    environment = {**os.environ, "COLUMNS": "1000",  # one log record per line
                   "PYTHONPATH": os.pathsep.join([str(REPO / "src"),
                                                  os.environ.get("PYTHONPATH", "")])}
    return project, environment


def test_kedro_viz_build_draws_every_pipeline_without_the_mlflow_warning(cli_project):
    root, environment = cli_project
    result = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"], cwd=root, env=environment,
        capture_output=True, text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # kedro-mlflow's untyped KedroPipelineModel.predict made MLflow warn on every command; no
    # other MLflow warning (e.g. on the project's own pyfunc models) may take its place.
    assert "Add type hints" not in output
    assert not [line for line in output.splitlines() if "Warning" in line and "mlflow" in line]

    build = root / "build"
    assert (build / "index.html").is_file()
    cycle = json.loads((build / "api" / "pipelines" / "al_cycle").read_text())
    node_names = {node["name"] for node in cycle["nodes"] if node["type"] == "task"}
    assert {"train_detector", "build_lut", "train_agent", "select_query",
            "update_state"} <= node_names
    dataset_names = {node["name"] for node in cycle["nodes"] if node["type"] == "data"}
    assert "next_al_state" in dataset_names
