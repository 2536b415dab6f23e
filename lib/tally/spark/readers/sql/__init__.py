"""The Spark SQL reader: Spark reads the rows; Spark SQL (or ``mapInArrow``) counts them.

It counts every task (it is the reader Tally falls back to): binary and multiclass
rows with one Spark SQL aggregation (:mod:`.binary`, :mod:`.multiclass`), multi-label
rows with ``mapInArrow`` + numpy over Spark's Arrow batches (:mod:`.multilabel`). The
refinement passes of exact AUC are chains of broadcast joins (:mod:`.refine`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from pyspark import RDD
from pyspark.sql import DataFrame

from tally.kernels.exact_sort import SortLayout
from tally.kernels.refine import Cells, Step
from tally.plan import CountPlan
from tally.spark.names import column
from tally.spark.readers.base import Reader
from tally.spark.readers.sql import refine
from tally.spark.readers.sql.binary import binary_cells
from tally.spark.readers.sql.multiclass import multiclass_cells
from tally.spark.readers.sql.multilabel import multilabel_cells

#: How each task's rows are counted, by task name.
CELLS: dict[str, Callable[[DataFrame, CountPlan], tuple[DataFrame, int]]] = {
    "binary": binary_cells,
    "multiclass": multiclass_cells,
    "multilabel": multilabel_cells,
}


class SqlReader(Reader):
    """Spark's reader and Spark SQL (``input.reader: spark``)."""

    name: ClassVar[str] = "spark"
    reports_input_records: ClassVar[bool] = True
    supported_tasks: ClassVar[frozenset[str]] = frozenset(CELLS)

    def cells(self, df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
        narrow = df.select(*(column(c) for c in plan.needed_columns))
        return self.for_task(CELLS, plan)(narrow, plan)

    def refinement_pass(
        self, df: DataFrame, plan: CountPlan, score_column: str, steps: Sequence[Step]
    ) -> Cells:
        return refine.refinement_pass(df, plan, score_column, steps)

    def sort_rows(
        self, df: DataFrame, plan: CountPlan, score: str, steps: Sequence[Step], layout: SortLayout
    ) -> RDD:
        return refine.sort_rows(df, plan, score, steps, layout)


#: The reader every plan can fall back to.
SQL_READER = SqlReader()
