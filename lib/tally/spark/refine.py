"""Exact ROC AUC and PR AUC at any scale: refinement passes over the input (``metrics.auc: exact``).

The first pass (:mod:`tally.spark.count`) gives per-bucket positives and negatives,
from which the AUC is known within ``½ Σ_b p_b n_b / (P N)``. Each further pass reads
the same input again and splits only the bins still carrying error into sub-bins;
the loop, the formulas and why bins of equal scores are exact are in
:mod:`tally.metrics.exact`. A pass is run by the reader that counted pass 1
(:meth:`tally.spark.readers.base.Reader.refinement_pass`): a chain of broadcast joins
in Spark SQL (:mod:`tally.spark.readers.sql.refine`), or dense look-up tables in numpy
under the arrow reader (:mod:`tally.spark.readers.arrow.run`); the cells are the same.
Step tables hold at most ``cell_budget`` rows; at most ``cell_budget`` cells come back
to the driver per pass.

Exact mode applies to the ALL slice (every valid row) of one score column; slices
keep their bucketed values. Each pass re-reads ``df``: it must give the same rows
on every read (a table or files, or a persisted DataFrame; not an unseeded sample),
else the pass fails with :class:`~tally.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame

from tally.counts import BinaryCounts
from tally.kernels.refine import Cells, Step
from tally.metrics.exact import (
    FlatHistogram,
    RefineOptions,
    exact_auc_metrics,
    exact_bound,
    refine,
)
from tally.plan import CountPlan
from tally.spark.columns import check_columns
from tally.spark.readers import SQL_READER, Reader

__all__ = [
    "FlatHistogram",
    "RefineOptions",
    "exact_auc_metrics",
    "exact_bound",
    "refine_histogram",
]


def refine_histogram(
    df: DataFrame,
    plan: CountPlan,
    score_column: str,
    counts: BinaryCounts,
    options: RefineOptions | None = None,
    *,
    reader: Reader | None = None,
) -> FlatHistogram:
    """Refine the pass-1 histogram ``counts`` of ``score_column`` until the metrics are exact.

    ``df`` is the input the pass-1 counts were taken from and ``counts`` the
    :class:`BinaryCounts` of ``score_column`` over ALL its rows (the ``ALL`` slice,
    bucketed with ``plan.buckets``; slices are out of scope). ``plan`` gives the
    label, the optional weight column (sums of weights instead of counts) and
    ``buckets``; ``options`` when the passes stop (:class:`RefineOptions`, by default
    when every metric is exact or after 10 passes). ``reader`` runs the passes
    (default: the Spark SQL reader); the cells are the same whichever does.

    Feed the result to :func:`~tally.metrics.exact.exact_auc_metrics` (``roc_auc``,
    ``roc_auc_error_bound``, ``pr_auc``), or directly to
    :func:`~tally.metrics.binary.roc_auc` / :func:`~tally.metrics.binary.average_precision`.
    """
    if plan.task != "binary":
        raise ValueError(f"exact AUC is for binary tasks, not {plan.task}")
    if score_column not in plan.scores:
        raise ValueError(f"score column {score_column!r} is not one of {plan.scores}")
    if counts.buckets != plan.buckets:
        raise ValueError(f"counts have {counts.buckets} buckets, the plan {plan.buckets}")
    check_columns(df, plan)
    passes = reader or SQL_READER

    def run_pass(steps: Sequence[Step]) -> Cells:
        return passes.refinement_pass(df, plan, score_column, steps)

    label = f"exact auc of {score_column}"
    return refine(counts, run_pass, options or RefineOptions(), label=label)
