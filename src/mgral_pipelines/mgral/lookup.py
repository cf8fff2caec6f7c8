"""The look-up table (LUT) and the agent's reward: ΔmAP read off it (docs/method.md, steps 3-4).

  * Building the LUT is the expensive part and happens elsewhere: for each of K candidate batches
    S_k drawn from the pool, a semi-supervised detector variant is trained on L_t plus S_k (without
    its labels) and evaluated on V. The LUT keeps, per entry, the embeddings of S_k's images, how
    many objects D_t detects in each of them, and ΔmAP_k = mAP_V(variant_k) - mAP_V(reference).
  * The reward of a batch A chosen by the agent is then a look-up instead of a detector training,
    in two parts (the "trend" read-out):
      - a line: ΔmAP on the batch's mean number of detected objects per image, fitted to the
        entries by least squares. How many objects a batch holds is what its labels are mostly
        worth, and the line carries the table's trend to batches with more or fewer objects than
        any entry;
      - plus a kernel on what the line leaves: Nadaraya-Watson regression of the entries'
        residuals, Σ_k e^(-W_k/h) r_k / Σ_k e^(-W_k/h), W_k the exact Wasserstein distance
        (optimal transport, POT, squared Euclidean ground cost) between the empirical
        distributions of A's and S_k's embeddings, the bandwidth h chosen by leave-one-out
        cross-validation on the table (small h is the nearest entry, large h the residuals' mean:
        the data decide how far an entry's residual carries).
  * The same leave-one-out predictions tell how well the table predicts its own entries
    (`table_fidelity`: Spearman ρ between each entry's ΔmAP and its prediction from the others),
    so every LUT build measures its own fidelity for free.

Every batch is an empirical distribution with uniform weights over its images, so batches of
different sizes can be compared. Read-outs that were tried and retired (the kernel alone, the
nearest entries, a detection-count coordinate) are listed in docs/method.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
from scipy.stats import spearmanr


@dataclass
class LookupTable:
    """K entries, each a candidate batch's embeddings and the ΔmAP its detector variant achieved."""

    entry_embeddings: list[np.ndarray]
    """K arrays of shape (n_k, d): the embeddings of candidate batch S_k (n_k may vary by entry)."""
    delta_map: np.ndarray
    """(K,) ΔmAP_k = mAP_V(variant_k) - mAP_V(reference), in mAP units."""
    entry_detections: list[np.ndarray] | None = None
    """K arrays of shape (n_k,): how many objects D_t detects in each image of S_k
    (`features.confident_detections`); None for a table built without them (embeddings alone)."""

    def __post_init__(self) -> None:
        self.entry_embeddings = [np.asarray(e, dtype=np.float64) for e in self.entry_embeddings]
        self.delta_map = np.asarray(self.delta_map, dtype=np.float64).reshape(-1)
        if self.entry_detections is not None:
            self.entry_detections = [np.asarray(c, dtype=np.float64).reshape(-1)
                                     for c in self.entry_detections]
            sizes = [len(c) for c in self.entry_detections]
            images = [len(e) for e in self.entry_embeddings]
            if sizes != images:
                raise ValueError("LUT entry_detections must give one count per entry image, got "
                                 f"{sizes} counts for entries of {images} images")
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
            "entry_detections": None if self.entry_detections is None
            else [c.tolist() for c in self.entry_detections],
        }

    @classmethod
    def from_lut(cls, table: dict[str, Any]) -> LookupTable:
        """The table the `lut` pipeline writes: {"entries": [{"embeddings", "delta_map",
        "detections"}, ...]} (tables written before detections were stored have none)."""
        entries = table["entries"]
        return cls(
            entry_embeddings=[np.asarray(entry["embeddings"]) for entry in entries],
            delta_map=np.asarray([entry["delta_map"] for entry in entries]),
            entry_detections=[np.asarray(entry["detections"]) for entry in entries]
            if entries and all("detections" in entry for entry in entries) else None,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LookupTable:
        return cls(
            entry_embeddings=[np.asarray(e, dtype=np.float64) for e in d["entry_embeddings"]],
            delta_map=np.asarray(d["delta_map"], dtype=np.float64),
            entry_detections=d.get("entry_detections"),
        )


@dataclass(frozen=True)
class LookupConfig:
    """How a batch's ΔmAP is read off the LUT (`agent.lookup`)."""

    bandwidth: float | None = None
    """h of the kernel on the line's residuals, in units of W (squared Euclidean ground cost).
    Default None: chosen by leave-one-out cross-validation on each table (`choose_bandwidth`)."""

    def __post_init__(self) -> None:
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be > 0 or null, got {self.bandwidth}")


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


def pairwise_wasserstein(clouds: list[np.ndarray]) -> np.ndarray:
    """(K, K) exact optimal-transport costs between point clouds, uniform weights, squared
    Euclidean ground cost (W2²), zero diagonal."""
    size = len(clouds)
    matrix = np.zeros((size, size))
    for i in range(size):
        for j in range(i + 1, size):
            a, b = clouds[i], clouds[j]
            matrix[i, j] = matrix[j, i] = ot.emd2(ot.unif(len(a)), ot.unif(len(b)), ot.dist(a, b))
    return matrix


def _distances_to(points: np.ndarray, clouds: list[np.ndarray]) -> np.ndarray:
    weights = ot.unif(points.shape[0])
    return np.array([ot.emd2(weights, ot.unif(len(cloud)), ot.dist(points, cloud))
                     for cloud in clouds])


def wasserstein_distances(batch: np.ndarray, lut: LookupTable) -> np.ndarray:
    """(K,) exact optimal-transport cost (W2²) between `batch`'s embeddings and each entry's."""
    return _distances_to(_check_batch(batch, lut), lut.entry_embeddings)


def entry_distances(lut: LookupTable) -> np.ndarray:
    """(K, K) Wasserstein distances (W2²) between the table's own entries' embeddings."""
    return pairwise_wasserstein(lut.entry_embeddings)


def fit_trend(objects: np.ndarray, delta_map: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ΔmAP on objects per image; a flat line at
    the mean when the objects do not vary (or there is a single entry)."""
    if len(objects) < 2 or np.ptp(objects) == 0:
        return float(np.mean(delta_map)), 0.0
    slope, intercept = np.polyfit(objects, delta_map, 1)
    return float(intercept), float(slope)


class Estimator:
    """Reads ΔmAP off one LUT: the line on detected objects plus the kernel on its residuals.

    Built once per table: the line and the bandwidth h are fitted here (h cross-validated unless
    the config fixes it), so each of the agent's thousands of look-ups costs K transports.
    """

    def __init__(self, lut: LookupTable, config: LookupConfig) -> None:
        if len(lut) == 0:
            raise ValueError("the look-up table is empty: build at least one entry before "
                             "querying it")
        if lut.entry_detections is None:
            raise ValueError("the LUT's read-out needs entries that hold detection counts; this "
                             "table has none (a table written before they were stored): rebuild "
                             "it with `kedro run --pipeline=lut`")
        self.lut, self.config = lut, config
        self.trend = fit_trend(self.entry_objects(), lut.delta_map)  # (intercept, slope)
        self.residuals = lut.delta_map - self._line(self.entry_objects())
        self.distances = entry_distances(lut)
        self.bandwidth = config.bandwidth or choose_bandwidth(self.distances, self.residuals)

    def entry_objects(self) -> np.ndarray:
        """(K,) each entry's mean number of detected objects per image."""
        return np.array([counts.mean() for counts in self.lut.entry_detections or []])

    def _line(self, objects: np.ndarray | float) -> np.ndarray:
        intercept, slope = self.trend
        return intercept + slope * np.asarray(objects, dtype=np.float64)

    def __call__(self, batch: np.ndarray, detections: np.ndarray | None = None) -> float:
        """The estimated ΔmAP of the batch whose images have these embeddings and these numbers
        of detected objects (`features.confident_detections`, weighted as the table's)."""
        batch = _check_batch(batch, self.lut)
        if detections is None:
            raise ValueError("this LUT holds detection counts: pass the batch's detection "
                             "counts (features.confident_detections) with its embeddings")
        if np.size(detections) != len(batch):
            raise ValueError(f"got {np.size(detections)} detection counts for {len(batch)} images")
        distances = _distances_to(batch, self.lut.entry_embeddings)
        return float(self._line(np.mean(detections))) + kernel_regression(
            distances, self.residuals, self.bandwidth)

    def leave_one_out(self) -> np.ndarray:
        """Each entry's ΔmAP predicted from the other entries: the line refitted without the
        entry, plus the kernel on the others' residuals."""
        objects, delta_map = self.entry_objects(), self.lut.delta_map
        predictions = []
        for k in range(len(delta_map)):
            rest = np.flatnonzero(np.arange(len(delta_map)) != k)
            intercept, slope = fit_trend(objects[rest], delta_map[rest])
            residuals = delta_map[rest] - (intercept + slope * objects[rest])
            predictions.append(intercept + slope * objects[k] + kernel_regression(
                self.distances[k, rest], residuals, self.bandwidth))
        return np.array(predictions)


def estimate_delta_map(batch: np.ndarray, lut: LookupTable, config: LookupConfig,
                       detections: np.ndarray) -> float:
    """The agent's reward: the LUT's estimate of the ΔmAP that labelling `batch` would bring.

    Fits the table on every call; the agent uses one `Estimator` instead.
    """
    return Estimator(lut, config)(batch, detections)


def kernel_regression(distances: np.ndarray, delta_map: np.ndarray, bandwidth: float) -> float:
    """Σ_k e^(-W_k/h) ΔmAP_k / Σ_k e^(-W_k/h); shifted by min W so far batches do not underflow."""
    distances = np.asarray(distances, dtype=np.float64)
    weights = np.exp(-(distances - distances.min()) / bandwidth)
    return float(np.sum(weights * delta_map) / np.sum(weights))


def leave_one_out(distances: np.ndarray, delta_map: np.ndarray, bandwidth: float) -> np.ndarray:
    """Each entry's ΔmAP predicted by kernel regression on the other entries."""
    size = len(delta_map)
    others = [np.flatnonzero(np.arange(size) != k) for k in range(size)]
    return np.array([kernel_regression(distances[k, rest], delta_map[rest], bandwidth)
                     for k, rest in enumerate(others)])


def choose_bandwidth(distances: np.ndarray, delta_map: np.ndarray) -> float:
    """The h of 25 candidates (log-spaced between 1/10 of the smallest and 10 times the largest
    distance between entries) with the least leave-one-out squared error; ties take the larger h
    (the smoother estimate). A table of one entry, or of identical entries, gives 1.0."""
    off_diagonal = distances[~np.eye(len(distances), dtype=bool)]
    positive = off_diagonal[off_diagonal > 0]
    if len(delta_map) < 3 or positive.size == 0:
        return 1.0
    candidates = np.geomspace(positive.min() / 10, positive.max() * 10, 25)
    errors = [np.mean((leave_one_out(distances, delta_map, h) - delta_map) ** 2)
              for h in candidates]
    best = min(errors)
    return float(max(h for h, error in zip(candidates, errors) if error <= best * (1 + 1e-9)))


def table_fidelity(lut: LookupTable, config: LookupConfig) -> dict[str, float]:
    """How well the table predicts its own entries: `Estimator.leave_one_out` (the line refitted
    without each entry, the kernel with the table's bandwidth).

    `loo_spearman` is Spearman's ρ between each entry's ΔmAP and its prediction from the other
    entries (NaN below 3 entries or when either side is constant). The bandwidth is chosen on the
    same predictions, so ρ is slightly optimistic; it still tells a table that ranks batches
    (ρ well above 0) from one whose entries are noise (ρ near or below 0).

    `loo_skill` is 1 - (squared error of those predictions) / (squared error of predicting each
    entry by the mean of the others): above 0 the table tells entries apart, at 0 the reward
    is just the table's mean. Read ρ with it: when cross-validation finds nothing better than the
    mean it picks a bandwidth so wide that each prediction is the others' mean, (sum - y_i) / (n-1),
    whose ρ with y is exactly -1 however good the entries are.
    """
    estimator = Estimator(lut, config)
    chosen = {"bandwidth": float(estimator.bandwidth), "trend_slope": estimator.trend[1]}
    if len(lut) < 3:
        return {"loo_spearman": float("nan"), **chosen}
    predictions = estimator.leave_one_out()
    if np.ptp(predictions) == 0 or np.ptp(lut.delta_map) == 0:
        rho = float("nan")
    else:
        rho = float(spearmanr(predictions, lut.delta_map).statistic)
    n = len(lut)
    mean_of_others = (lut.delta_map.sum() - lut.delta_map) / (n - 1)
    squared = np.mean((predictions - lut.delta_map) ** 2)
    baseline = np.mean((mean_of_others - lut.delta_map) ** 2)
    return {"loo_spearman": rho, **chosen,
            "loo_rmse": float(np.sqrt(squared)),
            "loo_skill": float(1 - squared / baseline) if baseline > 0 else float("nan")}
