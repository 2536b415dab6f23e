"""The ``arrow`` reader: Parquet read with pyarrow in the Python workers, counted with numpy.

Spark's reader decodes Parquet into JVM rows; Spark SQL then hashes every row into
the count table, or hands the rows to Python as Arrow batches, converted row by
row. Both cost several times what pyarrow and numpy take to read and count the
same rows (README, "How counting runs"). With this reader Spark still lists the
input (``DataFrame.inputFiles()``: the files Spark itself would read, with its
path globs, options and partition discovery), schedules the tasks and adds up
their count tables; only the reading moves:

1. the driver splits the files into byte ranges and packs them into tasks, as
   Spark does (``spark.sql.files.maxPartitionBytes``, ``openCostInBytes``,
   ``minPartitionNum``, the default parallelism): :func:`plan_tasks`;
2. one Spark task per task id runs the counting in a Python worker: it opens its
   files with pyarrow, reads the row groups whose midpoint lies in its ranges (the
   rule parquet-mr applies to Spark's splits, so each row group is read by exactly
   one task), only the needed columns, and adds the batches into dense per-cell
   arrays (:class:`tally.spark.binary_arrow.TaskTotals`,
   :class:`tally.spark.multilabel_arrow.TaskTotals`);
3. ``treeReduce`` adds the tasks' tables on the executors and one reaches the
   driver (:func:`collect_binary`, :func:`collect_multilabel`). With slices, a
   first pass counts rows per slice value, so the values past
   ``max_slices_per_spec`` are known and counted as ``__other__`` while reading.
   Tables too large to hold densely go the other way: ``mapInArrow`` over
   ``spark.range(tasks)`` emits each task's non-empty cells and Spark SQL sums
   them by key (:func:`count_direct`).

The cells are those of the Spark SQL path, so everything downstream (slices merged
into ``__other__``, metrics, stored counts, rollups) is unchanged. No rows reach
the driver; a retried task re-reads its ranges and replaces its output.

:func:`direct_source` decides (``input.reader``): ``auto`` takes this reader where
it gives the same counts as Spark's, else Spark's, logging why; ``arrow`` insists
and fails naming what stands in the way; ``spark`` never takes it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.config import InputConfig
from tally.errors import InputError
from tally.kernels import binary as binary_kernels
from tally.kernels import multilabel as multilabel_kernels
from tally.kernels.cells import BinaryLayout, MultilabelLayout
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
from tally.spark.names import quote_identifier, split_table_name

if TYPE_CHECKING:
    from pyspark import Broadcast

log = logging.getLogger(__name__)

#: Rows per batch read from Parquet: measured on the benchmark's 20M rows (2 cores),
#: see README "How counting runs".
BATCH_ROWS = 1 << 18

#: Spark types the arrow reader evaluates the same way as Spark's reader (decimal,
#: date and timestamp columns go through Spark: their casts are Spark's own).
_NUMBERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)
_LABELS = (*_NUMBERS, T.BooleanType)
_SLICES = (T.StringType, T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.BooleanType)


@dataclass(frozen=True)
class Split:
    """Bytes ``start … start + length`` of one file (its size ``file_size``)."""

    path: str
    start: int
    length: int
    file_size: int


@dataclass(frozen=True)
class DirectSource:
    """What the arrow reader reads: the input's files, packed into tasks."""

    tasks: tuple[tuple[Split, ...], ...]

    @property
    def files(self) -> int:
        return len({s.path for task in self.tasks for s in task})


# --- deciding --------------------------------------------------------------------------------


def direct_source(
    spark: SparkSession, df: DataFrame, plan: CountPlan, source: InputConfig
) -> DirectSource | None:
    """The files to read with the arrow reader, or None to count with Spark SQL.

    Raises InputError under ``input.reader: arrow`` when the input cannot be read so.
    """
    if source.reader == "spark":
        return None
    try:
        found = _direct_source(spark, df, plan, source)
    except _IneligibleError as why:
        if source.reader == "arrow":
            raise InputError(f"input.reader is 'arrow' but {why}") from None
        log.info("reading the input with Spark (input.reader: auto): %s", why)
        return None
    log.info(
        "reading %d Parquet file(s) with pyarrow in %d task(s) (input.reader: %s)",
        found.files,
        len(found.tasks),
        source.reader,
    )
    return found


