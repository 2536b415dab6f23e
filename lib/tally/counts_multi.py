"""Count tables for multi-label and multiclass evaluation (pure numpy, mergeable).

A :class:`MultilabelCounts` holds, for ``K`` classes each with its own 0/1 label
and score in [0, 1] per row:

* ``pos[k, b]``, ``neg[k, b]`` — rows positive / negative for class ``k`` whose
  class-``k`` score falls in bucket ``b`` (the rule of :func:`tally.counts.bucket_of`);
* ``tp_at[j, k]``, ``fp_at[j, k]``, ``fn_at[j, k]`` — per threshold ``t_j`` and
  class ``k``, with ``score >= t_j`` predicted positive, compared on the raw score;
* ``exact_match_at[j]`` — rows whose ``K`` predictions at ``t_j`` all equal their
  labels (subset accuracy);
* ``rows`` — valid rows; ``invalid`` — rows skipped, by reason.

A :class:`MulticlassCounts` holds the ``K × K`` confusion matrix of one true
class and one predicted class per row (rows = true class, columns = predicted)
and, for each configured ``k``, the rows whose true class is among the ``k``
highest scores.

As for :class:`~tally.counts.BinaryCounts`, addition is the only operation
(``merge``), so results do not depend on partitioning or order. Tables may hold
int64 counts or float64 sums (weighted rows); nothing here assumes either.
:func:`count_multilabel` and :func:`count_multiclass` are the in-memory
references of what the readers compute per partition; their rows are assumed
valid (the readers count invalid rows, by the reasons of :mod:`tally.kernels.validity`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from tally.kernels.buckets import bucket_of, predicted_positive
from tally.kernels.validity import MULTICLASS_INVALID_REASONS, MULTILABEL_INVALID_REASONS

__all__ = [
    "MULTICLASS_INVALID_REASONS",
    "MULTILABEL_INVALID_REASONS",
    "MulticlassCounts",
    "MultilabelCounts",
    "argmax_predictions",
    "count_multiclass",
    "count_multilabel",
    "top_k_hits",
]


def _check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(str(c) for c in classes)
    if not names:
        raise ValueError("at least one class is required")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be distinct, got {names}")
    return names


def _check_shape(name: str, array: np.ndarray, shape: tuple[int, ...]) -> None:
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")


def _same(a: np.ndarray, b: np.ndarray, rtol: float) -> bool:
    """Equal shapes and values: exactly for integer arrays, to ``rtol`` for float sums."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer):
        return bool(np.array_equal(a, b))
    return bool(np.allclose(a, b, rtol=rtol, atol=0))


