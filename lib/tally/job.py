"""One evaluation run: read the input, count in one pass, compute metrics, write results.

Also the rollup: add stored counts over a date range and compute that window's
metrics without reading the input again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession

from tally.config import JobConfig, MetricsConfig
from tally.errors import InputError, InvalidRowsError
from tally.metrics import MetricValue
from tally.metrics.exact import RefineOptions
from tally.plan import ALL_ROWS, CountPlan
from tally.run_date import render_input
from tally.spark.checks_table import run_checks
from tally.spark.columns import check_array_widths, check_columns
from tally.spark.compare import compare_columns
from tally.spark.count import choose_reader, collect_count_groups, count_tables
from tally.spark.counts_store import COUNTS_SCHEMA, StoredLayout, read_window, write_counts
from tally.spark.groups import group_metrics
from tally.spark.progress import log_progress
from tally.spark.read_errors import unreadable_files_named
from tally.spark.readers import Reader
from tally.spark.refine import exact_auc_metrics, refine_histogram
from tally.spark.results import (
    CURVES_SCHEMA,
    RESULTS_SCHEMA,
    RunKey,
    curve_rows,
    result_rows,
    write_curves,
    write_results,
)
from tally.spark.selection import select_rows
from tally.spark.tables import check_schema
from tally.tasks import Counts, GroupKey, Task, task_of

#: Extra metrics per (score column, slice) that replace or add to the count-table metrics.
Extra = Mapping[tuple[str, str], list[MetricValue]]

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


def plan_of(config: JobConfig) -> CountPlan:
    """The counting plan a config asks for."""
    return CountPlan(
        label=config.columns.label,
        scores=config.columns.scores,
        buckets=config.metrics.buckets,
        thresholds=config.metrics.thresholds,
        weight=config.columns.weight,
        slices=config.slices,
        max_slices_per_spec=config.max_slices_per_spec,
        task=config.task,
        classes=config.classes,
        top_k=config.metrics.top_k,
        multiclass_input=config.columns.multiclass_input or "prediction",
        score_transform=config.score_transform,
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
    tables = None
    try:
        with unreadable_files_named():  # a corrupt input file: one InputError naming it
            selection = select_rows(spark, render_input(config.input, run_date))
            df = selection.df
            check_columns(df, plan)
            reader = choose_reader(spark, df, plan, selection.source)
            check_array_widths(df, plan)  # one value per per-class column, before the pass
            with log_progress(spark, label, records=reader.reports_input_records):
                tables = count_tables(df, plan, reader)
                groups = tables.groups(plan)  # the one pass over the input
                merged = tables.merged_counts()
                overall = groups[(plan.scores[0], ALL_ROWS)]
                _check_not_empty(overall, selection.description, config.input.allow_empty)
                _check_invalid(groups, plan, config.on_invalid)
                extra = extra_metrics(df, plan, config, groups, reader)
        task = task_of(plan.task)
        rows = metric_rows(
            task, groups, merged, config.metrics, run_date, config.model, extra=extra
        )
        curves = all_curve_rows(task, groups, config.metrics, run_date, config.model)
        layout = StoredLayout.of(plan)
        write_counts(
            spark, config.output.counts_table, tables.cells, layout, run_date, config.model
        )
        write_results(spark, config.output.table, rows)
        write_curves(spark, config.output.curves_table, curves)
        run_checks(spark, config, run_date)  # last: a failed check raises (exit 6)
    finally:
        if tables is not None:
            tables.release()
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

    Each table is written by its own insert; checking all three first means a schema
    conflict on the last one cannot leave this run's rows in the first two.
    """
    outputs = (
        (config.output.counts_table, COUNTS_SCHEMA, "output.counts_table"),
        (config.output.table, RESULTS_SCHEMA, "output"),
        (config.output.curves_table, CURVES_SCHEMA, "output.curves_table"),
    )
    for table, schema, role in outputs:
        if spark.catalog.tableExists(table):
            check_schema(spark, table, schema, role)


def extra_metrics(
    df: DataFrame,
    plan: CountPlan,
    config: JobConfig,
    groups: Mapping[GroupKey, Counts],
    reader: Reader | None = None,
) -> dict[tuple[str, str], list[MetricValue]]:
    """Metrics that need more than the count table: exact AUC, paired comparisons, groups.

    ``reader``: the reader that counted pass 1, which runs the exact-AUC passes too.

    Keyed by (score column, slice); a paired comparison of ``a`` and ``b`` is keyed by
    the score column ``"a vs b"`` (:func:`comparison_name`).
    """
    extra: dict[tuple[str, str], list[MetricValue]] = {}
    options = config.metrics
    if options.auc == "exact":
        refinement = RefineOptions(
            tolerance=options.auc_tolerance,
            refine_ap=options.auc_tolerance == 0,
            max_passes=options.auc_max_passes,
            cell_budget=options.auc_cell_budget,
        )
        for score in plan.scores:
            counts = groups[(score, ALL_ROWS)]
            flat = refine_histogram(df, plan, score, counts, refinement, reader=reader)
            log.info(
                "%s: exact AUC after %d pass(es), %d bins, bound %.3g",
                score,
                flat.passes,
                flat.bins,
                flat.auc_bound,
            )
            extra.setdefault((score, ALL_ROWS), []).extend(
                [*exact_auc_metrics(flat), MetricValue("auc_passes", float(flat.passes))]
            )
    for first, second in config.compare:
        counts = (groups[(first, ALL_ROWS)], groups[(second, ALL_ROWS)])
        values = compare_columns(df, plan, first, second, counts=counts)  # type: ignore[arg-type]
        extra[(comparison_name(first, second), ALL_ROWS)] = values
    if config.group_key is not None:
        for key, values in group_metrics(df, plan, config.group_key).items():
            if key in groups:  # slices merged into __other__ get no group metrics of their own
                extra.setdefault(key, []).extend(values)
    return extra


