"""`query`: score the pool with the configured strategy and write the top-B batch."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import predict_pool, select_query


# One node object, shared with the lut and agent pipelines, which read the same predictions: Kedro
# merges identical nodes when al_cycle adds the pipelines together.
predict_pool_node = Node(
    predict_pool, ["detector_checkpoints", "state", "image_index", "params:detector", "params:al"],
    "pool_detections", name="predict_pool")


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            predict_pool_node,
            Node(select_query,
                 ["state", "image_index", "embeddings", "pool_detections", "agent_policies",
                  "params:al"],
                 ["queries", "query_metrics"], name="select_query"),
        ]
    )
