"""The multiclass task: one true class and one predicted class per row (or per pixel).

What a row holds (``plan.multiclass_input``): "prediction" (an integer label and an
integer predicted class), "scores" (an integer label and an array of K scores whose
argmax is the prediction; top-k hits too) or "pixels" (arrays of labels and of
predictions, one per pixel). Cells: :class:`~tally.kernels.cells.MulticlassLayout`.
Counts: :class:`~tally.counts_multi.MulticlassCounts`. Metrics:
:func:`~tally.metrics.multiclass.multiclass_metrics` and the confusion matrix.
"""

from __future__ import annotations

import numpy as np

from tally.config import MetricsConfig
from tally.counts_multi import MulticlassCounts
from tally.kernels.cells import MulticlassLayout, top_k_cell
from tally.kernels.validity import MULTICLASS_INVALID_REASONS
from tally.metrics import MetricValue
from tally.metrics.multiclass import confusion_cells, multiclass_metrics
from tally.plan import CountPlan
from tally.tasks.base import Cells, ColumnRole, Task, as_counts, invalid_counts

#: What ``plan.multiclass_input`` may be.
INPUTS = ("prediction", "scores", "pixels")


def column_roles(plan: CountPlan) -> list[ColumnRole]:
    index = "integer class index"
    shapes = {
        "prediction": [ColumnRole("label", plan.label, "integer", index)]
        + [ColumnRole("prediction", s, "integer", index) for s in plan.scores],
        "scores": [ColumnRole("label", plan.label, "integer", index)]
        + [
            ColumnRole("scores", s, "number", "array of numbers", array=True, per_class=True)
            for s in plan.scores
        ],
        "pixels": [
            ColumnRole("labels", plan.label, "integer", "array of class indices", array=True)
        ]
        + [
            ColumnRole("predictions", s, "integer", "array of class indices", array=True)
            for s in plan.scores
        ],
    }
    if plan.multiclass_input not in shapes:
        raise ValueError(
            f"multiclass_input must be one of {list(shapes)}, got {plan.multiclass_input!r}"
        )
    return shapes[plan.multiclass_input]


def decode(cells: Cells, plan: CountPlan) -> MulticlassCounts:
    """Decode one (score column, slice) group into :class:`MulticlassCounts`."""
    k = MulticlassLayout.of(plan).classes
    cell = np.asarray(cells["cell"], np.int64)
    n = np.asarray(cells["n"], np.int64)
    w = as_counts(np.asarray(cells["w"], np.float64), plan.weighted)
    valid = cell >= 0
    confusion = np.zeros(k * k, w.dtype)
    np.add.at(confusion, cell[valid], w[valid])
    hits = {top: w[cell == top_k_cell(top)].sum().item() for top in plan.top_k}
    return MulticlassCounts(
        classes=plan.classes,
        confusion=confusion.reshape(k, k),
        top_k_hits=hits,
        rows=int(n[valid].sum()),
        invalid=invalid_counts(cell, n, MULTICLASS_INVALID_REASONS),
    )


def empty(plan: CountPlan) -> MulticlassCounts:
    return MulticlassCounts.empty(plan.classes, ks=plan.top_k, reasons=MULTICLASS_INVALID_REASONS)


def metrics(counts: MulticlassCounts, options: MetricsConfig) -> list[MetricValue]:
    cells = [MetricValue("confusion", v, class_=c) for c, v in confusion_cells(counts)]
    return [*multiclass_metrics(counts), *cells]


TASK = Task(
    name="multiclass",
    invalid_reasons=MULTICLASS_INVALID_REASONS,
    column_roles=column_roles,
    decode=decode,  # type: ignore[arg-type]
    empty=empty,  # type: ignore[arg-type]
    metrics=metrics,  # type: ignore[arg-type]
)
