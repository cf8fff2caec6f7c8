"""A full round trip through a real Label Studio server on the tiny profile: the query becomes tasks
with the detector's boxes, an annotator submits labels through the server's API, and the next
cycle's state holds exactly those labels."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml

from mgral_pipelines.annotation import AwaitingLabels

from .conftest import read_json, run_pipeline
from .test_annotation_cycle import _snapshot, _states


def _percent(bbox, width, height):
    x1, y1, x2, y2 = bbox
    return {"x": 100 * x1 / width, "y": 100 * y1 / height, "width": 100 * (x2 - x1) / width,
            "height": 100 * (y2 - y1) / height}


def _submit(client, task, boxes, classes, cancelled=False):
    """What Label Studio's editor sends when a person presses Submit (or Skip)."""
    result = [{"from_name": "label", "to_name": "image", "type": "rectanglelabels",
               "original_width": 96, "original_height": 96,
               "value": {**_percent(box["bbox"], 96, 96), "rotation": 0,
                         "rectanglelabels": [classes[box["class_id"]]]}} for box in boxes]
    client.annotations.create(id=task.id, result=result, was_cancelled=cancelled)


def test_label_studio_round_trip(project: Path, label_studio, monkeypatch):
    title = f"MGRAL round trip {project.parent.name}"
    params = {"al": {"annotator": "label_studio", "prelabel_conf": 0.05,
                     "label_studio": {"project": title}}}
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.api_key)
    run_pipeline(project, "al_cycle", params)

    batch = _states(project)[0]["awaiting"]["image_ids"]
    client = label_studio.client()
    [found] = [p for p in client.projects.list() if p.title == title]
    tasks = {t.data["mgral_image_id"]: t for t in client.tasks.list(project=found.id, fields="all")}
    assert sorted(tasks) == sorted(batch)
    # Pre-annotations: the cycle's detections (>= prelabel_conf) in percent, top-left corner.
    detections = json.loads((project / "data/07_model_output/pool_detections/cycle_0.json").read_text())
    index = read_json(project / "data/03_primary/image_index.json")
    records = {r["image_id"]: r for r in index["images"]}
    shown = 0
    for image_id, task in tasks.items():
        expected = [d for d in detections[image_id] if d["score"] >= 0.05]
        regions = task.predictions[0].result if task.predictions else []
        assert len(regions) == len(expected)
        for region, detection in zip(regions, expected):
            assert region["value"]["rectanglelabels"] == [index["classes"][detection["class_id"]]]
            assert region["value"]["x"] == pytest.approx(100 * max(detection["bbox"][0], 0) / 96)
            assert region["score"] == pytest.approx(detection["score"])
        shown += len(regions)
        # The annotator's browser gets the image itself from the server.
        image = httpx.get(label_studio.url + task.data["image"],
                          headers={"Authorization": f"Token {label_studio.api_key}"})
        assert image.status_code == 200
        assert image.content == Path(records[image_id]["file"]).read_bytes()
    assert shown > 0, "the detector found nothing to pre-annotate"

    before = _snapshot(project)
    with pytest.raises(AwaitingLabels, match=r"0 of 5 images done \(Label Studio project"):
        run_pipeline(project, "al_cycle", params)
    assert _snapshot(project) == before

    # An annotator labels three images, marks one empty and skips one.
    oracle = read_json(project / "data/03_primary/oracle_annotations.json")
    given = {image_id: oracle[image_id] for image_id in batch[:3]}
    given[batch[0]] = [{"class_id": 2, "bbox": [3.0, 4.0, 50.0, 60.0]}]  # a correction
    given[batch[3]] = []
    for image_id, boxes in given.items():
        _submit(client, tasks[image_id], boxes, index["classes"])
    _submit(client, tasks[batch[4]], [], index["classes"], cancelled=True)
    with pytest.raises(AwaitingLabels, match=r"4 of 5 images done"):
        run_pipeline(project, "al_cycle", params)
    assert _snapshot(project) == before

    # The skipped image is labelled after all. The key now comes from a credentials file (the one of
    # the run's environment: conf/local/ for a plain `kedro run`, conf/tiny/ with `--env tiny`).
    given[batch[4]] = oracle[batch[4]] or [{"class_id": 0, "bbox": [10.0, 10.0, 30.0, 30.0]}]
    _submit(client, tasks[batch[4]], given[batch[4]], index["classes"])
    monkeypatch.delenv("LABEL_STUDIO_URL")
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    (project / "conf/tiny/credentials.yml").write_text(yaml.safe_dump(
        {"label_studio": {"url": label_studio.url, "api_key": label_studio.api_key}}))
    run_pipeline(project, "al_cycle", params)

    states = _states(project)
    first = states[1]
    assert first["labelled_ids"] == states[0]["labelled_ids"] + batch
    assert set(batch).isdisjoint(first["pool_ids"])
    for image_id, boxes in given.items():  # exactly the annotator's labels
        got = first["labels"][image_id]
        assert [b["class_id"] for b in got] == [b["class_id"] for b in boxes]
        for box, want in zip(got, boxes):
            assert box["bbox"] == pytest.approx(want["bbox"], abs=1e-6)
    # The second cycle's batch went to the same project.
    second = first["awaiting"]["image_ids"]
    after = {t.data["mgral_image_id"] for t in client.tasks.list(project=found.id)}
    assert after == set(batch) | set(second)
