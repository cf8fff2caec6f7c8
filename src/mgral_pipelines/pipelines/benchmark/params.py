"""The benchmark's parameters (`benchmark` in parameters_benchmark.yml), validated."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mgral_pipelines import execution
from mgral_pipelines.strategies import STRATEGIES, get_strategy


class BenchmarkParams(BaseModel):
    """Strategies × seeds × cycles (`benchmark` in parameters_benchmark.yml).

    A seed fixes the split (val / test / initial sizes from `dataset.splits`) and seeds the
    strategy, the detector training, the LUT's candidate batches and the MGRAL policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: list[str] = Field(min_length=1, description="registered strategy names")
    seeds: list[int] = Field(min_length=1, description="one fixed split and run per seed")
    cycles: int = Field(ge=1, description="query rounds; the curve has cycles + 1 points")
    budget: int = Field(ge=1, description="images queried per cycle (overrides al.budget)")
    output_dir: str = Field(
        "data/08_reporting/benchmark", description="its runs/ folder holds the resume points"
    )
    strategy_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy config overrides, e.g. {ppal: {...}}"
    )
    class_report_conf: float = Field(
        0.25, gt=0, lt=1, description="detections this confident count as predicted objects"
    )
    keep_scratch: bool = Field(
        False, description="keep ultralytics' folders under <detector.run_dir>/benchmark/ (local)"
    )
    executor: Literal["local", "ray"] = Field(
        "local", description="local: curves one after another here; ray: one Ray task per curve"
    )
    ray: execution.RayParams = Field(
        default_factory=execution.RayParams, description="executor: ray settings"
    )

    @field_validator("strategies", "seeds")
    @classmethod
    def _unique(cls, values: list[Any]) -> list[Any]:
        if len(set(values)) != len(values):
            raise ValueError(f"duplicates in {values}")
        return values

    @field_validator("strategies")
    @classmethod
    def _registered(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; valid: {sorted(STRATEGIES)}")
        return names

    @model_validator(mode="after")
    def _options_for_listed_strategies(self) -> BenchmarkParams:
        stray = sorted(set(self.strategy_options) - set(self.strategies))
        if stray:
            raise ValueError(f"strategy_options for strategies not benchmarked: {stray}")
        for name, options in self.strategy_options.items():
            get_strategy(name, **options)  # unknown option names fail here, before any training
        return self
