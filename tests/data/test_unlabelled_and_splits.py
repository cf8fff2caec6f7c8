"""A folder of unlabelled images joins the labelled data as the pool; V, T and L_0 come from the
labelled images only, drawn by seed or named by files, folders or lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from mgral_pipelines.config import DatasetParams
from mgral_pipelines.data.importers import load_yolo_dataset
from mgral_pipelines.data.manifest import InvalidDatasetError, select_annotations
from mgral_pipelines.data.splits import assign_splits
from mgral_pipelines.data.unlabelled import add_unlabelled_folder


def _image(path: Path, shade: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (shade, 20, 20)).save(path)
    return path


@pytest.fixture
def labelled(tmp_path) -> dict:
    """12 labelled YOLO images: l00..l05 under images/train, l06..l11 under images/val."""
    for index in range(12):
        split = "train" if index < 6 else "val"
        _image(tmp_path / "data" / "images" / split / f"l{index:02d}.png", shade=index)
        label = tmp_path / "data" / "labels" / split / f"l{index:02d}.txt"
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text("0 0.5 0.5 0.5 0.5\n" if index % 3 else "")
    (tmp_path / "data" / "data.yaml").write_text(
        "path: .\ntrain: images/train\nval: images/val\nnames: [cat]\n")
    return load_yolo_dataset(tmp_path / "data" / "data.yaml")


def _pool(tmp_path: Path, count: int = 8) -> Path:
    for index in range(count):
        _image(tmp_path / "raw" / ("a" if index % 2 else "b") / f"u{index}.jpg", shade=100 + index)
    return tmp_path / "raw"


def test_unlabelled_folder_is_searched_recursively_and_has_no_labels(tmp_path, labelled):
    # The user's folder of everything also holds copies of labelled images, under their own name
    # or another one: they are no new images.
    raw = _pool(tmp_path)
    shutil.copy(labelled["images"][0]["file"], raw / "l00.png")
    shutil.copy(labelled["images"][7]["file"], raw / "a" / "IMG_0007.png")
    manifest = add_unlabelled_folder(labelled, raw)
    assert manifest["unlabelled_ids"] == ["a__u1", "a__u3", "a__u5", "a__u7",
                                          "b__u0", "b__u2", "b__u4", "b__u6"]
    assert len(manifest["images"]) == 12 + 8
    assert all(i not in manifest["annotations"] for i in manifest["unlabelled_ids"])
    with pytest.raises(InvalidDatasetError, match=r"2 image\(s\) have no labels .* only people"):
        select_annotations(manifest["annotations"], ["a__u1", "b__u0"])


def test_unlabelled_folder_problems_name_the_file(tmp_path, labelled):
    raw = _pool(tmp_path, 2)
    (raw / "b" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(InvalidDatasetError, match=r"broken.png: image file is corrupt"):
        add_unlabelled_folder(labelled, raw)
    (raw / "b" / "broken.png").unlink()
    _image(tmp_path / "clash" / "l03.png", shade=250)  # same id as a labelled image, other pixels
    with pytest.raises(InvalidDatasetError, match=r"l03.png: its image id 'l03' is also the id"):
        add_unlabelled_folder(labelled, tmp_path / "clash")
    with pytest.raises(InvalidDatasetError, match=r"nowhere: dataset.unlabelled is not a folder"):
        add_unlabelled_folder(labelled, tmp_path / "nowhere")


def _params(tmp_path, **changes) -> DatasetParams:
    base = {"source": "yolo", "path": str(tmp_path / "data" / "data.yaml"),
            "unlabelled": str(tmp_path / "raw"), "splits": {"val": 3, "test": 3, "initial": None}}
    return DatasetParams(**{**base, **changes})


def test_splits_come_from_labelled_images_and_the_pool_from_the_rest(tmp_path, labelled):
    manifest = add_unlabelled_folder(labelled, _pool(tmp_path))
    splits = assign_splits(manifest, _params(tmp_path))
    labelled_ids = {r["image_id"] for r in labelled["images"]}
    assert [len(splits[name]) for name in ("val", "test", "initial")] == [3, 3, 6]
    assert set(splits["val"] + splits["test"] + splits["initial"]) == labelled_ids
    assert splits["pool"] == manifest["unlabelled_ids"]
    assert splits == assign_splits(manifest, _params(tmp_path))  # fixed by seed
    # Sizes that leave labelled images over put them in the pool (they have oracle labels).
    splits = assign_splits(manifest, _params(tmp_path, splits={"val": 3, "test": 3, "initial": 2}))
    assert len(splits["pool"]) == 8 + 4
    with pytest.raises(InvalidDatasetError, match=r"split 'initial' needs 7 labelled images but only 6"):
        assign_splits(manifest, _params(tmp_path, splits={"val": 3, "test": 3, "initial": 7}))


def test_splits_named_by_folder_file_and_list(tmp_path, labelled):
    manifest = add_unlabelled_folder(labelled, _pool(tmp_path))
    listing = tmp_path / "test.txt"
    listing.write_text("data/images/train/l00.png\n\ndata/images/train/l01.png\n")
    params = _params(tmp_path, assign={
        "val": str(tmp_path / "data" / "images" / "val"), "test": str(listing),
        "initial": f"{tmp_path}/data/images/train/l02.png|{tmp_path}/data/images/train/l03.png"})
    splits = assign_splits(manifest, params)
    assert splits["val"] == [f"l{i:02d}" for i in range(6, 12)]
    assert splits["test"] == ["l00", "l01"] and splits["initial"] == ["l02", "l03"]
    assert splits["pool"] == sorted(["l04", "l05"] + manifest["unlabelled_ids"])


@pytest.mark.parametrize(
    ("assign", "message"),
    [({"val": "raw/a"}, r"dataset.assign.val: .*raw/a holds 4 unlabelled image\(s\)"),
     ({"val": "data/images/train", "test": "data/images/train/l00.png"},
      r"1 image\(s\) are named for both val and test"),
     ({"test": "data/nothing"}, r"dataset.assign.test: .*data/nothing does not exist"),
     ({"initial": "bad.txt"}, r"bad.txt:1: data/images/zz.png is not an image of the dataset")],
)
def test_bad_split_names_are_refused(tmp_path, labelled, assign, message):
    manifest = add_unlabelled_folder(labelled, _pool(tmp_path))
    (tmp_path / "bad.txt").write_text("data/images/zz.png\n")
    assign = {name: str(tmp_path / value) for name, value in assign.items()}
    with pytest.raises(InvalidDatasetError, match=message):
        assign_splits(manifest, _params(tmp_path, assign=assign))


def test_class_lists_pass_through_params_and_files(tmp_path):
    assert DatasetParams(source="voc", path="x", classes="cat|dog | bird").class_names() == [
        "cat", "dog", "bird"]
    names = tmp_path / "classes.txt"
    names.write_text("cat\n\ndog\n")
    assert DatasetParams(source="voc", path="x", classes_file=str(names)).class_names() == ["cat", "dog"]
    with pytest.raises(ValueError, match="not both"):
        DatasetParams(source="voc", path="x", classes="a", classes_file=str(names))
    with pytest.raises(ValueError, match="needs an unlabelled pool"):
        DatasetParams(splits={"initial": None})
