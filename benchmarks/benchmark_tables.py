"""Every table and figure of a strategy benchmark, recomputed from its committed records alone.

    python benchmarks/benchmark_tables.py benchmarks/records/transfer/evaluation \
        --out docs/results/transfer_evaluation_benchmark

Writes, from the complete curves in the records folder (seeds still running are left out):
  al_curve.csv     strategy, seed, cycle, labelled images and boxes, test mAP50-95 and mAP50
  comparisons.csv  the declared comparisons (every strategy against random, MGRAL against every
                   other), per image and per box: paired AUC difference over seeds, 95% and
                   Holm/Bonferroni-corrected intervals, raw and Holm-adjusted p, sign test,
                   per-seed signs, verdict
  summary.csv      one row per strategy: AUC, labels to reach random's final mAP, boxes, empty
                   frames, queried classes, wall time, the corrected verdicts against random
  versions.csv     which code version and settings made each strategy's records, on which seeds
  al_curve.png     the curves per image and per box, and the paired differences
  tables.md        the comparisons and the summary as Markdown, for the docs
  headline.md      MGRAL against every other strategy in one table, as the README shows it
                   (only when the records hold MGRAL and random); tests/test_results_docs.py
                   checks that the README and the study's README quote it verbatim
  mgral_queries.md MGRAL's every query beside its LUT's skill (leave-one-out ρ, fitted slope) and
                   random's query of the same seed and cycle: boxes and object-free frames

Given an `al_curve.csv` instead of a records folder (a benchmark made before records existed), it
writes the comparisons per image only (such a curve has no boxes) and no versions.

A development trial of a changed MGRAL runs MGRAL alone into its own records folder; its tables
pair it with the baseline's other strategies, and with the baseline's MGRAL as `mgral_before`:

    python benchmarks/benchmark_tables.py benchmarks/records/transfer/development \
        --mgral-from benchmarks/records/transfer/development_trials/<trial> --out <folder>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from mgral_pipelines.pipelines.benchmark.comparisons import compare
from mgral_pipelines.pipelines.benchmark.nodes import al_curve, plot_al_curve, summarise
from mgral_pipelines.pipelines.benchmark.tables import (
    check_versions,
    complete_curves,
    read_records,
)


def markdown(comparisons: pd.DataFrame, summary: pd.DataFrame) -> str:
    lines = ["| axis | comparison | seeds | mean AUC difference | 95% interval | corrected "
             "interval | p | p (Holm) | seeds better | verdict |", "|---" * 10 + "|"]
    for row in comparisons.to_dict("records"):
        axis = "images" if row["axis"] == "images" else f"boxes {row['box_range']}"
        lines.append(
            f"| {axis} | {row['strategy']} − {row['against']} | {row['seeds']} | "
            f"{row['auc_gain_mean']:+.4f} | {row['ci95_low']:+.4f} to {row['ci95_high']:+.4f} | "
            f"{row['corrected_ci_low']:+.4f} to {row['corrected_ci_high']:+.4f} | "
            f"{row['p_value']:.3f} | {row['p_holm']:.3f} | {row['seeds_better']} | "
            f"{row['verdict']} |")
    lines += ["", "| strategy | seeds | AUC mAP50-95 | final mAP50-95 | final boxes | boxes per "
              "queried image | empty frames | worst query's empty share | class entropy | "
              "vs random per image | per box |", "|---" * 11 + "|"]
    for row in summary.to_dict("records"):
        lines.append(
            f"| {row['strategy']} | {row['seeds']} | {row['auc_map50_95_mean']:.4f} | "
            f"{row['final_map50_95_mean']:.4f} | {row['final_boxes_mean']:.0f} | "
            f"{row['queried_boxes_per_image']:.2f} | {row['empty_frame_share']:.0%} | "
            f"{row['worst_query_empty_share']:.0%} | {row['queried_class_entropy_nats']:.2f} | "
            f"{row['verdict_per_image']} | {row['verdict_per_box']} |")
    return "\n".join(lines) + "\n"


def headline(comparisons: pd.DataFrame, summary: pd.DataFrame) -> str:
    """MGRAL − every other strategy, per image and per box, with per-seed signs: best AUC first,
    MGRAL last."""
    rows = summary.set_index("strategy")

    def mgral_minus(axis: str, other: str) -> str:
        (row,) = comparisons[(comparisons["axis"] == axis) & (comparisons["strategy"] == "mgral")
                             & (comparisons["against"] == other)].to_dict("records")
        return f"{row['auc_gain_mean']:+.3f} ({row['seeds_better']})"

    lines = ["| strategy | seeds | AUC mAP50-95 | MGRAL − it, per image (seeds MGRAL better) | "
             "per box | worst query's empty frames |", "|---" * 6 + "|"]
    others = rows.drop(index="mgral").sort_values("auc_map50_95_mean", ascending=False)
    for name, row in others.iterrows():
        lines.append(f"| {name} | {row['seeds']} | {row['auc_map50_95_mean']:.3f} | "
                     f"{mgral_minus('images', name)} | {mgral_minus('boxes', name)} | "
                     f"{row['worst_query_empty_share']:.0%} |")
    mgral = rows.loc["mgral"]
    lines.append(f"| **mgral** | {mgral['seeds']} | **{mgral['auc_map50_95_mean']:.3f}** | "
                 f"— | — | **{mgral['worst_query_empty_share']:.0%}** |")
    return "\n".join(lines) + "\n"


def mgral_queries(results: list[dict]) -> str:
    """One row per MGRAL query: what its LUT could tell, and what the query bought, beside
    random's query of the same seed and cycle."""
    queried = {(r["strategy"], r["seed"], r["cycle"]): r for r in results if r["query"]}
    worst_random: dict[int, int] = {}
    for (strategy, seed, _), record in queried.items():
        if strategy == "random":
            worst_random[seed] = max(worst_random.get(seed, 0), record["query"]["empty_images"])
    lines = ["| seed | cycle | LUT leave-one-out ρ | fitted slope | MGRAL boxes | "
             "MGRAL empty frames | random boxes | random empty frames | "
             "worse than random's worst of the seed |",
             "|---" * 9 + "|"]
    keys = sorted(key for key in queried if key[0] == "mgral")
    worse = 0
    for _, seed, cycle in keys:
        record = queried["mgral", seed, cycle]
        query, diagnostics = record["query"], record["diagnostics"]
        random = queried.get(("random", seed, cycle))
        beyond = seed in worst_random and query["empty_images"] > worst_random[seed]
        worse += beyond
        random_cells = (f"{random['query']['boxes']} | {random['query']['empty_images']} of "
                        f"{len(random['query']['image_ids'])}" if random else "— | —")
        lines.append(
            f"| {seed} | {cycle} | {diagnostics.get('lut/loo_spearman', float('nan')):+.2f} | "
            f"{diagnostics.get('lut/trend_slope', float('nan')):+.4f} | {query['boxes']} | "
            f"{query['empty_images']} of {len(query['image_ids'])} | {random_cells} | "
            f"{'yes' if beyond else 'no'} |")
    lines += ["", f"{worse} of {len(keys)} MGRAL queries held more object-free frames than the "
              "worst random query of their seed."]
    return "\n".join(lines) + "\n"


