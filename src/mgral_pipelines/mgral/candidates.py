"""The LUT's candidate batches: drawn so that they differ in composition, as the agent's will.

Uniform random batches of one pool all look alike: their embedding distributions are close in
Wasserstein distance and their ΔmAP differ by little more than noise, so a table of them cannot
tell the agent which *kind* of batch pays. Here most batches over-represent one stratum of the pool,
a group of images the learner can name without any label of the pool:
  * a cluster of the embeddings (k-means);
  * the images where D_t predicts a given class;
  * the most uncertain third (largest normalised class-score entropy of a detection);
  * crowded images (two or more confident detections), and images with no confident detection.
A batch takes a random share f ~ U(min_share, 1) of its images from its stratum and the rest
uniformly from the pool; the remaining batches are uniform. Strata come from embeddings and D_t's
predictions only: no oracle label is read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.cluster import KMeans

from mgral_pipelines.mgral.features import detection_features


def pool_strata(pool_ids: Sequence[str], vectors: np.ndarray,
                detections: Mapping[str, Sequence[Mapping[str, Any]]] | None, num_classes: int,
                clusters: int = 6, seed: int = 0, min_size: int = 1) -> dict[str, list[str]]:
    """Named groups of pool ids (see module doc); groups smaller than `min_size` are dropped."""
    ids = list(pool_ids)
    strata: dict[str, list[str]] = {}
    k = min(clusters, len(ids))
    if k >= 2:
        labels = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(vectors)
        for cluster in range(k):
            strata[f"cluster_{cluster}"] = [i for i, c in zip(ids, labels) if c == cluster]
    if detections is not None:
        features = np.stack([detection_features(detections.get(i, []), num_classes) for i in ids])
        max_entropy, confident = features[:, 0], np.expm1(features[:, 2]).round()
        histogram = features[:, 4:]
        for c in range(num_classes):
            strata[f"predicted_{c}"] = [i for i, h in zip(ids, histogram[:, c]) if h > 0]
        threshold = np.quantile(max_entropy, 2 / 3)
        strata["uncertain"] = [i for i, e in zip(ids, max_entropy) if e > threshold]
        strata["crowded"] = [i for i, n in zip(ids, confident) if n >= 2]
        strata["nothing_detected"] = [i for i, n in zip(ids, confident) if n == 0]
    return {name: members for name, members in strata.items() if len(members) >= min_size}


def sample_candidate_batches(pool_ids: Sequence[str], num_batches: int, batch_size: int,
                             seed: int | Sequence[int],
                             strata: Mapping[str, Sequence[str]] | None = None,
                             stratified_share: float = 0.75,
                             min_share: float = 0.25) -> list[dict[str, Any]]:
    """K batches of `batch_size` distinct pool ids: `{"image_ids", "stratum", "share"}` each.

    round(stratified_share * K) of them over-represent a stratum (cycled through in a seeded
    order, so every stratum gets its turn), the rest are uniform (`stratum` None). Batches may
    share images.
    """
    ids = sorted(pool_ids)
    if batch_size > len(ids):
        raise ValueError(f"LUT batch size {batch_size} exceeds the pool size {len(ids)}")
    rng = np.random.default_rng(seed)
    names = sorted(strata or {})
    stratified = round(stratified_share * num_batches) if names else 0
    order = [names[i] for i in rng.permutation(len(names))] if names else []
    batches = []
    for k in range(num_batches):
        if k >= stratified:
            chosen = rng.choice(len(ids), batch_size, replace=False)
            batches.append({"image_ids": sorted(ids[i] for i in chosen), "stratum": None,
                            "share": 0.0})
            continue
        name = order[k % len(order)]
        members = sorted(set(strata[name]) & set(ids))
        share = float(rng.uniform(min_share, 1.0))
        take = min(len(members), round(share * batch_size))
        picked = set(rng.choice(members, take, replace=False).tolist()) if take else set()
        rest = [i for i in ids if i not in picked]
        picked |= set(rng.choice(rest, batch_size - take, replace=False).tolist())
        batches.append({"image_ids": sorted(picked), "stratum": name,
                        "share": take / batch_size})
    return batches