def comparison_name(first: str, second: str) -> str:
    """The ``score_column`` of a paired comparison's rows: ``"score_v7 vs score_v8"``."""
    return f"{first} vs {second}"


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
    task = task_of(plan.task)
    rows = metric_rows(task, groups, {}, options, end, model, window_days=window_days)
    if results_table is not None:
        write_results(spark, results_table, rows)
    return rows


def metric_rows(
    task: Task,
    groups: Mapping[GroupKey, Counts],
    merged: Mapping[str, int],
    options: MetricsConfig,
    run_date: dt.date,
    model: str,
    window_days: int = 1,
    extra: Extra | None = None,
) -> list[tuple]:
    """Result rows for every (score column, slice) group of ``task``, in a stable order.

    ``extra`` metrics replace the count-table metric of the same (metric, threshold,
    class), e.g. the exact ``roc_auc``, or are added; a key that is not a group (a
    paired comparison) gets rows of its own.
    """
    extra = extra or {}
    rows: list[tuple] = []
    keys = sorted({*groups, *extra})
    for score_column, slice_label in keys:
        counts = groups.get((score_column, slice_label))
        metrics = [] if counts is None else task.metrics(counts, options)
        metrics = _with_extra(metrics, extra.get((score_column, slice_label), []))
        if slice_label in merged:
            metrics.append(MetricValue("merged_slice_values", float(merged[slice_label])))
        if slice_label == ALL_ROWS:
            for m in metrics:
                if m.value is None:
                    log.warning(
                        "%s: %s%s is null: %s",
                        score_column,
                        m.metric,
                        "" if m.threshold is None else f"@{m.threshold:g}",
                        m.reason,
                    )
        key = RunKey(
            run_date=run_date,
            model=model,
            score_column=score_column,
            slice=slice_label,
            window_days=window_days,
        )
        rows.extend(result_rows(key, metrics))
    return rows


def _with_extra(metrics: list[MetricValue], extra: list[MetricValue]) -> list[MetricValue]:
    """``metrics`` with each of ``extra`` replacing its namesake in place, or appended."""
    if not extra:
        return metrics
    by_key = {(m.metric, m.threshold, m.class_): m for m in extra}
    out = [by_key.pop((m.metric, m.threshold, m.class_), m) for m in metrics]
    return out + [m for m in extra if (m.metric, m.threshold, m.class_) in by_key]


def all_curve_rows(
    task: Task,
    groups: Mapping[GroupKey, Counts],
    options: MetricsConfig,
    run_date: dt.date,
    model: str,
    window_days: int = 1,
) -> list[tuple]:
    """Curve rows of every (score column, slice) group: ROC, PR and reliability for
    binary groups (:attr:`tally.tasks.base.Task.curves`), none for the other tasks."""
    rows: list[tuple] = []
    for (score_column, slice_label), counts in sorted(groups.items()):
        points = task.curves(counts, options)
        if not points:
            continue
        key = RunKey(
            run_date=run_date,
            model=model,
            score_column=score_column,
            slice=slice_label,
            window_days=window_days,
        )
        rows.extend(curve_rows(key, points))
    return rows


def _check_not_empty(overall: Counts, description: str, allow_empty: bool) -> None:
    """An InputError naming the selection when it holds no rows, unless allowed."""
    if overall.rows + overall.invalid_rows == 0 and not allow_empty:
        raise InputError(
            f"{description} holds no rows; nothing was written "
            "(input.allow_empty: true writes a count of 0)"
        )


def _check_invalid(
    groups: Mapping[GroupKey, Counts], plan: CountPlan, on_invalid: str
) -> None:
    for score in plan.scores:
        counts = groups[(score, ALL_ROWS)]
        by_reason = {r: n for r, n in counts.invalid.items() if n}
        if not by_reason:
            continue
        detail = ", ".join(f"{r}={n:,}" for r, n in by_reason.items())
        if on_invalid == "fail":
            raise InvalidRowsError(
                f"{counts.invalid_rows:,} invalid rows for score column '{score}' ({detail}) "
                "and on_invalid is 'fail'; nothing was written"
            )
        log.warning(
            "score column '%s': skipped %s invalid rows: %s",
            score,
            f"{counts.invalid_rows:,}",
            detail,
        )
