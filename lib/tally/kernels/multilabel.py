"""Multi-label count tables counted with numpy from Arrow batches (:mod:`tally.kernels.batches`).

Cells of :class:`~tally.kernels.cells.MultilabelLayout`: per valid row, one cell
``(k·B + bucket)·(T+1) + above`` per class carrying the class label, one ``ROW_CELL``
and one ``exact_match_cell(j)`` per threshold the row matches exactly; per invalid row
one cell ``−(1 + reason)`` (:func:`multilabel_row_reasons`: the reasons of
:data:`~tally.kernels.validity.MULTILABEL_INVALID_REASONS`, checked in numpy).
Each cell sums ``n`` (rows), ``w`` (weights) and ``wy`` (weighted labels).

A multi-label row holds K labels and K scores; in an Arrow batch the arrays stay
columnar (one flat buffer of values per batch), which numpy validates, buckets and
counts without a per-element row (Spark SQL would build one struct per element).

Each task keeps, per score column, one dense array of counts for the ALL slice
(at most :data:`DENSE_MAX_CELLS` cells, otherwise counts go out per batch like
slices do) and emits its non-zero cells once, when its input ends. Slice specs
are counted per batch (``np.unique`` over (slice value, cell) keys) and emitted
per batch (:func:`count_partition`); Spark then adds the per-task tables up by key.
Without slices, a task's dense tables (:class:`TaskTotals`) can be added up by
``treeReduce`` instead. Either way the results do not depend on partitioning, and a
retried task replaces its output rather than adding to it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tally.kernels.batches import LABEL, WEIGHT, score_column
from tally.kernels.buckets import bucket_of, thresholds_passed
from tally.kernels.cells import ROW_CELL, MultilabelLayout, exact_match_cell, invalid_cell
from tally.kernels.slices import slice_groups
from tally.kernels.validity import MULTILABEL_INVALID_REASONS
from tally.plan import ALL_ROWS

#: Largest dense per-task table of the ALL slice (cells per score column); beyond it
#: (many classes × fine buckets) the ALL slice is counted per batch like slices.
DENSE_MAX_CELLS = 1 << 24


def _lengths(arrays: pa.Array) -> np.ndarray:
    """Length of each array, −1 for a null array."""
    return pc.fill_null(pc.list_value_length(arrays), -1).to_numpy(zero_copy_only=False)


def _matrix(arrays: pa.Array, keep: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``[rows kept, K]`` values as float64 (null as NaN) and their null mask.

    Every kept row holds exactly K values, so the kept elements, in row order, reshape.
    """
    flat = pc.list_flatten(arrays)
    values = np.asarray(pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False), np.float64)
    if flat.null_count:
        nulls = pc.is_null(flat).to_numpy(zero_copy_only=False)
    else:
        nulls = np.zeros(len(values), bool)
    if not keep.all():
        chosen = keep[pc.list_parent_indices(arrays).to_numpy(zero_copy_only=False)]
        values, nulls = values[chosen], nulls[chosen]
    return values.reshape(-1, k), nulls.reshape(-1, k)


