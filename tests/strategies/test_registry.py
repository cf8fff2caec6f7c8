from __future__ import annotations

import numpy as np
import pytest

from mgral_pipelines.strategies import (
    OPTIONAL_INPUTS,
    STRATEGIES,
    EntropyStrategy,
    PoolView,
    Selection,
    Strategy,
    check_budget,
    check_selection,
    get_strategy,
    register_strategy,
)
from mgral_pipelines.mgral.agent import AgentConfig, SelectionPolicy, policy_to_bytes
from tests.strategies import detection


def untrained_policy(dim: int) -> bytes:
    config = AgentConfig(hidden_size=8, sequence_length=4, detector_features=False)
    return policy_to_bytes(SelectionPolicy(dim, hidden_size=8), config)


def full_view(pool_size: int = 8) -> PoolView:
    """A view with every optional input, so any strategy can run on it."""
    rng = np.random.default_rng(0)
    pool = [f"p{i}" for i in range(pool_size)]
    labelled = ["l0", "l1"]
    return PoolView(
        pool_ids=pool,
        labelled_ids=labelled,
        num_classes=3,
        embeddings={image_id: rng.normal(size=4) for image_id in pool + labelled},
        detections={
            image_id: [detection(rng.dirichlet(np.ones(3)).tolist()) for _ in range(i % 3)]
            for i, image_id in enumerate(pool)
        },
        labelled_class_counts=np.array([5.0, 1.0, 0.0]),
        policy=untrained_policy(4),
    )


def test_registry_holds_the_baselines_under_the_shared_interface() -> None:
    assert set(STRATEGIES) == {"random", "entropy", "coreset", "ppal", "mgral", "detections",
                               "rare_detections", "mgral_fixed_reward"}
    for name, strategy in STRATEGIES.items():
        assert isinstance(strategy, Strategy)
        assert strategy.name == name
        assert strategy.needs <= OPTIONAL_INPUTS


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_a_valid_reproducible_selection(name: str) -> None:
    view = full_view()
    first = get_strategy(name).select(view, 3, np.random.default_rng(5))
    check_selection(first, view, 3)
    assert first == get_strategy(name).select(view, 3, np.random.default_rng(5))


def test_unknown_strategy_lists_the_valid_names() -> None:
    valid = "coreset, detections, entropy, mgral, mgral_fixed_reward, ppal, random, rare_detections"
    with pytest.raises(ValueError, match=f"unknown strategy 'mgrl'.*{valid}"):
        get_strategy("mgrl")


def test_overrides_build_a_new_instance_and_leave_the_default() -> None:
    strategy = get_strategy("entropy", aggregation="sum")
    assert isinstance(strategy, EntropyStrategy) and strategy.config.aggregation == "sum"
    assert STRATEGIES["entropy"].config.aggregation == "max"  # type: ignore[attr-defined]


def test_unknown_override_names_it_and_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="no parameter preselect.*preselect_factor"):
        get_strategy("ppal", preselect=3)
    with pytest.raises(ValueError, match="no parameter seed.*[(]none[)]"):
        get_strategy("random", seed=3)


def test_a_name_registers_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(EntropyStrategy())


def test_budget_above_the_pool_names_both_numbers() -> None:
    with pytest.raises(ValueError, match="budget 9 exceeds the pool size 8"):
        get_strategy("random").select(full_view(8), 9, np.random.default_rng(0))


@pytest.mark.parametrize("budget", [0, -2, 2.0, True])
def test_non_positive_or_non_integer_budget_is_rejected(budget: object) -> None:
    with pytest.raises(ValueError, match="budget"):
        check_budget(full_view(), budget)  # type: ignore[arg-type]


def test_missing_detections_names_the_field_and_the_strategy() -> None:
    view = PoolView(pool_ids=["a", "b"], labelled_ids=[], num_classes=2)
    with pytest.raises(ValueError, match="'entropy' needs PoolView.detections"):
        get_strategy("entropy").select(view, 1, np.random.default_rng(0))


def test_detections_missing_a_pool_image_names_it() -> None:
    view = PoolView(pool_ids=["a", "b"], labelled_ids=[], num_classes=2, detections={"a": []})
    with pytest.raises(ValueError, match="detections lacks 1 pool images, e.g. 'b'"):
        get_strategy("entropy").select(view, 1, np.random.default_rng(0))


def test_pool_view_rejects_inconsistent_ids() -> None:
    with pytest.raises(ValueError, match="both in the pool and labelled"):
        PoolView(pool_ids=["a"], labelled_ids=["a"], num_classes=1)
    with pytest.raises(ValueError, match="duplicate"):
        PoolView(pool_ids=["a", "a"], labelled_ids=[], num_classes=1)
    with pytest.raises(ValueError, match="labelled_class_counts"):
        PoolView(pool_ids=["a"], labelled_ids=[], num_classes=2, labelled_class_counts=np.zeros(3))


def test_selection_rejects_repeats_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="twice"):
        Selection(image_ids=["a", "a"], scores=[1.0, 0.5])
    with pytest.raises(ValueError, match="scores"):
        Selection(image_ids=["a"], scores=[])
    with pytest.raises(ValueError, match="not in the pool"):
        check_selection(Selection(image_ids=["zz"], scores=[1.0]), full_view(), 1)
