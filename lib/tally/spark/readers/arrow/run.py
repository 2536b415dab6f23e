"""The arrow reader's Spark jobs: one Spark task per task of byte ranges, counting in numpy.

Each task reads its ranges (:func:`~tally.spark.readers.arrow.files.read_split`) and
adds the batches into dense per-cell arrays (:class:`tally.kernels.binary.TaskTotals`,
:class:`tally.kernels.multilabel.TaskTotals`); ``treeReduce`` adds the tasks' tables on
the executors and one reaches the driver (:func:`collect_binary`,
:func:`collect_multilabel`). With slices, a first pass counts rows per slice value, so
the values past ``max_slices_per_spec`` are known and counted as ``__other__`` while
reading. Tables too large to hold densely go the other way: ``mapInArrow`` over
``spark.range(tasks)`` emits each task's non-empty cells and Spark SQL sums them by key
(:func:`sum_task_cells`). The refinement passes of exact AUC add each task's per-node
sums (:class:`tally.kernels.refine.PassCells`) the same way (:func:`collect_refinement_pass`).

No rows reach the driver; a retried task re-reads its ranges and replaces its output.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tally.kernels import batches as batch_columns
from tally.kernels import binary as binary_kernels
from tally.kernels import multiclass as multiclass_kernels
from tally.kernels import multilabel as multilabel_kernels
from tally.kernels.batches import BatchColumns
from tally.kernels.buckets import bucket_of
from tally.kernels.cells import BinaryLayout, MultilabelLayout
from tally.kernels.exact_sort import PartRows, SortLayout
from tally.kernels.refine import Cells, PassCells, Step, StepTables
from tally.kernels.slices import add_value_rows, slice_value_rows
from tally.plan import (
    OTHER_VALUE,
    SUM_COLUMNS,
    CountPlan,
    cell_keys_schema,
    kept_values,
    slice_label,
)
from tally.spark.cells import value_keys
from tally.spark.readers.arrow.files import (
    BATCH_ROWS,
    ArrowInput,
    Tasks,
    read_split,
    stored_strings,
)

if TYPE_CHECKING:
    from pyspark import Broadcast

log = logging.getLogger(__name__)


def _ids(spark: SparkSession, source: ArrowInput) -> RDD:
    """One partition per task, holding its id."""
    tasks = len(source.tasks)
    return spark.sparkContext.parallelize(range(tasks), tasks)


def _task_totals(
    ids: Iterator[int],
    tasks: Tasks,
    columns: BatchColumns,
    strings: Sequence[str],
    empty: object,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[object]:
    """The RDD function of :func:`task_totals` and :func:`collect_multilabel`: task ids
    in, one task totals (a copy of ``empty`` with the task's rows added, read
    ``batch_rows`` rows at a time) per task out."""
    for task in ids:
        totals = copy.deepcopy(empty)
        for split in tasks[task]:
            for batch in read_split(split, columns, strings, batch_rows):
                totals.add(batch)  # type: ignore[attr-defined]
        yield totals


def _value_rows(
    ids: Iterator[int], tasks: Tasks, columns: BatchColumns, strings: Sequence[str]
) -> Iterator[list]:
    """The RDD function of the first pass over sliced inputs: rows per slice value."""
    for task in ids:
        batches = (b for split in tasks[task] for b in read_split(split, columns, strings))
        yield slice_value_rows(batches, columns.spec_columns)


def kept_slice_values(
    spark: SparkSession, source: ArrowInput, plan: CountPlan
) -> tuple[list[list[tuple]], dict[str, int]]:
    """The values each slice spec keeps (:func:`tally.plan.kept_values`), from a first
    pass over the slice columns only, and the values merged into each ``__other__``
    slice (by its label)."""
    columns = BatchColumns.of(plan).slices_only()
    strings = stored_strings(source, plan.slice_columns)
    count = partial(_value_rows, tasks=source.tasks, columns=columns, strings=strings)
    rows = _ids(spark, source).mapPartitions(count).treeReduce(add_value_rows, depth=2)
    kept: list[list[tuple]] = []
    merged: dict[str, int] = {}
    for spec, values in zip(plan.slices, rows, strict=True):
        kept.append(kept_values(values, plan.max_slices_per_spec))
        if len(values) > len(kept[-1]):
            merged[slice_label(spec, (OTHER_VALUE,) * len(spec))] = len(values) - len(kept[-1])
    return kept, merged


def collect_binary(
    spark: SparkSession, source: ArrowInput, plan: CountPlan
) -> tuple[pa.Table, dict[str, int]] | None:
    """The binary count table of ``plan`` read from ``source``, on the driver, and the values
    merged into each ``__other__`` slice; None when its tables would not fit.

    Each task counts into dense per-cell arrays (:class:`~tally.kernels.binary.TaskTotals`);
    ``treeReduce`` adds them on the executors and one table comes to the driver: no
    per-task rows go through Spark SQL. With slices, the values each spec keeps are
    known before counting (:func:`kept_slice_values`) and the others go to
    ``__other__`` as they are read. Plans whose tables pass
    :data:`~tally.kernels.binary.TASK_MAX_CELLS` return None (Spark SQL adds up their
    per-task cells instead: :func:`sum_task_cells`).
    """
    dense = dense_slices(spark, source, plan)
    if dense is None:
        return None
    kept, merged = dense
    totals = task_totals(spark, source, plan, kept)
    totals = totals.treeReduce(binary_kernels.TaskTotals.merge, depth=2)
    return totals.table(plan.scores, plan.slices), merged


def dense_slices(
    spark: SparkSession, source: ArrowInput, plan: CountPlan
) -> tuple[list[list[tuple]], dict[str, int]] | None:
    """The values each slice spec keeps and those merged into each ``__other__`` slice
    (:func:`kept_slice_values`, with slices), or None when a task's dense tables of
    ``plan`` would pass :data:`~tally.kernels.binary.TASK_MAX_CELLS`."""
    cells = BinaryLayout.of(plan).cells * len(plan.scores)
    if cells > binary_kernels.TASK_MAX_CELLS:
        return None
    kept: list[list[tuple]] = []
    merged: dict[str, int] = {}
    if plan.slices:
        kept, merged = kept_slice_values(spark, source, plan)
        slots = 1 + sum(len(values) + 1 for values in kept)
        if slots * cells > binary_kernels.TASK_MAX_CELLS:
            log.info(
                "slices keep %d values: per-task cells are added up by Spark SQL", slots - 1
            )
            return None
    return kept, merged


def task_totals(
    spark: SparkSession, source: ArrowInput, plan: CountPlan, kept: Sequence[list] = ()
) -> RDD:
    """One :class:`~tally.kernels.binary.TaskTotals` per task of ``source``; ``kept``:
    the values each slice spec keeps (the others count as ``__other__``)."""
    columns = BatchColumns.of(plan)
    empty = binary_kernels.TaskTotals(
        len(plan.scores), BinaryLayout.of(plan), columns.spec_columns, kept
    )
    strings = stored_strings(source, plan.slice_columns)
    count = partial(
        _task_totals,
        tasks=source.tasks,
        columns=columns,
        strings=strings,
        empty=empty,
        batch_rows=binary_kernels.READ_ROWS,
    )
    return _ids(spark, source).mapPartitions(count)


def collect_multilabel(
    spark: SparkSession, source: ArrowInput, plan: CountPlan
) -> tuple[pa.Table, dict[str, int]] | None:
    """The multi-label count table of an unsliced ``plan`` read from ``source``, on the driver
    (per-task dense tables added by ``treeReduce``; no slice value is ever merged); None
    with slices or when a task's dense table would pass
    :data:`~tally.kernels.multilabel.DENSE_MAX_CELLS`."""
    layout = MultilabelLayout.of(plan)
    if plan.slices or layout.size * len(plan.scores) > multilabel_kernels.DENSE_MAX_CELLS:
        return None
    columns = BatchColumns.of(plan, arrays=True)
    empty = multilabel_kernels.TaskTotals(len(plan.scores), layout)
    count = partial(_task_totals, tasks=source.tasks, columns=columns, strings=(), empty=empty)
    totals = _ids(spark, source).mapPartitions(count)
    return totals.treeReduce(multilabel_kernels.TaskTotals.merge, depth=2).table(plan.scores), {}


#: Per task: the kernel that turns one task's batches into cells, its cell layout,
#: whether its batches hold arrays, and the sums it gives (the others are 0).
PartitionCounter = tuple[Callable[..., Iterator[pa.RecordBatch]], Callable, bool, tuple]
PARTITION_COUNTERS: dict[str, PartitionCounter] = {
    "binary": (binary_kernels.count_partition, BinaryLayout.of, False, SUM_COLUMNS),
    "multilabel": (multilabel_kernels.count_partition, MultilabelLayout.of, True, ("n", "w", "wy")),
    "multiclass": (
        multiclass_kernels.count_partition,
        multiclass_kernels.Layout.of,
        True,  # BatchColumns.of reads the plan's multiclass_input
        ("n", "w", "wy"),
    ),
}


def _run_tasks(
    batches: Iterator[pa.RecordBatch],
    tasks: Tasks,
    columns: BatchColumns,
    strings: Sequence[str],
    count: partial,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of :func:`sum_task_cells`: task ids in, cells out."""

    def rows() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                for split in tasks[task]:
                    yield from read_split(split, columns, strings)

    yield from count(rows())


