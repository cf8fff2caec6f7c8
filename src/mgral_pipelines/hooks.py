"""Project hooks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mlflow
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

logger = logging.getLogger(__name__)


class PrepareOnFirstRun:
    """Runs `prepare` before any pipeline that reads its outputs when no AL state exists yet.

    This is what lets `kedro run --pipeline=al_cycle` work on a fresh clone. Once a state exists it
    does nothing, so a dataset prepared earlier (any `dataset.source`) is kept and continued.
    """

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        from mgral_pipelines.pipelines.prepare import create_pipeline as prepare_pipeline

        prepare = prepare_pipeline()
        prepared = prepare.all_outputs() | {"al_states"}
        if not pipeline.inputs() & prepared or catalog.exists("al_states"):
            return
        if {node.name for node in pipeline.nodes} & {node.name for node in prepare.nodes}:
            return  # this run prepares (prepare itself reads al_states to keep progress)

        logger.info("No AL state found: running the `prepare` pipeline first.")
        SequentialRunner().run(prepare_pipeline(), catalog)


class VersionedDatasetsAreFolders:
    """Stops a run at once when a `versioned: true` dataset's path is a plain file.

    A workspace prepared before the prepared data became Kedro-versioned has `image_index.json`
    and its siblings as files, where Kedro now keeps a folder of versions
    (`<name>.json/<timestamp>/<name>.json`). Kedro would fail on the first load with only "Did not
    find any versions"; this names every such file and the way out before any node runs.
    """

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        plain = sorted({str(path) for name in pipeline.datasets()
                        if (path := _local_versioned_path(catalog, name)) and path.is_file()})
        if plain:
            raise ValueError(
                f"{', '.join(plain)}: a plain file where a Kedro-versioned dataset keeps a folder "
                "of versions (<name>.json/<timestamp>/<name>.json); it was written before "
                "versioning. Move it away (for example `mv <file> <file>.pre-versioning`) and run "
                "`kedro run --pipeline=prepare` again: the AL states and labels are kept."
            )


def _local_versioned_path(catalog: CatalogProtocol, name: str) -> Path | None:
    if name not in catalog.keys():
        return None
    dataset = catalog.get(name)
    # kedro-datasets' file datasets keep their path and version in these attributes; a dataset
    # without them (or not versioned, or not on the local disk) has nothing to check.
    if getattr(dataset, "_version", None) is None or getattr(dataset, "_protocol", None) != "file":
        return None
    return Path(str(dataset._filepath))


class TrackImportedLabels:
    """Puts the labels people returned under DVC (`dvc add data/01_raw/annotations`) as soon as
    they are saved, when the project is a DVC repository: they are raw data nobody can recompute,
    and each later cycle can be reproduced from them. Commit the `.dvc` file it writes."""

    def __init__(self) -> None:
        self._folder: str | None = None

    @hook_impl
    def after_catalog_created(self, catalog: CatalogProtocol) -> None:
        if "received_annotations" in catalog:
            self._folder = catalog["received_annotations"]._describe()["path"]

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if dataset_name != "received_annotations" or not data or self._folder is None:
            return
        if not (Path.cwd() / ".dvc").is_dir():
            logger.info("Imported labels saved in %s (not a DVC repository: not tracked)", self._folder)
            return
        from dvc.exceptions import DvcException
        from dvc.repo import Repo  # slow to import; only needed here

        try:
            with Repo(".") as repo:
                repo.add(self._folder)
        except DvcException as error:  # the labels are safe on disk; tracking them can wait
            logger.warning("Could not `dvc add %s` (%s): run it yourself", self._folder, error)
            return
        logger.info("Imported labels tracked by DVC: %s.dvc (commit it)", self._folder)


_RUN_KINDS = {
    "detector": "detector", "pretrain": "detector", "embedding": "detector",
    "lut": "policy", "agent": "policy", "query": "query",
    "al_cycle": "al_cycle", "__default__": "al_cycle", "benchmark": "benchmark", "prepare": "data",
    "report": "report",
}


class TrackingTags:
    """Tags each MLflow run so the UI can filter detector, policy, cycle and benchmark runs.

    kedro-mlflow opens the run in its own `before_pipeline_run`; the tags are set at the first node,
    when that run is certainly active. `mgral.cycle` is set once the cycle's state is known.
    """

    def __init__(self) -> None:
        self._tags: dict[str, str] = {}

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline) -> None:
        names = run_params.get("pipeline_names") or ["__default__"]
        kinds = {_RUN_KINDS.get(name, "other") for name in names}  # e.g. detector + embedding
        self._tags = {
            "mgral.pipeline": "+".join(names),
            "mgral.run_kind": kinds.pop() if len(kinds) == 1 else "other",
            "mgral.steps": ",".join(sorted({n.name for n in pipeline.nodes} & _STEP_NODES)),
        }

    @hook_impl
    def before_node_run(self, inputs: dict[str, Any]) -> None:
        if self._tags and mlflow.active_run():
            strategy = (inputs.get("params:al") or {}).get("strategy")
            mlflow.set_tags({**self._tags, **({"mgral.strategy": strategy} if strategy else {})})
            self._tags = {}

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        if node.name == "current_state" and mlflow.active_run():
            mlflow.set_tag("mgral.cycle", str(outputs["state"]["cycle"]))


_STEP_NODES = {"train_detector", "build_lut", "train_agent", "select_query", "update_state"}
