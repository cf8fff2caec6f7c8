"""PPAL-style two-stage sampling, after Yang et al., "Plug and Play Active Learning for Object
Detection" (CVPR 2024, arXiv:2211.11612).

Stage 1, difficulty-calibrated uncertainty: each detection's class entropy H (normalised class
scores, as in `entropy.py`) is weighted by a difficulty weight of its predicted class c, and an
image's uncertainty is the sum over its detections:

    rarity_c     = 1 - log(1 + n_c) / log(1 + max_k n_k)      n_c: labelled objects of class c
    hardness_c   = 1 - mean score of the pool detections predicted as c
    difficulty_c = lambda * rarity_c + (1 - lambda) * hardness_c          (lambda: rarity_weight)
    w_c          = 1 + alpha * difficulty_c                          (alpha: difficulty_strength)
    U(image)     = sum over its detections d of  w_{class(d)} * H(d)

rarity_c is 0 for the most frequent labelled class and 1 for a class with no labelled object;
log counts keep one extra instance of a class with 1000 from mattering as much as one of a class
with 2. Without `labelled_class_counts`, difficulty_c = hardness_c. The top
`preselect_factor x budget` images by U are the candidates.

Stage 2, category-aware diversity: each candidate is represented by its unit-norm embedding
concatenated with gamma x its predicted class histogram (mean normalised class distribution of its
detections; gamma: category_weight), so images that look alike but contain different categories
stay apart. k-centre greedy, starting from the most uncertain candidate, picks `budget` of them.
An image's score is its k-centre distance at pick time (highest first).

Deviations from the paper:
- Its difficulty coefficient mixes classification and localisation quality measured on the
  labelled data while the detector trains; a strategy here sees only the cycle's artefacts, so
  difficulty comes from labelled class counts and pool prediction confidence instead.
- Its diversity stage compares images by Category Conditioned Matching Similarity (instance-level
  matching of same-category objects) and samples with k-means++; here one image-level,
  category-aware vector per image and deterministic k-centre greedy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgral_pipelines.strategies.base import (
    Detection,
    PoolView,
    Selection,
    check_budget,
    stack_embeddings,
)
from mgral_pipelines.strategies.coreset import k_center_greedy, unit_rows
from mgral_pipelines.strategies.entropy import class_probabilities, detection_entropies


@dataclass(frozen=True)
class PPALConfig:
    """Hyper-parameters of PPAL-style sampling."""

    preselect_factor: int = 4
    """Stage 1 keeps the `preselect_factor x budget` most uncertain images for stage 2; 1 makes
    the strategy pure uncertainty sampling."""
    difficulty_strength: float = 2.0
    """alpha: a detection of the hardest possible class weighs 1 + alpha times one of the easiest;
    0 turns difficulty calibration off (plain summed entropy)."""
    rarity_weight: float = 0.5
    """lambda in [0, 1]: share of difficulty from labelled-class rarity, the rest from low mean
    confidence of the class's pool detections."""
    category_weight: float = 1.0
    """gamma: scale of the class histogram against the unit-norm embedding in stage 2; 0 makes
    the diversity stage category-blind."""

    def __post_init__(self) -> None:
        if isinstance(self.preselect_factor, bool) or not isinstance(self.preselect_factor, int):
            raise ValueError(f"preselect_factor must be an integer, got {self.preselect_factor!r}")
        if self.preselect_factor < 1:
            raise ValueError(f"preselect_factor must be at least 1, got {self.preselect_factor}")
        if self.difficulty_strength < 0:
            raise ValueError(f"difficulty_strength must be >= 0, got {self.difficulty_strength}")
        if not 0.0 <= self.rarity_weight <= 1.0:
            raise ValueError(f"rarity_weight must lie in [0, 1], got {self.rarity_weight}")
        if self.category_weight < 0:
            raise ValueError(f"category_weight must be >= 0, got {self.category_weight}")


def class_ids(detections: list[Detection], num_classes: int, image_id: str) -> np.ndarray:
    """Predicted class of each detection, checked against num_classes."""
    ids = np.array([int(detection["class_id"]) for detection in detections], dtype=int)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"image {image_id!r}: class_id outside 0..{num_classes - 1}")
    return ids