def multilabel_row_reasons(
    labels: pa.Array, scores: pa.Array, weights: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's first problem (index into :data:`MULTILABEL_INVALID_REASONS`, −1 when
    valid), and the ``[valid rows, K]`` labels and scores.

    The checks, in order: null label array, null score array, an array of another
    length than K, a null label, a label other than 0/1, a null score, NaN, ±inf, a
    score outside [0, 1], then a null/NaN weight and a negative or +inf weight.
    ``weights`` holds NaN for null.
    """
    reasons = MULTILABEL_INVALID_REASONS
    label_length, score_length = _lengths(labels), _lengths(scores)
    reason = np.full(len(label_length), -1, np.int64)

    def mark(failed: np.ndarray, name: str, rows: np.ndarray | slice = slice(None)) -> None:
        target = reason[rows]
        target[(target < 0) & failed] = reasons.index(name)
        reason[rows] = target

    mark(label_length < 0, "null_labels")
    mark(score_length < 0, "null_scores")
    mark((label_length != k) | (score_length != k), "wrong_length")
    full = np.flatnonzero(reason < 0)  # rows whose two arrays hold K values
    y, y_null = _matrix(labels, reason < 0, k)
    s, s_null = _matrix(scores, reason < 0, k)
    # One test catches every element problem (nulls are NaN here); only the rows it
    # flags, usually none, are told apart by reason.
    suspect = (((y != 0) & (y != 1)) | ~((s >= 0) & (s <= 1))).any(axis=1)
    if suspect.any():
        rows = full[suspect]
        ys, yn, ss, sn = y[suspect], y_null[suspect], s[suspect], s_null[suspect]
        mark(yn.any(axis=1), "null_label", rows)
        mark((~yn & (ys != 0) & (ys != 1)).any(axis=1), "invalid_label", rows)
        mark(sn.any(axis=1), "null_score", rows)
        mark((~sn & np.isnan(ss)).any(axis=1), "nan_score", rows)
        mark(np.isinf(ss).any(axis=1), "infinite_score", rows)
        mark(((ss < 0) | (ss > 1)).any(axis=1), "score_out_of_range", rows)
    if weights is not None:
        mark(np.isnan(weights), "null_weight")
        mark((weights < 0) | (weights == np.inf), "invalid_weight")
    valid_of_full = reason[full] < 0
    return reason, y[valid_of_full], s[valid_of_full]


@dataclass
class Entries:
    """The cells one batch adds for one score column.

    ``elements[i, k]`` is ``cell + offset`` of class k of the i-th valid row (batch row
    ``rows[i]``), carrying label ``labels[i, k]`` (0 or 1); ``extra`` are the row-level
    cells (``ROW_CELL``, exact matches, invalid reasons) of batch rows ``extra_rows``,
    carrying label 0.
    """

    elements: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    extra: np.ndarray
    extra_rows: np.ndarray

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(index, row, label) of every entry, one per (row, cell)."""
        index = np.concatenate([self.elements.ravel(), self.extra])
        row = np.concatenate([np.repeat(self.rows, self.elements.shape[1]), self.extra_rows])
        label = np.concatenate([self.labels.ravel(), np.zeros(len(self.extra), np.int64)])
        return index, row, label


def batch_entries(
    labels: pa.Array, scores: pa.Array, weights: np.ndarray | None, layout: MultilabelLayout
) -> Entries:
    """Every cell one batch adds for one score column (see the module docstring)."""
    k, b = layout.classes, layout.buckets
    reason, y, s = multilabel_row_reasons(labels, scores, weights, k)
    valid_rows = np.flatnonzero(reason < 0)
    invalid_rows = np.flatnonzero(reason >= 0)
    # cell + offset = bucket·(T+1) + above + (k·B·(T+1) + offset), built in place
    elements = bucket_of(s, b)
    elements *= layout.per_bucket
    thresholds_passed(s, layout.thresholds, out=elements)
    elements += np.arange(k, dtype=np.int64) * layout.per_class + layout.offset
    extra = [np.full(len(valid_rows), ROW_CELL, np.int64)]
    extra_rows = [valid_rows]
    positive = y == 1
    for j, t in enumerate(layout.thresholds):
        matches = valid_rows[((s >= t) == positive).all(axis=1)]
        extra.append(np.full(len(matches), exact_match_cell(j), np.int64))
        extra_rows.append(matches)
    extra.append(invalid_cell(reason[invalid_rows]))
    extra_rows.append(invalid_rows)
    return Entries(
        elements=elements,
        labels=positive.view(np.int8),
        rows=valid_rows,
        extra=np.concatenate(extra) + layout.offset,
        extra_rows=np.concatenate(extra_rows),
    )


