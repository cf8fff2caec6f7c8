"""The ablations `detections` and `rare_detections`: the heuristic MGRAL's reward reduces to."""

from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.mgral.features import class_rarity_weights
from mgral_pipelines.strategies import PoolView, get_strategy
from tests.strategies import detection

CONFIDENT_A = detection([0.9, 0.05, 0.05])          # class 0, score 0.9
CONFIDENT_C = detection([0.05, 0.05, 0.9])          # class 2, score 0.9
FAINT_A = detection([0.9, 0.05, 0.05], score=0.1)   # below the 0.25 threshold


def _view(counts=(10.0, 4.0, 0.0)) -> PoolView:
    detections = {
        "crowded_common": [CONFIDENT_A, CONFIDENT_A, CONFIDENT_A],
        "one_rare": [CONFIDENT_C],
        "faint": [FAINT_A, FAINT_A, FAINT_A, FAINT_A],
        "empty": [],
    }
    return PoolView(pool_ids=list(detections), labelled_ids=["l0"], num_classes=3,
                    detections=detections, labelled_class_counts=np.array(counts))


def test_detections_ranks_by_confident_count_and_ignores_faint_boxes():
    selection = get_strategy("detections").select(_view(), 2, np.random.default_rng(0))
    assert selection.image_ids == ["crowded_common", "one_rare"]
    assert selection.scores == [3.0, 1.0]


def test_rare_detections_weighs_by_the_labels_rarity_as_mgral_does():
    view = _view()
    selection = get_strategy("rare_detections").select(view, 2, np.random.default_rng(0))
    # Weights (1 + n̄) / (1 + n_c), n̄ = 14/3: class 0 -> (17/3) / 11, class 2 -> 17/3.
    labels = {"l0": [{"class_id": 0}] * 10 + [{"class_id": 1}] * 4}
    weights = class_rarity_weights(labels, 3)  # what MGRAL's LUT computes from L_t's labels
    assert selection.image_ids == ["one_rare", "crowded_common"]
    assert selection.scores == pytest.approx([weights[2], 3 * weights[0]])


def test_ties_are_broken_at_random_not_by_pool_order():
    view = PoolView(pool_ids=[f"e{i}" for i in range(20)], labelled_ids=[], num_classes=3,
                    detections={f"e{i}": [] for i in range(20)},
                    labelled_class_counts=np.zeros(3))
    picks = {tuple(get_strategy("detections").select(view, 3, np.random.default_rng(s)).image_ids)
             for s in range(5)}
    assert len(picks) > 1


def test_rare_detections_needs_the_labelled_class_counts():
    view = PoolView(pool_ids=["a"], labelled_ids=[], num_classes=3, detections={"a": []})
    with pytest.raises(ValueError, match="labelled_class_counts is missing"):
        get_strategy("rare_detections").select(view, 1, np.random.default_rng(0))


def test_the_threshold_is_validated():
    with pytest.raises(ValueError, match="confidence must lie in"):
        get_strategy("detections", confidence=1.5)
