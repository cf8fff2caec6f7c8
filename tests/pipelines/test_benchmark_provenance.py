"""Which code a benchmark record names: per strategy, so unrelated changes keep records valid."""

from __future__ import annotations

from mgral_pipelines.pipelines.benchmark import provenance


def test_a_policy_strategy_runs_through_mgral_and_a_count_strategy_through_its_imports():
    modules = provenance._imported_project_modules(
        "mgral_pipelines.strategies.ppal", ("mgral_pipelines.strategies", "mgral_pipelines.mgral"))
    assert {"mgral_pipelines.strategies.coreset", "mgral_pipelines.strategies.entropy"} <= modules
    rare = provenance._imported_project_modules(
        "mgral_pipelines.strategies.detections",
        ("mgral_pipelines.strategies", "mgral_pipelines.mgral"))
    assert "mgral_pipelines.mgral.features" in rare
    assert "mgral_pipelines.mgral.lookup" not in rare  # no LUT in the heuristic


def test_versions_differ_where_the_code_differs_and_not_otherwise():
    versions = {s: provenance.code_version(s) for s in
                ("random", "mgral", "mgral_fixed_reward", "detections", "rare_detections")}
    assert len(versions["random"]) == 16
    assert versions["random"] != versions["mgral"]
    # The two count ablations are one module with one class attribute apart: the same code.
    assert versions["detections"] == versions["rare_detections"]
    assert versions["mgral"] == versions["mgral_fixed_reward"]


def test_git_commit_names_this_checkout():
    commit = provenance.git_commit()
    assert commit == "unknown" or len(commit.split("+")[0]) == 12
