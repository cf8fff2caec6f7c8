"""The heuristic MGRAL's default reward reduces to, as plain strategies (ablations).

With the shipped read-out, MGRAL's reward of a batch is a line on the batch's mean number of D_t's
confident detections per image, each weighted by how rare its predicted class is among L_t's labels
(`lut.object_weighting: rarity`), plus a kernel on what the line leaves. These strategies keep
that coordinate and drop the machinery (variants, table, policy), so a benchmark can tell whether
the machinery adds anything to it:

    detections        top-B pool images by D_t's confident detections (score >= 0.25)
    rare_detections   top-B by the same detections, each weighted w_c = (1 + n̄) / (1 + n_c) for
                      its predicted class c, n_c the labelled objects of class c in L_t: the
                      weights MGRAL's LUT computes (`mgral.features.class_rarity_weights`)

Ties (e.g. every image with nothing detected) are broken at random, like every strategy's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgral_pipelines.mgral.features import (
    OBJECT_CONFIDENCE,
    confident_detections,
    rarity_weights_from_counts,
)
from mgral_pipelines.strategies.base import PoolView, Selection, check_budget, top_k


@dataclass(frozen=True)
class DetectionsConfig:
    """The detection count's threshold."""

    confidence: float = OBJECT_CONFIDENCE
    """A detection counts from this score on; 0.25 is the threshold MGRAL's look-up counts with."""

    def __post_init__(self) -> None:
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence}")


class DetectionsStrategy:
    """Top-B pool images by their number of confident detections."""

    name: str = "detections"
    needs: frozenset[str] = frozenset({"detections"})
    rarity_weighted: bool = False

    def __init__(self, config: DetectionsConfig = DetectionsConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        assert view.detections is not None  # check_budget rejected None; narrows the type
        weights = None
        if self.rarity_weighted:
            if view.labelled_class_counts is None:
                raise ValueError(f"strategy {self.name!r} weighs detections by the labelled "
                                 "class counts: PoolView.labelled_class_counts is missing")
            weights = rarity_weights_from_counts(view.labelled_class_counts).tolist()
        scores = np.array([confident_detections(view.detections[image_id],
                                                self.config.confidence, weights)
                           for image_id in view.pool_ids], dtype=float)
        return top_k(view.pool_ids, scores, budget, rng)


class RareDetectionsStrategy(DetectionsStrategy):
    """Top-B pool images by their confident detections weighted by class rarity in L_t."""

    name: str = "rare_detections"
    rarity_weighted: bool = True
