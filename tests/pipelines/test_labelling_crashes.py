"""A labelling run killed (SIGKILL) in the middle of each write of an import: the next run, with no
hand edit, imports the labels, leaves valid files that DVC tracks, and closes the killed run's
MLflow run as KILLED. Real Kedro runs (the `receive_labels` node of `al_cycle`) in a DVC repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from kedro.framework.session import KedroSession
from kedro_datasets.json import JSONDataset
from kedro.io.core import Version

from mgral_pipelines import al_state

from .conftest import _end_stale_runs

BATCH = ["u1", "u2"]
LABELS = Path("data/01_raw/annotations")

# Runs in a child process: a writer of one file dies (SIGKILL) half-way through writing it.
# "replace": a write-then-rename dies with half its temporary written, before the rename;
# "open": a file written in place dies with half its first chunk on disk.
_KILLER = textwrap.dedent("""
    import builtins, os, signal, sys
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    how, target, params = sys.argv[1], sys.argv[2], sys.argv[3]
    die = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if how == "replace":
        real_replace = os.replace
        def replace(source, destination, *args, **kwargs):
            if os.fspath(destination).endswith(target):
                with open(source, "r+b") as half:
                    half.truncate(half.seek(0, 2) // 2)
                die()
            return real_replace(source, destination, *args, **kwargs)
        os.replace = replace
    else:
        real_open = builtins.open
        class Dying:
            def __init__(self, handle): self._handle = handle
            def write(self, data):
                self._handle.write(data[: len(data) // 2]); self._handle.flush(); die()
            def __enter__(self): return self
            def __exit__(self, *exc): return self._handle.__exit__(*exc)
            def __getattr__(self, name): return getattr(self._handle, name)
        def dying_open(file, mode="r", *args, **kwargs):
            handle = real_open(file, mode, *args, **kwargs)
            if isinstance(file, (str, os.PathLike)) and os.fspath(file).endswith(target) \\
                    and any(m in mode for m in "wa+"):
                return Dying(handle)
            return handle
        builtins.open = dying_open
    bootstrap_project(os.getcwd())
    import json
    with KedroSession.create(env="tiny", runtime_params=json.loads(params)) as session:
        session.run(pipeline_names=["al_cycle"], node_names=["receive_labels"])
""")


def _awaiting_workspace(project: Path) -> dict:
    """Cycle 0 of a prepared dataset, its batch (u1, u2) waiting for labels; their COCO export."""
    records = [{"image_id": i, "file": str(project / f"pool/{i}.png"), "width": 32, "height": 32}
               for i in ("l1", *BATCH)]
    JSONDataset(filepath="data/03_primary/image_index.json", version=Version(None, None)).save(
        {"classes": ["cat"], "images": records})
    state = {"cycle": 0, "dataset": "fp", "labelled_ids": ["l1"], "pool_ids": BATCH,
             "labels": {"l1": []}, "history": []}
    folder = project / "data/05_model_input/al_state"
    folder.mkdir(parents=True)
    awaiting = al_state.await_labels(state, BATCH, "random", "files", "then")
    (folder / "cycle_0.json").write_text(json.dumps(awaiting))
    export = project / "export.json"
    export.write_text(json.dumps({
        "images": [{"id": n, "file_name": f"{i}.png", "width": 32, "height": 32}
                   for n, i in enumerate(BATCH, 1)],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 12]}],
        "categories": [{"id": 1, "name": "cat"}]}))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    return {"al": {"annotator": "files", "files": {"labels": str(export)}}}


def _import(project: Path, params: dict) -> None:
    _end_stale_runs()
    environment = dict(os.environ)
    try:
        with KedroSession.create(project_path=project, env="tiny",
                                 runtime_params=params) as session:
            session.run(pipeline_names=["al_cycle"], node_names=["receive_labels"])
    finally:
        _end_stale_runs()
        os.environ.clear()
        os.environ.update(environment)


@pytest.mark.parametrize(("how", "target"), [
    ("replace", "data/01_raw/annotations/cycle_0.json"),  # the labels file
    ("replace", "data/05_model_input/al_state/cycle_1.json"),  # the next cycle's state
    ("open", "data/01_raw/annotations.dvc"),  # DVC's record of the labels folder
], ids=["labels", "state", "dvc_file"])
def test_a_run_killed_while_writing_an_import_is_repaired_by_the_next_run(project, how, target):
    params = _awaiting_workspace(project)
    killed = subprocess.run([sys.executable, "-c", _KILLER, how, target, json.dumps(params)],
                            cwd=project, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    if how == "open":
        assert "md5" not in (project / target).read_text()  # the kill left it broken
    else:
        assert list((project / target).parent.glob(f".{Path(target).stem}*"))  # half a temporary

    _import(project, params)  # the next run, exactly as before: no hand edit in between

    state = json.loads((project / "data/05_model_input/al_state/cycle_1.json").read_text())
    assert state["labelled_ids"] == ["l1", *BATCH]
    assert state["labels"]["u1"] == [{"class_id": 0, "bbox": [2.0, 3.0, 12.0, 15.0]}]
    saved = json.loads((project / LABELS / "cycle_0.json").read_text())
    assert [image["mgral_image_id"] for image in saved["images"]] == BATCH
    assert sorted(p.name for p in (project / LABELS).iterdir()) == ["cycle_0.json"]
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        assert repo.status(targets=[str(LABELS)]) == {}  # DVC's record matches the labels
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    statuses = sorted(run.info.status for run in runs)
    assert statuses == ["FINISHED", "KILLED"], statuses
    [killed_run] = [run for run in runs if run.info.status == "KILLED"]
    assert "killed" in killed_run.data.tags["mlflow.note.content"]
