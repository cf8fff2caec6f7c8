"""The checks `current_state` makes before any detector trains, one failure each."""

from __future__ import annotations

import socket

import pytest

from mgral_pipelines.annotation.server import LabelStudioError, LabelStudioServer
from mgral_pipelines.pipelines.al_cycle.nodes import current_state

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
