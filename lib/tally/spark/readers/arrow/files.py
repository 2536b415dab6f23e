"""The arrow reader's input: which files, split into which tasks, and reading them.

Spark still lists the input (``DataFrame.inputFiles()``: the files Spark itself would
read, with its path globs, options and partition discovery); the driver splits the
files into byte ranges and packs them into tasks as Spark does
(``spark.sql.files.maxPartitionBytes``, ``openCostInBytes``, ``minPartitionNum``, the
default parallelism: :func:`plan_tasks`). In a Python worker a task opens its files with
pyarrow and reads the row groups whose midpoint lies in its ranges (the rule
parquet-mr applies to Spark's splits, so each row group is read by exactly one task),
only the needed columns, as batches of :mod:`tally.kernels.batches` (:func:`read_split`).

:func:`task_splits` also says when the arrow reader would not give the counts Spark's
reader gives (not Parquet, a column type whose cast is Spark's own, a partition
column, remote files under ``auto``, an ``input.where`` that filters rows within files,
an ``input.query``): it raises :class:`IneligibleError`, whose message says why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from tally.config import InputConfig
from tally.errors import InputError
from tally.kernels.batches import WEIGHT, BatchColumns
from tally.plan import CountPlan
from tally.spark.columns import has_values, roles
from tally.spark.names import quote_identifier, split_table_name
from tally.spark.read_errors import unreadable_file

#: Rows per batch read from Parquet (docs/benchmarks.md, "Design measurements behind
#: the code").
BATCH_ROWS = 1 << 18

#: Spark types the arrow reader evaluates the same way as Spark's reader (decimal,
#: date and timestamp columns go through Spark: their casts are Spark's own).
_INTEGERS = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMBERS = (*_INTEGERS, T.FloatType, T.DoubleType)
ARROW_VALUES: dict[str, tuple[type[T.DataType], ...]] = {
    "number": _NUMBERS,
    "number_or_boolean": (*_NUMBERS, T.BooleanType),
    "integer": _INTEGERS,
}
_SLICES = (T.StringType, *_INTEGERS, T.BooleanType)

#: Byte ranges per Spark task.
Tasks = tuple[tuple["Split", ...], ...]


class IneligibleError(Exception):
    """Why the arrow reader does not apply (the message completes 'input.reader ... but')."""


@dataclass(frozen=True)
class Split:
    """Bytes ``start … start + length`` of one file (its size ``file_size``)."""

    path: str
    start: int
    length: int
    file_size: int


@dataclass(frozen=True)
class ArrowInput:
    """What the arrow reader reads: the input's files, packed into tasks of byte ranges."""

    tasks: Tasks

    @property
    def files(self) -> int:
        return len({s.path for task in self.tasks for s in task})


def task_splits(
    spark: SparkSession, df: DataFrame, plan: CountPlan, source: InputConfig
) -> Tasks:
    """The byte ranges of ``df``'s files packed into tasks; :class:`IneligibleError`
    when the arrow reader would not count ``df`` as Spark's reader does."""
    if plan.score_transform != "none":
        raise IneligibleError("score_transform is applied by Spark SQL")
    if source.query is not None:
        raise IneligibleError("input.query is read by Spark's reader")
    if source.where is not None:  # tally.spark.selection clears it for partition filters
        raise IneligibleError("input.where filters rows within files, which Spark's reader does")
    _check_format(spark, source)
    _check_types(df, plan)
    files = df.inputFiles()
    if not files:
        raise IneligibleError("the input has no files")
    if source.reader == "auto":
        remote = sorted({urlparse(f).scheme for f in files} - {"file", ""})
        if remote:
            raise IneligibleError(
                f"files on {', '.join(remote)}:// are read by Spark unless input.reader is arrow"
            )
    sizes = _file_sizes(files)
    stored = set(_open_parquet(files[0]).schema_arrow.names)
    missing = [c for c in plan.needed_columns if c not in stored]
    if missing:
        raise IneligibleError(
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
    return tuple(tuple(t) for t in tasks)


def _check_format(spark: SparkSession, source: InputConfig) -> None:
    if source.table is None:
        if source.format.lower() != "parquet":
            raise IneligibleError(f"input.format is {source.format}, not parquet")
        return
    rows = spark.sql(f"DESCRIBE TABLE EXTENDED {_quoted(source.table)}").collect()
    details = {str(r[0]).strip().lower(): str(r[1]).strip().lower() for r in rows if r[0]}
    provider = details.get("provider", "")
    serde = details.get("serde library", "")
    if provider != "parquet" and not (provider == "hive" and "parquet" in serde):
        stored_as = provider or serde
        raise IneligibleError(f"table {source.table} is not stored as Parquet ({stored_as})")


def _quoted(table: str) -> str:
    return ".".join(quote_identifier(p) for p in split_table_name(table))


def _check_types(df: DataFrame, plan: CountPlan) -> None:
    fields = {f.name: f.dataType for f in df.schema.fields}
    for role in roles(plan):
        if not has_values(fields[role.column], role, ARROW_VALUES):
            found = fields[role.column].simpleString()
            raise IneligibleError(f"{role.role} column '{role.column}' is {found}")
        _check_name(role.column)
    for name in plan.slice_columns:
        if not isinstance(fields[name], _SLICES):
            raise IneligibleError(f"slice column '{name}' is {fields[name].simpleString()}")
        _check_name(name)


def _check_name(name: str) -> None:
    if "." in name:
        raise IneligibleError(f"column '{name}' has a dot in its name")


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
    """The Parquet file at ``uri``; an InputError naming it when pyarrow cannot open it
    (a half-written file without its footer, a file gone since Spark listed it)."""
    fs, path = _filesystem(uri)
    try:
        file = fs.open_input_file(path)
        return pq.ParquetFile(file, read_dictionary=list(read_dictionary) or None)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_file(uri, exc) from exc


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
    split: Split,
    columns: Mapping[str, str] | BatchColumns,
    strings: Sequence[str],
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``split`` as batches of ``columns`` (batch column -> stored column).

    Weights (``w``) are cast to float64. A column a file lacks reads as nulls, as
    Spark reads it. ``strings`` (stored names) are read dictionary-encoded. Given a
    :class:`~tally.kernels.batches.BatchColumns`, the first batch is checked against it.
    """
    contract = columns if isinstance(columns, BatchColumns) else None
    if contract is not None:
        columns = contract.sources
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
            if name == WEIGHT and not pa.types.is_float64(values.type):
                values = pc.cast(values, pa.float64())
            out[name] = values
        batch = pa.RecordBatch.from_pydict(out)
        if contract is not None:
            contract.check(batch.schema)
            contract = None
        yield batch


def stored_strings(source: ArrowInput, names: Sequence[str]) -> list[str]:
    """The string columns among ``names`` in the first file (read dictionary-encoded)."""
    if not names:
        return []
    schema = _open_parquet(source.tasks[0][0].path).schema_arrow
    kinds = (pa.types.is_string, pa.types.is_large_string)
    return [n for n in names if n in schema.names and any(k(schema.field(n).type) for k in kinds)]
