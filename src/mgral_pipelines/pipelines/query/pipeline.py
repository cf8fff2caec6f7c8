"""`query`: score the pool with the configured strategy and write the top-B batch."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import select_query


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            Node(select_query,
                 ["state", "image_index", "embeddings", "pool_detections", "agent_policies",
                  "params:al"],
                 ["queries", "query_metrics"], name="select_query"),
        ]
    )
