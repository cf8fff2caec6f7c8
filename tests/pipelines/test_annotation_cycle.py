"""People label the pool, through real Kedro runs on the tiny profile: a folder of unlabelled
images in, the query out as an annotation package, labels back (partly), on to the second cycle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines.annotation import AwaitingLabels, InvalidLabelsError

from .conftest import read_json, run_pipeline

STATES = Path("data/05_model_input/al_state")


def _states(root: Path) -> dict[int, dict]:
    return {int(p.stem.split("_")[1]): json.loads(p.read_text())
            for p in (root / STATES).glob("cycle_*.json")}


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file a refused import must leave alone."""
    folders = [root / STATES, root / "data/01_raw/annotations"]
    return {str(p): p.read_bytes() for folder in folders if folder.exists()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def own_pool(root: Path) -> dict:
    """A user's data: 25 labelled images (YOLO) and 35 unlabelled ones in two sub-folders.

    Made from the tiny embedded set, so the images are the ones the tiny detector settings suit.
    """
    run_pipeline(root, "prepare")
    source = root / "data/01_raw/embedded_tiny"
    stems = sorted(p.stem for p in (source / "images").glob("*.png"))
    labelled, unlabelled = root / "mine/labelled", root / "mine/unlabelled"
    for folder in ("images", "labels"):
        (labelled / folder).mkdir(parents=True)
    for stem in stems[:25]:
        shutil.copy(source / "images" / f"{stem}.png", labelled / "images")
        shutil.copy(source / "labels" / f"{stem}.txt", labelled / "labels")
    shutil.copy(source / "data.yaml", labelled / "data.yaml")
    for index, stem in enumerate(stems[25:]):
        day = unlabelled / ("day1" if index % 2 else "day2")
        day.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / "images" / f"{stem}.png", day / f"{stem}.png")
    return own_pool_params(root)


def own_pool_params(root: Path) -> dict:
    return {"dataset": {"source": "yolo", "path": str(root / "mine/labelled/data.yaml"),
                        "unlabelled": str(root / "mine/unlabelled"),
                        "splits": {"val": 8, "test": 8, "initial": None, "seed": 0}}}


def _files(**options) -> dict:
    return {"al": {"annotator": "files", **options}}


def test_own_unlabelled_pool_through_an_annotation_package_to_the_second_cycle(project):
    run_pipeline(project, "prepare", own_pool(project))
    index = read_json(project / "data/03_primary/image_index.json")
    splits = read_json(project / "data/03_primary/splits.json")
    assert len(index["unlabelled_ids"]) == 35 and index["unlabelled_ids"][0].startswith("day")
    assert splits["pool"] == index["unlabelled_ids"]  # unlabelled images never enter V, T, L_0
    assert [len(splits[name]) for name in ("val", "test", "initial")] == [8, 8, 9]

    # The oracle cannot label this pool: refused before any detector is trained.
    with pytest.raises(ValueError, match="35 pool images have no labels"):
        run_pipeline(project, "al_cycle")
    assert not (project / "data/06_models/detector").exists()

    run_pipeline(project, "al_cycle", _files())
    state = _states(project)[0]
    batch = state["awaiting"]["image_ids"]
    assert len(batch) == 5 and set(batch) <= set(index["unlabelled_ids"])
    assert state["pool_ids"] == splits["pool"]  # awaiting images stay in the pool until labelled
    package = project / "data/07_model_output/annotation/cycle_0"
    tasks = json.loads((package / "tasks.json").read_text())
    assert [t["data"]["mgral_image_id"] for t in tasks] == batch
    assert (package / "cvat_annotations.xml").is_file() and len(list((package / "labels").iterdir())) == 5

    # Before the labels are done, a run says so and changes nothing.
    before = _snapshot(project)
    with pytest.raises(AwaitingLabels, match=r"cycle 0 waits for labels: 0 of 5 images done"):
        run_pipeline(project, "al_cycle", _files())
    # A bad file is refused, naming it, the image and the problem; nothing is written.
    bad = project / "bad.json"
    bad.write_text(json.dumps([{"id": 1, "data": {"mgral_image_id": "stranger"},
                                "annotations": [{"id": 1, "result": []}]}]))
    with pytest.raises(InvalidLabelsError, match=r"bad.json: task 1: image 'stranger' is not in"):
        run_pipeline(project, "al_cycle", _files(files={"labels": str(bad)}))
    assert _snapshot(project) == before

    # People finish 3 of the 5 images in Label Studio (one marked empty) and export JSON.
    done = {batch[0]: [(1, [10.0, 10.0, 40.0, 50.0])], batch[1]: [(0, [5.0, 6.0, 25.0, 30.0])],
            batch[2]: []}
    export = project / "export.json"
    export.write_text(json.dumps([_ls_task(task, done) for task in tasks]))
    with pytest.raises(AwaitingLabels, match=r"3 of 5 images done .* al.accept_partial=true"):
        run_pipeline(project, "al_cycle", _files(files={"labels": str(export)}))

    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=project, check=True)
    run_pipeline(project, "al_cycle", _files(files={"labels": str(export)}, accept_partial=True))
    states = _states(project)
    first = states[1]
    assert first["labelled_ids"] == states[0]["labelled_ids"] + batch[:3]
    assert {i: first["labels"][i] for i in batch[:3]} == {
        image_id: [{"class_id": c, "bbox": pytest.approx(b)} for c, b in boxes]
        for image_id, boxes in done.items()}
    assert set(batch[3:]) <= set(first["pool_ids"])  # the unfinished ones went back to the pool
    assert len(first["awaiting"]["image_ids"]) == 5  # the second cycle's batch, in its package
    assert (project / "data/07_model_output/annotation/cycle_1/tasks.json").is_file()
    assert (project / "data/06_models/detector/cycle_1.pt").is_file()
    saved = json.loads((project / "data/01_raw/annotations/cycle_0.json").read_text())
    assert sorted(i["mgral_image_id"] for i in saved["images"]) == sorted(batch[:3])
    assert saved["info"]["returned_to_pool"] == batch[3:]
    assert (project / "data/01_raw/annotations.dvc").is_file()  # tracked by DVC

    # New images arrive in the folder: a new `prepare` keeps every label and the awaiting batch.
    # (Mirrored, so they are new pictures: a byte-identical copy of a known image is that image.)
    source = sorted((project / "data/01_raw/embedded_tiny/images").glob("*.png"))
    for image in source[:3]:
        Image.open(image).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
            project / "mine/unlabelled/day1" / f"new_{image.name}")
    run_pipeline(project, "prepare", own_pool_params(project))
    kept = _states(project)
    assert sorted(kept) == [0, 1]
    assert kept[1]["labels"] == first["labels"] and kept[1]["awaiting"] == first["awaiting"]
    assert len(kept[1]["pool_ids"]) == len(first["pool_ids"]) + 3


def _ls_task(task: dict, done: dict) -> dict:
    """The task as Label Studio exports it after a person submitted (or did not) its labels."""
    image_id = task["data"]["mgral_image_id"]
    if image_id not in done:
        return {"id": len(image_id), "data": task["data"], "annotations": []}
    result = [{"type": "rectanglelabels", "original_width": 96, "original_height": 96,
               "value": {"x": x1 / 96 * 100, "y": y1 / 96 * 100, "width": (x2 - x1) / 96 * 100,
                         "height": (y2 - y1) / 96 * 100, "rotation": 0,
                         "rectanglelabels": [f"digit_{c}"]}}
              for c, (x1, y1, x2, y2) in done[image_id]]
    return {"id": 1, "data": task["data"], "annotations": [{"id": 1, "result": result}]}
