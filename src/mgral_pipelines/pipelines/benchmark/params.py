"""The benchmark's parameters (`benchmark` in parameters_benchmark.yml), validated."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mgral_pipelines import execution
from mgral_pipelines.strategies import STRATEGIES, get_strategy


DataSetName = Literal["development", "evaluation"]


class DataSet(BaseModel):
    """Images and splits of one declared data set of a regime (`benchmark.data_sets.<name>`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator_seed: int = Field(description="dataset.embedded.seed the images are generated with")
    split_seeds: list[int] = Field(min_length=1, description="the seeds of its splits (V, T, L_0)")


class BenchmarkParams(BaseModel):
    """Strategies × seeds × cycles (`benchmark` in parameters_benchmark.yml).

    A seed fixes the split (val / test / initial sizes from `dataset.splits`) and seeds the
    strategy, the detector training, the LUT's candidate batches and the MGRAL policy.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategies: list[str] = Field(min_length=1, description="registered strategy names")
    seeds: list[int] | None = Field(
        None, min_length=1, description="one fixed split and run per seed; null = the split seeds "
        "of the declared `data_set`")
    data_sets: dict[DataSetName, DataSet] = Field(
        default_factory=dict, description="the regime's declared development and evaluation data: "
        "studies and tuning read development data only, the headline evaluation data only")
    data_set: DataSetName | None = Field(
        None, description="which declared data set this run reads (required once data_sets is "
        "declared)")
    max_seeds: dict[str, int] = Field(
        default_factory=dict, description="a strategy listed here runs on the first N seeds only "
        "(costly baselines that need fewer)")
    records_dir: str | None = Field(
        None, description="one small record per (strategy, seed, cycle): the resume points and "
        "what every table is computed from; null = <output_dir>/runs")
    cycles: int = Field(ge=1, description="query rounds; the curve has cycles + 1 points")
    budget: int = Field(ge=1, description="images queried per cycle (overrides al.budget)")
    output_dir: str = Field(
        "data/08_reporting/benchmark", description="its runs/ folder holds the resume points"
    )
    strategy_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-strategy config overrides, e.g. {ppal: {...}}"
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
    def _unique(cls, values: list[Any] | None) -> list[Any] | None:
        if values is not None and len(set(values)) != len(values):
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
        stray = sorted(set(self.max_seeds) - set(self.strategies))
        if stray or any(n < 1 for n in self.max_seeds.values()):
            raise ValueError(f"max_seeds needs benchmarked strategies and counts >= 1, got "
                             f"{self.max_seeds}")
        self._check_data_sets()
        return self

    def _check_data_sets(self) -> None:
        if self.data_set is None:
            if self.data_sets:
                raise ValueError(f"this regime declares data sets {sorted(self.data_sets)}: set "
                                 "benchmark.data_set to the one this run reads")
            if self.seeds is None:
                raise ValueError("benchmark.seeds is required without a declared data_set")
            return
        if self.data_set not in self.data_sets:
            raise ValueError(f"benchmark.data_set={self.data_set} is not declared in "
                             f"benchmark.data_sets ({sorted(self.data_sets)})")
        sets = list(self.data_sets.values())
        if len(sets) == 2 and (sets[0].generator_seed == sets[1].generator_seed
                               or set(sets[0].split_seeds) & set(sets[1].split_seeds)):
            raise ValueError("the development and evaluation data sets must differ in both their "
                             "generator seed and their split seeds")
        declared = self.data_sets[self.data_set].split_seeds
        outside = sorted(set(self.seeds or []) - set(declared))
        if outside:
            raise ValueError(f"seeds {outside} are not split seeds of the {self.data_set} data set "
                             f"({declared})")

    def run_seeds(self) -> list[int]:
        """The seeds this run covers: `seeds`, or the declared data set's split seeds."""
        if self.seeds is not None:
            return list(self.seeds)
        assert self.data_set is not None  # _check_data_sets requires one without seeds
        return list(self.data_sets[self.data_set].split_seeds)

    def strategies_of_seed(self, seed: int) -> list[str]:
        """The strategies run on `seed` (those in `max_seeds` only on their first N seeds)."""
        order = (self.data_sets[self.data_set].split_seeds if self.data_set is not None
                 else self.run_seeds())
        position = order.index(seed)
        return [s for s in self.strategies if position < self.max_seeds.get(s, position + 1)]

    def records_folder(self) -> Path:
        return Path(self.records_dir or Path(self.output_dir) / "runs")
