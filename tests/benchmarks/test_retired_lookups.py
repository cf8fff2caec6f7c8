"""The retired kernel read-out the yardstick can still re-run (benchmarks/retired_lookups.py)."""

import sys

import numpy as np
import pytest

from mgral_pipelines.mgral.lookup import LookupTable
from tests.pipelines.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from retired_lookups import KernelReadout  # noqa: E402


def _counting_table(seed: int = 0) -> LookupTable:
    """Entries alike in their embeddings, whose ΔmAP grows with their images' object counts."""
    rng = np.random.default_rng(seed)
    objects = rng.integers(0, 6, size=(16, 10))
    entries = [rng.normal(size=(10, 3)) for _ in range(16)]
    return LookupTable(entries, 0.004 * objects.mean(axis=1), entry_detections=list(objects))


def test_detection_counts_are_weighed_in_when_they_carry_the_gain():
    table = _counting_table()
    counted = KernelReadout(table)
    fidelity = counted.fidelity()
    assert counted.detection_weight > 0 and fidelity["detection_weight"] > 0
    assert fidelity["loo_spearman"] > 0.8 and fidelity["loo_skill"] > 0.5
    alone = KernelReadout(table, detection_weights=(0.0,)).fidelity()
    assert alone["detection_weight"] == 0 and alone["loo_spearman"] < fidelity["loo_spearman"]
    embeddings = np.random.default_rng(5).normal(size=(10, 3))
    assert counted(embeddings, np.full(10, 5)) > counted(embeddings, np.zeros(10))


def test_counts_that_carry_nothing_keep_the_embeddings_alone():
    rng = np.random.default_rng(0)
    positions = np.linspace(0, 11, 12)
    entries = [rng.normal(loc=p, scale=0.3, size=(10, 3)) for p in positions]
    table = LookupTable(entries, 0.01 * positions,
                        entry_detections=[np.full(10, 2.0) for _ in positions])
    readout = KernelReadout(table)
    assert readout.detection_weight == 0.0
    between = np.random.default_rng(9).normal(loc=5.5, scale=0.3, size=(10, 3))
    assert 0.045 <= readout(between, np.full(10, 7.0)) <= 0.065
    with pytest.raises(ValueError, match="weights >= 0"):
        KernelReadout(table, detection_weights=(-1.0,))
