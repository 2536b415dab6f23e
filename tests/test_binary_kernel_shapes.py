"""The binary counting kernel (``tally.kernels.binary``) on every stored shape of a label and
a score: the cells it adds must not depend on how the values are stored.

The oracle for each batch is numpy on float64 copies of the same rows, with the
documented invalid-row rules (:func:`tally.kernels.validity.invalid_reason`) and
scikit-learn's log loss and Brier score on the valid rows. A row's log loss is one
``log`` of its own label's probability (``1 − p`` rounded once for label 0, as
scikit-learn computes it); for scores stored in 24 bits or fewer (float32) ``1 − p`` is
exact, and their cells must equal those of the same values stored as float64.
"""

from __future__ import annotations

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from tally.counts import bucket_of
from tally.kernels import binary as kernel
from tally.kernels.cells import LOG_LOSS_EPS, BinaryLayout
from tally.kernels.validity import INVALID_REASONS, invalid_reason
from tally.spark.readers.arrow.files import BATCH_ROWS, Split
from tally.spark.readers.arrow.run import _task_totals

BUCKETS, THRESHOLDS = 256, (0.25, 0.5)
LAYOUT = BinaryLayout(BUCKETS, THRESHOLDS, weighted=False)
LABEL_TYPES = [pa.int8(), pa.int32(), pa.int64(), pa.bool_(), pa.float32(), pa.float64()]


def scores(n: int, rng: np.random.Generator, tiny: bool) -> np.ndarray:
    """float32-representable scores in [0, 1]; ``tiny``: some below 2^-30 and exact 0/1."""
    s = rng.random(n).astype(np.float32)
    s[:20] = rng.random(20).astype(np.float32) * 2.0**-31 if tiny else s[:20]
    if tiny:
        s[20:25], s[25:30] = 0.0, 1.0
    s[30:40] = np.float32(2.0**-30)  # the smallest value of the exact path
    return s.astype(np.float64)


def count(labels: pa.Array, score: pa.Array) -> kernel.TaskTotals:
    totals = kernel.TaskTotals(1, LAYOUT)
    for start in range(0, len(labels), 4_000):
        batch = {"y": labels.slice(start, 4_000), "s0": score.slice(start, 4_000)}
        totals.add(pa.RecordBatch.from_pydict(batch))
    return totals


