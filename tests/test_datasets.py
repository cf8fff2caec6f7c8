import json

import fsspec
import numpy as np
import pytest
from kedro.io import DatasetError

from mgral_pipelines.datasets import (
    ALStateDataset,
    ArchivingJSONDataset,
    BinaryFileDataset,
    CyclePartitionsDataset,
    EmbeddingsDataset,
    LabelFilesDataset,
    write_atomically,
)


def _state(cycle, labelled):
    return {"cycle": cycle, "labelled_ids": labelled, "pool_ids": [], "labels": {}, "history": []}


@pytest.fixture
def memory_root():
    """A fresh folder on fsspec's in-memory filesystem (a stand-in for s3:// and friends)."""
    fs = fsspec.filesystem("memory")
    root = "/mgral-test"
    if fs.exists(root):
        fs.rm(root, recursive=True)
    yield f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_binary_round_trip_local_and_fsspec(tmp_path, memory_root):
    for location in (str(tmp_path / "a" / "w.pt"), f"file://{tmp_path}/b/w.pt",
                     f"{memory_root}/models/w.pt"):
        binary = BinaryFileDataset(location)
        assert not binary.exists()
        binary.save(b"\x00\x01weights")
        assert binary.exists() and binary.load() == b"\x00\x01weights"
    assert (tmp_path / "b" / "w.pt").read_bytes() == b"\x00\x01weights"
    assert fsspec.filesystem("memory").cat_file("/mgral-test/models/w.pt") == b"\x00\x01weights"


def test_embeddings_round_trip_on_fsspec_and_mismatch_is_refused(memory_root):
    dataset = EmbeddingsDataset(f"{memory_root}/emb/cycle_0.npz")
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    dataset.save({"image_ids": ["a", "b", "c"], "vectors": vectors})
    loaded = dataset.load()
    assert loaded["image_ids"] == ["a", "b", "c"]
    np.testing.assert_array_equal(loaded["vectors"], vectors)
    with pytest.raises(DatasetError, match=r"cycle_0.npz: 2 ids for 3 vectors"):
        dataset.save({"image_ids": ["a", "b"], "vectors": vectors})


def test_missing_file_error_names_the_file(tmp_path, memory_root):
    with pytest.raises(DatasetError, match="nope.pt: file does not exist"):
        BinaryFileDataset(str(tmp_path / "nope.pt")).load()
    with pytest.raises(DatasetError, match="memory://.*/nope.pt: file does not exist"):
        BinaryFileDataset(f"{memory_root}/nope.pt").load()


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomically(target, 12345)  # not bytes: fails mid-write
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_al_state_store_loads_all_cycles(tmp_path, memory_root, where):
    path = str(tmp_path / "al_state") if where == "local" else f"{memory_root}/al_state"
    store = ALStateDataset(path)
    assert store.load() == {} and not store.exists()
    store.save(_state(0, ["a"]))
    store.save(_state(1, ["a", "b"]))
    assert sorted(store.load()) == [0, 1]
    assert store.load()[1]["labelled_ids"] == ["a", "b"]
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    assert json.loads(fs.cat_file(f"{root}/cycle_1.json"))["cycle"] == 1


@pytest.mark.parametrize("where", ["local", "memory"])
def test_resaving_an_earlier_cycle_archives_later_ones_instead_of_deleting(
        tmp_path, memory_root, where):
    path = str(tmp_path) if where == "local" else f"{memory_root}/al_state"
    store = ALStateDataset(path)
    store.save(_state(0, ["a"]))
    store.save(_state(1, ["a", "b"]))
    store.save(_state(2, ["a", "b", "c"]))
    store.save(_state(0, ["z"]))  # a new `prepare`
    assert sorted(store.load()) == [0]
    assert store.load()[0]["labelled_ids"] == ["z"]
    fs, _, (root,) = fsspec.get_fs_token_paths(path)
    archived = sorted(p.rsplit("/", 1)[1] for p in fs.glob(f"{root}/archive/*/cycle_*.json"))
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


