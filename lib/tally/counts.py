"""Count tables: the small, exact, mergeable summaries every metric is computed from.

A :class:`BinaryCounts` holds, for one score column over a set of rows:

* ``pos[b]``, ``neg[b]`` — positives and negatives whose score falls in bucket
  ``b = min(floor(score * B), B - 1)`` (buckets ascending in score);
* ``tp_at[j]``, ``fp_at[j]`` — positives and negatives with ``score >= t_j``,
  compared on the raw score, so thresholded metrics are exact;
* ``log_loss_sum``, ``squared_error_sum`` — per-row sums for log loss and Brier;
* ``invalid`` — rows skipped, by reason.

Counts are int64 and addition is the only operation (:meth:`BinaryCounts.merge`),
so the result does not depend on how rows were split into partitions, in which
order parts were added, or whether a task was retried. This module is pure
numpy: :func:`count_binary` is the in-memory reference of what the Spark side
computes per partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Reasons a row is skipped, in the order they are checked (the first one wins).
INVALID_REASONS: tuple[str, ...] = (
    "null_label",
    "null_score",
    "nan_score",
    "infinite_score",
    "score_out_of_range",
    "invalid_label",
)

#: Clip for log loss, as scikit-learn's ``log_loss`` does for float64 scores.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class BinaryCounts:
    """Exact counts for binary metrics of one score column. See the module docstring."""

    pos: np.ndarray
    neg: np.ndarray
    thresholds: tuple[float, ...]
    tp_at: np.ndarray
    fp_at: np.ndarray
    log_loss_sum: float = 0.0
    squared_error_sum: float = 0.0
    invalid: Mapping[str, int] = field(default_factory=dict)

    @property
    def buckets(self) -> int:
        return int(self.pos.shape[0])

    @property
    def positives(self) -> int:
        return int(self.pos.sum())

    @property
    def negatives(self) -> int:
        return int(self.neg.sum())

    @property
    def count(self) -> int:
        """Valid rows (invalid rows are not part of any metric)."""
        return self.positives + self.negatives

    @property
    def invalid_rows(self) -> int:
        return int(sum(self.invalid.values()))

    @classmethod
    def empty(cls, buckets: int, thresholds: Sequence[float]) -> BinaryCounts:
        """The identity of :meth:`merge`: no rows."""
        t = len(thresholds)
        return cls(
            pos=np.zeros(buckets, np.int64),
            neg=np.zeros(buckets, np.int64),
            thresholds=tuple(thresholds),
            tp_at=np.zeros(t, np.int64),
            fp_at=np.zeros(t, np.int64),
            invalid={reason: 0 for reason in INVALID_REASONS},
        )

    def merge(self, other: BinaryCounts) -> BinaryCounts:
        """Counts of the union of both row sets (element-wise addition)."""
        if self.buckets != other.buckets or self.thresholds != other.thresholds:
            raise ValueError(
                "cannot merge counts with different buckets or thresholds: "
                f"{self.buckets}/{self.thresholds} vs {other.buckets}/{other.thresholds}"
            )
        reasons = dict.fromkeys([*self.invalid, *other.invalid], 0)
        return BinaryCounts(
            pos=self.pos + other.pos,
            neg=self.neg + other.neg,
            thresholds=self.thresholds,
            tp_at=self.tp_at + other.tp_at,
            fp_at=self.fp_at + other.fp_at,
            log_loss_sum=self.log_loss_sum + other.log_loss_sum,
            squared_error_sum=self.squared_error_sum + other.squared_error_sum,
            invalid={r: self.invalid.get(r, 0) + other.invalid.get(r, 0) for r in reasons},
        )

    def same_counts(self, other: BinaryCounts, rtol: float = 1e-12) -> bool:
        """Integer counts equal exactly, float sums to ``rtol`` (summation order differs)."""
        return (
            self.thresholds == other.thresholds
            and np.array_equal(self.pos, other.pos)
            and np.array_equal(self.neg, other.neg)
            and np.array_equal(self.tp_at, other.tp_at)
            and np.array_equal(self.fp_at, other.fp_at)
            and dict(self.invalid) == dict(other.invalid)
            and bool(np.isclose(self.log_loss_sum, other.log_loss_sum, rtol=rtol, atol=0))
            and bool(np.isclose(self.squared_error_sum, other.squared_error_sum, rtol=rtol, atol=0))
        )


def bucket_of(scores: np.ndarray, buckets: int) -> np.ndarray:
    """Bucket index of scores in [0, 1], as int64: the number of edges ``k / B`` (k ≥ 1) ≤ score.

    That is ``min(floor(score · B), B − 1)`` in exact arithmetic. In float64,
    ``score · B`` can round across an edge when ``B`` is not a power of two
    (``0.29 · 100 = 28.999…``), so the index is corrected by one where it disagrees
    with the comparison ``score >= k / B``: bucket ``b`` then holds exactly the
    scores with ``b / B <= score < (b + 1) / B``, which the bucket-boundary
    metrics (``best_f1_threshold``) rely on.
    """
    s = np.asarray(scores, np.float64)
    index = np.floor(s * buckets).astype(np.int64)
    if not is_power_of_two(buckets):  # for powers of two s·B is exact
        index -= s < index / buckets
        index += s >= (index + 1) / buckets
    return np.minimum(index, buckets - 1)


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def invalid_reason(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Index into :data:`INVALID_REASONS` of each row's first problem, or -1 when valid.

    ``labels`` and ``scores`` are float64 arrays where NaN in ``labels`` stands for a
    null label; a null score is passed as a masked position via ``np.nan`` too, so
    callers that must tell a null score from a NaN score use the Spark path.
    """
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    reason = np.full(labels.shape, -1, np.int64)
    checks = [
        np.isnan(labels),
        np.zeros(labels.shape, bool),
        np.isnan(scores),
        np.isinf(scores),
        (scores < 0) | (scores > 1),
        (labels != 0) & (labels != 1),
    ]
    for code in range(len(checks) - 1, -1, -1):
        reason[checks[code]] = code
    return reason


def count_binary(
    labels: np.ndarray,
    scores: np.ndarray,
    buckets: int,
    thresholds: Sequence[float],
) -> BinaryCounts:
    """Count tables of rows given as numpy arrays (the reference for the Spark path).

    Rows failing a check in :data:`INVALID_REASONS` are counted there and skipped.
    """
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    reason = invalid_reason(labels, scores)
    valid = reason < 0
    y = labels[valid] == 1
    s = scores[valid]
    bucket = bucket_of(s, buckets)
    clipped = np.clip(s, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    loss = np.where(y, -np.log(clipped), -np.log1p(-clipped))
    return BinaryCounts(
        pos=np.bincount(bucket[y], minlength=buckets).astype(np.int64),
        neg=np.bincount(bucket[~y], minlength=buckets).astype(np.int64),
        thresholds=tuple(thresholds),
        tp_at=np.array([int(np.sum(s[y] >= t)) for t in thresholds], np.int64),
        fp_at=np.array([int(np.sum(s[~y] >= t)) for t in thresholds], np.int64),
        log_loss_sum=float(loss.sum()),
        squared_error_sum=float(np.sum((s - y) ** 2)),
        invalid={r: int(np.sum(reason == i)) for i, r in enumerate(INVALID_REASONS)},
    )
