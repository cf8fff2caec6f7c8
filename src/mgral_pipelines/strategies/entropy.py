"""Entropy sampling: label the images whose detections the model is least sure how to classify.

Per detection, the entropy of its class distribution; per image, one aggregate of those entropies;
the `budget` highest images win.

Class scores are normalised to sum 1 before the entropy because detectors such as YOLOv8 score
each class with an independent sigmoid: the raw vector is not a distribution (it may sum to more
or less than 1), and only its shape says how torn the model is between classes.

An image without detections scores 0: nothing uncertain was detected in it. The alternative,
treating an empty prediction as maximally uncertain (the detector may be missing every object),
floods the query with background images while the detector is still weak; strategies that want
to hunt false negatives should do so explicitly rather than through this default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import entr

from mgral_pipelines.strategies.base import Detection, PoolView, Selection, check_budget, top_k

AGGREGATIONS: dict[str, Callable[[np.ndarray], float]] = {
    "max": lambda values: float(values.max()),
    "mean": lambda values: float(values.mean()),
    "sum": lambda values: float(values.sum()),
}


@dataclass(frozen=True)
class EntropyConfig:
    """Hyper-parameters of entropy sampling."""

    aggregation: str = "max"
    """How an image's detection entropies become its score: "max" (its most confusing object),
    "mean" (typical object; does not reward clutter) or "sum" (total uncertainty; favours images
    with many objects)."""

    def __post_init__(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise ValueError(
                f"aggregation must be one of {sorted(AGGREGATIONS)}, got {self.aggregation!r}"
            )


def class_probabilities(
    detections: list[Detection], num_classes: int, image_id: str
) -> np.ndarray:
    """(n_detections, num_classes) class distributions: each `class_scores` scaled to sum 1.

    Negative scores are clipped to 0; an all-zero vector becomes uniform (no class preferred).
    """
    if not detections:
        return np.empty((0, num_classes))
    scores = np.array([detection["class_scores"] for detection in detections], dtype=float)
    if scores.ndim != 2 or scores.shape[1] != num_classes:
        raise ValueError(
            f"image {image_id!r}: class_scores must have {num_classes} entries per detection, "
            f"got shape {scores.shape}"
        )
    scores = np.clip(scores, 0.0, None)
    totals = scores.sum(axis=1, keepdims=True)
    uniform = np.full_like(scores, 1.0 / num_classes)
    return np.divide(scores, totals, out=uniform, where=totals > 0)


def detection_entropies(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row; 0 for a one-hot row, log(num_classes) for uniform."""
    return entr(probabilities).sum(axis=1)


def image_entropy(
    detections: list[Detection], num_classes: int, image_id: str, aggregation: str
) -> float:
    """One image's score: its detection entropies aggregated; 0 when nothing was detected."""
    if not detections:
        return 0.0
    entropies = detection_entropies(class_probabilities(detections, num_classes, image_id))
    return AGGREGATIONS[aggregation](entropies)


class EntropyStrategy:
    """Top-`budget` pool images by aggregated detection entropy."""

    name: str = "entropy"
    needs: frozenset[str] = frozenset({"detections"})

    def __init__(self, config: EntropyConfig = EntropyConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        assert view.detections is not None  # check_budget rejected None; narrows the type
        scores = np.array([
            image_entropy(view.detections[image_id], view.num_classes, image_id,
                          self.config.aggregation)
            for image_id in view.pool_ids
        ])
        return top_k(view.pool_ids, scores, budget, rng)