@pytest.mark.parametrize("where", ["local", "memory"])
def test_cycle_partitions_load_empty_then_saved_cycles(tmp_path, memory_root, where):
    path = str(tmp_path / "lut") if where == "local" else f"{memory_root}/lut"
    partitions = CyclePartitionsDataset(path=path, dataset="json.JSONDataset",
                                        filename_suffix=".json")
    assert partitions.load() == {}
    partitions.save({})  # a skipped step: the folder exists, still no cycle
    assert partitions.load() == {}
    partitions.save({"cycle_0": {"entries": [1]}, "cycle_1": {"entries": []}})
    loaded = partitions.load()
    assert sorted(loaded) == ["cycle_0", "cycle_1"]
    assert loaded["cycle_0"]() == {"entries": [1]}


def test_a_labels_file_saved_again_moves_the_old_one_to_the_archive(tmp_path):
    store = LabelFilesDataset(path=str(tmp_path), filename_suffix=".json",
                              dataset="json.JSONDataset")
    store.save({"cycle_0": {"images": ["a"]}})
    store.save({"cycle_1": {"images": ["b"]}})
    assert not (tmp_path / "archive").exists()  # a new cycle replaces nothing
    store.save({"cycle_0": {"images": ["a", "c"]}})
    assert json.loads((tmp_path / "cycle_0.json").read_text()) == {"images": ["a", "c"]}
    [old] = (tmp_path / "archive").rglob("cycle_0.json")
    assert json.loads(old.read_text()) == {"images": ["a"]}
    assert json.loads((tmp_path / "cycle_1.json").read_text()) == {"images": ["b"]}


def test_partitions_are_written_whole_and_a_crash_leftover_is_no_partition(tmp_path):
    partitions = CyclePartitionsDataset(path=str(tmp_path), dataset="json.JSONDataset",
                                        filename_suffix=".json")
    partitions.save({"cycle_0": {"a": 1}})
    assert [p.name for p in tmp_path.iterdir()] == ["cycle_0.json"]  # no temporary left
    # What a process killed mid-save leaves: a half-written hidden sibling.
    (tmp_path / ".cycle_1.0a1b2c3d.partial.json").write_text('{"a": ')
    assert list(partitions.load()) == ["cycle_0"]
    with pytest.raises(DatasetError, match="not JSON serializable"):
        partitions.save({"cycle_0": {"a": object()}})  # fails while writing
    assert json.loads((tmp_path / "cycle_0.json").read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cycle_1.0a1b2c3d.partial.json",
                                                          "cycle_0.json"]


def test_a_labels_save_removes_temporaries_of_an_interrupted_one(tmp_path):
    (tmp_path / ".cycle_0.json.k2j4h5g6.tmp").write_text("{")
    (tmp_path / ".cycle_0.0a1b2c3d.partial.json").write_text("{")
    store = LabelFilesDataset(path=str(tmp_path), filename_suffix=".json",
                              dataset="json.JSONDataset")
    store.save({"cycle_0": {"images": ["a"]}})
    assert [p.name for p in tmp_path.iterdir()] == ["cycle_0.json"]


def test_partitions_whose_suffix_is_a_file_in_a_folder_are_written_whole(tmp_path):
    """The MGRAL models' layout: `<path>/cycle_<t>/lut.json` (suffix `/lut.json`)."""
    partitions = CyclePartitionsDataset(path=str(tmp_path), dataset="json.JSONDataset",
                                        filename_suffix="/lut.json")
    partitions.save({"cycle_0": {"entries": [1]}})
    assert [p.name for p in (tmp_path / "cycle_0").iterdir()] == ["lut.json"]
    (tmp_path / "cycle_1").mkdir()
    (tmp_path / "cycle_1" / ".lut.0a1b2c3d.partial.json").write_text("{")  # a killed save
    assert list(partitions.load()) == ["cycle_0"]
    partitions.save({"cycle_1": {"entries": []}})  # and the next save of that cycle removes it
    assert [p.name for p in (tmp_path / "cycle_1").iterdir()] == ["lut.json"]


