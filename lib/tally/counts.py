"""Count tables: the small, exact, mergeable summaries every metric is computed from.

A :class:`BinaryCounts` holds, for one score column over a set of rows:

* ``pos[b]``, ``neg[b]`` — positives and negatives whose score falls in bucket
  ``b = min(floor(score * B), B - 1)`` (buckets ascending in score);
* ``score_sum[b]`` — the sum of the scores in bucket ``b`` (calibration);
* ``tp_at[j]``, ``fp_at[j]`` — positives and negatives with ``score >= t_j``,
  compared on the raw score, so thresholded metrics are exact; ``fn_at[j]``,
  ``tn_at[j]`` — those with ``score < t_j``, summed directly rather than taken as
  ``P − tp``, so weighted sums do not lose a zero to float cancellation;
* ``log_loss_sum``, ``squared_error_sum`` — per-row sums for log loss and Brier;
* ``rows`` — valid rows; ``invalid`` — rows skipped, by reason.

With a weight column every count is a sum of weights (float64) and every sum is
weighted; ``rows`` and ``invalid`` still count rows. Without one, counts are
int64. Addition is the only operation (:meth:`BinaryCounts.merge`),
so the result does not depend on how rows were split into partitions, in which
order parts were added, or whether a task was retried. This module is pure
numpy: :func:`count_binary` is the in-memory reference of what the readers
compute per partition, with the rules of :mod:`tally.kernels` (validity, buckets,
threshold sides).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tally.kernels.buckets import bucket_of, predicted_positive
from tally.kernels.cells import LOG_LOSS_EPS
from tally.kernels.validity import INVALID_REASONS, invalid_reason

__all__ = [
    "INVALID_REASONS",
    "LOG_LOSS_EPS",
    "BinaryCounts",
    "bucket_of",
    "count_binary",
    "invalid_reason",
]

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
    score_sum: np.ndarray | None = None
    rows: int | None = None
    fn_at: np.ndarray | None = None
    tn_at: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.fn_at is None:  # exact for integer counts
            object.__setattr__(self, "fn_at", self.pos.sum() - self.tp_at)
        if self.tn_at is None:
            object.__setattr__(self, "tn_at", self.neg.sum() - self.fp_at)
        if self.score_sum is None:
            object.__setattr__(self, "score_sum", np.zeros(self.pos.shape[0], np.float64))
        if self.rows is None:
            object.__setattr__(self, "rows", int(self.pos.sum() + self.neg.sum()))

    @property
    def weighted(self) -> bool:
        return self.pos.dtype.kind == "f"

    @property
    def buckets(self) -> int:
        return int(self.pos.shape[0])

    @property
    def positives(self) -> float:
        """``P``: positive rows (the sum of their weights when weighted)."""
        total = self.pos.sum()
        return float(total) if self.weighted else int(total)

    @property
    def negatives(self) -> float:
        """``N``: negative rows (the sum of their weights when weighted)."""
        total = self.neg.sum()
        return float(total) if self.weighted else int(total)

    @property
    def count(self) -> int:
        """Valid rows (invalid rows are not part of any metric); unweighted."""
        return int(self.rows)  # type: ignore[arg-type]

    @property
    def total_weight(self) -> float:
        """``P + N``: what log loss, Brier and accuracy divide by."""
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
            score_sum=self.score_sum + other.score_sum,
            rows=self.count + other.count,
            fn_at=self.fn_at + other.fn_at,
            tn_at=self.tn_at + other.tn_at,
        )

    def same_counts(self, other: BinaryCounts, rtol: float = 1e-12) -> bool:
        """Integer counts equal exactly, float sums to ``rtol`` (summation order differs)."""

        def same(a: np.ndarray, b: np.ndarray) -> bool:
            if a.dtype.kind == "f" or b.dtype.kind == "f":
                return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=0))
            return np.array_equal(a, b)

        return (
            self.thresholds == other.thresholds
            and self.count == other.count
            and same(self.pos, other.pos)
            and same(self.neg, other.neg)
            and same(self.tp_at, other.tp_at)
            and same(self.fp_at, other.fp_at)
            and same(self.fn_at, other.fn_at)
            and same(self.tn_at, other.tn_at)
            and bool(np.allclose(self.score_sum, other.score_sum, rtol=rtol, atol=1e-300))
            and dict(self.invalid) == dict(other.invalid)
            and bool(np.isclose(self.log_loss_sum, other.log_loss_sum, rtol=rtol, atol=0))
            and bool(np.isclose(self.squared_error_sum, other.squared_error_sum, rtol=rtol, atol=0))
        )


def count_binary(
    labels: np.ndarray,
    scores: np.ndarray,
    buckets: int,
    thresholds: Sequence[float],
    weights: np.ndarray | None = None,
) -> BinaryCounts:
    """Count tables of rows given as numpy arrays (the reference for the Spark path).

    Rows failing a check in :data:`INVALID_REASONS` are counted there and skipped.
    With ``weights`` every count becomes a float64 sum of weights.
    """
    labels = np.asarray(labels, np.float64)
    scores = np.asarray(scores, np.float64)
    reason = invalid_reason(labels, scores, weights)
    valid = reason < 0
    y = labels[valid] == 1
    s = scores[valid]
    w = np.ones(s.shape) if weights is None else np.asarray(weights, np.float64)[valid]
    bucket = bucket_of(s, buckets)
    clipped = np.clip(s, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    loss = np.where(y, -np.log(clipped), -np.log1p(-clipped))

    def histogram(mask: np.ndarray) -> np.ndarray:
        if weights is None:
            return np.bincount(bucket[mask], minlength=buckets).astype(np.int64)
        return np.bincount(bucket[mask], weights=w[mask], minlength=buckets)

    def at_or_above(mask: np.ndarray) -> np.ndarray:
        sums = [np.sum(w[mask & predicted_positive(s, t)]) for t in thresholds]
        return np.array(sums, np.float64 if weights is not None else np.int64)

    def below(mask: np.ndarray) -> np.ndarray:
        sums = [np.sum(w[mask & ~predicted_positive(s, t)]) for t in thresholds]
        return np.array(sums, np.float64 if weights is not None else np.int64)

    return BinaryCounts(
        pos=histogram(y),
        neg=histogram(~y),
        thresholds=tuple(thresholds),
        tp_at=at_or_above(y),
        fp_at=at_or_above(~y),
        log_loss_sum=float(np.sum(w * loss)),
        squared_error_sum=float(np.sum(w * (s - y) ** 2)),
        invalid={r: int(np.sum(reason == i)) for i, r in enumerate(INVALID_REASONS)},
        score_sum=np.bincount(bucket, weights=w * s, minlength=buckets),
        rows=int(valid.sum()),
        fn_at=below(y),
        tn_at=below(~y),
    )
