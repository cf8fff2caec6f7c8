"""A corpus of bad returned labels: each is refused with an error naming the file, the image and
the problem, and the state is left as it was (tests/pipelines/test_annotation_cycle.py checks that
no file changes either)."""

from __future__ import annotations

import copy
import json

import pytest

from mgral_pipelines import al_state
from mgral_pipelines.annotation import AwaitingLabels, InvalidLabelsError, receive
from mgral_pipelines.annotation.server import LabelStudioServer
from mgral_pipelines.config import ALParams


def _rect(x=10.0, y=10.0, w=20.0, h=30.0, label="dog", size=(64, 48), **value):
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image",
            "original_width": size[0], "original_height": size[1],
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": [label], **value}}


def _task(image_id, *results, task_id=1, cancelled=False):
    annotations = [{"id": task_id * 10 + i, "result": list(r), "was_cancelled": cancelled}
                   for i, r in enumerate(results)]
    return {"id": task_id, "data": {"image": f"/x/{image_id}.png", "mgral_image_id": image_id},
            "annotations": annotations}


def _cvat(*images):
    body = "".join(images)
    return f'<?xml version="1.0"?><annotations><version>1.1</version>{body}</annotations>'


CVAT_A = '<image id="0" name="a.png" width="64" height="48">{}</image>'
BOX = '<box label="{}" xtl="1" ytl="2" xbr="20" ybr="30"/>'

