"""Project hooks."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import mlflow
import yaml
from kedro.framework.hooks import hook_impl
from kedro.io import CatalogProtocol
from kedro.pipeline import Node, Pipeline
from kedro.runner import SequentialRunner

from mgral_pipelines.annotation.server import LabelStudioDataset
from mgral_pipelines.datasets import ArchivingJSONDataset, remove_stale_temporaries

logger = logging.getLogger(__name__)
# The end-of-cycle summary: conf/logging.yml prints it plainly, beside the full log.
summary_logger = logging.getLogger("mgral_pipelines.summary")


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


class PreparedDataAreFiles:
    """Moves the prepared data of a workspace prepared when they were Kedro-versioned (a folder
    `<name>.json/<timestamp>/<name>.json` where the file now is) to the plain layout before any
    node runs: each folder goes to `<folder>/archive/<UTC time>/`, its latest version (the one
    Kedro loaded) becomes the file. Nothing else changes, so the run goes on with the same data
    (see `datasets.ArchivingJSONDataset`)."""

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict[str, Any], pipeline: Pipeline, catalog: CatalogProtocol
    ) -> None:
        for name in sorted(pipeline.datasets()):
            dataset = catalog.get(name) if name in catalog else None
            if isinstance(dataset, ArchivingJSONDataset):
                migrated = dataset.migrate_kedro_versions()
                if migrated:
                    logger.warning("Prepared data from before DVC versioned them: %s", migrated)


class TrackImportedLabels:
    """Puts the labels people returned under DVC (`dvc add data/01_raw/annotations`) as soon as
    they are saved, when the project is a DVC repository: they are raw data nobody can recompute,
    and each later cycle can be reproduced from them. Commit the `.dvc` file it writes.

    DVC writes the `.dvc` file in place, so a run killed at that moment leaves it truncated (and a
    run killed before it leaves the labels untracked). Its content is rebuilt from the folder, so
    a labelling run first repairs both: a `.dvc` file that is unreadable or does not match the
    folder is written again by `dvc add`. Temporary files an interrupted save left in the folder
    are removed first, so DVC never tracks them; a labels file that is not valid JSON is named
    and keeps the folder out of DVC until it is restored.
    """

    def __init__(self) -> None:
        self._folder: str | None = None

    @hook_impl
    def after_catalog_created(self, catalog: CatalogProtocol) -> None:
        if "received_annotations" in catalog:
            self._folder = catalog["received_annotations"]._describe()["path"]

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline) -> None:
        if self._folder is None or "received_annotations" not in pipeline.all_outputs():
            return
        folder = Path(self._folder)
        if not folder.is_dir() or not (Path.cwd() / ".dvc").is_dir():
            return
        removed = remove_stale_temporaries(folder)
        if removed:
            logger.info("Removed %d temporary files an interrupted run left in %s", len(removed),
                        folder)
        if not list(folder.glob("cycle_*.json")):
            return
        dvc_file = folder.with_name(folder.name + ".dvc")
        if dvc_file.exists() and not _readable_dvc_file(dvc_file, folder.name):
            logger.warning("%s: unreadable (an earlier run was killed while DVC wrote it); it is "
                           "written again from %s", dvc_file, folder)
            dvc_file.unlink()
        self._track(folder, only_if_changed=dvc_file.exists())

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if dataset_name != "received_annotations" or not data or self._folder is None:
            return
        if not (Path.cwd() / ".dvc").is_dir():
            logger.info("Imported labels saved in %s (not a DVC repository: not tracked)", self._folder)
            return
        self._track(Path(self._folder), only_if_changed=False)

    def _track(self, folder: Path, only_if_changed: bool) -> None:
        broken = _unreadable_labels(folder)
        if broken:
            logger.warning(
                "%s: not valid JSON, so %s is not tracked by DVC now (it would record the broken "
                "file). Restore it (`dvc checkout %s.dvc`, or the copy in %s/archive/) and run "
                "again", ", ".join(map(str, broken)), folder, folder, folder)
            return
        from dvc.exceptions import DvcException
        from dvc.repo import Repo  # slow to import; only needed here

        try:
            with Repo(".") as repo:
                if only_if_changed and not repo.status(targets=[str(folder)]):
                    return
                repo.add(str(folder))
        except DvcException as error:  # the labels are safe on disk; tracking them can wait
            logger.warning("Could not `dvc add %s` (%s): run it yourself", folder, error)
            return
        logger.info("Imported labels tracked by DVC: %s.dvc (commit it)", folder)


def _readable_dvc_file(path: Path, folder_name: str) -> bool:
    """A `.dvc` file DVC can read for the folder: YAML with an output of that path and a hash."""
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    outs = content.get("outs") if isinstance(content, dict) else None
    return (isinstance(outs, list) and len(outs) == 1 and isinstance(outs[0], dict)
            and outs[0].get("path") == folder_name and bool(outs[0].get("md5")))


def _unreadable_labels(folder: Path) -> list[Path]:
    broken = []
    for path in sorted(folder.glob("cycle_*.json")):
        try:
            json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            broken.append(path)
    return broken


class CredentialsOfTheEnvironment:
    """Tells the Label Studio dataset which credentials file the run reads (`conf/<env>/`), so a
    missing key is reported with the file the user must edit, not always conf/local/."""

    def __init__(self) -> None:
        self._file: str | None = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        loader = context.config_loader
        env = context.env or getattr(loader, "default_run_env", None) or "local"
        source = Path(loader.conf_source)
        if source.is_relative_to(context.project_path):
            source = source.relative_to(context.project_path)
        self._file = str(source / env / "credentials.yml")

    @hook_impl
    def after_catalog_created(self, catalog: CatalogProtocol) -> None:
        if self._file and "label_studio" in catalog:
            dataset = catalog.get("label_studio")
            if isinstance(dataset, LabelStudioDataset):
                dataset.credentials_file = self._file


class RunsEndWithTheirReason:
    """No MLflow run of the project stays RUNNING, and one that failed says why.

    A run that stops on an error (a batch waiting for labels, refused labels, anything else) ends
    FAILED with the message as its note (`mlflow.note.content`, shown in the UI) and the tag
    `mgral.outcome`; kedro-mlflow's own hook ends it, this one records why. A process killed
    outright cannot close its run, so each run tags its own with host and pid, and the next run
    closes any RUNNING run of a process of this host that no longer exists as KILLED.
    """

    def __init__(self) -> None:
        self._run_id: str | None = None

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._run_id = None
        self._adopt_active_run()

    @hook_impl
    def before_node_run(self) -> None:
        self._adopt_active_run()

    def _adopt_active_run(self) -> None:
        run = mlflow.active_run()
        if run is None or run.info.run_id == self._run_id:
            return
        self._run_id = run.info.run_id
        mlflow.set_tags({"mgral.host": socket.gethostname(), "mgral.pid": str(os.getpid())})
        _close_runs_of_dead_processes(run.info.experiment_id, self._run_id)

    @hook_impl
    def on_pipeline_error(self, error: Exception) -> None:
        if self._run_id is None:
            return
        from mgral_pipelines.annotation.batch import AwaitingLabels, InvalidLabelsError

        outcome = ("awaiting_labels" if isinstance(error, AwaitingLabels) else
                   "labels_refused" if isinstance(error, InvalidLabelsError) else "error")
        client = mlflow.MlflowClient()
        client.set_tag(self._run_id, "mgral.outcome", outcome)
        note = f"{type(error).__name__}: {error}"[:5000]
        client.set_tag(self._run_id, "mlflow.note.content", note)
        if client.get_run(self._run_id).info.status == "RUNNING":
            client.set_terminated(self._run_id, "FAILED")


def end_active_run(status: str, reason: str) -> None:
    """End the active MLflow run (and its parents) with `status`, the reason as its note."""
    for _ in range(8):  # a run and its parents; bounded in case a run refuses to end
        if mlflow.active_run() is None:
            return
        mlflow.set_tag("mlflow.note.content", reason)
        mlflow.end_run(status)


def _close_runs_of_dead_processes(experiment_id: str, current: str) -> None:
    client = mlflow.MlflowClient()
    host = socket.gethostname()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=200)
    for run in running:
        tags = run.data.tags
        if run.info.run_id == current or tags.get("mgral.host") != host:
            continue
        if not tags.get("mgral.pid", "").isdigit() or _alive(int(tags["mgral.pid"])):
            continue
        client.set_tag(run.info.run_id, "mlflow.note.content",
                       f"its process (pid {tags['mgral.pid']}) ended without closing the run: "
                       "killed (SIGKILL, out of memory or a crash). Closed by a later run.")
        client.set_tag(run.info.run_id, "mgral.outcome", "killed")
        client.set_terminated(run.info.run_id, "KILLED")
        logger.info("MLflow run %s of a killed process (pid %s) marked KILLED", run.info.run_id,
                    tags["mgral.pid"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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


class CycleSummary:
    """Ends a run that closes an AL cycle (its `update_state` node ran) with a few lines a person
    reads: sizes, D_t's test mAP and D_{t-1}'s, the LUT's skill and what the policy made of it, the
    query and where to look next (`pipelines.al_cycle.summary`). It keeps what this run's nodes
    returned (the states, the LUT, the policy's check against random batches, the query) and
    reads the rest from the catalog (detector reports, pool predictions, classes)."""

    def __init__(self) -> None:
        self._outputs: dict[str, Any] = {}
        self._started = 0.0
        self._run_id: str | None = None

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._outputs, self._started, self._run_id = {}, time.perf_counter(), None

    @hook_impl
    def after_node_run(self, node: Node, outputs: dict[str, Any]) -> None:
        if node.name in _SUMMARISED_NODES:
            self._outputs.update(outputs)
        if mlflow.active_run():
            self._run_id = mlflow.active_run().info.run_id

    @hook_impl
    def after_pipeline_run(self, catalog: CatalogProtocol) -> None:
        if "next_al_state" not in self._outputs or "state" not in self._outputs:
            return
        try:
            summary_logger.info("\n".join(self._summary(catalog)))
        except Exception as error:  # the cycle is saved: a report that fails must not fail it
            logger.warning("No summary of this cycle (%s: %s); its outputs are saved",
                           type(error).__name__, error)

    def _summary(self, catalog: CatalogProtocol) -> list[str]:
        from mgral_pipelines.pipelines.al_cycle import summary

        state, check = self._outputs["state"], self._outputs.get("agent_metrics") or {}
        key, t = f"cycle_{state['cycle']}", state["cycle"]
        reports = catalog.load("detector_reports")
        image_index = catalog.load("image_index")
        al = catalog.load("params:al")
        outputs = summary.CycleOutputs(
            state=state, saved=self._outputs["next_al_state"],
            reports={cycle: reports[f"cycle_{cycle}"]() for cycle in (t - 1, t)
                     if f"cycle_{cycle}" in reports},
            query_ids=self._outputs["queries"][key]["image_id"].astype(str).tolist(),
            detections=catalog.load("pool_detections")[key](),
            classes=image_index["classes"], strategy=al["strategy"],
            lut=self._outputs.get("lookup_tables", {}).get(key),
            policy_check={name: value["value"] for name, value in check.items()
                          if name.startswith("agent/") and isinstance(value, dict)} or None,
        )
        where = summary.WhereToLook(
            query_csv=_shown(Path(catalog.get("queries")._describe()["path"]) / f"{key}.csv"),
            tracking_uri=_shown_uri(mlflow.get_tracking_uri()), mlflow_run_id=self._run_id,
            reward_plot=_shown(catalog.get("agent_reward_curve")._describe()["filepath"]),
            log_file=next((_shown(handler.baseFilename) for handler in logging.getLogger().handlers
                           if isinstance(handler, logging.FileHandler)), None),
        )
        return summary.summary_lines(outputs, where, time.perf_counter() - self._started)


# The nodes whose outputs the summary keeps as they were returned: this run's, never a file left by
# an earlier run (a LUT of another strategy); the rest it reads from the catalog.
_SUMMARISED_NODES = {"current_state", "build_lut", "train_agent", "select_query", "update_state"}


def _shown_uri(uri: str) -> str:
    """A local SQLite store's URI relative to the project, as conf/base/mlflow.yml writes it."""
    scheme = "sqlite:///"
    return scheme + _shown(uri[len(scheme):]) if uri.startswith(scheme) else uri


def _shown(path: str | os.PathLike[str]) -> str:
    """A path as a person types it: relative to the project when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
