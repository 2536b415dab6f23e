"""ROC, precision-recall and reliability curves from a histogram, downsampled for storage.

Points are taken at bucket edges from the highest score down: at the lower edge
``k/B`` of each non-empty bucket ``k`` every row in buckets ``>= k`` is predicted
positive, so ``tpr = tp/P``, ``fpr = fp/N``, ``precision = tp/(tp+fp)``,
``recall = tpr``. A curve keeps at most ``max_points`` points: both ends and evenly
spaced points between them (by index over the non-empty buckets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tally.metrics.calibration import reliability_curve


@dataclass(frozen=True)
class CurvePoint:
    """One point of a curve: ``x``, ``y`` and the score threshold (or bin) it stands for."""

    curve: str
    point: int
    x: float
    y: float
    threshold: float | None


def _keep(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))


def roc_pr_curves(pos: np.ndarray, neg: np.ndarray, max_points: int = 1000) -> list[CurvePoint]:
    """ROC (x = fpr, y = tpr) and PR (x = recall, y = precision) points; none when a class
    is absent (the curves are undefined, as ``roc_auc``/``pr_auc`` are)."""
    positives, negatives = float(pos.sum()), float(neg.sum())
    points: list[CurvePoint] = []
    if positives == 0:
        return points
    buckets = pos.shape[0]
    nonempty = np.flatnonzero((pos + neg)[::-1] > 0)  # indices from the top
    tp = np.cumsum(pos[::-1].astype(np.float64))[nonempty]
    fp = np.cumsum(neg[::-1].astype(np.float64))[nonempty]
    thresholds = (buckets - 1 - nonempty) / buckets
    keep = _keep(nonempty.size, max_points - 1)
    if negatives > 0:
        points.append(CurvePoint("roc", 0, 0.0, 0.0, None))
        points += [
            CurvePoint("roc", i + 1, fp[j] / negatives, tp[j] / positives, float(thresholds[j]))
            for i, j in enumerate(keep)
        ]
    points += [
        CurvePoint("pr", i, tp[j] / positives, tp[j] / (tp[j] + fp[j]), float(thresholds[j]))
        for i, j in enumerate(keep)
    ]
    return points


def calibration_points(
    pos: np.ndarray, neg: np.ndarray, score_sum: np.ndarray, bins: int
) -> list[CurvePoint]:
    """Reliability curve: x = mean score, y = positive rate of each non-empty bin."""
    bins = min(bins, pos.shape[0])
    return [
        CurvePoint("reliability", i, mean_score, rate, float(b) / bins)
        for i, (b, mean_score, rate, _count) in enumerate(
            reliability_curve(pos, neg, score_sum, bins)
        )
    ]
