"""Binary count tables counted with numpy from Arrow batches (:mod:`tally.kernels.batches`).

A valid row adds to cell ``bucket·(T+1) + above`` (:class:`~tally.kernels.cells.BinaryLayout`),
an invalid row to cell ``−(1 + reason)``, the first failed check of
:func:`~tally.kernels.validity.binary_invalid_rows` naming the reason. Each cell sums
``n`` (rows), ``w`` (weights; ``n`` unweighted), ``wy`` (weighted positives), ``w_loss``
(weighted log loss, the score clipped to ``[ε, 1 − ε]``), ``w_sqerr`` (weighted
``(score − label)²``) and ``w_score`` (weighted scores). An invalid cell carries
``n`` and ``w`` (null, NaN and ±inf weights add 0); its other sums are 0: only its
``n`` is ever read.

Each task adds its rows into dense per-cell sums (``np.add.at`` into arrays of
``B·(T+1)`` cells, or of the ``B + 1`` cells buckets can reach where every threshold is
a bucket edge: :class:`Columns`; one row of cells per slice value), reusing its buffers
from batch to batch. Two ways to add the tasks' tables up:

* :class:`TaskTotals` (the usual one): the slice values each spec keeps are known
  before counting (the rest count as ``__other__``), so a task's tables are bounded
  and ``treeReduce`` adds them on the executors; one table reaches the driver.
* :func:`count_partition` (tables past :data:`TASK_MAX_CELLS`): a task emits its
  non-empty cells as Arrow batches, holding at most :data:`DENSE_MAX_CELLS` cells per
  (score column, slice spec) before it emits and starts again, and Spark SQL adds
  them up by key, as for every other count table.

Either way a retried task replaces its output rather than adding to it.

Per row the cost is numpy passes over the batch, so :func:`batch_rows` saves passes: the
scores are negated as they are converted to float64 (``−score`` and ``−loss`` then
cost nothing, and each row holds the negatives of what it adds), a batch whose minima
and maxima show no invalid row and no score outside ``[ε, 1 − ε]`` skips the per-row
checks, the clip and the clamp of the last bucket (rows with a null label, whose
reason is checked first, are filtered out in Arrow before, so that a few of them do not
send the whole batch through the per-row checks), and four sums are added in two
complex pairs (see :class:`Rows`). Cells are bit-identical either way. A row's log
loss is one ``log`` of its own label's probability, ``−ln q`` with ``q = p`` for
label 1 and ``q = 1 − p`` rounded once to float64 for label 0 (``p`` clipped), as
scikit-learn's ``log_loss`` computes it (``xlogy(1 − y, 1 − p)``), rather than
``log1p(−p)`` and ``ln p`` by label as Spark SQL's count table does: for scores stored
in 24 bits or fewer (float32) ``1 − p`` is exact and the two differ only in the
functions' last bits; for float64 scores the rounding of ``1 − p`` moves a label-0
row's loss by at most ``2^-53`` (the sums relatively by ~1e-16, cells of scores near 0
by ~1e-13 at most; docs/benchmarks.md). Unweighted batches that
need no per-row check take :func:`_fast_rows` (the same values from the stored scores,
in fewer passes), a row's count and positive ride in one exact sum (:data:`PACK`), and
:meth:`TaskTotals.add` takes :data:`KERNEL_ROWS` rows at a time (a batch whose rows all
qualify with its checks done once, and no Arrow slice per part). The measurements behind
these choices: docs/benchmarks.md, "Design measurements behind the code" and "The
counting pass on data of other shapes".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tally.kernels.batches import LABEL, WEIGHT, score_column
from tally.kernels.buckets import bucket_into, is_power_of_two
from tally.kernels.cells import LOG_LOSS_EPS, BinaryLayout, invalid_cell
from tally.kernels.slices import slice_groups
from tally.kernels.validity import INVALID_REASONS, binary_all_valid, binary_invalid_rows
from tally.plan import COUNT_COLUMNS, OTHER_VALUE, SUM_COLUMNS, slice_label

#: Most cells a task holds per (score column, slice spec): 2^23 cells are 48 bytes each
#: (n, w or PACK·n + wy, and four sums), about 400 MB, e.g. 64 slice values at 2^16 buckets
#: and one threshold. The ALL slice always fits one row of cells whatever the buckets.
DENSE_MAX_CELLS = 1 << 23

#: The sums of a cell besides ``n`` and ``w``, in output order.
SUMS = SUM_COLUMNS[2:]


def _float64(
    values: pa.Array, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric or boolean Arrow array as float64 (null as NaN), and its null mask.

    Without nulls, numbers are converted into ``out`` when given (a reused buffer).
    """
    if out is not None and not values.null_count and not pa.types.is_boolean(values.type):
        np.copyto(out, values.to_numpy(zero_copy_only=False), casting="unsafe")
        return out, None
    if not pa.types.is_float64(values.type):
        values = pc.cast(values, pa.float64())
    array = np.asarray(values.to_numpy(zero_copy_only=False), np.float64)
    nulls = pc.is_null(values).to_numpy(zero_copy_only=False) if values.null_count else None
    return array, nulls


