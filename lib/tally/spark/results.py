"""The results table: one row per number, partitioned by (run_date, model, window_days).

A nightly run writes ``window_days = 1``; a rollup over the N days ending on
``run_date`` writes ``window_days = N``, so it never replaces the nightly rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from tally.metrics import MetricValue
from tally.metrics.curves import CurvePoint
from tally.plan import ALL_ROWS
from tally.spark.tables import replace_partitions

RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("score_column", T.StringType(), False),
        T.StructField("slice", T.StringType(), False),
        T.StructField("metric", T.StringType(), False),
        T.StructField("class", T.StringType(), True),
        T.StructField("threshold", T.DoubleType(), True),
        T.StructField("value", T.DoubleType(), True),
        T.StructField("reason", T.StringType(), True),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("window_days", T.IntegerType(), False),
    ]
)
PARTITION_COLUMNS = ("run_date", "model", "window_days")


@dataclass(frozen=True)
class RunKey:
    """What identifies one group of result rows."""

    run_date: dt.date
    model: str
    score_column: str
    slice: str = ALL_ROWS
    window_days: int = 1


def result_rows(key: RunKey, metrics: Iterable[MetricValue]) -> list[tuple]:
    """Rows in :data:`RESULTS_SCHEMA` order for one group's metric values."""
    return [
        (
            key.score_column,
            key.slice,
            m.metric,
            m.class_,
            m.threshold,
            m.value,
            m.reason,
            key.run_date,
            key.model,
            key.window_days,
        )
        for m in metrics
    ]


def write_results(
    spark: SparkSession, table: str, rows: list[tuple], *, checked: bool = False
) -> None:
    """Replace the (run_date, model, window_days) partitions present in ``rows``
    (``checked``: :func:`tally.spark.tables.replace_partitions`)."""
    df = spark.createDataFrame(rows, schema=RESULTS_SCHEMA).coalesce(1)  # a few hundred rows
    replace_partitions(
        spark, table, df, RESULTS_SCHEMA, PARTITION_COLUMNS, "output", checked=checked
    )


CURVES_SCHEMA = T.StructType(
    [
        T.StructField("score_column", T.StringType(), False),
        T.StructField("slice", T.StringType(), False),
        T.StructField("curve", T.StringType(), False),
        T.StructField("point", T.IntegerType(), False),
        T.StructField("x", T.DoubleType(), True),
        T.StructField("y", T.DoubleType(), True),
        T.StructField("threshold", T.DoubleType(), True),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("model", T.StringType(), False),
        T.StructField("window_days", T.IntegerType(), False),
    ]
)


def curve_rows(key: RunKey, points: Iterable[CurvePoint]) -> list[tuple]:
    """Rows in :data:`CURVES_SCHEMA` order for one group's curve points."""
    return [
        (
            key.score_column,
            key.slice,
            p.curve,
            int(p.point),
            float(p.x),
            float(p.y),
            None if p.threshold is None else float(p.threshold),
            key.run_date,
            key.model,
            key.window_days,
        )
        for p in points
    ]


def write_curves(
    spark: SparkSession, table: str, rows: list[tuple], *, checked: bool = False
) -> None:
    """Replace the (run_date, model, window_days) partitions present in ``rows``."""
    if not rows:
        return
    df = spark.createDataFrame(rows, schema=CURVES_SCHEMA).coalesce(1)
    role = "output.curves_table"
    replace_partitions(spark, table, df, CURVES_SCHEMA, PARTITION_COLUMNS, role, checked=checked)
