"""The ends of one active-learning cycle: labels received at the start, the query annotated and the
state updated at the end. With `al.annotator=oracle` the oracle labels the query at once; with
people (`label_studio`, `files`) the state records the batch as awaiting and the next run takes
their labels back (see `annotation.exchange`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from kedro.io import DatasetError

from mgral_pipelines import al_state
from mgral_pipelines.annotation import BatchImages, receive, send_to_label_studio
from mgral_pipelines.annotation.exchange import batch_prelabels, image_url
from mgral_pipelines.annotation.label_studio import label_config
from mgral_pipelines.annotation.package import build_package
from mgral_pipelines.annotation.server import LabelStudioServer
from mgral_pipelines.config import ALParams
from mgral_pipelines.data.manifest import select_annotations
from mgral_pipelines.pipelines.common import cycle_key, for_cycle

logger = logging.getLogger(__name__)


def receive_labels(
    states: dict[int, dict[str, Any]], image_index: dict[str, Any], label_studio: LabelStudioServer,
    pool_detections: dict[str, Any], packages: dict[str, str], saved_labels: dict[str, Any],
    al: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """The state this cycle starts from: the chosen one, or (when its batch awaits labels) the
    next one built from people's labels. Returns the imported labels as COCO, the state to save
    (saved in this order, so a state never exists without its labels file), the state again for
    the next node, and the parameters this run ignores (recorded with the cycle's batch). Labels
    equal to the cycle's saved ones (a rebuild from that file) are not saved again, so the file
    keeps where they first came from; a saved file that is unreadable (a crash of an earlier
    version while writing it) or not MGRAL's is replaced, after the dataset archives it."""
    params = ALParams(**al)
    state = al_state.choose_state(states, params.from_cycle)
    if "awaiting" not in state:
        return {}, state, state, _ignored_parameters(state, params)
    key = cycle_key(state)
    detections = pool_detections[key]() if key in pool_detections else {}
    following, coco = receive(state, image_index, params, label_studio, detections, packages.get(key))
    ignored = []
    if params.annotator == "label_studio" and params.files.labels is not None:
        ignored = [f"al.files.labels={params.files.labels}"]
        logger.warning("Cycle %d: al.files.labels=%s is ignored: the labels come from Label "
                       "Studio (al.annotator=label_studio)", state["cycle"], params.files.labels)
    saved = _saved_labels(saved_labels, key, state["cycle"])
    if saved is not None and _same_labels(saved, coco):
        logger.info("Cycle %d: the labels equal the saved ones; their file stays as it is",
                    state["cycle"])
        return {}, following, following, ignored
    return {key: coco}, following, following, ignored


def _ignored_parameters(state: dict[str, Any], params: ALParams) -> list[str]:
    """Parameters about returned labels, given to a run whose cycle has no batch awaiting them."""
    given = {"al.files.labels": params.files.labels, "al.accept_partial": params.accept_partial}
    ignored = [f"{name}={value}" for name, value in given.items() if value]
    if ignored:
        logger.warning("Cycle %d has no batch awaiting labels, so %s %s ignored (the cycle "
                       "resumes from its saved state)", state["cycle"], " and ".join(ignored),
                       "is" if len(ignored) == 1 else "are")
    return ignored


def _saved_labels(saved_labels: dict[str, Any], key: str, cycle: int) -> dict[str, Any] | None:
    """The labels file saved for this cycle, or None when there is none or it is not usable."""
    if key not in saved_labels:
        return None
    loader = saved_labels[key]
    where = getattr(getattr(loader, "__self__", None), "_filepath", f"{key}.json")
    try:
        saved = loader()
    except DatasetError as error:
        cause = error.__cause__ or error
        logger.warning("%s: the saved labels of cycle %d are unreadable (%s: an earlier run was "
                       "killed while writing them, or the file was edited). They are rebuilt from "
                       "the returned labels now; the unreadable file is kept in the archive/ "
                       "folder beside it", where, cycle, type(cause).__name__)
        return None
    if not isinstance(saved, dict) or not all(isinstance(saved.get(part), list)
                                              for part in ("images", "annotations", "categories")):
        logger.warning("%s: not a labels file MGRAL saved (no COCO images, annotations and "
                       "categories); it is replaced by the labels of cycle %d and kept in the "
                       "archive/ folder beside it", where, cycle)
        return None
    return saved


def _same_labels(saved: dict[str, Any], coco: dict[str, Any]) -> bool:
    return all(saved.get(part) == coco[part] for part in ("images", "annotations", "categories"))


def current_state(state: dict[str, Any], image_index: dict[str, Any], label_studio: LabelStudioServer,
                  al: dict[str, Any]) -> dict[str, Any]:
    """The state of this cycle, once it is sure the cycle can end: checked before any training."""
    params = ALParams(**al)
    pool = state["pool_ids"]
    if params.budget > len(pool):
        raise ValueError(f"budget {params.budget} exceeds the pool size {len(pool)} "
                         f"(cycle {state['cycle']}); lower al.budget")
    unlabelled = set(image_index.get("unlabelled_ids", [])) & set(pool)
    if params.annotator == "oracle" and unlabelled:
        raise ValueError(
            f"{len(unlabelled)} pool images have no labels, so the oracle cannot label a query: "
            "set al.annotator=label_studio or al.annotator=files"
        )
    if params.annotator != "oracle":  # every pool image must be showable to people
        url = image_url(params.label_studio)
        records = {record["image_id"]: record for record in image_index["images"]}
        for image_id in pool:
            url(records[image_id])
    if params.annotator == "label_studio":  # a wrong URL or key fails now, not after training
        label_studio.project(params.label_studio.project, image_index["classes"])
    return state


def annotate_from_oracle(queries: dict[str, Any], state: dict[str, Any],
                         oracle: dict[str, Any]) -> dict[str, Any]:
    """Simulated annotation: the oracle reveals the labels of the queried images only."""
    query = for_cycle(queries, state, "query")
    return select_annotations(oracle, query["image_id"].astype(str).tolist())


def annotate(
    queries: dict[str, Any], state: dict[str, Any], oracle: dict[str, Any],
    image_index: dict[str, Any], pool_detections: dict[str, Any], al: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The oracle's labels of the query, or (for `files`) the annotation package people label."""
    params = ALParams(**al)
    if params.annotator == "oracle":
        return annotate_from_oracle(queries, state, oracle), {}
    if params.annotator == "label_studio":
        return {}, {}
    query_ids = for_cycle(queries, state, "query")["image_id"].astype(str).tolist()
    batch = BatchImages.of(state["cycle"], query_ids,
                           {r["image_id"]: r for r in image_index["images"]}, image_index["classes"])
    detections = for_cycle(pool_detections, state, "embedding")
    package = build_package(batch, batch_prelabels(batch, detections, params),
                            image_url(params.label_studio), label_config(batch.classes))
    logger.info("Cycle %d: annotation package of %d images written", state["cycle"], len(query_ids))
    return {}, package


def update_state(
    state: dict[str, Any], queries: dict[str, Any], new_labels: dict[str, Any], al: dict[str, Any],
    ignored: list[str] | None = None,
) -> dict[str, Any]:
    """Oracle: L_{t+1} = L_t ∪ Q, U_{t+1} = U_t \\ Q, the state of the next cycle. People: state t
    with Q recorded as awaiting labels. Parameters the run ignored are recorded with the query."""
    params = ALParams(**al)
    query_ids = for_cycle(queries, state, "query")["image_id"].astype(str).tolist()
    if params.annotator != "oracle":
        sent_at = datetime.now(UTC).isoformat(timespec="seconds")
        logger.info("Cycle %d: %d images await labels from %s", state["cycle"], len(query_ids),
                    params.annotator)
        waiting = al_state.await_labels(state, query_ids, params.strategy, params.annotator,
                                        sent_at)
        if ignored:
            waiting["awaiting"]["ignored_parameters"] = list(ignored)
        return waiting
    next_state = al_state.advance(state, query_ids, new_labels, params.strategy)
    if ignored:
        next_state["history"][-1]["ignored_parameters"] = list(ignored)
    logger.info(
        "Cycle %d -> %d: %d labelled, %d left in the pool", state["cycle"], next_state["cycle"],
        len(next_state["labelled_ids"]), len(next_state["pool_ids"]),
    )
    return next_state


def send_batch(
    saved_states: dict[int, dict[str, Any]], state: dict[str, Any], image_index: dict[str, Any],
    pool_detections: dict[str, Any], label_studio: LabelStudioServer, al: dict[str, Any],
) -> None:
    """Label Studio: tasks for the batch the saved state records as awaiting (after it is saved,
    so a crash in between is repaired by the next run, never lost)."""
    params = ALParams(**al)
    saved = saved_states.get(state["cycle"], {})
    if params.annotator != "label_studio" or "awaiting" not in saved:
        return
    batch = BatchImages.from_state(saved, image_index)
    send_to_label_studio(label_studio, batch, for_cycle(pool_detections, state, "embedding"), params)
