"""`prepare`: dataset import/generation, splits and the initial AL state."""

from kedro.pipeline import Node, Pipeline

from .nodes import (
    evaluation_labels,
    generate_embedded,
    import_and_split,
    initial_state,
    keep_progress,
    separate_oracle,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(generate_embedded, "params:dataset", "source_path", name="generate_embedded"),
            Node(import_and_split, ["source_path", "params:dataset"], ["dataset_manifest", "splits"],
                 name="import_and_split"),
            Node(separate_oracle, "dataset_manifest", ["image_index", "oracle_annotations"],
                 name="separate_oracle"),
            Node(evaluation_labels, ["oracle_annotations", "splits"], "eval_labels",
                 name="evaluation_labels"),
            Node(initial_state, ["image_index", "splits", "oracle_annotations"], "fresh_al_state",
                 name="initial_state"),
            Node(keep_progress, ["fresh_al_state", "al_states"], "next_al_state",
                 name="keep_progress"),
        ]
    )