def _merge_invalid(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    reasons = dict.fromkeys([*a, *b], 0)
    return {r: a.get(r, 0) + b.get(r, 0) for r in reasons}


def _same_invalid(a: Mapping[str, float], b: Mapping[str, float], rtol: float) -> bool:
    """Equal invalid counts by reason; a reason missing on one side counts as 0."""
    reasons = [*dict.fromkeys([*a, *b])]
    return _same(
        np.array([a.get(r, 0) for r in reasons]), np.array([b.get(r, 0) for r in reasons]), rtol
    )


# --- multi-label ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MultilabelCounts:
    """Exact counts for multi-label metrics of ``K`` classes. See the module docstring.

    Shapes: ``pos``, ``neg`` are ``[K, B]``; ``tp_at``, ``fp_at``, ``fn_at`` are
    ``[T, K]``; ``exact_match_at`` is ``[T]``, with ``T = len(thresholds)`` (sorted
    ascending, as the config gives them). Checked on construction.
    """

    classes: tuple[str, ...]
    thresholds: tuple[float, ...]
    pos: np.ndarray
    neg: np.ndarray
    tp_at: np.ndarray
    fp_at: np.ndarray
    fn_at: np.ndarray
    exact_match_at: np.ndarray
    rows: int
    invalid: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "thresholds", tuple(float(x) for x in self.thresholds))
        k, t = len(self.classes), len(self.thresholds)
        if k == 0:
            raise ValueError("at least one class is required")
        if self.pos.ndim != 2:
            raise ValueError(f"pos has shape {self.pos.shape}, expected (K, B)")
        b = self.pos.shape[1]
        _check_shape("pos", self.pos, (k, b))
        _check_shape("neg", self.neg, (k, b))
        for name in ("tp_at", "fp_at", "fn_at"):
            _check_shape(name, getattr(self, name), (t, k))
        _check_shape("exact_match_at", self.exact_match_at, (t,))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def buckets(self) -> int:
        return int(self.pos.shape[1])

    @property
    def positives(self) -> np.ndarray:
        """Positive rows of each class, ``[K]``."""
        return self.pos.sum(axis=1)

    @property
    def negatives(self) -> np.ndarray:
        """Negative rows of each class, ``[K]``."""
        return self.neg.sum(axis=1)

    @property
    def total(self) -> float:
        """Rows counted in the tables (the weight sum for weighted tables).

        Every row is either positive or negative for every class, so this is
        ``pos[k].sum() + neg[k].sum()`` for any ``k``; it equals ``rows`` when
        rows are unweighted.
        """
        return (self.pos[0].sum() + self.neg[0].sum()).item()

    @property
    def invalid_rows(self) -> int:
        return sum(self.invalid.values())

    @classmethod
    def empty(
        cls,
        classes: Sequence[str],
        buckets: int,
        thresholds: Sequence[float],
        reasons: Iterable[str] = (),
        dtype: type = np.int64,
    ) -> MultilabelCounts:
        """The identity of :meth:`merge`: no rows (``reasons`` listed with 0 rows)."""
        names = _check_classes(classes)
        k, t = len(names), len(thresholds)
        return cls(
            classes=names,
            thresholds=tuple(float(x) for x in thresholds),
            pos=np.zeros((k, buckets), dtype),
            neg=np.zeros((k, buckets), dtype),
            tp_at=np.zeros((t, k), dtype),
            fp_at=np.zeros((t, k), dtype),
            fn_at=np.zeros((t, k), dtype),
            exact_match_at=np.zeros(t, dtype),
            rows=0,
            invalid=dict.fromkeys(reasons, 0),
        )

    def merge(self, other: MultilabelCounts) -> MultilabelCounts:
        """Counts of the union of both row sets (element-wise addition)."""
        if (
            self.classes != other.classes
            or self.thresholds != other.thresholds
            or self.buckets != other.buckets
        ):
            raise ValueError(
                "cannot merge multi-label counts with different classes, buckets or "
                f"thresholds: {self.classes}/{self.buckets}/{self.thresholds} vs "
                f"{other.classes}/{other.buckets}/{other.thresholds}"
            )
        return MultilabelCounts(
            classes=self.classes,
            thresholds=self.thresholds,
            pos=self.pos + other.pos,
            neg=self.neg + other.neg,
            tp_at=self.tp_at + other.tp_at,
            fp_at=self.fp_at + other.fp_at,
            fn_at=self.fn_at + other.fn_at,
            exact_match_at=self.exact_match_at + other.exact_match_at,
            rows=self.rows + other.rows,
            invalid=_merge_invalid(self.invalid, other.invalid),
        )

    def same_counts(self, other: MultilabelCounts, rtol: float = 1e-12) -> bool:
        """Integer counts equal exactly, float sums to ``rtol`` (summation order differs)."""
        return (
            self.classes == other.classes
            and self.thresholds == other.thresholds
            and all(
                _same(getattr(self, name), getattr(other, name), rtol)
                for name in ("pos", "neg", "tp_at", "fp_at", "fn_at", "exact_match_at", "rows")
            )
            and _same_invalid(self.invalid, other.invalid, rtol)
        )


