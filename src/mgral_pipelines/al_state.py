"""The active-learning state: who is labelled, who is in the pool, and what was queried when.

A state is a JSON-serialisable dict saved once per cycle by `ALStateDataset`:

    {"cycle": t, "dataset": <fingerprint of the prepared dataset>,
     "evaluation": <fingerprint of the classes, V and T with their labels>,
     "labelled_ids": [...], "pool_ids": [...],
     "labels": {image_id: boxes},        # labels the learner owns for its labelled set
     "history": [{"cycle": t, "strategy": "random", "query_ids": [...], "n_labelled": n}, ...],
     "awaiting": {...}}                  # only while people label the cycle's query batch

Validation and test labels are fixed and live in `eval_labels`; pool labels live only in the oracle.
With people, the query batch of cycle t is recorded in state t as `awaiting` (its images stay in
the pool) and the state of cycle t+1 is written when their labels come back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

State = dict[str, Any]


def fingerprint(image_index: dict[str, Any], splits: dict[str, Any]) -> str:
    """Identifies a prepared dataset, so a state is never applied to another dataset."""
    payload = json.dumps(
        {"images": [r["image_id"] for r in image_index["images"]], "classes": image_index["classes"],
         "splits": splits},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def split_ids(
    image_ids: list[str], val: int, test: int, initial: int, seed: int
) -> dict[str, list[str]]:
    """Fixed-by-seed split into validation, test, initial labelled set and unlabelled pool."""
    needed = val + test + initial
    if needed >= len(image_ids):
        raise ValueError(
            f"splits need {needed} images (val={val}, test={test}, initial={initial}) plus a "
            f"non-empty pool, but the dataset has only {len(image_ids)} images"
        )
    order = np.random.default_rng(seed).permutation(len(image_ids))
    shuffled = [image_ids[i] for i in order]
    return {
        "val": sorted(shuffled[:val]),
        "test": sorted(shuffled[val : val + test]),
        "initial": sorted(shuffled[val + test : needed]),
        "pool": sorted(shuffled[needed:]),
    }


def evaluation_fingerprint(classes: list[str], eval_labels: dict[str, Any]) -> str:
    """What makes AL progress comparable across two preparations: the classes, V and T."""
    payload = json.dumps({"classes": classes, "eval": eval_labels}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def initial_state(
    splits: dict[str, list[str]], initial_labels: dict[str, Any], dataset: str,
    evaluation: str | None = None,
) -> State:
    state = {
        "cycle": 0,
        "dataset": dataset,
        "labelled_ids": list(splits["initial"]),
        "pool_ids": list(splits["pool"]),
        "labels": initial_labels,
        "history": [],
    }
    if evaluation is not None:
        state["evaluation"] = evaluation
    return state


def choose_state(states: dict[int, State], from_cycle: int | None) -> State:
    """The latest state, or the one of `from_cycle` (to re-run an earlier cycle)."""
    if not states:
        raise ValueError(
            "no AL state found: run `kedro run --pipeline=prepare` first "
            "(al_cycle does this by itself on a fresh clone)"
        )
    if from_cycle is None:
        return states[max(states)]
    if from_cycle not in states:
        raise ValueError(f"no AL state for cycle {from_cycle}; available cycles: {sorted(states)}")
    return states[from_cycle]


def advance(state: State, query_ids: list[str], new_labels: dict[str, Any], strategy: str) -> State:
    """L_{t+1} = L_t ∪ Q and U_{t+1} = U_t \\ Q, with Q's labels added and the query recorded."""
    pool = set(state["pool_ids"])
    outside = [image_id for image_id in query_ids if image_id not in pool]
    if outside:
        raise ValueError(f"query contains ids that are not in the pool: {outside[:5]}")
    if len(set(query_ids)) != len(query_ids):
        raise ValueError("query contains duplicate ids")
    missing = [image_id for image_id in query_ids if image_id not in new_labels]
    if missing:
        raise ValueError(f"annotations are missing for queried images: {missing[:5]}")
    queried = set(query_ids)
    labelled = state["labelled_ids"] + list(query_ids)
    return {
        "cycle": state["cycle"] + 1,
        "dataset": state["dataset"],
        **({"evaluation": state["evaluation"]} if "evaluation" in state else {}),
        "labelled_ids": labelled,
        "pool_ids": [image_id for image_id in state["pool_ids"] if image_id not in queried],
        "labels": {**state["labels"], **{i: new_labels[i] for i in query_ids}},
        "history": state["history"]
        + [{"cycle": state["cycle"], "strategy": strategy, "query_ids": list(query_ids),
            "n_labelled": len(labelled)}],
    }


def await_labels(state: State, query_ids: list[str], strategy: str, annotator: str,
                 sent_at: str) -> State:
    """State t with its query batch recorded as awaiting labels from people; nothing moves yet."""
    pool = set(state["pool_ids"])
    outside = [image_id for image_id in query_ids if image_id not in pool]
    if outside or len(set(query_ids)) != len(query_ids) or not query_ids:
        raise ValueError(f"a batch needs distinct pool images; not in the pool: {outside[:5]}")
    batch = {"cycle": state["cycle"], "image_ids": list(query_ids), "strategy": strategy,
             "annotator": annotator, "sent_at": sent_at}
    return {**state, "awaiting": batch}


def complete_batch(state: State, labels: dict[str, Any], annotator: str | None = None) -> State:
    """State t+1 from the awaiting batch: images with labels join L, the others stay in the pool.
    The history names `annotator`, where the labels came from (default: where the batch went)."""
    batch = state["awaiting"]
    stray = sorted(set(labels) - set(batch["image_ids"]))
    if stray:
        raise ValueError(f"labels for images that are not in the awaiting batch: {stray[:5]}")
    done = [image_id for image_id in batch["image_ids"] if image_id in labels]
    if not done:
        raise ValueError(f"no image of the awaiting batch of cycle {state['cycle']} is labelled")
    before = {key: value for key, value in state.items() if key != "awaiting"}
    following = advance(before, done, labels, batch["strategy"])
    following["history"][-1].update(
        annotator=annotator or batch["annotator"],
        returned_to_pool=[image_id for image_id in batch["image_ids"] if image_id not in labels],
    )
    return following


def carry_over(latest: State, fresh: State) -> tuple[State | None, str]:
    """`latest` continued on a new preparation of the data, or None and the reason it cannot be.

    Progress stays valid while the classes, V and T (with their labels) are the same, L_0 is
    still labelled and every labelled or awaiting image still exists. The pool is the new one less
    the labelled images, so images added to an unlabelled folder join it. L_0's labels are taken
    from the new import (the user may have corrected them); labels from people are kept.
    """
    if latest.get("evaluation") is None or latest["evaluation"] != fresh.get("evaluation"):
        return None, "the classes, V or T (or their labels) changed"
    labelled = set(latest["labelled_ids"])
    if not set(fresh["labelled_ids"]) <= labelled:
        return None, "the initial labelled set changed"
    images = set(fresh["labelled_ids"]) | set(fresh["pool_ids"])
    needed = labelled | set(latest.get("awaiting", {}).get("image_ids", []))
    gone = sorted(needed - images)
    if gone:
        return None, f"{len(gone)} labelled or awaiting images are no longer in the data ({gone[:3]})"
    pool = [image_id for image_id in fresh["pool_ids"] if image_id not in labelled]
    kept = {**latest, "dataset": fresh["dataset"], "pool_ids": pool,
            "labels": {**latest["labels"], **fresh["labels"]}}
    return kept, ""
