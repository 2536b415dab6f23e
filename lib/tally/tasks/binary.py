"""The binary task: a 0/1 label and one or more scores in [0, 1] per row.

Cells: :class:`~tally.kernels.cells.BinaryLayout`. Counts:
:class:`~tally.counts.BinaryCounts`. Metrics: :func:`~tally.metrics.binary.binary_metrics`;
curves: ROC, precision-recall and reliability (:mod:`tally.metrics.curves`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tally.config import MetricsConfig
from tally.counts import BinaryCounts
from tally.kernels.cells import BinaryLayout
from tally.kernels.validity import INVALID_REASONS
from tally.metrics import MetricValue
from tally.metrics.binary import binary_metrics
from tally.metrics.curves import CurvePoint, calibration_points, roc_pr_curves
from tally.plan import CountPlan
from tally.tasks.base import Cells, ColumnRole, Task, as_counts, invalid_counts


def column_roles(plan: CountPlan) -> list[ColumnRole]:
    roles = [ColumnRole("label", plan.label, "number_or_boolean", "numeric or boolean")]
    return roles + [ColumnRole("score", s, "number", "numeric") for s in plan.scores]


def decode_binary_counts(
    cells: Cells, buckets: int, thresholds: Sequence[float], weighted: bool
) -> BinaryCounts:
    """Decode one (score column, slice) group of the count table into :class:`BinaryCounts`."""
    thresholds = tuple(sorted(thresholds))
    layout = BinaryLayout(buckets, thresholds, weighted)
    cell = np.asarray(cells["cell"], np.int64)
    n = np.asarray(cells["n"], np.int64)
    w = np.asarray(cells["w"], np.float64)
    wy = np.asarray(cells["wy"], np.float64)
    valid = cell >= 0
    bucket, above = layout.split(cell[valid])
    pos_cell = as_counts(wy[valid], weighted)
    neg_cell = as_counts(w[valid] - wy[valid], weighted)
    dtype = pos_cell.dtype
    pos, neg = np.zeros(buckets, dtype), np.zeros(buckets, dtype)
    np.add.at(pos, bucket, pos_cell)
    np.add.at(neg, bucket, neg_cell)
    score_sum = np.zeros(buckets, np.float64)
    np.add.at(score_sum, bucket, np.asarray(cells["w_score"], np.float64)[valid])
    # a row reaching ``above`` thresholds is predicted positive at the ``above`` lowest
    tp_at = np.array([pos_cell[above > j].sum() for j in range(len(thresholds))], dtype)
    fp_at = np.array([neg_cell[above > j].sum() for j in range(len(thresholds))], dtype)
    fn_at = np.array([pos_cell[above <= j].sum() for j in range(len(thresholds))], dtype)
    tn_at = np.array([neg_cell[above <= j].sum() for j in range(len(thresholds))], dtype)
    return BinaryCounts(
        pos=pos,
        neg=neg,
        thresholds=thresholds,
        tp_at=tp_at,
        fp_at=fp_at,
        log_loss_sum=float(np.nansum(np.asarray(cells["w_loss"], np.float64)[valid])),
        squared_error_sum=float(np.nansum(np.asarray(cells["w_sqerr"], np.float64)[valid])),
        invalid=invalid_counts(cell, n, INVALID_REASONS),
        score_sum=score_sum,
        rows=int(n[valid].sum()),
        fn_at=fn_at,
        tn_at=tn_at,
    )


def decode(cells: Cells, plan: CountPlan) -> BinaryCounts:
    return decode_binary_counts(cells, plan.buckets, plan.thresholds, plan.weighted)


def empty(plan: CountPlan) -> BinaryCounts:
    return BinaryCounts.empty(plan.buckets, plan.thresholds)


def metrics(counts: BinaryCounts, options: MetricsConfig) -> list[MetricValue]:
    return binary_metrics(
        counts,
        beta=options.beta,
        ci_level=options.ci_level,
        calibration_bins=options.calibration_bins,
    )


def curves(counts: BinaryCounts, options: MetricsConfig) -> list[CurvePoint]:
    return roc_pr_curves(counts.pos, counts.neg) + calibration_points(
        counts.pos, counts.neg, counts.score_sum, options.calibration_bins
    )


TASK = Task(
    name="binary",
    invalid_reasons=INVALID_REASONS,
    column_roles=column_roles,
    decode=decode,  # type: ignore[arg-type]
    empty=empty,  # type: ignore[arg-type]
    metrics=metrics,  # type: ignore[arg-type]
    curves=curves,  # type: ignore[arg-type]
)
