"""The benchmark's pictures: AL curves with 95% bands, and each strategy's paired gain over random."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: nodes only write files
import matplotlib.pyplot as plt
import pandas as pd

from mgral_pipelines.pipelines.benchmark.statistics import (
    BASELINE,
    METRIC,
    mean_interval,
    paired_differences,
)


MIN_SEEDS_FOR_BANDS = 3
"""Below this many seeds a t interval is too wide to read (12.7 standard errors at 2 seeds): the
plot shows each seed's own curve, faint, instead of a band."""


def _band(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and 95% t-interval over seeds at every n_labelled (no band for a single seed)."""
    stats = {n: mean_interval(group[column].to_numpy())
             for n, group in rows.groupby("n_labelled")}
    frame = pd.DataFrame(stats, index=["mean", "low", "high"]).T.sort_index()
    return frame.fillna({"low": frame["mean"], "high": frame["mean"]})


def _spread(axes: plt.Axes, rows: pd.DataFrame, x: str, y: str, band: pd.DataFrame,
            band_x: pd.Index, colour: str) -> None:
    """The 95% band, or with few seeds each seed's curve."""
    if rows["seed"].nunique() >= MIN_SEEDS_FOR_BANDS:
        axes.fill_between(band_x, band["low"].to_numpy(), band["high"].to_numpy(), color=colour,
                          alpha=0.2)
        return
    for _, seed in rows.groupby("seed"):
        seed = seed.sort_values("n_labelled")
        axes.plot(seed[x], seed[y], color=colour, alpha=0.35, linewidth=0.8, linestyle="--")


def plot_al_curve(curve: pd.DataFrame) -> plt.Figure:
    """Left: test mAP50-95 against labelled images, mean over seeds with its 95% interval.
    Middle (when the curve has boxes): the same against labelled boxes, each cycle at its mean box
    count over seeds, so a strategy that buys its mAP with crowded images shows it.
    Right: each strategy minus random on the same seed (paired), mean with its 95% interval; a
    band clear of zero is a difference the seeds can tell from noise at that point (uncorrected:
    the corrected verdicts are in the comparisons table)."""
    has_baseline = (curve["strategy"] == BASELINE).any()
    has_boxes = "n_boxes" in curve
    panels = 1 + has_boxes + has_baseline
    figure, axes = plt.subplots(1, panels, figsize=(6 * panels, 4.4), squeeze=False)
    left = axes[0][0]
    colours = {}
    for strategy, rows in curve.groupby("strategy", sort=False):
        band = _band(rows, METRIC)
        (line,) = left.plot(band.index, band["mean"], marker="o", label=strategy)
        colours[strategy] = line.get_color()
        _spread(left, rows, "n_labelled", METRIC, band, band.index, line.get_color())
    left.set_xlabel("labelled images")
    left.set_ylabel(f"test {METRIC}")
    left.grid(alpha=0.3)
    left.legend(title="strategy")
    if has_boxes:
        middle = axes[0][1]
        for strategy, rows in curve.groupby("strategy", sort=False):
            band = _band(rows, METRIC)
            boxes = rows.groupby("n_labelled")["n_boxes"].mean().sort_index()
            middle.plot(boxes.to_numpy(), band["mean"].to_numpy(), marker="o",
                        color=colours[strategy], label=strategy)
            _spread(middle, rows, "n_boxes", METRIC, band, boxes.to_numpy(), colours[strategy])
        middle.set_xlabel("labelled boxes (mean over seeds)")
        middle.set_ylabel(f"test {METRIC}")
        middle.grid(alpha=0.3)
    if has_baseline:
        right = axes[0][-1]
        differences = paired_differences(curve)
        for strategy, rows in differences.groupby("strategy", sort=False):
            if strategy == BASELINE:
                continue
            band = _band(rows, "difference")
            right.plot(band.index, band["mean"], marker="o", color=colours[strategy],
                       label=strategy)
            _spread(right, rows, "n_labelled", "difference", band, band.index,
                    colours[strategy])
        right.axhline(0.0, color="black", linewidth=1)
        right.set_xlabel("labelled images")
        right.set_ylabel(f"{METRIC} − random (same seed)")
        right.grid(alpha=0.3)
    seeds = curve.groupby("strategy")["seed"].nunique()
    counts = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    spread = ("95% interval" if seeds.min() >= MIN_SEEDS_FOR_BANDS
              else "each seed dashed (too few seeds for a 95% band)")
    figure.suptitle(f"AL curves: mean over {counts} seed(s), {spread}")
    figure.tight_layout()
    return figure
