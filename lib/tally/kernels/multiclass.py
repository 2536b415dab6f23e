"""Multiclass count tables counted with numpy from Arrow batches (:mod:`tally.kernels.batches`).

The cells are :class:`~tally.kernels.cells.MulticlassLayout`'s, as the Spark SQL reader
makes them (:mod:`tally.spark.readers.sql.multiclass`), for each of the three inputs
(``plan.multiclass_input``):

``prediction``
    ``y`` an integer class, ``s{i}`` an integer predicted class: one cell per row,
    ``y·K + prediction``.
``scores``
    ``y`` an integer class, ``s{i}`` an array of K numbers: one cell ``y·K + argmax``
    per row (the first maximum: the lowest index wins a tie, as Spark's
    ``array_position(s, array_max(s))`` and :func:`numpy.argmax`), and one
    :func:`~tally.kernels.cells.top_k_cell` per configured k when fewer than k scores
    rank ahead of the true class's (a score ranks ahead when it is greater, or equal
    at a lower index).
``pixels``
    ``y`` and ``s{i}`` arrays of integer classes, one per pixel: one cell per pixel;
    a row with empty arrays adds nothing.

An invalid row (an invalid pixel: its label or prediction null or outside [0, K))
adds one cell ``−(1 + reason)``, the first of
:data:`~tally.kernels.validity.MULTICLASS_INVALID_REASONS` that applies, checked in
the SQL reader's order (:func:`row_reasons`, :func:`pixel_reasons`). Cells sum ``n``
(entries), ``w`` (their row's weight; ``n`` unweighted) and ``wy`` (0: a multiclass
cell carries no label). An invalid cell's ``w`` adds its rows' finite weights only
(only its ``n`` is ever read).

Per batch, the cells are numbers ``cell + offset`` (:attr:`Layout.offset`), so that one
``np.bincount`` adds them into a dense table of :attr:`Layout.size` (K² + K + 100)
entries: the floor's ``bincount(label·K + prediction)``. A batch whose nulls, minima
and maxima show no invalid row skips the per-row checks. Two ways to add the tasks'
tables up, as for binary (:mod:`tally.kernels.binary`): :class:`TaskTotals` (dense,
the slice values each spec keeps known before counting, added by ``treeReduce``) and
:func:`count_partition` (each task emits its non-empty cells, Spark SQL adds them up).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tally.kernels.batches import LABEL, WEIGHT, score_column
from tally.kernels.cells import invalid_cell, top_k_cell
from tally.kernels.multilabel import _rows as multilabel_rows
from tally.kernels.slices import slice_groups
from tally.kernels.validity import MULTICLASS_INVALID_REASONS
from tally.plan import COUNT_COLUMNS, OTHER_VALUE, CountPlan, slice_label

#: What ``plan.multiclass_input`` may be (:mod:`tally.tasks.multiclass`).
INPUTS = ("prediction", "scores", "pixels")

#: Most cells a task holds densely (all score columns and slice values together): 2^23
#: cells of ``n`` and ``w`` are 128 MB.
TASK_MAX_CELLS = 1 << 23

_REASON = {name: i for i, name in enumerate(MULTICLASS_INVALID_REASONS)}


@dataclass(frozen=True)
class Layout:
    """What the kernels need of a multiclass plan, and where each cell lives in a dense
    table: ``cell + offset`` for every cell (confusion ``0 … K² − 1``, invalid ``−1 …``,
    top-k ``−101 … −(100 + K)``)."""

    classes: int
    input: str = "prediction"
    top_k: tuple[int, ...] = ()
    weighted: bool = False

    @classmethod
    def of(cls, plan: CountPlan) -> Layout:
        if plan.multiclass_input not in INPUTS:
            raise ValueError(
                f"multiclass_input must be one of {list(INPUTS)}, got {plan.multiclass_input!r}"
            )
        return cls(len(plan.classes), plan.multiclass_input, tuple(plan.top_k), plan.weighted)

    @property
    def offset(self) -> int:
        return -top_k_cell(self.classes)

    @property
    def size(self) -> int:
        return self.offset + self.classes * self.classes

    @property
    def one_per_row(self) -> bool:
        """Whether every row adds exactly one cell (so a slice value's cells count its rows)."""
        return self.input == "prediction" or (self.input == "scores" and not self.top_k)


@dataclass
class Entries:
    """The cells one batch adds for one score column: ``index`` (``cell + offset``) of
    each, and the batch row it belongs to (``rows``; None: entry ``j`` is row ``j``)."""

    index: np.ndarray
    rows: np.ndarray | None


# --- reading a batch's columns ---------------------------------------------------------------


def _ints(values: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer values as numpy (nulls read 0) and the null mask (None: no nulls)."""
    if not values.null_count:
        return values.to_numpy(zero_copy_only=False), None
    nulls = values.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(values, 0).to_numpy(zero_copy_only=False), nulls


def _lengths(arrays: pa.Array) -> np.ndarray:
    """Length of each array, −1 for a null array."""
    return pc.fill_null(pc.list_value_length(arrays), -1).to_numpy(zero_copy_only=False)


def _flat(arrays: pa.Array, keep: np.ndarray | None) -> pa.Array:
    """The elements of the arrays of rows ``keep`` (None: every non-null array), in order."""
    flat = pc.list_flatten(arrays)
    if keep is not None:
        parents = pc.list_parent_indices(arrays).to_numpy(zero_copy_only=False)
        flat = flat.filter(pa.array(keep[parents]))
    return flat


def _in_range(values: np.ndarray, k: int) -> bool:
    return not len(values) or bool(values.min() >= 0 and values.max() < k)


def _out_of_range(values: np.ndarray, k: int) -> np.ndarray:
    return (values < 0) | (values >= k)


def weight_reasons(weights: np.ndarray) -> np.ndarray | None:
    """Each row's weight problem (index into the reasons, −1 when fine; null as NaN):
    ``null_weight`` (null, NaN), ``invalid_weight`` (negative, +inf); None when none has one."""
    if not len(weights) or (weights.min() >= 0 and weights.max() < np.inf):
        return None
    reason = np.full(len(weights), -1, np.int64)
    reason[(weights < 0) | (weights == np.inf)] = _REASON["invalid_weight"]
    reason[np.isnan(weights)] = _REASON["null_weight"]
    return reason


class _Reasons:
    """Each row's first problem, marked check by check (a later check never overrides)."""

    def __init__(self, rows: int) -> None:
        self.reason = np.full(rows, -1, np.int64)

    def mark(self, failed: np.ndarray | None, name: str) -> None:
        if failed is not None:
            self.reason[(self.reason < 0) & failed] = _REASON[name]

    def then(self, other: np.ndarray | None) -> None:
        """Mark ``other``'s reasons (e.g. :func:`weight_reasons`) where none is yet."""
        if other is not None:
            free = self.reason < 0
            self.reason[free] = other[free]


# --- the three inputs ------------------------------------------------------------------------


def _confusion_or_invalid(
    y: np.ndarray, predicted: np.ndarray, reason: np.ndarray, layout: Layout
) -> np.ndarray:
    """``y·K + predicted + offset`` where valid, else ``invalid_cell(reason) + offset``."""
    with np.errstate(over="ignore"):  # invalid rows' labels may be anything
        cell = y.astype(np.int64) * layout.classes + predicted
    return np.where(reason < 0, cell, invalid_cell(reason)) + layout.offset


def prediction_entries(
    labels: pa.Array, predictions: pa.Array, weight_reason: np.ndarray | None, layout: Layout
) -> Entries:
    """One cell per row: confusion ``y·K + prediction``, or the row's first problem
    (null label, label outside [0, K), null prediction, prediction outside [0, K), weight)."""
    k = layout.classes
    y, y_null = _ints(labels)
    p, p_null = _ints(predictions)
    clean = y_null is None and p_null is None and weight_reason is None
    if clean and _in_range(y, k) and _in_range(p, k):
        index = y.astype(np.int64) * k
        index += p
        index += layout.offset
        return Entries(index, None)
    checks = _Reasons(len(y))
    checks.mark(y_null, "null_label")
    checks.mark(_out_of_range(y, k), "label_out_of_range")
    checks.mark(p_null, "null_prediction")
    checks.mark(_out_of_range(p, k), "prediction_out_of_range")
    checks.then(weight_reason)
    return Entries(_confusion_or_invalid(y, p, checks.reason, layout), None)


def score_matrix(scores: pa.Array, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``[rows of K scores, K]`` float64 scores (null as NaN) and those rows."""
    lengths = _lengths(scores)
    full = lengths == k
    every = bool(full.all())
    flat = _flat(scores, None if every else full)
    values = np.asarray(pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    return values.reshape(-1, k), np.flatnonzero(full)


def top_k_ranks(matrix: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How many scores rank ahead of the true class's, per row: greater, or equal at a
    lower index (the tie rule of argmax)."""
    true_score = matrix[np.arange(len(y)), y][:, None]
    ahead = matrix > true_score
    ahead |= (matrix == true_score) & (np.arange(matrix.shape[1]) < y[:, None])
    return ahead.sum(axis=1)


def scores_entries(
    labels: pa.Array, scores: pa.Array, weight_reason: np.ndarray | None, layout: Layout
) -> Entries:
    """One cell per row (confusion ``y·K + argmax`` or the row's first problem: null
    label, label outside [0, K), null array, an array of another length than K, a null,
    NaN or ±inf score, weight) and one top-k cell per configured k it hits."""
    k = layout.classes
    y, y_null = _ints(labels)
    matrix, full = score_matrix(scores, k)
    checks = _Reasons(len(y))
    checks.mark(y_null, "null_label")
    checks.mark(_out_of_range(y, k), "label_out_of_range")
    lengths = _lengths(scores)
    checks.mark(lengths < 0, "null_scores")
    checks.mark(lengths != k, "wrong_length")
    bad_score = np.zeros(len(y), bool)
    bad_score[full] = ~np.isfinite(matrix).all(axis=1)
    checks.mark(bad_score, "invalid_score")
    checks.then(weight_reason)
    reason = checks.reason
    valid_of_full = reason[full] < 0
    valid = full[valid_of_full]
    chosen = matrix[valid_of_full]
    predicted = np.zeros(len(y), np.int64)
    predicted[valid] = np.argmax(chosen, axis=1)
    index = _confusion_or_invalid(y, predicted, reason, layout)
    if not layout.top_k:
        return Entries(index, None)
    ranks = top_k_ranks(chosen, y[valid].astype(np.int64))
    parts, rows = [index], [np.arange(len(y))]
    for top in layout.top_k:
        hits = valid[ranks < top]
        parts.append(np.full(len(hits), top_k_cell(top) + layout.offset, np.int64))
        rows.append(hits)
    return Entries(np.concatenate(parts), np.concatenate(rows))


def pixel_entries(
    labels: pa.Array,
    predictions: pa.Array,
    weight_reason: np.ndarray | None,
    layout: Layout,
    need_rows: bool,
) -> Entries:
    """One cell per pixel of the valid rows (confusion, or the pixel's first problem:
    null label, label outside [0, K), null prediction, prediction outside [0, K)), one
    cell per invalid row (null label array, null prediction array, arrays of different
    lengths, weight). ``need_rows``: say each pixel's row (weighted or sliced)."""
    k = layout.classes
    label_lengths, prediction_lengths = _lengths(labels), _lengths(predictions)
    checks = _Reasons(len(label_lengths))
    checks.mark(label_lengths < 0, "null_label")
    checks.mark(prediction_lengths < 0, "null_prediction")
    checks.mark(label_lengths != prediction_lengths, "wrong_length")
    checks.then(weight_reason)
    row_ok = checks.reason < 0
    every = bool(row_ok.all())
    y, y_null = _ints(_flat(labels, None if every else row_ok))
    p, p_null = _ints(_flat(predictions, None if every else row_ok))
    rows = None
    if need_rows or not every:
        valid_rows = np.flatnonzero(row_ok)
        rows = np.repeat(valid_rows, label_lengths[valid_rows])
    if y_null is None and p_null is None and _in_range(y, k) and _in_range(p, k):
        index = y.astype(np.int64) * k
        index += p
        index += layout.offset
    else:
        pixels = _Reasons(len(y))
        pixels.mark(y_null, "null_label")
        pixels.mark(_out_of_range(y, k), "label_out_of_range")
        pixels.mark(p_null, "null_prediction")
        pixels.mark(_out_of_range(p, k), "prediction_out_of_range")
        index = _confusion_or_invalid(y, p, pixels.reason, layout)
    if every:
        return Entries(index, rows)
    invalid_rows = np.flatnonzero(~row_ok)
    invalid = invalid_cell(checks.reason[invalid_rows]) + layout.offset
    assert rows is not None
    return Entries(np.concatenate([invalid, index]), np.concatenate([invalid_rows, rows]))


def batch_entries(
    batch: pa.RecordBatch,
    i: int,
    layout: Layout,
    weight_reason: np.ndarray | None,
    need_rows: bool = False,
) -> Entries:
    """Every cell one batch adds for its ``i``-th score column (see the module docstring)."""
    labels, outputs = batch.column(LABEL), batch.column(score_column(i))
    if layout.input == "prediction":
        return prediction_entries(labels, outputs, weight_reason, layout)
    if layout.input == "scores":
        return scores_entries(labels, outputs, weight_reason, layout)
    return pixel_entries(labels, outputs, weight_reason, layout, need_rows)


def batch_weights(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray | None]:
    """The weight column as summed (null, NaN and ±inf weights, only invalid rows have
    them, add 0) and each row's weight problem (:func:`weight_reasons`)."""
    checked = np.asarray(batch.column(WEIGHT).to_numpy(zero_copy_only=False), np.float64)
    return np.where(np.isfinite(checked), checked, 0.0), weight_reasons(checked)


# --- adding entries up -----------------------------------------------------------------------


def add_entries(
    n: np.ndarray,
    w: np.ndarray | None,
    entries: Entries,
    slot: np.ndarray | None,
    weights: np.ndarray | None,
    size: int,
) -> None:
    """Add ``entries`` into dense ``n`` (and ``w``) tables of ``size`` cells per slot;
    ``slot``: each batch row's slot (None: all in slot 0)."""
    index = entries.index
    if slot is not None:
        row_slot = slot if entries.rows is None else slot[entries.rows]
        index = row_slot * size + index
    n += np.bincount(index, minlength=len(n))
    if w is not None and weights is not None:
        per_entry = weights if entries.rows is None else weights[entries.rows]
        w += np.bincount(index, weights=per_entry, minlength=len(w))


class TaskTotals:
    """A task's dense tables per (score column, slice spec), added up by a Python reduce
    (``treeReduce``: :func:`tally.spark.readers.arrow.multiclass.collect_multiclass`).

    Spec 0 is ALL (one slot). Spec ``k ≥ 1`` keeps the values ``kept[k−1]`` (chosen on
    the driver from every value's row count, as Spark SQL chooses them, which holds
    while every row adds one cell: :attr:`Layout.one_per_row`), one slot each, and
    counts its other values in one ``__other__`` slot. Pickled as non-empty cells only.
    """

    def __init__(
        self,
        scores: int,
        layout: Layout,
        spec_columns: Sequence[Sequence[str]] = (),
        kept: Sequence[Sequence[tuple]] = (),
    ) -> None:
        self.layout = layout
        self.scores = scores
        self.spec_columns = [list(names) for names in spec_columns]
        self.kept = [list(values) for values in kept]
        self.slots = [1] + [len(values) + 1 for values in self.kept]
        self._allocate()

    def _allocate(self) -> None:
        size = self.layout.size
        self.n = {
            (i, k): np.zeros(slots * size, np.int64)
            for i in range(self.scores)
            for k, slots in enumerate(self.slots)
        }
        self.w = (
            {key: np.zeros(len(n)) for key, n in self.n.items()} if self.layout.weighted else {}
        )

    def add(self, batch: pa.RecordBatch) -> None:
        layout = self.layout
        weights, weight_reason = batch_weights(batch) if layout.weighted else (None, None)
        slots: list[np.ndarray | None] = [None]
        need_rows = layout.weighted or bool(self.spec_columns)
        for names, kept in zip(self.spec_columns, self.kept, strict=True):
            groups, values = slice_groups(batch, names)
            at = {value: j for j, value in enumerate(kept)}
            slot_of = np.array([at.get(v, len(kept)) for v in values], np.int64)
            slots.append(slot_of[groups])
        for i in range(self.scores):
            entries = batch_entries(batch, i, layout, weight_reason, need_rows)
            for k, slot in enumerate(slots):
                add_entries(self.n[(i, k)], self.w.get((i, k)), entries, slot, weights, layout.size)

    def merge(self, other: TaskTotals) -> TaskTotals:
        """Add ``other`` into this one (element-wise) and return it."""
        for key, n in self.n.items():
            n += other.n[key]
            if key in self.w:
                self.w[key] += other.w[key]
        return self

    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("n", "w")}
        used = {key: np.flatnonzero(n) for key, n in self.n.items()}
        state["sparse"] = {
            key: (at, self.n[key][at], self.w[key][at] if key in self.w else None)
            for key, at in used.items()
        }
        return state

    def __setstate__(self, state: dict) -> None:
        sparse = state.pop("sparse")
        self.__dict__.update(state)
        self._allocate()
        for key, (at, n, w) in sparse.items():
            self.n[key][at] = n
            if w is not None:
                self.w[key][at] = w

    def table(self, score_names: Sequence[str], slices: Sequence[Sequence[str]]) -> pa.Table:
        """The non-empty cells as a count table (:data:`tally.plan.COUNT_COLUMNS`); ``slices``
        are the specs' column names, for the ``slice`` labels."""
        size, offset = self.layout.size, self.layout.offset
        names, labels, cells, ns, ws = [], [], [], [], []
        for (i, k), n in self.n.items():
            spec = tuple(slices[k - 1]) if k else ()
            values = [*self.kept[k - 1], (OTHER_VALUE,) * len(spec)] if k else [()]
            at = np.flatnonzero(n)
            slot, index = np.divmod(at, size)
            value_labels = [slice_label(spec, v) for v in values]
            labels.extend(value_labels[s] for s in slot.tolist())
            names.extend([score_names[i]] * len(at))
            cells.append(index - offset)
            ns.append(n[at])
            ws.append(self.w[(i, k)][at] if (i, k) in self.w else n[at].astype(np.float64))
        zero = np.zeros(len(names))
        columns = [
            pa.array(names, pa.string()),
            pa.array(labels, pa.string()),
            pa.array(np.concatenate(cells), pa.int64()),
            pa.array(np.concatenate(ns), pa.int64()),
            pa.array(np.concatenate(ws), pa.float64()),
            *(pa.array(zero) for _ in range(4)),
        ]
        return pa.Table.from_arrays(columns, names=list(COUNT_COLUMNS))


# --- per-task cells for Spark SQL to add up --------------------------------------------------


def _emit(
    score_index: int,
    spec: int,
    values: list[tuple],
    width: int,
    sums: tuple[np.ndarray, np.ndarray, np.ndarray],
    layout: Layout,
) -> pa.RecordBatch:
    """Output rows of the non-empty cells ``key = group·size + index`` (``sums``: key,
    n, w; group ``g`` has slice values ``values[g]``), as multi-label emits them."""
    key, n, w = sums
    group, index = np.divmod(key, layout.size)
    cells = (group, index - layout.offset, n, w, np.zeros(len(key)))
    return multilabel_rows(score_index, spec, values, width, cells)


def count_partition(
    batches: Iterator[pa.RecordBatch],
    scores: int,
    spec_columns: list[list[str]],
    layout: Layout,
    width: int,
) -> Iterator[pa.RecordBatch]:
    """One task's rows in, its cells out (keyed as :func:`tally.plan.cell_keys_schema`
    gives, with the sums ``n``, ``w``, ``wy``), for Spark SQL to add up by key.

    The ALL slice is added into one dense table per score column, emitted when the
    input ends; slice specs are added up per batch (``np.unique`` over (slice value,
    cell) keys) and emitted per batch.
    """
    size = layout.size
    n_all = [np.zeros(size, np.int64) for _ in range(scores)]
    w_all = [np.zeros(size) for _ in range(scores)]
    for batch in batches:
        weights, weight_reason = batch_weights(batch) if layout.weighted else (None, None)
        grouped = [slice_groups(batch, names) for names in spec_columns]
        for i in range(scores):
            need_rows = layout.weighted or bool(spec_columns)
            entries = batch_entries(batch, i, layout, weight_reason, need_rows)
            add_entries(n_all[i], w_all[i], entries, None, weights, size)
            rows = entries.rows if entries.rows is not None else np.arange(len(entries.index))
            per_entry = weights[rows] if weights is not None else np.ones(len(rows))
            for spec, (groups, values) in enumerate(grouped, start=1):
                unique, inverse = np.unique(
                    groups[rows] * size + entries.index, return_inverse=True
                )
                n = np.bincount(inverse, minlength=len(unique))
                w = np.bincount(inverse, weights=per_entry, minlength=len(unique))
                yield _emit(i, spec, values, width, (unique, n, w), layout)
    for i in range(scores):
        at = np.flatnonzero(n_all[i])
        w = w_all[i][at] if layout.weighted else n_all[i][at].astype(np.float64)
        yield _emit(i, 0, [()], width, (at, n_all[i][at], w), layout)
