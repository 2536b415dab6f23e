"""The rows of one run: ``input.path`` or ``input.table`` filtered by ``input.where``, or
``input.query``; and which files hold exactly those rows, for the arrow reader.

The arrow reader reads whole files (``DataFrame.inputFiles()``), not a DataFrame's
rows, so a filter it cannot see must never reach it. :func:`select_rows` therefore
sorts a run's selection into one of three:

* **no filter** (path or table alone): every row of the files.
* **partition filter**: ``input.where`` reads only partition columns (and is
  deterministic), so whole partitions are in or out. The selection is narrowed to the
  chosen partitions' files, which then hold exactly the selected rows: for a catalog
  table Spark prunes ``inputFiles()`` itself; for a path (where ``inputFiles()`` lists
  every file whatever the filter) the partition directories under the root are listed
  from Spark's listing, the predicate is evaluated by Spark on their values (typed as
  Spark types the column), and the input is read again from the chosen directories
  only (``basePath``: the root, and the schema of the whole input, so the partition
  columns keep their names and types).
* **row filter**: ``input.where`` reads other columns (``score >= 0.5``,
  ``length(country) = 2``), or it is ``input.query``: only Spark's reader gives these
  rows; :attr:`Selection.source` keeps the ``where`` (or ``query``), which the arrow
  reader refuses, and the job counts with Spark's reader (the log says why).

A ``where`` or ``query`` that does not parse is a :class:`~tally.errors.ConfigError`
(exit 2); one that names a missing column or table an :class:`~tally.errors.InputError`
(exit 3); each one line, from Spark's message.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlparse, urlunparse

from py4j.protocol import Py4JError
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.config import InputConfig
from tally.errors import ConfigError, InputError

log = logging.getLogger(__name__)

#: How Spark writes a null partition value in a directory name.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: The directory column of the partition values (not a name a partition column takes).
_DIRECTORY = "__tally_directory"
#: Characters that make ``input.path`` a glob: its partition directories are not listed.
_GLOB = re.compile(r"[*?\[\]{}]")


@dataclass(frozen=True)
class Selection:
    """The rows to evaluate and how the readers may read them."""

    #: the rows: ``input.where`` applied, or ``input.query``'s result
    df: DataFrame
    #: the input as the readers see it: ``where`` cleared when the files of ``df``
    #: (``inputFiles()``) hold exactly its rows (no filter, or a partition filter)
    source: InputConfig
    #: what was selected, for messages: ``path data/x where ds = '2026-11-22'``
    description: str


def select_rows(spark: SparkSession, source: InputConfig) -> Selection:
    """The rows of ``source`` (its placeholders already rendered:
    :func:`tally.run_date.render_input`)."""
    if source.query is not None:
        return _query(spark, source)
    base = _read(spark, source)
    what = f"table {source.table}" if source.table is not None else f"path {source.path}"
    if source.where is None:
        return Selection(base, source, what)
    description = f"{what} where {source.where}"
    log.info("input.where: %s", source.where)
    df = _filtered(base, source.where)
    layout = None
    if source.table is not None:
        names = [c.name for c in spark.catalog.listColumns(source.table) if c.isPartition]
    else:
        layout = _directory_layout(source, base)
        names = [] if layout is None else list(layout.names)
    why_rows = _row_filter_reason(spark, base, names, source.where)
    if why_rows is not None:
        log.info("input.where %s: Spark's reader applies it", why_rows)
        return Selection(df, source, description)
    if layout is None:  # a catalog table: Spark prunes its files itself
        files = df.inputFiles()
        log.info(
            "input.where selects %d partition(s) of table %s (%d file(s))",
            len({f.rsplit("/", 1)[0] for f in files}),
            source.table,
            len(files),
        )
        return Selection(df, replace(source, where=None), description)
    return _partitions_of_path(spark, source, base, df, layout, description)


def _read(spark: SparkSession, source: InputConfig) -> DataFrame:
    """The whole input of ``input.path`` or ``input.table``; InputError naming a missing one."""
    try:
        if source.table is not None:
            return spark.table(source.table)
        return spark.read.format(source.format).options(**source.options).load(source.path)
    except AnalysisException as exc:
        where = f"table {source.table}" if source.table else f"path {source.path}"
        raise InputError(f"cannot read input {where}: {first_line(exc)}") from None


def _query(spark: SparkSession, source: InputConfig) -> Selection:
    """``input.query`` run as a subquery, so that only a query parses (never a command)."""
    query = source.query.strip().rstrip(";").rstrip()  # type: ignore[union-attr]
    log.info("input.query: %s", " ".join(query.split()))
    try:
        df = spark.sql(f"SELECT * FROM (\n{query}\n) AS tally_input")
    except ParseException as exc:
        raise ConfigError(f"input.query does not parse: {first_line(exc, line_offset=1)}") from None
    except AnalysisException as exc:
        raise InputError(f"input.query: {first_line(exc, line_offset=1)}") from None
    log.info("input.query: Spark's reader reads its rows")
    return Selection(df, source, "input.query")


def _filtered(base: DataFrame, where: str) -> DataFrame:
    try:
        return base.where(F.expr(where))
    except ParseException as exc:
        raise ConfigError(f"input.where does not parse: {first_line(exc)}") from None
    except AnalysisException as exc:
        raise InputError(f"input.where: {first_line(exc)}") from None


def _row_filter_reason(
    spark: SparkSession, base: DataFrame, names: Sequence[str], where: str
) -> str | None:
    """None when ``where`` is a deterministic predicate of the partition columns
    ``names`` alone, else why it filters rows within files."""
    if not names:
        return "filters rows (the input has no partition columns)"
    fields = T.StructType([base.schema[n] for n in names])
    try:
        probe = spark.createDataFrame([], fields).where(F.expr(where))
    except AnalysisException:
        return f"reads columns other than the partition column(s) {', '.join(names)}"
    try:
        deterministic = bool(probe._jdf.queryExecution().analyzed().deterministic())
    except Py4JError:  # not a classic session: take the safe side
        deterministic = False
    return None if deterministic else "is not deterministic"


@dataclass(frozen=True)
class _Layout:
    """A path's partition columns and its leaf directories: URI -> values as written."""

    names: tuple[str, ...]
    directories: dict[str, tuple[str | None, ...]]


