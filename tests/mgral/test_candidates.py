"""The LUT's candidate batches: seeded, of size B, and differing in composition by stratum."""

import numpy as np
import pytest

from mgral_pipelines.mgral.candidates import pool_strata, sample_candidate_batches

POOL = [f"p{i:02d}" for i in range(60)]


def _detections():
    """p00-p19: one confident class-1 box; p20-p29: an uncertain box; the rest nothing."""
    sure = {"class_id": 1, "bbox": [0, 0, 4, 4], "score": 0.9, "class_scores": [0.02, 0.9, 0.02]}
    unsure = {"class_id": 0, "bbox": [0, 0, 4, 4], "score": 0.1, "class_scores": [0.1, 0.1, 0.1]}
    return {i: [sure] if n < 20 else [unsure] if n < 30 else [] for n, i in enumerate(POOL)}


def test_uniform_batches_are_seeded_pool_subsets_without_repeats():
    batches = sample_candidate_batches(POOL, 4, 5, seed=[0, 1])
    assert len(batches) == 4
    assert all(b["stratum"] is None and len(set(b["image_ids"])) == 5
               and set(b["image_ids"]) <= set(POOL) for b in batches)
    assert batches == sample_candidate_batches(POOL, 4, 5, seed=[0, 1])
    assert batches != sample_candidate_batches(POOL, 4, 5, seed=[0, 2])
    with pytest.raises(ValueError, match="LUT batch size 61 exceeds the pool size 60"):
        sample_candidate_batches(POOL, 1, 61, seed=0)


def test_strata_come_from_embeddings_and_predictions_only():
    vectors = np.repeat(np.eye(3) * 10, 20, axis=0)  # three clear clusters of 20
    strata = pool_strata(POOL, vectors, _detections(), num_classes=3, clusters=3, seed=0)
    clusters = sorted(sorted(m) for name, m in strata.items() if name.startswith("cluster_"))
    assert clusters == [POOL[:20], POOL[20:40], POOL[40:]]
    assert strata["predicted_1"] == POOL[:20]
    assert "predicted_0" not in strata  # no confident class-0 box: an empty stratum is dropped
    assert set(strata["uncertain"]) == set(POOL[20:30])
    assert set(strata["nothing_detected"]) == set(POOL[20:])


def test_stratified_batches_over_represent_their_stratum():
    strata = {"rare": POOL[:10], "crowded": POOL[50:]}
    batches = sample_candidate_batches(POOL, 8, 8, seed=3, strata=strata, stratified_share=0.75)
    stratified = [b for b in batches if b["stratum"] is not None]
    assert len(stratified) == 6 and {b["stratum"] for b in stratified} == {"rare", "crowded"}
    for batch in stratified:
        members = set(strata[batch["stratum"]])
        inside = sum(i in members for i in batch["image_ids"]) / 8
        assert inside >= batch["share"] >= 0.25 - 1 / 8
        assert len(set(batch["image_ids"])) == 8
    # On average a stratified batch holds far more of its stratum than the pool's 1/6.
    assert np.mean([b["share"] for b in stratified]) > 0.4
