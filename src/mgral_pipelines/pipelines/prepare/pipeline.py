"""`prepare`: dataset import/generation, splits and the initial AL state."""

from kedro.pipeline import Node, Pipeline

from .nodes import evaluation_labels, import_source, initial_state, separate_oracle, split_dataset


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(import_source, "params:dataset", "dataset_manifest", name="import_source"),
            Node(split_dataset, ["dataset_manifest", "params:dataset"], "splits", name="split_dataset"),
            Node(separate_oracle, "dataset_manifest", ["image_index", "oracle_annotations"],
                 name="separate_oracle"),
            Node(evaluation_labels, ["oracle_annotations", "splits"], "eval_labels",
                 name="evaluation_labels"),
            Node(initial_state, ["image_index", "splits", "oracle_annotations"], "next_al_state",
                 name="initial_state"),
        ]
    )