class _IneligibleError(Exception):
    """Why the arrow reader does not apply (the message completes 'input.reader ... but')."""


def _direct_source(
    spark: SparkSession, df: DataFrame, plan: CountPlan, source: InputConfig
) -> DirectSource:
    if plan.task not in ("binary", "multilabel"):
        raise _IneligibleError(f"task {plan.task} is counted with Spark SQL")
    if plan.score_transform != "none":
        raise _IneligibleError("score_transform is applied by Spark SQL")
    _check_format(spark, source)
    _check_types(df, plan)
    files = df.inputFiles()
    if not files:
        raise _IneligibleError("the input has no files")
    if source.reader == "auto":
        remote = sorted({urlparse(f).scheme for f in files} - {"file", ""})
        if remote:
            raise _IneligibleError(
                f"files on {', '.join(remote)}:// are read by Spark unless input.reader is arrow"
            )
    sizes = _file_sizes(files)
    stored = set(_open_parquet(files[0]).schema_arrow.names)
    missing = [c for c in plan.needed_columns if c not in stored]
    if missing:
        raise _IneligibleError(
            f"column(s) {', '.join(missing)} are not stored in the Parquet files "
            "(partition columns?)"
        )
    conf = spark.conf
    tasks = plan_tasks(
        list(zip(files, sizes, strict=True)),
        max_partition_bytes=byte_size(conf.get("spark.sql.files.maxPartitionBytes", "128m")),
        open_cost=byte_size(conf.get("spark.sql.files.openCostInBytes", "4m")),
        min_partitions=int(
            conf.get("spark.sql.files.minPartitionNum", None)
            or spark.sparkContext.defaultParallelism
        ),
    )
    return DirectSource(tuple(tuple(t) for t in tasks))


def _check_format(spark: SparkSession, source: InputConfig) -> None:
    if source.table is None:
        if source.format.lower() != "parquet":
            raise _IneligibleError(f"input.format is {source.format}, not parquet")
        return
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {_quoted(source.table)}").collect()
    details = {str(r[0]).strip().lower(): str(r[1]).strip().lower() for r in rows if r[0]}
    provider = details.get("provider", "")
    serde = details.get("serde library", "")
    if provider != "parquet" and not (provider == "hive" and "parquet" in serde):
        stored_as = provider or serde
        raise _IneligibleError(f"table {source.table} is not stored as Parquet ({stored_as})")


def _quoted(table: str) -> str:
    return ".".join(quote_identifier(p) for p in split_table_name(table))


