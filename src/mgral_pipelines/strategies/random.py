"""Random sampling: the baseline every AL curve is compared with.

Each pool image gets an independent uniform key and the `budget` largest keys win, which is a
uniform draw without replacement whose scores (the keys) are ordered best first like any other
strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgral_pipelines.strategies.base import PoolView, Selection, check_budget, top_k


@dataclass(frozen=True)
class RandomConfig:
    """Random sampling has no hyper-parameters; the cycle's `rng` is its only input."""


class RandomStrategy:
    """Uniform sampling without replacement from the pool."""

    name: str = "random"
    needs: frozenset[str] = frozenset()

    def __init__(self, config: RandomConfig = RandomConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        keys = rng.random(len(view.pool_ids))
        return top_k(view.pool_ids, keys, budget, rng)
