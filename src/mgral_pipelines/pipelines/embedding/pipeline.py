"""`embedding`: what the cycle's detector makes of the pool: embeddings keyed by image id, and its
detections on every pool image (read by uncertainty strategies, the LUT's strata and the policy)."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import embed_images, predict_pool, reduce_embeddings


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            Node(embed_images,
                 ["detector_checkpoints", "state", "image_index", "params:detector",
                  "params:embedding"],
                 ["raw_embeddings", "embedding_throughput_metrics"], name="embed_images"),
            Node(reduce_embeddings, ["raw_embeddings", "state", "params:embedding"],
                 ["embeddings", "embedding_metrics"], name="reduce_embeddings"),
            Node(predict_pool,
                 ["detector_checkpoints", "state", "image_index", "params:detector", "params:al"],
                 "pool_detections", name="predict_pool"),
        ]
    )
