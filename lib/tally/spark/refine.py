"""Exact ROC AUC and PR AUC at any scale: refinement passes over the input (``metrics.auc: exact``).

The first pass (:mod:`tally.spark.counting`) gives per-bucket positives and
negatives, from which the AUC is known within ``½ Σ_b p_b n_b / (P N)``. Each
further pass here is one Spark SQL aggregation over the same input that splits
only the bins still carrying error into sub-bins; the loop, the formulas and why
bins of equal scores are exact are in :mod:`tally.metrics.exact`.

Under the arrow reader a pass reads the files with pyarrow and walks each row in
numpy instead (:mod:`tally.spark.refine_arrow`). One pass, in SQL terms: valid rows
(:func:`~tally.spark.counting.invalid_reason_code` is null) get their pass-1 bucket
(:func:`~tally.spark.counting.bucket_column`) as node id; each
:class:`~tally.metrics.exact.Step` is a broadcast equi-join of the
node id with a small table ``(parent, split, lo, hi, base)`` (one match at most)
that keeps ``lo <= s <= hi`` and moves the row to node ``base + j`` with
``j = min(floor((s − lo) / (hi − lo) · R), R − 1)`` (:func:`sub_bin_column`), or to
``base`` where the step does not split the node. Rows on no path to a bin refined
now drop out at their first join. Grouping by the final node id sums weighted
positives and negatives and keeps ``min(s)``, ``max(s)`` (partial aggregation per
partition, then a shuffle of at most ``cell_budget`` groups). Step tables hold at
most ``cell_budget`` rows; at most ``cell_budget`` cells come back to the driver
per pass (Arrow).

Exact mode applies to the ALL slice (every valid row) of one score column; slices
keep their bucketed values. Each pass re-reads ``df``: it must give the same rows
on every read (a table or files, or a persisted DataFrame; not an unseeded sample),
else the pass fails with :class:`~tally.errors.InputError`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

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
from tally.spark.counting import bucket_column, invalid_reason_code, score_value
from tally.spark.direct import DirectSource, collect_refinement_pass
from tally.spark.names import column

__all__ = [
    "FlatHistogram",
    "exact_auc_metrics",
    "exact_bound",
    "refine_histogram",
    "sub_bin_column",
]


def sub_bin_column(s: Column, lo: Column, hi: Column, resolution: int) -> Column:
    """Spark twin of :func:`tally.metrics.exact.sub_bin` (same double operations, same order)."""
    j = F.floor((s - lo) / (hi - lo) * F.lit(float(resolution)))
    return F.least(j, F.lit(resolution - 1).cast("long"))


def refine_histogram(
    df: DataFrame,
    plan: CountPlan,
    score_column: str,
    counts: BinaryCounts,
    options: RefineOptions | None = None,
    *,
    direct: DirectSource | None = None,
) -> FlatHistogram:
    """Refine the pass-1 histogram ``counts`` of ``score_column`` until the metrics are exact.

    ``df`` is the input the pass-1 counts were taken from and ``counts`` the
    :class:`BinaryCounts` of ``score_column`` over ALL its rows (the ``ALL`` slice,
    bucketed with ``plan.buckets``; slices are out of scope). ``plan`` gives the
    label, the optional weight column (sums of weights instead of counts) and
    ``buckets``. Passes stop when the AUC bound is 0 and (``refine_ap``) average
    precision is exact, when the bound is at most ``tolerance`` and
    ``refine_ap`` is False, or after ``max_passes`` passes over the input, pass 1
    included (``max_passes=1``: nothing is read, the bucketed histogram is returned).
    At most ``cell_budget`` cells reach the driver per pass. With ``direct`` (the
    arrow reader's files of ``df``, :func:`tally.spark.direct.direct_source`), the
    passes read those files with pyarrow (:mod:`tally.spark.refine_arrow`) instead of
    joining in Spark SQL; the cells are the same.

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
    spark = df.sparkSession
    y = column(plan.label).cast("double").alias("y")
    s = score_value(plan, score_column).alias("s")
    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    rows = df.select(y, s, w)
    reason = invalid_reason_code(F.col("y"), F.col("s"), F.col("w") if plan.weight else None)
    rows = rows.where(reason.isNull()).select(
        "y", "s", "w", bucket_column(F.col("s"), plan.buckets).alias("node")
    )

    def table_of(step: Step) -> DataFrame:
        arrow = pa.table(
            {
                "parent": pa.array(step.parent, pa.int64()),
                "split": pa.array(step.split, pa.bool_()),
                "lo": pa.array(step.lo, pa.float64()),
                "hi": pa.array(step.hi, pa.float64()),
                "base": pa.array(step.base, pa.int64()),
            }
        )
        return spark.createDataFrame(arrow)

    def run_pass(steps: Sequence[Step]) -> Cells:
        if direct is not None:
            return collect_refinement_pass(spark, direct, plan, score_column, steps)
        current = rows
        for step in steps:
            table = F.broadcast(table_of(step))
            split, lo, hi, s = F.col("split"), F.col("lo"), F.col("hi"), F.col("s")
            joined = current.join(table, on=current["node"] == table["parent"], how="inner")
            joined = joined.where(~split | ((lo <= s) & (s <= hi)))
            j = sub_bin_column(s, lo, hi, step.resolution)
            node = F.when(split, F.col("base") + j).otherwise(F.col("base"))
            current = joined.select("y", "s", "w", node.alias("node"))
        yc, wc = F.col("y"), F.col("w")
        if plan.weight:
            pos, neg = F.sum(wc * yc), F.sum(wc * (F.lit(1.0) - yc))
        else:
            pos = F.sum((yc == 1).cast("long"))
            neg = F.sum((yc == 0).cast("long"))
        cells = current.groupBy("node").agg(
            pos.alias("pos"),
            neg.alias("neg"),
            F.min("s").alias("low"),
            F.max("s").alias("high"),
            F.count(F.lit(1)).alias("rows"),
        )
        frame = cells.toArrow()
        dtype = np.float64 if plan.weight else np.int64

        def get(name: str, kind: type) -> np.ndarray:
            return np.asarray(frame.column(name).to_numpy(), kind)

        return Cells(
            node=get("node", np.int64),
            pos=get("pos", dtype),
            neg=get("neg", dtype),
            low=get("low", np.float64),
            high=get("high", np.float64),
            rows=get("rows", np.int64),
        )

    label = f"exact auc of {score_column}"
    return refine(counts, run_pass, options or RefineOptions(), label=label)
