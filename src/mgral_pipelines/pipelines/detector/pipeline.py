"""`detector`: train D_t on the labelled set and evaluate it (the AL curve's point for cycle t)."""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.common import current_state_node

from .nodes import detector_metrics, evaluate_detector, package_detector, train_detector


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            current_state_node,
            Node(train_detector, ["state", "image_index", "eval_labels", "params:detector"],
                 ["detector_checkpoints", "detector_training_info"], name="train_detector"),
            Node(package_detector,
                 ["detector_checkpoints", "state", "image_index", "params:detector"],
                 "registered_detector", name="package_detector"),
            Node(evaluate_detector,
                 ["detector_checkpoints", "state", "image_index", "eval_labels", "params:detector"],
                 "detector_reports", name="evaluate_detector"),
            Node(detector_metrics, ["detector_reports", "state"], "detector_metrics",
                 name="detector_metrics"),
        ]
    )