def sum_task_cells(
    spark: SparkSession, source: ArrowInput, plan: CountPlan, counter: PartitionCounter
) -> tuple[DataFrame, int]:
    """The aggregated cells of ``source``'s rows and the slice width: each task's non-empty
    cells (``counter``: an entry of :data:`PARTITION_COUNTERS`) added up by Spark SQL."""
    kernel, layout_of, arrays, summed = counter
    width = plan.slice_width
    columns = BatchColumns.of(plan, arrays=arrays)
    count = partial(
        kernel,
        scores=len(plan.scores),
        spec_columns=[list(spec) for spec in columns.spec_columns],
        layout=layout_of(plan),
        width=width,
    )
    strings = stored_strings(source, plan.slice_columns)
    run = partial(_run_tasks, tasks=source.tasks, columns=columns, strings=strings, count=count)
    tasks = len(source.tasks)
    ids = spark.range(0, tasks, 1, numPartitions=tasks)
    counted = ids.mapInArrow(run, cell_keys_schema(width, summed))
    sums = [F.sum(c).alias(c) for c in summed]
    sums += [F.lit(0.0).alias(c) for c in SUM_COLUMNS if c not in summed]
    keys = ["score_index", "spec", *value_keys(width), "cell"]
    return counted.groupBy(*keys).agg(*sums), width


