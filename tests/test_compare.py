"""The Spark paired DeLong comparison equals DeLong's test computed directly on the rows.

The reference (``helpers.row_paired``) works on the rows (a P × N matrix of pair comparisons,
with frequency weights), independently of histograms and placement-value lookups. Scores sit on
bucket values ``k / B``, so the bucketed AUC is the exact one and both must agree to
rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import roc_auc_score

import tally.spark.compare as compare
from helpers import by_name, paired_rows, row_paired
from tally.counts import count_binary
from tally.errors import InputError
from tally.metrics import MetricValue
from tally.metrics.inference import ZERO_DIFF_VARIANCE
from tally.plan import CountPlan
from tally.spark.compare import COMPARISON_METRICS, compare_columns
from tally.spark.count import count_binary_df

# --- data ------------------------------------------------------------------------------------


def frame(spark, y, s1, s2, w=None, partitions: int = 2, null_label=None, null1=None, null2=None):
    """A DataFrame (label long, s1 double, s2 double[, w double]); masks mark nulls."""
    columns = {
        "label": pa.array(y, pa.int64(), mask=null_label),
        "s1": pa.array(s1, pa.float64(), mask=null1),
        "s2": pa.array(s2, pa.float64(), mask=null2),
    }
    if w is not None:
        columns["w"] = pa.array(w, pa.float64())
    return spark.createDataFrame(pa.table(columns)).repartition(partitions)


def plan_for(buckets: int, weight: str | None = None) -> CountPlan:
    return CountPlan(
        label="label", scores=("s1", "s2"), buckets=buckets, thresholds=(0.5,), weight=weight
    )


def assert_matches_rows(got: dict[str, MetricValue], want: tuple[float, float, float]) -> None:
    diff, variance, p_value = want
    assert abs(got["auc_diff"].value - diff) <= 1e-12
    assert abs(got["auc_diff_std"].value ** 2 - variance) <= 1e-12
    assert math.isclose(got["auc_diff_std"].value ** 2, variance, rel_tol=1e-9)
    assert abs(got["auc_diff_p_value"].value - p_value) <= 1e-9


def compared(*args, **kwargs) -> dict[str, MetricValue]:
    """compare_columns' metrics by name, in the order of COMPARISON_METRICS."""
    return by_name(compare_columns(*args, **kwargs), COMPARISON_METRICS)


# --- tests -----------------------------------------------------------------------------------

CASES = [  # seed, rows, buckets, positive rate, correlation
    (0, 3000, 100, 0.3, 0.5),  # B not a power of two: edge-corrected buckets
    (1, 4000, 64, 0.1, 0.9),
    (2, 2000, 1000, 0.5, 0.2),
]


@pytest.mark.parametrize(("seed", "n", "buckets", "rate", "rho"), CASES)
def test_paired_test_equals_per_row_delong(spark, seed, n, buckets, rate, rho):
    y, s1, s2 = paired_rows(seed, n, buckets, buckets, rate, rho)
    got = compared(frame(spark, y, s1, s2), plan_for(buckets), "s1", "s2")
    assert_matches_rows(got, row_paired(y, s1, s2))
    assert abs(got["auc_diff"].value - (roc_auc_score(y, s1) - roc_auc_score(y, s2))) <= 1e-12


def test_same_result_on_1_and_5_partitions(spark):
    y, s1, s2 = paired_rows(3, 5000, 128, 128, 0.3, 0.6)
    plan = plan_for(128)
    one = compared(frame(spark, y, s1, s2, partitions=1), plan, "s1", "s2")
    five = compared(frame(spark, y, s1, s2, partitions=5), plan, "s1", "s2")
    assert one["auc_diff"].value == five["auc_diff"].value  # from integer histograms
    for name in ("auc_diff_std", "auc_diff_p_value"):  # float sums: order may differ
        assert five[name].value == pytest.approx(one[name].value, rel=1e-12, abs=1e-15)
    assert_matches_rows(one, row_paired(y, s1, s2))


