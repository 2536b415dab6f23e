"""Multi-label count tables counted with ``mapInArrow`` + numpy instead of Spark SQL.

Same cells as the rest of the count table (see :mod:`tally.spark.multi`): per valid
row, one cell ``(k·B + bucket)·(T+1) + above`` per class carrying the class label,
one ``ROW_CELL`` and one ``exact_match_cell(j)`` per threshold the row matches
exactly; per invalid row one cell ``−(1 + reason)``. Each cell sums ``n`` (rows),
``w`` (weights) and ``wy`` (weighted labels).

Why not Spark SQL: a multi-label row holds K labels and K scores, and Spark SQL can
only reach them through higher-order functions (``transform``, ``exists``,
``inline``) that build one struct per element: measured on 20M rows × K = 20
(``make bench``), the SQL version took 284 s and 547 CPU-s where reading the same
Parquet with pyarrow and counting with numpy took 12 CPU-s. Here Spark hands each
partition's rows to Python as Arrow batches (the arrays stay columnar: one flat
buffer of values per batch) and numpy validates, buckets and counts them.

Each task keeps, per score column, one dense array of counts for the ALL slice
(at most :data:`DENSE_MAX_CELLS` cells, otherwise counts go out per batch like
slices do) and emits its non-zero cells once, when its input ends. Slice specs
are counted per batch (``np.unique`` over (slice value, cell) keys) and emitted
per batch. Spark then adds the per-task tables up by key, as for every other
task: the results do not depend on partitioning, and a retried task replaces its
output rather than adding to it. Read by the arrow reader without slices, a task's
dense tables (:class:`TaskTotals`) are added up by ``treeReduce`` instead
(:func:`tally.spark.direct.collect_multilabel`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

if TYPE_CHECKING:
    from tally.spark.counting import CountPlan

from tally.counts import bucket_of
from tally.counts_multi import MULTILABEL_INVALID_REASONS
from tally.spark.multi import ROW_CELL, exact_match_cell
from tally.spark.names import column

#: Largest dense per-task table of the ALL slice (cells per score column); beyond it
#: (many classes × fine buckets) the ALL slice is counted per batch like slices.
DENSE_MAX_CELLS = 1 << 24


@dataclass(frozen=True)
class Layout:
    """Where each cell of a multi-label count table lives in a flat numpy array.

    Valid element cells are ``0 … K·B·(T+1) − 1``; the negative cells (invalid
    reasons, ``ROW_CELL``, exact-match cells down to ``exact_match_cell(T−1)``) are
    shifted up by ``offset`` so that every cell is an index ``cell + offset``.
    """

    classes: int
    buckets: int
    thresholds: tuple[float, ...]
    weighted: bool

    @property
    def offset(self) -> int:
        return -exact_match_cell(len(self.thresholds))

    @property
    def size(self) -> int:
        return self.offset + self.classes * self.buckets * (len(self.thresholds) + 1)


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


def invalid_reasons(
    labels: pa.Array, scores: pa.Array, weights: np.ndarray | None, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's first problem (index into MULTILABEL_INVALID_REASONS, −1 when valid),
    and the ``[valid rows, K]`` labels and scores.

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


def batch_entries(
    labels: pa.Array, scores: pa.Array, weights: np.ndarray | None, layout: Layout
) -> Entries:
    """Every cell one batch adds for one score column (see the module docstring)."""
    k, b = layout.classes, layout.buckets
    per_bucket = len(layout.thresholds) + 1
    reason, y, s = invalid_reasons(labels, scores, weights, k)
    valid_rows = np.flatnonzero(reason < 0)
    invalid_rows = np.flatnonzero(reason >= 0)
    # cell + offset = bucket·(T+1) + above + (k·B·(T+1) + offset), built in place
    elements = bucket_of(s, b)
    elements *= per_bucket
    for t in layout.thresholds:
        elements += s >= t
    elements += np.arange(k, dtype=np.int64) * (b * per_bucket) + layout.offset
    extra = [np.full(len(valid_rows), ROW_CELL, np.int64)]
    extra_rows = [valid_rows]
    positive = y == 1
    for j, t in enumerate(layout.thresholds):
        matches = valid_rows[((s >= t) == positive).all(axis=1)]
        extra.append(np.full(len(matches), exact_match_cell(j), np.int64))
        extra_rows.append(matches)
    extra.append(-1 - reason[invalid_rows])
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

    def __init__(self, layout: Layout) -> None:
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
    (``treeReduce``, :func:`tally.spark.direct.collect_multilabel`) instead of Spark SQL
    when there are no slices. Pickled as the non-empty cells only."""

    def __init__(self, scores: int, layout: Layout) -> None:
        self.layout = layout
        self.totals = [DenseTotals(layout) for _ in range(scores)]

    def add(self, batch: pa.RecordBatch) -> None:
        checked, summed = _weights(batch) if self.layout.weighted else (None, None)
        for i, total in enumerate(self.totals):
            entries = batch_entries(batch.column("y"), batch.column(f"s{i}"), checked, self.layout)
            total.add(entries, summed)

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
        """The non-empty cells as a count table (``tally.spark.counting.COUNT_COLUMNS``)."""
        parts = []
        for name, total in zip(score_names, self.totals, strict=True):
            cell, n, w, wy = total.sums()
            zero = np.zeros(len(cell))
            columns = {
                "score_column": pa.array([name] * len(cell), pa.string()),
                "slice": pa.array(["ALL"] * len(cell), pa.string()),
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
    entries: Entries, groups: np.ndarray, weights: np.ndarray | None, layout: Layout
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


def slice_groups(batch: pa.RecordBatch, names: list[str]) -> tuple[np.ndarray, list[tuple]]:
    """Each row's slice group (0…G−1) over the columns ``names`` and each group's values.

    Values are strings as Spark casts them (``12``, ``true``), null as None; a column may
    come dictionary-encoded (the arrow reader reads stored strings so).
    """
    codes = np.zeros(batch.num_rows, np.int64)
    space = 1  # codes are below this
    dictionaries = []
    for name in names:
        values = batch.column(name)
        encoded = (
            values
            if pa.types.is_dictionary(values.type)
            else pc.dictionary_encode(values, null_encoding="encode")
        )
        dictionary = encoded.dictionary
        if not pa.types.is_string(dictionary.type):
            dictionary = pc.cast(dictionary, pa.string())
        words = dictionary.to_pylist()
        indices = encoded.indices
        if indices.null_count:
            indices = pc.fill_null(indices, len(words))
            words.append(None)
        dictionaries.append(words)
        codes = codes * (len(words) + 1) + np.asarray(
            indices.to_numpy(zero_copy_only=False), np.int64
        )
        space *= len(words) + 1
    unique, groups = _unique_codes(codes, space)
    values = []
    for code in unique.tolist():
        parts = []
        for words in reversed(dictionaries):
            code, at = divmod(code, len(words) + 1)
            parts.append(words[at])
        values.append(tuple(reversed(parts)))
    return groups, values


def _unique_codes(codes: np.ndarray, space: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(codes, return_inverse=True)`` for codes in ``[0, space)``.

    When ``space`` is at most the number of codes (one dictionary's values, or a few
    small ones combined), codes present are marked in a ``space``-long table instead of
    sorted: 2.1 against 30.5 ms per million rows for 51 values.
    """
    if space > max(len(codes), 1024):
        return np.unique(codes, return_inverse=True)
    present = np.bincount(codes, minlength=space) > 0
    return np.flatnonzero(present), (np.cumsum(present) - 1)[codes]


def output_schema(width: int) -> str:
    values = "".join(f"v{j} string, " for j in range(width))
    return f"score_index int, spec int, {values}cell long, n long, w double, wy double"


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
    checked = np.asarray(batch.column("w").to_numpy(zero_copy_only=False), np.float64)
    return checked, np.where(np.isfinite(checked), checked, 0.0)


def count_partition(
    batches: Iterator[pa.RecordBatch],
    scores: int,
    spec_columns: list[list[str]],
    layout: Layout,
    width: int,
    dense_max_cells: int = DENSE_MAX_CELLS,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: one task's rows in, its count table out.

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
            entries = batch_entries(batch.column("y"), batch.column(f"s{i}"), checked, layout)
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


def count_multilabel(
    df: DataFrame, plan: CountPlan, dense_max_cells: int = DENSE_MAX_CELLS
) -> tuple[DataFrame, int]:
    """The aggregated multi-label cells of ``df`` (keys score_index, spec, v0…, cell) and
    the slice width, from one ``mapInArrow`` pass and one aggregation of its output.

    ``dense_max_cells``: the largest per-task dense table of the ALL slice (see
    :data:`DENSE_MAX_CELLS`); 0 counts ALL per batch, as slices are.
    """
    width = max((len(spec) for spec in plan.slices), default=0)
    layout = Layout(
        classes=len(plan.classes),
        buckets=plan.buckets,
        thresholds=tuple(plan.thresholds),
        weighted=plan.weight is not None,
    )
    inputs = [column(plan.label).alias("y")]
    inputs += [column(s).alias(f"s{i}") for i, s in enumerate(plan.scores)]
    if plan.weight:
        inputs.append(column(plan.weight).cast("double").alias("w"))
    slice_columns = list(dict.fromkeys(c for spec in plan.slices for c in spec))
    inputs += [column(c).cast("string").alias(f"c{j}") for j, c in enumerate(slice_columns)]
    spec_columns = [[f"c{slice_columns.index(c)}" for c in spec] for spec in plan.slices]
    count = partial(
        count_partition,
        scores=len(plan.scores),
        spec_columns=spec_columns,
        layout=layout,
        width=width,
        dense_max_cells=dense_max_cells,
    )
    counted = df.select(*inputs).mapInArrow(count, output_schema(width))
    keys = ["score_index", "spec", *(f"v{j}" for j in range(width)), "cell"]
    table = counted.groupBy(*keys).agg(
        F.sum("n").alias("n"),
        F.sum("w").alias("w"),
        F.sum("wy").alias("wy"),
        F.lit(0.0).alias("w_loss"),
        F.lit(0.0).alias("w_sqerr"),
        F.lit(0.0).alias("w_score"),
    )
    return table, width
