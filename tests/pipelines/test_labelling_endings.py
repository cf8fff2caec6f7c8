"""How a labelling run ends when it cannot go on: `kedro run` prints the answer alone (no
traceback) with an exit status a script can test, and the MLflow run ends FAILED with the reason."""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import pytest

from mgral_pipelines.annotation.server import LabelStudioError

from .test_labelling_crashes import _awaiting_workspace, _import


def _kedro_run(project, params: dict) -> subprocess.CompletedProcess:
    options = ",".join(f"al.{key}={value}" for key, value in params.items())
    return subprocess.run([sys.executable, "-m", "kedro", "run", "--pipelines=al_cycle",
                           "--env=tiny", "--nodes=receive_labels", f"--params={options}"],
                          cwd=project, capture_output=True, text=True, timeout=300)


def test_waiting_and_refusals_end_with_the_message_alone_and_a_failed_run(project):
    _awaiting_workspace(project)
    waiting = _kedro_run(project, {"annotator": "files"})
    assert waiting.returncode == 75
    assert waiting.stderr.strip().splitlines()[-1].startswith(
        "Waiting for labels: cycle 0 waits for labels: 0 of 2 images done")
    assert "Traceback" not in waiting.stdout + waiting.stderr

    bad = project / "bad.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "u1.png"},
                                          {"id": 2, "file_name": "../../etc/u2.png"}],
                               "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                "bbox": ["1", 2, 3, 4]}],
                               "categories": [{"id": 1, "name": "cat"}]}))
    refused = _kedro_run(project, {"annotator": "files", "files.labels": str(bad)})
    assert refused.returncode == 65
    message = refused.stderr[refused.stderr.index("Labels refused:"):]
    assert message.startswith(f"Labels refused: {bad}: 2 problems, nothing was imported")
    assert "coordinate is text (1)" in message and "path outside the package" in message
    assert "Traceback" not in refused.stdout + refused.stderr

    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert sorted((run.info.status, run.data.tags["mgral.outcome"]) for run in runs) == [
        ("FAILED", "awaiting_labels"), ("FAILED", "labels_refused")]
    notes = sorted(run.data.tags["mlflow.note.content"] for run in runs)
    assert notes[0].startswith("AwaitingLabels: cycle 0 waits for labels")
    assert notes[1].startswith(f"InvalidLabelsError: {bad}: 2 problems")


def test_missing_credentials_name_the_file_of_the_run_environment(project, monkeypatch):
    _awaiting_workspace(project)
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioError, match=r"missing: URL and API key\): set `label_studio: "
                       r"\{url: ..., api_key: ...\}` in conf/tiny/credentials.yml .*"
                       r"LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"):
        _import(project, {"al": {"annotator": "label_studio"}})
