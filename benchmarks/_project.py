"""The Kedro project as the benchmarks see it: its root, a profile's parameters, a cycle's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


def profile_parameters(env: str = "base") -> dict[str, Any]:
    """The parameters `kedro run --env <env>` resolves (base: the shipped defaults)."""
    loader = OmegaConfigLoader(str(ROOT / "conf"), base_env="base", default_run_env="local",
                               env=None if env == "base" else env)
    return loader["parameters"]


def agent_settings(env: str = "base", episodes: int | None = None) -> dict[str, Any]:
    """What the `agent` pipeline of profile `env` runs with: its AgentConfig (B = al.budget;
    `episodes` overrides the profile's), LookupConfig and the LUT's K (`lut_entries`)."""
    from mgral_pipelines.config import AgentParams, ALParams, LUTParams
    from mgral_pipelines.mgral.agent import AgentConfig
    from mgral_pipelines.mgral.lookup import LookupConfig

    params = profile_parameters(env)
    agent = AgentParams(**params["agent"])
    policy = {**agent.policy, "batch_size": ALParams(**params["al"]).budget}
    if episodes is not None:
        policy["episodes"] = episodes
    return {"agent": AgentConfig(**policy), "lookup": LookupConfig(**agent.lookup),
            "lut_entries": LUTParams(**params["lut"]).num_batches}


def require_development(params: dict[str, Any], image_index: dict[str, Any],
                        split_seeds: list[int], what: str) -> None:
    """Studies read development data only: exit with the reason on evaluation images or split
    seeds (the profile's `benchmark.data_sets`; docs/guide/benchmark.md)."""
    from mgral_pipelines.pipelines.benchmark.data_sets import require_development as check

    try:
        check(image_index, list(split_seeds), params.get("benchmark", {}), what)
    except ValueError as error:
        raise SystemExit(str(error)) from error


def load_cycle(env: str | None = None, cycle: int | None = None) -> dict[str, Any]:
    """The AL state of `cycle` (default: the latest) and what the catalog holds for it."""
    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=env) as session:
        context = session.load_context()
        catalog = context.catalog
        params = context.params
        states = catalog.load("al_states")
        state = states[max(states) if cycle is None else cycle]
        key = f"cycle_{state['cycle']}"

        def partition(name: str) -> Any:
            parts = catalog.load(name)
            if key not in parts:
                raise SystemExit(f"{name} has no {key}: run `kedro run --pipeline=...` for it first")
            return parts[key]()

        image_index = catalog.load("image_index")
        require_development(params, image_index, [params["dataset"]["splits"]["seed"]],
                            "this measurement")
        return {
            "state": state, "params": params, "catalog": catalog, "partition": partition,
            "image_index": image_index, "eval_labels": catalog.load("eval_labels"),
        }
