"""`al_cycle`: detector -> embedding -> lut -> agent -> query -> annotation -> state of cycle t+1.

The LUT and agent steps only run for `al.strategy: mgral`; other strategies skip them.

On a fresh clone the first run prepares the dataset (see `hooks.PrepareOnFirstRun`).
"""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.detector.pipeline import create_pipeline as detector_pipeline
from mgral_pipelines.pipelines.agent.pipeline import create_pipeline as agent_pipeline
from mgral_pipelines.pipelines.embedding.pipeline import create_pipeline as embedding_pipeline
from mgral_pipelines.pipelines.lut.pipeline import create_pipeline as lut_pipeline
from mgral_pipelines.pipelines.query.pipeline import create_pipeline as query_pipeline

from .nodes import annotate_from_oracle, update_state


def annotation_pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(annotate_from_oracle, ["queries", "state", "oracle_annotations"], "new_labels",
                 name="annotate_from_oracle"),
            Node(update_state, ["state", "queries", "new_labels", "params:al"], "next_al_state",
                 name="update_state"),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return (
        detector_pipeline() + embedding_pipeline() + lut_pipeline() + agent_pipeline()
        + query_pipeline() + annotation_pipeline()
    )
