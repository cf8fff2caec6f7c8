"""Keep a strategy's benchmark records across a change that should not alter results, or refuse.

    python benchmarks/check_record_equivalence.py --env transfer --data-set evaluation \
        --strategy random --seed 700

Re-runs one seed's curve of one strategy with this checkout's code and settings, in a scratch
folder, and compares it cycle by cycle with the committed records of the same seed: labelled
images, queried images, labelled boxes, test and validation mAPs, to the last digit. If every
number is the same, the records' version is declared equivalent to this one in the records
folder's `equivalences.json` (with the evidence), and the benchmark then resumes from all of that
version's records; if not, nothing is written, the first difference is printed, and the records
must be re-run. Run on the machine that made the records where possible: floating-point sums
differ between CPUs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
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
    parser.add_argument("--strategy", required=True)
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
    folder = records_dir / args.strategy / f"seed_{args.seed}"
    old = [json.loads(p.read_text()) for p in sorted(folder.glob("cycle_*.json"))]
    if len(old) != benchmark["cycles"] + 1:
        sys.exit(f"{folder}: {len(old)} records, a complete curve has {benchmark['cycles'] + 1}")
    with tempfile.TemporaryDirectory() as scratch:
        rerun = {**benchmark, "strategies": [args.strategy], "seeds": [args.seed],
                 "max_seeds": {}, "records_dir": str(Path(scratch) / "records"),
                 "output_dir": str(Path(scratch) / "out")}
        new = run_benchmark(image_index, oracle, rerun, params["dataset"], params["detector"],
                            params["embedding"], params["lut"], params["agent"], params["al"])
    found = [d for a, b in zip(old, new, strict=True) for d in differences(a, b)]
    if found:
        sys.exit("Not equivalent; re-run the records. First differences:\n  "
                 + "\n  ".join(found[:10]))
    old_version, new_version = records.version_of(old[0]), records.version_of(new[0])
    if old_version == new_version:
        print("Same code version and settings: nothing to declare.")
        return
    records.accept_equivalent(
        records_dir, args.strategy, old_version, new_version,
        f"seed {args.seed}, cycles 0-{len(old) - 1}: identical labelled and queried images, "
        f"boxes and mAPs when re-run at {git_commit()}")
    print(f"Equivalent: {args.strategy}'s records of {old_version} are kept for {new_version} "
          f"({records_dir / records.EQUIVALENCES})")


if __name__ == "__main__":
    main()
