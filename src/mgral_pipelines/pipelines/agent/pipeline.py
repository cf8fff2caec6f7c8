"""`agent`: train the MGRAL selection policy on the cycle's LUT."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import package_policy, train_agent


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            Node(train_agent,
                 ["lookup_tables", "embeddings", "pool_detections", "state", "image_index",
                  "params:agent", "params:al"],
                 ["agent_policies", "agent_metrics", "agent_reward_curve"], name="train_agent"),
            Node(package_policy, ["agent_policies", "state", "params:al"], "registered_policy",
                 name="package_policy"),
        ]
    )
