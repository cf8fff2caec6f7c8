import json

import numpy as np
import ot
import pytest

from mgral_pipelines.mgral.lookup import (
    Estimator,
    LookupConfig,
    LookupTable,
    choose_bandwidth,
    entry_distances,
    estimate_delta_map,
    kernel_regression,
    leave_one_out,
    table_fidelity,
    wasserstein_distances,
)


@pytest.fixture
def lut() -> LookupTable:
    rng = np.random.default_rng(0)
    # Entries of different sizes, far apart from each other, all holding 2 objects per image.
    entries = [rng.normal(loc=10.0 * k, size=(6 + k, 5)) for k in range(4)]
    return LookupTable(entries, np.array([0.01, 0.03, -0.02, 0.05]),
                       entry_detections=[np.full(len(e), 2.0) for e in entries])


def test_wasserstein_distances_are_pots_w2_squared(lut):
    batch = np.random.default_rng(1).normal(loc=12.0, size=(8, 5))
    expected = [
        ot.emd2(ot.unif(len(batch)), ot.unif(len(entry)), ot.dist(batch, entry, "sqeuclidean"))
        for entry in lut.entry_embeddings
    ]
    np.testing.assert_allclose(wasserstein_distances(batch, lut), expected)


def test_a_narrow_kernel_gives_the_nearest_entrys_delta_map(lut):
    """With objects alike the line is flat, and a bandwidth far below the entries' distances
    leaves only the nearest entry."""
    for k, entry in enumerate(lut.entry_embeddings):
        batch = entry[:5] + 0.01
        estimate = estimate_delta_map(batch, lut, LookupConfig(bandwidth=1e-3), np.full(5, 2.0))
        assert estimate == pytest.approx(lut.delta_map[k])


def test_empty_lut_is_a_clear_error():
    empty = LookupTable([], np.array([]), entry_detections=[])
    with pytest.raises(ValueError, match="empty"):
        Estimator(empty, LookupConfig())


def test_dimension_mismatch_names_both_dims(lut):
    with pytest.raises(ValueError, match=r"dimension 7 .*dimension 5"):
        estimate_delta_map(np.zeros((8, 7)), lut, LookupConfig(), np.zeros(8))


def test_invalid_tables():
    with pytest.raises(ValueError, match="2 entries but 1"):
        LookupTable([np.zeros((2, 3)), np.zeros((2, 3))], np.array([0.1]))
    with pytest.raises(ValueError, match="one d"):
        LookupTable([np.zeros((2, 3)), np.zeros((2, 4))], np.array([0.1, 0.2]))


def test_dict_round_trip_is_json(lut):
    restored = LookupTable.from_dict(json.loads(json.dumps(lut.to_dict())))
    assert len(restored) == len(lut)
    np.testing.assert_array_equal(restored.delta_map, lut.delta_map)
    for a, b in zip(restored.entry_embeddings, lut.entry_embeddings, strict=True):
        np.testing.assert_array_equal(a, b)


# --- kernel regression and the table's own fidelity -----------------------------------------------


def _smooth_table(noise: float, seed: int = 0) -> LookupTable:
    """12 entries along a line, each image holding 2 detected objects (so the trend is flat and
    the kernel does the work); ΔmAP grows with the entry's position (plus noise)."""
    rng = np.random.default_rng(seed)
    positions = np.linspace(0, 11, 12)
    entries = [rng.normal(loc=p, scale=0.3, size=(10, 3)) for p in positions]
    return LookupTable(entries, 0.01 * positions + rng.normal(0, noise, len(positions)),
                       entry_detections=[np.full(10, 2.0) for _ in positions])


def test_kernel_regression_limits_are_nearest_and_mean():
    distances = np.array([1.0, 2.0, 4.0])
    delta = np.array([0.1, 0.2, 0.4])
    assert kernel_regression(distances, delta, 1e-6) == pytest.approx(0.1)
    assert kernel_regression(distances, delta, 1e6) == pytest.approx(delta.mean())
    weights = np.exp(-np.array([0.0, 1.0, 3.0]) / 2.0)
    assert kernel_regression(distances, delta, 2.0) == pytest.approx(
        np.sum(weights * delta) / weights.sum())


def test_entry_distances_are_symmetric_pot_distances(lut):
    matrix = entry_distances(lut)
    np.testing.assert_allclose(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 0)
    a, b = lut.entry_embeddings[0], lut.entry_embeddings[2]
    assert matrix[0, 2] == pytest.approx(ot.emd2(ot.unif(len(a)), ot.unif(len(b)), ot.dist(a, b)))


def test_bandwidth_follows_the_data():
    """A smooth table wants a local kernel; a table of pure noise is best predicted by its mean,
    the largest bandwidth (chance structure in 12 noisy entries can fool CV now and then, so the
    noise side is checked over several draws)."""
    smooth = _smooth_table(0.0)
    distances = entry_distances(smooth)
    h_smooth = choose_bandwidth(distances, smooth.delta_map)
    assert h_smooth < distances.max()
    loo = leave_one_out(distances, smooth.delta_map, h_smooth)
    assert np.corrcoef(loo, smooth.delta_map)[0, 1] > 0.9
    widest = [choose_bandwidth(distances, np.random.default_rng(seed).normal(0, 0.05, 12))
              >= 10 * distances.max() * 0.999 for seed in range(6)]
    assert sum(widest) >= 4


