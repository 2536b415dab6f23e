"""The arrow reader's multiclass count: per-task dense tables added by ``treeReduce``.

Each Spark task reads its byte ranges (:func:`~tally.spark.readers.arrow.files.read_split`)
and adds every batch into dense per-cell tables (:class:`tally.kernels.multiclass.TaskTotals`:
``np.bincount`` of ``cell + offset``); ``treeReduce`` adds the tasks' tables on the
executors and one table reaches the driver (:func:`collect_multiclass`).

With slices, the values a spec keeps must be the ones Spark SQL keeps: it ranks them
by the cells they hold (:func:`tally.spark.cells.merge_rare_slices`), and the first
pass of :func:`~tally.spark.readers.arrow.run.kept_slice_values` ranks them by rows.
The two agree when every row adds one cell (a prediction; scores without top-k), so
only those plans count sliced rows here. Sliced plans of pixel arrays, or of scores
with top-k, and tables past :data:`~tally.kernels.multiclass.TASK_MAX_CELLS` go to
:func:`~tally.spark.readers.arrow.run.sum_task_cells` instead (per-task cells added
up, and rare values merged, by Spark SQL).
"""

from __future__ import annotations

import logging
from functools import partial

import pyarrow as pa
from pyspark.sql import SparkSession

from tally.kernels import multiclass as kernels
from tally.kernels.batches import BatchColumns
from tally.plan import CountPlan
from tally.spark.readers.arrow.files import ArrowInput, stored_strings
from tally.spark.readers.arrow.run import _ids, _task_totals, kept_slice_values

log = logging.getLogger(__name__)


def collect_multiclass(
    spark: SparkSession, source: ArrowInput, plan: CountPlan
) -> tuple[pa.Table, dict[str, int]] | None:
    """The multiclass count table of ``plan`` read from ``source``, on the driver, and the
    values merged into each ``__other__`` slice; None where Spark SQL must add the
    per-task cells up (see the module docstring)."""
    layout = kernels.Layout.of(plan)
    cells = layout.size * len(plan.scores)
    if cells > kernels.TASK_MAX_CELLS:
        return None
    kept: list[list[tuple]] = []
    merged: dict[str, int] = {}
    if plan.slices:
        if not layout.one_per_row:
            log.info(
                "multiclass %s%s with slices: per-task cells are added up by Spark SQL",
                layout.input,
                " with top-k" if layout.top_k else "",
            )
            return None
        kept, merged = kept_slice_values(spark, source, plan)
        slots = 1 + sum(len(values) + 1 for values in kept)
        if slots * cells > kernels.TASK_MAX_CELLS:
            log.info("slices keep %d values: per-task cells are added up by Spark SQL", slots - 1)
            return None
    columns = BatchColumns.of(plan)
    empty = kernels.TaskTotals(len(plan.scores), layout, columns.spec_columns, kept)
    strings = stored_strings(source, plan.slice_columns)
    count = partial(_task_totals, tasks=source.tasks, columns=columns, strings=strings, empty=empty)
    totals = _ids(spark, source).mapPartitions(count)
    table = totals.treeReduce(kernels.TaskTotals.merge, depth=2).table(plan.scores, plan.slices)
    return table, merged
