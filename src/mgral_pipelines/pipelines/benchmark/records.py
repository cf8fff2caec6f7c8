"""The benchmark's records: one small JSON file per (strategy, seed, cycle), kept forever.

    <records_dir>/<strategy>/seed_<s>/cycle_<t>.json

A record holds what every table is computed from (labelled ids, labelled boxes, test and
validation mAPs, the query with its boxes and empty frames, timings) and what it depends on: the
`settings` digest (dataset, split, detector, strategy parameters) and the `code_version`
(`provenance.code_version`). Records are committed for the declared data sets, so seeds accumulate
across runs and machines: the benchmark resumes from them, replaying each saved query with the
oracle's labels, and `summarise` recomputes every table from them alone.

A record made by other code or settings is refused, unless `equivalences.json` in the records
folder says that the other version was re-run on one seed with the current one and gave the same
numbers (`benchmarks/check_record_equivalence.py` does that and writes the entry).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mgral_pipelines import al_state
from mgral_pipelines.data.manifest import select_annotations
from mgral_pipelines.datasets import write_atomically

EQUIVALENCES = "equivalences.json"


def record_path(folder: Path, cycle: int) -> Path:
    return folder / f"cycle_{cycle}.json"


def labelled_boxes(state: dict[str, Any]) -> int:
    """Boxes in the labels the learner owns: what people were paid for, per box."""
    return sum(len(state["labels"][image_id]) for image_id in state["labelled_ids"])


def save_record(folder: Path, record: dict[str, Any]) -> None:
    stamped = {**record, "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_atomically(record_path(folder, record["cycle"]),
                     (json.dumps(stamped, indent=1) + "\n").encode())


def version_of(record: dict[str, Any]) -> tuple[str, str]:
    return record.get("code_version", "none"), record.get("settings", "none")


def accepted_versions(records_dir: Path, strategy: str, current: tuple[str, str]
                      ) -> set[tuple[str, str]]:
    """`current` and every (code_version, settings) shown equivalent to it, transitively."""
    path = records_dir / EQUIVALENCES
    entries = json.loads(path.read_text()) if path.is_file() else []
    accepted, grew = {current}, True
    while grew:
        grew = False
        for entry in entries:
            if entry["strategy"] != strategy:
                continue
            new = (entry["to"]["code_version"], entry["to"]["settings"])
            old = (entry["from"]["code_version"], entry["from"]["settings"])
            if new in accepted and old not in accepted:
                accepted.add(old)
                grew = True
    return accepted


def accept_equivalent(records_dir: Path, strategy: str, old: tuple[str, str],
                      new: tuple[str, str], evidence: str) -> None:
    """Declare records of `old` valid for `new`, after a re-run showed the same numbers."""
    path = records_dir / EQUIVALENCES
    entries = json.loads(path.read_text()) if path.is_file() else []
    entries.append({"strategy": strategy,
                    "from": {"code_version": old[0], "settings": old[1]},
                    "to": {"code_version": new[0], "settings": new[1]},
                    "evidence": evidence,
                    "date": datetime.now(UTC).isoformat(timespec="seconds")})
    write_atomically(path, (json.dumps(entries, indent=1) + "\n").encode())


def load_records(folder: Path, records_dir: Path, strategy: str, current: tuple[str, str],
                 cycles: int, rerun_command: str) -> list[dict[str, Any]]:
    """The saved cycles 0, 1, ... of one curve that this benchmark can continue from."""
    accepted = accepted_versions(records_dir, strategy, current)
    records = []
    for t in range(cycles + 1):
        path = record_path(folder, t)
        if not path.is_file():
            break
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); it was not written by a "
                             "finished cycle: delete it and run the benchmark again") from error
        if version_of(record) not in accepted:
            code, settings = version_of(record)
            raise ValueError(
                f"{path} was made by code version {code} with settings {settings}; this checkout "
                f"runs {current[0]} with {current[1]}. Records of different code or settings are "
                f"never merged. Re-run them ({rerun_command}, after moving {folder} away), or, if "
                "the change should not alter results, show it: python "
                f"benchmarks/check_record_equivalence.py --strategy {strategy} ... (re-runs one "
                "seed and accepts the records only if every number is the same)")
        if t < cycles and record["query"] is None:
            break  # the last point of a shorter benchmark: it never queried, so run it again
        records.append(record)
    return records


def replay(initial: dict[str, Any], records: list[dict[str, Any]], oracle: dict[str, Any],
           strategy: str) -> dict[str, Any]:
    """The state after the saved cycles: each saved query labelled by the oracle, in order; each
    record's labelled set is checked against the replayed one."""
    state = initial
    for record in records:
        if sorted(state["labelled_ids"]) != sorted(record["labelled_ids"]):
            raise ValueError(f"{strategy}/seed_{record['seed']} cycle {record['cycle']}: the "
                             "record's labelled images differ from those its earlier cycles "
                             "lead to; its records do not belong to this split")
        if record["query"] is None:
            break
        ids = record["query"]["image_ids"]
        state = al_state.advance(state, ids, select_annotations(oracle, ids), strategy)
    return state
