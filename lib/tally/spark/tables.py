"""Writing a run's rows into a partitioned catalog table, replacing only its partitions.

Tables are Parquet datasource tables partitioned by run keys (Spark lists
partition columns last). A write replaces exactly the partitions present in the
new rows — dynamic partition overwrite, no read-modify-write — so a rerun of one
(run_date, model) never touches other dates or models, even when jobs overlap.
Each write is one Spark insert: files land in a staging folder and are moved
into the partition folders when the job commits. Rows built on the driver (results,
curves, checks: a few hundred) are written by one task, so each partition gets one file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tally.errors import OutputError
from tally.spark.names import quote_identifier, split_table_name

log = logging.getLogger(__name__)

OVERWRITE_MODE = "spark.sql.sources.partitionOverwriteMode"
#: The overwrite mode is a session-wide conf: two runs writing from threads of one process
#: take turns, so neither inserts while the other has put the previous mode back (a static
#: INSERT OVERWRITE would delete every other partition of the table).
_WRITE_LOCK = threading.Lock()


def replace_partitions(
    spark: SparkSession,
    table: str,
    df: DataFrame,
    schema: T.StructType,
    partition_columns: Sequence[str],
    role: str,
    *,
    checked: bool = False,
) -> None:
    """Replace the partitions present in ``df`` (already in ``schema`` order) in ``table``.

    Creates the database and table on first use; raises :class:`OutputError` when
    the table exists with another schema (``role`` names the config key in the message).
    ``checked``: the caller has compared the table's schema in this run already (the job
    does, for all its tables before the scan), so only whether it exists is looked up.
    """
    if not spark.catalog.tableExists(table):
        create_database_of(spark, table)
        log.info("creating %s table %s", role, table)
        df.write.format("parquet").partitionBy(*partition_columns).saveAsTable(table)
        return
    if not checked:
        check_schema(spark, table, schema, role)
    with _WRITE_LOCK:
        before = spark.conf.get(OVERWRITE_MODE, None)
        spark.conf.set(OVERWRITE_MODE, "dynamic")  # the writer option is ignored by insertInto
        try:
            df.write.insertInto(table, overwrite=True)
        finally:
            if before is None:
                spark.conf.unset(OVERWRITE_MODE)
            else:
                spark.conf.set(OVERWRITE_MODE, before)


def check_schema(spark: SparkSession, table: str, schema: T.StructType, role: str) -> None:
    """Column names and types of ``table`` must equal ``schema`` (nullability aside)."""
    existing = [(f.name, f.dataType) for f in spark.table(table).schema.fields]
    wanted = [(f.name, f.dataType) for f in schema.fields]
    if existing != wanted:
        have = ", ".join(f"{n} {t.simpleString()}" for n, t in existing)
        need = ", ".join(f"{n} {t.simpleString()}" for n, t in wanted)
        raise OutputError(
            f"{role} table {table} exists with another schema ({have}); expected ({need}). "
            f"Choose another {role} table or migrate it."
        )


def create_database_of(spark: SparkSession, table: str) -> None:
    parts = split_table_name(table)
    if len(parts) < 2:
        return
    database = ".".join(quote_identifier(p) for p in parts[:-1])
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