def _check_types(df: DataFrame, plan: CountPlan) -> None:
    fields = {f.name: f.dataType for f in df.schema.fields}
    if plan.task == "binary":
        roles = [("label", plan.label, _LABELS)] + [("score", s, _NUMBERS) for s in plan.scores]
    else:
        roles = [("labels", plan.label, _LABELS)] + [("scores", s, _NUMBERS) for s in plan.scores]
    if plan.weight:
        roles.append(("weight", plan.weight, _NUMBERS))
    roles += [("slice", c, _SLICES) for spec in plan.slices for c in spec]
    for role, name, allowed in roles:
        data_type = fields[name]
        if plan.task == "multilabel" and role in ("labels", "scores"):
            data_type = data_type.elementType  # type: ignore[attr-defined]
        if not isinstance(data_type, allowed):
            raise _IneligibleError(f"{role} column '{name}' is {fields[name].simpleString()}")
        if "." in name:
            raise _IneligibleError(f"column '{name}' has a dot in its name")


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def byte_size(text: str) -> int:
    """A Spark byte-size setting (``134217728``, ``128m``, ``1g``, ``64MB``) in bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", str(text).lower())
    if match is None:
        raise InputError(f"cannot read the byte size {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def plan_tasks(
    files: Sequence[tuple[str, int]], max_partition_bytes: int, open_cost: int, min_partitions: int
) -> list[list[Split]]:
    """Byte ranges of ``files`` (path, size) packed into tasks, as Spark packs file splits.

    Split size: ``min(maxPartitionBytes, max(openCostInBytes, total / minPartitions))``
    with ``total`` the bytes plus one open cost per file; splits, largest first, fill
    a task until the next would pass the split size (each counting its open cost).
    """
    total = sum(size + open_cost for _, size in files)
    split_bytes = min(max_partition_bytes, max(open_cost, total // max(min_partitions, 1)))
    splits = [
        Split(path, start, min(split_bytes, size - start), size)
        for path, size in files
        for start in range(0, max(size, 1), split_bytes)
    ]
    splits.sort(key=lambda s: s.length, reverse=True)
    tasks: list[list[Split]] = []
    current: list[Split] = []
    current_bytes = 0
    for split in splits:
        if current and current_bytes + split.length > split_bytes:
            tasks.append(current)
            current, current_bytes = [], 0
        current.append(split)
        current_bytes += split.length + open_cost
    if current:
        tasks.append(current)
    return tasks


# --- reading (in the Python workers) ---------------------------------------------------------


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a file URI as Spark lists it."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return pafs.LocalFileSystem(), unquote(parsed.path)
    if parsed.scheme in ("s3a", "s3n"):
        uri = "s3" + uri[len(parsed.scheme) :]
    try:
        return pafs.FileSystem.from_uri(uri)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"pyarrow cannot open {uri} ({exc}); set input.reader: spark to read it with Spark"
        ) from exc


def _file_sizes(uris: Sequence[str]) -> list[int]:
    sizes = []
    for uri in uris:
        fs, path = _filesystem(uri)
        sizes.append(fs.get_file_info(path).size or 0)
    return sizes


def _open_parquet(uri: str, read_dictionary: Sequence[str] = ()) -> pq.ParquetFile:
    fs, path = _filesystem(uri)
    return pq.ParquetFile(fs.open_input_file(path), read_dictionary=list(read_dictionary) or None)


def row_groups_in(metadata: pq.FileMetaData, split: Split) -> list[int]:
    """Row groups whose midpoint lies in ``split`` (parquet-mr's rule for Spark's splits)."""
    chosen = []
    end = split.start + split.length
    for i in range(metadata.num_row_groups):
        group = metadata.row_group(i)
        first = group.column(0)
        start = first.data_page_offset
        dictionary = first.dictionary_page_offset
        if dictionary is not None and 0 < dictionary < start:
            start = dictionary
        size = sum(group.column(j).total_compressed_size for j in range(group.num_columns))
        middle = min(start + size // 2, split.file_size - 1)
        if split.start <= middle < end:
            chosen.append(i)
    return chosen


def read_split(
    split: Split, columns: Mapping[str, str], strings: Sequence[str], batch_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The rows of ``split`` as batches of ``columns`` (output name -> stored column).

    Weights (``w``) are cast to float64. A column a file lacks reads as nulls, as
    Spark reads it. ``strings`` (stored names) are read dictionary-encoded.
    """
    parquet = _open_parquet(split.path, strings)
    groups = row_groups_in(parquet.metadata, split)
    if not groups:
        return
    stored = set(parquet.schema_arrow.names)
    wanted = sorted({c for c in columns.values() if c in stored})
    for batch in parquet.iter_batches(batch_rows, groups, wanted, use_threads=False):
        out = {}
        for name, source in columns.items():
            if source in stored:
                values = batch.column(source)
            else:
                values = pa.nulls(batch.num_rows, pa.float64())
            if name == "w" and not pa.types.is_float64(values.type):
                values = pc.cast(values, pa.float64())
            out[name] = values
        yield pa.RecordBatch.from_pydict(out)


