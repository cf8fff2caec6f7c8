"""A retired LUT read-out, kept so the yardstick can re-run the figure that retired it.

The `kernel` read-out (the shipped one until dd2b9af): Nadaraya-Watson regression of the entries'
ΔmAP on exp(-W/h), W the Wasserstein distance between points that are each image's embedding plus
one coordinate, its detected-object count standardised over the table's images and scaled to
s times the embeddings' spread; s (from `detection_weights`, s = 0 is the embeddings alone) and h
are chosen together by leave-one-out cross-validation on the table. The yardstick measured it
against the shipped `trend` read-out on the same tables (fa55048: the weight grid chose s = 0 and
left the LUT's ρ with the true gain at +0.13, the trend reached +0.41; 999aa64, split 1: kernel
+0.23, trend +0.34; docs/results/reward_fidelity/split1_l20_kernel.json):

    python benchmarks/bench_reward_fidelity.py ... --lookup estimator=kernel

Only the benchmarks import this module; the method (src/mgral_pipelines/mgral/lookup.py) ships
the trend read-out alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ot
from scipy.stats import spearmanr

from mgral_pipelines.mgral.lookup import (
    LookupTable,
    choose_bandwidth,
    kernel_regression,
    leave_one_out,
    pairwise_wasserstein,
)

DETECTION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""The weights s of the detection coordinate the kernel read-out cross-validated over."""


@dataclass(frozen=True)
class DetectionCoordinate:
    """Detection counts as an extra coordinate: standardised over the table's images, times the
    embeddings' spread (root of their total variance), times s."""

    mean: float
    std: float
    spread: float

    @classmethod
    def fit(cls, lut: LookupTable) -> DetectionCoordinate | None:
        if lut.entry_detections is None or len(lut) == 0:
            return None
        counts = np.concatenate(lut.entry_detections)
        embeddings = np.concatenate(lut.entry_embeddings)
        return cls(mean=float(counts.mean()), std=float(counts.std()) or 1.0,
                   spread=float(np.sqrt(embeddings.var(axis=0).sum())) or 1.0)

    def points(self, embeddings: np.ndarray, detections: Any, weight: float) -> np.ndarray:
        detections = np.asarray(detections, dtype=np.float64).reshape(-1)
        if len(detections) != len(embeddings):
            raise ValueError(f"got {len(detections)} detection counts for {len(embeddings)} images")
        return np.column_stack([embeddings,
                                weight * self.spread * (detections - self.mean) / self.std])


class KernelReadout:
    """The retired `kernel` read-out of one LUT, with the shipped Estimator's interface."""

    def __init__(self, lut: LookupTable, bandwidth: float | None = None,
                 detection_weights: tuple[float, ...] = DETECTION_WEIGHTS) -> None:
        if not detection_weights or min(detection_weights) < 0:
            raise ValueError(f"detection_weights must be weights >= 0, got {detection_weights}")
        self.lut = lut
        self.coordinate = DetectionCoordinate.fit(lut)
        self.trend = (0.0, 0.0)  # no line: for the yardstick's columns
        candidates = detection_weights if self.coordinate is not None else (0.0,)
        best: tuple[float, float, float, np.ndarray] | None = None
        for weight in sorted(float(w) for w in candidates):
            distances = pairwise_wasserstein(self._clouds(weight))
            chosen = bandwidth or choose_bandwidth(distances, lut.delta_map)
            error = (float(np.mean((leave_one_out(distances, lut.delta_map, chosen)
                                    - lut.delta_map) ** 2)) if len(lut) > 1 else 0.0)
            if best is None or error < best[0] * (1 - 1e-9):
                best = (error, weight, chosen, distances)
        assert best is not None
        _, self.detection_weight, self.bandwidth, self.distances = best
        self.entry_clouds = self._clouds(self.detection_weight)

    def _clouds(self, weight: float) -> list[np.ndarray]:
        if self.coordinate is None:
            return self.lut.entry_embeddings
        return [self.coordinate.points(e, c, weight)
                for e, c in zip(self.lut.entry_embeddings, self.lut.entry_detections or [],
                                strict=True)]

    def __call__(self, batch: np.ndarray, detections: Any = None) -> float:
        batch = np.asarray(batch, dtype=np.float64)
        if self.coordinate is not None:
            if detections is None:
                raise ValueError("this LUT holds detection counts: pass the batch's counts")
            batch = self.coordinate.points(batch, detections, self.detection_weight)
        weights = ot.unif(len(batch))
        distances = np.array([ot.emd2(weights, ot.unif(len(cloud)), ot.dist(batch, cloud))
                              for cloud in self.entry_clouds])
        return kernel_regression(distances, self.lut.delta_map, self.bandwidth)

    def leave_one_out(self) -> np.ndarray:
        return leave_one_out(self.distances, self.lut.delta_map, self.bandwidth)

    def fidelity(self) -> dict[str, float]:
        """The table's leave-one-out scores under this read-out (as `lookup.table_fidelity`)."""
        chosen = {"bandwidth": float(self.bandwidth),
                  "detection_weight": float(self.detection_weight), "trend_slope": 0.0}
        delta_map = self.lut.delta_map
        if len(delta_map) < 3:
            return {"loo_spearman": float("nan"), **chosen}
        predictions = self.leave_one_out()
        rho = (float("nan") if np.ptp(predictions) == 0 or np.ptp(delta_map) == 0
               else float(spearmanr(predictions, delta_map).statistic))
        mean_of_others = (delta_map.sum() - delta_map) / (len(delta_map) - 1)
        squared = np.mean((predictions - delta_map) ** 2)
        baseline = np.mean((mean_of_others - delta_map) ** 2)
        return {"loo_spearman": rho, **chosen, "loo_rmse": float(np.sqrt(squared)),
                "loo_skill": float(1 - squared / baseline) if baseline > 0 else float("nan")}
