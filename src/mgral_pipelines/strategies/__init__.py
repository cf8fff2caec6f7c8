"""Active-learning strategies behind one interface, looked up by the name users type.

    strategy = get_strategy("ppal", preselect_factor=8)
    selection = strategy.select(view, budget, rng)

A strategy with hyper-parameters keeps them in a frozen config dataclass at `.config` and takes
it as its only constructor argument; that is what lets `get_strategy` apply overrides.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

from mgral_pipelines.strategies.base import (
    OPTIONAL_INPUTS,
    Detection,
    PoolView,
    Selection,
    Strategy,
    check_budget,
    check_selection,
)
from mgral_pipelines.strategies.coreset import CoresetConfig, CoresetStrategy
from mgral_pipelines.strategies.detections import (
    DetectionsConfig,
    DetectionsStrategy,
    RareDetectionsStrategy,
)
from mgral_pipelines.strategies.entropy import EntropyConfig, EntropyStrategy
from mgral_pipelines.strategies.mgral import MGRALConfig, MGRALFixedRewardStrategy, MGRALStrategy
from mgral_pipelines.strategies.ppal import PPALConfig, PPALStrategy
from mgral_pipelines.strategies.random import RandomConfig, RandomStrategy

__all__ = [
    "OPTIONAL_INPUTS",
    "STRATEGIES",
    "CoresetConfig",
    "CoresetStrategy",
    "Detection",
    "DetectionsConfig",
    "DetectionsStrategy",
    "EntropyConfig",
    "EntropyStrategy",
    "MGRALConfig",
    "MGRALFixedRewardStrategy",
    "MGRALStrategy",
    "PPALConfig",
    "PPALStrategy",
    "PoolView",
    "RandomConfig",
    "RandomStrategy",
    "RareDetectionsStrategy",
    "Selection",
    "Strategy",
    "check_budget",
    "check_selection",
    "get_strategy",
    "policy_reward",
    "register_strategy",
]

STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add a default instance under its `name`; a name may be registered once."""
    if strategy.name in STRATEGIES:
        raise ValueError(f"a strategy named {strategy.name!r} is already registered")
    unknown = set(strategy.needs) - OPTIONAL_INPUTS
    if unknown:
        raise ValueError(
            f"strategy {strategy.name!r} needs {sorted(unknown)}, "
            f"but only {sorted(OPTIONAL_INPUTS)} can be requested"
        )
    STRATEGIES[strategy.name] = strategy
    return strategy


def policy_reward(name: str) -> str | None:
    """What the cycle trains strategy `name`'s policy on (`lut` for MGRAL, `rare_detections` for
    its fixed-reward ablation); None for a strategy without a policy."""
    return getattr(get_strategy(name), "policy_reward", None)


def get_strategy(name: str, **overrides: Any) -> Strategy:
    """The registered strategy `name`, rebuilt with config `overrides` when any are given."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; valid names: {', '.join(sorted(STRATEGIES))}")
    default = STRATEGIES[name]
    if not overrides:
        return default
    config = getattr(default, "config", None)
    valid = {item.name for item in fields(config)} if is_dataclass(config) else set()
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no parameter {', '.join(unknown)}; "
            f"valid parameters: {', '.join(sorted(valid)) or '(none)'}"
        )
    return type(default)(replace(config, **overrides))  # type: ignore[call-arg]


for _default in (
    RandomStrategy(), EntropyStrategy(), CoresetStrategy(), PPALStrategy(), MGRALStrategy(),
    DetectionsStrategy(), RareDetectionsStrategy(), MGRALFixedRewardStrategy(),
):
    register_strategy(_default)
