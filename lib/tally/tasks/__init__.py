"""The tasks Tally evaluates, by name: the registry every part of Tally looks a task up in.

Each task module (:mod:`.binary`, :mod:`.multilabel`, :mod:`.multiclass`) declares a
:class:`~tally.tasks.base.Task`: its input columns, how its cells decode into counts,
its counts of no rows, its metrics and curves. Code that depends on the task looks it
up here with :func:`task_of` (an unknown name is an error) instead of comparing names.
"""

from __future__ import annotations

import pyarrow as pa

from tally.plan import ALL_ROWS, COUNT_COLUMNS, CountPlan
from tally.tasks import binary, multiclass, multilabel
from tally.tasks.base import ColumnRole, Counts, GroupKey, Task

__all__ = [
    "TASKS",
    "ColumnRole",
    "Counts",
    "GroupKey",
    "Task",
    "decode_groups",
    "task_of",
]

#: Every task, by name.
TASKS: dict[str, Task] = {t.name: t for t in (binary.TASK, multilabel.TASK, multiclass.TASK)}


def task_of(name: str) -> Task:
    """The task called ``name``; ``ValueError`` naming the known ones when there is none."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}") from None


def decode_groups(table: pa.Table, plan: CountPlan) -> dict[GroupKey, Counts]:
    """A count table (columns :data:`~tally.plan.COUNT_COLUMNS`) decoded per (score
    column, slice) with the plan's task; every score column has its ``ALL`` group, empty
    when the input was."""
    task = task_of(plan.task)
    frame = table.to_pandas()
    groups: dict[GroupKey, Counts] = {}
    for (score_column, slice_label), cells in frame.groupby(["score_column", "slice"], sort=True):
        columns = {c: cells[c].to_numpy() for c in COUNT_COLUMNS[2:]}
        groups[(score_column, slice_label)] = task.decode(columns, plan)
    for score in plan.scores:
        groups.setdefault((score, ALL_ROWS), task.empty(plan))
    return groups
