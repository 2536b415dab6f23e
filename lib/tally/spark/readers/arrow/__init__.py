"""The arrow reader (``input.reader: arrow``): Parquet read with pyarrow in the Python
workers, counted with numpy.

Spark's reader decodes Parquet into JVM rows; Spark SQL then hashes every row into
the count table, or hands the rows to Python as Arrow batches, converted row by
row. Both cost several times what pyarrow and numpy take to read and count the
same rows (docs/benchmarks.md). With this reader Spark still lists the input,
schedules the tasks and adds up their count tables; only the reading moves
(:mod:`.files`: which files, split how; :mod:`.run`: the Spark jobs). The cells are
those of the Spark SQL reader, so everything downstream is unchanged. It counts
binary, multi-label and multiclass plans (:mod:`.multiclass`);
:func:`tally.spark.count.choose_reader` falls back to the Spark SQL reader for any
other, saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import pyarrow as pa
from pyspark import RDD
from pyspark.sql import DataFrame, SparkSession

from tally.kernels.exact_sort import SortLayout
from tally.kernels.refine import Cells, Step
from tally.plan import CountPlan
from tally.spark.cells import CountTables
from tally.spark.readers.arrow.files import ArrowInput
from tally.spark.readers.arrow.multiclass import collect_multiclass
from tally.spark.readers.arrow.run import (
    PARTITION_COUNTERS,
    collect_binary,
    collect_multilabel,
    collect_refinement_pass,
    sort_pass_rows,
    sum_task_cells,
)
from tally.spark.readers.base import Reader

#: Per task: the count onto the driver (None: its tables are too large to hold densely).
Collector = Callable[
    [SparkSession, ArrowInput, CountPlan], "tuple[pa.Table, dict[str, int]] | None"
]
COLLECTORS: dict[str, Collector] = {
    "binary": collect_binary,
    "multilabel": collect_multilabel,
    "multiclass": collect_multiclass,
}


@dataclass(frozen=True)
class ArrowReader(ArrowInput, Reader):
    """pyarrow in the Python workers, numpy kernels (``input.reader: arrow``); ``tasks``
    holds the byte ranges each Spark task reads (:func:`.files.task_splits`)."""

    name: ClassVar[str] = "arrow"
    supported_tasks: ClassVar[frozenset[str]] = frozenset(COLLECTORS)

    def cells(self, df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
        counter = self.for_task(PARTITION_COUNTERS, plan)
        return sum_task_cells(df.sparkSession, self, plan, counter)

    def count(self, df: DataFrame, plan: CountPlan) -> CountTables:
        """Counted onto the driver where the tables fit, else :meth:`cells` added up by
        Spark SQL."""
        spark = df.sparkSession
        collected = self.for_task(COLLECTORS, plan)(spark, self, plan)
        if collected is None:
            return super().count(df, plan)
        return CountTables.on_driver(spark, *collected)

    def refinement_pass(
        self, df: DataFrame, plan: CountPlan, score_column: str, steps: Sequence[Step]
    ) -> Cells:
        return collect_refinement_pass(df.sparkSession, self, plan, score_column, steps)

    def sort_rows(
        self, df: DataFrame, plan: CountPlan, score: str, steps: Sequence[Step], layout: SortLayout
    ) -> RDD:
        return sort_pass_rows(df.sparkSession, self, plan, score, steps, layout)
