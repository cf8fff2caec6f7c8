"""The look-up table (LUT) and the agent's reward: ΔmAP estimated by Wasserstein look-up.

Method (DESIGN.md §2, step 3-4):
  * Building the LUT is the expensive part and happens elsewhere: for each of K candidate batches
    S_k drawn from the pool, a semi-supervised detector variant is trained on L_t plus S_k (without
    its labels) and evaluated on V. The LUT keeps the pair
    (embeddings of S_k, ΔmAP_k = mAP_V(variant_k) - mAP_V(reference)).
  * The reward of a batch A chosen by the agent is then a look-up instead of a detector training:
    compute the exact Wasserstein distance W_k (optimal transport, POT) between the empirical
    distribution of A's images and that of every S_k's, and read ΔmAP off the table:
      - "kernel" (default): Nadaraya-Watson regression, Σ_k e^(-W_k/h) ΔmAP_k / Σ_k e^(-W_k/h), with
        the bandwidth h chosen by leave-one-out cross-validation on the table itself (small h is
        the nearest entry, large h the table's mean: the data decide how far an entry's ΔmAP
        carries);
      - "nearest": the nearest entry's ΔmAP, or the inverse-distance-weighted mean of the k nearest;
      - "trend": a line of ΔmAP on the batch's mean number of objects D_t detects per image,
        fitted to the entries by least squares, plus the kernel on what the line leaves. The
        kernel alone can only average nearby entries; the line carries the table's trend to
        batches with more or fewer objects than any entry (README "Measured", the yardstick).
  * An image is a point of its embedding plus, when the table knows them, one more coordinate: the
    number of objects D_t detects in it, standardised over the table's images and scaled to
    s times the embeddings' spread. Pooled embeddings barely tell batches apart, while how many
    objects a batch holds is what its labels are mostly worth (the yardstick's look-up study,
    README "Measured"). The weight s is chosen with h by leave-one-out cross-validation over
    `detection_weights` (s = 0 is the embedding alone), so each table decides how much it counts.
  * The same leave-one-out predictions tell how well the table predicts its own entries
    (`table_fidelity`: Spearman ρ between each entry's ΔmAP and its prediction from the others),
    so every LUT build measures its own fidelity for free.

Every batch is an empirical distribution with uniform weights over its images, so batches of
different sizes can be compared.
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
    """How a batch's ΔmAP is read off the LUT."""

    estimator: str = "trend"
    """"kernel": Nadaraya-Watson regression on exp(-W/h) over every entry; "nearest": the k
    nearest entries (see k_nearest); "trend": a least-squares line on the batch's mean number of
    detected objects per image, plus the kernel on what the line leaves of each entry's ΔmAP (W
    on embeddings alone; a wide h leaves the line alone). "trend" needs a table with counts."""
    bandwidth: float | None = None
    """h of the kernel, in units of W; None chooses it by leave-one-out cross-validation on the
    table (`choose_bandwidth`)."""
    k_nearest: int = 1
    """With estimator "nearest": 1 = the nearest entry's ΔmAP; >1 = inverse-distance-weighted mean
    ΔmAP of the k nearest entries (capped at the LUT size)."""
    metric: str = "sqeuclidean"
    """Ground cost between two images' points, passed to `ot.dist` ('sqeuclidean' gives W2²,
    'euclidean' gives W1)."""
    detection_weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    """Candidate weights s of the detection coordinate (module doc), chosen with h by leave-one-out
    cross-validation; ties take the smaller s. [0.0] uses the embeddings alone; a table without
    detection counts always does."""

    def __post_init__(self) -> None:
        weights = tuple(float(w) for w in self.detection_weights)
        object.__setattr__(self, "detection_weights", weights)  # a YAML list becomes a tuple
        if not self.detection_weights or min(self.detection_weights) < 0:
            raise ValueError("detection_weights must be a non-empty list of weights >= 0, got "
                             f"{list(self.detection_weights)}")
        if self.k_nearest < 1:
            raise ValueError(f"k_nearest must be >= 1, got {self.k_nearest}")
        if self.estimator not in ("kernel", "nearest", "trend"):
            raise ValueError('estimator must be "kernel", "nearest" or "trend", got '
                             f"{self.estimator!r}")
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


def pairwise_wasserstein(clouds: list[np.ndarray], metric: str = "sqeuclidean") -> np.ndarray:
    """(K, K) exact optimal-transport costs between point clouds, uniform weights, zero diagonal."""
    size = len(clouds)
    matrix = np.zeros((size, size))
    for i in range(size):
        for j in range(i + 1, size):
            a, b = clouds[i], clouds[j]
            matrix[i, j] = matrix[j, i] = ot.emd2(ot.unif(len(a)), ot.unif(len(b)),
                                                  ot.dist(a, b, metric=metric))
    return matrix


