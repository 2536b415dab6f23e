"""Multi-label rows counted with mapInArrow + numpy (tally.spark.readers.sql.multilabel,
tally.kernels.multilabel): weights, slices, several score columns, batch boundaries, input
types and every invalid reason, against numpy counts of the same rows
(tally.counts_multi.count_multilabel, which takes rows, not Spark)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tally.counts_multi import count_multilabel
from tally.plan import CountPlan
from tally.spark.cells import collect_count_groups
from tally.spark.cells import labelled as _labelled
from tally.spark.readers.sql.multilabel import multilabel_cells as count_multilabel_arrow

CLASSES = ("a", "b", "c")
K = len(CLASSES)
THRESHOLDS = (0.25, 0.5)


def _plan(**kwargs) -> CountPlan:
    base = dict(label="labels", scores=("s1",), buckets=64, thresholds=THRESHOLDS,
                task="multilabel", classes=CLASSES)
    return CountPlan(**(base | kwargs))


def _groups(df, plan, dense_max_cells=None):
    extra = {} if dense_max_cells is None else {"dense_max_cells": dense_max_cells}
    table, _ = count_multilabel_arrow(df, plan, **extra)
    return collect_count_groups(_labelled(table, plan), plan)


def _same_weighted(got, labels, scores, weights) -> None:
    """``got`` equals the numpy counts of the rows repeated ``weight`` times (integer weights)."""
    expected = count_multilabel(
        np.repeat(labels, weights, axis=0), np.repeat(scores, weights, axis=0),
        CLASSES, 64, THRESHOLDS,
    )
    for name in ("pos", "neg", "tp_at", "fp_at", "fn_at", "exact_match_at"):
        np.testing.assert_allclose(getattr(got, name), getattr(expected, name), rtol=1e-12,
                                   err_msg=name)
    assert got.rows == len(labels)  # rows, not weights


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(11)
    n = 900
    labels = (rng.random((n, K)) < [0.5, 0.2, 0.05]).astype(int)
    s1 = np.round(np.clip(0.4 * labels + 0.6 * rng.random((n, K)), 0, 1), 2)
    s2 = np.round(rng.random((n, K)), 3)
    weights = rng.integers(1, 4, n)
    country = rng.choice(["US", "DE", None], n, p=[0.6, 0.3, 0.1])
    device = rng.choice(["ios", "web"], n)
    return labels, s1, s2, weights, country, device


@pytest.fixture(scope="module")
def frame(spark, rows):
    labels, s1, s2, weights, country, device = rows
    data = [
        (lab.tolist(), a.tolist(), b.tolist(), float(w), c, d)
        for lab, a, b, w, c, d in zip(labels, s1, s2, weights, country, device, strict=True)
    ]
    schema = ("labels array<int>, s1 array<double>, s2 array<float>, w double, "
              "country string, device string")
    return spark.createDataFrame(data, schema).repartition(4)


def test_weighted_slices_and_two_scores_match_numpy_per_slice(frame, rows):
    labels, s1, s2, weights, country, device = rows
    s2 = s2.astype(np.float32).astype(np.float64)  # array<float>: Spark holds float32
    plan = _plan(scores=("s1", "s2"), weight="w", slices=(("country",), ("country", "device")))
    got = _groups(frame, plan)
    for score, values in (("s1", s1), ("s2", s2)):
        _same_weighted(got[(score, "ALL")], labels, values, weights)
        for c in ("US", "DE", None):
            in_c = np.array([x == c for x in country])
            label = f"country={c if c is not None else 'null'}"
            _same_weighted(got[(score, label)], labels[in_c], values[in_c], weights[in_c])
            for d in ("ios", "web"):
                both = in_c & (device == d)
                _same_weighted(got[(score, f"{label}/device={d}")], labels[both], values[both],
                               weights[both])
    assert len(got) == 2 * (1 + 3 + 6)


def test_dense_and_per_batch_counting_agree_across_batch_sizes(spark, frame, rows):
    labels, s1, *_ = rows
    plan = _plan()
    expected = count_multilabel(labels, s1, CLASSES, 64, THRESHOLDS)
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    try:
        for batch in ("7", "10000"):
            spark.conf.set(key, batch)
            for dense_max_cells in (None, 0):
                got = _groups(frame, plan, dense_max_cells)[("s1", "ALL")]
                assert got.same_counts(expected), (batch, dense_max_cells)
    finally:
        spark.conf.set(key, before)


def test_every_invalid_reason_and_its_precedence(spark):
    ok = [1.0, 0.0, 1.0]
    rows = [
        ([1, 0, 1], [0.9, 0.1, 0.6], 1.0),  # valid
        (None, [0.1, 0.1, 0.1], 1.0),  # null_labels
        (None, None, None),  # null_labels (first check wins)
        ([1, 0, 1], None, 1.0),  # null_scores
        ([1, 0], [0.1, 0.1], 1.0),  # wrong_length
        ([1, 0, 1], [0.1, 0.1], 1.0),  # wrong_length (scores only)
        ([1, None, 1], [0.1, 0.1, 0.1], float("nan")),  # null_label before null_weight
        ([1, 2, 1], [0.1, 0.1, 0.1], 1.0),  # invalid_label
        ([1, 0, 1], [0.1, None, 0.1], 1.0),  # null_score
        ([1, 0, 1], [0.1, float("nan"), 2.0], 1.0),  # nan_score before out of range
        ([1, 0, 1], [0.1, float("-inf"), 0.1], 1.0),  # infinite_score
        ([1, 0, 1], [0.1, 1.0000001, 0.1], 1.0),  # score_out_of_range
        ([1, 0, 1], ok, None),  # null_weight
        ([1, 0, 1], ok, float("nan")),  # null_weight
        ([1, 0, 1], ok, -1.0),  # invalid_weight
        ([1, 0, 1], ok, float("inf")),  # invalid_weight
        ([0, 0, 0], [0.0, 0.0, 1.0], 0.0),  # valid: zero weight, edge scores
    ]
    df = spark.createDataFrame(rows, "labels array<int>, s1 array<double>, w double")
    got = _groups(df, _plan(weight="w"))[("s1", "ALL")]
    assert got.rows == 2
    assert {r: n for r, n in got.invalid.items() if n} == {
        "null_labels": 2, "null_scores": 1, "wrong_length": 2, "null_label": 1,
        "invalid_label": 1, "null_score": 1, "nan_score": 1, "infinite_score": 1,
        "score_out_of_range": 1, "null_weight": 2, "invalid_weight": 2,
    }
    _same_weighted(got, np.array([[1, 0, 1], [0, 0, 0]]),
                   np.array([[0.9, 0.1, 0.6], [0.0, 0.0, 1.0]]), np.array([1, 0]))


def test_boolean_labels_and_decimal_scores_count_as_numbers(spark):
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.25, 0.75], [0.5, 0.6, 0.05], [0.3, 1.0, 0.0]])
    df = spark.createDataFrame(
        [([bool(x) for x in lab], [Decimal(str(x)) for x in s])
         for lab, s in zip(labels, scores, strict=True)],
        "labels array<boolean>, s1 array<decimal(4,3)>",
    )
    got = _groups(df, _plan())[("s1", "ALL")]
    assert got.same_counts(count_multilabel(labels, scores, CLASSES, 64, THRESHOLDS))


@pytest.mark.parametrize("cardinality", [3, 200])  # code space below and above the rows
def test_slice_groups_give_each_row_its_values(cardinality):
    import pyarrow as pa

    from tally.kernels.slices import slice_groups

    rng = np.random.default_rng(5)
    n = 2_000
    a = [None if i % 13 == 0 else f"a{v}" for i, v in enumerate(rng.integers(0, cardinality, n))]
    b = rng.integers(0, cardinality, n)
    batch = pa.RecordBatch.from_pydict(
        {"a": pa.array(a, pa.string()).dictionary_encode(), "b": pa.array(b, pa.int32())}
    )
    groups, values = slice_groups(batch, ["a", "b"])
    assert [values[g] for g in groups] == [(x, str(y)) for x, y in zip(a, b, strict=True)]
    assert len(set(values)) == len(values) == len(set(zip(a, b.tolist(), strict=True)))