def test_rows_invalid_for_one_column_are_left_out_of_both(spark):
    y, s1, s2 = paired_rows(4, 3000, 200, 200, 0.3, 0.5)
    rng = np.random.default_rng(40)
    null1 = rng.random(y.size) < 0.05  # s1 null
    null2 = rng.random(y.size) < 0.05  # s2 null
    null_label = rng.random(y.size) < 0.02
    bad1, bad2 = s1.copy(), s2.copy()
    nan_rows, out_of_range, infinite = rng.choice(y.size, (3, 40), replace=False)
    bad1[nan_rows] = np.nan
    bad2[out_of_range] = 1.5
    bad1[infinite] = -np.inf
    labels = y.copy()
    labels[:25] = 2  # invalid label
    df = frame(spark, labels, bad1, bad2, null_label=null_label, null1=null1, null2=null2)
    valid = ~(null1 | null2 | null_label)
    valid[np.concatenate([nan_rows, out_of_range, infinite])] = False
    valid[:25] = False
    got = compared(df, plan_for(200), "s1", "s2")
    assert_matches_rows(got, row_paired(y[valid], s1[valid], s2[valid]))


def test_integer_weights_equal_repeated_rows(spark):
    buckets = 50
    y, s1, s2 = paired_rows(5, 2000, buckets, buckets, 0.3, 0.7)
    w = np.random.default_rng(50).integers(0, 4, size=y.size).astype(np.float64)
    got = compared(frame(spark, y, s1, s2, w=w), plan_for(buckets, "w"), "s1", "s2")
    # frequency weights: DeLong's test on every row repeated w times (rows of weight 0 gone)
    ry, r1, r2 = (np.repeat(a, w.astype(np.int64)) for a in (y, s1, s2))
    assert_matches_rows(got, row_paired(ry, r1, r2))
    assert_matches_rows(got, row_paired(y, s1, s2, w))
    auc_diff = roc_auc_score(ry, r1) - roc_auc_score(ry, r2)
    assert abs(got["auc_diff"].value - auc_diff) <= 1e-12


def test_fractional_weights_equal_weighted_per_row_delong(spark):
    buckets = 100
    y, s1, s2 = paired_rows(6, 1500, buckets, buckets, 0.4, 0.3)
    w = np.random.default_rng(60).uniform(0.1, 3.0, size=y.size)
    w[::97] = np.nan  # null_weight: left out
    df = frame(spark, y, s1, s2, w=w)
    got = compared(df, plan_for(buckets, "w"), "s1", "s2")
    valid = ~np.isnan(w)
    assert_matches_rows(got, row_paired(y[valid], s1[valid], s2[valid], w[valid]))


@pytest.mark.parametrize("second", ["s1", "s2"])
def test_identical_columns_have_no_p_value(spark, second):
    y, s1, _ = paired_rows(7, 1000, 64, 64, 0.3, 0.5)
    got = compared(frame(spark, y, s1, s1.copy()), plan_for(64), "s1", second)
    assert got["auc_diff"].value == 0.0
    assert got["auc_diff_std"].value == 0.0
    assert got["auc_diff_p_value"].value is None
    assert got["auc_diff_p_value"].reason == ZERO_DIFF_VARIANCE


def test_pass_one_counts_skip_the_histogram_pass(spark, monkeypatch):
    buckets = 100
    y, s1, s2 = paired_rows(8, 2000, buckets, buckets, 0.3, 0.5)
    df, plan = frame(spark, y, s1, s2), plan_for(buckets)
    counts = tuple(count_binary(y, s, buckets, plan.thresholds) for s in (s1, s2))

    def no_pass_a(*args: object) -> None:
        raise AssertionError("pass A ran")

    with monkeypatch.context() as m:
        m.setattr(compare, "pair_histograms", no_pass_a)
        got = compared(df, plan, "s1", "s2", counts=counts)
    assert_matches_rows(got, row_paired(y, s1, s2))


