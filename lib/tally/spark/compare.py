"""Paired DeLong comparison of two score columns on the same rows, on Spark.

:func:`compare_columns` gives ``auc_diff = AUC¹ − AUC²``, its standard error
``auc_diff_std`` and the two-sided ``auc_diff_p_value`` of DeLong's test of
``AUC¹ = AUC²`` (:func:`tally.metrics.inference.auc_comparison`) over all rows of a
DataFrame. A pair of histograms does not give the covariance of the two AUCs, so
this takes two passes over the rows (the formulas are in
:mod:`tally.metrics.inference`):

**Rows.** Only rows valid for *both* columns count: label valid, both scores valid,
and the weight valid when the plan has one (:func:`~tally.spark.rules.invalid_reason_code`
is null for each column). A row invalid for one column only is left out of both
histograms and of the sums, so both AUCs are over the same rows; they may then
differ from the ``roc_auc`` of each column alone.

**Pass A — histograms.** One aggregation over the input: each common row becomes two
rows ``(column k, bucket of score k)`` and a group-by ``(k, bucket)`` counts the
positives and negatives (sums of weights when weighted), at most ``2 · B`` cells.
Skipped when the caller passes the pass-one counts of both columns and neither has
an invalid row (every row is then a common row and those counts are the
histograms).

**Lookup.** On the driver, :func:`~tally.metrics.inference.placement_values` of each
histogram, centred on its AUC (``V10 − AUC``, ``V01 − AUC``: the covariances do
not change and the sums lose fewer digits), for the occupied buckets only, become
one small DataFrame per column ``(bucket, v10, v01)``.

**Pass B — sums.** A second read of the input: the common rows, broadcast-joined with
both lookup tables on their bucket under each column, aggregated into the twelve
sums of :class:`~tally.metrics.inference.PairedSums` (per class: count, sums,
squares and cross product of the two placement values; weighted by the row
weight when the plan has one) — one global aggregation collected as one row.

**Cost.** The input is read twice (once when pass A is skipped); the passes are
aggregations whose partial results Spark merges after a shuffle of at most
``2 · B`` cells (pass A) or one row per task (pass B); nothing is cached. The
driver holds ``O(B)`` per column (the histograms and lookup arrays), and the
broadcast tables hold at most ``min(B, rows)`` rows per column (occupied buckets).
The result does not depend on the partitioning, except for the last digits of
float sums.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tally.counts import BinaryCounts
from tally.metrics import MetricValue
from tally.metrics.inference import PairedSums, auc_comparison, placement_values
from tally.plan import CountPlan
from tally.spark.columns import check_columns
from tally.spark.names import column
from tally.spark.rules import bucket_column, invalid_reason_code, score_value

log = logging.getLogger(__name__)

#: A histogram ``(pos[B], neg[B])``: int64 counts, or float64 sums of weights.
Histogram = tuple[np.ndarray, np.ndarray]

#: Metrics :func:`compare_columns` returns, in order.
COMPARISON_METRICS = ("auc_diff", "auc_diff_std", "auc_diff_p_value")


def compare_columns(
    df: DataFrame,
    plan: CountPlan,
    first: str,
    second: str,
    counts: tuple[BinaryCounts, BinaryCounts] | None = None,
) -> list[MetricValue]:
    """DeLong's paired test of ``AUC(first) = AUC(second)`` over all rows of ``df``.

    Returns ``auc_diff`` (``AUC(first) − AUC(second)``, bucketed AUCs with ``plan.buckets``
    buckets), ``auc_diff_std`` and ``auc_diff_p_value``, as
    :func:`~tally.metrics.inference.auc_comparison` defines them (undefined, with a
    reason, when a class has fewer than 2 rows or the difference has variance 0,
    e.g. identical columns). Uses ``plan.label``, ``plan.weight`` and
    ``plan.buckets``; ``first`` and ``second`` need not be in ``plan.scores``. Rows
    count only when valid for both columns (module docstring).

    ``counts``: the pass-one :class:`~tally.counts.BinaryCounts` of ``first`` and
    ``second`` over all rows of ``df`` (the ``ALL`` groups of the count table), when
    the caller has them. If neither has an invalid row the histogram pass is skipped
    and the input is read once instead of twice; otherwise they are ignored.

    Raises :class:`~tally.errors.InputError` when a column is missing or of the
    wrong type, ``ValueError`` for a non-binary plan, for ``counts`` of another
    bucketing or weighting, or when the two passes did not see the same rows (input
    changed between them).
    """
    if plan.task != "binary":
        raise ValueError(f"paired AUC comparison needs a binary plan, got task {plan.task!r}")
    check_columns(df, dataclasses.replace(plan, scores=(first, second), slices=()))
    common = common_rows(df, plan, first, second)
    reused = _reusable_histograms(plan, counts)
    hist1, hist2 = reused if reused is not None else pair_histograms(common, plan)
    positives, negatives = hist1[0].sum(), hist1[1].sum()
    if positives < 2 or negatives < 2:  # no variance: auc_comparison needs no sums
        counts_only = PairedSums(pos_count=float(positives), neg_count=float(negatives))
        return auc_comparison(hist1, hist2, counts_only)
    lookups = [centred_lookup(pos, neg) for pos, neg in (hist1, hist2)]
    sums = paired_sums(common, plan, lookups[0], lookups[1])
    return auc_comparison(hist1, hist2, sums)


def common_rows(df: DataFrame, plan: CountPlan, first: str, second: str) -> DataFrame:
    """Rows valid for both columns, as ``(y, w, b1, b2)``: label, weight, both buckets.

    ``w`` is the weight as double (1.0 without a weight column); ``b1``, ``b2`` the
    :func:`~tally.spark.rules.bucket_column` of each score. Lazy.
    """
    y = column(plan.label).cast("double")
    s1, s2 = score_value(plan, first), score_value(plan, second)
    w = column(plan.weight).cast("double") if plan.weight else None
    valid = invalid_reason_code(y, s1, w).isNull() & invalid_reason_code(y, s2, w).isNull()
    return df.where(valid).select(
        y.alias("y"),
        (w if w is not None else F.lit(1.0)).alias("w"),
        bucket_column(s1, plan.buckets).alias("b1"),
        bucket_column(s2, plan.buckets).alias("b2"),
    )


def pair_histograms(common: DataFrame, plan: CountPlan) -> tuple[Histogram, Histogram]:
    """Pass A: the histograms ``(pos, neg)`` of both columns over ``common`` (one aggregation).

    int64 counts without a weight column, float64 sums of weights with one.
    """
    y = F.col("y")
    by_column = common.select(
        "y",
        "w",
        F.inline(
            F.array(
                F.struct(F.lit(0).alias("k"), F.col("b1").alias("bucket")),
                F.struct(F.lit(1).alias("k"), F.col("b2").alias("bucket")),
            )
        ),
    )
    if plan.weight:
        pos = F.coalesce(F.sum(F.when(y == 1, F.col("w"))), F.lit(0.0))
        neg = F.coalesce(F.sum(F.when(y == 0, F.col("w"))), F.lit(0.0))
        dtype: type = np.float64
    else:
        pos, neg = F.count(F.when(y == 1, 1)), F.count(F.when(y == 0, 1))
        dtype = np.int64
    cells = by_column.groupBy("k", "bucket").agg(pos.alias("pos"), neg.alias("neg")).toArrow()
    k = cells.column("k").to_numpy()
    bucket = cells.column("bucket").to_numpy().astype(np.int64)
    histograms = []
    for index in (0, 1):
        mine = k == index
        hist = []
        for name in ("pos", "neg"):
            counts = np.zeros(plan.buckets, dtype)
            np.add.at(counts, bucket[mine], cells.column(name).to_numpy()[mine].astype(dtype))
            hist.append(counts)
        histograms.append((hist[0], hist[1]))
    return histograms[0], histograms[1]


def centred_lookup(pos: np.ndarray, neg: np.ndarray) -> pa.Table:
    """Placement values minus the AUC, ``(bucket, v10, v01)``, for the occupied buckets only.

    Needs at least one row of each class (:func:`~tally.metrics.inference.placement_values`).
    """
    v10, v01 = placement_values(pos, neg)
    auc = float(np.dot(np.asarray(pos, np.float64), v10)) / float(np.sum(pos))
    occupied = np.flatnonzero((np.asarray(pos) != 0) | (np.asarray(neg) != 0))
    return pa.table(
        {
            "bucket": pa.array(occupied.astype(np.int64)),
            "v10": pa.array(v10[occupied] - auc),
            "v01": pa.array(v01[occupied] - auc),
        }
    )


def paired_sums(
    common: DataFrame, plan: CountPlan, lookup1: pa.Table, lookup2: pa.Table
) -> PairedSums:
    """Pass B: the :class:`PairedSums` of ``common`` with each column's lookup table.

    Each row takes its placement value under column ``k`` from ``lookup_k`` at its
    bucket ``b_k`` (``v10`` for positives, ``v01`` for negatives) through a broadcast
    join; one global aggregation gives the twelve sums, weighted by ``w`` when the
    plan has a weight column.
    """
    spark = common.sparkSession
    tables = []
    for k, lookup in ((1, lookup1), (2, lookup2)):
        names = [f"bucket_{k}", f"v10_{k}", f"v01_{k}"]
        tables.append(F.broadcast(spark.createDataFrame(lookup.rename_columns(names))))
    joined = common.join(tables[0], F.col("b1") == F.col("bucket_1")).join(
        tables[1], F.col("b2") == F.col("bucket_2")
    )
    positive = F.col("y") == 1
    a = F.when(positive, F.col("v10_1")).otherwise(F.col("v01_1"))
    c = F.when(positive, F.col("v10_2")).otherwise(F.col("v01_2"))
    rows = joined.select(positive.alias("positive"), F.col("w"), a.alias("a"), c.alias("c"))
    terms: dict[str, Column] = {
        "sum1": F.col("a"),
        "sum2": F.col("c"),
        "sq1": F.col("a") * F.col("a"),
        "sq2": F.col("c") * F.col("c"),
        "cross": F.col("a") * F.col("c"),
    }
    sums: list[Column] = []
    for prefix, in_class in (("pos", F.col("positive")), ("neg", ~F.col("positive"))):
        if plan.weight:
            count = F.coalesce(F.sum(F.when(in_class, F.col("w"))), F.lit(0.0))
        else:
            count = F.count(F.when(in_class, 1)).cast("double")
        sums.append(count.alias(f"{prefix}_count"))
        for name, term in terms.items():
            weighted = term * F.col("w") if plan.weight else term
            total = F.coalesce(F.sum(F.when(in_class, weighted)), F.lit(0.0))
            sums.append(total.alias(f"{prefix}_{name}"))
    row = rows.agg(*sums).collect()[0]
    return PairedSums(**{f.name: float(row[f.name]) for f in dataclasses.fields(PairedSums)})


def _reusable_histograms(
    plan: CountPlan, counts: tuple[BinaryCounts, BinaryCounts] | None
) -> tuple[Histogram, Histogram] | None:
    """The pass-one histograms when they are those of the common rows (no invalid rows)."""
    if counts is None:
        return None
    for c in counts:
        if c.buckets != plan.buckets or c.weighted != (plan.weight is not None):
            raise ValueError(
                f"counts have {c.buckets} buckets ({'' if c.weighted else 'un'}weighted); "
                f"the plan has {plan.buckets} buckets and weight {plan.weight!r}"
            )
    if any(c.invalid_rows for c in counts):
        log.info("invalid rows in a compared column: counting histograms of the common rows")
        return None
    return (counts[0].pos, counts[0].neg), (counts[1].pos, counts[1].neg)
