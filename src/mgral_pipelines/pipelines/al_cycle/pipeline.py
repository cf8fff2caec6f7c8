"""`al_cycle`: labels in -> detector -> embedding -> lut -> agent -> query -> annotation -> state.

The LUT and agent steps only run for `al.strategy: mgral`; other strategies skip them.
With people as annotators (`al.annotator`), a run ends with the batch awaiting labels and the next
run starts by taking them back (`receive_labels`); until they are done it stops there.

On a fresh clone the first run prepares the dataset (see `hooks.PrepareOnFirstRun`).
"""

from kedro.pipeline import Node, Pipeline

from mgral_pipelines.pipelines.agent.pipeline import create_pipeline as agent_pipeline
from mgral_pipelines.pipelines.common import current_state_node
from mgral_pipelines.pipelines.detector.pipeline import create_pipeline as detector_pipeline
from mgral_pipelines.pipelines.embedding.pipeline import create_pipeline as embedding_pipeline
from mgral_pipelines.pipelines.lut.pipeline import create_pipeline as lut_pipeline
from mgral_pipelines.pipelines.query.pipeline import create_pipeline as query_pipeline

from .nodes import annotate, current_state, receive_labels, send_batch, update_state


def start_pipeline() -> Pipeline:
    """The state of the cycle: people's labels taken in, then the checks that need no training."""
    return Pipeline(
        [
            Node(receive_labels,
                 ["al_states", "image_index", "label_studio", "awaiting_detections",
                  "annotation_package_folders", "saved_annotations", "params:al"],
                 ["received_annotations", "received_al_state", "received_state",
                  "ignored_parameters"],
                 name="receive_labels"),
            Node(current_state, ["received_state", "image_index", "label_studio", "params:al"],
                 "state", name="current_state"),
        ]
    )


def annotation_pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(annotate,
                 ["queries", "state", "oracle_annotations", "image_index", "pool_detections",
                  "params:al"],
                 ["new_labels", "annotation_packages"], name="annotate"),
            Node(update_state,
                 ["state", "queries", "new_labels", "params:al", "ignored_parameters"],
                 "next_al_state", name="update_state"),
            Node(send_batch,
                 ["next_al_state", "state", "image_index", "pool_detections", "label_studio",
                  "params:al"],
                 None, name="send_batch"),
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    steps = (detector_pipeline() + embedding_pipeline() + lut_pipeline() + agent_pipeline()
             + query_pipeline())
    # The steps share `current_state` to run alone; in a cycle the start pipeline replaces it.
    return start_pipeline() + (steps - Pipeline([current_state_node])) + annotation_pipeline()
