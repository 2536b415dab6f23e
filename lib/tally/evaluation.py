"""The core of an evaluation, shared by ``tally evaluate`` and :func:`tally.evaluate`.

:func:`measure` takes a DataFrame of scored rows and a validated config, counts them
in one pass with a reader (:mod:`tally.spark.readers`), and computes every metric: the
task's metrics of each (score column, slice) group, and those that need more than the
count table (exact AUC, paired comparisons, group metrics). :mod:`tally.job` reads the
input, calls it and writes the tables; :mod:`tally.api` calls it on a DataFrame and
returns the metrics as pandas.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import DataFrame

from tally.config import JobConfig, MetricsConfig
from tally.errors import InvalidRowsError
from tally.metrics import MetricValue
from tally.metrics.exact import RefineOptions
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.cells import CountTables
from tally.spark.columns import check_array_widths, check_columns
from tally.spark.compare import compare_columns
from tally.spark.count import count_tables
from tally.spark.groups import group_metrics
from tally.spark.readers import SQL_READER, Reader
from tally.spark.refine import exact_auc_metrics, exact_reader, refine_histogram
from tally.spark.results import RunKey, curve_rows, result_rows
from tally.tasks import Counts, GroupKey, Task, task_of

log = logging.getLogger(__name__)

#: Metric values per (score column, slice).
Values = dict[GroupKey, list[MetricValue]]


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


@dataclass
class Evaluation:
    """One pass's counts and every metric of them (:func:`measure`).

    ``tables`` stay persisted for writing the stored counts: :meth:`release` them when
    done.
    """

    plan: CountPlan
    options: MetricsConfig
    tables: CountTables
    groups: dict[GroupKey, Counts]
    #: values merged into each ``__other__`` slice, by its label
    merged: dict[str, int]
    #: metrics beyond the count table's (exact AUC, comparisons, groups)
    extra: Values

    @property
    def task(self) -> Task:
        return task_of(self.plan.task)

    @property
    def overall(self) -> Counts:
        """The counts of the first score column over all rows."""
        return self.groups[(self.plan.scores[0], ALL_ROWS)]

    def values(self) -> Values:
        """Every metric value per (score column, slice), in a stable order."""
        return metric_values(self.task, self.groups, self.options, self.merged, self.extra)

    def curve_rows(self, run_date: dt.date, model: str) -> list[tuple]:
        """The curves table's rows of every group."""
        return all_curve_rows(self.task, self.groups, self.options, run_date, model)

    def release(self) -> None:
        self.tables.release()


def measure(df: DataFrame, config: JobConfig, reader: Reader | None = None) -> Evaluation:
    """Count ``df`` in one pass with ``reader`` (default: the Spark SQL reader) and
    compute every metric ``config`` asks for.

    Raises :class:`~tally.errors.InputError` for a missing column or a wrong type
    (before any row is read) and :class:`~tally.errors.InvalidRowsError` for invalid
    rows under ``on_invalid: fail``.
    """
    plan = plan_of(config)
    check_columns(df, plan)
    check_array_widths(df, plan)  # one value per per-class column, before the pass
    reader = reader or SQL_READER
    if config.metrics.auc == "exact":  # the arrow reader ships the rows as it counts
        reader = exact_reader(reader, plan, refine_options(config.metrics))
    tables = count_tables(df, plan, reader)
    try:
        groups = tables.groups(plan)  # the one pass over the input
        merged = tables.merged_counts()
        check_invalid(groups, plan, config.on_invalid)
        extra = extra_metrics(df, plan, config, groups, reader)
    except BaseException:
        tables.release()
        raise
    return Evaluation(plan, config.metrics, tables, groups, merged, extra)


