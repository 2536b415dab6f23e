"""The results table: its schema, and the replace-one-(run_date, model) write.

Long format, one row per number. The table is partitioned by ``run_date`` and
``model`` (Spark puts partition columns last in the schema), so a rerun of one
model for one date overwrites exactly that partition — with dynamic partition
overwrite, no read-modify-write — and jobs for different models on the same date
never touch each other's rows. All rows of a run are written by one insert:
nothing is written when the job fails before it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from tally.errors import OutputError
from tally.metrics import MetricValue
from tally.spark.names import quote_identifier, split_table_name

log = logging.getLogger(__name__)

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
    ]
)
PARTITION_COLUMNS = ("run_date", "model")
ALL_ROWS = "ALL"


@dataclass(frozen=True)
class RunKey:
    """What identifies one run's rows: the partition it replaces, and its score column."""

    run_date: dt.date
    model: str
    score_column: str
    slice: str = ALL_ROWS


def result_rows(key: RunKey, metrics: Iterable[MetricValue]) -> list[tuple]:
    """Rows in :data:`RESULTS_SCHEMA` order for a run's metric values."""
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
        )
        for m in metrics
    ]


def write_results(spark: SparkSession, table: str, rows: list[tuple]) -> None:
    """Replace the (run_date, model) partitions present in ``rows`` in ``table``.

    Creates the database and table on first use. Fails with :class:`OutputError`
    when the table exists with another schema.
    """
    df = spark.createDataFrame(rows, schema=RESULTS_SCHEMA)
    if not spark.catalog.tableExists(table):
        _create_database_of(spark, table)
        log.info("creating results table %s", table)
        df.write.format("parquet").partitionBy(*PARTITION_COLUMNS).saveAsTable(table)
        return
    _check_schema(spark, table)
    # Dynamic mode: an overwrite replaces only the partitions present in ``df``.
    # (The writer option is not honoured by insertInto; the session conf is.)
    key = "spark.sql.sources.partitionOverwriteMode"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "dynamic")
    try:
        df.write.insertInto(table, overwrite=True)
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)


def _check_schema(spark: SparkSession, table: str) -> None:
    existing = [(f.name, f.dataType) for f in spark.table(table).schema.fields]
    wanted = [(f.name, f.dataType) for f in RESULTS_SCHEMA.fields]
    if existing != wanted:
        have = ", ".join(f"{n} {t.simpleString()}" for n, t in existing)
        need = ", ".join(f"{n} {t.simpleString()}" for n, t in wanted)
        raise OutputError(
            f"output table {table} exists with another schema ({have}); expected ({need}). "
            "Choose another output.table or migrate the table."
        )


def _create_database_of(spark: SparkSession, table: str) -> None:
    parts = split_table_name(table)
    if len(parts) < 2:
        return
    database = ".".join(quote_identifier(p) for p in parts[:-1])
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
