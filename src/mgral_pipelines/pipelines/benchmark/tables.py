"""Every benchmark table from the committed records alone (`benchmarks/benchmark_tables.py`).

Only complete curves count (cycles 0..C, the last one without a query): a seed still running is
left out, and a strategy compared with another only on the seeds both completed. Within a strategy
every record must come from one version of the code and settings, or from versions declared
equivalent by a re-run (`records.accepted_versions`); otherwise the tables are refused.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from mgral_pipelines.pipelines.benchmark.records import EQUIVALENCES, version_of


def read_records(records_dir: Path) -> list[dict[str, Any]]:
    """Every record under `records_dir` (<strategy>/seed_<s>/cycle_<t>.json)."""
    paths = sorted(Path(records_dir).glob("*/seed_*/cycle_*.json"))
    if not paths:
        raise ValueError(f"{records_dir}: no records (<strategy>/seed_<s>/cycle_<t>.json)")
    return [json.loads(path.read_text()) for path in paths]


def complete_curves(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of curves whose cycles run from 0 to a final point without a query, all of the
    same length per strategy (the benchmark's `cycles`)."""
    curves: dict[tuple[str, int], dict[int, dict[str, Any]]] = defaultdict(dict)
    for record in records:
        curves[(record["strategy"], record["seed"])][record["cycle"]] = record
    complete = {}
    for key, cycles in curves.items():
        last = max(cycles)
        if sorted(cycles) == list(range(last + 1)) and cycles[last]["query"] is None:
            complete[key] = [cycles[t] for t in range(last + 1)]
    lengths = {len(curve) for curve in complete.values()}
    if len(lengths) > 1:
        raise ValueError(f"curves of different lengths {sorted(lengths)} in one records folder")
    def order(key: tuple[str, int]) -> tuple[int, str, int]:  # random, MGRAL, then by name
        return ({"random": 0, "mgral": 1}.get(key[0], 2), key[0], key[1])
    return [r for key in sorted(complete, key=order) for r in complete[key]]


def check_versions(records: list[dict[str, Any]], records_dir: Path) -> pd.DataFrame:
    """One row per (strategy, code version): its seeds and commits. Refuses a strategy whose
    records come from code versions that no equivalence entry connects.

    Settings digests differ from seed to seed by design (the split and the seeds are part of
    them); the benchmark checks each seed's records against its parameters whenever it resumes
    them, which a full run does for every declared seed."""
    path = Path(records_dir) / EQUIVALENCES
    entries = json.loads(path.read_text()) if path.is_file() else []
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        code, _ = version_of(record)
        row = rows.setdefault((record["strategy"], code), {
            "strategy": record["strategy"], "code_version": code, "seeds": set(),
            "git_commits": set(), "first_recorded": None, "last_recorded": None})
        row["seeds"].add(record["seed"])
        row["git_commits"].add(record.get("git_commit", "unknown"))
        stamp = record.get("recorded_at") or ""
        row["first_recorded"] = min(row["first_recorded"] or stamp, stamp)
        row["last_recorded"] = max(row["last_recorded"] or stamp, stamp)
    for strategy in {key[0] for key in rows}:
        versions = [code for s, code in rows if s == strategy]
        if not _connected(versions, [e for e in entries if e["strategy"] == strategy]):
            raise ValueError(f"{records_dir}: the records of {strategy} come from code versions "
                             f"{versions} that no re-run showed equivalent; re-run the older ones")
    table = pd.DataFrame(list(rows.values()))
    table["seeds"] = table["seeds"].map(lambda seeds: " ".join(str(s) for s in sorted(seeds)))
    table["git_commits"] = table["git_commits"].map(lambda commits: " ".join(sorted(commits)))
    return table


def _connected(versions: list[str], entries: list[dict[str, Any]]) -> bool:
    links = defaultdict(set)
    for entry in entries:
        old, new = entry["from"]["code_version"], entry["to"]["code_version"]
        links[old].add(new)
        links[new].add(old)
    reached, todo = {versions[0]}, [versions[0]]
    while todo:
        for neighbour in links[todo.pop()] - reached:
            reached.add(neighbour)
            todo.append(neighbour)
    return set(versions) <= reached
