"""The Reader interface: what turns an input DataFrame's rows into count tables.

A reader counts a :class:`~tally.plan.CountPlan` in one pass (:meth:`Reader.cells`,
:meth:`Reader.count`) and runs the passes of exact AUC (:meth:`Reader.refinement_pass`,
:meth:`Reader.sort_rows`), for the tasks it knows (:attr:`Reader.supported_tasks`,
looked up by name). Every reader gives the same cells for the same rows (the rules of
:mod:`tally.kernels`), so what follows (:mod:`tally.spark.cells`, metrics, stored
counts) does not depend on which one counted.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from pyspark import RDD
from pyspark.sql import DataFrame

from tally.kernels.exact_sort import BinSums, SortLayout
from tally.kernels.refine import Cells, Step
from tally.plan import CountPlan
from tally.spark.cells import CountTables

Counter = TypeVar("Counter", bound=Callable)


@dataclass(frozen=True)
class Shipped:
    """What the reducers of one score column's shipped rows gave: the
    :class:`~tally.kernels.exact_sort.BinSums` of every bucket holding a row (None
    when a part held more than its limit of rows, or when they only counted rows),
    the parts, and the rows they received (the arrow reader ships them in its count pass)."""

    sums: BinSums | None
    parts: int
    rows: int


class Reader(ABC):
    """Reads the rows of an input and counts them (see the module docstring)."""

    #: the ``input.reader`` value that names this reader
    name: ClassVar[str]
    #: the names of the tasks this reader counts
    supported_tasks: ClassVar[frozenset[str]]
    #: ``reports_input_records``: Spark's input metrics count the rows as they are read
    #: (progress lines can say how far the pass is)
    reports_input_records: ClassVar[bool] = False

    @abstractmethod
    def cells(self, df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
        """Lazily, the aggregated cells of ``df`` (keyed as :mod:`tally.spark.cells` says)
        and the slice width."""

    def count(self, df: DataFrame, plan: CountPlan) -> CountTables:
        """The count tables of one pass over ``df``."""
        cells, width = self.cells(df, plan)
        return CountTables.of(cells, width, plan)

    @abstractmethod
    def refinement_pass(
        self, df: DataFrame, plan: CountPlan, score_column: str, steps: Sequence[Step]
    ) -> Cells:
        """One refinement pass of exact AUC over the valid rows of ``score_column``
        (:func:`tally.kernels.refine.walk` is the reference of its moves)."""

    @abstractmethod
    def sort_rows(
        self, df: DataFrame, plan: CountPlan, score: str, steps: Sequence[Step], layout: SortLayout
    ) -> RDD:
        """The sort pass of exact AUC, lazily: the valid rows of column ``score`` walked
        through ``steps``, packed per part of ``layout`` as ``(part, chunk)`` pairs of
        :meth:`tally.kernels.exact_sort.PartRows.chunks`."""

    def take_shipped(self, score: str) -> Shipped | None:
        """What the reducers of exact AUC gave for the rows of column ``score`` that the
        last count pass shipped to them (handed out once), or None: this default for a
        reader whose count pass ships no row, so exact AUC reads the input again
        (:func:`tally.spark.refine.refine_histogram`)."""
        return None

    def for_task(self, counters: Mapping[str, Counter], plan: CountPlan) -> Counter:
        """``counters[plan.task]``; ``ValueError`` when this reader does not count the task."""
        if plan.task not in counters:
            raise ValueError(
                f"the {self.name} reader does not count task {plan.task!r}; "
                f"it counts {', '.join(sorted(counters))}"
            )
        return counters[plan.task]
