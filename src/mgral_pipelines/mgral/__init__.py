"""The MGRAL method itself: the ΔmAP look-up table (`lookup`) and the selection agent (`agent`)."""

from mgral_pipelines.mgral.agent import (
    AgentConfig,
    SelectionPolicy,
    plackett_luce_log_prob,
    sample_selection,
    score_pool,
    select_top,
    train_policy,
)
from mgral_pipelines.mgral.lookup import (
    LookupConfig,
    LookupTable,
    estimate_delta_map,
    wasserstein_distances,
)

__all__ = [
    "AgentConfig",
    "LookupConfig",
    "LookupTable",
    "SelectionPolicy",
    "estimate_delta_map",
    "plackett_luce_log_prob",
    "sample_selection",
    "score_pool",
    "select_top",
    "train_policy",
    "wasserstein_distances",
]