def _pass_cells(
    ids: Iterator[int],
    tasks: Tasks,
    columns: BatchColumns,
    buckets: int,
    steps: Broadcast,
    weighted: bool,
) -> Iterator[PassCells]:
    """The RDD function of :func:`collect_refinement_pass`: task ids in, one
    :class:`~tally.kernels.refine.PassCells` per task out."""
    tables = StepTables(steps.value)
    first, end = tables.node_range()
    for task in ids:
        cells = PassCells(first, end - first, weighted)
        for split in tasks[task]:
            for batch in read_split(split, columns, ()):
                cells.add(batch, tables, buckets)
        yield cells


def collect_refinement_pass(
    spark: SparkSession,
    source: ArrowInput,
    plan: CountPlan,
    score_column: str,
    steps: Sequence[Step],
) -> Cells:
    """One refinement pass of exact AUC over ``source``'s rows: the
    :class:`~tally.kernels.refine.Cells` of ``steps``.

    Each task reads the label, the score and the weight of its byte ranges, keeps the
    valid rows, walks each from its pass-1 bucket through the steps
    (:meth:`~tally.kernels.refine.StepTables.walk`) and adds it into dense per-node
    sums. The steps (up to ``cell_budget`` entries each) go to the executors as a
    broadcast variable; ``treeReduce`` adds the tasks' sums there.
    """
    columns = BatchColumns.of(dataclasses.replace(plan, scores=(score_column,), slices=()))
    shared = spark.sparkContext.broadcast(list(steps))
    try:
        run = partial(
            _pass_cells,
            tasks=source.tasks,
            columns=columns,
            buckets=plan.buckets,
            steps=shared,
            weighted=plan.weighted,
        )
        return _ids(spark, source).mapPartitions(run).treeReduce(PassCells.merge, depth=2).cells()
    finally:
        shared.destroy()


def _sort_rows(
    ids: Iterator[int],
    tasks: Tasks,
    columns: BatchColumns,
    buckets: int,
    steps: Broadcast,
    layout: Broadcast,
    weighted: bool,
) -> Iterator[tuple[int, tuple]]:
    """The RDD function of :func:`sort_pass_rows`: task ids in, ``(part, chunk)`` out."""
    walk = None if _buckets_only(steps.value) else StepTables(steps.value).walk
    for task in ids:
        rows = PartRows(layout.value)
        for split in tasks[task]:
            for batch in read_split(split, columns, ()):
                weights = batch.column(batch_columns.WEIGHT) if weighted else None
                label = batch.column(batch_columns.LABEL)
                score = batch.column(batch_columns.score_column(0))
                positive, s, w = binary_kernels.valid_rows(label, score, weights)
                if walk is None:  # no split pass: the node is the pass-1 bucket
                    rows.add(s, positive, w, bucket_of(s, buckets))
                    yield from rows.chunks()
                    continue
                at, node = walk(s, buckets)
                rows.add(s[at], positive[at], None if w is None else w[at], node)
            yield from rows.chunks()  # batch by batch: a task holds one batch's rows


def _buckets_only(steps: Sequence[Step]) -> bool:
    """Whether ``steps`` is one pass-through step on pass-1 buckets (no split pass)."""
    return len(steps) == 1 and not steps[0].split.any() and bool(
        np.array_equal(steps[0].parent, steps[0].base)
    )


def sort_pass_rows(
    spark: SparkSession,
    source: ArrowInput,
    plan: CountPlan,
    score_column: str,
    steps: Sequence[Step],
    layout: SortLayout,
) -> RDD:
    """The sort pass of exact AUC over ``source``'s rows, lazily: per task, its valid
    rows of the bins of ``layout`` as ``(part, chunk)`` pairs
    (:class:`~tally.kernels.exact_sort.PartRows`).

    Each task reads the label, the score and the weight of its byte ranges, keeps the
    valid rows, finds each one's bin (its pass-1 bucket, or the walk of
    :meth:`~tally.kernels.refine.StepTables.walk` after split passes), packs them and
    groups them by reducer; :func:`tally.spark.refine.sort_pass` shuffles them there.
    """
    columns = BatchColumns.of(dataclasses.replace(plan, scores=(score_column,), slices=()))
    context = spark.sparkContext
    run = partial(
        _sort_rows,
        tasks=source.tasks,
        columns=columns,
        buckets=plan.buckets,
        steps=context.broadcast(list(steps)),
        layout=context.broadcast(layout),
        weighted=plan.weighted,
    )
    return _ids(spark, source).mapPartitions(run)