def _distances_to(points: np.ndarray, clouds: list[np.ndarray], metric: str) -> np.ndarray:
    weights = ot.unif(points.shape[0])
    return np.array([ot.emd2(weights, ot.unif(len(cloud)), ot.dist(points, cloud, metric=metric))
                     for cloud in clouds])


def wasserstein_distances(
    batch: np.ndarray, lut: LookupTable, metric: str = "sqeuclidean"
) -> np.ndarray:
    """(K,) exact optimal-transport cost between `batch`'s embeddings and each LUT entry's."""
    return _distances_to(_check_batch(batch, lut), lut.entry_embeddings, metric)


@dataclass(frozen=True)
class DetectionCoordinate:
    """Turns detection counts into the extra coordinate of an image's point: standardised over the
    table's images, times the embeddings' spread (root of their total variance), times s."""

    mean: float
    std: float
    spread: float

    @classmethod
    def fit(cls, lut: LookupTable) -> DetectionCoordinate | None:
        """From the table's own images; None for a table without detection counts."""
        if lut.entry_detections is None or len(lut) == 0:
            return None
        counts = np.concatenate(lut.entry_detections)
        embeddings = np.concatenate(lut.entry_embeddings)
        return cls(mean=float(counts.mean()), std=float(counts.std()) or 1.0,
                   spread=float(np.sqrt(embeddings.var(axis=0).sum())) or 1.0)

    def points(self, embeddings: np.ndarray, detections: np.ndarray, weight: float) -> np.ndarray:
        """(n, d + 1): each image's embedding and its scaled detection count."""
        detections = np.asarray(detections, dtype=np.float64).reshape(-1)
        if len(detections) != len(embeddings):
            raise ValueError(f"got {len(detections)} detection counts for {len(embeddings)} images")
        return np.column_stack([embeddings,
                                weight * self.spread * (detections - self.mean) / self.std])


def _entry_clouds(lut: LookupTable, coordinate: DetectionCoordinate | None,
                  weight: float) -> list[np.ndarray]:
    if coordinate is None:
        return lut.entry_embeddings
    return [coordinate.points(e, c, weight)
            for e, c in zip(lut.entry_embeddings, lut.entry_detections or [], strict=True)]


