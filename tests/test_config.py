"""Validated parameters: a wrong combination fails with a message that says what to set."""

from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader
from pydantic import ValidationError

from mgral_pipelines import settings
from mgral_pipelines.config import DatasetParams, LUTParams


def test_dataset_path_of_the_embedded_source_is_its_generated_folder():
    assert DatasetParams(source="embedded", path="data/01_raw/x", raw_dir="data/01_raw/x/")
    assert DatasetParams(source="embedded", path=None).raw_dir == "data/01_raw/embedded"
    with pytest.raises(ValidationError, match=r"raw_dir=data/01_raw/x, but dataset.path=/data/voc"):
        DatasetParams(source="embedded", path="/data/voc", raw_dir="data/01_raw/x")


def test_user_data_needs_a_path():
    with pytest.raises(ValidationError, match="dataset.source=coco needs dataset.path=<PATH>"):
        DatasetParams(source="coco")


BENCHMARK_OUTPUTS = {"benchmark_results": "results.json", "benchmark_al_curve": "al_curve.csv",
                     "benchmark_al_curve_plot": "al_curve.png", "benchmark_summary": "summary.csv",
                     "benchmark_comparisons": "comparisons.csv"}


def _benchmark_paths(env, runtime_params=None):
    """(benchmark.output_dir, {dataset: filepath}) as `kedro run --env <env>` resolves them."""
    loader = OmegaConfigLoader(str(Path(__file__).parents[1] / "conf"), env=env,
                               runtime_params=runtime_params or {}, **settings.CONFIG_LOADER_ARGS)
    catalog = loader["catalog"]
    paths = {name: catalog[name].get("dataset", catalog[name])["filepath"]
             for name in BENCHMARK_OUTPUTS}
    return loader["parameters"]["benchmark"]["output_dir"], paths


@pytest.mark.parametrize("env, folder", [
    ("local", "benchmark"), ("tiny", "benchmark"), ("small", "benchmark"),
    ("transfer", "benchmark_transfer/development"), ("voc", "benchmark_voc"),
    ("coco", "benchmark_coco")])
def test_a_profiles_benchmark_writes_its_outputs_beside_its_resume_points(env, folder):
    output_dir, paths = _benchmark_paths(env)
    assert output_dir == f"data/08_reporting/{folder}"
    assert paths == {name: f"{output_dir}/{file}" for name, file in BENCHMARK_OUTPUTS.items()}


def test_the_transfer_evaluation_run_keeps_its_outputs_and_records_apart():
    loader = OmegaConfigLoader(str(Path(__file__).parents[1] / "conf"), env="transfer",
                               runtime_params={"benchmark": {"data_set": "evaluation"}},
                               **settings.CONFIG_LOADER_ARGS)
    output_dir, paths = _benchmark_paths("transfer", {"benchmark": {"data_set": "evaluation"}})
    assert output_dir == "data/08_reporting/benchmark_transfer/evaluation"
    assert paths == {name: f"{output_dir}/{file}" for name, file in BENCHMARK_OUTPUTS.items()}
    records = loader["parameters"]["benchmark"]["records_dir"]
    assert records == "benchmarks/records/transfer/evaluation"


def test_overriding_the_benchmark_folder_moves_every_output():
    """A custom run (`--params benchmark.output_dir=…` or a `--config` file) must not overwrite
    the headline benchmark's curve and summary."""
    output_dir, paths = _benchmark_paths(
        "transfer", {"benchmark": {"output_dir": "data/08_reporting/mine"}})
    assert output_dir == "data/08_reporting/mine"
    assert paths == {name: f"data/08_reporting/mine/{file}"
                     for name, file in BENCHMARK_OUTPUTS.items()}


@pytest.mark.parametrize("env", ["local", "tiny", "small", "transfer", "voc", "coco"])
def test_every_profile_trains_its_lut_variants_at_their_own_lower_rate(env):
    """Without `lr0` a profile's variants would train at detector.lr0, where every variant falls
    to mAP 0 and the LUT is a table of zeros (before the soft merge, a profile that restated
    `lut` lost base's value)."""
    loader = OmegaConfigLoader(str(Path(__file__).parents[1] / "conf"), env=env,
                               **settings.CONFIG_LOADER_ARGS)
    parameters = loader["parameters"]
    lut = LUTParams(**parameters["lut"])
    assert lut.lr0 is not None, f"conf/{env}: lut.lr0 is not set"
    assert lut.lr0 < parameters["detector"]["lr0"]
