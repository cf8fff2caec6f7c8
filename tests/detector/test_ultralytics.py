"""ultralytics kept inside the project: no MLflow logging, nothing in HOME, Pillow's own open."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import mgral_pipelines
from tests.conftest import DetectorDataset

_ISOLATED_RUN = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import mgral_pipelines  # noqa: F401
    import mlflow
    from mgral_pipelines import detector
    # Only for the control run below: the test must be able to see ultralytics log if it did.
    from ultralytics import settings
    from ultralytics.models.yolo.detect import DetectionTrainer

    spec = json.loads(Path(sys.argv[1]).read_text())
    config = detector.DetectorConfig.from_dict(spec["config"])
    home, cwd = Path(spec["home"]), Path.cwd()
    mlflow.set_tracking_uri(spec["tracking_uri"])
    client = mlflow.MlflowClient()
    report = {"mlflow_setting_after_import": settings["mlflow"]}
    settings.update({"mlflow": True})  # worst case: someone turned the integration back on


    def run(trainer_cls, name):
        with mlflow.start_run() as run:
            weights, _ = detector.train_detector(
                spec["records"], spec["annotations"], spec["classes"], spec["train_ids"],
                spec["val_ids"], config, Path(spec["run_dir"]) / name, progress=False,
                trainer_cls=trainer_cls,
            )
            detector.evaluate_detector(weights, spec["records"], spec["annotations"],
                                       spec["classes"], spec["val_ids"], config, progress=False)
            detector.embed(weights, spec["records"], spec["val_ids"], config, progress=False)
            still_active = mlflow.active_run().info.run_id == run.info.run_id
        logged = client.get_run(run.info.run_id).data
        return {
            "still_active": still_active,
            "metrics": len(logged.metrics),
            "params": len(logged.params),
            "experiments": sorted(e.name for e in client.search_experiments()),
            "tracking_uri": mlflow.get_tracking_uri(),
            "home": sorted(str(p.relative_to(home)) for p in home.rglob("*")),
            "cwd": sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*")),
        }


    report["project"] = run(detector.ProjectDetectionTrainer, "project")
    report["control"] = run(DetectionTrainer, "control")  # ultralytics' own trainer
    print(json.dumps(report))
    """
)


@pytest.mark.slow
def test_mlflow_run_and_home_stay_untouched_in_a_fresh_process(
    detector_square_dataset: DetectorDataset, tmp_path: Path
) -> None:
    """Train, evaluate and embed in a fresh process inside an active MLflow run.

    A fresh process, because ultralytics decides at import time where its files go, and skips its
    MLflow callback whenever it detects pytest (so that environment is removed too). Ultralytics'
    MLflow integration is even switched back on in its (temporary) settings: the adapter's trainer
    must still not log, while ultralytics' own trainer, the control, does. HOME and the working
    directory are empty folders that must stay empty.
    """
    data = detector_square_dataset
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = {
        "config": {"imgsz": 64, "epochs": 1, "batch": 4, "mosaic": 0.0, "close_mosaic": 0},
        "tracking_uri": tracking_uri,
        "home": str(home),
        "records": data.records,
        "annotations": data.annotations,
        "classes": data.classes,
        "train_ids": data.train_ids[:8],
        "val_ids": data.val_ids,
        "run_dir": str(tmp_path / "run"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    hidden = ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "MPLCONFIGDIR")
    env = {key: value for key, value in os.environ.items()
           if key not in hidden and not key.startswith("MLFLOW_") or key == "MLFLOW_DISABLE_TELEMETRY"}
    source_dir = str(Path(mgral_pipelines.__file__).resolve().parents[1])
    python_path = [source_dir, *filter(None, [env.get("PYTHONPATH")])]
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join(python_path),
               YOLO_CONFIG_DIR=str(tmp_path / "yolo_config"))

    completed = subprocess.run(
        [sys.executable, "-c", _ISOLATED_RUN, str(tmp_path / "spec.json")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )

    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["mlflow_setting_after_import"] is False
    project = report["project"]
    assert project["still_active"]
    assert (project["metrics"], project["params"]) == (0, 0)
    assert project["experiments"] == ["Default"]
    assert project["tracking_uri"] == tracking_uri
    assert project["home"] == []
    assert project["cwd"] == []
    assert report["control"]["metrics"] > 0  # the check above would have seen ultralytics logging


def test_importing_the_adapter_keeps_corrupt_images_an_import_error(tmp_path):
    """ultralytics patches PIL.Image.open to install pi-heif on unreadable files; the adapter
    undoes that, so a corrupt image stays a clear dataset error (and nothing is installed)."""
    from mgral_pipelines.data.manifest import InvalidDatasetError, check_image_file

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(InvalidDatasetError, match="broken.png: image file is corrupt"):
        check_image_file(broken)


def _ultralytics_imports(path: Path) -> list[int]:
    """Lines of `path` that import ultralytics (statements, or importlib with a literal name)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else ""
            called = called or (node.func.id if isinstance(node.func, ast.Name) else "")
            names = [str(node.args[0].value)] if called in ("import_module", "__import__") else []
        else:
            continue
        if any(name == "ultralytics" or name.startswith("ultralytics.") for name in names):
            found.append(node.lineno)
    return found


def test_only_the_adapter_package_imports_ultralytics() -> None:
    source = Path(mgral_pipelines.__file__).resolve().parent
    adapter = source / "detector"
    outside = {
        f"{path.relative_to(source)}:{line}"
        for path in source.rglob("*.py")
        if adapter not in path.parents
        for line in _ultralytics_imports(path)
    }
    inside = [path for path in adapter.rglob("*.py") if _ultralytics_imports(path)]

    assert not outside, f"ultralytics imported outside mgral_pipelines/detector: {sorted(outside)}"
    assert adapter / "_ultralytics.py" in inside  # the scan does find the imports it looks for


@pytest.mark.parametrize(("device", "expected"), [("cpu", False), ("meta", True)])
def test_the_trainers_amp_check_never_downloads(
    device: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an accelerator ultralytics' own check would fetch yolo26n.pt; the adapter's answers at
    once. ("meta" stands in for a CUDA device: it is neither CPU nor MPS, and needs no GPU.)"""
    from ultralytics.engine import trainer as ultralytics_trainer
    from ultralytics.utils import downloads

    attempts: list[str] = []

    def no_download(url: str, *args: object, **kwargs: object) -> None:
        attempts.append(str(url))
        raise ConnectionError(f"test: no download allowed ({url})")

    monkeypatch.setattr(downloads, "safe_download", no_download)
    model = torch.nn.Linear(2, 2, device=device)

    assert ultralytics_trainer.check_amp(model) is expected
    assert attempts == []
