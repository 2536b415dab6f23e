"""What a task is to Tally: the interface every entry of :data:`tally.tasks.TASKS` fills.

A task (binary, multilabel, multiclass) says which input columns it reads and of what
types (:class:`ColumnRole`), how its cells decode into its counts, what its counts of
no rows are, and which metrics and curves its counts give. The readers compute its
cells (:mod:`tally.kernels.cells` defines their layouts); nothing else about a task is
written outside its module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tally.config import MetricsConfig
from tally.kernels.cells import reason_of_cell
from tally.metrics import MetricValue
from tally.metrics.curves import CurvePoint
from tally.plan import CountPlan

#: One (score column, slice) group of the count table: its cells' columns by name
#: (``cell``, ``n``, ``w``, ``wy``, ``w_loss``, ``w_sqerr``, ``w_score``).
Cells = Mapping[str, np.ndarray]

#: The key of a group of counts: (score column, slice label).
GroupKey = tuple[str, str]


class Counts(Protocol):
    """What the job reads of any task's decoded counts (its metrics read the rest)."""

    @property
    def rows(self) -> int | None:
        """Valid rows."""

    @property
    def invalid(self) -> Mapping[str, int]:
        """Rows skipped, by reason."""

    @property
    def invalid_rows(self) -> int:
        """All rows skipped."""


@dataclass(frozen=True)
class ColumnRole:
    """One input column a task reads: its role, name and the values it must hold.

    ``values`` is ``number``, ``number_or_boolean`` or ``integer``; ``array``: the
    column holds arrays of such values; ``per_class``: the arrays hold one value per
    configured class (their length is checked against ``classes``).
    """

    role: str
    column: str
    values: str
    description: str
    array: bool = False
    per_class: bool = False


@dataclass(frozen=True)
class Task:
    """A task's entry in the registry: functions of a plan and of its counts."""

    name: str
    #: why a row (or an element of it) is skipped, in the order checked
    invalid_reasons: tuple[str, ...]
    #: the label and score columns of a plan, with their types (weight and slices aside)
    column_roles: Callable[[CountPlan], list[ColumnRole]]
    #: one group's cells -> its counts
    decode: Callable[[Cells, CountPlan], Counts]
    #: the counts of no rows (an empty input still has its ALL group)
    empty: Callable[[CountPlan], Counts]
    #: every metric of one group's counts, as the results table stores them
    metrics: Callable[[Counts, MetricsConfig], list[MetricValue]]
    #: the curves table's points of one group's counts (none for tasks without curves)
    curves: Callable[[Counts, MetricsConfig], list[CurvePoint]] = lambda counts, options: []


def as_counts(values: np.ndarray, weighted: bool) -> np.ndarray:
    """Summed cells as counts: float64 sums of weights, or int64 rows (exact in float64
    below 2^53) unweighted."""
    return values.astype(np.float64) if weighted else np.rint(values).astype(np.int64)


def invalid_counts(cell: np.ndarray, n: np.ndarray, reasons: tuple[str, ...]) -> dict[str, int]:
    """Rows per reason of the invalid cells (:func:`~tally.kernels.cells.invalid_cell`)
    among ``cell``."""
    invalid = dict.fromkeys(reasons, 0)
    for c, rows in zip(cell, n, strict=True):
        if -len(reasons) <= c < 0:
            invalid[reasons[reason_of_cell(int(c))]] += int(rows)
    return invalid
