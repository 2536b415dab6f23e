"""The Spark count table: same counts as the rows say, whatever the partitioning."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
from chispa import assert_approx_df_equality, assert_df_equality
from pyspark.sql import types as T
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

from tally.counts import count_binary
from tally.errors import InputError
from tally.metrics.binary import binary_metrics
from tally.plan import CountPlan
from tally.spark.count import count_binary_df, count_table

BUCKETS = 1024
THRESHOLDS = (0.25, 0.5, 0.5 + 1e-9, 0.9)


def random_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.35).astype(np.int64)
    score = np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0.0, 1.0)
    score[: n // 5] = np.round(score[: n // 5], 2)  # real ties
    score[n // 5 : n // 5 + 10] = 0.5  # rows exactly on a threshold
    return label, score


@pytest.fixture(scope="module")
def scored(spark):
    label, score = random_rows(20_000, seed=11)
    df = spark.createDataFrame(
        [(int(y), float(s)) for y, s in zip(label, score, strict=True)], "label long, score double"
    )
    return df, label, score


def test_count_table_is_identical_across_partitionings(scored):
    df, _, _ = scored
    plan = CountPlan(label="label", scores=("score",), buckets=BUCKETS, thresholds=THRESHOLDS)
    tables = [count_table(df.repartition(n), plan) for n in (1, 3, 17)]
    ints = ["score_column", "slice", "cell", "n", "w", "wy"]
    for other in tables[1:]:
        assert_df_equality(
            tables[0].select(ints), other.select(ints), ignore_row_order=True
        )
        assert_approx_df_equality(
            tables[0].orderBy("cell"), other.orderBy("cell"), precision=1e-9
        )


def test_spark_counts_equal_numpy_counts_of_the_same_rows(scored):
    df, label, score = scored
    counts = count_binary_df(df.repartition(7), "label", "score", BUCKETS, THRESHOLDS)
    assert counts.same_counts(count_binary(label, score, BUCKETS, THRESHOLDS), rtol=1e-9)


def test_spark_metrics_match_scikit_learn(scored):
    df, label, score = scored
    counts = count_binary_df(df, "label", "score", BUCKETS, THRESHOLDS)
    metrics = {(m.metric, m.threshold): m.value for m in binary_metrics(counts)}
    for t in THRESHOLDS:
        tn, fp, fn, tp = confusion_matrix(label, score >= t, labels=[0, 1]).ravel()
        assert metrics[("tp", t)] == tp
        assert metrics[("fp", t)] == fp
        assert metrics[("tn", t)] == tn
        assert metrics[("fn", t)] == fn
    bound = metrics[("roc_auc_error_bound", None)]
    assert abs(metrics[("roc_auc", None)] - roc_auc_score(label, score)) <= bound + 1e-12
    assert metrics[("log_loss", None)] == pytest.approx(log_loss(label, score), rel=1e-12)


def test_invalid_rows_are_counted_by_reason(spark):
    nan, inf = float("nan"), float("inf")
    rows = [
        (1.0, 0.9), (0.0, 0.1),  # valid
        (None, 0.5),  # null_label
        (1.0, None),  # null_score
        (0.0, nan),  # nan_score
        (1.0, inf), (0.0, -inf),  # infinite_score
        (1.0, 1.5), (0.0, -0.1),  # score_out_of_range
        (2.0, 0.5), (-1.0, 0.5), (0.5, 0.5),  # invalid_label
        (None, None),  # null_label wins
    ]
    df = spark.createDataFrame(rows, "label double, score double")
    counts = count_binary_df(df, "label", "score", 16, (0.5,))
    assert counts.invalid == {
        "null_label": 2, "null_score": 1, "nan_score": 1, "infinite_score": 2,
        "score_out_of_range": 2, "invalid_label": 3, "null_weight": 0, "invalid_weight": 0,
    }
    assert (counts.positives, counts.negatives) == (1, 1)
    assert list(counts.tp_at) == [1] and list(counts.fp_at) == [0]


@pytest.mark.parametrize(
    ("label_type", "score_type", "to_label", "to_score", "stored_as"),
    [
        (T.BooleanType(), T.FloatType(), bool, float, np.float32),
        (T.IntegerType(), T.DoubleType(), int, float, np.float64),
        (T.DecimalType(3, 1), T.DecimalType(10, 6), decimal.Decimal, decimal.Decimal, np.float64),
        (T.ByteType(), T.IntegerType(), int, lambda s: round(float(s)), np.float64),
    ],
)
def test_numeric_and_boolean_column_types_are_accepted(
    spark, label_type, score_type, to_label, to_score, stored_as
):
    labels = [1, 0, 1, 0, 1]
    scores = ["0.9", "0.2", "0.75", "0.5", "0.1"]
    schema = T.StructType([T.StructField("y", label_type), T.StructField("p", score_type)])
    rows = [(to_label(y), to_score(s)) for y, s in zip(labels, scores, strict=True)]
    counts = count_binary_df(spark.createDataFrame(rows, schema), "y", "p", 10, (0.5,))
    # A float32 column is evaluated at its stored float32 value (0.9f < 0.9).
    stored = np.array([float(stored_as(to_score(s))) for s in scores])
    expected = count_binary(np.array(labels), stored, 10, (0.5,))
    assert counts.same_counts(expected)


def test_missing_column_fails_naming_it(spark):
    df = spark.createDataFrame([(1, 0.5)], "label int, prob double")
    with pytest.raises(InputError, match=r"score column 'score' not found.*label, prob"):
        count_binary_df(df, "label", "score", 16, (0.5,))


def test_non_numeric_column_fails_naming_it_and_its_type(spark):
    df = spark.createDataFrame([("yes", 0.5)], "label string, score double")
    with pytest.raises(InputError, match=r"label column 'label' has type string"):
        count_binary_df(df, "label", "score", 16, (0.5,))
    df = spark.createDataFrame([(1, "0.5")], "label int, score string")
    with pytest.raises(InputError, match=r"score column 'score' has type string"):
        count_binary_df(df, "label", "score", 16, (0.5,))


def test_empty_input_gives_zero_counts_and_undefined_metrics(spark):
    df = spark.createDataFrame([], "label int, score double")
    counts = count_binary_df(df, "label", "score", 16, (0.5,))
    metrics = {(m.metric, m.threshold): m for m in binary_metrics(counts)}
    assert metrics[("count", None)].value == 0
    for name in ("roc_auc", "pr_auc", "best_f1", "log_loss", "brier"):
        assert metrics[(name, None)].value is None
        assert metrics[(name, None)].reason


def test_column_names_with_backticks_and_spaces(spark):
    df = spark.createDataFrame([(1, 0.8), (0, 0.3)], "`a``b` int, `my score` double")
    counts = count_binary_df(df, "a`b", "my score", 16, (0.5,))
    assert (counts.positives, counts.negatives) == (1, 1)


@pytest.mark.parametrize("buckets", [100, 1000, 65536])
def test_spark_buckets_agree_with_numpy_on_bucket_edges(spark, buckets):
    edges = np.arange(buckets) / buckets
    scores = np.concatenate([edges, np.nextafter(edges[1:], 0), [1.0]])
    labels = np.arange(scores.size) % 2
    df = spark.createDataFrame(
        [(int(y), float(s)) for y, s in zip(labels, scores, strict=True)], "y long, s double"
    )
    counts = count_binary_df(df, "y", "s", buckets, (0.29,))
    assert counts.same_counts(count_binary(labels, scores, buckets, (0.29,)))