class DenseTotals:
    """Per-task sums of n, w and wy over every cell of one (score column, ALL slice).

    One array counts entries by ``2·index + label`` (rows and positives in one
    ``np.add.at``); weighted, ``w`` and ``wy`` are summed beside it.
    """

    def __init__(self, layout: MultilabelLayout) -> None:
        self.layout = layout
        self.by_label = np.zeros(2 * layout.size, np.int64)
        self.w = np.zeros(layout.size, np.float64) if layout.weighted else None
        self.wy = np.zeros(layout.size, np.float64) if layout.weighted else None

    def add(self, entries: Entries, weights: np.ndarray | None) -> None:
        np.add.at(self.by_label, (2 * entries.elements + entries.labels).ravel(), 1)
        np.add.at(self.by_label, 2 * entries.extra, 1)
        if weights is not None:
            row_weight = weights[entries.rows][:, None]
            np.add.at(self.w, entries.elements, row_weight)
            np.add.at(self.wy, entries.elements, row_weight * entries.labels)
            np.add.at(self.w, entries.extra, weights[entries.extra_rows])

    def sums(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(cell, n, w, wy) of the non-empty cells."""
        negatives, positives = self.by_label[0::2], self.by_label[1::2]
        n_all = negatives + positives
        index = np.flatnonzero(n_all)
        n = n_all[index]
        if self.w is None:
            w, wy = n.astype(np.float64), positives[index].astype(np.float64)
        else:
            w, wy = self.w[index], self.wy[index]
        return index - self.layout.offset, n, w, wy


class TaskTotals:
    """A task's :class:`DenseTotals` per score column, added up by a Python reduce
    (``treeReduce``: :func:`tally.spark.readers.arrow.run.collect_multilabel`) instead
    of Spark SQL when there are no slices. Pickled as the non-empty cells only."""

    def __init__(self, scores: int, layout: MultilabelLayout) -> None:
        self.layout = layout
        self.totals = [DenseTotals(layout) for _ in range(scores)]

    def add(self, batch: pa.RecordBatch) -> None:
        checked, summed = _weights(batch) if self.layout.weighted else (None, None)
        for i, total in enumerate(self.totals):
            labels, scores_i = batch.column(LABEL), batch.column(score_column(i))
            total.add(batch_entries(labels, scores_i, checked, self.layout), summed)

    def merge(self, other: TaskTotals) -> TaskTotals:
        """Add ``other`` into this one (element-wise) and return it."""
        for mine, theirs in zip(self.totals, other.totals, strict=True):
            mine.by_label += theirs.by_label
            if mine.w is not None:
                mine.w += theirs.w
                mine.wy += theirs.wy
        return self

    def __getstate__(self) -> dict:
        sparse = []
        for total in self.totals:
            index = np.flatnonzero(total.by_label)
            weights = None
            if total.w is not None:
                used = np.flatnonzero(total.by_label[0::2] + total.by_label[1::2])
                weights = (used, total.w[used], total.wy[used])
            sparse.append((index, total.by_label[index], weights))
        return {"layout": self.layout, "sparse": sparse}

    def __setstate__(self, state: dict) -> None:
        self.__init__(len(state["sparse"]), state["layout"])  # type: ignore[misc]
        for total, (index, counts, weights) in zip(self.totals, state["sparse"], strict=True):
            total.by_label[index] = counts
            if weights is not None:
                used, w, wy = weights
                total.w[used] = w
                total.wy[used] = wy

    def table(self, score_names: Sequence[str]) -> pa.Table:
        """The non-empty cells as a count table (:data:`tally.plan.COUNT_COLUMNS`)."""
        parts = []
        for name, total in zip(score_names, self.totals, strict=True):
            cell, n, w, wy = total.sums()
            zero = np.zeros(len(cell))
            columns = {
                "score_column": pa.array([name] * len(cell), pa.string()),
                "slice": pa.array([ALL_ROWS] * len(cell), pa.string()),
                "cell": pa.array(cell.astype(np.int64)),
                "n": pa.array(n.astype(np.int64)),
                "w": pa.array(w),
                "wy": pa.array(wy),
                "w_loss": pa.array(zero),
                "w_sqerr": pa.array(zero),
                "w_score": pa.array(zero),
            }
            parts.append(pa.table(columns))
        return pa.concat_tables(parts)


def sparse_sums(
    entries: Entries, groups: np.ndarray, weights: np.ndarray | None, layout: MultilabelLayout
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group, cell, n, w, wy) of the non-empty (slice group, cell) pairs of one batch."""
    index, row, label = entries.flat()
    key = groups[row].astype(np.int64) * layout.size + index
    unique, inverse = np.unique(key, return_inverse=True)
    n = np.bincount(inverse, minlength=len(unique))
    w = weights[row] if weights is not None else np.ones(len(key))
    total_w = np.bincount(inverse, weights=w, minlength=len(unique))
    total_wy = np.bincount(inverse, weights=w * label, minlength=len(unique))
    group, index = np.divmod(unique, layout.size)
    return group, index - layout.offset, n, total_w, total_wy


def _rows(
    score_index: int, spec: int, values: list[tuple], width: int, sums: tuple
) -> pa.RecordBatch:
    """An output batch; ``values[g]`` are the slice values of group ``g`` of ``sums``."""
    group, cell, n, w, wy = sums
    columns = {
        "score_index": pa.array(np.full(len(cell), score_index, np.int32)),
        "spec": pa.array(np.full(len(cell), spec, np.int32)),
    }
    for j in range(width):
        per_group = [v[j] if j < len(v) else None for v in values]
        columns[f"v{j}"] = pa.array(per_group, pa.string()).take(pa.array(group))
    columns |= {"cell": pa.array(cell), "n": pa.array(n), "w": pa.array(w), "wy": pa.array(wy)}
    return pa.RecordBatch.from_pydict(columns)


def _weights(batch: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray]:
    """The weight column as checked (null as NaN) and as summed: null, NaN and ±inf
    weights, which only invalid rows have, add 0 to ``w`` (their rows still count in ``n``).
    """
    checked = np.asarray(batch.column(WEIGHT).to_numpy(zero_copy_only=False), np.float64)
    return checked, np.where(np.isfinite(checked), checked, 0.0)


def count_partition(
    batches: Iterator[pa.RecordBatch],
    scores: int,
    spec_columns: list[list[str]],
    layout: MultilabelLayout,
    width: int,
    dense_max_cells: int = DENSE_MAX_CELLS,
) -> Iterator[pa.RecordBatch]:
    """One task's rows in, its count table out (cells keyed as
    :func:`tally.plan.cell_keys_schema` gives with the sums ``n``, ``w``, ``wy``).

    Batches hold ``y`` (label arrays), ``s0 … s{scores−1}`` (score arrays), ``w``
    (weights, when weighted) and the slice columns (strings, or any type
    :func:`slice_groups` takes); ``spec_columns[k−1]``
    names the columns of slice spec ``k``.
    """
    dense = layout.size <= dense_max_cells
    totals = [DenseTotals(layout) for _ in range(scores)] if dense else []
    for batch in batches:
        checked, summed = _weights(batch) if layout.weighted else (None, None)
        grouped = [slice_groups(batch, names) for names in spec_columns]
        for i in range(scores):
            labels, scores_i = batch.column(LABEL), batch.column(score_column(i))
            entries = batch_entries(labels, scores_i, checked, layout)
            if dense:
                totals[i].add(entries, summed)
            else:
                one_group = np.zeros(batch.num_rows, np.int64)
                yield _rows(i, 0, [()], width, sparse_sums(entries, one_group, summed, layout))
            for spec, (groups, values) in enumerate(grouped, start=1):
                yield _rows(i, spec, values, width, sparse_sums(entries, groups, summed, layout))
    for i, total in enumerate(totals):
        cell, n, w, wy = total.sums()
        yield _rows(i, 0, [()], width, (np.zeros(len(cell), np.int64), cell, n, w, wy))
