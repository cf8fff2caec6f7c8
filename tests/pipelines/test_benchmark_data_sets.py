"""Development and evaluation data kept apart: the benchmark's and the studies' gates."""

from __future__ import annotations

import json
import re

import pytest

from mgral_pipelines.pipelines.benchmark.data_sets import check_prepared, require_development
from mgral_pipelines.pipelines.benchmark.params import BenchmarkParams

DATA_SETS = {"development": {"generator_seed": 0, "split_seeds": [0, 1, 2]},
             "evaluation": {"generator_seed": 7, "split_seeds": [700, 701]}}
BENCHMARK = {"strategies": ["random"], "seeds": None, "cycles": 1, "budget": 2,
             "data_sets": DATA_SETS, "data_set": "development"}


def _index(tmp_path, seed):
    folder = tmp_path / f"generated_{seed}"
    folder.mkdir()
    (folder / "provenance.json").write_text(json.dumps({"config": {"seed": seed}}))
    return {"source": "embedded", "root": str(folder / "data.yaml"), "images": []}


def test_a_run_reads_only_the_images_of_its_declared_set(tmp_path):
    development, evaluation = _index(tmp_path, 0), _index(tmp_path, 7)
    check_prepared(development, BenchmarkParams(**BENCHMARK))
    check_prepared(evaluation, BenchmarkParams(**{**BENCHMARK, "data_set": "evaluation"}))
    with pytest.raises(ValueError, match=re.escape(
            "benchmark.data_set=evaluation reads images generated with seed 7, but the prepared "
            "dataset")) as error:
        check_prepared(development, BenchmarkParams(**{**BENCHMARK, "data_set": "evaluation"}))
    assert "--params=dataset.embedded.seed=7" in str(error.value)


def test_studies_refuse_evaluation_images_and_evaluation_split_seeds(tmp_path):
    development, evaluation = _index(tmp_path, 0), _index(tmp_path, 7)
    require_development(development, [0, 1], BENCHMARK, "the yardstick")
    with pytest.raises(ValueError, match=r"the yardstick reads development data only, but its "
                                         r"images are the evaluation set's \(generator seed 7\)"):
        require_development(evaluation, [0], BENCHMARK, "the yardstick")
    with pytest.raises(ValueError, match=r"split seeds \[701\] are evaluation split seeds"):
        require_development(development, [1, 701], BENCHMARK, "the yardstick")


def test_a_profile_without_declared_sets_has_nothing_to_refuse(tmp_path):
    plain = {k: v for k, v in BENCHMARK.items() if k not in ("data_sets", "data_set")}
    require_development(_index(tmp_path, 7), [700], {**plain, "seeds": [0]}, "a study")
    check_prepared({"source": "yolo"}, BenchmarkParams(**{**plain, "seeds": [0]}))


def test_the_transfer_profile_declares_disjoint_sets():
    from kedro.config import OmegaConfigLoader

    from mgral_pipelines import settings
    from tests.pipelines.conftest import REPO

    params = OmegaConfigLoader(str(REPO / "conf"), env="transfer",
                               **settings.CONFIG_LOADER_ARGS)["parameters"]["benchmark"]
    parsed = BenchmarkParams(**params)
    assert parsed.data_set == "development"
    assert parsed.data_sets["evaluation"].generator_seed != parsed.data_sets[
        "development"].generator_seed
    assert len(parsed.data_sets["evaluation"].split_seeds) >= 10
    assert params["records_dir"] == "benchmarks/records/transfer/development"
