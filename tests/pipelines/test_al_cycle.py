"""A real al_cycle through Kedro on the tiny profile: prepare, train, evaluate, select, annotate."""

import json

import mlflow
import pytest
import pandas as pd

from .conftest import read_json, run_kedro_cli, run_pipeline


def _states(root):
    folder = root / "data" / "05_model_input" / "al_state"
    return {int(p.stem.split("_")[1]): json.loads(p.read_text()) for p in folder.glob("cycle_*.json")}


def test_al_cycle_on_a_fresh_project_prepares_then_advances(project):
    run_pipeline(project, "al_cycle")

    states = _states(project)
    assert sorted(states) == [0, 1]
    before, after = states[0], states[1]
    query = pd.read_csv(project / "data/07_model_output/queries/cycle_0.csv", dtype={"image_id": str})
    assert list(query.columns) == ["image_id", "file", "score"]
    assert len(query) == 5 and query["image_id"].is_unique
    assert set(query["image_id"]) <= set(before["pool_ids"])
    assert after["labelled_ids"] == before["labelled_ids"] + query["image_id"].tolist()
    assert set(after["pool_ids"]) == set(before["pool_ids"]) - set(query["image_id"])
    oracle = read_json(project / "data/03_primary/oracle_annotations.json")
    for image_id in query["image_id"]:
        assert after["labels"][image_id] == oracle.get(image_id, [])

    report = json.loads((project / "data/08_reporting/detector/cycle_0.json").read_text())
    assert 0.0 <= report["test"]["map50"] <= 1.0
    assert 0.0 <= report["test"]["voc07_map50"] <= 1.0  # VOC07 11-point mAP@0.5 beside COCO's
    assert (project / "data/06_models/detector/cycle_0.pt").stat().st_size > 1_000_000

    # MLflow: a local SQLite store in the project with the cycle's metrics and the weights.
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["mgral"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["detector/test_map50"] == report["test"]["map50"]
    assert run.data.metrics["detector/test_voc07_map50"] == report["test"]["voc07_map50"]
    assert run.data.params["al.strategy"] == "random"
    tags = run.data.tags
    assert (tags["mgral.run_kind"], tags["mgral.strategy"], tags["mgral.cycle"]) == (
        "al_cycle", "random", "0")
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "detector")]
    assert "detector/detector_training_info.json" in artifacts
    # The cycle's detector is version 1 of `mgral-detector`; random trains no policy.
    (version,) = mlflow.MlflowClient().search_model_versions("name='mgral-detector'")
    assert version.run_id == run.info.run_id
    assert version.tags == {"mgral.strategy": "initial", "mgral.cycle": "0",
                            "mgral.dataset": before["dataset"]}
    assert not mlflow.MlflowClient().search_model_versions("name='mgral-policy'")

    # The run ends with the summary (here in the log file; the CLI run below prints it).
    log = (project / "logs/kedro.log").read_text()
    assert "Loading data from image_index" in log
    assert (f"D_0 test mAP50-95 {report['test']['map50_95']:.3f} "
            f"(mAP50 {report['test']['map50']:.3f}); no earlier cycle to compare with") in log

    # Running again, as a person does, continues from the latest state and ends with a summary
    # of the cycle; the catalog's chatter goes to the log file only.
    done = run_kedro_cli(project, "run", "--pipelines=al_cycle", "--env=tiny")
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-6000:]
    assert "Loading data" not in printed and "Saving data" not in printed
    log = (project / "logs/kedro.log").read_text()
    assert "Loading data from image_index" in log.split("MGRAL cycle 0 finished")[1]
    summary = done.stdout[done.stdout.index("MGRAL cycle 1 finished"):].splitlines()
    assert "\n".join(summary) in log
    second = json.loads((project / "data/08_reporting/detector/cycle_1.json").read_text())
    query = pd.read_csv(project / "data/07_model_output/queries/cycle_1.csv",
                        dtype={"image_id": str})
    states = _states(project)
    assert summary[0].endswith("(strategy random, 5 images queried)")
    assert summary[1] == (f"Labelled {len(states[1]['labelled_ids'])} -> "
                          f"{len(states[2]['labelled_ids'])} images, pool "
                          f"{len(states[1]['pool_ids'])} -> {len(states[2]['pool_ids'])}")
    assert summary[2] == (
        f"D_1 test mAP50-95 {second['test']['map50_95']:.3f} "
        f"(mAP50 {second['test']['map50']:.3f}); D_0: {report['test']['map50_95']:.3f} "
        f"({second['test']['map50_95'] - report['test']['map50_95']:+.3f})")
    assert summary[3].startswith("LUT and policy: not built; strategy random needs neither")
    assert summary[4].startswith("Queried 5 images: D_1 detects ")
    assert summary[5] == "Where to look next:"
    assert summary[6].split() == ["the", "query", "data/07_model_output/queries/cycle_1.csv"]
    assert "mlflow ui --backend-store-uri sqlite:///mlflow.db (run " in summary[7]
    assert summary[8].split() == ["full", "log", "logs/kedro.log"]
    assert len(query) == 5
    assert sorted(states) == [0, 1, 2]
    assert len(states[2]["labelled_ids"]) == len(states[1]["labelled_ids"]) + 5
    assert states[2]["history"][-1]["cycle"] == 1
    latest = mlflow.MlflowClient().get_model_version("mgral-detector", "2")
    assert (latest.tags["mgral.strategy"], latest.tags["mgral.cycle"]) == ("random", "1")
    checkpoint = mlflow.pyfunc.load_model("models:/mgral-detector/latest").unwrap_python_model()
    assert checkpoint.checkpoint.read_bytes() == (
        project / "data/06_models/detector/cycle_1.pt").read_bytes()

    # A new `prepare` of the same data keeps the progress.
    run_pipeline(project, "prepare")
    assert _states(project) == states
    assert not (project / "data/05_model_input/al_state/archive").exists()