def _run_tasks(
    batches: Iterator[pa.RecordBatch],
    tasks: tuple[tuple[Split, ...], ...],
    columns: Mapping[str, str],
    strings: Sequence[str],
    count: partial,
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function: task ids in, their count tables out."""

    def rows() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                for split in tasks[task]:
                    yield from read_split(split, columns, strings)

    yield from count(rows())


# --- counting --------------------------------------------------------------------------------


def _input_columns(plan: CountPlan) -> tuple[dict[str, str], list[str], list[list[str]]]:
    """(batch column -> stored column, the slice columns, each spec's batch columns)."""
    slice_columns = list(dict.fromkeys(c for spec in plan.slices for c in spec))
    columns = {"y": plan.label, **{f"s{i}": s for i, s in enumerate(plan.scores)}}
    if plan.weight:
        columns["w"] = plan.weight
    columns |= {f"c{j}": c for j, c in enumerate(slice_columns)}
    spec_columns = [[f"c{slice_columns.index(c)}" for c in spec] for spec in plan.slices]
    return columns, slice_columns, spec_columns


def _task_totals(
    ids: Iterator[int],
    tasks: tuple[tuple[Split, ...], ...],
    columns: Mapping[str, str],
    strings: Sequence[str],
    empty: object,
) -> Iterator[object]:
    """The RDD function of :func:`collect_binary` and :func:`collect_multilabel`: task ids
    in, one task totals (a copy of ``empty`` with the task's rows added) per task out."""
    import copy

    for task in ids:
        totals = copy.deepcopy(empty)
        for split in tasks[task]:
            for batch in read_split(split, columns, strings):
                totals.add(batch)  # type: ignore[attr-defined]
        yield totals


def _value_rows(
    ids: Iterator[int],
    tasks: tuple[tuple[Split, ...], ...],
    columns: Mapping[str, str],
    strings: Sequence[str],
    spec_columns: Sequence[Sequence[str]],
) -> Iterator[list]:
    """The RDD function of the first pass over sliced inputs: rows per slice value."""
    for task in ids:
        batches = (b for split in tasks[task] for b in read_split(split, columns, strings))
        yield slice_value_rows(batches, spec_columns)


def collect_binary(
    spark: SparkSession, source: DirectSource, plan: CountPlan
) -> tuple[pa.Table, dict[str, int]] | None:
    """The binary count table of ``plan`` read by ``source``, on the driver, and the
    values merged into each ``__other__`` slice; None when its tables would not fit.

    Each task counts into dense per-cell arrays (:class:`~tally.spark.binary_arrow.
    TaskTotals`); ``treeReduce`` adds them on the executors and one table comes to the
    driver: no per-task rows go through Spark SQL. With slices, a first pass reads
    only the slice columns and counts rows per value, so that the values each spec
    keeps (``max_slices_per_spec``, the most frequent) are known before counting and
    the others go to ``__other__`` as they are read. Plans whose tables pass
    :data:`~tally.spark.binary_arrow.TASK_MAX_CELLS` return None (Spark SQL adds up
    their per-task cells instead: :func:`count_direct`).
    """
    layout = BinaryLayout.of(plan)
    _, slice_columns, spec_columns = _input_columns(plan)
    strings = stored_strings(source, slice_columns)
    if layout.cells * len(plan.scores) > binary_kernels.TASK_MAX_CELLS:
        return None
    ids = spark.sparkContext.parallelize(range(len(source.tasks)), len(source.tasks))
    kept: list[list[tuple]] = []
    merged: dict[str, int] = {}
    if plan.slices:
        slice_only = {f"c{j}": c for j, c in enumerate(slice_columns)}
        count_values = partial(
            _value_rows,
            tasks=source.tasks,
            columns=slice_only,
            strings=strings,
            spec_columns=spec_columns,
        )
        rows = ids.mapPartitions(count_values).treeReduce(add_value_rows, depth=2)
        for spec, values in zip(plan.slices, rows, strict=True):
            kept.append(kept_values(values, plan.max_slices_per_spec))
            if len(values) > len(kept[-1]):
                merged[slice_label(spec, (OTHER_VALUE,) * len(spec))] = len(values) - len(kept[-1])
        slots = 1 + sum(len(values) + 1 for values in kept)
        if slots * layout.cells * len(plan.scores) > binary_kernels.TASK_MAX_CELLS:
            log.info(
                "slices keep %d values: per-task cells are added up by Spark SQL", slots - 1
            )
            return None
    totals = task_totals(spark, source, plan, kept)
    totals = totals.treeReduce(binary_kernels.TaskTotals.merge, depth=2)
    return totals.table(plan.scores, plan.slices), merged


def collect_multilabel(
    spark: SparkSession, source: DirectSource, plan: CountPlan
) -> pa.Table | None:
    """The multi-label count table of an unsliced ``plan`` read by ``source``, on the
    driver (per-task dense tables added by ``treeReduce``); None with slices or when a
    task's dense table would pass ``multilabel_arrow.DENSE_MAX_CELLS``."""
    layout = MultilabelLayout.of(plan)
    if plan.slices or layout.size * len(plan.scores) > multilabel_kernels.DENSE_MAX_CELLS:
        return None
    columns, _, _ = _input_columns(plan)
    empty = multilabel_kernels.TaskTotals(len(plan.scores), layout)
    count = partial(_task_totals, tasks=source.tasks, columns=columns, strings=(), empty=empty)
    tasks = len(source.tasks)
    totals = spark.sparkContext.parallelize(range(tasks), tasks).mapPartitions(count)
    return totals.treeReduce(multilabel_kernels.TaskTotals.merge, depth=2).table(plan.scores)


def task_totals(
    spark: SparkSession, source: DirectSource, plan: CountPlan, kept: Sequence[list] = ()
) -> RDD:
    """One :class:`~tally.spark.binary_arrow.TaskTotals` per task; ``kept``: the values
    each slice spec keeps (the others count as ``__other__``)."""
    columns, slice_columns, spec_columns = _input_columns(plan)
    empty = binary_kernels.TaskTotals(len(plan.scores), BinaryLayout.of(plan), spec_columns, kept)
    strings = stored_strings(source, slice_columns)
    count = partial(
        _task_totals, tasks=source.tasks, columns=columns, strings=strings, empty=empty
    )
    tasks = len(source.tasks)
    return spark.sparkContext.parallelize(range(tasks), tasks).mapPartitions(count)


def count_direct(
    spark: SparkSession, source: DirectSource, plan: CountPlan
) -> tuple[DataFrame, int]:
    """The aggregated cells (keys score_index, spec, v0…, cell) of the input read by
    ``source``, and the slice width: the arrow reader's twin of Spark SQL counting."""
    width = plan.slice_width
    columns, slice_columns, spec_columns = _input_columns(plan)
    strings = stored_strings(source, slice_columns)
    options = {"scores": len(plan.scores), "spec_columns": spec_columns, "width": width}
    if plan.task == "binary":
        layout = BinaryLayout.of(plan)
        count = partial(binary_kernels.count_partition, layout=layout, **options)
        summed = SUM_COLUMNS
    else:
        layout = MultilabelLayout.of(plan)
        count = partial(multilabel_kernels.count_partition, layout=layout, **options)
        summed = ("n", "w", "wy")
    schema = cell_keys_schema(width, summed)
    sums = [F.sum(c).alias(c) for c in summed]
    sums += [F.lit(0.0).alias(c) for c in SUM_COLUMNS if c not in summed]
    run = partial(
        _run_tasks, tasks=source.tasks, columns=columns, strings=strings, count=count
    )
    ids = spark.range(0, len(source.tasks), 1, numPartitions=len(source.tasks))
    counted = ids.mapInArrow(run, schema)
    keys = ["score_index", "spec", *(f"v{j}" for j in range(width)), "cell"]
    return counted.groupBy(*keys).agg(*sums), width


def _pass_cells(
    ids: Iterator[int],
    tasks: tuple[tuple[Split, ...], ...],
    columns: Mapping[str, str],
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
    source: DirectSource,
    plan: CountPlan,
    score_column: str,
    steps: Sequence[Step],
) -> Cells:
    """One refinement pass of exact AUC (:mod:`tally.spark.refine_arrow`) over the
    rows read by ``source``: the :class:`~tally.metrics.exact.Cells` of ``steps``.

    The steps (up to ``cell_budget`` entries each) go to the executors as a broadcast
    variable; ``treeReduce`` adds the tasks' per-node sums there.
    """
    columns = {"y": plan.label, "s0": score_column}
    if plan.weight:
        columns["w"] = plan.weight
    shared = spark.sparkContext.broadcast(list(steps))
    try:
        run = partial(
            _pass_cells,
            tasks=source.tasks,
            columns=columns,
            buckets=plan.buckets,
            steps=shared,
            weighted=plan.weight is not None,
        )
        tasks = len(source.tasks)
        ids = spark.sparkContext.parallelize(range(tasks), tasks)
        return ids.mapPartitions(run).treeReduce(PassCells.merge, depth=2).cells()
    finally:
        shared.destroy()


def stored_strings(source: DirectSource, names: Sequence[str]) -> list[str]:
    """The string columns among ``names`` in the first file (read dictionary-encoded)."""
    if not names:
        return []
    schema = _open_parquet(source.tasks[0][0].path).schema_arrow
    kinds = (pa.types.is_string, pa.types.is_large_string)
    return [n for n in names if n in schema.names and any(k(schema.field(n).type) for k in kinds)]
