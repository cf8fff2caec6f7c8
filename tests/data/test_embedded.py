"""The embedded default dataset has what makes active learning meaningful, deterministically."""

import json

import numpy as np
import pytest
from PIL import Image

from mgral_pipelines.data.embedded import (
    EmbeddedDatasetConfig,
    _digit_pools,
    dataset_statistics,
    generate_embedded_dataset,
)
from mgral_pipelines.data.importers import load_yolo_dataset

CONFIG = EmbeddedDatasetConfig(num_images=200, image_size=96, seed=3)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("embedded")
    data_yaml = generate_embedded_dataset(folder, CONFIG)
    return folder, load_yolo_dataset(data_yaml), json.loads((folder / "provenance.json").read_text())


def test_long_tail_over_at_least_five_classes(generated):
    _, manifest, _ = generated
    counts = dataset_statistics(manifest)["instances_per_class"]
    assert len(counts) >= 5
    assert min(counts.values()) >= 1
    assert min(counts.values()) <= max(counts.values()) / 10


def test_multi_object_empty_and_clutter_images_and_varied_sizes(generated):
    _, manifest, provenance = generated
    stats = dataset_statistics(manifest)
    assert stats["max_objects_per_image"] >= 3
    assert provenance["num_empty_images"] > 0 and provenance["num_clutter_images"] > 0
    assert stats["images_without_objects"] >= provenance["num_empty_images"] + provenance[
        "num_clutter_images"]
    sizes = stats["object_size_quantiles"]
    assert sizes["q90"] >= 2.5 * sizes["q10"]


def test_near_duplicate_groups_are_near_identical_in_pixels(generated):
    folder, manifest, provenance = generated
    groups = provenance["near_duplicate_groups"]
    assert groups and all(len(group) >= 2 for group in groups)

    def pixels(image_id):
        return np.asarray(Image.open(folder / "images" / f"{image_id}.png"), dtype=float)

    first, second = groups[0][:2]
    near = np.abs(pixels(first) - pixels(second)).mean()
    unrelated = [r["image_id"] for r in manifest["images"] if r["image_id"] not in sum(groups, [])]
    far = np.mean([np.abs(pixels(first) - pixels(other)).mean() for other in unrelated[:10]])
    assert near < far / 2


def test_same_seed_same_bytes_other_seed_other_data(tmp_path, generated):
    folder, manifest, _ = generated
    again = generate_embedded_dataset(tmp_path / "again", CONFIG)
    ids = [r["image_id"] for r in manifest["images"]][:20]
    for image_id in ids:
        assert (folder / "images" / f"{image_id}.png").read_bytes() == (
            again.parent / "images" / f"{image_id}.png").read_bytes()
    assert load_yolo_dataset(again)["annotations"] == manifest["annotations"]
    other = generate_embedded_dataset(tmp_path / "other", EmbeddedDatasetConfig(
        num_images=200, image_size=96, seed=4))
    assert load_yolo_dataset(other)["annotations"] != manifest["annotations"]


def test_regenerating_with_the_same_config_is_cached_and_a_new_config_replaces(tmp_path):
    small = EmbeddedDatasetConfig(num_images=12, image_size=64)
    data_yaml = generate_embedded_dataset(tmp_path / "d", small)
    stamp = (tmp_path / "d" / "provenance.json").stat().st_mtime_ns
    generate_embedded_dataset(tmp_path / "d", small)
    assert (tmp_path / "d" / "provenance.json").stat().st_mtime_ns == stamp
    generate_embedded_dataset(tmp_path / "d", EmbeddedDatasetConfig(num_images=15, image_size=64))
    assert len(load_yolo_dataset(data_yaml)["images"]) == 15
    assert [p.name for p in tmp_path.iterdir()] == ["d"]  # no temporary folder left behind


def test_pretrain_split_draws_from_disjoint_digit_instances():
    """The base detector is pretrained on MNIST samples the AL dataset never uses."""
    al, pretrain = _digit_pools("al"), _digit_pools("pretrain")
    for digit in range(10):
        assert len(al[digit]) > 200 and len(pretrain[digit]) > 200
        assert not set(al[digit]) & set(pretrain[digit])


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="class_weights"):
        EmbeddedDatasetConfig(class_weights=(1.0, 0.5))


def test_bursts_of_near_duplicates_and_chosen_distractors(tmp_path):
    config = EmbeddedDatasetConfig(num_images=120, image_size=64, seed=1, min_object_size=10,
                                   max_object_size=30, near_duplicate_fraction=0.3,
                                   duplicate_group_size=(4, 6), distractor_digits=())
    folder = tmp_path / "bursts"
    generate_embedded_dataset(folder, config)
    groups = json.loads((folder / "provenance.json").read_text())["near_duplicate_groups"]
    assert sum(len(group) - 1 for group in groups) == 36
    # The last group may be cut short by the number of copies left to place.
    assert all(4 <= len(group) <= 6 for group in groups[:-1])


def test_default_groups_keep_the_committed_datasets_bytes():
    """The new fields' defaults reproduce the generator's earlier draws (pairs to quadruples)."""
    assert EmbeddedDatasetConfig().duplicate_group_size == (2, 4)
    assert EmbeddedDatasetConfig().distractor_digits is None


@pytest.mark.parametrize("change, message", [
    ({"distractor_digits": (0,)}, "distractor_digits"),
    ({"duplicate_group_size": (1, 3)}, "duplicate_group_size"),
    ({"duplicate_group_size": (5, 4)}, "duplicate_group_size"),
])
def test_invalid_burst_and_distractor_settings_are_refused(change, message):
    with pytest.raises(ValueError, match=message):
        EmbeddedDatasetConfig(**change)
