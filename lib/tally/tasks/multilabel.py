"""The multi-label task: K classes, each with its own 0/1 label and score in [0, 1] per row.

Cells: :class:`~tally.kernels.cells.MultilabelLayout`. Counts:
:class:`~tally.counts_multi.MultilabelCounts`. Metrics:
:func:`~tally.metrics.multilabel.multilabel_metrics`.
"""

from __future__ import annotations

import numpy as np

from tally.config import MetricsConfig
from tally.counts_multi import MultilabelCounts
from tally.kernels.cells import ROW_CELL, MultilabelLayout, exact_match_cell
from tally.kernels.validity import MULTILABEL_INVALID_REASONS
from tally.metrics import MetricValue
from tally.metrics.multilabel import multilabel_metrics
from tally.plan import CountPlan
from tally.tasks.base import Cells, ColumnRole, Task, as_counts, invalid_counts


def column_roles(plan: CountPlan) -> list[ColumnRole]:
    labels = ColumnRole(
        "labels", plan.label, "number_or_boolean", "array of 0/1", array=True, per_class=True
    )
    scores = [
        ColumnRole("scores", s, "number", "array of numbers", array=True, per_class=True)
        for s in plan.scores
    ]
    return [labels, *scores]


def decode(cells: Cells, plan: CountPlan) -> MultilabelCounts:
    """Decode one (score column, slice) group into :class:`MultilabelCounts`."""
    layout = MultilabelLayout.of(plan)
    k, b, t = layout.classes, layout.buckets, len(layout.thresholds)
    cell = np.asarray(cells["cell"], np.int64)
    n = np.asarray(cells["n"], np.int64)
    w = as_counts(np.asarray(cells["w"], np.float64), plan.weighted)
    wy = as_counts(np.asarray(cells["wy"], np.float64), plan.weighted)
    valid = cell >= 0
    klass, bucket, above = layout.split(cell[valid])
    pos_cell, neg_cell = wy[valid], w[valid] - wy[valid]
    pos, neg = np.zeros((k, b), pos_cell.dtype), np.zeros((k, b), pos_cell.dtype)
    np.add.at(pos, (klass, bucket), pos_cell)
    np.add.at(neg, (klass, bucket), neg_cell)
    tp_at, fp_at = np.zeros((t, k), pos.dtype), np.zeros((t, k), pos.dtype)
    for j in range(t):  # positive at threshold j: the row reaches more than j thresholds
        np.add.at(tp_at[j], klass[above > j], pos_cell[above > j])
        np.add.at(fp_at[j], klass[above > j], neg_cell[above > j])
    fn_at = pos.sum(axis=1)[None, :] - tp_at
    exact = np.array([w[cell == exact_match_cell(j)].sum() for j in range(t)], pos.dtype)
    return MultilabelCounts(
        classes=plan.classes,
        thresholds=plan.thresholds,
        pos=pos,
        neg=neg,
        tp_at=tp_at,
        fp_at=fp_at,
        fn_at=fn_at,
        exact_match_at=exact,
        rows=int(n[cell == ROW_CELL].sum()),
        invalid=invalid_counts(cell, n, MULTILABEL_INVALID_REASONS),
    )


def empty(plan: CountPlan) -> MultilabelCounts:
    return MultilabelCounts.empty(
        plan.classes, plan.buckets, plan.thresholds, reasons=MULTILABEL_INVALID_REASONS
    )


def metrics(counts: MultilabelCounts, options: MetricsConfig) -> list[MetricValue]:
    return multilabel_metrics(counts)


TASK = Task(
    name="multilabel",
    invalid_reasons=MULTILABEL_INVALID_REASONS,
    column_roles=column_roles,
    decode=decode,  # type: ignore[arg-type]
    empty=empty,  # type: ignore[arg-type]
    metrics=metrics,  # type: ignore[arg-type]
)
