"""Validated parameters: one model per `parameters_<pipeline>.yml` top-level key.

Extra keys are forbidden, so a typo in YAML or in `--params` fails loudly instead of being ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitParams(_Strict):
    """Sizes (image counts) of the fixed splits, drawn with `seed`."""

    val: int = Field(100, ge=1, description="validation set V: rewards and model selection")
    test: int = Field(150, ge=1, description="test set T: reported AL curve only")
    initial: int = Field(100, ge=1, description="initial labelled set L_0")
    seed: int = 0


class DatasetParams(_Strict):
    """Which dataset `prepare` imports (`dataset` in parameters_prepare.yml)."""

    source: Literal["embedded", "yolo", "voc", "coco"] = "embedded"
    path: str | None = Field(None, description="data.yaml, VOCdevkit folder or COCO JSON file")
    classes: list[str] | None = Field(None, description="class names (VOC) or an order check")
    raw_dir: str = Field("data/01_raw/embedded", description="where the embedded dataset is written")
    embedded: dict[str, Any] = Field(default_factory=dict, description="EmbeddedDatasetConfig fields")
    splits: SplitParams = SplitParams()

    @model_validator(mode="after")
    def _path_for_user_data(self) -> DatasetParams:
        if self.source != "embedded" and not self.path:
            raise ValueError(f"dataset.source={self.source} needs dataset.path=<PATH>")
        return self


class ALParams(_Strict):
    """One active-learning cycle (`al` in parameters_al_cycle.yml)."""

    strategy: str = Field("random", description="random | entropy | coreset | ppal | mgral")
    budget: int = Field(100, ge=1, description="images queried per cycle (B)")
    seed: int = Field(0, description="seed of the strategy's randomness")
    from_cycle: int | None = Field(None, description="continue from this cycle (default: latest)")
    strategy_options: dict[str, Any] = Field(default_factory=dict)
