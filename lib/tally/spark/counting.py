"""Turn a DataFrame of scored rows into count tables, in one pass, without collecting rows.

The count table is one Spark SQL aggregation keyed by a single ``long`` cell id:

* valid rows: ``cell = bucket · (T + 1) + above`` where ``bucket = min(floor(score·B), B−1)``
  and ``above`` is how many of the T sorted thresholds satisfy ``score >= t`` — so one
  key carries both the histogram bucket and the exact side of every threshold;
* invalid rows: ``cell = −(1 + reason)`` with ``reason`` an index into
  :data:`~tally.counts.INVALID_REASONS` (the first failed check wins).

Each cell sums ``rows``, ``positives``, ``log_loss_sum`` and ``squared_error_sum``. Spark
computes partial aggregates per partition and merges them after a shuffle of at most
``B + T + 6`` cells, which is all that reaches the driver. Why SQL rather than
``mapInArrow`` + numpy: see README, "How counting runs".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.counts import INVALID_REASONS, LOG_LOSS_EPS, BinaryCounts, is_power_of_two
from tally.errors import InputError
from tally.spark.names import column

LABEL_TYPES = (T.NumericType, T.BooleanType)
SCORE_TYPES = (T.NumericType,)

COUNT_TABLE_COLUMNS = ("cell", "rows", "positives", "log_loss_sum", "squared_error_sum")


def check_binary_columns(df: DataFrame, label: str, score: str) -> None:
    """Fail before scanning when a column is missing or of a type that cannot be evaluated."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    for role, name, allowed, wanted in (
        ("label", label, LABEL_TYPES, "numeric or boolean"),
        ("score", score, SCORE_TYPES, "numeric"),
    ):
        if name not in fields:
            available = ", ".join(fields) or "(none)"
            raise InputError(f"{role} column '{name}' not found in input; columns: {available}")
        if not isinstance(fields[name], allowed):
            raise InputError(
                f"{role} column '{name}' has type {fields[name].simpleString()}, expected {wanted}"
            )


def invalid_reason_code(label: Column, score: Column) -> Column:
    """Index into INVALID_REASONS of a row's first problem, null when the row is valid."""
    checks = {
        "null_label": label.isNull(),
        "null_score": score.isNull(),
        "nan_score": F.isnan(score),
        "infinite_score": F.abs(score) == F.lit(float("inf")),
        "score_out_of_range": (score < 0) | (score > 1),
        "invalid_label": ~label.isin(0.0, 1.0),
    }
    assert tuple(checks) == INVALID_REASONS
    code: Column | None = None
    for index, condition in enumerate(checks.values()):
        code = F.when(condition, index) if code is None else code.when(condition, index)
    return code  # type: ignore[return-value]


def bucket_column(score: Column, buckets: int) -> Column:
    """Spark twin of :func:`tally.counts.bucket_of` (same float64 edge correction)."""
    b = float(buckets)
    index = F.floor(score * F.lit(b))
    if not is_power_of_two(buckets):
        index = (
            F.when(score < index / F.lit(b), index - 1)
            .when(score >= (index + 1) / F.lit(b), index + 1)
            .otherwise(index)
        )
    return F.least(index, F.lit(buckets - 1).cast("long"))


def binary_count_table(
    df: DataFrame, label: str, score: str, buckets: int, thresholds: Sequence[float]
) -> DataFrame:
    """Aggregate ``df`` into the binary count table (columns :data:`COUNT_TABLE_COLUMNS`).

    Reads only ``label`` and ``score``. The result has at most ``B + T + 6`` rows.
    """
    y = column(label).cast("double")
    s = column(score).cast("double")
    cells_per_bucket = len(thresholds) + 1
    bucket = bucket_column(s, buckets)
    above: Column = F.lit(0).cast("long")
    for t in sorted(thresholds):
        above = above + (s >= F.lit(float(t))).cast("long")
    reason = invalid_reason_code(y, s)
    cell = F.when(reason.isNotNull(), -1 - reason.cast("long")).otherwise(
        bucket * cells_per_bucket + above
    )
    clipped = F.least(F.greatest(s, F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    loss = F.when(y == 1, -F.log(clipped)).otherwise(-F.log1p(-clipped))
    return (
        df.select(cell.alias("cell"), y.alias("y"), s.alias("s"), loss.alias("loss"))
        .groupBy("cell")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum("y").cast("long").alias("positives"),
            F.sum("loss").alias("log_loss_sum"),
            F.sum((F.col("s") - F.col("y")) ** 2).alias("squared_error_sum"),
        )
    )


def collect_binary_counts(
    count_table: DataFrame, buckets: int, thresholds: Sequence[float]
) -> BinaryCounts:
    """Bring the (small) count table to the driver and decode it into :class:`BinaryCounts`."""
    arrow = count_table.select(*COUNT_TABLE_COLUMNS).toArrow()
    columns = {
        name: arrow.column(name).to_numpy(zero_copy_only=False) for name in COUNT_TABLE_COLUMNS
    }
    return decode_count_table(columns, buckets, thresholds)


def decode_count_table(
    columns: dict[str, np.ndarray], buckets: int, thresholds: Sequence[float]
) -> BinaryCounts:
    """Decode count-table columns (cell, rows, positives, sums) into :class:`BinaryCounts`."""
    thresholds = tuple(sorted(thresholds))
    cells_per_bucket = len(thresholds) + 1
    cell = columns["cell"].astype(np.int64)
    rows = columns["rows"].astype(np.int64)
    positives = np.nan_to_num(columns["positives"].astype(np.float64)).astype(np.int64)
    valid = cell >= 0
    bucket, above = np.divmod(cell[valid], cells_per_bucket)
    pos_cell, neg_cell = positives[valid], rows[valid] - positives[valid]
    pos = np.zeros(buckets, np.int64)
    neg = np.zeros(buckets, np.int64)
    np.add.at(pos, bucket, pos_cell)
    np.add.at(neg, bucket, neg_cell)
    tp_at = np.array([pos_cell[above > j].sum() for j in range(len(thresholds))], np.int64)
    fp_at = np.array([neg_cell[above > j].sum() for j in range(len(thresholds))], np.int64)
    invalid = dict.fromkeys(INVALID_REASONS, 0)
    for c, n in zip(cell[~valid], rows[~valid], strict=True):
        invalid[INVALID_REASONS[-1 - int(c)]] += int(n)
    return BinaryCounts(
        pos=pos,
        neg=neg,
        thresholds=thresholds,
        tp_at=tp_at,
        fp_at=fp_at,
        log_loss_sum=float(np.nansum(columns["log_loss_sum"][valid].astype(np.float64))),
        squared_error_sum=float(np.nansum(columns["squared_error_sum"][valid].astype(np.float64))),
        invalid=invalid,
    )


def count_binary_df(
    df: DataFrame, label: str, score: str, buckets: int, thresholds: Sequence[float]
) -> BinaryCounts:
    """Check the columns, then count ``df`` in one pass: the Spark counterpart of
    :func:`tally.counts.count_binary`."""
    check_binary_columns(df, label, score)
    table = binary_count_table(df, label, score, buckets, thresholds)
    return collect_binary_counts(table, buckets, thresholds)
