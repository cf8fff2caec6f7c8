"""Core-set sampling (Sener & Savarese, ICLR 2018) by k-centre greedy on detector embeddings.

The labelled images are the initial centres. Each step adds the pool image farthest from its
nearest centre, so the query covers the regions of feature space the labelled set leaves empty.
A running min-distance array makes one step one matrix-vector product: O(budget x pool x dim).
An image's score is its distance to the nearest centre at the moment it was picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances_argmin_min

from mgral_pipelines.strategies.base import (
    PoolView,
    Selection,
    check_budget,
    stack_embeddings,
)


@dataclass(frozen=True)
class CoresetConfig:
    """Hyper-parameters of core-set sampling."""

    normalise_embeddings: bool = False
    """Scale every embedding to unit L2 norm first, so distances compare feature directions
    (cosine geometry) rather than activation magnitudes."""


def unit_rows(points: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(points, axis=1, keepdims=True)
    return points / np.maximum(norms, np.finfo(float).tiny)


def k_center_greedy(
    points: np.ndarray,
    budget: int,
    centres: np.ndarray | None = None,
    first: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `budget` rows of `points` chosen farthest-first, and their distances at pick time.

    Starts from `centres` (rows not among `points`), or from `first` (an index into `points`,
    picked before anything else), or both; one of them is required. Without centres the first
    pick has no distance to report, so it gets its covering radius: the farthest any point lies
    from it, which is also the next pick's distance.
    """
    has_centres = centres is not None and len(centres) > 0
    if not has_centres and first is None:
        raise ValueError("k-centre greedy needs initial centres or a first index")
    points = np.asarray(points, dtype=float)
    squared_norms = np.einsum("ij,ij->i", points, points)
    min_dist = (
        pairwise_distances_argmin_min(points, centres)[1] if has_centres
        else np.full(len(points), np.inf)
    )
    picked = np.empty(budget, dtype=int)
    picked_dist = np.empty(budget)
    for step in range(budget):
        index = first if step == 0 and first is not None else int(np.argmax(min_dist))
        picked[step], picked_dist[step] = index, min_dist[index]
        # |x - c|^2 = |x|^2 + |c|^2 - 2 x.c: one mat-vec instead of a (pool x dim) temporary.
        squared = squared_norms + squared_norms[index] - 2.0 * (points @ points[index])
        min_dist = np.minimum(min_dist, np.sqrt(np.clip(squared, 0.0, None)))
        # -inf (not 0): an exact duplicate of a picked image may still be picked, the image never.
        min_dist[index] = -np.inf
        if step == 0 and np.isinf(picked_dist[0]):
            picked_dist[0] = max(min_dist.max(), 0.0)
    return picked, picked_dist


class CoresetStrategy:
    """k-centre greedy over pool embeddings, seeded with the labelled set.

    With nothing labelled yet, the first centre is a pool image drawn with the cycle's `rng`.
    """

    name: str = "coreset"
    needs: frozenset[str] = frozenset({"embeddings"})

    def __init__(self, config: CoresetConfig = CoresetConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        assert view.embeddings is not None  # check_budget rejected None; narrows the type
        # Stacked together so pool and labelled vectors are checked for one common size.
        stacked = stack_embeddings(view.embeddings, view.pool_ids + view.labelled_ids, self.name)
        if self.config.normalise_embeddings:
            stacked = unit_rows(stacked)
        pool, labelled = stacked[: len(view.pool_ids)], stacked[len(view.pool_ids):]
        first = None if len(labelled) else int(rng.integers(len(pool)))
        picked, distances = k_center_greedy(pool, budget, centres=labelled, first=first)
        return Selection(
            image_ids=[view.pool_ids[i] for i in picked], scores=distances.tolist()
        )