def count_multilabel(
    labels: np.ndarray,
    scores: np.ndarray,
    classes: Sequence[str],
    buckets: int,
    thresholds: Sequence[float],
) -> MultilabelCounts:
    """Count tables of valid rows given as ``[n, K]`` arrays of 0/1 labels and scores in [0, 1].

    The reference for the Spark path: every row is assumed valid (no nulls, NaN,
    out-of-range scores or labels other than 0/1 — those are counted as invalid
    on the Spark side), so ``invalid`` is empty here. Counts are int64.
    """
    names = _check_classes(classes)
    k = len(names)
    y = np.asarray(labels)
    s = np.asarray(scores, np.float64)
    if y.ndim != 2 or y.shape[1] != k or s.shape != y.shape:
        raise ValueError(
            f"labels {y.shape} and scores {s.shape} must both have shape (n, {k}) for {k} classes"
        )
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1")
    positive = y == 1
    # flat index class * B + bucket, so one bincount fills the whole [K, B] table
    cell = np.arange(k, dtype=np.int64) * buckets + bucket_of(s, buckets)
    pos = np.bincount(cell[positive], minlength=k * buckets).reshape(k, buckets)
    neg = np.bincount(cell[~positive], minlength=k * buckets).reshape(k, buckets)
    tp, fp, fn, exact = [], [], [], []
    for t in thresholds:
        predicted = predicted_positive(s, t)
        tp.append(np.sum(predicted & positive, axis=0))
        fp.append(np.sum(predicted & ~positive, axis=0))
        fn.append(np.sum(~predicted & positive, axis=0))
        exact.append(int(np.sum(np.all(predicted == positive, axis=1))))
    t = len(thresholds)
    return MultilabelCounts(
        classes=names,
        thresholds=tuple(float(x) for x in thresholds),
        pos=pos.astype(np.int64),
        neg=neg.astype(np.int64),
        tp_at=np.array(tp, np.int64).reshape(t, k),
        fp_at=np.array(fp, np.int64).reshape(t, k),
        fn_at=np.array(fn, np.int64).reshape(t, k),
        exact_match_at=np.array(exact, np.int64).reshape(t),
        rows=int(y.shape[0]),
        invalid={},
    )


# --- multiclass -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MulticlassCounts:
    """Confusion matrix and top-k hits of single-label rows over ``K`` classes.

    ``confusion[i, j]`` counts rows of true class ``i`` predicted as class ``j``.
    ``top_k_hits[k]`` counts rows whose true class is among the ``k`` highest
    scores, ties broken towards the lowest class index (as :func:`numpy.argmax`).
    """

    classes: tuple[str, ...]
    confusion: np.ndarray
    top_k_hits: Mapping[int, int] = field(default_factory=dict)
    rows: int = 0
    invalid: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        k = len(self.classes)
        if k == 0:
            raise ValueError("at least one class is required")
        _check_shape("confusion", self.confusion, (k, k))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def total(self) -> float:
        """Rows in the confusion matrix (the weight sum for weighted tables)."""
        return self.confusion.sum().item()

    @property
    def invalid_rows(self) -> int:
        return sum(self.invalid.values())

    @classmethod
    def empty(
        cls,
        classes: Sequence[str],
        ks: Iterable[int] = (),
        reasons: Iterable[str] = (),
        dtype: type = np.int64,
    ) -> MulticlassCounts:
        """The identity of :meth:`merge`: no rows."""
        names = _check_classes(classes)
        return cls(
            classes=names,
            confusion=np.zeros((len(names), len(names)), dtype),
            top_k_hits=dict.fromkeys(_check_ks(ks), 0),
            rows=0,
            invalid=dict.fromkeys(reasons, 0),
        )

    def merge(self, other: MulticlassCounts) -> MulticlassCounts:
        """Counts of the union of both row sets (element-wise addition)."""
        if self.classes != other.classes or set(self.top_k_hits) != set(other.top_k_hits):
            raise ValueError(
                "cannot merge multiclass counts with different classes or k: "
                f"{self.classes}/{sorted(self.top_k_hits)} vs "
                f"{other.classes}/{sorted(other.top_k_hits)}"
            )
        return MulticlassCounts(
            classes=self.classes,
            confusion=self.confusion + other.confusion,
            top_k_hits={k: self.top_k_hits[k] + other.top_k_hits[k] for k in self.top_k_hits},
            rows=self.rows + other.rows,
            invalid=_merge_invalid(self.invalid, other.invalid),
        )

    def same_counts(self, other: MulticlassCounts, rtol: float = 1e-12) -> bool:
        """Integer counts equal exactly, float sums to ``rtol`` (summation order differs)."""
        ks = sorted(self.top_k_hits)
        return (
            self.classes == other.classes
            and ks == sorted(other.top_k_hits)
            and _same(self.confusion, other.confusion, rtol)
            and _same(
                np.array([self.top_k_hits[k] for k in ks]),
                np.array([other.top_k_hits[k] for k in ks]),
                rtol,
            )
            and _same(np.asarray(self.rows), np.asarray(other.rows), rtol)
            and _same_invalid(self.invalid, other.invalid, rtol)
        )


