"""The AL curve and summary of the `report` pipeline, on hand-made detector reports."""

import pytest

from mgral_pipelines.pipelines.report.nodes import al_curve, al_summary


def _report(cycle, n_labelled, map50_95):
    scores = {"map50_95": map50_95, "map50": map50_95 + 0.2, "voc07_map50": map50_95 + 0.1}
    return {"cycle": cycle, "n_labelled": n_labelled, "test": scores, "val": scores}


def test_curve_is_ordered_by_cycle_and_summary_integrates_it():
    reports = {"cycle_1": lambda: _report(1, 200, 0.6), "cycle_0": lambda: _report(0, 100, 0.4),
               "cycle_2": lambda: _report(2, 300, 0.5)}

    curve = al_curve(reports)

    assert curve["cycle"].tolist() == [0, 1, 2]
    assert curve["test_voc07_map50"].tolist() == pytest.approx([0.5, 0.7, 0.6])
    summary = al_summary(curve)
    # Trapezoids: (0.4 + 0.6) / 2 * 100 + (0.6 + 0.5) / 2 * 100 = 105, over a range of 200.
    assert summary["auc_test_map50_95"] == pytest.approx(0.525)
    assert (summary["cycles"], summary["n_labelled"], summary["test_map50_95"]) == (3, 300, 0.5)


def test_one_cycle_summary_is_its_point_and_no_report_is_an_error():
    assert al_summary(al_curve({"cycle_0": lambda: _report(0, 10, 0.3)}))[
        "auc_test_map50_95"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="run `kedro run --pipeline=detector` first"):
        al_curve({})
