"""Round trips through the formats people's tools read and write: what goes out as pre-labels
comes back, after a person's edits, as exactly the labels they made."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import fsspec
import pytest

from mgral_pipelines.annotation.batch import check_returned, prelabels
from mgral_pipelines.annotation.coco_yolo import read_coco, to_coco
from mgral_pipelines.annotation.exchange import image_url, read_returned_file
from mgral_pipelines.annotation.label_studio import label_config, make_tasks, read_export_file
from mgral_pipelines.annotation.package import AnnotationPackageDataset, build_package
from mgral_pipelines.config import LabelStudioParams


def _prelabels(batch, detections):
    return {image_id: prelabels(detections, image_id, 0.25) for image_id in batch.records}


def _close(labels, expected):
    assert set(labels) == set(expected)
    for image_id, boxes in expected.items():
        assert [b["class_id"] for b in labels[image_id]] == [b["class_id"] for b in boxes]
        for got, want in zip(labels[image_id], boxes):
            assert got["bbox"] == pytest.approx(want["bbox"], abs=0.01)


def test_label_studio_tasks_carry_percent_boxes_and_an_annotators_export_comes_back(tmp_path, batch,
                                                                                    detections):
    url = image_url(LabelStudioParams(document_root=str(tmp_path)))
    tasks = make_tasks(batch, _prelabels(batch, detections), url)
    assert [t["data"]["mgral_image_id"] for t in tasks] == ["a", "b", "c"]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=pool/a.png"
    region = tasks[0]["predictions"][0]["result"][0]
    assert region["value"] == {"x": 100 * 10 / 64, "y": 100 * 5 / 48, "width": 100 * 20 / 64,
                               "height": 100 * 35 / 48, "rotation": 0, "rectanglelabels": ["dog"]}
    assert (region["original_width"], region["original_height"], region["score"]) == (64, 48, 0.9)
    assert len(tasks[0]["predictions"][0]["result"]) == 1  # the 0.1 box is below prelabel_conf
    assert tasks[1]["predictions"][0]["result"][0]["value"]["x"] == 0  # clipped to the image
    assert "predictions" not in tasks[2]

    # An annotator accepts a's box, relabels b's as dog, marks c empty; a second, skipped
    # annotation and a draft-only task do not count.
    export = []
    for number, task in enumerate(tasks, start=1):
        result = task.get("predictions", [{"result": []}])[0]["result"]
        if task["data"]["mgral_image_id"] == "b":
            result = [{**r, "value": {**r["value"], "rectanglelabels": ["dog"]}} for r in result]
        export.append({"id": number, "data": task["data"], "annotations": [
            {"id": 10 + number, "result": result, "was_cancelled": False},
            {"id": 20 + number, "result": [], "was_cancelled": True}]})
    export.append({"id": 99, "data": {"image": "/data/upload/1/x.png"}, "annotations": []})
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    labels = check_returned(read_export_file(path), batch).labels
    _close(labels, {"a": [{"class_id": 1, "bbox": [10, 5, 30, 40]}],
                    "b": [{"class_id": 1, "bbox": [0, 2, 40, 60]}], "c": []})


def test_cvat_pre_labels_edited_in_the_xml_come_back(tmp_path, batch, detections):
    package = build_package(batch, _prelabels(batch, detections),
                            image_url(LabelStudioParams(document_root=str(tmp_path))),
                            label_config(batch.classes))
    root = ElementTree.fromstring(package["files"]["cvat_annotations.xml"])
    assert [label.findtext("name") for label in root.iter("label")] == ["cat", "dog"]
    images = {image.get("name"): image for image in root.iter("image")}
    assert sorted(images) == ["a.png", "b.png", "c.png"]
    box = images["a.png"].find("box")
    assert (box.get("label"), box.get("xtl"), box.get("ybr")) == ("dog", "10.00", "40.00")
    # The annotator moves a's box, deletes b's and draws one on c, as CVAT would export it.
    box.set("xtl", "12.50")
    images["b.png"].remove(images["b.png"].find("box"))
    ElementTree.SubElement(images["c.png"], "box", label="cat", xtl="1", ytl="2", xbr="20",
                           ybr="30", occluded="0", source="manual", z_order="0")
    path = tmp_path / "annotations.xml"
    path.write_text(ElementTree.tostring(root, encoding="unicode"))
    labels = check_returned(read_returned_file(path, "auto", batch), batch).labels
    _close(labels, {"a": [{"class_id": 1, "bbox": [12.5, 5, 30, 40]}], "b": [],
                    "c": [{"class_id": 0, "bbox": [1, 2, 20, 30]}]})


def test_package_is_written_whole_with_linked_images_and_yolo_labels_that_import_back(
        tmp_path, batch, detections):
    package = build_package(batch, _prelabels(batch, detections),
                            image_url(LabelStudioParams(document_root=str(tmp_path))),
                            label_config(batch.classes))
    store = AnnotationPackageDataset(str(tmp_path / "annotation"))
    store.save(package)
    store.save({})  # another annotator's cycle: nothing
    folder = Path(store.load()["cycle_3"])
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt", "classes.txt", "cvat_annotations.xml", "data.yaml", "images", "images.txt",
        "labels", "tasks.json"]
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["a.png", "b.png", "c.png"]
    assert os.path.samefile(folder / "images" / "a.png", batch.records["a"]["file"])
    assert (folder / "images.txt").read_text().splitlines() == [
        batch.records[i]["file"] for i in ("a", "b", "c")]
    assert json.loads((folder / "tasks.json").read_text())[0]["data"]["mgral_image_id"] == "a"
    assert (folder / "labels" / "c.txt").read_text() == ""
    assert "al.files.labels" in (folder / "README.txt").read_text()
    # The YOLO pre-labels, returned unchanged, are the detector's confident boxes.
    labels = check_returned(read_returned_file(folder, "auto", batch), batch).labels
    _close(labels, {"a": [{"class_id": 1, "bbox": [10, 5, 30, 40]}],
                    "b": [{"class_id": 0, "bbox": [0, 2, 40, 60]}], "c": []})
    assert not list(tmp_path.glob("annotation/.cycle_*"))  # no staging folder left behind
    (tmp_path / "annotation" / ".cycle_3.k1ll3d").mkdir()  # what a killed save leaves
    store.save(package)
    assert not list(tmp_path.glob("annotation/.cycle_*"))
    # The cycle runs again (e.g. after a new `prepare`): the package people may have edited in
    # place is archived, not deleted.
    (folder / "labels" / "c.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    store.save(package)
    archived = sorted((tmp_path / "annotation" / "archive").glob("*/cycle_3"))[-1]
    assert (archived / "labels" / "c.txt").read_text() == "0 0.5 0.5 0.2 0.2\n"
    assert (folder / "labels" / "c.txt").read_text() == "" and list(store.load()) == ["cycle_3"]


def test_package_on_an_fsspec_filesystem_is_uploaded_whole_and_archives_an_earlier_one(
        tmp_path, batch, detections):
    fs = fsspec.filesystem("memory")
    root = "/mgral-test-annotation"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    package = build_package(batch, _prelabels(batch, detections),
                            image_url(LabelStudioParams(document_root=str(tmp_path))),
                            label_config(batch.classes))
    store = AnnotationPackageDataset(f"memory://{root}")
    assert store.load() == {} and not store.exists()
    fs.pipe_file(f"{root}/cycle_3/stale.txt", b"from an earlier save")
    store.save(package)
    try:
        assert store.load() == {"cycle_3": f"memory://{root}/cycle_3"}
        written = sorted(p.removeprefix(f"{root}/cycle_3/") for p in fs.find(f"{root}/cycle_3"))
        assert written == sorted([*package["files"], "images/a.png", "images/b.png", "images/c.png"])
        assert fs.cat_file(f"{root}/cycle_3/images/b.png") == Path(
            batch.records["b"]["file"]).read_bytes()
        assert json.loads(fs.cat_file(f"{root}/cycle_3/tasks.json"))[0]["data"]["mgral_image_id"] == "a"
        [stale] = fs.glob(f"{root}/archive/*/cycle_3/stale.txt")
        assert fs.cat_file(stale) == b"from an earlier save"
    finally:
        fs.rm(root, recursive=True)


def test_saved_cycle_labels_are_coco_that_imports_back(tmp_path, batch):
    labels = {"a": [{"class_id": 0, "bbox": [1.0, 2.0, 11.0, 22.0]}], "c": []}
    coco = to_coco(labels, batch, {"cycle": 3})
    assert [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    assert coco["annotations"][0]["bbox"] == [1.0, 2.0, 10.0, 20.0]
    path = tmp_path / "cycle_3.json"
    path.write_text(json.dumps(coco))
    assert check_returned(read_coco(path), batch).labels == labels
