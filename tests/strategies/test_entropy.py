from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.strategies import EntropyConfig, EntropyStrategy, PoolView, check_selection
from mgral_pipelines.strategies.entropy import class_probabilities, detection_entropies
from tests.strategies import detection

RNG = np.random.default_rng(0)


def view_of(detections: dict) -> PoolView:
    return PoolView(
        pool_ids=list(detections), labelled_ids=[], num_classes=2, detections=detections
    )


def ranking(detections: dict, aggregation: str) -> list[str]:
    strategy = EntropyStrategy(EntropyConfig(aggregation=aggregation))
    return strategy.select(view_of(detections), len(detections), RNG).image_ids


def test_near_uniform_images_beat_confident_ones() -> None:
    detections = {
        "confident_a": [detection([0.97, 0.02])],
        "torn_a": [detection([0.51, 0.49])],
        "confident_b": [detection([0.01, 0.9])],
        "torn_b": [detection([0.4, 0.45])],
    }
    selection = EntropyStrategy().select(view_of(detections), 2, RNG)
    check_selection(selection, view_of(detections), 2)
    assert set(selection.image_ids) == {"torn_a", "torn_b"}


def test_class_scores_are_normalised_before_the_entropy() -> None:
    # Independent sigmoids: [0.35, 0.15] is the distribution [0.7, 0.3].
    probabilities = class_probabilities([detection([0.35, 0.15])], 2, "x")
    np.testing.assert_allclose(probabilities, [[0.7, 0.3]])
    expected = -(0.7 * np.log(0.7) + 0.3 * np.log(0.3))
    np.testing.assert_allclose(detection_entropies(probabilities), [expected])
    # All-zero scores carry no class preference: uniform, the maximal entropy.
    all_zero = class_probabilities([detection([0.0, 0.0])], 2, "x")
    assert detection_entropies(all_zero)[0] == pytest.approx(np.log(2))


# Entropies (nats): p=0.5 -> 0.693, p=0.7 -> 0.611, p=0.8 -> 0.500, p=0.99 -> 0.056.
#   one:   0.611                    max .611  mean .611  sum .611
#   three: 0.500 x 3                max .500  mean .500  sum 1.500
#   mixed: 0.693 + 0.056            max .693  mean .375  sum .749
#   empty: nothing detected         0 for all
AGGREGATION_CASE = {
    "one": [detection([0.7, 0.3])],
    "three": [detection([0.8, 0.2]), detection([0.2, 0.8]), detection([0.8, 0.2])],
    "mixed": [detection([0.5, 0.5]), detection([0.99, 0.01])],
    "empty": [],
}


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        ("max", ["mixed", "one", "three", "empty"]),
        ("mean", ["one", "three", "mixed", "empty"]),
        ("sum", ["three", "mixed", "one", "empty"]),
    ],
)
def test_aggregations_give_their_constructed_orders(aggregation: str, expected: list[str]) -> None:
    assert ranking(AGGREGATION_CASE, aggregation) == expected


def test_scores_are_best_first_and_empty_image_scores_zero() -> None:
    selection = EntropyStrategy().select(view_of(AGGREGATION_CASE), 4, RNG)
    assert selection.scores == sorted(selection.scores, reverse=True)
    assert selection.scores[-1] == 0.0


def test_unknown_aggregation_is_rejected() -> None:
    with pytest.raises(ValueError, match="aggregation must be one of"):
        EntropyConfig(aggregation="median")


def test_wrong_number_of_class_scores_names_the_image() -> None:
    view = PoolView(pool_ids=["bad"], labelled_ids=[], num_classes=3,
                    detections={"bad": [detection([0.5, 0.5])]})
    with pytest.raises(ValueError, match="'bad'.*3 entries"):
        EntropyStrategy().select(view, 1, RNG)
