"""What a cell id of the count table means, per task: the one definition of each layout.

A count table has one row per (score column, slice, cell); the cell id says what the
row's sums count. For every task an invalid row goes to cell ``−(1 + reason)``, its
first problem's index into the task's reasons (:mod:`tally.kernels.validity`); the
other cells are the task's own:

binary (B buckets, T thresholds): :class:`BinaryLayout`
    ``bucket·(T+1) + above``: one key carries the histogram bucket and the exact side
    of every threshold (``above``: how many thresholds the score reaches). Cells sum
    ``n``, ``w``, ``wy`` and the weighted log loss (score clipped to
    :data:`LOG_LOSS_EPS`), squared error and score.
multi-label (K classes): :class:`MultilabelLayout`
    one cell ``(k·B + bucket)·(T+1) + above`` per class carrying the class label;
    :data:`ROW_CELL` once per valid row; :func:`exact_match_cell` per threshold at
    which all K predictions equal the labels (subset accuracy).
multiclass (K classes): :class:`MulticlassLayout`
    one confusion cell ``true·K + predicted`` per row (per pixel for pixel arrays);
    :func:`top_k_cell` per configured k the true class is among the k highest scores.

The readers compute these ids (numpy kernels, Spark SQL); the tasks' decoders
(:mod:`tally.tasks`) read them back into counts with the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tally.plan import CountPlan

#: Binary ``w_loss`` sums the log loss of the score clipped to ``[ε, 1 − ε]``, as
#: scikit-learn's ``log_loss`` clips float64 scores.
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)

#: Multi-label: the cell counting valid rows (one per row, not per class).
ROW_CELL = -100


def invalid_cell(reason: int | np.ndarray) -> int | np.ndarray:
    """The cell of an invalid row whose first problem is ``reason`` (any task)."""
    return -1 - reason


def reason_of_cell(cell: int | np.ndarray) -> int | np.ndarray:
    """The reason index of an invalid row's cell: :func:`invalid_cell` inverted."""
    return -1 - cell


def exact_match_cell(j: int) -> int:
    """Multi-label: the cell of rows whose K predictions at threshold j all equal their labels."""
    return -101 - j


def top_k_cell(k: int) -> int:
    """Multiclass: the cell of rows whose true class is among the k highest scores."""
    return -100 - k


@dataclass(frozen=True)
class BinaryLayout:
    """Binary cells: ``bucket·(T+1) + above`` for ``B`` buckets and ``T`` thresholds."""

    buckets: int
    thresholds: tuple[float, ...]
    weighted: bool

    @classmethod
    def of(cls, plan: CountPlan) -> BinaryLayout:
        return cls(plan.buckets, tuple(plan.thresholds), plan.weighted)

    @property
    def per_bucket(self) -> int:
        """Cells per bucket: ``T + 1`` (a score reaches 0 … T of the thresholds)."""
        return len(self.thresholds) + 1

    @property
    def cells(self) -> int:
        """Valid cells per (score column, slice): ``B·(T+1)``."""
        return self.buckets * self.per_bucket

    def cell(self, bucket: np.ndarray, above: np.ndarray) -> np.ndarray:
        return bucket * self.per_bucket + above

    def split(self, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(bucket, above) of valid cells: :meth:`cell` inverted."""
        return np.divmod(cell, self.per_bucket)


@dataclass(frozen=True)
class MultilabelLayout:
    """Multi-label cells, and where each lives in a flat numpy array.

    Valid element cells are ``0 … K·B·(T+1) − 1``; the negative cells (invalid
    reasons, :data:`ROW_CELL`, exact-match cells down to ``exact_match_cell(T−1)``) are
    shifted up by :attr:`offset` so that every cell is an index ``cell + offset``.
    """

    classes: int
    buckets: int
    thresholds: tuple[float, ...]
    weighted: bool

    @classmethod
    def of(cls, plan: CountPlan) -> MultilabelLayout:
        return cls(len(plan.classes), plan.buckets, tuple(plan.thresholds), plan.weighted)

    @property
    def per_bucket(self) -> int:
        return len(self.thresholds) + 1

    @property
    def per_class(self) -> int:
        """Element cells per class: ``B·(T+1)``."""
        return self.buckets * self.per_bucket

    @property
    def offset(self) -> int:
        return -exact_match_cell(len(self.thresholds))

    @property
    def size(self) -> int:
        return self.offset + self.classes * self.per_class

    def split(self, cell: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class, bucket, above) of valid element cells."""
        klass, rest = np.divmod(cell, self.per_class)
        bucket, above = np.divmod(rest, self.per_bucket)
        return klass, bucket, above


@dataclass(frozen=True)
class MulticlassLayout:
    """Multiclass cells: ``true·K + predicted`` (row-major confusion matrix)."""

    classes: int

    @classmethod
    def of(cls, plan: CountPlan) -> MulticlassLayout:
        return cls(len(plan.classes))

    @property
    def cells(self) -> int:
        return self.classes * self.classes
