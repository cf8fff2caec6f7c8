"""The look-up table (LUT) and the agent's reward: ΔmAP estimated by Wasserstein look-up.

Method (DESIGN.md §2, step 3-4):
  * Building the LUT is the expensive part and happens elsewhere: for each of K candidate batches
    S_k drawn from the pool, a semi-supervised detector variant is trained on L_t plus S_k (without
    its labels) and evaluated on V. The LUT keeps the pair
    (embeddings of S_k, ΔmAP_k = mAP_V(variant_k) - mAP_V(reference)).
  * The reward of a batch A chosen by the agent is then a look-up instead of a detector training:
    compute the exact Wasserstein distance (optimal transport, POT) between the empirical embedding
    distribution of A and that of every S_k, and return the ΔmAP of the nearest entry, or the
    inverse-distance-weighted mean ΔmAP of the k nearest ones.

Every batch is an empirical distribution with uniform weights over its images, so batches of
different sizes can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ot


@dataclass
class LookupTable:
    """K entries, each a candidate batch's embeddings and the ΔmAP its detector variant achieved."""

    entry_embeddings: list[np.ndarray]
    """K arrays of shape (n_k, d): the embeddings of candidate batch S_k (n_k may vary by entry)."""
    delta_map: np.ndarray
    """(K,) ΔmAP_k = mAP_V(variant_k) - mAP_V(reference), in mAP units."""

    def __post_init__(self) -> None:
        self.entry_embeddings = [np.asarray(e, dtype=np.float64) for e in self.entry_embeddings]
        self.delta_map = np.asarray(self.delta_map, dtype=np.float64).reshape(-1)
        if len(self.entry_embeddings) != len(self.delta_map):
            raise ValueError(
                f"LookupTable has {len(self.entry_embeddings)} entries but "
                f"{len(self.delta_map)} ΔmAP values"
            )
        dims = {e.shape[1] for e in self.entry_embeddings if e.ndim == 2}
        if any(e.ndim != 2 or e.shape[0] == 0 for e in self.entry_embeddings) or len(dims) > 1:
            shapes = [e.shape for e in self.entry_embeddings]
            raise ValueError(
                f"LUT entries must be non-empty (n_k, d) arrays sharing one d, got {shapes}"
            )

    def __len__(self) -> int:
        return len(self.delta_map)

    @property
    def dim(self) -> int | None:
        """Embedding dimension d of the entries, None for an empty table."""
        return self.entry_embeddings[0].shape[1] if self.entry_embeddings else None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, so Kedro's JSONDataset (or a pickle) stores it as is."""
        return {
            "entry_embeddings": [e.tolist() for e in self.entry_embeddings],
            "delta_map": self.delta_map.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LookupTable:
        return cls(
            entry_embeddings=[np.asarray(e, dtype=np.float64) for e in d["entry_embeddings"]],
            delta_map=np.asarray(d["delta_map"], dtype=np.float64),
        )


@dataclass(frozen=True)
class LookupConfig:
    """How a batch's ΔmAP is read off the LUT."""

    k_nearest: int = 1
    """1 = the nearest entry's ΔmAP; >1 = inverse-distance-weighted mean ΔmAP of the k nearest
    entries (capped at the LUT size)."""
    metric: str = "sqeuclidean"
    """Ground cost between two embeddings, passed to `ot.dist` ('sqeuclidean' gives W2², 'euclidean'
    gives W1)."""

    def __post_init__(self) -> None:
        if self.k_nearest < 1:
            raise ValueError(f"k_nearest must be >= 1, got {self.k_nearest}")


def _check_batch(batch: np.ndarray, lut: LookupTable) -> np.ndarray:
    if len(lut) == 0:
        raise ValueError("the look-up table is empty: build at least one entry before querying it")
    batch = np.asarray(batch, dtype=np.float64)
    if batch.ndim != 2 or batch.shape[0] == 0:
        raise ValueError(f"batch must be a non-empty (n, d) array, got shape {batch.shape}")
    if batch.shape[1] != lut.dim:
        raise ValueError(
            f"batch embedding dimension {batch.shape[1]} does not match "
            f"the LUT's embedding dimension {lut.dim}"
        )
    return batch


def wasserstein_distances(
    batch: np.ndarray, lut: LookupTable, metric: str = "sqeuclidean"
) -> np.ndarray:
    """(K,) exact optimal-transport cost between `batch` and each LUT entry, uniform weights."""
    batch = _check_batch(batch, lut)
    weights = ot.unif(batch.shape[0])
    return np.array(
        [
            ot.emd2(weights, ot.unif(entry.shape[0]), ot.dist(batch, entry, metric=metric))
            for entry in lut.entry_embeddings
        ]
    )


def estimate_delta_map(batch: np.ndarray, lut: LookupTable, config: LookupConfig) -> float:
    """The agent's reward: the LUT's estimate of the ΔmAP that labelling `batch` would bring."""
    distances = wasserstein_distances(batch, lut, config.metric)
    nearest = np.argsort(distances, kind="stable")[: config.k_nearest]
    if config.k_nearest == 1:
        return float(lut.delta_map[nearest[0]])
    # An exact match (distance 0) is the answer: its inverse distance would be infinite.
    exact = nearest[distances[nearest] <= 0.0]
    if exact.size:
        return float(lut.delta_map[exact].mean())
    weights = 1.0 / distances[nearest]
    return float(np.sum(weights * lut.delta_map[nearest]) / np.sum(weights))
