from __future__ import annotations

import numpy as np

from mgral_pipelines.strategies import PoolView, RandomStrategy, check_selection

VIEW = PoolView(pool_ids=[f"p{i:02d}" for i in range(30)], labelled_ids=["l0"], num_classes=3)


def select(seed: int, budget: int = 10) -> list[str]:
    return RandomStrategy().select(VIEW, budget, np.random.default_rng(seed)).image_ids


def test_exact_budget_unique_and_from_the_pool() -> None:
    selection = RandomStrategy().select(VIEW, 10, np.random.default_rng(0))
    check_selection(selection, VIEW, 10)
    assert len(set(selection.image_ids)) == 10
    assert selection.scores == sorted(selection.scores, reverse=True)


def test_same_seed_same_choice_other_seed_other_choice() -> None:
    assert select(1) == select(1)
    assert select(1) != select(2)


def test_whole_pool_is_a_permutation() -> None:
    assert sorted(select(3, budget=30)) == VIEW.pool_ids


def test_roughly_uniform() -> None:
    # 300 draws of 10 out of 30: every id expected 100 times; 55..145 is a > 4 sigma band.
    rng = np.random.default_rng(4)
    counts = dict.fromkeys(VIEW.pool_ids, 0)
    for _ in range(300):
        for image_id in RandomStrategy().select(VIEW, 10, rng).image_ids:
            counts[image_id] += 1
    assert 55 <= min(counts.values()) and max(counts.values()) <= 145