def _check_ks(ks: Iterable[int]) -> list[int]:
    out = sorted({int(k) for k in ks})
    if out and out[0] < 1:
        raise ValueError(f"top-k needs k >= 1, got {out[0]}")
    return out


def argmax_predictions(scores: np.ndarray) -> np.ndarray:
    """Predicted class of each row of an ``[n, K]`` score array: the highest score,
    the lowest class index among ties (int64)."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"scores must have shape (n, K) with K >= 1, got {s.shape}")
    return np.argmax(s, axis=1).astype(np.int64)


def top_k_hits(labels: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's true class is among its ``k`` highest scores (bool ``[n]``).

    Classes are ranked by score descending, then by index ascending, so with
    ``k = 1`` a hit is exactly ``argmax_predictions(scores) == labels``. The rank of
    the true class ``y`` is the number of classes scoring higher plus the number
    scoring the same with a lower index.
    """
    y = np.asarray(labels, np.int64)
    s = np.asarray(scores, np.float64)
    own = s[np.arange(y.shape[0]), y][:, None]
    lower_index = np.arange(s.shape[1])[None, :] < y[:, None]
    rank = np.sum(s > own, axis=1) + np.sum((s == own) & lower_index, axis=1)
    return rank < k


def count_multiclass(
    labels: np.ndarray,
    predictions: np.ndarray,
    classes: Sequence[str],
    top_k_scores: np.ndarray | None = None,
    ks: Iterable[int] = (),
) -> MulticlassCounts:
    """Confusion matrix of true and predicted class indices in ``[0, K)``, and top-k hits.

    ``top_k_scores`` (``[n, K]``) is required when ``ks`` is not empty. Rows are
    assumed valid, as for :func:`count_multilabel`. Counts are int64.
    """
    names = _check_classes(classes)
    k = len(names)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    p = np.asarray(predictions).astype(np.int64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and predictions {p.shape} differ in length")
    for name, a in (("labels", y), ("predictions", p)):
        if a.size and (a.min() < 0 or a.max() >= k):
            raise ValueError(f"{name} must be class indices in [0, {k})")
    confusion = np.bincount(y * k + p, minlength=k * k).reshape(k, k).astype(np.int64)
    wanted = _check_ks(ks)
    hits: dict[int, int] = {}
    if wanted:
        if top_k_scores is None:
            raise ValueError("top_k_scores are required to count top-k hits")
        s = np.asarray(top_k_scores, np.float64)
        if s.shape != (y.shape[0], k):
            raise ValueError(f"top_k_scores has shape {s.shape}, expected ({y.shape[0]}, {k})")
        hits = {kk: int(np.sum(top_k_hits(y, s, kk))) for kk in wanted}
    return MulticlassCounts(
        classes=names, confusion=confusion, top_k_hits=hits, rows=int(y.shape[0]), invalid={}
    )
