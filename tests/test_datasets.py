import json

import pytest
from kedro.io import DatasetError

from mgral_pipelines.datasets import ALStateDataset, AtomicJSONDataset, BinaryFileDataset, write_atomically


def _state(cycle, labelled):
    return {"cycle": cycle, "labelled_ids": labelled, "pool_ids": [], "labels": {}, "history": []}


def test_binary_and_json_round_trip(tmp_path):
    binary = BinaryFileDataset(str(tmp_path / "a" / "w.pt"))
    assert not binary.exists()
    binary.save(b"\x00\x01weights")
    assert binary.load() == b"\x00\x01weights"
    document = AtomicJSONDataset(str(tmp_path / "doc.json"))
    document.save({"x": [1, 2]})
    assert document.load() == {"x": [1, 2]}


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match="nope.pt: file does not exist"):
        BinaryFileDataset(str(tmp_path / "nope.pt")).load()


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomically(target, 12345)  # not bytes: fails mid-write
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_al_state_store_loads_all_cycles(tmp_path):
    store = ALStateDataset(str(tmp_path / "al_state"))
    assert store.load() == {} and not store.exists()
    store.save(_state(0, ["a"]))
    store.save(_state(1, ["a", "b"]))
    assert sorted(store.load()) == [0, 1]
    assert store.load()[1]["labelled_ids"] == ["a", "b"]
    assert json.loads((tmp_path / "al_state" / "cycle_1.json").read_text())["cycle"] == 1


def test_resaving_an_earlier_cycle_archives_later_ones_instead_of_deleting(tmp_path):
    store = ALStateDataset(str(tmp_path))
    store.save(_state(0, ["a"]))
    store.save(_state(1, ["a", "b"]))
    store.save(_state(2, ["a", "b", "c"]))
    store.save(_state(0, ["z"]))  # a new `prepare`
    assert sorted(store.load()) == [0]
    archived = sorted(p.name for p in (tmp_path / "archive").rglob("cycle_*.json"))
    assert archived == ["cycle_0.json", "cycle_1.json", "cycle_2.json"]


def test_resaving_identical_state_archives_nothing(tmp_path):
    store = ALStateDataset(str(tmp_path))
    store.save(_state(0, ["a"]))
    store.save(_state(0, ["a"]))
    assert not (tmp_path / "archive").exists()


def test_corrupt_state_file_is_reported(tmp_path):
    (tmp_path / "cycle_0.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cycle_0.json: AL state file is not valid JSON"):
        ALStateDataset(str(tmp_path)).load()


def test_resaving_an_identical_earlier_cycle_keeps_the_later_ones(tmp_path):
    store = ALStateDataset(str(tmp_path))
    store.save(_state(0, ["a"]))
    store.save(_state(1, ["a", "b"]))
    store.save(_state(0, ["a"]))  # e.g. a new `prepare` of the same data
    assert sorted(store.load()) == [0, 1]
    assert not (tmp_path / "archive").exists()


def test_recording_an_awaiting_batch_replaces_the_state_in_place(tmp_path):
    store = ALStateDataset(str(tmp_path))
    store.save(_state(0, ["a"]))
    store.save({**_state(0, ["a"]), "awaiting": {"image_ids": ["b"]}})
    assert store.load()[0]["awaiting"] == {"image_ids": ["b"]}
    assert not (tmp_path / "archive").exists()
    store.save(_state(0, ["z"]))  # anything else supersedes it: archived with its batch
    assert json.loads(next((tmp_path / "archive").rglob("cycle_0.json")).read_text())["awaiting"]
