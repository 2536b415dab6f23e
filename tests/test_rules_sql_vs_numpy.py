"""Each rule the Spark SQL reader restates in SQL gives, row by row, what its numpy
definition gives, on the awkward values: NaN, ±inf, −0.0, exactly 0 and 1, nulls, the last
float below 1, negatives, values above 1, labels 2 and 0.5, negative/NaN/inf weights.

The numpy side is the definition both readers' kernels use (:mod:`tally.kernels`,
:mod:`tally.plan`); the SQL side is :mod:`tally.spark.rules`. The kernels' fast paths are
held to the same definitions by tests/test_arrow_reader.py and tests/test_counts.py.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import Window
from pyspark.sql import functions as F

from tally.kernels.buckets import bucket_of, thresholds_passed
from tally.kernels.refine import sub_bin
from tally.kernels.validity import INVALID_REASONS, binary_invalid_rows
from tally.plan import CountPlan, kept_values, slice_label
from tally.spark.rules import (
    bucket_column,
    invalid_reason_code,
    kept_order,
    slice_label_column,
    sub_bin_column,
    thresholds_passed_column,
)

BELOW_ONE = float(np.nextafter(1.0, 0.0))
TINY = float(np.nextafter(0.0, 1.0))
NAN, INF = float("nan"), float("inf")

LABELS = [0.0, 1.0, -0.0, 2.0, 0.5, -1.0, NAN, INF, None]
SCORES = [0.0, -0.0, 1.0, BELOW_ONE, TINY, 0.5, 0.29, 1e-300, -1e-12, 1.0 + 1e-12, 2.0,
          -1.0, NAN, INF, -INF, None]  # fmt: skip
WEIGHTS = [1.0, 0.0, -0.0, 2.5, -1.0, 1e-300, NAN, INF, -INF, None]


def frame(spark, columns: dict[str, list]):
    """A DataFrame of double columns, NaN and None kept apart."""
    table = pa.table({k: pa.array(v, pa.float64(), from_pandas=False) for k, v in columns.items()})
    return spark.createDataFrame(table)


def as_float(values: list) -> tuple[np.ndarray, np.ndarray]:
    """float64 with null as NaN, and the null mask (what a reader's batch gives the kernels)."""
    nulls = np.array([v is None for v in values])
    return np.array([np.nan if v is None else v for v in values], np.float64), nulls


@pytest.mark.parametrize("weighted", [True, False])
def test_invalid_reason_code_is_binary_invalid_rows(spark, weighted):
    rows = list(itertools.product(LABELS, SCORES, WEIGHTS if weighted else [1.0]))
    label, score, weight = (list(c) for c in zip(*rows, strict=True))
    df = frame(spark, {"i": list(range(len(rows))), "y": label, "s": score, "w": weight})
    w = F.col("w") if weighted else None
    got = df.select("i", invalid_reason_code(F.col("y"), F.col("s"), w).alias("r")).toArrow()
    sql = np.full(len(rows), -1, np.int64)
    codes = got.column("r").to_pylist()
    sql[np.array(got.column("i").to_pylist(), np.int64).astype(int)] = [
        -1 if c is None else c for c in codes
    ]
    y, y_null = as_float(label)
    s, s_null = as_float(score)
    ww = as_float(weight)[0] if weighted else None
    with np.errstate(invalid="ignore"):
        bad, reason = binary_invalid_rows(y, y_null, -s, s_null, ww)
    expected = np.full(len(rows), -1, np.int64)
    expected[bad] = reason
    mismatch = np.flatnonzero(sql != expected)
    assert not mismatch.size, [
        (rows[i], INVALID_REASONS[sql[i]] if sql[i] >= 0 else None,
         INVALID_REASONS[expected[i]] if expected[i] >= 0 else None)
        for i in mismatch[:10]
    ]  # fmt: skip
    # every reason occurs among these rows (the grid reaches each check)
    assert set(expected[expected >= 0]) == set(
        range(len(INVALID_REASONS) if weighted else INVALID_REASONS.index("null_weight"))
    )


def valid_scores(buckets: int) -> list[float]:
    """Scores in [0, 1]: the awkward ones, every edge k/B and the float just below it."""
    edges = np.arange(buckets + 1, dtype=np.float64) / buckets
    below = np.nextafter(edges[1:], 0.0)
    rng = np.random.default_rng(buckets)
    awkward = [s for s in SCORES if s is not None and 0.0 <= s <= 1.0]
    return [*awkward, *edges.tolist(), *below.tolist(), *rng.random(200).tolist()]


@pytest.mark.parametrize("buckets", [1, 3, 10, 100, 1000, 1024, 65536])
def test_bucket_column_is_bucket_of(spark, buckets):
    scores = valid_scores(min(buckets, 2048))
    df = frame(spark, {"i": list(range(len(scores))), "s": scores})
    got = df.select("i", bucket_column(F.col("s"), buckets).alias("b")).orderBy("i")
    sql = np.array(got.toArrow().column("b").to_pylist(), np.int64)
    np.testing.assert_array_equal(sql, bucket_of(np.array(scores), buckets))


def test_thresholds_passed_column_is_thresholds_passed(spark):
    thresholds = (0.0, 0.29, 0.5, BELOW_ONE, 1.0)
    scores = valid_scores(100) + list(thresholds)
    df = frame(spark, {"i": list(range(len(scores))), "s": scores})
    got = df.select("i", thresholds_passed_column(F.col("s"), thresholds).alias("a"))
    sql = np.array(got.orderBy("i").toArrow().column("a").to_pylist(), np.int64)
    np.testing.assert_array_equal(sql, thresholds_passed(np.array(scores), thresholds))
    # a score equal to a threshold is on its positive side
    assert thresholds_passed(np.array([0.5]), thresholds)[0] == 3


def test_sub_bin_column_is_sub_bin(spark):
    rng = np.random.default_rng(4)
    lo = np.array([0.0, 0.25, 0.5, BELOW_ONE - 1e-9, 0.1, 0.0])
    hi = np.array([1.0, 0.5, BELOW_ONE, 1.0, float(np.nextafter(0.1, 1.0)), 1e-300])
    rows = []
    for a, b in zip(lo, hi, strict=True):
        inside = [a, b, float(np.nextafter(b, a)), float(np.nextafter(a, b))]
        inside += (a + (b - a) * rng.random(50)).tolist()
        rows += [(s, a, b) for s in inside]
    s, a, b = (np.array(c) for c in zip(*rows, strict=True))
    df = frame(spark, {"i": list(range(len(rows))), "s": s, "lo": a, "hi": b})
    for resolution in (2, 7, 1024):
        j = sub_bin_column(F.col("s"), F.col("lo"), F.col("hi"), resolution)
        sql = np.array(
            df.select("i", j.alias("j")).orderBy("i").toArrow().column("j").to_pylist(), np.int64
        )
        np.testing.assert_array_equal(sql, sub_bin(s, a, b, resolution))


SLICE_VALUES = [None, "", "US", "a/b", "x=y", "null", "Zürich", "0"]


def test_slice_label_column_is_slice_label(spark):
    plan = CountPlan("y", ("s",), 8, (), slices=(("country",), ("country", "device")))
    rows = [(0, None, None)]
    rows += [(1, v, None) for v in SLICE_VALUES]
    rows += [(2, a, b) for a, b in itertools.product(SLICE_VALUES, SLICE_VALUES)]
    schema = "spec int, v0 string, v1 string"
    df = spark.createDataFrame(rows, schema)
    label = slice_label_column(plan, F.col("spec"), [F.col("v0"), F.col("v1")])
    got = [r["label"] for r in df.select(label.alias("label")).collect()]
    specs = ((), *plan.slices)
    expected = [slice_label(specs[k], (a, b)[: len(specs[k])]) for k, a, b in rows]
    assert got == expected
    assert expected[0] == "ALL" and "country=null" in expected


@pytest.mark.parametrize("limit", [1, 3, 5, 100])
def test_kept_order_keeps_what_kept_values_keeps(spark, limit):
    """Ties by row count are broken by value, nulls first, in SQL as in Python."""
    counts = {
        ("b", "x"): 5,
        ("a", "y"): 5,
        (None, "x"): 5,
        ("a", None): 5,
        ("", "z"): 5,
        ("Zürich", "x"): 7,
        ("z", "q"): 2,
        ("A", "q"): 2,
    }
    rows = [(a, b, n) for (a, b), n in counts.items()]
    df = spark.createDataFrame(rows, "v0 string, v1 string, total long")
    order = Window.orderBy(*kept_order(F.col("total"), [F.col("v0"), F.col("v1")]))
    ranked = df.withColumn("rank", F.row_number().over(order)).where(F.col("rank") <= limit)
    got = [(r["v0"], r["v1"]) for r in ranked.orderBy("rank").collect()]
    assert got == kept_values(counts, limit)