def test_table_fidelity_tells_signal_from_noise():
    assert table_fidelity(_smooth_table(0.002), LookupConfig())["loo_spearman"] > 0.8
    noise = _smooth_table(0.0)
    noise.delta_map = np.random.default_rng(3).normal(0, 0.05, len(noise))
    assert table_fidelity(noise, LookupConfig())["loo_spearman"] < 0.5
    assert table_fidelity(_smooth_table(0.002), LookupConfig())["loo_skill"] > 0.5
    # Predicting by the others' mean anti-correlates perfectly and has no skill.
    flat = table_fidelity(noise, LookupConfig(bandwidth=1e9))
    assert flat["loo_spearman"] == pytest.approx(-1.0)
    assert flat["loo_skill"] == pytest.approx(0.0, abs=1e-6)
    tiny = LookupTable(noise.entry_embeddings[:2], noise.delta_map[:2],
                       entry_detections=noise.entry_detections[:2])
    assert np.isnan(table_fidelity(tiny, LookupConfig())["loo_spearman"])
    assert set(table_fidelity(noise, LookupConfig())) == {
        "loo_spearman", "bandwidth", "trend_slope", "loo_rmse", "loo_skill"}


def test_the_kernel_interpolates_between_entries():
    table = _smooth_table(0.0)
    estimate = Estimator(table, LookupConfig())
    between = np.random.default_rng(9).normal(loc=5.5, scale=0.3, size=(10, 3))
    objects = np.full(10, 2.0)
    assert 0.045 <= estimate(between, objects) <= 0.065
    assert estimate(between, objects) == pytest.approx(
        estimate_delta_map(between, table, LookupConfig(), objects))
    fixed = Estimator(table, LookupConfig(bandwidth=0.5))
    assert fixed.bandwidth == 0.5


def test_invalid_bandwidth():
    with pytest.raises(ValueError, match="bandwidth"):
        LookupConfig(bandwidth=0.0)


# --- the trend on detected objects ---------------------------------------------------------------


def _counting_table(seed: int = 0) -> LookupTable:
    """16 entries whose embeddings are all alike and whose ΔmAP grows with the number of objects
    their images hold: only the detection counts can tell them apart."""
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, 6, size=(16, 10))
    entries = [rng.normal(size=(10, 3)) for _ in range(16)]
    return LookupTable(entries, 0.004 * objects.mean(axis=1), entry_detections=list(objects))


def test_the_trend_carries_the_tables_slope_beyond_its_entries():
    """A kernel can only average entries; the line extrapolates to a batch with more objects than
    any entry, and its leave-one-out refits the line without each entry."""
    table = _counting_table()
    trend = Estimator(table, LookupConfig())
    assert trend.trend[1] == pytest.approx(0.004, rel=0.05)  # ΔmAP per detected object per image
    embeddings = np.random.default_rng(5).normal(size=(10, 3))
    assert trend(embeddings, np.full(10, 9)) > table.delta_map.max()
    most = max(counts.mean() for counts in table.entry_detections)
    assert trend(embeddings, np.full(10, 9)) == pytest.approx(
        trend.trend[0] + 9 * trend.trend[1], abs=0.004 * (9 - most))
    assert trend(embeddings, np.full(10, 5)) > trend(embeddings, np.zeros(10))
    fidelity = table_fidelity(table, LookupConfig())
    assert fidelity["loo_spearman"] > 0.9 and fidelity["trend_slope"] > 0
    flat = LookupTable(table.entry_embeddings, table.delta_map,
                       [np.full(10, 2.0) for _ in range(len(table))])
    assert Estimator(flat, LookupConfig()).trend[1] == 0.0


def test_the_read_out_needs_detection_counts():
    with pytest.raises(ValueError, match="needs entries that hold detection counts"):
        Estimator(LookupTable([np.zeros((2, 3))], np.array([0.1])), LookupConfig())
    estimate = Estimator(_counting_table(), LookupConfig())
    with pytest.raises(ValueError, match="detection counts"):
        estimate(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="3 detection counts for 4 images"):
        estimate(np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="one count per entry image"):
        LookupTable([np.zeros((2, 3))], np.array([0.1]), entry_detections=[np.zeros(3)])


def test_tables_round_trip_with_and_without_counts():
    table = _counting_table()
    again = LookupTable.from_dict(json.loads(json.dumps(table.to_dict())))
    np.testing.assert_allclose(np.concatenate(again.entry_detections),
                               np.concatenate(table.entry_detections))
    entries = [{"embeddings": e.tolist(), "delta_map": float(d)}
               for e, d in zip(table.entry_embeddings, table.delta_map)]
    # A table written before counts were stored is read without them (and cannot be queried).
    assert LookupTable.from_lut({"entries": entries}).entry_detections is None
    entries[0]["detections"] = table.entry_detections[0].tolist()
    assert LookupTable.from_lut({"entries": entries}).entry_detections is None  # all or none
    for entry, counts in zip(entries, table.entry_detections):
        entry["detections"] = counts.tolist()
    assert len(LookupTable.from_lut({"entries": entries}).entry_detections) == len(table)