def oracle_cells(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    above = sum((s >= t).astype(np.int64) for t in THRESHOLDS)
    return bucket_of(s, BUCKETS) * (len(THRESHOLDS) + 1) + above


@pytest.mark.parametrize("label_type", LABEL_TYPES, ids=str)
@pytest.mark.parametrize("positive_rate", [0.1, 0.9])
@pytest.mark.parametrize("tiny", [False, True])
def test_float32_scores_count_as_the_same_values_in_float64(label_type, positive_rate, tiny):
    rng = np.random.default_rng(7)
    n = 12_000
    y = (rng.random(n) < positive_rate).astype(np.int8)
    s = scores(n, rng, tiny)
    labels = pa.array(y.astype(bool) if label_type == pa.bool_() else y).cast(label_type)
    narrow = count(labels, pa.array(s.astype(np.float32)))
    wide = count(labels, pa.array(s))
    a, b = narrow.sums[(0, 0)], wide.sums[(0, 0)]
    np.testing.assert_array_equal(a.n, b.n)
    for name in ("wy", "w_sqerr", "w_score"):
        np.testing.assert_array_equal(a.sums[name], b.sums[name], err_msg=name)
    np.testing.assert_allclose(a.sums["w_loss"], b.sums["w_loss"], rtol=1e-14, atol=0)

    cell = oracle_cells(y, s)
    np.testing.assert_array_equal(a.by_cell()["n"], np.bincount(cell, minlength=LAYOUT.cells))
    np.testing.assert_array_equal(a.by_cell()["wy"], np.bincount(cell, y, LAYOUT.cells))
    total = {name: a.sums[name][0].sum() for name in ("w_loss", "w_sqerr", "w_score")}
    assert total["w_loss"] / n == pytest.approx(log_loss(y, s, labels=[0, 1]), rel=1e-12)
    assert total["w_sqerr"] / n == pytest.approx(brier_score_loss(y, s), rel=1e-12)
    assert total["w_score"] == pytest.approx(s.sum(), rel=1e-12)


@pytest.mark.parametrize("label_type", LABEL_TYPES, ids=str)
def test_invalid_labels_and_scores_follow_the_documented_rules(label_type):
    """Invalid rows of every label type (a float label of 0.5 or 2, an integer label of 2
    or -1, null labels and scores, NaN and out-of-range scores) are counted under the
    first reason of :func:`~tally.kernels.validity.invalid_reason`, the rest as valid."""
    rng = np.random.default_rng(3)
    n = 9_000
    y = (rng.random(n) < 0.3).astype(np.float64)
    s = rng.random(n).astype(np.float32).astype(np.float64)
    label_null = np.zeros(n, bool)
    label_null[5::401] = True
    if pa.types.is_floating(label_type):
        y[7::397] = 0.5
        y[9::389] = 2.0
    elif pa.types.is_integer(label_type):
        y[7::397] = 2.0
        y[9::389] = -1.0
    s[11::383] = np.nan
    s[13::379] = 1.5
    s[15::373] = -0.25
    y_for_oracle = np.where(label_null, np.nan, y)
    expected = invalid_reason(y_for_oracle, s)
    labels = pa.array(y.astype(bool) if label_type == pa.bool_() else y, mask=label_null)
    labels = labels.cast(label_type)
    totals = count(labels, pa.array(s.astype(np.float32)))
    found = totals.invalid_n[(0, 0)][0]
    wanted = np.bincount(expected[expected >= 0], minlength=len(INVALID_REASONS))
    np.testing.assert_array_equal(found, wanted)
    assert found.sum() > 0
    valid = expected < 0
    cell = oracle_cells(y[valid], s[valid])
    held = totals.sums[(0, 0)]
    np.testing.assert_array_equal(held.by_cell()["n"], np.bincount(cell, minlength=LAYOUT.cells))
    loss = log_loss(y[valid], s[valid], labels=[0, 1])
    assert held.sums["w_loss"][0].sum() / valid.sum() == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize(
    "buckets, thresholds",
    [
        (256, (0.0, 0.25, 1.0)),  # edges, the first and last included: one lookup a row
        (256, (0.3, 0.5)),  # 0.3 is no edge: a comparison per threshold
        (100, (0.29, 0.5)),  # edges of buckets that are no power of two (29/100 == 0.29)
        (100, (0.295,)),
    ],
)
@pytest.mark.parametrize("score_type", [np.float32, np.float64])
def test_cells_on_and_off_bucket_edges(buckets, thresholds, score_type):
    """Each valid row's cell is ``bucket_of · (T+1) + #{t: s >= t}``, for scores at,
    just below and just above every edge and threshold, and exactly 0 and 1, stored as
    float32 or float64."""
    rng = np.random.default_rng(11)
    points = np.concatenate([np.arange(buckets + 1) / buckets, thresholds])
    s = np.concatenate(
        [points, np.nextafter(points, -1.0), np.nextafter(points, 2.0), rng.random(3_000)]
    )
    s = s[(s >= 0) & (s <= 1)].astype(score_type)
    y = (rng.random(len(s)) < 0.2).astype(np.int8)
    layout = BinaryLayout(buckets, thresholds, weighted=False)
    totals = kernel.TaskTotals(1, layout)
    totals.add(pa.RecordBatch.from_pydict({"y": pa.array(y), "s0": pa.array(s)}))
    s = s.astype(np.float64)
    above = sum((s >= t).astype(np.int64) for t in thresholds)
    cell = bucket_of(s, buckets) * (len(thresholds) + 1) + above
    held = totals.sums[(0, 0)]
    np.testing.assert_array_equal(held.by_cell()["n"], np.bincount(cell, minlength=layout.cells))
    np.testing.assert_array_equal(held.by_cell()["wy"], np.bincount(cell, y, layout.cells))
    np.testing.assert_allclose(held.by_cell()["w_score"], np.bincount(cell, s, layout.cells))


@pytest.mark.parametrize(
    "thresholds",
    [(0.25, 1.0), (0.3,)],  # edges (one column per reachable cell), and a threshold off them
)
def test_task_tables_by_slice_equal_a_per_row_reference(thresholds):
    """Two tasks' tables (sliced, one value merged into ``__other__``), pickled, merged and
    emitted, hold per (slice, cell) the row count and score sum numpy gives row by row,
    scores of exactly 0 and 1 included."""
    rng = np.random.default_rng(5)
    n, buckets = 20_000, 64
    s = rng.random(n).astype(np.float32)
    s[:10], s[10:20] = 0.0, 1.0
    y = (rng.random(n) < 0.3).astype(np.int8)
    tag = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    layout = BinaryLayout(buckets, thresholds, weighted=False)
    tasks = []
    for part in (slice(0, n // 2), slice(n // 2, n)):
        totals = kernel.TaskTotals(1, layout, [["c0"]], [{("a",), ("b",)}])
        for start in range(part.start, part.stop, 3_000):
            rows = slice(start, min(start + 3_000, part.stop))
            batch = {"y": pa.array(y[rows]), "s0": pa.array(s[rows]), "c0": pa.array(tag[rows])}
            totals.add(pa.RecordBatch.from_pydict(batch))
        tasks.append(pickle.loads(pickle.dumps(totals)))
    table = tasks[0].merge(tasks[1]).table(["s"], [["c0"]]).to_pandas()

    s64 = s.astype(np.float64)
    above = sum((s64 >= t).astype(np.int64) for t in thresholds)
    cell = bucket_of(s64, buckets) * (len(thresholds) + 1) + above
    groups = {"ALL": np.ones(n, bool), "c0=a": tag == "a", "c0=b": tag == "b"}
    groups["c0=__other__"] = tag == "c"
    assert set(table["slice"]) == set(groups)
    for label, rows in groups.items():
        got = table[table["slice"] == label].set_index("cell").sort_index()
        want_n = np.bincount(cell[rows], minlength=layout.cells)
        want_score = np.bincount(cell[rows], s64[rows], layout.cells)
        np.testing.assert_array_equal(got.index, np.flatnonzero(want_n))
        np.testing.assert_array_equal(got["n"], want_n[want_n > 0])
        np.testing.assert_allclose(got["w_score"], want_score[want_n > 0], rtol=1e-12)


def per_row_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The log loss of each row, from its float64 score: ``−ln s`` or ``−log1p(−s)``."""
    return np.where(y == 1, -np.log(s), -np.log1p(-s))


@pytest.mark.parametrize("label_type", LABEL_TYPES, ids=str)
@pytest.mark.parametrize("score_type", [pa.float32(), pa.float64()], ids=str)
@pytest.mark.parametrize("positive_rate", [0.1, 0.9])
@pytest.mark.parametrize("null_labels", [False, True])
def test_rows_of_the_fast_path_equal_a_per_row_reference(
    label_type, score_type, positive_rate, null_labels
):
    """An unweighted batch without invalid rows (but for null labels) and scores inside
    ``[2^-30, 1 − ε]``: each valid row's column (its bucket: every threshold is an edge),
    squared error, log loss and score are those numpy computes row by row; its count and
    positive are packed as ``PACK + label``; null labels are invalid rows."""
    rng = np.random.default_rng(17)
    n = 5_000
    y = (rng.random(n) < positive_rate).astype(np.int8)
    s = np.clip(rng.random(n).astype(np.float32), np.float32(2.0**-30), np.float32(1 - 2.0**-24))
    s = s.astype(score_type.to_pandas_dtype())
    s[:3] = [2.0**-30, 0.25, 0.5]  # edges of the thresholds and the smallest score of the path
    missing = np.zeros(n, bool)
    missing[7::101] = null_labels
    labels = pa.array(y.astype(bool) if label_type == pa.bool_() else y, mask=missing)
    rows = kernel.batch_rows(labels.cast(label_type), pa.array(s), None, LAYOUT)
    assert rows.positives is None  # the fast path: no pass selects the positives

    valid = ~missing
    yv, sv = y[valid], s[valid].astype(np.float64)
    np.testing.assert_array_equal(rows.cell, bucket_of(sv, BUCKETS))
    np.testing.assert_array_equal(rows.count_sqerr.imag, (sv - yv) ** 2)
    np.testing.assert_array_equal(rows.count_sqerr.real, kernel.PACK + yv)
    np.testing.assert_array_equal(-rows.score_loss.real, sv)
    np.testing.assert_allclose(-rows.score_loss.imag, per_row_loss(yv, sv), rtol=1e-15, atol=0)
    if null_labels:
        np.testing.assert_array_equal(rows.batch_rows, np.flatnonzero(valid))
        np.testing.assert_array_equal(rows.invalid_batch_rows, np.flatnonzero(missing))
        assert set(rows.invalid_reason) == {INVALID_REASONS.index("null_label")}
    else:
        assert rows.batch_rows is None and not len(rows.invalid_reason)


def test_packed_counts_unpack_exactly_at_the_bound():
    """The largest packed sum, ``PACK·n + wy`` with ``n = wy = PACK_ROWS``, is below 2^53
    and unpacks into both counts exactly."""
    held = kernel.CellSums(BinaryLayout(4, (0.5,), weighted=False), 1)
    held.slots[()] = 0
    top = kernel.PACK_ROWS
    held.count_sqerr.real[0, :3] = [kernel.PACK * top + top, kernel.PACK * top, kernel.PACK + 1]
    held.pending = top
    assert kernel.PACK * top + top < 2.0**53
    np.testing.assert_array_equal(held.n[0, :3], [top, top, 1])
    np.testing.assert_array_equal(held.sums["wy"][0, :3], [top, 0, 1])


def test_large_batches_and_frequent_unpacking_equal_a_per_row_reference(monkeypatch):
    """Batches past :data:`~tally.kernels.binary.KERNEL_ROWS` (added a part at a time),
    sums unpacked every 1,000 rows (within one part and across batches), a task pickled
    between batches, null labels and a second score column: per (slice, cell) the row
    count, positives and sums equal numpy's row by row."""
    monkeypatch.setattr(kernel, "PACK_ROWS", 1_000)
    rng = np.random.default_rng(23)
    n, buckets = 2 * kernel.KERNEL_ROWS + 4_321, 64
    layout = BinaryLayout(buckets, (0.25,), weighted=False)
    y = (rng.random(n) < 0.3).astype(np.int8)
    s = [rng.random(n).astype(np.float32), rng.random(n)]  # float32 and float64 scores
    tag = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    missing = np.zeros(n, bool)
    missing[11::997] = True
    totals = kernel.TaskTotals(2, layout, [["c0"]], [{("a",), ("b",)}])
    for part in (slice(0, 5_000), slice(5_000, n)):
        batch = {
            "y": pa.array(y[part], mask=missing[part]),
            "s0": pa.array(s[0][part]),
            "s1": pa.array(s[1][part]),
            "c0": pa.array(tag[part]),
        }
        totals.add(pa.RecordBatch.from_pydict(batch))
        totals = pickle.loads(pickle.dumps(totals))
    table = totals.table(["s0", "s1"], [["c0"]]).to_pandas()

    groups = {"ALL": np.ones(n, bool), "c0=a": tag == "a", "c0=b": tag == "b"}
    groups["c0=__other__"] = tag == "c"
    for i, score in enumerate(s):
        s64 = score.astype(np.float64)
        cell = bucket_of(s64, buckets) * 2 + (s64 >= 0.25)
        for label, rows in groups.items():
            got = table[(table["score_column"] == f"s{i}") & (table["slice"] == label)]
            got = got.set_index("cell").sort_index()
            invalid = got[got.index < 0]
            assert invalid.index.tolist() == [-1 - INVALID_REASONS.index("null_label")]
            assert invalid["n"].tolist() == [int((rows & missing).sum())]
            got = got[got.index >= 0]
            v = rows & ~missing
            want_n = np.bincount(cell[v], minlength=layout.cells)
            np.testing.assert_array_equal(got.index, np.flatnonzero(want_n))
            np.testing.assert_array_equal(got["n"], want_n[want_n > 0])

            def want(values, v=v, cell=cell, filled=want_n > 0):
                return np.bincount(cell[v], values[v], layout.cells)[filled]

            np.testing.assert_array_equal(got["wy"], want(y.astype(np.float64)))
            np.testing.assert_allclose(got["w_score"], want(s64), rtol=1e-12)
            np.testing.assert_allclose(got["w_sqerr"], want((s64 - y) ** 2), rtol=1e-12)
            np.testing.assert_allclose(got["w_loss"], want(per_row_loss(y, s64)), rtol=1e-12)


@pytest.mark.parametrize("label_type", [pa.int8(), pa.bool_(), pa.int32(), pa.float64()], ids=str)
@pytest.mark.parametrize("positive_rate", [0.1, 0.9])
@pytest.mark.parametrize("weighted", [False, True], ids=["fast path", "general path"])
def test_float64_log_loss_is_one_log_of_the_own_label_probability(
    label_type, positive_rate, weighted
):
    """Float64 scores with all 53 bits (``1 − p`` rounds), tiny ones among them: each valid
    row's ``−loss`` is ``ln q``, ``q`` the score clipped to ``[ε, 1 − ε]`` for label 1
    and ``1 − p`` rounded once for label 0, as scikit-learn's ``xlogy(1 − y, 1 − p)``
    computes it; within ``2^-52`` of ``log1p(−p)`` per row; the mean equals
    scikit-learn's ``log_loss``. Unweighted batches without invalid rows take the fast
    path; weighted ones, and scores of exactly 0 or 1, the general one (with the clip)."""
    rng = np.random.default_rng(29)
    n = 6_000
    y = (rng.random(n) < positive_rate).astype(np.int8)
    s = 1.0 / (1.0 + np.exp(rng.normal(1.5, 1.5, n)))  # 53 bits (rng.random: 1 − p exact)
    s[:6] = [1e-12, 3e-9, 0.5 + 1e-12, 1 - 1e-9, 0.25, 2.0**-40]
    if weighted:
        s[6:9] = [0.0, 1.0, 1e-300]  # clipped to [ε, 1 − ε]
    labels = pa.array(y.astype(bool) if label_type == pa.bool_() else y).cast(label_type)
    w = rng.random(n) + 0.5 if weighted else None
    layout = BinaryLayout(BUCKETS, THRESHOLDS, weighted=weighted)
    rows = kernel.batch_rows(labels, pa.array(s), None if w is None else pa.array(w), layout)
    assert (rows.positives is None) is not weighted  # which path was taken

    p = np.clip(s, kernel.LOG_LOSS_EPS, 1.0 - kernel.LOG_LOSS_EPS)
    ln_q = np.log(np.where(y == 1, p, 1.0 - p))
    want = ln_q if w is None else ln_q * w
    np.testing.assert_array_equal(rows.score_loss.imag, want)
    log1p_loss = np.where(y == 1, np.log(p), np.log1p(-p))
    assert (ln_q != log1p_loss).any()  # scores where 1 − p rounds
    np.testing.assert_allclose(ln_q, log1p_loss, rtol=1e-15, atol=2.0**-52)
    mean = -rows.score_loss.imag.sum() / (n if w is None else w.sum())
    assert mean == pytest.approx(log_loss(y, s, sample_weight=w, labels=[0, 1]), rel=1e-13)


def _whole_batches_reference(y: np.ndarray, s: np.ndarray, buckets: int, table) -> None:
    """The ALL slice of ``table`` (one score column) against numpy row by row (the log
    loss of the score clipped to ``[ε, 1 − ε]``)."""
    s64 = s.astype(np.float64)
    cell = bucket_of(s64, buckets) * 2 + (s64 >= 0.5)
    want_n = np.bincount(cell, minlength=2 * buckets)
    got = table.set_index("cell").sort_index()
    np.testing.assert_array_equal(got.index, np.flatnonzero(want_n))
    np.testing.assert_array_equal(got["n"], want_n[want_n > 0])

    def want(values):
        return np.bincount(cell, values, 2 * buckets)[want_n > 0]

    np.testing.assert_array_equal(got["wy"], want(y.astype(np.float64)))
    np.testing.assert_allclose(got["w_score"], want(s64), rtol=1e-12)
    np.testing.assert_allclose(got["w_sqerr"], want((s64 - y) ** 2), rtol=1e-12)
    clipped = np.clip(s64, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    np.testing.assert_allclose(got["w_loss"], want(per_row_loss(y, clipped)), rtol=1e-12)


@pytest.mark.parametrize("label_type", [pa.int8(), pa.bool_(), pa.float64()], ids=str)
def test_whole_batches_of_the_fast_path_equal_a_per_row_reference(monkeypatch, label_type):
    """Unweighted, unsliced batches past :data:`~tally.kernels.binary.KERNEL_ROWS` whose
    rows all take the fast path are added a part at a time without Arrow slices
    (``TaskTotals._add_fast``): float32 and float64 score columns, sums unpacked every
    1,000 rows, a task pickled between batches; per cell the row count, positives and
    sums equal numpy's row by row, and equal bit for bit those of the same batches
    added part by part through :func:`~tally.kernels.binary.batch_rows`."""
    monkeypatch.setattr(kernel, "PACK_ROWS", 1_000)
    rng = np.random.default_rng(31)
    n, buckets = 2 * kernel.KERNEL_ROWS + 4_321, 64
    layout = BinaryLayout(buckets, (0.5,), weighted=False)
    y = (rng.random(n) < 0.2).astype(np.int8)
    s = [rng.uniform(0.001, 0.999, n).astype(np.float32), rng.uniform(1e-6, 0.99, n)]
    s[1][7] = 0.5  # a threshold
    s[0][8] = np.float32(2.0**-30)  # the smallest float32 score of the fast path

    def add_all(totals):
        for part in (slice(0, 5_000), slice(5_000, n)):
            batch = {"y": pa.array(y[part]).cast(label_type), "s0": s[0][part], "s1": s[1][part]}
            totals.add(pa.RecordBatch.from_pydict(batch))
            totals = pickle.loads(pickle.dumps(totals))
        return totals.table(["s0", "s1"], []).to_pandas()

    parts = []
    monkeypatch.setattr(kernel.TaskTotals, "_add", lambda self, b: parts.append(b))
    table = add_all(kernel.TaskTotals(2, layout))
    assert parts == []  # every batch was added whole
    monkeypatch.undo()
    monkeypatch.setattr(kernel, "PACK_ROWS", 1_000)
    monkeypatch.setattr(kernel.TaskTotals, "_add_fast", lambda self, b: False)
    by_part = add_all(kernel.TaskTotals(2, layout))
    for i in range(2):
        got = table[table["score_column"] == f"s{i}"]
        _whole_batches_reference(y, s[i], buckets, got.drop(columns=["score_column", "slice"]))
        other = by_part[by_part["score_column"] == f"s{i}"]
        for name in ("cell", "n", "w", "wy", "w_loss", "w_sqerr", "w_score"):
            np.testing.assert_array_equal(got[name].to_numpy(), other[name].to_numpy())


@pytest.mark.parametrize(
    "change",
    [
        "score of 1",
        "score below 2^-30",
        "label 2",
        "null label",
        "null score",
        "weighted",
        "sliced",
    ],
)
def test_batches_off_the_fast_path_are_added_part_by_part(monkeypatch, change):
    """A batch of which one score column or one row does not qualify for the fast path
    (or a weighted or sliced task) is added part by part as before, every score column:
    the cells still equal numpy's row by row over the valid rows."""
    rng = np.random.default_rng(37)
    n, buckets = kernel.KERNEL_ROWS + 999, 64
    y = (rng.random(n) < 0.3).astype(np.int8)
    s0 = rng.uniform(0.01, 0.99, n).astype(np.float32)
    s1 = rng.uniform(0.01, 0.99, n)
    batch = {"y": pa.array(y), "s0": pa.array(s0), "s1": pa.array(s1)}
    weighted, slices = change == "weighted", [["c0"]] if change == "sliced" else []
    valid = np.ones(n, bool)
    if change == "score of 1":
        s1[5] = 1.0
        batch["s1"] = pa.array(s1)
    elif change == "score below 2^-30":
        s0[5] = np.float32(2.0**-31)
        batch["s0"] = pa.array(s0)
    elif change == "label 2":
        batch["y"] = pa.array(np.where(np.arange(n) == 5, 2, y).astype(np.int8))
        valid[5] = False
    elif change == "null label":
        batch["y"] = pa.array(y, mask=np.arange(n) == 5)
        valid[5] = False
    elif change == "null score":
        batch["s0"] = pa.array(s0, mask=np.arange(n) == 5)
    elif weighted:
        batch["w"] = pa.array(np.ones(n))
    else:
        batch["c0"] = pa.array(np.full(n, "a"))
    parts = []
    real_add = kernel.TaskTotals._add
    monkeypatch.setattr(
        kernel.TaskTotals, "_add", lambda self, b: (parts.append(b.num_rows), real_add(self, b))
    )
    layout = BinaryLayout(buckets, (0.5,), weighted=weighted)
    kept = [{("a",)}] if slices else []
    totals = kernel.TaskTotals(2, layout, slices, kept)
    totals.add(pa.RecordBatch.from_pydict(batch))
    assert parts == [kernel.KERNEL_ROWS, 999]
    table = totals.table(["s0", "s1"], slices).to_pandas()
    table = table[(table["slice"] == "ALL") & (table["cell"] >= 0)]
    for i, score in enumerate((s0, s1)):
        rows = valid & (np.arange(n) != 5 if change == "null score" and i == 0 else valid)
        got = table[table["score_column"] == f"s{i}"].drop(columns=["score_column", "slice"])
        _whole_batches_reference(y[rows], score[rows], buckets, got)


@pytest.mark.parametrize("score_type", [pa.float32(), pa.float64()], ids=str)
def test_a_task_reads_binary_batches_of_read_rows_with_the_same_sums(tmp_path, score_type):
    """The arrow reader's binary task (``run._task_totals``) reads batches of
    :data:`~tally.kernels.binary.READ_ROWS` rows: over a file of uneven row groups with
    null labels and one batch off the fast path (a score of 1), every sum is bit for bit
    that of batches of ``files.BATCH_ROWS`` rows and of 4,096 rows, and the cells equal
    numpy's row by row."""
    assert kernel.READ_ROWS % kernel.KERNEL_ROWS == 0 and kernel.READ_ROWS > BATCH_ROWS
    rng = np.random.default_rng(41)
    n, buckets = kernel.READ_ROWS + 3 * kernel.KERNEL_ROWS + 777, 1 << 16
    layout = BinaryLayout(buckets, (0.5,), weighted=False)
    y = (rng.random(n) < 0.1).astype(np.int8)
    s = rng.random(n).astype(score_type.to_pandas_dtype())
    s[n - 5], y[n - 5] = 1.0, 1  # the last batch takes the per-row path (the clamp of B)
    missing = np.zeros(n, bool)
    missing[13::100_003] = True
    path = tmp_path / "part-0.parquet"
    writer = pq.ParquetWriter(path, pa.schema([("label", pa.int8()), ("score", score_type)]))
    for start, end in ((0, 300_000), (300_000, 1_000_000), (1_000_000, n)):  # row groups
        part = slice(start, end)
        columns = [pa.array(y[part], mask=missing[part]), pa.array(s[part], score_type)]
        writer.write_table(pa.Table.from_arrays(columns, ["label", "score"]))
    writer.close()
    size = path.stat().st_size
    tasks = ((Split(str(path), 0, size, size),),)
    columns = {"y": "label", "s0": "score"}

    def task(batch_rows: int) -> kernel.TaskTotals:
        empty = kernel.TaskTotals(1, layout)
        return next(_task_totals(iter([0]), tasks, columns, (), empty, batch_rows))

    read = task(kernel.READ_ROWS)
    for other in (task(BATCH_ROWS), task(4_096)):
        a, b = read.sums[(0, 0)], other.sums[(0, 0)]
        np.testing.assert_array_equal(a.n, b.n)
        for name in a.sums:
            np.testing.assert_array_equal(a.sums[name], b.sums[name])
        np.testing.assert_array_equal(read.invalid_n[(0, 0)], other.invalid_n[(0, 0)])

    table = read.table(["s0"], []).to_pandas().set_index("cell").sort_index()
    invalid = table[table.index < 0]
    assert invalid.index.tolist() == [-1 - INVALID_REASONS.index("null_label")]
    assert invalid["n"].tolist() == [int(missing.sum())]
    got = table[table.index >= 0]
    v = ~missing
    s64 = s.astype(np.float64)
    cell = bucket_of(s64, buckets) * 2 + (s64 >= 0.5)
    want_n = np.bincount(cell[v], minlength=layout.cells)
    np.testing.assert_array_equal(got.index, np.flatnonzero(want_n))
    np.testing.assert_array_equal(got["n"], want_n[want_n > 0])

    def want(values: np.ndarray) -> np.ndarray:
        return np.bincount(cell[v], values[v], layout.cells)[want_n > 0]

    np.testing.assert_array_equal(got["wy"], want(y.astype(np.float64)))
    np.testing.assert_allclose(got["w_score"], want(s64), rtol=1e-12)
    np.testing.assert_allclose(got["w_sqerr"], want((s64 - y) ** 2), rtol=1e-12)
    with np.errstate(divide="ignore"):  # log1p(−1) of the positive's other branch
        loss = per_row_loss(y, s64)
    np.testing.assert_allclose(got["w_loss"], want(loss), rtol=1e-12)
