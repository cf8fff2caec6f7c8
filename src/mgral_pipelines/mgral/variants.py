"""LUT construction: ΔmAP of semi-supervised detector variants, one per candidate batch.

For each candidate batch S_k sampled from the pool, a variant of the cycle's detector D_t is
fine-tuned on L_t (labels) plus S_k (pseudo-labels only, never oracle labels) with the loss
L_S + w(t)·L_U. A reference variant is fine-tuned on L_t alone with the same schedule and seed.
ΔmAP_k = mAP_V(variant_k) - mAP_V(reference). Variants are independent, so they run through an
`execution.Executor`: in parallel local processes, or as Ray tasks that get their images and
checkpoint through Ray's object store. Each finished variant is kept on the driver's disk until
the table is built, so a build that fails (a variant failing for good) loses none of them: the
next build with the same jobs trains only the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mgral_pipelines import detector as adapter
from mgral_pipelines import execution
from mgral_pipelines.datasets import write_atomically

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantJob:
    """Everything one worker needs to train and score one variant (plain, picklable data)."""

    name: str
    unlabelled_ids: list[str]
    records: list[dict[str, Any]]
    annotations: dict[str, Any]   # labels of L_t and V only
    classes: list[str]
    labelled_ids: list[str]
    val_ids: list[str]
    config: adapter.DetectorConfig
    semi: adapter.SemiSupervisedConfig
    initial_weights: bytes
    run_dir: str


def train_variant(job: VariantJob) -> dict[str, Any]:
    """Fine-tune one variant and return its mAP on V (the executor sets torch's threads)."""
    return _train_and_evaluate(_on_this_node(job))


def _image_ids(job: VariantJob) -> set[str]:
    """The images a variant reads: L_t, its batch and V."""
    return {*job.labelled_ids, *job.unlabelled_ids, *job.val_ids}


def _on_this_node(job: VariantJob) -> VariantJob:
    """The job with node-local image files and scratch folder (unchanged outside Ray tasks)."""
    if not execution.in_ray_task():
        return job
    ids = _image_ids(job)
    records = [{**r, "file": execution.local_file(r["file"])}
               for r in job.records if r["image_id"] in ids]
    return dataclasses.replace(job, records=records,
                               run_dir=str(execution.scratch_dir(job.run_dir)))


def _train_and_evaluate(job: VariantJob) -> dict[str, Any]:
    checkpoint, info = adapter.train_semi_supervised(
        records=job.records, annotations=job.annotations, classes=job.classes,
        labelled_ids=job.labelled_ids, unlabelled_ids=job.unlabelled_ids, val_ids=job.val_ids,
        config=job.config, run_dir=Path(job.run_dir), initial_weights=job.initial_weights,
        semi=job.semi, progress=False,
        validate=False,  # the last epoch is scored on V just below
    )
    metrics = adapter.evaluate_detector(
        checkpoint, job.records, job.annotations, job.classes, job.val_ids, job.config,
        progress=False,
    )
    return {
        "name": job.name, "image_ids": job.unlabelled_ids,
        "map50_95": metrics["map50_95"], "map50": metrics["map50"],
        "train_time_s": info["train_time_s"], "num_pseudo_boxes": info.get("num_pseudo_boxes", 0),
    }


def train_variants(jobs: list[VariantJob], executor: execution.Executor,
                   finished_dir: Path | None = None) -> list[dict[str, Any]]:
    """Train every job where `executor` says; results in job order.

    With `finished_dir`, each result is written there as it arrives and read back instead of
    training a job with the very same inputs (weights, images, labels, schedule, seed) again;
    the folder is removed once every job has its result."""
    # One digest per job (its inputs include the weights and every image record).
    kept = [_finished_file(finished_dir, job) if finished_dir else None for job in jobs]
    results = {i: json.loads(path.read_text()) for i, path in enumerate(kept)
               if path is not None and path.is_file()}
    if results:
        logger.info("%d of %d variants were finished by an earlier, interrupted build (%s); "
                    "training the other %d", len(results), len(jobs), finished_dir,
                    len(jobs) - len(results))
    todo = [i for i in range(len(jobs)) if i not in results]

    def keep(position: int, result: dict[str, Any]) -> None:
        index = todo[position]
        results[index] = result
        if kept[index] is not None:
            write_atomically(kept[index], json.dumps(result).encode())  # never half a result

    remaining = [jobs[i] for i in todo]
    files = [r["file"] for job in remaining for r in job.records if r["image_id"] in _image_ids(job)]
    execution.run_tasks(train_variant, remaining, executor, desc="lut variants", files=files,
                        on_result=keep)
    if finished_dir is not None:
        shutil.rmtree(finished_dir, ignore_errors=True)
    return [results[i] for i in range(len(jobs))]


def _finished_file(folder: Path, job: VariantJob) -> Path:
    # The job's every input except where it writes scratch files: the same digest means the
    # same training, so its result can stand in for training it again.
    digest = hashlib.sha256(pickle.dumps(dataclasses.replace(job, run_dir=""))).hexdigest()
    return folder / f"{job.name}-{digest[:20]}.json"


def delta_map_table(results: list[dict[str, Any]], map_metric: str) -> dict[str, Any]:
    """Split the reference from the candidates and attach ΔmAP_k (in `map_metric`, "map50_95" or
    "map50") to each candidate."""
    reference = next(r for r in results if r["name"] == "reference")
    entries = [{**r, "delta_map": r[map_metric] - reference[map_metric]}
               for r in results if r["name"] != "reference"]
    return {"reference": reference, "entries": entries, "map_metric": map_metric}