def test_pass_one_counts_with_invalid_rows_are_not_reused(spark):
    buckets = 100
    y, s1, s2 = paired_rows(9, 2000, buckets, buckets, 0.3, 0.5)
    null2 = np.zeros(y.size, bool)
    null2[::10] = True
    df, plan = frame(spark, y, s1, s2, null2=null2), plan_for(buckets)
    counts = (
        count_binary_df(df, "label", "s1", buckets, plan.thresholds),
        count_binary_df(df, "label", "s2", buckets, plan.thresholds),
    )
    assert counts[0].invalid_rows == 0 and counts[1].invalid_rows == 200
    got = compared(df, plan, "s1", "s2", counts=counts)
    assert_matches_rows(got, row_paired(y[~null2], s1[~null2], s2[~null2]))


def test_counts_of_another_bucketing_are_refused(spark):
    y, s1, s2 = paired_rows(10, 100, 10, 10, 0.3, 0.5)
    counts = tuple(count_binary(y, s, 20, (0.5,)) for s in (s1, s2))
    with pytest.raises(ValueError, match="buckets"):
        compare_columns(frame(spark, y, s1, s2), plan_for(10), "s1", "s2", counts=counts)


@pytest.mark.parametrize(
    ("labels", "undefined_diff"), [([0, 0, 0, 0], True), ([1, 0, 0, 0, 0], False)]
)
def test_few_rows_of_a_class_are_undefined_not_errors(spark, labels, undefined_diff):
    y = np.array(labels)
    s1 = np.linspace(0.1, 0.9, y.size)
    got = compared(frame(spark, y, s1, s1[::-1]), plan_for(10), "s1", "s2")
    for name in ("auc_diff_std", "auc_diff_p_value"):
        assert got[name].value is None and got[name].reason
    assert (got["auc_diff"].value is None) == undefined_diff


def test_empty_input(spark):
    y = np.zeros(0, np.int64)
    got = compared(frame(spark, y, y * 0.0, y * 0.0), plan_for(10), "s1", "s2")
    assert all(m.value is None and m.reason for m in got.values())


def test_boolean_label_and_quoted_names(spark):
    y, s1, s2 = paired_rows(11, 1000, 32, 32, 0.3, 0.5)
    df = spark.createDataFrame(pa.table({"is.pos": pa.array(y.astype(bool)), "m`1": s1, "m 2": s2}))
    plan = CountPlan(label="is.pos", scores=(), buckets=32, thresholds=(0.5,))
    got = compared(df, plan, "m`1", "m 2")
    assert_matches_rows(got, row_paired(y, s1, s2))


def test_missing_column_is_an_input_error(spark):
    y, s1, s2 = paired_rows(12, 10, 10, 10, 0.3, 0.5)
    with pytest.raises(InputError, match="s3"):
        compare_columns(frame(spark, y, s1, s2), plan_for(10), "s1", "s3")


def test_lookup_holds_occupied_buckets_only():
    pos, neg = np.array([0, 2, 0, 1, 0]), np.array([1, 0, 0, 3, 0])
    table = compare.centred_lookup(pos, neg)
    assert table.column("bucket").to_pylist() == [0, 1, 3]
    # By hand, P = 3 and N = 4. V10 of a positive in bucket b: (negatives below + ½ tied) / N
    # = 0.5/4, 1/4, 2.5/4 in buckets 0, 1, 3; V01 of a negative: (positives above + ½ tied)
    # / P = 3/3, 2/3, 0.5/3. AUC = (2 · 1/4 + 1 · 2.5/4) / 3 = 0.375.
    auc = 0.375
    np.testing.assert_allclose(
        table.column("v10").to_numpy(), np.array([0.5, 1, 2.5]) / 4 - auc, rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(
        table.column("v01").to_numpy(), np.array([3, 2, 0.5]) / 3 - auc, rtol=0, atol=1e-15
    )
