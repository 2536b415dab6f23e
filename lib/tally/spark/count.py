"""Counting an input: the one place that picks a reader, and the count tables it gives.

:func:`choose_reader` reads ``input.reader``: ``spark`` takes the Spark SQL reader;
``arrow`` takes the arrow reader and fails naming what stands in the way when it cannot
count the input as Spark's reader does; ``auto`` takes the arrow reader where it can,
else the Spark SQL reader, and logs why. Then :func:`count_tables` (one pass, persisted,
as the job counts) or :func:`count_table` (lazily) count the plan with that reader.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from tally.config import InputConfig
from tally.counts import BinaryCounts
from tally.errors import InputError
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.cells import CountTables, collect_count_groups, count_table_of
from tally.spark.columns import check_columns
from tally.spark.readers import SQL_READER, ArrowReader, Reader
from tally.spark.readers.arrow.files import IneligibleError, task_splits
from tally.tasks import decode_groups

__all__ = [
    "CountTables",
    "arrow_reader",
    "choose_reader",
    "collect_count_groups",
    "count_binary_df",
    "count_table",
    "count_tables",
    "decode_groups",
]

log = logging.getLogger(__name__)


def choose_reader(
    spark: SparkSession, df: DataFrame, plan: CountPlan, source: InputConfig
) -> Reader:
    """The reader of ``df`` (read as ``source`` says) for ``plan``: :func:`arrow_reader`
    when it gives one, else the Spark SQL reader."""
    return arrow_reader(spark, df, plan, source) or SQL_READER


def arrow_reader(
    spark: SparkSession, df: DataFrame, plan: CountPlan, source: InputConfig
) -> ArrowReader | None:
    """The arrow reader of ``df``'s files, or None to count with the Spark SQL reader.

    None under ``input.reader: spark``; under ``auto`` also when the arrow reader does
    not count the plan's task or cannot read the input as Spark would (the log says
    why). Raises :class:`~tally.errors.InputError` under ``input.reader: arrow`` when it
    cannot.
    """
    if source.reader == SQL_READER.name:
        return None
    try:
        if plan.task not in ArrowReader.supported_tasks:
            raise IneligibleError(f"the arrow reader does not count task {plan.task}")
        reader = ArrowReader(task_splits(spark, df, plan, source))
    except IneligibleError as why:
        if source.reader == ArrowReader.name:
            raise InputError(f"input.reader is 'arrow' but {why}") from None
        log.info("reading the input with Spark (input.reader: auto): %s", why)
        return None
    log.info(
        "reading %d Parquet file(s) with pyarrow in %d task(s) (input.reader: %s)",
        reader.files,
        len(reader.tasks),
        source.reader,
    )
    return reader


def _supported(reader: Reader, plan: CountPlan) -> Reader:
    if plan.task not in reader.supported_tasks:
        raise ValueError(f"the {reader.name} reader does not count task {plan.task!r}")
    return reader


def count_table(df: DataFrame, plan: CountPlan, reader: Reader | None = None) -> DataFrame:
    """The count table of ``df`` (columns :data:`~tally.plan.COUNT_COLUMNS`), lazily,
    from one pass of ``reader`` (default: the Spark SQL reader).

    Reads only the columns the plan needs; the result is small: at most
    ``(B·(T+1) + 8)`` cells per (score column, slice) for a binary plan.
    """
    check_columns(df, plan)
    cells, width = _supported(reader or SQL_READER, plan).cells(df, plan)
    return count_table_of(cells, width, plan)


def count_tables(df: DataFrame, plan: CountPlan, reader: Reader | None = None) -> CountTables:
    """:func:`count_table` plus the merged-slice counts, from one pass, as the job counts.

    The arrow reader counts binary and unsliced multi-label plans onto the driver at
    once (unless their tables are too large for that); otherwise nothing runs until the
    cells are read.
    """
    check_columns(df, plan)
    return _supported(reader or SQL_READER, plan).count(df, plan)


def count_binary_df(
    df: DataFrame,
    label: str,
    score: str,
    buckets: int,
    thresholds: Sequence[float],
    weight: str | None = None,
) -> BinaryCounts:
    """Counts of one score column over all rows: the Spark twin of
    :func:`tally.counts.count_binary`."""
    plan = CountPlan(
        label=label,
        scores=(score,),
        buckets=buckets,
        thresholds=tuple(sorted(thresholds)),
        weight=weight,
    )
    counts = collect_count_groups(count_table(df, plan), plan)[(score, ALL_ROWS)]
    assert isinstance(counts, BinaryCounts)
    return counts