def _directory_layout(source: InputConfig, base: DataFrame) -> _Layout | None:
    """The partition directories of a path's files (Spark's listing), or None when the
    files do not all sit in ``name=value`` directories below the root (the root is
    ``input.options.basePath`` when given, else ``input.path``), named after columns of
    the input, or when the path is a glob."""
    root = source.options.get("basePath", source.path) or ""
    files = base.inputFiles()
    if not files or _GLOB.search(root):
        return None
    root_path = _path_of(root).rstrip("/")
    names: tuple[str, ...] | None = None
    directories: dict[str, tuple[str | None, ...]] = {}
    for uri in files:
        parsed = urlparse(uri)
        path = unquote(parsed.path)
        if not path.startswith(root_path + "/"):
            return None
        levels = path[len(root_path) + 1 :].split("/")[:-1]
        pairs = [level.partition("=") for level in levels]
        if not pairs or any(not sep or not key for key, sep, _ in pairs):
            return None
        keys = tuple(key for key, _, _ in pairs)
        if names is None:
            names = keys
        elif keys != names:
            return None
        leaf = urlunparse(parsed._replace(path=path.rsplit("/", 1)[0]))
        directories[leaf] = tuple(None if v == NULL_PARTITION else unquote(v) for *_, v in pairs)
    if names is None or any(n not in base.columns for n in names):
        return None
    return _Layout(names, dict(sorted(directories.items())))


def _path_of(root: str) -> str:
    """The path part of a root as Spark qualifies it (a local relative path made absolute)."""
    parsed = urlparse(root)
    if parsed.scheme in ("", "file"):
        return os.path.abspath(unquote(parsed.path))
    return unquote(parsed.path)


def _partitions_of_path(
    spark: SparkSession,
    source: InputConfig,
    base: DataFrame,
    df: DataFrame,
    layout: _Layout,
    description: str,
) -> Selection:
    """The selection narrowed to the partition directories whose values pass ``where``
    (evaluated by Spark on the values, typed as the input types the columns)."""
    names = layout.names
    rows = [(uri, *values) for uri, values in layout.directories.items()]
    strings = T.StructType(
        [T.StructField(_DIRECTORY, T.StringType())]
        + [T.StructField(f"v{i}", T.StringType()) for i in range(len(names))]
    )
    typed = [F.col(f"v{i}").cast(base.schema[n].dataType).alias(n) for i, n in enumerate(names)]
    values = spark.createDataFrame(rows, strings).select(_DIRECTORY, *typed)
    chosen = [r[0] for r in values.where(F.expr(source.where)).select(_DIRECTORY).collect()]
    if not chosen:  # df's files are all the files: keep the where (Spark's reader)
        log.info("input.where selects none of the %d partition(s) of %s", len(rows), source.path)
        return Selection(df, source, description)
    root = source.options.get("basePath", source.path)
    pruned = (
        spark.read.format(source.format)
        .options(**source.options)
        .option("basePath", root)
        .schema(base.schema)
        .load(chosen)
        .where(F.expr(source.where))  # a no-op on these rows; Spark's reader sees the filter
    )
    files = pruned.inputFiles()
    log.info(
        "input.where selects %d of %d partition(s) of %s (%d file(s)); only those are read",
        len(chosen),
        len(rows),
        source.path,
        len(files),
    )
    return Selection(pruned, replace(source, where=None), description)


def first_line(exc: Exception, line_offset: int = 0) -> str:
    """The first non-empty line of a Spark error; ``line_offset`` lines are taken off the
    positions it quotes (``line 2, pos 7``) when the text was wrapped before parsing."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
    if line_offset:
        text = re.sub(
            r"line (\d+)(,? pos)",
            lambda m: f"line {max(int(m.group(1)) - line_offset, 1)}{m.group(2)}",
            text,
        )
    return text
