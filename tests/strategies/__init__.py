"""Tests of the active-learning strategies; `detection` builds one predicted box for them."""

from __future__ import annotations

from collections.abc import Sequence

from mgral_pipelines.strategies import Detection


def detection(class_scores: Sequence[float], score: float | None = None) -> Detection:
    """A prediction whose class is the argmax of `class_scores` (score defaults to its max)."""
    best = max(range(len(class_scores)), key=lambda index: class_scores[index])
    return {
        "class_id": best,
        "bbox": [0.0, 0.0, 10.0, 10.0],
        "score": float(class_scores[best]) if score is None else score,
        "class_scores": list(class_scores),
    }