def _archive(fs, folder: str, name: str) -> list[bytes]:
    return [fs.cat_file(path) for path in sorted(fs.glob(f"{folder}/archive/*/{name}"))]


@pytest.mark.parametrize("where", ["local", "memory"])
def test_prepared_json_is_the_same_bytes_for_the_same_data_and_archives_what_it_replaces(
        tmp_path, memory_root, where):
    folder = str(tmp_path / "primary") if where == "local" else f"{memory_root}/primary"
    fs = fsspec.filesystem("file" if where == "local" else "memory")
    dataset = ArchivingJSONDataset(f"{folder}/oracle.json")
    labels = {"b": [{"class_id": 1}], "a": [{"class_id": 0, "bbox": [1, 2, 3, 4]}]}
    dataset.save(labels)
    written = fs.cat_file(f"{folder}/oracle.json")
    # Sorted keys, one fixed layout: the same data in any order gives the same bytes.
    assert written == (json.dumps(labels, indent=1, sort_keys=True) + "\n").encode()
    dataset.save(dict(reversed(labels.items())))
    assert fs.cat_file(f"{folder}/oracle.json") == written and not fs.exists(f"{folder}/archive")
    assert dataset.load() == labels

    fs.pipe_file(f"{folder}/oracle.json", json.dumps(labels).encode())  # another layout
    dataset.save(labels)
    assert fs.cat_file(f"{folder}/oracle.json") == written and not fs.exists(f"{folder}/archive")

    corrected = {**labels, "b": [{"class_id": 0}]}
    dataset.save(corrected)
    dataset.save(labels)
    assert dataset.load() == labels
    assert [json.loads(raw) for raw in _archive(fs, folder, "oracle.json")] == [labels, corrected]


def test_prepared_json_that_is_not_json_names_the_file(tmp_path):
    (tmp_path / "splits.json").write_text('{"val": [')
    with pytest.raises(DatasetError, match=r"splits.json: not valid JSON"):
        ArchivingJSONDataset(str(tmp_path / "splits.json")).load()


def test_a_folder_of_kedro_versions_becomes_its_latest_version_and_moves_to_the_archive(tmp_path):
    path = tmp_path / "image_index.json"
    for stamp, data in [("2026-03-01T10.00.00.000Z", b'{"v": 2}'),
                        ("2026-01-01T10.00.00.000Z", b'{"v": 1}')]:
        (path / stamp).mkdir(parents=True)
        (path / stamp / "image_index.json").write_bytes(data)
    dataset = ArchivingJSONDataset(str(path))
    with pytest.raises(DatasetError, match=r"image_index.json: a folder of Kedro versions .* Any "
                       r"`kedro run` of a pipeline that reads it moves"):
        dataset.load()

    message = dataset.migrate_kedro_versions()
    assert "moved its Kedro versions to" in message and message.endswith(
        "the latest, 2026-03-01T10.00.00.000Z, is now the file")
    assert path.read_bytes() == b'{"v": 2}' and dataset.load() == {"v": 2}
    (moved,) = (tmp_path / "archive").glob("*/image_index.json")
    assert sorted(p.read_bytes() for p in moved.glob("*/image_index.json")) == [
        b'{"v": 1}', b'{"v": 2}']
    assert dataset.migrate_kedro_versions() is None  # a file: nothing left to move


def test_a_folder_without_kedro_versions_is_refused_and_left_alone(tmp_path):
    (tmp_path / "splits.json").mkdir()
    (tmp_path / "splits.json" / "notes.txt").write_text("mine")
    dataset = ArchivingJSONDataset(str(tmp_path / "splits.json"))
    with pytest.raises(DatasetError, match=r"splits.json: a folder where a JSON file is expected, "
                       r"and no Kedro version"):
        dataset.save({"val": []})
    assert (tmp_path / "splits.json" / "notes.txt").read_text() == "mine"
