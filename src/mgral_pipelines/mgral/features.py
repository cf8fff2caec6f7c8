"""What the MGRAL policy reads about a pool image: its embedding and what the detector makes of it.

The LUT's reward compares batches by their embeddings alone (Wasserstein distances), but the policy
that picks the batch can read more. Beside the cycle's (PCA-reduced) embedding it gets, from D_t's
own detections of the image (never the oracle's labels):
  * uncertainty: the largest and the mean normalised entropy of a detection's class scores;
  * how much is there: log(1 + number of detections scoring at least OBJECT_CONFIDENCE) and their
    summed score;
  * what is there: the predicted-class histogram of those detections (shares, summing to 1 or 0).
The policy standardises every input over the pool, so the scales of these features do not matter.
The LUT's look-up reads one of them too: each image's number of confident detections
(`confident_detections`), by default each weighted by how rare its predicted class is among L_t's
labels (`class_rarity_weights`, `lut.object_weighting: rarity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DETECTION_FEATURES = 4  # max entropy, mean entropy, log(1 + count), summed score
OBJECT_CONFIDENCE = 0.25
"""The score from which a detection counts as an object D_t sees: the objects the reward's trend
line counts, the policy's detection features, and (in reports) the predicted classes of a query.
Ultralytics' predict default. Not `al.prelabel_conf`, which decides what people are shown as
pre-annotations to correct: a labelling choice that may differ with no change to the method."""


def confident_detections(detections: Sequence[Mapping[str, Any]],
                         confidence: float = OBJECT_CONFIDENCE,
                         class_weights: Sequence[float] | None = None) -> float:
    """How many of one image's detections score at least `confidence`; with `class_weights`, each
    counts the weight of its predicted class instead of 1."""
    if class_weights is None:
        return int(sum(d["score"] >= confidence for d in detections))
    return float(sum(class_weights[int(d["class_id"])] for d in detections
                     if d["score"] >= confidence))


def class_rarity_weights(labels: Mapping[str, Sequence[Mapping[str, Any]]],
                         num_classes: int) -> np.ndarray:
    """(num_classes,) w_c = (1 + n̄) / (1 + n_c), n_c the labelled objects of class c, n̄ their
    mean over the classes: a class at the average count weighs 1, one the labels lack weighs most.

    mAP averages the classes' APs and each AP grows with diminishing returns in its class's labels,
    so a batch's worth is about Σ_c log(1 + n_c + m_c) - log(1 + n_c) for m_c new objects of class
    c, whose first-order term is Σ_c m_c / (1 + n_c): this weighting, up to the constant 1 + n̄.
    On the yardstick, that value computed from the oracle's labels tracks the true gain best of
    the features measured (docs/results/reward_features/README.md).
    """
    counts = class_counts([a for objects in labels.values() for a in objects], num_classes)
    return rarity_weights_from_counts(counts)


def rarity_weights_from_counts(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    """(num_classes,) w_c = (1 + n̄) / (1 + n_c) from per-class labelled object counts n_c (see
    `class_rarity_weights`); strategies get the counts, not the labels, in their PoolView."""
    counts = np.asarray(counts, dtype=np.float64)
    return (1 + counts.mean()) / (1 + counts)


def class_counts(objects: Sequence[Mapping[str, Any]], num_classes: int) -> np.ndarray:
    """(num_classes,) how many of `objects` (labels or detections) have each `class_id`."""
    class_ids = np.array([int(o["class_id"]) for o in objects], dtype=int)
    outside = class_ids[(class_ids < 0) | (class_ids >= num_classes)]
    if outside.size:
        raise ValueError(f"an object has class_id {outside[0]}, outside the {num_classes} classes "
                         "of the image index")
    return np.bincount(class_ids, minlength=num_classes).astype(np.float64)


def detection_features(detections: Sequence[Mapping[str, Any]], num_classes: int,
                       confidence: float = OBJECT_CONFIDENCE) -> np.ndarray:
    """(DETECTION_FEATURES + num_classes,) summary of one image's detections (see module doc)."""
    entropies = [_normalised_entropy(d["class_scores"]) for d in detections]
    confident = [d for d in detections if d["score"] >= confidence]
    histogram = np.zeros(num_classes)
    for detection in confident:
        histogram[int(detection["class_id"])] += 1
    if confident:
        histogram /= len(confident)
    summary = [max(entropies, default=0.0), float(np.mean(entropies)) if entropies else 0.0,
               float(np.log1p(len(confident))), float(sum(d["score"] for d in confident))]
    return np.concatenate([summary, histogram])


def policy_inputs(embedding: np.ndarray, detections: Sequence[Mapping[str, Any]] | None,
                  num_classes: int) -> np.ndarray:
    """The embedding, followed by `detection_features` unless `detections` is None."""
    embedding = np.asarray(embedding, dtype=np.float64).reshape(-1)
    if detections is None:
        return embedding
    return np.concatenate([embedding, detection_features(detections, num_classes)])


def _normalised_entropy(class_scores: Sequence[float]) -> float:
    """Entropy of the class scores normalised to sum to 1, divided by log(classes): 0 to 1."""
    scores = np.clip(np.asarray(class_scores, dtype=np.float64), 1e-12, None)
    if len(scores) < 2:
        return 0.0
    p = scores / scores.sum()
    return float(-(p * np.log(p)).sum() / np.log(len(p)))
