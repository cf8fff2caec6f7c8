"""`report`: the AL curve (test mAP against labelled images) of the cycles run so far.

DVC's `report` stage runs it after the cycles, for `dvc plots show` and `dvc exp show`.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import al_curve, al_summary


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(al_curve, "detector_reports", "al_curve", name="al_curve"),
            Node(al_summary, "al_curve", "al_summary", name="al_summary"),
        ]
    )
