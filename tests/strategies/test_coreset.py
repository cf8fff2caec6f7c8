from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.strategies import CoresetConfig, CoresetStrategy, PoolView, check_selection
from mgral_pipelines.strategies.coreset import k_center_greedy


def brute_force_k_center(
    points: np.ndarray, centres: list[np.ndarray], budget: int, first: int | None = None
) -> list[int]:
    """Textbook k-centre greedy: recompute every distance to every centre at every step."""
    chosen: list[int] = [] if first is None else [first]
    while len(chosen) < budget:
        references = list(centres) + [points[j] for j in chosen]
        distances = {
            i: min(np.linalg.norm(points[i] - reference) for reference in references)
            for i in range(len(points)) if i not in chosen
        }
        chosen.append(max(distances, key=distances.__getitem__))
    return chosen


def clustered_view() -> tuple[PoolView, dict[str, str]]:
    """Labelled images around the origin; pool images near it and in three far clusters."""
    rng = np.random.default_rng(0)
    centres = {
        "origin": (0.0, 0.0), "east": (10.0, 0.0), "north": (0.0, 10.0), "south": (-8.0, -8.0)
    }
    embeddings, cluster_of = {}, {}
    for cluster, centre in centres.items():
        for k in range(4):
            image_id = f"{cluster}{k}"
            embeddings[image_id] = np.asarray(centre) + rng.normal(scale=0.3, size=2)
            cluster_of[image_id] = cluster
    labelled = [f"lab{k}" for k in range(5)]
    for image_id in labelled:
        embeddings[image_id] = rng.normal(scale=0.3, size=2)
    view = PoolView(pool_ids=list(cluster_of), labelled_ids=labelled, num_classes=1,
                    embeddings=embeddings)
    return view, cluster_of


def test_picks_one_image_from_each_far_cluster_first() -> None:
    view, cluster_of = clustered_view()
    selection = CoresetStrategy().select(view, 3, np.random.default_rng(0))
    check_selection(selection, view, 3)
    assert {cluster_of[image_id] for image_id in selection.image_ids} == {"east", "north", "south"}
    assert cluster_of[selection.image_ids[0]] == "south"  # the farthest cluster goes first
    assert selection.scores == sorted(selection.scores, reverse=True)


@pytest.mark.parametrize("num_centres", [0, 3])
def test_matches_brute_force_k_center_greedy(num_centres: int) -> None:
    rng = np.random.default_rng(num_centres)
    points = rng.normal(size=(25, 4))
    centres = rng.normal(size=(num_centres, 4))
    first = None if num_centres else 7
    picked, distances = k_center_greedy(points, 8, centres=centres, first=first)
    assert picked.tolist() == brute_force_k_center(points, list(centres), 8, first)
    # Each distance is the pick's distance to the nearest earlier centre (skip an unseeded first).
    for step in range(0 if num_centres else 1, 8):
        references = np.vstack([centres, points[picked[:step]]])
        expected = np.linalg.norm(references - points[picked[step]], axis=1).min()
        assert distances[step] == pytest.approx(expected)
    if not num_centres:
        assert distances[0] == pytest.approx(np.linalg.norm(points - points[7], axis=1).max())


def test_without_labelled_images_the_first_pick_comes_from_rng() -> None:
    view, _ = clustered_view()
    unlabelled = PoolView(pool_ids=view.pool_ids, labelled_ids=[], num_classes=1,
                          embeddings=view.embeddings)
    firsts = {
        CoresetStrategy().select(unlabelled, 4, np.random.default_rng(seed)).image_ids[0]
        for seed in range(6)
    }
    assert len(firsts) > 1
    again = CoresetStrategy().select(unlabelled, 4, np.random.default_rng(1))
    assert again == CoresetStrategy().select(unlabelled, 4, np.random.default_rng(1))


def test_duplicate_embeddings_still_give_unique_picks() -> None:
    embeddings = {f"p{i}": np.ones(3) for i in range(5)}
    view = PoolView(
        pool_ids=list(embeddings), labelled_ids=[], num_classes=1, embeddings=embeddings
    )
    selection = CoresetStrategy().select(view, 5, np.random.default_rng(0))
    assert sorted(selection.image_ids) == view.pool_ids


def test_normalised_embeddings_compare_directions() -> None:
    embeddings = {"lab": np.array([1.0, 0.0]), "same_direction": np.array([100.0, 0.0]),
                  "orthogonal": np.array([0.0, 1.0])}
    view = PoolView(pool_ids=["same_direction", "orthogonal"], labelled_ids=["lab"],
                    num_classes=1, embeddings=embeddings)
    rng = np.random.default_rng(0)
    assert CoresetStrategy().select(view, 1, rng).image_ids == ["same_direction"]
    normalised = CoresetStrategy(CoresetConfig(normalise_embeddings=True))
    assert normalised.select(view, 1, rng).image_ids == ["orthogonal"]


def test_missing_labelled_embedding_is_named() -> None:
    view = PoolView(pool_ids=["p0"], labelled_ids=["lab7"], num_classes=1,
                    embeddings={"p0": np.zeros(2)})
    with pytest.raises(ValueError, match="'coreset'.*'lab7'"):
        CoresetStrategy().select(view, 1, np.random.default_rng(0))