def extra_metrics(
    df: DataFrame,
    plan: CountPlan,
    config: JobConfig,
    groups: Mapping[GroupKey, Counts],
    reader: Reader | None = None,
) -> Values:
    """Metrics that need more than the count table: exact AUC, paired comparisons, groups.

    ``reader``: the reader that counted pass 1, which runs the exact-AUC passes too.

    Keyed by (score column, slice); a paired comparison of ``a`` and ``b`` is keyed by
    the score column ``"a vs b"`` (:func:`comparison_name`).
    """
    extra: Values = {}
    options = config.metrics
    if options.auc == "exact":
        refinement = refine_options(options)
        for score in plan.scores:
            counts = groups[(score, ALL_ROWS)]
            flat = refine_histogram(df, plan, score, counts, refinement, reader=reader)  # type: ignore[arg-type]
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


def refine_options(options: MetricsConfig) -> RefineOptions:
    """The exact-AUC passes' options of ``metrics.auc_*``."""
    return RefineOptions(
        tolerance=options.auc_tolerance,
        refine_ap=options.auc_tolerance == 0,
        max_passes=options.auc_max_passes,
        cell_budget=options.auc_cell_budget,
    )


def comparison_name(first: str, second: str) -> str:
    """The ``score_column`` of a paired comparison's rows: ``"score_v7 vs score_v8"``."""
    return f"{first} vs {second}"


def metric_values(
    task: Task,
    groups: Mapping[GroupKey, Counts],
    options: MetricsConfig,
    merged: Mapping[str, int] | None = None,
    extra: Mapping[GroupKey, list[MetricValue]] | None = None,
) -> Values:
    """Every metric value per (score column, slice) group of ``task``, in a stable order.

    ``extra`` metrics replace the count-table metric of the same (metric, threshold,
    class), e.g. the exact ``roc_auc``, or are added; a key that is not a group (a
    paired comparison) gets values of its own. A slice with values merged into it
    (``merged``, by label) gets ``merged_slice_values``. Null metrics of the ``ALL``
    slice are logged with their reason.
    """
    extra = extra or {}
    merged = merged or {}
    out: Values = {}
    for score_column, slice_label in sorted({*groups, *extra}):
        counts = groups.get((score_column, slice_label))
        metrics = [] if counts is None else task.metrics(counts, options)
        metrics = _with_extra(metrics, extra.get((score_column, slice_label), []))
        if slice_label in merged:
            metrics.append(MetricValue("merged_slice_values", float(merged[slice_label])))
        if slice_label == ALL_ROWS:
            _log_nulls(score_column, metrics)
        out[(score_column, slice_label)] = metrics
    return out


def _log_nulls(score_column: str, metrics: list[MetricValue]) -> None:
    for m in metrics:
        if m.value is None:
            log.warning(
                "%s: %s%s is null: %s",
                score_column,
                m.metric,
                "" if m.threshold is None else f"@{m.threshold:g}",
                m.reason,
            )


def _with_extra(metrics: list[MetricValue], extra: list[MetricValue]) -> list[MetricValue]:
    """``metrics`` with each of ``extra`` replacing its namesake in place, or appended."""
    if not extra:
        return metrics
    by_key = {(m.metric, m.threshold, m.class_): m for m in extra}
    out = [by_key.pop((m.metric, m.threshold, m.class_), m) for m in metrics]
    return out + [m for m in extra if (m.metric, m.threshold, m.class_) in by_key]


def results_rows(
    values: Mapping[GroupKey, list[MetricValue]],
    run_date: dt.date,
    model: str,
    window_days: int = 1,
) -> list[tuple]:
    """The results table's rows of ``values`` (:func:`metric_values`), in their order."""
    rows: list[tuple] = []
    for (score_column, slice_label), metrics in values.items():
        key = RunKey(run_date, model, score_column, slice_label, window_days)
        rows.extend(result_rows(key, metrics))
    return rows


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
        if points:
            key = RunKey(run_date, model, score_column, slice_label, window_days)
            rows.extend(curve_rows(key, points))
    return rows


def check_invalid(groups: Mapping[GroupKey, Counts], plan: CountPlan, on_invalid: str) -> None:
    """Log the invalid rows of each score column by reason; under ``on_invalid: fail``,
    raise :class:`~tally.errors.InvalidRowsError` instead."""
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