def _labels(values: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels as numpy, and their null mask: without nulls in their own type (no copy
    for numbers), with nulls as float64 (null as NaN)."""
    if not values.null_count:
        return values.to_numpy(zero_copy_only=False), None
    return _float64(values)


def _minus_float64(values: pa.Array, out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``−values`` as float64 (null as NaN), and the null mask: negated in the copy that
    converts them, into ``out`` when there are no nulls."""
    if not values.null_count and not pa.types.is_boolean(values.type):
        np.negative(values.to_numpy(zero_copy_only=False), out=out, casting="unsafe")
        return out, None
    array, nulls = _float64(values)
    return np.negative(array, out=array), nulls


def _extremes(a: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` of ``a`` (NaN when it holds a NaN); ``(0, 0)`` when empty."""
    return (float(a.min()), float(a.max())) if len(a) else (0.0, 0.0)


class _Checked(NamedTuple):
    """One batch's rows for one score column after the validity checks."""

    y: np.ndarray  # labels of the valid rows (their own type, or float64)
    minus_s: np.ndarray  # their negated scores, float64
    w: np.ndarray | None  # their weights (weighted only)
    rows: np.ndarray | None  # their rows in the batch; None when all rows are valid
    invalid: np.ndarray  # rows of the batch that are invalid
    reason: np.ndarray  # the first problem of each (index into INVALID_REASONS)
    invalid_weight: np.ndarray | None  # their finite weights, 0 for others (weighted)
    extremes: tuple[float, float]  # of the valid rows' minus_s (_extremes)


def _check(
    labels: pa.Array, scores: pa.Array, weights: pa.Array | None, out: np.ndarray
) -> _Checked:
    """The validity checks of :func:`~tally.kernels.validity.binary_invalid_rows`, per
    row only where the batch's extremes say some row fails
    (:func:`~tally.kernels.validity.binary_all_valid`); ``out`` takes the negated scores."""
    if labels.null_count:
        return _check_labelled(labels, scores, weights, out)
    y, y_null = _labels(labels)
    minus_s, s_null = _minus_float64(scores, out)
    w = _float64(weights)[0] if weights is not None else None
    none = np.zeros(0, np.int64)
    extremes = _extremes(minus_s)
    if binary_all_valid(y, extremes, w):
        no_weights = None if w is None else np.zeros(0)
        return _Checked(y, minus_s, w, None, none, none, no_weights, extremes)
    invalid, reason = binary_invalid_rows(y, y_null, minus_s, s_null, w)
    invalid_weight = None
    if w is not None:
        wi = w[invalid]
        invalid_weight = np.where(np.isfinite(wi), wi, 0.0)
    keep = np.ones(len(minus_s), bool)
    keep[invalid] = False
    rows = np.flatnonzero(keep)
    w = w[rows] if w is not None else None
    minus_s = minus_s[rows]
    return _Checked(y[rows], minus_s, w, rows, invalid, reason, invalid_weight, _extremes(minus_s))


#: The reason of a row without a label: the first check, whatever else the row has.
_NULL_LABEL = INVALID_REASONS.index("null_label")


def _check_labelled(
    labels: pa.Array, scores: pa.Array, weights: pa.Array | None, out: np.ndarray
) -> _Checked:
    """:func:`_check` of a batch with null labels: those rows are invalid (``null_label``
    is checked first), so they are filtered out in Arrow and the rest checked as a batch
    of its own, which takes the shortcut when nothing else is wrong (a few null labels
    would otherwise send every row through the per-row checks)."""
    has_label = labels.is_valid()
    keep = has_label.to_numpy(zero_copy_only=False)
    kept, nulls = np.flatnonzero(keep), np.flatnonzero(~keep)
    rest = weights.filter(has_label) if weights is not None else None
    inner = _check(labels.filter(has_label), scores.filter(has_label), rest, out[: len(kept)])
    invalid_weight = None
    if weights is not None:
        w = _float64(weights.take(pa.array(nulls)))[0]
        invalid_weight = np.concatenate([np.where(np.isfinite(w), w, 0.0), inner.invalid_weight])
    return _Checked(
        inner.y,
        inner.minus_s,
        inner.w,
        kept if inner.rows is None else kept[inner.rows],
        np.concatenate([nulls, kept[inner.invalid]]),
        np.concatenate([np.full(len(nulls), _NULL_LABEL, np.int64), inner.reason]),
        invalid_weight,
        inner.extremes,
    )


def valid_rows(
    labels: pa.Array, scores: pa.Array, weights: pa.Array | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The valid rows of one batch (the checks of
    :func:`~tally.kernels.validity.binary_invalid_rows`): whether
    each has label 1, its score (float64) and its weight (None unweighted)."""
    checked = _check(labels, scores, weights, np.empty(len(scores)))
    return checked.y == 1, np.negative(checked.minus_s), checked.w


@dataclass
class Rows:
    """The valid rows of one batch for one score column, ready to add into cells.

    Four of a cell's sums are added in pairs, as the real and imaginary parts of one
    complex number: ``n`` with ``w_sqerr``, ``w_score`` with ``w_loss``. One
    ``ufunc.at`` of complex values costs about what one of floats does, and touches
    one place in memory instead of two. The second pair holds ``−score`` and
    ``−loss = ln p`` and is subtracted. Unweighted, the real part of the first is
    ``PACK + label``: a row's count and its positive in one exact sum, which
    :class:`CellSums` unpacks into ``n`` and ``wy`` (no scatter of its own for ``wy``;
    :data:`PACK`). Weighted, it is 1. ``cell`` and the arrays may be views of a
    :class:`Workspace`: valid until the next batch is prepared with the same
    workspace.
    """

    cell: np.ndarray  # column of the accumulators (:class:`Columns`): the cell or its rank
    count_sqerr: np.ndarray  # complex: c + i·w·(score − label)² per row, added (c: _pack_labels)
    score_loss: np.ndarray  # complex: −(w·score + i·w·loss) per row, subtracted
    wy: np.ndarray  # w·label (the label unweighted) per row
    w: np.ndarray | None  # weights (weighted only)
    positives: np.ndarray | None  # indices (into cell) of the rows with label 1, when computed
    batch_rows: np.ndarray | None  # their rows in the batch; None when all rows are valid
    invalid_reason: np.ndarray  # reason of each invalid row of the batch
    invalid_weight: np.ndarray | None  # their finite weights (weighted only)
    invalid_batch_rows: np.ndarray

    def sums(self) -> dict[str, np.ndarray]:
        """What each row adds to ``w`` (weighted only) and each of SUMS, by name."""
        out = {} if self.w is None else {"w": self.w}
        return out | {
            "wy": self.wy,
            "w_loss": -self.score_loss.imag,
            "w_sqerr": self.count_sqerr.imag,
            "w_score": -self.score_loss.real,
        }


class Workspace:
    """Buffers reused from batch to batch by one task.

    A fresh numpy temporary the size of a batch costs page faults on every batch; the
    per-row cell ids, log loss and squared error are written into these instead.
    """

    def __init__(self) -> None:
        self.rows = 0
        self.floats: list[np.ndarray] = []
        self.pairs: list[np.ndarray] = []
        self.cells = np.empty(0, np.int64)
        self.flags = np.empty(0, bool)
        self.narrow = np.empty(0, np.float32)  # float32 scores times B (batch_rows)
        self.labels: dict[np.dtype, np.ndarray] = {}  # 1 − label, by the labels' type

    def get(
        self, rows: int
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
        """Two float64 buffers (negated scores, scratch), two complex ones (of
        :attr:`Rows.count_sqerr` and :attr:`Rows.score_loss`), an int64 and a bool one,
        of ``rows`` values."""
        if rows > self.rows:
            self.rows = rows
            self.floats = [np.empty(rows) for _ in range(2)]
            self.pairs = [np.empty(rows, np.complex128) for _ in range(2)]
            self.cells = np.empty(rows, np.int64)
            self.flags = np.empty(rows, bool)
            self.narrow = np.empty(rows, np.float32)
            self.labels = {}
        return (
            [f[:rows] for f in self.floats],
            [c[:rows] for c in self.pairs],
            self.cells[:rows],
            self.flags[:rows],
        )

    def one_minus(self, y: np.ndarray) -> np.ndarray:
        """``1 − y`` of labels 0 and 1 in their own type (``not y`` for booleans), into
        a buffer kept per type (at most :attr:`rows` values)."""
        out = self.labels.get(y.dtype)
        if out is None:
            out = self.labels[y.dtype] = np.empty(self.rows, y.dtype)
        if y.dtype == np.bool_:
            return np.logical_not(y, out=out[: len(y)])
        return np.subtract(y.dtype.type(1), y, out=out[: len(y)])


def batch_rows(
    labels: pa.Array,
    scores: pa.Array,
    weights: pa.Array | None,
    layout: BinaryLayout,
    work: Workspace | None = None,
) -> Rows:
    """Validate one batch's rows for one score column and compute what each row adds.

    Most batches have no invalid row, and their scores are inside ``[ε, 1 − ε]``: the
    minima and maxima say so, and skip the per-row checks, the clip and the clamp of
    the last bucket. The cell is :meth:`~tally.kernels.cells.BinaryLayout.cell` of
    :func:`~tally.kernels.buckets.bucket_of` and
    :func:`~tally.kernels.buckets.thresholds_passed`, computed on the negated scores:
    ``−s <= −t`` is ``s >= t`` (negation is exact). Unweighted batches that need none
    of that, nor the per-row checks (but for null labels), take :func:`_fast_rows`,
    which computes the same values in fewer passes.
    """
    work = work or Workspace()
    if weights is None:
        fast = _fast_rows(labels, scores, layout, work)
        if fast is not None:
            return fast
    (minus_s_buffer, _), *_ = work.get(len(labels))
    y, minus_s, w, rows, invalid, reason, invalid_weight, extremes = _check(
        labels, scores, weights, minus_s_buffer
    )
    (_, scratch), (count_sqerr, score_loss), cell, flag = work.get(len(minus_s))
    low, high = -extremes[1], -extremes[0]  # of the valid scores
    column_of_bucket = _columns(layout).of_bucket
    if column_of_bucket is None:
        bucket_into(minus_s, layout.buckets, cell, scratch, top=high >= 1.0)
        cell *= layout.per_bucket
        for t in layout.thresholds:
            np.less_equal(minus_s, -t, out=flag)  # s >= t
            cell += flag
    else:
        if rows is None and pa.types.is_float32(scores.type) and is_power_of_two(layout.buckets):
            # s·B is exact in float32 for B a power of two, and truncation is floor for
            # s·B >= 0: the bucket from the stored scores, half the bytes of minus_s
            narrow = work.narrow[: len(minus_s)]
            np.multiply(scores.to_numpy(), np.float32(layout.buckets), out=narrow)
            cell[...] = narrow
        else:
            bucket_into(minus_s, layout.buckets, cell, scratch, top=False)
        if high >= 1.0:  # bucket B (a score of 1) has the last column; the others are their own
            np.minimum(cell, column_of_bucket[-1], out=cell)
    np.equal(y, 1, out=flag)
    positives = np.flatnonzero(flag)
    by_label = _ByLabel(positives, flag)
    if _one_minus_exact(scores.type, low) and high <= 1.0 - LOG_LOSS_EPS:
        by_label.fill_exact(score_loss.imag, count_sqerr.imag, minus_s, scratch)
    else:
        clipped = minus_s
        if low < LOG_LOSS_EPS or high > 1.0 - LOG_LOSS_EPS:
            clipped = np.clip(minus_s, -(1.0 - LOG_LOSS_EPS), -LOG_LOSS_EPS, out=scratch)
        by_label.fill_ln_q(score_loss.imag, clipped)
        by_label.fill(count_sqerr.imag, minus_s, _sqerr_label0, _sqerr_label1)
    if w is None:
        np.copyto(score_loss.real, minus_s)
        _pack_labels(y, count_sqerr.real)
    else:
        np.multiply(w, minus_s, out=score_loss.real)
        np.multiply(score_loss.imag, w, out=score_loss.imag)
        np.multiply(count_sqerr.imag, w, out=count_sqerr.imag)
        count_sqerr.real[...] = 1.0
    wy = y if w is None else w * y
    return Rows(
        cell, count_sqerr, score_loss, wy, w, positives, rows, reason, invalid_weight, invalid
    )


#: Unweighted, each row adds ``PACK + label`` to the real part of its cell's first
#: complex sum (:class:`Rows`), so that the sum is ``PACK·n + wy``: integers, exact in
#: float64 while below 2^53, which holds while fewer than PACK rows were added since
#: :meth:`CellSums._unpack` (``n < PACK`` and ``wy <= n`` make it below ``PACK²`` =
#: 2^52); then ``n = floor(sum / PACK)`` and ``wy = sum − PACK·n``, both exact. It
#: saves the scatter of ``wy`` and the positives' indices.
PACK = float(1 << 26)
#: Most rows a :class:`CellSums` adds between two unpackings.
PACK_ROWS = (1 << 26) - 1


def _pack_labels(y: np.ndarray, out: np.ndarray) -> None:
    """``PACK + y`` into ``out`` (labels 0/1 of any numeric or boolean type)."""
    np.add(y, PACK, out=out, dtype=np.float64)


def _fast_rows(
    labels: pa.Array, scores: pa.Array, layout: BinaryLayout, work: Workspace
) -> Rows | None:
    """:func:`batch_rows` of an unweighted batch, or None where this does not apply:
    scores neither float32 nor float64, a null score, a threshold off the bucket edges
    or ``B`` no power of two, or a valid row that needs the per-row checks, the clip
    (a score outside ``[ε, 1 − ε]``; for float32 outside ``[2^-30, 1 − ε]``, see
    :func:`_one_minus_exact`) or the clamp of bucket ``B`` (a score of 1). Rows with a
    null label are filtered out in Arrow first, as in :func:`_check_labelled`.

    Every value comes from the stored scores and labels, bit for bit what the general
    path computes from the negated float64 copy: the bucket ``trunc(s·B)`` (``s·B``
    exact; below ``B`` the bucket is its own column, :class:`Columns`); ``d = s − y``
    and the squared error ``d²`` (``s²``, or ``(1 − s)²`` with ``1 − s`` rounded as
    the general path rounds it); ``−loss`` is ``ln q`` of the own label's probability
    (:meth:`_ByLabel.fill_ln_q`): for float32 ``q = 1 − |d|`` (``1 − s`` or ``s``,
    exact), for float64 ``q = |s − (1 − y)|`` (``s``, or ``1 − s`` rounded once).
    Unweighted, no pass selects the positives for ``wy``: their count rides with ``n``
    (:data:`PACK`).
    """
    if scores.null_count or not len(scores) or not _fast_layout(layout, scores.type):
        return None
    nulls = kept = None
    if labels.null_count:
        has_label = labels.is_valid()
        keep = has_label.to_numpy(zero_copy_only=False)
        kept, nulls = np.flatnonzero(keep), np.flatnonzero(~keep)
        labels, scores = labels.filter(has_label), scores.filter(has_label)
    found = _fast_batch(labels, scores, layout)
    if found is None:
        return None
    y, s = found
    cell, count_sqerr, score_loss = _fast_values(y, s, layout.buckets, work)
    if nulls is None:
        none = np.zeros(0, np.int64)
        return Rows(cell, count_sqerr, score_loss, y, None, None, None, none, None, none)
    reason = np.full(len(nulls), _NULL_LABEL, np.int64)
    return Rows(cell, count_sqerr, score_loss, y, None, None, kept, reason, None, nulls)


def _fast_values(
    y: np.ndarray, s: np.ndarray, buckets: int, work: Workspace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The column, ``(PACK + y) + i·(s − y)²`` and ``−s + i·ln q`` of each row (views of
    ``work``): the arithmetic of :func:`_fast_rows`, whose conditions the caller has
    checked (float32 or float64 scores ``s`` in range, labels ``y`` 0 or 1, ``buckets``
    a power of two whose buckets are their own columns)."""
    (d, scratch), (count_sqerr, score_loss), cell, _ = work.get(len(s))
    np.multiply(s, s.dtype.type(buckets), out=cell, casting="unsafe")  # trunc: floor
    np.subtract(s, y, out=d, dtype=np.float64)
    np.multiply(d, d, out=count_sqerr.imag)
    if s.dtype == np.float32:
        q = np.subtract(1.0, np.abs(d, out=d), out=d)
        np.log(q, out=score_loss.imag)
        np.negative(s, out=score_loss.real, casting="unsafe")
    else:
        # q = |s − (1 − y)|: s for label 1, 1 − s (rounded once) for label 0
        q = np.subtract(s, work.one_minus(y), out=scratch)
        np.log(np.abs(q, out=q), out=score_loss.imag)
        np.negative(s, out=score_loss.real)
    _pack_labels(y, count_sqerr.real)
    return cell, count_sqerr, score_loss


def _fast_layout(layout: BinaryLayout, kind: pa.DataType) -> bool:
    """Whether scores of type ``kind`` counted into ``layout`` may take the fast path:
    float32 or float64, ``B`` a power of two, every threshold a bucket edge."""
    if not (pa.types.is_float32(kind) or pa.types.is_float64(kind)):
        return False
    return is_power_of_two(layout.buckets) and _columns(layout).of_bucket is not None


def _fast_batch(
    labels: pa.Array, scores: pa.Array, layout: BinaryLayout
) -> tuple[np.ndarray, np.ndarray] | None:
    """The labels and scores of a batch without null labels as numpy (no copy) where its
    rows take the fast path (the conditions of :func:`_fast_rows`; any part of the batch
    then qualifies too, its extremes lying within the batch's); None otherwise."""
    if labels.null_count or scores.null_count or not len(scores):
        return None
    if not _fast_layout(layout, scores.type):
        return None
    y = labels.to_numpy(zero_copy_only=False)
    s = scores.to_numpy()
    low, high = float(s.min()), float(s.max())  # NaN where any score is NaN
    least = _EXACT_LOW if pa.types.is_float32(scores.type) else LOG_LOSS_EPS
    if not (low >= least and high <= 1.0 - LOG_LOSS_EPS):
        return None
    if not binary_all_valid(y, (-high, -low), None):
        return None
    return y, s


@functools.lru_cache(maxsize=32)
def _cell_of_bucket(layout: BinaryLayout) -> np.ndarray | None:
    """The cell of each bucket ``0 … B`` (``B``: a score of 1, before the clamp to the
    last bucket) where every threshold is a bucket edge ``k / B``; None otherwise.

    Bucket ``b`` is the number of edges ``j / B`` (``j ≥ 1``) at or below the score, so
    for a threshold ``t = k / B`` (as float64, as the edges are computed) ``s >= t``
    exactly when ``b >= k``: ``above`` is then a function of the bucket, and the cell
    one lookup instead of a comparison and an addition per threshold.
    """
    b = layout.buckets
    edges = []
    for t in layout.thresholds:
        if not np.isfinite(t):
            return None
        k = round(t * b)
        if k / b != t:
            return None
        edges.append(k)
    bucket = np.arange(b + 1)
    cell = np.minimum(bucket, b - 1) * layout.per_bucket
    for k in edges:
        cell += bucket >= k
    return cell


class Columns(NamedTuple):
    """The columns of a task's dense accumulators (:class:`CellSums`) for one layout.

    Where every threshold is a bucket edge (:func:`_cell_of_bucket`), a bucket reaches
    one cell only, so of the ``B·(T+1)`` cells at most ``B + 1`` are ever added to:
    the accumulators then hold one column per reachable cell (``cells``, increasing)
    and a row's column is ``of_bucket[bucket]``, its cell's rank. A bucket's cell
    ``b·(T+1) + above`` increases with ``b``, so below ``B`` the rank is the bucket
    itself: only bucket ``B`` (a score of 1) needs ``of_bucket``, which gives it the
    last column (``B``, its own where a threshold is 1, else ``B − 1``'s). The scatter of
    :meth:`CellSums.add` then touches ``(T+1)`` times fewer bytes (a row's cost there
    is mostly a cache miss on its cell: docs/benchmarks.md, "The counting pass on data
    of other shapes"). Otherwise the columns are the cells themselves (``cells`` and
    ``of_bucket`` None). The sums of a cell are the same rows added in the same order
    either way.
    """

    width: int
    cells: np.ndarray | None
    of_bucket: np.ndarray | None

    def cell(self, column: np.ndarray) -> np.ndarray:
        """The cells of accumulator ``column`` indices."""
        return column if self.cells is None else self.cells[column]


@functools.lru_cache(maxsize=32)
def _columns(layout: BinaryLayout) -> Columns:
    cell_of_bucket = _cell_of_bucket(layout)
    if cell_of_bucket is None:
        return Columns(layout.cells, None, None)
    cells, rank = np.unique(cell_of_bucket, return_inverse=True)
    if not np.array_equal(rank[:-1], np.arange(layout.buckets)):  # see Columns
        raise AssertionError("a bucket below B is not its own column")
    return Columns(len(cells), cells, rank.astype(np.int64))


# Per-row values by label, of ``m`` = the negated (clipped) score ``−p``: ``−loss`` is
# ``ln q`` of the own label's probability ``q``, ``p`` for label 1 and ``1 − p`` (rounded
# once) for label 0; ``(score − label)²`` is ``p²`` or ``(1 − p)²``, of the unclipped
# score.

#: Below this, a float32 score's ``1 − p`` may round in float64 (its last bit is under 2^-53).
_EXACT_LOW = 2.0**-30


def _one_minus_exact(kind: pa.DataType, low: float) -> bool:
    """Whether ``1 − p`` is exact in float64 for every score of the batch: scores stored
    with at most 24 significant bits (float32, float16, integers) and none in
    ``(0, 2^-30)`` (``low``: the smallest). Then ``(1 − q)²`` is the squared error of
    either label bit for bit (:meth:`_ByLabel.fill_exact`)."""
    narrow = pa.types.is_float32(kind) or pa.types.is_float16(kind) or pa.types.is_integer(kind)
    return narrow and low >= _EXACT_LOW


def _sqerr_label0(m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.multiply(m, m, out=out)


def _sqerr_label1(m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    one_minus_p = np.add(m, 1.0, out=out)
    return np.multiply(one_minus_p, one_minus_p, out=one_minus_p)


#: One of the functions above: per-row values of ``m`` (into ``out`` when given).
PerRow = Callable[..., np.ndarray]


class _ByLabel:
    """Fills per-row values that depend on the label: the majority label's function
    over all rows in place, then the minority's over its rows only (cheaper than
    ``where=``-masked ufuncs, which pass over every row twice)."""

    def __init__(self, positives: np.ndarray, is_positive: np.ndarray) -> None:
        self.majority_positive = 2 * len(positives) > len(is_positive)
        self.minority = (
            np.flatnonzero(~is_positive) if self.majority_positive else positives
        )

    def fill(self, out: np.ndarray, m: np.ndarray, label0: PerRow, label1: PerRow) -> None:
        major, minor = (label1, label0) if self.majority_positive else (label0, label1)
        major(m, out)
        out[self.minority] = minor(m[self.minority])

    def fill_ln_q(self, ln_q: np.ndarray, m: np.ndarray) -> None:
        """``−loss = ln q`` into ``ln_q``, ``q`` the probability of the row's own label
        (``p`` for label 1, ``1 − p`` rounded once for label 0; ``m`` = ``−p``, clipped):
        ``q`` is built in ``ln_q`` and its ``log`` taken in place."""
        if self.majority_positive:
            np.negative(m, out=ln_q)
            ln_q[self.minority] = m[self.minority] + 1.0
        else:
            np.add(m, 1.0, out=ln_q)
            ln_q[self.minority] = -m[self.minority]
        np.log(ln_q, out=ln_q)

    def fill_exact(
        self, ln_p: np.ndarray, sqerr: np.ndarray, m: np.ndarray, scratch: np.ndarray
    ) -> None:
        """``−loss`` into ``ln_p`` and ``(score − label)²`` into ``sqerr``, where ``1 − p``
        is exact (:func:`_one_minus_exact`; no clip needed): ``q``, the probability of
        the row's own label (``1 − p`` for label 0, ``p`` for label 1), then ``ln q`` in
        one ``log`` and the squared error ``(1 − q)²``, which is ``p²`` or ``(1 − p)²``
        bit for bit: where label 0 is the majority, ``m²`` over every row and
        ``(1 + m)²`` over the positives (one pass fewer than ``1 − q`` and its square)."""
        q, rows = scratch, self.minority
        if self.majority_positive:
            np.negative(m, out=q)
            q[rows] = m[rows] + 1.0
            np.subtract(1.0, q, out=sqerr)  # (1 − q)²: every row's, one formula
            np.multiply(sqerr, sqerr, out=sqerr)
        else:
            np.add(m, 1.0, out=q)
            q[rows] = -m[rows]
            np.multiply(m, m, out=sqerr)
            sqerr[rows] = np.square(m[rows] + 1.0)
        np.log(q, out=ln_p)


class CellSums:
    """Dense per-cell sums of one (score column, slice spec) in one task.

    ``n`` and each sum are ``[slots, cells]`` arrays; a slot is one slice value
    (the ALL slice has one). Slots are given to values as they appear, up to
    ``max_slots``; :meth:`full` says when the next batch's values do not fit.
    ``n`` (as float64: exact below 2^53) and ``w_sqerr``, and ``w_score`` and
    ``w_loss``, are the real and imaginary parts of two complex arrays, which
    :meth:`add` adds to in one pass each (see :class:`Rows`). Unweighted, the real part
    holds ``PACK·n + wy`` of the rows added since the last unpacking (:data:`PACK`),
    which :attr:`n` and :attr:`sums` add into their own arrays first.
    """

    def __init__(self, layout: BinaryLayout, max_slots: int) -> None:
        self.layout = layout
        self.columns = _columns(layout)
        self.max_slots = max_slots
        self.slots: dict[tuple, int] = {}
        shape = (max_slots, self.columns.width)
        # np.zeros maps pages lazily: only the slots in use take memory.
        self.count_sqerr = np.zeros(shape, np.complex128)
        self.score_loss = np.zeros(shape, np.complex128)
        self.packed = not layout.weighted
        self.pending = 0  # rows added since the last unpacking (packed only)
        self._n = np.zeros(shape) if self.packed else self.count_sqerr.real
        self._sums = {"w": np.zeros(shape)} if layout.weighted else {}
        self._sums |= {
            "wy": np.zeros(shape),
            "w_loss": self.score_loss.imag,
            "w_sqerr": self.count_sqerr.imag,
            "w_score": self.score_loss.real,
        }

    @property
    def n(self) -> np.ndarray:
        """Rows per ``[slot, column]`` (float64)."""
        self._unpack()
        return self._n

    @property
    def sums(self) -> dict[str, np.ndarray]:
        """Each sum (``w`` weighted only, then :data:`SUMS`) per ``[slot, column]``."""
        self._unpack()
        return self._sums

    def _unpack(self) -> None:
        """Add the packed ``PACK·n + wy`` of the slots in use into ``n`` and ``wy``."""
        if not self.pending:
            return
        packed = self.count_sqerr.real[: len(self.slots)]
        n = np.floor(packed / PACK)
        self._n[: len(self.slots)] += n
        self._sums["wy"][: len(self.slots)] += packed - n * PACK
        packed[...] = 0.0
        self.pending = 0

    def by_cell(self, slot: int = 0) -> dict[str, np.ndarray]:
        """``n`` and each sum of ``slot``, one entry per cell of the layout (0 where none)."""
        out = {}
        for name, total in {"n": self.n, **self.sums}.items():
            full = np.zeros(self.layout.cells)
            full[self.columns.cell(np.arange(self.columns.width))] = total[slot]
            out[name] = full
        return out

    def full(self, values: Sequence[tuple]) -> bool:
        new = sum(1 for v in values if v not in self.slots)
        return len(self.slots) + new > self.max_slots

    def add(self, rows: Rows, groups: np.ndarray | None, values: Sequence[tuple]) -> None:
        """Add ``rows``; ``groups`` (per batch row) index ``values`` (None: one group)."""
        slot_of = np.array([self.slots.setdefault(v, len(self.slots)) for v in values], np.int64)
        index = rows.cell
        if groups is not None:
            group = groups if rows.batch_rows is None else groups[rows.batch_rows]
            index = slot_of[group] * self.columns.width + rows.cell
        if not self.packed:
            np.add.at(self.count_sqerr.reshape(-1), index, rows.count_sqerr)
            np.subtract.at(self.score_loss.reshape(-1), index, rows.score_loss)
            np.add.at(self._sums["wy"].reshape(-1), index, rows.wy)
            np.add.at(self._sums["w"].reshape(-1), index, rows.w)
            return
        for start in range(0, len(index), PACK_ROWS):
            part = slice(start, start + PACK_ROWS)
            if self.pending + len(index[part]) > PACK_ROWS:
                self._unpack()
            self.pending += len(index[part])
            np.add.at(self.count_sqerr.reshape(-1), index[part], rows.count_sqerr[part])
            np.subtract.at(self.score_loss.reshape(-1), index[part], rows.score_loss[part])

    def add_packed(
        self, column: np.ndarray, count_sqerr: np.ndarray, score_loss: np.ndarray
    ) -> None:
        """Add unweighted rows of slot 0 (:attr:`Rows.cell`, :attr:`Rows.count_sqerr`,
        :attr:`Rows.score_loss`) as :meth:`add` does, at most :data:`PACK_ROWS` of them."""
        if self.pending + len(column) > PACK_ROWS:
            self._unpack()
        self.pending += len(column)
        np.add.at(self.count_sqerr[0], column, count_sqerr)
        np.subtract.at(self.score_loss[0], column, score_loss)

    def __getstate__(self) -> dict:
        """Only the non-empty cells travel (a task's table is mostly empty cells)."""
        cells = [(v, s, np.flatnonzero(self.n[s])) for v, s in self.slots.items()]
        return {
            "layout": self.layout,
            "max_slots": self.max_slots,
            "cells": [
                (v, s, c, self.n[s, c], {k: t[s, c] for k, t in self.sums.items()})
                for v, s, c in cells
            ],
        }

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["layout"], state["max_slots"])  # type: ignore[misc]
        for value, slot, cell, n, sums in state["cells"]:
            self.slots[value] = slot
            self.n[slot, cell] = n
            for name, total in self.sums.items():
                total[slot, cell] = sums[name]

    def emit(self) -> list[tuple[tuple, np.ndarray, dict[str, np.ndarray]]]:
        """(slice values, cell, {n, w, sums}) of every non-empty cell, per slot held."""
        out = []
        for value, slot in self.slots.items():
            column = np.flatnonzero(self.n[slot])
            n = self.n[slot, column].astype(np.int64)
            columns = {"n": n}
            if not self.layout.weighted:
                columns["w"] = n.astype(np.float64)
            columns |= {name: total[slot, column] for name, total in self.sums.items()}
            out.append((value, self.columns.cell(column), columns))
        return out


def _invalid_cells(rows: Rows, groups: np.ndarray | None, values: Sequence[tuple]) -> list:
    """(slice values, cell, {n, w, sums}) of the invalid rows of one batch."""
    if not len(rows.invalid_reason):
        return []
    group = (
        groups[rows.invalid_batch_rows]
        if groups is not None
        else np.zeros(len(rows.invalid_reason), np.int64)
    )
    reasons = len(INVALID_REASONS)
    key = group * reasons + rows.invalid_reason
    unique, inverse = np.unique(key, return_inverse=True)
    n = np.bincount(inverse, minlength=len(unique))
    weight = rows.invalid_weight if rows.invalid_weight is not None else np.ones(len(key))
    w = np.bincount(inverse, weights=weight, minlength=len(unique))
    out = []
    for i, k in enumerate(unique.tolist()):
        g, reason = divmod(k, reasons)
        zero = np.zeros(1)
        columns = {"n": n[i : i + 1], "w": w[i : i + 1], **dict.fromkeys(SUMS, zero)}
        out.append((values[g], np.array([invalid_cell(reason)], np.int64), columns))
    return out


def _batch(
    score_index: int, spec: int, width: int, parts: list[tuple[tuple, np.ndarray, dict]]
) -> pa.RecordBatch:
    """One output batch of the cells ``parts`` (:func:`tally.plan.cell_keys_schema`)."""
    sizes = [len(cell) for _, cell, _ in parts]
    total = sum(sizes)
    columns: dict[str, pa.Array] = {
        "score_index": pa.array(np.full(total, score_index, np.int32)),
        "spec": pa.array(np.full(total, spec, np.int32)),
    }
    group = np.repeat(np.arange(len(parts)), sizes)
    for j in range(width):
        per_part = [value[j] if j < len(value) else None for value, _, _ in parts]
        columns[f"v{j}"] = pa.array(per_part, pa.string()).take(pa.array(group))

    def joined(name: str, dtype: type) -> pa.Array:
        arrays = [c[name] for _, _, c in parts]
        return pa.array(np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype))

    columns["cell"] = pa.array(
        np.concatenate([cell for _, cell, _ in parts]).astype(np.int64)
        if parts
        else np.zeros(0, np.int64)
    )
    columns["n"] = joined("n", np.int64)
    for name in ("w", *SUMS):
        columns[name] = joined(name, np.float64)
    return pa.RecordBatch.from_pydict(columns)


def count_partition(
    batches: Iterator[pa.RecordBatch],
    scores: int,
    spec_columns: list[list[str]],
    layout: BinaryLayout,
    width: int,
    dense_max_cells: int = DENSE_MAX_CELLS,
) -> Iterator[pa.RecordBatch]:
    """One task's rows in, its count table out (see the module docstring).

    Batches hold ``y`` (labels), ``s0 … s{scores−1}`` (scores), ``w`` (weights, when
    weighted) and the slice columns (any type :func:`slice_groups` takes);
    ``spec_columns[k−1]`` names the columns of slice spec ``k`` (spec 0 is ALL).
    """
    max_slots = max(1, dense_max_cells // layout.cells)
    specs = [[], *spec_columns]
    sums = {(i, k): CellSums(layout, 1 if k == 0 else max_slots) for i in range(scores)
            for k in range(len(specs))}
    work = Workspace()
    for batch in batches:
        weights = batch.column(WEIGHT) if layout.weighted else None
        grouped = [(None, [()])] + [slice_groups(batch, names) for names in spec_columns]
        for i in range(scores):
            labels, scores_i = batch.column(LABEL), batch.column(score_column(i))
            rows = batch_rows(labels, scores_i, weights, layout, work)
            for k, (groups, values) in enumerate(grouped):
                held = sums[(i, k)]
                if held.full(values):
                    yield _batch(i, k, width, held.emit())
                    held = sums[(i, k)] = CellSums(layout, held.max_slots)
                if held.max_slots < len(values):  # one batch has more values than fit
                    yield _batch(i, k, width, _sparse_cells(rows, groups, values, layout))
                else:
                    held.add(rows, groups, values)
                invalid = _invalid_cells(rows, groups, values)
                if invalid:
                    yield _batch(i, k, width, invalid)
    for (i, k), held in sums.items():
        if held.slots:
            yield _batch(i, k, width, held.emit())


#: Rows :meth:`TaskTotals.add` takes through :func:`batch_rows` and into the sums at a
#: time: the per-row buffers of 2^15 rows (about 1.5 MB) stay mostly in a core's L2
#: cache between the passes that write and read them, where those of a reader's batch
#: of 2^18 rows (10 MB) go to L3 and back on every pass (docs/benchmarks.md, "The
#: counting pass on data of other shapes").
KERNEL_ROWS = 1 << 15

#: Rows per batch the arrow reader reads for :class:`TaskTotals` (binary counting; other
#: readers keep :data:`tally.spark.readers.arrow.files.BATCH_ROWS`). The kernel takes a
#: batch :data:`KERNEL_ROWS` rows at a time whatever its size, so a batch's size only
#: sets what is paid once per batch (pyarrow's decoding of a batch, the fast path's
#: checks) and the sums do not depend on it (a multiple of :data:`KERNEL_ROWS`: the
#: same parts in the same order). With two workers reading and counting at once,
#: batches of 2^20 rows cost less than of 2^18, most with float64 scores
#: (docs/benchmarks.md, "The counting pass on data of other shapes").
READ_ROWS = 1 << 20

#: Most cells the dense tables of one task of :class:`TaskTotals` may have, over all
#: score columns and slice specs: 2^23 cells of 48 bytes, about 400 MB
#: at most, paged in only where rows land. Plans past it go through Spark SQL.
TASK_MAX_CELLS = 1 << 23


class TaskTotals:
    """A task's dense count tables per (score column, slice spec), added up by a Python
    reduce (``treeReduce``: :func:`tally.spark.readers.arrow.run.collect_binary`)
    instead of Spark SQL.

    Spec 0 is ALL. Spec ``k ≥ 1`` keeps the values ``kept[k−1]`` (chosen on the driver
    from every value's row count, as Spark SQL chooses them) and counts all its other
    values in one ``__other__`` slot, so each table has at most
    ``(kept + 1)·B·(T+1)`` valid cells and the tasks' tables can be added on the
    executors (``treeReduce``) with one reaching the driver: no per-task rows go
    through Spark SQL. Pickled (between executors and to the driver) as the non-empty
    cells only.
    """

    def __init__(
        self,
        scores: int,
        layout: BinaryLayout,
        spec_columns: Sequence[Sequence[str]] = (),
        kept: Sequence[Collection[tuple]] = (),
    ) -> None:
        self.layout = layout
        self.scores = scores
        self.work = Workspace()
        self.spec_columns = [list(names) for names in spec_columns]
        self.kept = [set(values) for values in kept]
        slots = [1] + [len(values) + 1 for values in self.kept]
        reasons = len(INVALID_REASONS)
        self.sums = {
            (i, k): CellSums(layout, slots[k]) for i in range(scores) for k in range(len(slots))
        }
        self.invalid_n = {key: np.zeros((slots[key[1]], reasons), np.int64) for key in self.sums}
        self.invalid_w = {key: np.zeros((slots[key[1]], reasons)) for key in self.sums}

    def add(self, batch: pa.RecordBatch) -> None:
        """Add one batch's rows, :data:`KERNEL_ROWS` at a time (the same rows in the same
        order: the sums do not depend on it)."""
        if self._add_fast(batch):
            return
        for start in range(0, max(batch.num_rows, 1), KERNEL_ROWS):
            self._add(batch.slice(start, KERNEL_ROWS))

    def _add_fast(self, batch: pa.RecordBatch) -> bool:
        """Add an unweighted, unsliced batch whose every part would take
        :func:`_fast_rows` (:func:`_fast_batch`, checked once per batch and score
        column), :data:`KERNEL_ROWS` rows at a time, with no Arrow object, check or
        :class:`Rows` per part: the same values added in the same order as
        :meth:`_add`'s, at a smaller fixed cost per part. False (nothing added) where
        some score column does not qualify."""
        if self.layout.weighted or self.spec_columns:
            return False
        columns = []
        for i in range(self.scores):
            ys = _fast_batch(batch.column(LABEL), batch.column(score_column(i)), self.layout)
            if ys is None:
                return False
            columns.append(ys)
        buckets = self.layout.buckets
        for i, (y, s) in enumerate(columns):
            held = self.sums[(i, 0)]
            held.slots.setdefault((), 0)
            for start in range(0, len(s), KERNEL_ROWS):
                part = slice(start, start + KERNEL_ROWS)
                held.add_packed(*_fast_values(y[part], s[part], buckets, self.work))
        return True

    def _add(self, batch: pa.RecordBatch) -> None:
        weights = batch.column(WEIGHT) if self.layout.weighted else None
        grouped: list[tuple[np.ndarray | None, list[tuple]]] = [(None, [()])]
        for names, kept in zip(self.spec_columns, self.kept, strict=True):
            groups, values = slice_groups(batch, names)
            other = (OTHER_VALUE,) * len(names)
            grouped.append((groups, [v if v in kept else other for v in values]))
        for i in range(self.scores):
            rows = batch_rows(
                batch.column(LABEL), batch.column(score_column(i)), weights, self.layout, self.work
            )
            for k, (groups, values) in enumerate(grouped):
                held = self.sums[(i, k)]
                held.add(rows, groups, values)
                if not len(rows.invalid_reason):
                    continue
                slot = np.zeros(len(rows.invalid_reason), np.int64)
                if groups is not None:
                    slot_of = np.array([held.slots[v] for v in values], np.int64)
                    slot = slot_of[groups[rows.invalid_batch_rows]]
                weight = 1.0 if rows.invalid_weight is None else rows.invalid_weight
                np.add.at(self.invalid_n[(i, k)], (slot, rows.invalid_reason), 1)
                np.add.at(self.invalid_w[(i, k)], (slot, rows.invalid_reason), weight)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "work"}  # buffers stay behind

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, work=Workspace())

    def merge(self, other: TaskTotals) -> TaskTotals:
        """Add ``other`` into this one, slice value by slice value, and return it."""
        for key, mine in self.sums.items():
            theirs = other.sums[key]
            for value, slot in theirs.slots.items():
                at = mine.slots.setdefault(value, len(mine.slots))
                mine.n[at] += theirs.n[slot]
                for name, total in mine.sums.items():
                    total[at] += theirs.sums[name][slot]
                self.invalid_n[key][at] += other.invalid_n[key][slot]
                self.invalid_w[key][at] += other.invalid_w[key][slot]
        return self

    def table(self, score_names: Sequence[str], slices: Sequence[Sequence[str]]) -> pa.Table:
        """The non-empty cells as a count table (:data:`tally.plan.COUNT_COLUMNS`); ``slices``
        are the specs' column names, for the ``slice`` labels."""
        parts = []
        for (i, k), held in self.sums.items():
            cells = held.emit()
            for value, slot in held.slots.items():
                reasons = np.flatnonzero(self.invalid_n[(i, k)][slot])
                if len(reasons):
                    columns = {
                        "n": self.invalid_n[(i, k)][slot, reasons],
                        "w": self.invalid_w[(i, k)][slot, reasons],
                    }
                    zero = np.zeros(len(reasons))
                    invalid = invalid_cell(reasons)
                    cells.append((value, invalid, columns | dict.fromkeys(SUMS, zero)))
            batch = _batch(i, k, 0, cells)
            labels = [slice_label(slices[k - 1] if k else (), v) for v, _, _ in cells]
            sizes = [len(cell) for _, cell, _ in cells]
            names = pa.array([score_names[i]] * batch.num_rows, pa.string())
            part_of_row = pa.array(np.repeat(np.arange(len(cells)), sizes))
            label = pa.array(labels, pa.string()).take(part_of_row)
            columns = [names, label, *(batch.column(c) for c in ("cell", "n", "w", *SUMS))]
            parts.append(pa.Table.from_arrays(columns, names=list(COUNT_COLUMNS)))
        return pa.concat_tables(parts)


def _sparse_cells(
    rows: Rows, groups: np.ndarray | None, values: Sequence[tuple], layout: BinaryLayout
) -> list[tuple[tuple, np.ndarray, dict]]:
    """The valid cells of one batch by (slice value, cell), without dense arrays."""
    group = np.zeros(len(rows.cell), np.int64) if groups is None else groups
    if groups is not None and rows.batch_rows is not None:
        group = groups[rows.batch_rows]
    width = _columns(layout).width
    key = group.astype(np.int64) * width + rows.cell
    unique, inverse = np.unique(key, return_inverse=True)
    n = np.bincount(inverse, minlength=len(unique))
    names = ("w", *SUMS) if layout.weighted else SUMS
    per_row = rows.sums()
    sums = {name: np.bincount(inverse, per_row[name], len(unique)) for name in names}
    slot, column = np.divmod(unique, width)
    cell = _columns(layout).cell(column)
    out = []
    bounds = np.flatnonzero(np.diff(slot)) + 1
    for part in np.split(np.arange(len(unique)), bounds):
        if not len(part):
            continue
        columns = {"n": n[part]}
        if not layout.weighted:
            columns["w"] = n[part].astype(np.float64)
        columns |= {name: total[part] for name, total in sums.items()}
        out.append((values[int(slot[part[0]])], cell[part], columns))
    return out