PREVIOUS_MGRAL = "mgral_before"


def with_trial(records: list[dict], trial: list[dict]) -> list[dict]:
    """The baseline's records with MGRAL's taken from a trial; the baseline's own MGRAL stays, as
    `mgral_before`, so the change is paired against what it changed."""
    if {r["strategy"] for r in trial} != {"mgral"}:
        raise SystemExit("--mgral-from: a trial folder holds MGRAL's records only")
    renamed = [{**r, "strategy": PREVIOUS_MGRAL} if r["strategy"] == "mgral" else r
               for r in records]
    return renamed + trial


def write_tables(records_or_curve: Path, out: Path, mgral_from: Path | None = None) -> str:
    """Every table and the plot into `out`; returns the Markdown tables."""
    out.mkdir(parents=True, exist_ok=True)
    if records_or_curve.suffix == ".csv":
        curve, results = pd.read_csv(records_or_curve), []
        comparisons = compare(curve, ("images", "boxes") if "n_boxes" in curve else ("images",))
    else:
        records = read_records(records_or_curve)
        versions = check_versions(records, records_or_curve)
        if mgral_from is not None:
            trial = read_records(mgral_from)
            versions["strategy"] = versions["strategy"].replace("mgral", PREVIOUS_MGRAL)
            versions = pd.concat([versions, check_versions(trial, mgral_from)])
            records = with_trial(records, trial)
        versions.to_csv(out / "versions.csv", index=False)
        results = complete_curves(records)
        if not results:
            raise SystemExit(f"{records_or_curve}: no complete curve yet")
        curve = al_curve(results)
        curve.to_csv(out / "al_curve.csv", index=False)
        comparisons = compare(curve)
    summary = summarise(curve, results, comparisons)
    comparisons.to_csv(out / "comparisons.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    figure = plot_al_curve(curve)
    figure.savefig(out / "al_curve.png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    tables = markdown(comparisons, summary)
    (out / "tables.md").write_text(tables)
    if {"mgral", "random"} <= set(summary["strategy"]) and "boxes" in set(comparisons["axis"]):
        (out / "headline.md").write_text(headline(comparisons, summary))
    if any(r["strategy"] == "mgral" and r["query"] for r in results):
        (out / "mgral_queries.md").write_text(mgral_queries(results))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path,
                        help="a benchmark's records folder (or an older al_curve.csv)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the tables")
    parser.add_argument("--mgral-from", type=Path, default=None,
                        help="a development trial's records folder: MGRAL's curves come from it, "
                             "the records folder's own MGRAL is kept as mgral_before")
    args = parser.parse_args()
    print(write_tables(args.records, args.out, args.mgral_from))


if __name__ == "__main__":
    main()
