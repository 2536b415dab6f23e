"""Calibration of binary scores from per-bucket counts and score sums.

Inputs, per bucket ``b = 0 .. B-1`` (``b = min(floor(score · B), B − 1)``, see
:func:`~tally.counts.bucket_of`): ``pos[b]``, ``neg[b]`` the positive and negative
rows and ``score_sum[b]`` the sum of the scores of all rows in the bucket. The
mean score of a set of buckets is then exact (not a bucket mid-point).

**Calibration bins** group contiguous buckets: bucket ``b`` belongs to bin
``k = floor(b · bins / B)``. When ``bins`` divides ``B`` these are the equal-width
bins ``[k / bins, (k + 1) / bins)`` (the last one closed at 1), as scikit-learn's
``calibration_curve(strategy="uniform")`` uses. Otherwise a bucket straddling a bin
edge goes to the bin of its lower edge, so bin ``k`` holds the scores in
``[⌈k·B/bins⌉ / B, ⌈(k+1)·B/bins⌉ / B)``: edges move to the nearest bucket edge
above, by less than ``1 / B``.

For a non-empty bin ``k`` with ``n_k`` rows, ``pos_k`` positives and score sum
``s_k``: ``mean_score_k = s_k / n_k``, ``positive_rate_k = pos_k / n_k``.

* ``ece = Σ_k (n_k / n) · |mean_score_k − positive_rate_k| = Σ_k |s_k − pos_k| / n``
  (expected calibration error, Naeini, Cooper & Hauskrecht 2015);
* ``mce = max_k |mean_score_k − positive_rate_k|`` over non-empty bins (maximum
  calibration error, same reference).

Both are undefined (None with a reason) when there are no rows. Counts may be
float (weighted rows; then ``score_sum`` must be the weighted score sum).

References: M. P. Naeini, G. F. Cooper, M. Hauskrecht, "Obtaining well calibrated
probabilities using Bayesian binning", AAAI 2015. scikit-learn
``sklearn.calibration.calibration_curve``.
"""

from __future__ import annotations

import numpy as np

from tally.metrics import MetricValue

NO_ROWS = "no valid rows"


def bin_of_bucket(buckets: int, bins: int) -> np.ndarray:
    """Calibration bin ``floor(b · bins / B)`` of each bucket ``b`` (int64, length ``B``).

    Integer arithmetic, so exact. ``ValueError`` unless ``1 <= bins <= B``.
    """
    if not 1 <= bins <= buckets:
        raise ValueError(f"bins must be in [1, buckets = {buckets}], got {bins}")
    return np.arange(buckets, dtype=np.int64) * bins // buckets


def _binned(
    pos: np.ndarray, neg: np.ndarray, score_sum: np.ndarray, bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin ``(rows, positives, score sums)``, float64, length ``bins``."""
    p = np.asarray(pos, np.float64)
    n = np.asarray(neg, np.float64)
    s = np.asarray(score_sum, np.float64)
    if p.ndim != 1 or p.shape != n.shape or p.shape != s.shape:
        raise ValueError(
            f"pos, neg and score_sum must be 1-d of one length, got {p.shape}, {n.shape}, {s.shape}"
        )
    index = bin_of_bucket(p.shape[0], bins)
    rows = np.bincount(index, weights=p + n, minlength=bins)
    positives = np.bincount(index, weights=p, minlength=bins)
    scores = np.bincount(index, weights=s, minlength=bins)
    return rows, positives, scores


def reliability_curve(
    pos: np.ndarray, neg: np.ndarray, score_sum: np.ndarray, bins: int = 10
) -> list[tuple[int, float, float, float]]:
    """Points ``(bin_index, mean_score, positive_rate, count)`` of the non-empty bins.

    In ascending bin order; ``count`` is the bin's (possibly weighted) number of rows.
    ``mean_score`` and ``positive_rate`` are scikit-learn's ``prob_pred`` and
    ``prob_true`` of ``calibration_curve(strategy="uniform", n_bins=bins)`` when
    ``bins`` divides ``B`` (up to scores lying exactly on a bin edge, which float
    edges may place on either side). Empty list when there are no rows.
    """
    rows, positives, scores = _binned(pos, neg, score_sum, bins)
    return [
        (k, float(scores[k] / rows[k]), float(positives[k] / rows[k]), float(rows[k]))
        for k in np.flatnonzero(rows > 0).tolist()
    ]


def calibration_metrics(
    pos: np.ndarray, neg: np.ndarray, score_sum: np.ndarray, bins: int = 10
) -> list[MetricValue]:
    """``ece`` and ``mce`` over ``bins`` calibration bins (module docstring for the formulas).

    Undefined when there are no rows. ``ValueError`` on arrays of different lengths
    or ``bins`` outside ``[1, B]``.
    """
    rows, positives, scores = _binned(pos, neg, score_sum, bins)
    total = float(rows.sum())
    if total <= 0:
        return [MetricValue.undefined("ece", NO_ROWS), MetricValue.undefined("mce", NO_ROWS)]
    filled = rows > 0
    gap = np.abs(scores[filled] - positives[filled])
    ece = float(gap.sum()) / total
    mce = float(np.max(gap / rows[filled]))
    return [MetricValue("ece", ece), MetricValue("mce", mce)]
