"""`pretrain`: reproduce the committed base detector (`src/mgral_pipelines/assets/`)."""

from kedro.pipeline import Node, Pipeline

from .nodes import pretrain_base_detector


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(pretrain_base_detector, "params:pretrain",
                 ["base_detector", "base_detector_provenance"], name="pretrain_base_detector"),
        ]
    )