CORPUS = {
    "ls_image_not_in_batch": ("export.json", json.dumps([_task("zz", [_rect()])]),
                              r"export.json: task 1: image 'zz' is not in the awaiting batch of cycle 3"),
    "ls_unknown_class": ("export.json", json.dumps([_task("a", [_rect(label="horse")])]),
                         r"export.json: task 1: image 'a': unknown class 'horse'"),
    "ls_box_outside": ("export.json", json.dumps([_task("a", [_rect(x=90, w=30)])]),
                       r"export.json: task 1: image 'a': box .* lies outside the 64x48 image"),
    "ls_degenerate_box": ("export.json", json.dumps([_task("a", [_rect(w=0)])]),
                          r"export.json: task 1: image 'a': degenerate box"),
    "ls_truncated": ("export.json", json.dumps([_task("a", [_rect()])])[:-7],
                     r"export.json: not valid JSON, truncated or corrupt"),
    "json_neither_ls_nor_coco": ("export.json", json.dumps({"tasks": []}),
                                 r"export.json: a COCO file needs 'images' and 'categories' lists"),
    "ls_two_annotations_disagree": (
        "export.json", json.dumps([_task("a", [_rect()], [_rect(label="cat")])]),
        r"export.json: task 1: image 'a' is labelled twice with conflicting boxes \(annotations \[10, 11\]\)"),
    "ls_two_tasks_disagree": (
        "export.json", json.dumps([_task("a", [_rect()]), _task("a", [_rect(x=1)], task_id=2)]),
        r"task 2: image 'a' is labelled twice with conflicting boxes \(also at .*task 1\)"),
    "ls_rotated_box": ("export.json", json.dumps([_task("a", [_rect(rotation=15)])]),
                       r"task 1: image 'a': rotated box"),
    "ls_polygon": ("export.json",
                   json.dumps([_task("a", [{"type": "polygonlabels", "value": {"points": []}}])]),
                   r"task 1: image 'a': unsupported region type 'polygonlabels'"),
    "ls_wrong_image_size": ("export.json", json.dumps([_task("a", [_rect(size=(100, 100))])]),
                            r"task 1: image 'a': annotated at 100x100 but the image is 64x48"),
    "cvat_truncated": ("annotations.xml", _cvat(CVAT_A.format(BOX.format("dog")))[:-20],
                       r"annotations.xml: not valid XML, truncated or corrupt"),
    "cvat_image_not_in_batch": (
        "annotations.xml", _cvat('<image id="0" name="zz.png" width="64" height="48"/>'),
        r"annotations.xml: <image id=0>: image 'zz.png' is not in the awaiting batch"),
    "cvat_unknown_class": ("annotations.xml", _cvat(CVAT_A.format(BOX.format("horse"))),
                           r"annotations.xml: <image id=0>: image 'a.png': unknown class 'horse'"),
    "cvat_polygon": ("annotations.xml", _cvat(CVAT_A.format('<polygon label="dog" points="1,2"/>')),
                     r"image 'a.png': unsupported shape <polygon>"),
    "cvat_twice_conflicting": (
        "annotations.xml", _cvat(CVAT_A.format(BOX.format("dog")), CVAT_A.format("")),
        r"image 'a.png' is labelled twice with conflicting boxes"),
    "coco_unknown_category": ("labels.json", json.dumps(
        {"images": [{"id": 1, "file_name": "a.png"}], "categories": [{"id": 1, "name": "dog"}],
         "annotations": [{"id": 5, "image_id": 1, "category_id": 7, "bbox": [1, 1, 5, 5]}]}),
        r"labels.json: annotation 5: unknown category_id 7"),
    "coco_box_outside": ("labels.json", json.dumps(
        {"images": [{"id": 1, "file_name": "b.png"}], "categories": [{"id": 1, "name": "dog"}],
         "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [70, 1, 20, 5]}]}),
        r"labels.json: image 1: image 'b.png': box .* outside the 80x60 image"),
    "unknown_format": ("labels.txt", "a 1 2 3 4\n", r"labels.txt: cannot tell its format"),
}


def _awaiting_state(batch):
    state = al_state.initial_state({"initial": ["l0"], "pool": [*batch.records, "d"]},
                                   {"l0": []}, "fp")
    state["cycle"] = batch.cycle
    return al_state.await_labels(state, list(batch.records), "random", "files", "now")


def _index(batch):
    return {"classes": batch.classes, "images": list(batch.records.values())}


def _receive(state, batch, path, **al):
    params = ALParams(annotator="files", files={"labels": str(path)}, **al)
    return receive(state, _index(batch), params, LabelStudioServer(None, None), {}, None)


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_returned_labels_are_refused_naming_file_image_and_problem(tmp_path, batch, case):
    name, content, message = CORPUS[case]
    path = tmp_path / name
    path.write_text(content)
    state = _awaiting_state(batch)
    before = copy.deepcopy(state)
    with pytest.raises(InvalidLabelsError, match=message):
        _receive(state, batch, path)
    assert state == before


def test_bad_yolo_folders_are_refused(tmp_path, batch):
    folder = tmp_path / "yolo"
    (folder / "labels").mkdir(parents=True)
    (folder / "labels" / "a.txt").write_text("1 0.5 0.5 0.2\n")
    with pytest.raises(InvalidLabelsError,
                       match=r"labels/a.txt:1: image 'a': 4 fields, expected 'class cx cy w h'"):
        _receive(_awaiting_state(batch), batch, folder)
    (folder / "labels" / "a.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (folder / "classes.txt").write_text("dog\ncat\n")
    with pytest.raises(InvalidLabelsError, match=r"yolo/classes.txt: its class list \(2 classes\) "
                       r"differs from the project's \['cat', 'dog'\]: class 0 is 'dog'"):
        _receive(_awaiting_state(batch), batch, folder)


def test_partial_batch_waits_unless_accepted_and_empty_images_count_as_labelled(tmp_path, batch):
    path = tmp_path / "export.json"
    path.write_text(json.dumps([_task("a", [_rect()]), _task("b", [], task_id=2),
                                _task("c", [_rect()], task_id=3, cancelled=True)]))
    state = _awaiting_state(batch)
    with pytest.raises(AwaitingLabels, match=r"cycle 3 waits for labels: 2 of 3 images done"):
        _receive(state, batch, path)
    following, coco = _receive(state, batch, path, accept_partial=True)
    assert following["cycle"] == 4 and "awaiting" not in following
    assert following["labelled_ids"] == ["l0", "a", "b"]
    assert following["labels"]["b"] == []  # marked empty: labelled, no objects
    assert following["pool_ids"] == ["c", "d"]  # c returns to the pool
    assert following["history"][-1]["returned_to_pool"] == ["c"]
    assert [image["mgral_image_id"] for image in coco["images"]] == ["a", "b"]
    assert coco["info"]["returned_to_pool"] == ["c"]


def test_no_labels_yet_says_where_the_package_is(batch):
    params = ALParams(annotator="files")
    with pytest.raises(AwaitingLabels, match=r"0 of 3 images done \(the annotation package /p/cycle_3"):
        receive(_awaiting_state(batch), _index(batch), params, LabelStudioServer(None, None), {},
                "/p/cycle_3")
    with pytest.raises(ValueError, match="was sent to people"):
        receive(_awaiting_state(batch), _index(batch), ALParams(annotator="oracle"),
                LabelStudioServer(None, None), {}, None)
