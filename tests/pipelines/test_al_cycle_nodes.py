"""The checks `current_state` makes before any detector trains, one failure each."""

from __future__ import annotations

import json
import socket

import pytest

from mgral_pipelines import al_state
from mgral_pipelines.annotation.server import LabelStudioError, LabelStudioServer
from mgral_pipelines.pipelines.al_cycle.nodes import current_state, receive_labels

INDEX = {"classes": ["cat"], "unlabelled_ids": ["u1", "u2"],
         "images": [{"image_id": i, "file": f"/data/pool/{i}.png", "width": 8, "height": 8}
                    for i in ("l1", "u1", "u2")]}
STATE = {"cycle": 0, "labelled_ids": ["l1"], "pool_ids": ["u1", "u2"], "labels": {}, "history": []}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _check(**al):
    return current_state(STATE, INDEX, LabelStudioServer(f"http://127.0.0.1:{_closed_port()}", "k"),
                         {"budget": 2, **al})


def test_a_cycle_that_could_not_end_is_refused_before_training():
    assert _check(annotator="files") == STATE
    with pytest.raises(ValueError, match="budget 3 exceeds the pool size 2"):
        _check(annotator="files", budget=3)
    with pytest.raises(ValueError, match="2 pool images have no labels"):
        _check(annotator="oracle")
    with pytest.raises(LabelStudioError, match="cannot reach Label Studio"):
        _check(annotator="label_studio")
    with pytest.raises(ValueError, match=r"u1.png: image is outside al.label_studio.image_root"):
        _check(annotator="files", label_studio={"image_url_prefix": "https://x/",
                                                "image_root": "/elsewhere"})


def _ls_box(x, y, w, h):
    return {"type": "rectanglelabels", "original_width": 96, "original_height": 96,
            "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0,
                      "rectanglelabels": ["cat"]}}


def test_rebuilding_a_cycle_from_its_saved_labels_gives_the_same_state_and_keeps_the_file(tmp_path):
    index = {"classes": ["cat"], "images": [{"image_id": i, "file": f"/pool/{i}.png", "width": 96,
                                              "height": 96} for i in ("l1", "u1", "u2")]}
    state = al_state.await_labels({**STATE, "dataset": "fp", "labels": {"l1": []}}, ["u1", "u2"],
                                  "random", "label_studio", "then")
    export = tmp_path / "export.json"  # percent boxes whose pixels carry float noise
    export.write_text(json.dumps([
        {"id": 1, "data": {"mgral_image_id": "u1"}, "annotations": [
            {"id": 1, "result": [_ls_box(10.1, 20, 33.3, 40), _ls_box(0.7, 1.3, 7.7, 9.9)]}]},
        {"id": 2, "data": {"mgral_image_id": "u2"}, "annotations": [{"id": 2, "result": []}]}]))

    def receive(labels, saved):
        al = {"annotator": "files", "files": {"labels": str(labels)}, "accept_partial": True}
        return receive_labels({0: state}, index, LabelStudioServer(None, None), {}, {}, saved, al)

    coco, following, _, _ = receive(export, {})
    assert following["history"][-1]["annotator"] == "files"
    saved = tmp_path / "cycle_0.json"  # what received_annotations wrote
    saved.write_text(json.dumps(coco["cycle_0"]))
    # README, "Versioned labels": the state of cycle 1 made again from the saved file is the same,
    # bit for bit, and the file (which says where the labels first came from) is not rewritten.
    again, rebuilt, _, _ = receive(saved, {"cycle_0": lambda: json.loads(saved.read_text())})
    assert again == {} and rebuilt == following
    # Other labels for the same batch are saved (the dataset archives the old file).
    export.write_text(json.dumps([{"id": 2, "data": {"mgral_image_id": "u2"},
                                   "annotations": [{"id": 2, "result": [_ls_box(1, 1, 5, 5)]}]}]))
    other, _, _, _ = receive(export, {"cycle_0": lambda: json.loads(saved.read_text())})
    assert [image["mgral_image_id"] for image in other["cycle_0"]["images"]] == ["u2"]