def fit_trend(objects: np.ndarray, delta_map: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ΔmAP on objects per image; a flat line at
    the mean when the objects do not vary (or there is a single entry)."""
    if len(objects) < 2 or np.ptp(objects) == 0:
        return float(np.mean(delta_map)), 0.0
    slope, intercept = np.polyfit(objects, delta_map, 1)
    return float(intercept), float(slope)


class Estimator:
    """Reads ΔmAP off one LUT. Built once per table: the detection weight s, the trend and the
    bandwidth h are fitted here (cross-validated where the config leaves them open), so each of
    the agent's thousands of look-ups costs K transports."""

    def __init__(self, lut: LookupTable, config: LookupConfig) -> None:
        self.lut, self.config = lut, config
        self.coordinate = DetectionCoordinate.fit(lut)
        self.trend = (0.0, 0.0)  # intercept and slope on objects per image; used by "trend"
        self.targets = lut.delta_map  # what the kernel regresses: ΔmAP, or what the line leaves
        candidates = config.detection_weights if self.coordinate is not None else (0.0,)
        if config.estimator == "trend":
            if lut.entry_detections is None:
                raise ValueError('estimator "trend" needs a LUT whose entries hold detection '
                                 "counts; this table has none (rebuild it with `kedro run "
                                 '--pipeline=lut`) or use estimator "kernel"')
            self.trend = fit_trend(self.entry_objects(), lut.delta_map)
            self.targets = lut.delta_map - self._line(self.entry_objects())
            candidates = (0.0,)  # the count enters through the line
        best: tuple[float, float, float, np.ndarray] | None = None
        for weight in sorted(candidates):
            distances = pairwise_wasserstein(_entry_clouds(lut, self.coordinate, weight),
                                             config.metric)
            bandwidth = config.bandwidth or choose_bandwidth(distances, self.targets)
            error = (float(np.mean((leave_one_out(distances, self.targets, bandwidth)
                                    - self.targets) ** 2)) if len(lut) > 1 else 0.0)
            if best is None or error < best[0] * (1 - 1e-9):
                best = (error, weight, bandwidth, distances)
        assert best is not None  # config validation keeps detection_weights non-empty
        _, self.detection_weight, self.bandwidth, self.distances = best
        self.entry_clouds = _entry_clouds(lut, self.coordinate, self.detection_weight)

    def entry_objects(self) -> np.ndarray:
        """(K,) each entry's mean number of detected objects per image."""
        return np.array([counts.mean() for counts in self.lut.entry_detections or []])

    def _line(self, objects: np.ndarray | float) -> np.ndarray:
        intercept, slope = self.trend
        return intercept + slope * np.asarray(objects, dtype=np.float64)

    def __call__(self, batch: np.ndarray, detections: np.ndarray | None = None) -> float:
        """The estimated ΔmAP of the batch whose images have these embeddings and (for a table
        that holds detection counts) these numbers of detected objects."""
        batch = _check_batch(batch, self.lut)
        if self.coordinate is not None:
            if detections is None:
                raise ValueError("this LUT holds detection counts: pass the batch's detection "
                                 "counts (features.confident_detections) with its embeddings")
            batch = self.coordinate.points(batch, detections, self.detection_weight)
        distances = _distances_to(batch, self.entry_clouds, self.config.metric)
        if self.config.estimator == "nearest":
            return _nearest(distances, self.lut.delta_map, self.config.k_nearest)
        line = float(self._line(np.mean(detections))) if self.config.estimator == "trend" else 0.0
        return line + kernel_regression(distances, self.targets, self.bandwidth)

    def leave_one_out(self) -> np.ndarray:
        """Each entry's ΔmAP predicted from the other entries (the kernel's, or for "trend" the
        line refitted without the entry plus the kernel on the others' residuals)."""
        if self.config.estimator != "trend":
            return leave_one_out(self.distances, self.lut.delta_map, self.bandwidth)
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
                       detections: np.ndarray | None = None) -> float:
    """The agent's reward: the LUT's estimate of the ΔmAP that labelling `batch` would bring.

    Cross-validates the table on every call; the agent uses one `Estimator` instead.
    """
    return Estimator(lut, config)(batch, detections)


def kernel_regression(distances: np.ndarray, delta_map: np.ndarray, bandwidth: float) -> float:
    """Σ_k e^(-W_k/h) ΔmAP_k / Σ_k e^(-W_k/h); shifted by min W so far batches do not underflow."""
    distances = np.asarray(distances, dtype=np.float64)
    weights = np.exp(-(distances - distances.min()) / bandwidth)
    return float(np.sum(weights * delta_map) / np.sum(weights))


def entry_distances(lut: LookupTable, metric: str = "sqeuclidean") -> np.ndarray:
    """(K, K) Wasserstein distances between the table's own entries' embeddings."""
    return pairwise_wasserstein(lut.entry_embeddings, metric)


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
    """How well the table predicts its own entries, by leave-one-out kernel regression with the
    estimator's cross-validated detection weight and bandwidth (and, for "trend", its line refitted
    without each entry).

    `loo_spearman` is Spearman's ρ between each entry's ΔmAP and its prediction from the other
    entries (NaN below 3 entries or when either side is constant). The weight and bandwidth are
    chosen on the same predictions, so ρ is slightly optimistic; it still tells a table that ranks
    batches (ρ well above 0) from one whose entries are noise (ρ near or below 0).

    `loo_skill` is 1 - (squared error of those predictions) / (squared error of predicting each
    entry by the mean of the others): above 0 the table tells entries apart, at 0 the reward
    is just the table's mean. Read ρ with it: when cross-validation finds nothing better than the
    mean it picks a bandwidth so wide that each prediction is the others' mean, (sum - y_i) / (n-1),
    whose ρ with y is exactly -1 however good the entries are.
    """
    estimator = Estimator(lut, config)
    chosen = {"bandwidth": float(estimator.bandwidth),
              "detection_weight": float(estimator.detection_weight),
              "trend_slope": estimator.trend[1]}
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


def _nearest(distances: np.ndarray, delta_map: np.ndarray, k_nearest: int) -> float:
    nearest = np.argsort(distances, kind="stable")[:k_nearest]
    if k_nearest == 1:
        return float(delta_map[nearest[0]])
    # An exact match (distance 0) is the answer: its inverse distance would be infinite.
    exact = nearest[distances[nearest] <= 0.0]
    if exact.size:
        return float(delta_map[exact].mean())
    weights = 1.0 / distances[nearest]
    return float(np.sum(weights * delta_map[nearest]) / np.sum(weights))
