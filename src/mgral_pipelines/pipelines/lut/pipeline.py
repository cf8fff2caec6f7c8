"""`lut`: the look-up table of semi-supervised detector variants for the current cycle."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import build_lut


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            Node(build_lut,
                 ["state", "image_index", "eval_labels", "detector_checkpoints", "embeddings",
                  "pool_detections", "params:detector", "params:lut", "params:agent", "params:al"],
                 ["lookup_tables", "lut_metrics"], name="build_lut"),
        ]
    )
