"""The profiles (conf/<env>) as `kedro run --env <env>` resolves them: typed defaults, conf/base
restating them, each profile listing only its differences, and the values that matter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import OmegaConfigLoader

from mgral_pipelines import settings
from mgral_pipelines.config import AgentParams, ALParams, DatasetParams, EmbeddingParams, LUTParams
from mgral_pipelines.data.embedded import EmbeddedDatasetConfig
from mgral_pipelines.detector import SemiSupervisedConfig
from mgral_pipelines.mgral.agent import AgentConfig
from mgral_pipelines.mgral.lookup import LookupConfig
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams
from mgral_pipelines.pipelines.common import detector_settings
from mgral_pipelines.pipelines.lut.nodes import variant_settings

CONF = Path(__file__).resolve().parents[1] / "conf"
PROFILES = ["tiny", "small", "transfer", "voc", "coco"]
# Leaves a profile states although base has the same value, each for a reason given in its file.
RESTATED = {
    ("tiny", "lut.lr0"), ("small", "lut.lr0"),  # the variants' rate, which the profiles once lost
    ("transfer", "detector.warmup_bias_lr"),     # part of the profile's "no warm-up" schedule
}
# The lead's files, not yet trimmed to their differences.
NOT_YET_TRIMMED: set[str] = set()


def resolved(env: str) -> dict[str, Any]:
    """The parameters of `kedro run --env <env>`: the project's own loader settings."""
    return OmegaConfigLoader(str(CONF), env=env, **settings.CONFIG_LOADER_ARGS)["parameters"]


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    leaves = {}
    for key, value in tree.items():
        leaves.update(_leaves(value, f"{prefix}.{key}" if prefix else key))
    return leaves


def validated(params: dict[str, Any]) -> dict[str, Any]:
    """Every section through the typed config that the pipelines build from it."""
    al, lut = ALParams(**params["al"]), LUTParams(**params["lut"])
    agent = AgentParams(**params["agent"])
    dataset = DatasetParams(**params["dataset"])
    detector, _ = detector_settings(params["detector"])
    variant, _ = variant_settings(params["detector"], lut, dataset.splits.initial or 0,
                                  lut.batch_size or al.budget)
    return {
        "dataset": dataset, "al": al, "embedding": EmbeddingParams(**params["embedding"]),
        "detector": detector, "lut": lut, "variant": variant,
        "semi": SemiSupervisedConfig.from_dict(lut.semi_supervised),
        "policy": AgentConfig(**{**agent.policy, "batch_size": al.budget}),
        "lookup": LookupConfig(**agent.lookup),
        "pretrain_data": EmbeddedDatasetConfig(**params["pretrain"]["dataset"]),
        "pretrain_detector": detector_settings(params["pretrain"]["detector"])[0],
        "benchmark": BenchmarkParams(**params["benchmark"]),
    }


@pytest.mark.parametrize("env", ["base", *PROFILES])
def test_every_profile_resolves_to_valid_configs(env):
    configs = validated(resolved(env))
    # Every variant trains at the LUT's rate, a tenth of the detector's (base's comment: at the
    # detector's 0.002 the variants all fell to mAP 0). tiny and small restated `lut` whole before
    # parameters merged softly, and lost it.
    assert configs["lut"].lr0 == 0.0002 and configs["variant"].lr0 == 0.0002
    assert configs["variant"].warmup_epochs == 0.0 and configs["variant"].checkpoint == "last"
    assert configs["semi"].pseudo_label_conf == 0.5 and configs["semi"].unsupervised_weight == 1.0


def test_a_profile_changes_one_nested_value_and_keeps_bases_others():
    base, tiny = resolved("base"), resolved("tiny")
    assert tiny["lut"]["semi_supervised"] == {**base["lut"]["semi_supervised"],
                                              "ramp_up_epochs": 1.0}
    assert tiny["dataset"]["embedded"] == {**base["dataset"]["embedded"],
                                           "num_images": 60, "image_size": 96}
    assert tiny["agent"]["policy"] == {**base["agent"]["policy"], "hidden_size": 16,
                                       "sequence_length": 16, "episodes": 32}


def test_the_profiles_values_that_matter():
    tiny, small = validated(resolved("tiny")), validated(resolved("small"))
    transfer = validated(resolved("transfer"))
    assert (tiny["detector"].imgsz, tiny["detector"].epochs, tiny["al"].budget) == (96, 1, 5)
    assert (tiny["lut"].num_batches, tiny["semi"].ramp_up_epochs) == (2, 1.0)
    assert tiny["pretrain_detector"].warmup_bias_lr == 0.0  # base's pretrain uses 0.1
    assert (small["detector"].epochs, small["lut"].epochs) == (6, 3)
    assert small["semi"].ramp_up_epochs == 2.0
    assert small["dataset"].embedded["num_images"] == 1250
    detector = transfer["detector"]
    assert detector.weights == "src/mgral_pipelines/assets/transfer_base_detector.pt"
    assert (detector.freeze, detector.images_per_epoch, detector.checkpoint) == (10, 384, "last")
    assert (transfer["al"].budget, transfer["lut"].num_batches) == (30, 16)
    assert transfer["dataset"].path is None
    assert transfer["pretrain_detector"].warmup_bias_lr == 0.1  # how its checkpoint was made
    for env in ("voc", "coco"):
        configs = validated(resolved(env))
        assert configs["dataset"].source == env and configs["detector"].device == "0"


def test_conf_base_restates_the_typed_defaults():
    """One source of defaults: the typed configs; conf/base writes them out (DVC reads literal
    values there), so a section of base equals its config's defaults."""
    base = resolved("base")
    assert ALParams(**base["al"]) == ALParams()
    assert EmbeddingParams(**base["embedding"]) == EmbeddingParams()
    assert LUTParams(**base["lut"]) == LUTParams(semi_supervised=base["lut"]["semi_supervised"])
    assert SemiSupervisedConfig.from_dict(base["lut"]["semi_supervised"]) == SemiSupervisedConfig()
    policy = AgentParams(**base["agent"]).policy
    assert AgentConfig(**policy, batch_size=8) == AgentConfig()
    assert LookupConfig(**base["agent"]["lookup"]) == LookupConfig()
    dataset = DatasetParams(**base["dataset"])
    assert EmbeddedDatasetConfig(**dataset.embedded) == EmbeddedDatasetConfig()
    assert dataset.model_dump(exclude={"path", "embedded"}) == DatasetParams().model_dump(
        exclude={"path", "embedded"})
    # The project's own detector: its committed checkpoint and scratch folder; the adapter's
    # DetectorConfig trains from scratch by default (as `pretrain` does).
    detector = {k: v for k, v in base["detector"].items() if k not in ("weights", "run_dir")}
    assert detector_settings({**detector, "run_dir": "x"})[0] == type(
        detector_settings({"run_dir": "x"})[0])()


@pytest.mark.parametrize("env", PROFILES)
def test_a_profile_lists_only_its_differences_from_base(env):
    base = _leaves(resolved("base"))
    for path in sorted((CONF / env).glob("parameters*.yml")):
        if path.name in NOT_YET_TRIMMED:
            continue
        for key, value in _leaves(yaml.safe_load(path.read_text())).items():
            if value == {}:  # an empty section: base's as it is
                continue
            if (env, key) in RESTATED:  # stated for its reader; it must not drift from base
                assert key not in base or base[key] == value, f"{path}: {key} drifted from base"
                continue
            assert key not in base or base[key] != value, (
                f"{path.relative_to(CONF.parent)}: {key} = {value!r} is base's value; delete it")

