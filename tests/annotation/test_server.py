"""The Label Studio dataset and server calls: credentials stay secret, failures say what to fix."""

from __future__ import annotations

import socket

import pytest
from kedro.io import DatasetError

from mgral_pipelines.annotation.server import LabelStudioDataset, LabelStudioError, LabelStudioServer


def test_dataset_takes_credentials_never_shows_the_key_and_connects_only_when_used(monkeypatch):
    dataset = LabelStudioDataset(credentials={"url": "http://127.0.0.1:9", "api_key": "s3cret"})
    assert "s3cret" not in repr(dataset) and "s3cret" not in str(dataset._describe())
    server = dataset.load()  # no request yet: nothing listens on port 9
    assert server.url == "http://127.0.0.1:9"
    with pytest.raises(DatasetError, match="read-only"):
        dataset.save({"tasks": []})
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:8")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "from-env")
    assert LabelStudioDataset(credentials={"url": None, "api_key": None}).load().url == "http://127.0.0.1:8"
    monkeypatch.delenv("LABEL_STUDIO_URL")
    with pytest.raises(LabelStudioError, match="needs a URL and an API key.*credentials.yml"):
        LabelStudioDataset().load().project("p", ["cat"])


def test_unreachable_server_and_refused_key_are_named(label_studio):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(LabelStudioError, match=rf"cannot reach Label Studio at http://127.0.0.1:{closed}"):
        LabelStudioServer(f"http://127.0.0.1:{closed}", "key").project("p", ["cat"])
    with pytest.raises(LabelStudioError, match=r"refused to list projects: HTTP 401.*check the API key"):
        LabelStudioServer(label_studio.url, "wrong-key").project("p", ["cat"])


def test_existing_project_must_have_the_classes(label_studio):
    server = LabelStudioServer(label_studio.url, label_studio.api_key)
    project = server.project("MGRAL classes check", ["cat", "dog"])
    assert server.project("MGRAL classes check", ["cat"]) == project  # found, not created again
    with pytest.raises(LabelStudioError, match=r"has no labels for classes \['bird'\]"):
        server.project("MGRAL classes check", ["cat", "bird"])
