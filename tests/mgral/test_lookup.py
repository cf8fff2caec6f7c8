import json

import numpy as np
import ot
import pytest

from mgral_pipelines.mgral.lookup import (
    LookupConfig,
    LookupTable,
    estimate_delta_map,
    wasserstein_distances,
)


@pytest.fixture
def lut() -> LookupTable:
    rng = np.random.default_rng(0)
    # Entries of different sizes, far apart from each other.
    entries = [rng.normal(loc=10.0 * k, size=(6 + k, 5)) for k in range(4)]
    return LookupTable(entries, np.array([0.01, 0.03, -0.02, 0.05]))


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean"])
def test_wasserstein_distances_match_pot(lut, metric):
    batch = np.random.default_rng(1).normal(loc=12.0, size=(8, 5))
    expected = [
        ot.emd2(ot.unif(len(batch)), ot.unif(len(entry)), ot.dist(batch, entry, metric=metric))
        for entry in lut.entry_embeddings
    ]
    np.testing.assert_allclose(wasserstein_distances(batch, lut, metric), expected)


def test_nearest_entry_gives_its_delta_map(lut):
    for k, entry in enumerate(lut.entry_embeddings):
        batch = entry[:5] + 0.01
        assert estimate_delta_map(batch, lut, LookupConfig()) == lut.delta_map[k]


@pytest.mark.parametrize("k_nearest", [2, 3, 10])
def test_k_nearest_is_inverse_distance_weighted(lut, k_nearest):
    batch = np.random.default_rng(2).normal(loc=15.0, size=(8, 5))
    distances = wasserstein_distances(batch, lut)
    nearest = np.argsort(distances)[:k_nearest]  # k above the LUT size uses every entry
    weights = 1.0 / distances[nearest]
    expected = np.sum(weights * lut.delta_map[nearest]) / weights.sum()
    got = estimate_delta_map(batch, lut, LookupConfig(k_nearest=k_nearest))
    assert got == pytest.approx(expected)
    assert lut.delta_map.min() <= got <= lut.delta_map.max()


def test_exact_match_returns_that_entry(lut):
    batch = lut.entry_embeddings[1][::-1]  # same empirical distribution, another order
    assert estimate_delta_map(batch, lut, LookupConfig(k_nearest=3)) == pytest.approx(0.03)


def test_empty_lut_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        estimate_delta_map(np.zeros((8, 5)), LookupTable([], np.array([])), LookupConfig())


def test_dimension_mismatch_names_both_dims(lut):
    with pytest.raises(ValueError, match=r"dimension 7 .*dimension 5"):
        estimate_delta_map(np.zeros((8, 7)), lut, LookupConfig())


def test_invalid_tables_and_configs():
    with pytest.raises(ValueError, match="2 entries but 1"):
        LookupTable([np.zeros((2, 3)), np.zeros((2, 3))], np.array([0.1]))
    with pytest.raises(ValueError, match="one d"):
        LookupTable([np.zeros((2, 3)), np.zeros((2, 4))], np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="k_nearest"):
        LookupConfig(k_nearest=0)


def test_dict_round_trip_is_json(lut):
    restored = LookupTable.from_dict(json.loads(json.dumps(lut.to_dict())))
    assert len(restored) == len(lut)
    np.testing.assert_array_equal(restored.delta_map, lut.delta_map)
    for a, b in zip(restored.entry_embeddings, lut.entry_embeddings, strict=True):
        np.testing.assert_array_equal(a, b)
