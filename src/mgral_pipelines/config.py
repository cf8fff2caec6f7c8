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

    strategy: str = Field("mgral", description="random | entropy | coreset | ppal | mgral")
    budget: int = Field(100, ge=1, description="images queried per cycle (B)")
    seed: int = Field(0, description="seed of the strategy's randomness")
    from_cycle: int | None = Field(None, description="continue from this cycle (default: latest)")
    strategy_options: dict[str, Any] = Field(default_factory=dict)
    pool_detection_conf: float = Field(
        0.05, gt=0, lt=1, description="confidence threshold of the pool predictions strategies see"
    )


class EmbeddingParams(_Strict):
    """Image embeddings of the cycle's detector (`embedding` in parameters_embedding.yml)."""

    batch_size: int = Field(32, ge=1, description="images per forward pass")
    pca_components: int | None = Field(
        32, ge=1, description="PCA dimension fitted per cycle on pool + labelled; null = raw features"
    )


class LUTParams(_Strict):
    """LUT of semi-supervised detector variants (`lut` in parameters_lut.yml)."""

    num_batches: int = Field(30, ge=1, description="K candidate batches (one variant each)")
    batch_size: int | None = Field(
        None, ge=1, description="images per candidate batch; null = the query budget al.budget")
    epochs: int = Field(1, ge=1, description="fine-tuning epochs of every variant and the reference")
    images_per_epoch: int | None = Field(
        128, ge=1, description="images per variant epoch (detector.images_per_epoch for the "
        "variants): a fixed, small number of steps, the same for the reference and every variant")
    stratified_share: float = Field(
        0.75, ge=0, le=1, description="share of candidate batches that over-represent a stratum "
        "of the pool (mgral/candidates.py); the rest are uniform")
    clusters: int = Field(6, ge=1, description="k-means clusters of the embeddings used as strata")
    metric: Literal["map50_95", "map50"] = Field("map50_95", description="mAP on V used for ΔmAP")
    seed: int = Field(0, description="seeds the candidate batches (with the cycle number)")
    workers: int = Field(1, ge=1, description="> 1 trains variants in parallel processes")
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker")
    semi_supervised: dict[str, Any] = Field(
        default_factory=dict, description="SemiSupervisedConfig fields (detector/config.py)"
    )


class AgentParams(_Strict):
    """The MGRAL policy and its lookup reward (`agent` in parameters_agent.yml).

    `policy` holds AgentConfig fields (mgral/agent.py) except `batch_size`, which is always the
    LUT's batch size so rewards compare like with like; `lookup` holds LookupConfig fields.
    """

    policy: dict[str, Any] = Field(default_factory=dict)
    lookup: dict[str, Any] = Field(default_factory=dict)
