"""The interface every active-learning strategy shares.

A strategy gets a `PoolView` (what the learner may know in cycle t: ids, embeddings, the current
detector's predictions, and the labels it already owns) and returns a `Selection` of `budget`
pool ids. The pool's oracle labels are not part of the view, so no strategy can read them.

    strategy = get_strategy("entropy")
    selection = strategy.select(view, budget=100, rng=np.random.default_rng(seed))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

# {"class_id": int, "bbox": [x1, y1, x2, y2], "score": float,
#  "class_scores": list[float] (length num_classes; per-class scores, not necessarily summing to 1)}
Detection = dict[str, Any]

# PoolView fields a strategy may declare in `needs`; the cycle computes only the ones asked for.
OPTIONAL_INPUTS = frozenset({"embeddings", "detections", "policy"})


@dataclass(frozen=True)
class PoolView:
    """What a strategy may see in cycle t. No oracle labels of the pool."""

    pool_ids: list[str]
    """Ids of the unlabelled pool images, the only ids a strategy may select."""
    labelled_ids: list[str]
    """Ids of the images already labelled (L_t)."""
    num_classes: int
    """Number of object classes; class ids are 0 .. num_classes - 1."""
    embeddings: dict[str, np.ndarray] | None = None
    """image_id -> feature vector from the current detector, for pool and labelled images."""
    detections: dict[str, list[Detection]] | None = None
    """pool image_id -> the current detector's predictions (an empty list: nothing detected)."""
    labelled_class_counts: np.ndarray | None = None
    """(num_classes,) object counts in the labelled set: labels the learner owns, so allowed."""
    policy: bytes | None = None
    """MGRAL's policy trained this cycle (serialised by `mgral.agent.policy_to_bytes`)."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Other strategy-specific artefacts of the cycle."""

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {self.num_classes}")
        pool = set(self.pool_ids)
        if len(pool) != len(self.pool_ids):
            raise ValueError("pool_ids contains duplicate ids")
        overlap = pool.intersection(self.labelled_ids)
        if overlap:
            raise ValueError(
                f"{len(overlap)} ids are both in the pool and labelled, e.g. {_first(overlap)}"
            )
        counts = self.labelled_class_counts
        if counts is not None and np.shape(counts) != (self.num_classes,):
            raise ValueError(
                f"labelled_class_counts has shape {np.shape(counts)}, "
                f"expected ({self.num_classes},)"
            )


@dataclass(frozen=True)
class Selection:
    """The images a strategy asks to label, best first."""

    image_ids: list[str]
    """Exactly `budget` unique pool ids, best first."""
    scores: list[float]
    """Score of each id (higher = more wanted); same length as image_ids."""

    def __post_init__(self) -> None:
        if len(self.image_ids) != len(self.scores):
            raise ValueError(
                f"{len(self.image_ids)} image ids but {len(self.scores)} scores"
            )
        if len(set(self.image_ids)) != len(self.image_ids):
            raise ValueError("a selection may not contain the same image twice")


@runtime_checkable
class Strategy(Protocol):
    """Chooses `budget` pool images. Hyper-parameters come through the constructor."""

    name: str
    needs: frozenset[str]
    """PoolView fields it requires, a subset of OPTIONAL_INPUTS."""

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection: ...


def check_budget(view: PoolView, budget: int, strategy: Strategy | None = None) -> None:
    """Reject a budget the pool cannot fill and, given `strategy`, inputs it needs but lacks."""
    pool_size = len(view.pool_ids)
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer):
        raise ValueError(f"budget must be an integer, got {budget!r}")
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget} (pool size {pool_size})")
    if budget > pool_size:
        raise ValueError(f"budget {budget} exceeds the pool size {pool_size}")
    if strategy is None:
        return
    for name in sorted(strategy.needs):
        provided = getattr(view, name)
        if provided is None:
            raise ValueError(f"strategy {strategy.name!r} needs PoolView.{name}, which is None")
        if not isinstance(provided, Mapping):
            continue
        missing = [image_id for image_id in view.pool_ids if image_id not in provided]
        if missing:
            raise ValueError(
                f"strategy {strategy.name!r}: PoolView.{name} lacks {len(missing)} pool images, "
                f"e.g. {missing[0]!r}"
            )


def check_selection(selection: Selection, view: PoolView, budget: int) -> None:
    """Raise unless `selection` is exactly `budget` pool ids (what the cycle may act on)."""
    if len(selection.image_ids) != budget:
        raise ValueError(f"selection has {len(selection.image_ids)} ids, budget is {budget}")
    outside = set(selection.image_ids).difference(view.pool_ids)
    if outside:
        raise ValueError(
            f"selection contains {len(outside)} ids not in the pool, e.g. {_first(outside)}"
        )


def top_k(
    ids: Sequence[str], scores: np.ndarray, budget: int, rng: np.random.Generator
) -> Selection:
    """The `budget` highest-scoring ids, best first.

    Ties are broken at random: many images often share a score (e.g. 0 for images without
    detections), and breaking ties by pool order would favour whatever the ids sort by.
    """
    scores = np.asarray(scores, dtype=float)
    order = np.lexsort((rng.random(len(scores)), -scores))[:budget]
    return Selection(image_ids=[ids[i] for i in order], scores=scores[order].tolist())


def stack_embeddings(
    embeddings: dict[str, np.ndarray], ids: Sequence[str], strategy_name: str
) -> np.ndarray:
    """(len(ids), dim) float matrix of the embeddings of `ids`; ValueError naming a missing id."""
    missing = [image_id for image_id in ids if image_id not in embeddings]
    if missing:
        raise ValueError(
            f"strategy {strategy_name!r}: no embedding for {len(missing)} images, "
            f"e.g. {missing[0]!r}"
        )
    if not ids:
        return np.empty((0, 0))
    vectors = [np.asarray(embeddings[image_id], dtype=float).ravel() for image_id in ids]
    dims = {vector.shape[0] for vector in vectors}
    if len(dims) != 1:
        raise ValueError(f"strategy {strategy_name!r}: embeddings differ in size {sorted(dims)}")
    return np.stack(vectors)


def _first(ids: set[str]) -> str:
    return repr(sorted(ids)[0])
