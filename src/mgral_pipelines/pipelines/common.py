"""Nodes and helpers shared by several pipelines (each pipeline also runs alone)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.pipeline import Node

from mgral_pipelines import al_state
from mgral_pipelines.config import ALParams
from mgral_pipelines.detector import DetectorConfig


def current_state(states: dict[int, dict[str, Any]], al: dict[str, Any]) -> dict[str, Any]:
    """The AL state this run works on: the latest cycle unless `al.from_cycle` is set."""
    return al_state.choose_state(states, ALParams(**al).from_cycle)


# One node object, shared: Kedro merges identical nodes when pipelines are added together.
current_state_node = Node(current_state, ["al_states", "params:al"], "state", name="current_state")


def detector_settings(detector: dict[str, Any]) -> tuple[DetectorConfig, Path]:
    """The adapter's config and the scratch folder ultralytics trains in."""
    params = dict(detector)
    run_dir = Path(params.pop("run_dir"))
    return DetectorConfig.from_dict(params), run_dir


def cycle_key(state: dict[str, Any]) -> str:
    return f"cycle_{state['cycle']}"


def for_cycle(partitions: dict[str, Callable[[], Any]], state: dict[str, Any], producer: str) -> Any:
    """Load the current cycle's partition, or say which pipeline must run first."""
    key = cycle_key(state)
    if key not in partitions:
        raise ValueError(
            f"no {key} output found (have {sorted(partitions)}): "
            f"run `kedro run --pipeline={producer}` for this cycle first"
        )
    return partitions[key]()
