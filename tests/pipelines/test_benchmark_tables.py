"""Tables from the records alone: complete curves only, one code version per strategy."""

from __future__ import annotations

import json

import pytest

from mgral_pipelines.pipelines.benchmark import records
from mgral_pipelines.pipelines.benchmark.tables import (
    check_versions,
    complete_curves,
    read_records,
)


def _write(root, strategy, seed, cycles, code="c1", last_query=None):
    for t in range(cycles):
        record = {"strategy": strategy, "seed": seed, "cycle": t, "code_version": code,
                  "settings": f"s{seed}", "git_commit": "abc", "recorded_at": f"2026-12-07T0{t}",
                  "query": {"image_ids": ["x"]} if t < cycles - 1 else last_query}
        path = root / strategy / f"seed_{seed}" / f"cycle_{t}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))


def test_only_complete_curves_count_and_random_comes_first(tmp_path):
    _write(tmp_path, "ppal", 700, 4)
    _write(tmp_path, "random", 700, 4)
    _write(tmp_path, "random", 701, 2, last_query={"image_ids": ["y"]})  # still running
    curves = complete_curves(read_records(tmp_path))
    assert [(r["strategy"], r["seed"], r["cycle"]) for r in curves][::4] == [
        ("random", 700, 0), ("ppal", 700, 0)]


def test_a_strategy_mixing_code_versions_is_refused_unless_shown_equivalent(tmp_path):
    _write(tmp_path, "random", 700, 2, code="old")
    _write(tmp_path, "random", 701, 2, code="new")
    with pytest.raises(ValueError, match=r"records of random come from code versions"):
        check_versions(read_records(tmp_path), tmp_path)
    records.accept_equivalent(tmp_path, "random", ("old", "s700"), ("new", "s701"), "re-run")
    table = check_versions(read_records(tmp_path), tmp_path)
    assert sorted(table["code_version"]) == ["new", "old"]
    assert table.set_index("code_version").loc["old", "seeds"] == "700"


def test_no_records_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        read_records(tmp_path)
