"""One vector per pool and labelled image from the cycle's detector, optionally PCA-reduced."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from mgral_pipelines import detector as adapter
from mgral_pipelines.config import ALParams, EmbeddingParams
from mgral_pipelines.pipelines.common import cycle_key, detector_settings, for_cycle

logger = logging.getLogger(__name__)


def embed_images(
    checkpoints: dict[str, Any], state: dict[str, Any], image_index: dict[str, Any],
    detector: dict[str, Any], embedding: dict[str, Any],
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Pooled neck features of D_t for every pool and labelled image (batched, progress bar)."""
    params = EmbeddingParams(**embedding)
    config, _ = detector_settings(detector)
    image_ids = state["pool_ids"] + state["labelled_ids"]
    started = time.perf_counter()
    vectors = adapter.embed(
        for_cycle(checkpoints, state, "detector"), image_index["images"], image_ids, config,
        batch_size=params.batch_size,
    )
    throughput = len(image_ids) / (time.perf_counter() - started)
    logger.info("Embedded %d images (d=%d) at %.1f images/s", len(image_ids), vectors.shape[1],
                throughput)
    metrics = {"embedding/images_per_s": throughput, "embedding/raw_dim": vectors.shape[1]}
    step = state["cycle"]
    return (
        {cycle_key(state): {"image_ids": image_ids, "vectors": vectors}},
        {key: {"value": float(value), "step": step} for key, value in metrics.items()},
    )


def reduce_embeddings(
    raw: dict[str, Any], state: dict[str, Any], embedding: dict[str, Any]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """PCA fitted on this cycle's images (the features change with every detector)."""
    params = EmbeddingParams(**embedding)
    features = for_cycle(raw, state, "embedding")
    vectors = np.asarray(features["vectors"], dtype=np.float32)
    explained = 1.0
    if params.pca_components is not None and params.pca_components < vectors.shape[1]:
        components = min(params.pca_components, len(vectors))
        pca = PCA(n_components=components, random_state=0).fit(vectors)
        vectors = pca.transform(vectors).astype(np.float32)
        explained = float(pca.explained_variance_ratio_.sum())
        logger.info("PCA to %d dims keeps %.1f%% of the variance", components, 100 * explained)
    metrics = {"embedding/dim": vectors.shape[1], "embedding/pca_explained_variance": explained}
    step = state["cycle"]
    return (
        {cycle_key(state): {"image_ids": features["image_ids"], "vectors": vectors}},
        {key: {"value": float(value), "step": step} for key, value in metrics.items()},
    )


def predict_pool(
    checkpoints: dict[str, Any], state: dict[str, Any], image_index: dict[str, Any],
    detector: dict[str, Any], al: dict[str, Any],
) -> dict[str, Any]:
    """D_t's detections (with per-class scores) on every pool image: input of uncertainty
    strategies, and the predicted classes of the queried images for the diversity report."""
    config, _ = detector_settings(detector)
    detections = adapter.predict(
        for_cycle(checkpoints, state, "detector"), image_index["images"], state["pool_ids"], config,
        conf=ALParams(**al).pool_detection_conf, batch_size=config.batch,
    )
    return {cycle_key(state): detections}
