from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.strategies import (
    EntropyConfig,
    EntropyStrategy,
    PoolView,
    PPALConfig,
    PPALStrategy,
    check_selection,
)
from mgral_pipelines.strategies.ppal import class_rarity, difficulty_weights
from tests.strategies import detection

RNG = np.random.default_rng(0)
CONFIDENT = [0.96, 0.02, 0.02]


def view_of(
    detections: dict, embeddings: dict, counts: list[float] | None = None
) -> PoolView:
    return PoolView(
        pool_ids=list(detections), labelled_ids=[], num_classes=3,
        embeddings={key: np.asarray(value, dtype=float) for key, value in embeddings.items()},
        detections=detections,
        labelled_class_counts=None if counts is None else np.asarray(counts, dtype=float),
    )


def test_preselection_keeps_the_uncertain_images() -> None:
    # Confident images sit far apart in feature space, so a diversity-only choice would take them.
    detections = {f"unsure{i}": [detection([0.4, 0.3, 0.3])] for i in range(4)}
    detections |= {f"sure{i}": [detection(CONFIDENT)] for i in range(8)}
    embeddings = {f"unsure{i}": [1.0, 0.1 * i, 0.0] for i in range(4)}
    embeddings |= {f"sure{i}": [np.cos(i), np.sin(i), 5.0 * (-1) ** i] for i in range(8)}
    view = view_of(detections, embeddings)
    selection = PPALStrategy(PPALConfig(preselect_factor=2)).select(view, 2, RNG)
    check_selection(selection, view, 2)
    assert all(image_id.startswith("unsure") for image_id in selection.image_ids)


def test_final_set_covers_distinct_clusters_not_duplicates() -> None:
    # Three near-duplicates are the most uncertain; `other` is a bit less uncertain, elsewhere.
    detections = {
        "dup0": [detection([0.34, 0.33, 0.33])],
        "dup1": [detection([0.36, 0.32, 0.32])],
        "dup2": [detection([0.38, 0.31, 0.31])],
        "other": [detection([0.42, 0.29, 0.29])],
    } | {f"sure{i}": [detection(CONFIDENT)] for i in range(4)}
    embeddings = {"dup0": [1.0, 0.0], "dup1": [1.0, 0.01], "dup2": [1.0, 0.02], "other": [0.0, 1.0]}
    embeddings |= {f"sure{i}": [-1.0, -0.1 * i] for i in range(4)}
    view = view_of(detections, embeddings)
    entropy_choice = EntropyStrategy(EntropyConfig("sum")).select(view, 2, RNG).image_ids
    assert entropy_choice == ["dup0", "dup1"]
    ppal_choice = PPALStrategy(PPALConfig(preselect_factor=2)).select(view, 2, RNG).image_ids
    assert ppal_choice == ["dup0", "other"]


def test_same_looking_images_with_different_categories_stay_apart() -> None:
    # Calibrated uncertainty: each cat0 image 1.89, cat2 1.76, sure ~0.2; the top 4 are candidates.
    detections = {f"cat0_{k}": [detection([0.5, 0.4, 0.1])] for k in "abc"} | {
        "cat2": [detection([0.1, 0.35, 0.55])],
        "sure": [detection([0.02, 0.96, 0.02])],
    }
    embeddings = dict.fromkeys(detections, [1.0, 1.0])  # the embedding alone cannot tell them apart
    view = view_of(detections, embeddings)
    uncertainty_only = PPALStrategy(PPALConfig(preselect_factor=1)).select(view, 2, RNG).image_ids
    aware = PPALStrategy(PPALConfig(preselect_factor=2)).select(view, 2, RNG).image_ids
    blind = PPALStrategy(PPALConfig(preselect_factor=2, category_weight=0.0))
    assert all(image_id.startswith("cat0") for image_id in uncertainty_only)
    assert aware[0].startswith("cat0") and aware[1] == "cat2"
    assert all(image_id.startswith("cat0") for image_id in blind.select(view, 2, RNG).image_ids)


def test_rare_class_difficulty_changes_the_choice() -> None:
    # `frequent` is slightly more uncertain (1.03 vs 0.90 nats) but its class has 100 labelled
    # objects; `rare`'s class has one. Equal detection scores leave rarity as the only difference.
    detections = {
        "rare": [detection([0.6, 0.3, 0.1], score=0.6)],
        "frequent": [detection([0.3, 0.5, 0.2], score=0.6)],
    }
    embeddings = {"rare": [1.0, 0.0], "frequent": [0.0, 1.0]}
    view = view_of(detections, embeddings, counts=[1, 100, 100])
    assert PPALStrategy().select(view, 1, RNG).image_ids == ["rare"]
    uncalibrated = PPALStrategy(PPALConfig(difficulty_strength=0.0))
    assert uncalibrated.select(view, 1, RNG).image_ids == ["frequent"]


def test_class_rarity_uses_log_counts() -> None:
    expected = [1.0, 1 - np.log(2) / np.log(10), 0.0]
    np.testing.assert_allclose(class_rarity(np.array([0, 1, 9]), 3), expected)
    np.testing.assert_allclose(class_rarity(np.zeros(2), 2), [1.0, 1.0])


def test_low_confidence_classes_weigh_more() -> None:
    detections = {
        "a": [detection([0.9, 0.1, 0.0], score=0.9)],
        "b": [detection([0.2, 0.3, 0.0], score=0.3)],
    }
    view = view_of(detections, {"a": [0.0], "b": [1.0]})
    weights = difficulty_weights(view, strength=2.0, rarity_weight=0.5)
    # No labelled counts: difficulty is hardness alone; class 2 is never predicted (hardness 1).
    np.testing.assert_allclose(weights, [1 + 2 * 0.1, 1 + 2 * 0.7, 3.0])


@pytest.mark.parametrize(
    ("field", "value"),
    [("preselect_factor", 0), ("preselect_factor", 1.5), ("difficulty_strength", -1.0),
     ("rarity_weight", 1.5), ("category_weight", -0.1)],
)
def test_invalid_config_is_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PPALConfig(**{field: value})