PREPARED = ["data/02_intermediate/manifest.json", "data/03_primary/image_index.json",
            "data/03_primary/oracle_annotations.json", "data/03_primary/splits.json",
            "data/03_primary/eval_labels.json"]


def _archived(project, relative: str) -> list[bytes]:
    """The archived copies of one prepared file, oldest first."""
    path = project / relative
    return [p.read_bytes() for p in sorted((path.parent / "archive").glob(f"*/{path.name}"))
            if p.is_file()]


OLDER = b'{"an older": "version"}'


def _as_kedro_versions(path, latest: bytes) -> None:
    """The layout from before DVC versioned the prepared data: `<name>/<timestamp>/<name>`."""
    path.unlink()
    for stamp, data in [("2026-01-01T00.00.00.000Z", OLDER), ("2026-02-01T00.00.00.000Z", latest)]:
        (path / stamp).mkdir(parents=True)
        (path / stamp / path.name).write_bytes(data)


def test_prepare_with_another_source_archives_the_old_state_and_data_kedro_versioned_or_not(
        project):
    run_pipeline(project, "al_cycle", {"al": {"strategy": "random"}})
    before = {relative: (project / relative).read_bytes() for relative in PREPARED}
    # Two files as a workspace prepared when Kedro versioned them has them.
    versioned = PREPARED[:3]
    for relative in versioned:
        _as_kedro_versions(project / relative, before[relative])
    coco = project / "data/01_raw/embedded_tiny/annotations_coco.json"
    run_pipeline(project, "prepare", {"dataset": {"source": "coco", "path": str(coco)}})

    states = _states(project)
    assert sorted(states) == [0]  # cycle 1 of the old dataset was archived, not deleted
    archived = list((project / "data/05_model_input/al_state/archive").rglob("cycle_*.json"))
    assert sorted(p.name for p in archived) == ["cycle_0.json", "cycle_1.json"]
    # The prepared files it replaced, labels included, went to the archive byte for byte; Kedro's
    # versions went there whole, and their latest (the one Kedro loaded) was the file replaced.
    log = (project / "logs/kedro.log").read_text()
    for relative, old in before.items():
        path, new = project / relative, (project / relative).read_bytes()
        assert _archived(project, relative) == ([] if new == old else [old]), relative
        if relative in versioned:
            (folder,) = (path.parent / "archive").glob(f"*/{path.name}/")
            assert sorted(p.read_bytes() for p in folder.glob(f"*/{path.name}")) == sorted(
                [OLDER, old])
            assert f"{relative}: moved its Kedro versions to " in log
    assert _archived(project, "data/03_primary/oracle_annotations.json")  # the source changed
    index = read_json(project / "data/03_primary/image_index.json")
    assert index["source"] == "coco"
    coco_ids = {r["image_id"] for r in index["images"]}
    assert set(states[0]["pool_ids"]) <= coco_ids

    run_pipeline(project, "al_cycle", {"al": {"strategy": "random"}})
    assert set(_states(project)[1]["labelled_ids"]) <= coco_ids


def test_budget_larger_than_the_pool_is_refused_with_both_numbers(project):
    with pytest.raises(Exception, match="budget 1000 exceeds the pool size 30"):
        run_pipeline(project, "al_cycle", {"al": {"strategy": "random", "budget": 1000}})
    assert sorted(_states(project)) == [0]  # nothing advanced
    assert not (project / "data/06_models/detector").exists()  # refused before any training


def test_prepare_writes_nothing_until_every_check_has_passed(project):
    with pytest.raises(Exception, match="splits need 70 images"):
        run_pipeline(project, "prepare", {"dataset": {"splits": {"val": 30, "test": 30}}})
    written = [p for p in (project / "data").rglob("*")
               if p.is_file() and "01_raw" not in p.parts]  # only the generated raw images
    assert written == []
