"""The active-learning state: who is labelled, who is in the pool, and what was queried when.

A state is a JSON-serialisable dict saved once per cycle by `ALStateDataset`:

    {"cycle": t, "dataset": <fingerprint of the prepared dataset>,
     "labelled_ids": [...], "pool_ids": [...],
     "labels": {image_id: boxes},        # labels the learner owns for its labelled set
     "history": [{"cycle": t, "strategy": "random", "query_ids": [...], "n_labelled": n}, ...]}

Validation and test labels are fixed and live in `eval_labels`; pool labels live only in the oracle.
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


def initial_state(splits: dict[str, list[str]], initial_labels: dict[str, Any], dataset: str) -> State:
    return {
        "cycle": 0,
        "dataset": dataset,
        "labelled_ids": list(splits["initial"]),
        "pool_ids": list(splits["pool"]),
        "labels": initial_labels,
        "history": [],
    }


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
        "labelled_ids": labelled,
        "pool_ids": [image_id for image_id in state["pool_ids"] if image_id not in queried],
        "labels": {**state["labels"], **{i: new_labels[i] for i in query_ids}},
        "history": state["history"]
        + [{"cycle": state["cycle"], "strategy": strategy, "query_ids": list(query_ids),
            "n_labelled": len(labelled)}],
    }
