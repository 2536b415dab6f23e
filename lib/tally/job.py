"""One evaluation run: read the input, count and measure it, write the tables.

The counting and the metrics are :func:`tally.evaluation.measure`, which the Python
API (:func:`tally.evaluate`) runs too; this module adds reading the input, picking the
reader, the run's keys (model, run date) and the four tables.

Also the rollup: add stored counts over a date range and compute that window's
metrics without reading the input again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from pyspark.sql import SparkSession

from tally.config import JobConfig, MetricsConfig
from tally.errors import InputError
from tally.evaluation import (
    measure,
    metric_values,
    plan_of,
    results_rows,
)
from tally.run_date import render_input
from tally.spark.checks_table import CHECKS_SCHEMA, run_checks
from tally.spark.columns import check_columns
from tally.spark.count import choose_reader, collect_count_groups
from tally.spark.counts_store import COUNTS_SCHEMA, StoredLayout, read_window, write_counts
from tally.spark.progress import log_progress
from tally.spark.read_errors import unreadable_files_named
from tally.spark.results import CURVES_SCHEMA, RESULTS_SCHEMA, write_curves, write_results
from tally.spark.selection import select_rows
from tally.spark.tables import check_schema
from tally.tasks import Counts, task_of

__all__ = ["RunSummary", "check_output_tables", "evaluate", "plan_of", "rollup"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What the job did, for the closing log line and for callers."""

    rows_read: int
    invalid_rows: int
    metrics_written: int
    wall_seconds: float
    table: str
    model: str
    run_date: dt.date

    def line(self) -> str:
        rate = self.rows_read / self.wall_seconds if self.wall_seconds > 0 else 0.0
        return (
            f"read {self.rows_read:,} rows ({self.invalid_rows:,} invalid) in "
            f"{self.wall_seconds:.1f} s ({rate:,.0f} rows/s); wrote {self.metrics_written} "
            f"metrics to {self.table} for model={self.model!r} run_date={self.run_date}"
        )


def evaluate(spark: SparkSession, config: JobConfig, run_date: dt.date) -> RunSummary:
    """Evaluate the configured score columns and slices; replace their rows for ``run_date``.

    The rows are those ``input.where`` or ``input.query`` select, their run-date
    placeholders filled for ``run_date`` (:mod:`tally.spark.selection`). One pass over
    them counts everything; ``metrics.auc: exact`` adds refinement passes (only rows in
    buckets that carry AUC error), ``compare`` two passes per pair, ``groups`` one
    shuffle of the needed columns keyed by the group. An input without rows, or with a
    file that cannot be read, is an InputError before anything is written.
    """
    started = time.monotonic()
    plan = plan_of(config)
    check_output_tables(spark, config)  # before the scan: a failure writes nothing
    label = f"evaluate {config.model} {run_date}"
    with unreadable_files_named():  # a corrupt input file: one InputError naming it
        selection = select_rows(spark, render_input(config.input, run_date))
        df = selection.df
        check_columns(df, plan)  # before a reader looks at the columns' types
        reader = choose_reader(spark, df, plan, selection.source)
        with log_progress(spark, label, records=reader.reports_input_records):
            evaluation = measure(df, config, reader)
    try:
        overall = evaluation.overall
        _check_not_empty(overall, selection.description, config.input.allow_empty)
        rows = results_rows(evaluation.values(), run_date, config.model)
        curves = evaluation.curve_rows(run_date, config.model)
        tables = evaluation.tables
        # counted onto the driver (the arrow reader): one task writes them, one file
        cells = tables.cells if tables.collected is None else tables.cells.coalesce(1)
        layout = StoredLayout.of(plan)
        out = config.output
        # check_output_tables compared the four schemas before the scan: not again here
        write_counts(spark, out.counts_table, cells, layout, run_date, config.model, checked=True)
        write_results(spark, out.table, rows, checked=True)
        write_curves(spark, out.curves_table, curves, checked=True)
        run_checks(spark, config, run_date, checked=True)  # last: a failed check raises (exit 6)
    finally:
        evaluation.release()
    return RunSummary(
        rows_read=overall.rows + overall.invalid_rows,
        invalid_rows=overall.invalid_rows,
        metrics_written=len(rows),
        wall_seconds=time.monotonic() - started,
        table=config.output.table,
        model=config.model,
        run_date=run_date,
    )


def check_output_tables(spark: SparkSession, config: JobConfig) -> None:
    """Fail (OutputError) when an output table exists with another schema, before any write.

    Each table is written by its own insert; checking all four first means a schema
    conflict on the last one cannot leave this run's rows in the others.
    """
    outputs = (
        (config.output.counts_table, COUNTS_SCHEMA, "output.counts_table"),
        (config.output.table, RESULTS_SCHEMA, "output"),
        (config.output.curves_table, CURVES_SCHEMA, "output.curves_table"),
        (config.output.checks_table, CHECKS_SCHEMA, "output.checks_table"),
    )
    for table, schema, role in outputs:
        if spark.catalog.tableExists(table):
            check_schema(spark, table, schema, role)


def rollup(
    spark: SparkSession,
    counts_table: str,
    results_table: str | None,
    model: str,
    start: dt.date,
    end: dt.date,
    options: MetricsConfig | None = None,
) -> list[tuple]:
    """Metrics of ``model`` over ``start``…``end`` from stored counts (no input scan).

    Rows carry ``run_date = end`` and ``window_days = (end − start) + 1``; they are
    written to ``results_table`` unless it is None. Returns the result rows.
    """
    if end < start:
        raise InputError(f"--from {start} is after --to {end}")
    cells, layout, dates = read_window(spark, counts_table, model, start, end)
    window_days = (end - start).days + 1
    if len(dates) < window_days:
        have = {d for d in dates}
        missing = [start + dt.timedelta(days=i) for i in range(window_days)]
        missing = [d for d in missing if d not in have]
        log.warning(
            "rollup %s..%s: no stored counts for %d day(s): %s",
            start,
            end,
            len(missing),
            ", ".join(map(str, missing)),
        )
    plan = layout.plan()
    groups = collect_count_groups(cells, plan)
    options = options or MetricsConfig()
    values = metric_values(task_of(plan.task), groups, options)
    rows = results_rows(values, end, model, window_days=window_days)
    if results_table is not None:
        write_results(spark, results_table, rows)
    return rows


def _check_not_empty(overall: Counts, description: str, allow_empty: bool) -> None:
    """An InputError naming the selection when it holds no rows, unless allowed."""
    if overall.rows + overall.invalid_rows == 0 and not allow_empty:
        raise InputError(
            f"{description} holds no rows; nothing was written "
            "(input.allow_empty: true writes a count of 0)"
        )
