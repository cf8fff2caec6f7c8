"""Keep a strategy's benchmark records across a change that should not alter results, or refuse.

    python benchmarks/check_record_equivalence.py --env transfer --data-set evaluation \
        --strategy random ppal mgral --seed 700

Re-runs one seed's curves of the given strategies with this checkout's code and settings, in a
scratch folder (the strategies share that seed's cycle-0 detector, as in the benchmark), and
compares each cycle by cycle with the committed records of the same seed: labelled images, queried
images, labelled boxes, test and validation mAPs, to the last digit. A strategy whose numbers are
all the same gets entries in the records folder's `equivalences.json` (with the evidence); one that
differs gets none, its first differences are printed, and its records must be re-run.

What an equivalence covers:
  - the re-run seed, always: its records are resumed by this code and settings;
  - every other seed too, when only the code changed: if the records (or a version they were
    already shown equivalent to) carry this checkout's settings digest, the change altered no
    parameter, so the records of that older code on every seed are accepted for this code. A
    change of settings (a renamed or new parameter) is seed-specific: each seed needs its re-run.

Run on the machine that made the records where possible: floating-point sums differ between CPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from mgral_pipelines.pipelines.benchmark import records
from mgral_pipelines.pipelines.benchmark.provenance import git_commit
from mgral_pipelines.pipelines.benchmark.runner import run_benchmark

COMPARED = ("labelled_ids", "n_labelled", "n_boxes")


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    where = f"cycle {old['cycle']}"
    found = [f"{where}: {key} {old[key]!r} != {new[key]!r}"
             for key in COMPARED if old[key] != new[key]]
    for split in ("test", "val"):
        for metric in ("map50_95", "map50"):
            a, b = old["metrics"][split][metric], new["metrics"][split][metric]
            if a != b:
                found.append(f"{where}: {split} {metric} {a!r} != {b!r}")
    old_query = (old["query"] or {}).get("image_ids")
    new_query = (new["query"] or {}).get("image_ids")
    if old_query != new_query:
        found.append(f"{where}: queried images differ")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="the Kedro profile of the benchmark")
    parser.add_argument("--data-set", default=None, help="its declared data set, if any")
    parser.add_argument("--strategy", required=True, nargs="+", help="one or more strategies")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--project", type=Path, default=Path("."), help="the Kedro project root")
    args = parser.parse_args()
    runtime = {"benchmark": {"data_set": args.data_set}} if args.data_set else {}
    root = args.project.resolve()
    bootstrap_project(root)
    with KedroSession.create(project_path=root, env=args.env, runtime_params=runtime) as session:
        context = session.load_context()
        params, catalog = context.params, context.catalog
        image_index, oracle = catalog.load("image_index"), catalog.load("oracle_annotations")
    benchmark = params["benchmark"]
    records_dir = Path(benchmark.get("records_dir") or Path(benchmark["output_dir"]) / "runs")
    old = {strategy: _complete_curve(records_dir / strategy / f"seed_{args.seed}",
                                     benchmark["cycles"]) for strategy in args.strategy}
    with tempfile.TemporaryDirectory() as scratch:
        rerun = {**benchmark, "strategies": args.strategy, "seeds": [args.seed],
                 "max_seeds": {}, "records_dir": str(Path(scratch) / "records"),
                 "output_dir": str(Path(scratch) / "out")}
        results = run_benchmark(image_index, oracle, rerun, params["dataset"],
                                params["detector"], params["embedding"], params["lut"],
                                params["agent"], params["al"])
    # Read before the first entry is written: equivalences.json is tracked, so reading it after
    # would call this checkout changed.
    commit = git_commit()
    failed = []
    for strategy in args.strategy:
        new = [r for r in results if r["strategy"] == strategy]
        found = [d for a, b in zip(old[strategy], new, strict=True) for d in differences(a, b)]
        if found:
            failed.append(strategy)
            print(f"{strategy}: not equivalent; re-run its records. First differences:\n  "
                  + "\n  ".join(found[:10]))
            continue
        evidence = (f"seed {args.seed}, cycles 0-{len(new) - 1}: identical labelled and queried "
                    f"images, boxes and mAPs when re-run at {commit}")
        declared = declare(records_dir, strategy, old[strategy][0], new[0], evidence)
        print(f"{strategy}: equivalent; " + ("; ".join(declared) if declared else
                                             "same code and settings, nothing to declare"))
    if failed:
        sys.exit(f"Not equivalent: {' '.join(failed)}")
    print(f"Entries in {records_dir / records.EQUIVALENCES}")


def _complete_curve(folder: Path, cycles: int) -> list[dict[str, Any]]:
    curve = [json.loads(p.read_text()) for p in sorted(folder.glob("cycle_*.json"))]
    if len(curve) != cycles + 1:
        sys.exit(f"{folder}: {len(curve)} records, a complete curve has {cycles + 1}")
    return curve


Version = tuple[str, str]  # (code_version, settings)


def _links(records_dir: Path, strategy: str) -> dict[Version, set[Version]]:
    """The strategy's equivalence entries: old version -> the versions it was declared valid
    for."""
    path = records_dir / records.EQUIVALENCES
    links: dict[Version, set[Version]] = defaultdict(set)
    for entry in json.loads(path.read_text()) if path.is_file() else []:
        if entry["strategy"] == strategy:
            links[entry["from"]["code_version"], entry["from"]["settings"]].add(
                (entry["to"]["code_version"], entry["to"]["settings"]))
    return links


def shown_equivalent_from(links: dict[Version, set[Version]], version: Version) -> set[Version]:
    """`version` and every version its records were already declared valid for, transitively."""
    reached, todo = {version}, [version]
    while todo:
        for later in links[todo.pop()] - reached:
            reached.add(later)
            todo.append(later)
    return reached


def declare(records_dir: Path, strategy: str, old: dict[str, Any], new: dict[str, Any],
            evidence: str) -> list[str]:
    """Entries for the re-run seed and, for a change of code alone, for every other seed."""
    links = _links(records_dir, strategy)
    old_version, new_version = records.version_of(old), records.version_of(new)

    def accept(earlier: Version, later: Version, why: str) -> None:
        records.accept_equivalent(records_dir, strategy, earlier, later, why)
        links[earlier].add(later)

    declared = []
    if new_version not in shown_equivalent_from(links, old_version):
        accept(old_version, new_version, evidence)
        declared.append(f"seed {old['seed']}: {old_version} -> {new_version}")
    # Older code versions that ran with the settings this checkout runs: only code changed.
    same_settings = {code for code, settings in shown_equivalent_from(links, old_version)
                     if settings == new_version[1] and code != new_version[0]}
    for folder in sorted((records_dir / strategy).glob("seed_*")):
        versions = {records.version_of(json.loads(p.read_text()))
                    for p in folder.glob("cycle_*.json")}
        for version in versions:
            reached = shown_equivalent_from(links, version)
            if any(code == new_version[0] for code, _ in reached):
                continue  # already valid for this code
            for code, settings in sorted(reached):
                if code in same_settings:
                    accept((code, settings), (new_version[0], settings),
                           f"code change shown equivalent on {evidence}")
                    declared.append(f"{folder.name}: code {code} -> {new_version[0]}")
                    break
    return declared


if __name__ == "__main__":
    main()
