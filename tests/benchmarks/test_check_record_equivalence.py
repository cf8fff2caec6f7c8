"""What one seed's re-run declares: its own seed always, the other seeds only for a code change."""

import json
from pathlib import Path

from benchmarks.check_record_equivalence import declare
from mgral_pipelines.pipelines.benchmark import records


def _record(folder: Path, strategy: str, seed: int, code: str, settings: str) -> dict:
    record = {"strategy": strategy, "seed": seed, "cycle": 0, "code_version": code,
              "settings": settings}
    path = folder / strategy / f"seed_{seed}" / "cycle_0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def _accepted(folder: Path, record: dict, current: tuple[str, str]) -> bool:
    accepted = records.accepted_versions(folder, record["strategy"], current)
    return records.version_of(record) in accepted


def test_a_code_change_shown_on_one_seed_covers_every_seed_with_unchanged_settings(tmp_path):
    seed_0 = _record(tmp_path, "random", 0, "old", "s0")
    seed_1 = _record(tmp_path, "random", 1, "old", "s1")
    other = _record(tmp_path, "ppal", 1, "old", "p1")
    rerun = {**seed_0, "code_version": "new"}
    declared = declare(tmp_path, "random", seed_0, rerun, "re-run")
    assert len(declared) == 2
    assert _accepted(tmp_path, seed_0, ("new", "s0"))
    assert _accepted(tmp_path, seed_1, ("new", "s1"))
    assert not _accepted(tmp_path, seed_1, ("new", "s0"))  # never across seeds' settings
    assert not _accepted(tmp_path, other, ("new", "p1"))  # nor across strategies
    assert declare(tmp_path, "random", seed_0, rerun, "again") == []


def test_a_settings_change_covers_only_the_re_run_seed(tmp_path):
    seed_0 = _record(tmp_path, "random", 0, "old", "s0")
    seed_1 = _record(tmp_path, "random", 1, "old", "s1")
    renamed = {**seed_0, "code_version": "new", "settings": "s0-renamed"}
    assert len(declare(tmp_path, "random", seed_0, renamed, "re-run")) == 1
    assert _accepted(tmp_path, seed_0, ("new", "s0-renamed"))
    assert not _accepted(tmp_path, seed_1, ("new", "s1"))


def test_a_later_code_change_reaches_records_already_carried_across_a_rename(tmp_path):
    # Seed 0's records were made before a rename and carried across it by a re-run; seed 1's were
    # made after it. A later code change shown on seed 0 covers seed 1 through the carried version.
    seed_0 = _record(tmp_path, "random", 0, "older", "s0-before-rename")
    records.accept_equivalent(tmp_path, "random", ("older", "s0-before-rename"), ("mid", "s0"),
                              "re-run")
    seed_1 = _record(tmp_path, "random", 1, "mid", "s1")
    rerun = {**seed_0, "code_version": "new", "settings": "s0"}
    declared = declare(tmp_path, "random", seed_0, rerun, "re-run")
    assert len(declared) == 2
    assert _accepted(tmp_path, seed_0, ("new", "s0"))
    assert _accepted(tmp_path, seed_1, ("new", "s1"))
