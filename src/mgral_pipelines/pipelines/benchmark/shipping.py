"""Shipping a curve to a Ray task: the files it reads, and its paths on the node that runs it.

With `executor: ray` every (strategy, seed) curve is a Ray task (`execution.stream_tasks`); a node
may hold no copy of the images or the base checkpoint, and two tasks must never share ultralytics'
scratch folder. Locally nothing moves.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mgral_pipelines import execution
from mgral_pipelines.pipelines.al_cycle.cycle import Cycle
from mgral_pipelines.pipelines.benchmark.curves import Curve, SeedData


def shipped_files(image_index: dict[str, Any], detector: dict[str, Any]) -> list[str]:
    """What every task reads: the images and the base checkpoint."""
    weights = [detector["weights"]] if detector.get("weights") else []
    return [r["file"] for r in image_index["images"]] + weights


def on_this_node(curve: Curve, data: SeedData, first: Cycle) -> tuple[Curve, SeedData, Cycle]:
    """In a Ray task: node-local images and checkpoint, a task-private scratch folder, and a
    cycle-0 detector of the task's own (the same for the same seed and settings)."""
    if not execution.in_ray_task():
        return curve, data, first
    images = [{**r, "file": execution.local_file(r["file"])} for r in data.image_index["images"]]
    data = dataclasses.replace(data, image_index={**data.image_index, "images": images})

    def local(detector: dict[str, Any]) -> dict[str, Any]:
        moved = {**detector, "run_dir": str(execution.scratch_dir(detector["run_dir"]))}
        if detector.get("weights"):
            moved["weights"] = execution.local_file(detector["weights"])
        return moved

    curve = dataclasses.replace(curve, params={**curve.params,
                                               "detector": local(curve.params["detector"])})
    first = first.replaced({"image_index": data.image_index},
                           {"detector": local(first.params["detector"])})
    return curve, data, first
