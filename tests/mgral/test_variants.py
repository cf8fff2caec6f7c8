"""LUT construction: ΔmAP bookkeeping and parallel variant training."""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mgral_pipelines import detector as adapter
from mgral_pipelines.execution import Executor
from mgral_pipelines.mgral import variants


BASE_DETECTOR = Path(__file__).resolve().parents[2] / "src/mgral_pipelines/assets/base_detector.pt"


def test_delta_map_is_taken_against_the_reference():
    results = [{"name": "reference", "map50_95": 0.5}, {"name": "batch_0", "map50_95": 0.55},
               {"name": "batch_1", "map50_95": 0.45}]
    table = variants.delta_map_table(results, "map50_95")
    assert table["reference"]["map50_95"] == 0.5
    assert [round(e["delta_map"], 6) for e in table["entries"]] == [0.05, -0.05]


@pytest.fixture(scope="module")
def variant_setup(detector_dataset, tmp_path_factory) -> SimpleNamespace:
    """`.job(name, unlabelled_ids, run_dir)`: a variant of one base detector (trained once for the
    module) on 8 labelled images; `.unlabelled`: a batch of 4 other images."""
    data = detector_dataset
    # From the committed base detector, and the variants at the shipped LUT's rate: a detector
    # trained from scratch for one epoch scores 0 and so does every variant of it.
    config = adapter.DetectorConfig(imgsz=64, epochs=1, batch=8, weights=str(BASE_DETECTOR))
    base, _ = adapter.train_detector(data.records, data.annotations, data.classes,
                                     data.train_ids, data.val_ids, config,
                                     tmp_path_factory.mktemp("base"), progress=False)
    config = dataclasses.replace(config, lr0=0.0002, warmup_epochs=0.0)  # conf/base lut.lr0
    labelled = data.train_ids[:8]
    known = {i: data.annotations[i] for i in labelled + data.val_ids}

    def make(name: str, ids: list[str], run_dir: Path) -> variants.VariantJob:
        return variants.VariantJob(
            name=name, unlabelled_ids=ids, records=data.records, annotations=known,
            classes=data.classes, labelled_ids=labelled, val_ids=data.val_ids, config=config,
            semi=adapter.SemiSupervisedConfig(pseudo_label_conf=0.1), initial_weights=base,
            run_dir=str(run_dir / name))

    return SimpleNamespace(job=make, unlabelled=data.train_ids[8:12])


@pytest.mark.slow
def test_parallel_workers_give_the_same_variants_as_sequential(variant_setup, tmp_path):
    def jobs(folder: Path):
        return [variant_setup.job(name, ids, folder)
                for name, ids in (("reference", []), ("batch_0", variant_setup.unlabelled))]

    one_thread = {"torch_threads": 1}
    sequential = variants.train_variants(jobs(tmp_path / "seq"), Executor(workers=1, **one_thread))
    parallel = variants.train_variants(jobs(tmp_path / "par"), Executor(workers=2, **one_thread))
    strip = [{k: v for k, v in r.items() if k != "train_time_s"} for r in sequential]
    # A variant that scores differently from the reference, or the comparison proves nothing.
    assert sequential[0]["map50_95"] != sequential[1]["map50_95"], sequential
    assert [{k: v for k, v in r.items() if k != "train_time_s"} for r in parallel] == strip


@pytest.mark.slow
def test_a_failed_build_keeps_its_finished_variants_for_the_next(variant_setup, tmp_path):
    make_job, unlabelled, runs = variant_setup.job, variant_setup.unlabelled, tmp_path / "runs"
    finished = tmp_path / "finished"
    good = [make_job("reference", [], runs), make_job("batch_0", unlabelled, runs)]
    with pytest.raises(Exception, match="no-such-image"):  # a variant that fails for good
        variants.train_variants([*good, make_job("batch_1", ["no-such-image"], runs)], Executor(),
                                finished_dir=finished)
    kept = {json.loads(p.read_text())["name"]: json.loads(p.read_text())
            for p in finished.glob("*.json")}
    assert sorted(kept) == ["batch_0", "reference"]

    # The next build trains only the variant that changed: the kept ones come back as they were
    # (their training times too, which a new training would not repeat to the microsecond).
    results = variants.train_variants([*good, make_job("batch_1", unlabelled[:2], runs)],
                                      Executor(), finished_dir=finished)
    assert results[:2] == [kept["reference"], kept["batch_0"]]
    assert results[2]["name"] == "batch_1" and results[2]["image_ids"] == unlabelled[:2]
    assert not finished.exists()  # a complete build leaves nothing to be reused by mistake
