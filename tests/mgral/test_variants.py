"""LUT construction: ΔmAP bookkeeping and parallel variant training."""

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mgral_pipelines import detector as adapter
from mgral_pipelines.execution import Executor, RayParams
from mgral_pipelines.mgral import variants
from tests.ray_cluster import REPO


def test_delta_map_is_taken_against_the_reference():
    results = [{"name": "reference", "map50_95": 0.5}, {"name": "batch_0", "map50_95": 0.55},
               {"name": "batch_1", "map50_95": 0.45}]
    table = variants.delta_map_table(results, "map50_95")
    assert table["reference"]["map50_95"] == 0.5
    assert [round(e["delta_map"], 6) for e in table["entries"]] == [0.05, -0.05]


@pytest.mark.slow
def test_parallel_workers_give_the_same_variants_as_sequential(detector_dataset, tmp_path):
    data = detector_dataset
    config = adapter.DetectorConfig(imgsz=64, epochs=1, batch=8)
    base, _ = adapter.train_detector(data.records, data.annotations, data.classes,
                                     data.train_ids, data.val_ids, config, tmp_path / "base",
                                     progress=False)
    labelled, unlabelled = data.train_ids[:8], data.train_ids[8:12]
    known = {i: data.annotations[i] for i in labelled + data.val_ids}

    def jobs(folder: Path):
        return [variants.VariantJob(
            name=name, unlabelled_ids=ids, records=data.records, annotations=known,
            classes=data.classes, labelled_ids=labelled, val_ids=data.val_ids, config=config,
            semi=adapter.SemiSupervisedConfig(pseudo_label_conf=0.1), initial_weights=base,
            run_dir=str(folder / name),
        ) for name, ids in (("reference", []), ("batch_0", unlabelled))]

    one_thread = {"torch_threads": 1}
    sequential = variants.train_variants(jobs(tmp_path / "seq"), Executor(workers=1, **one_thread))
    parallel = variants.train_variants(jobs(tmp_path / "par"), Executor(workers=2, **one_thread))
    strip = [{k: v for k, v in r.items() if k != "train_time_s"} for r in sequential]
    assert [{k: v for k, v in r.items() if k != "train_time_s"} for r in parallel] == strip


DRIVER = """
import pickle, sys
from pathlib import Path
from mgral_pipelines.mgral import variants
jobs, executor = pickle.loads((Path(sys.argv[1]) / "jobs.pkl").read_bytes())
results = variants.train_variants(jobs, executor)
(Path(sys.argv[1]) / "results.pkl").write_bytes(pickle.dumps(results))
"""


def _running_variant_task(cluster) -> int | None:
    """The pid of a cluster worker that is training a LUT variant now (Ray names the process)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(b"ray::mgral.lut_variants.") and cluster.owns(int(entry.name)):
                return int(entry.name)
    return None


@pytest.mark.ray
@pytest.mark.slow
def test_variants_on_a_ray_cluster_equal_local_ones_despite_a_killed_worker(
        detector_dataset, tmp_path, ray_cluster):
    data = detector_dataset
    config = adapter.DetectorConfig(imgsz=64, epochs=1, batch=8)
    base, _ = adapter.train_detector(data.records, data.annotations, data.classes,
                                     data.train_ids, data.val_ids, config, tmp_path / "base",
                                     progress=False)
    labelled, batches = data.train_ids[:8], [data.train_ids[8:12], data.train_ids[12:16]]
    known = {i: data.annotations[i] for i in labelled + data.val_ids}
    jobs = [variants.VariantJob(
        name=name, unlabelled_ids=ids, records=data.records, annotations=known,
        classes=data.classes, labelled_ids=labelled, val_ids=data.val_ids, config=config,
        semi=adapter.SemiSupervisedConfig(pseudo_label_conf=0.1), initial_weights=base,
        run_dir=str(tmp_path / "runs" / name),
    ) for name, ids in (("reference", []), ("batch_0", batches[0]), ("batch_1", batches[1]))]
    local = variants.train_variants(jobs, Executor(workers=1, torch_threads=1))
    written_locally = sorted((tmp_path / "runs").rglob("*"))

    killed: list[int] = []

    def kill_one_variant_mid_task() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            pid = _running_variant_task(ray_cluster)
            if pid is not None:
                time.sleep(1.0)  # well into loading, predicting or training
                if _running_variant_task(ray_cluster) == pid:
                    os.kill(pid, signal.SIGKILL)  # a worker process of the test's own cluster
                    killed.append(pid)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_variant_mid_task)
    killer.start()
    executor = Executor(kind="ray", ray=RayParams(address=ray_cluster.address, num_cpus=1,
                                                  max_retries=2))
    # The Ray driver runs in the cluster's network namespace, as a subprocess.
    (tmp_path / "jobs.pkl").write_bytes(pickle.dumps((jobs, executor)))
    try:
        driver = subprocess.run(ray_cluster.command([sys.executable, "-c", DRIVER, str(tmp_path)]),
                                env=ray_cluster.env(), cwd=REPO, capture_output=True, text=True,
                                timeout=900)
    finally:
        killer.join()
    assert driver.returncode == 0, driver.stderr[-5000:]
    remote = pickle.loads((tmp_path / "results.pkl").read_bytes())
    assert killed, "no variant task was seen running on the cluster"
    # The killed variant was re-run; every variant equals the local one (same seed, 1 thread).
    strip = [{k: v for k, v in r.items() if k != "train_time_s"} for r in local]
    assert [{k: v for k, v in r.items() if k != "train_time_s"} for r in remote] == strip
    assert sorted((tmp_path / "runs").rglob("*")) == written_locally, (
        "Ray tasks must write into their own scratch folders, not the driver's run_dir")