def class_rarity(counts: np.ndarray, num_classes: int) -> np.ndarray:
    """rarity_c = 1 - log(1 + n_c) / log(1 + max n): 0 for the most common class, 1 for unseen."""
    counts = np.clip(np.asarray(counts, dtype=float), 0.0, None)
    if counts.max(initial=0.0) == 0.0:
        return np.ones(num_classes)
    return 1.0 - np.log1p(counts) / np.log1p(counts.max())


def class_mean_confidence(detections: dict[str, list[Detection]], num_classes: int) -> np.ndarray:
    """Mean detection score per predicted class over the pool; 0 for a class never predicted."""
    totals, counts = np.zeros(num_classes), np.zeros(num_classes)
    for image_id, image_detections in detections.items():
        ids = class_ids(image_detections, num_classes, image_id)
        scores = np.clip([float(detection["score"]) for detection in image_detections], 0.0, 1.0)
        np.add.at(totals, ids, scores)
        np.add.at(counts, ids, 1.0)
    return np.divide(totals, counts, out=np.zeros(num_classes), where=counts > 0)


def difficulty_weights(view: PoolView, strength: float, rarity_weight: float) -> np.ndarray:
    """w_c = 1 + alpha * difficulty_c (see the module docstring), shape (num_classes,)."""
    assert view.detections is not None  # PPAL needs detections; narrows the type
    pool_detections = {image_id: view.detections[image_id] for image_id in view.pool_ids}
    hardness = 1.0 - class_mean_confidence(pool_detections, view.num_classes)
    if view.labelled_class_counts is None:
        difficulty = hardness
    else:
        rarity = class_rarity(view.labelled_class_counts, view.num_classes)
        difficulty = rarity_weight * rarity + (1.0 - rarity_weight) * hardness
    return 1.0 + strength * difficulty


def calibrated_uncertainty(
    detections: list[Detection], weights: np.ndarray, image_id: str
) -> float:
    """U(image) = sum over detections of w_{class} * entropy; 0 without detections."""
    if not detections:
        return 0.0
    num_classes = len(weights)
    entropies = detection_entropies(class_probabilities(detections, num_classes, image_id))
    return float(weights[class_ids(detections, num_classes, image_id)] @ entropies)


def class_histogram(detections: list[Detection], num_classes: int, image_id: str) -> np.ndarray:
    """Mean class distribution of an image's detections; zeros when nothing was detected."""
    if not detections:
        return np.zeros(num_classes)
    return class_probabilities(detections, num_classes, image_id).mean(axis=0)


def category_aware_features(
    view: PoolView, image_ids: list[str], category_weight: float, strategy_name: str
) -> np.ndarray:
    """[unit-norm embedding, gamma x class histogram] per image: the stage-2 representation."""
    assert view.embeddings is not None and view.detections is not None  # narrows the types
    embeddings = unit_rows(stack_embeddings(view.embeddings, image_ids, strategy_name))
    histograms = np.stack([
        class_histogram(view.detections[image_id], view.num_classes, image_id)
        for image_id in image_ids
    ])
    return np.hstack([embeddings, category_weight * histograms])


class PPALStrategy:
    """Difficulty-calibrated uncertainty preselection, then category-aware k-centre greedy."""

    name: str = "ppal"
    needs: frozenset[str] = frozenset({"embeddings", "detections"})

    def __init__(self, config: PPALConfig = PPALConfig()) -> None:
        self.config = config

    def select(self, view: PoolView, budget: int, rng: np.random.Generator) -> Selection:
        check_budget(view, budget, self)
        assert view.detections is not None  # check_budget rejected None; narrows the type
        config = self.config

        weights = difficulty_weights(view, config.difficulty_strength, config.rarity_weight)
        uncertainty = np.array([
            calibrated_uncertainty(view.detections[image_id], weights, image_id)
            for image_id in view.pool_ids
        ])
        num_candidates = min(len(view.pool_ids), config.preselect_factor * budget)
        # Random tie-break: images without detections all score 0 and must not enter by id order.
        order = np.lexsort((rng.random(len(uncertainty)), -uncertainty))[:num_candidates]
        candidates = [view.pool_ids[i] for i in order]

        features = category_aware_features(view, candidates, config.category_weight, self.name)
        picked, distances = k_center_greedy(features, budget, first=0)
        return Selection(image_ids=[candidates[i] for i in picked], scores=distances.tolist())
