"""Exact ROC AUC and PR AUC at any scale (``metrics.auc: exact``): the rows the count pass
shipped (the arrow reader, :mod:`tally.spark.readers.arrow.refine`: one read), else one
more read of the input.

The first pass (:mod:`tally.spark.count`) gives per-bucket positives and negatives,
from which the AUC is known within ``½ Σ_b p_b n_b / (P N)``. The sort pass reads the
same input again, sends the rows of the buckets that carry error to reducers that
each hold whole buckets, orders them there by score (sorting the rows near positives
and bucket edges, counting the other negatives) and returns each bucket's exact
share of the metrics; the formulas, and the split passes that first cut buckets too
large to sort whole, are in :mod:`tally.metrics.exact`. The reader that counted pass 1
reads the rows (:meth:`tally.spark.readers.base.Reader.sort_rows`: numpy over pyarrow
batches under the arrow reader, Spark SQL then ``mapInArrow`` otherwise) and packs
them (:class:`tally.kernels.exact_sort.PartRows`); :func:`sort_pass` shuffles them to
the reducers (``partitionBy``, one part per reducer) and brings a few numbers per
bucket to the driver. Split passes are :meth:`~tally.spark.readers.base.Reader.refinement_pass`.

Under :func:`exact_reader` (the arrow reader, unweighted) the count pass has shipped
every valid row and its reducers have summed every bucket already:
:func:`refine_histogram` only resolves the buckets that carry error with those sums
(:func:`~tally.metrics.exact.refine_shipped`), or reads again where they do not do.

Exact mode applies to the ALL slice (every valid row) of one score column; slices
keep their bucketed values. Each pass re-reads ``df``: it must give the same rows
on every read (a table or files, or a persisted DataFrame; not an unseeded sample),
else the pass fails with :class:`~tally.errors.InputError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

from pyspark import RDD
from pyspark.sql import DataFrame
from pyspark.sql.types import FloatType

from tally.counts import BinaryCounts
from tally.kernels.exact_sort import BinSums, SortJob, SortLayout, resolve
from tally.kernels.refine import Cells, Step
from tally.metrics.exact import (
    FlatHistogram,
    RefineOptions,
    exact_auc_metrics,
    exact_bound,
    refine,
    refine_shipped,
)
from tally.plan import CountPlan
from tally.spark.columns import check_columns
from tally.spark.names import column
from tally.spark.readers import SQL_READER, Reader
from tally.spark.readers.arrow.refine import shipping_reader

if TYPE_CHECKING:
    from pyspark import Broadcast

__all__ = [
    "FlatHistogram",
    "RefineOptions",
    "exact_auc_metrics",
    "exact_bound",
    "exact_reader",
    "refine_histogram",
    "sort_pass",
]


def narrow_scores(df: DataFrame, plan: CountPlan, score_column: str) -> bool:
    """Whether every score of ``score_column`` is a float32 value (a float column,
    evaluated as it is): the sort pass then sorts 4-byte keys."""
    kind = df.select(column(score_column)).schema[0].dataType
    return isinstance(kind, FloatType) and plan.score_transform == "none"


def part_key(part: int) -> int:
    """The partition of part ``part`` in :func:`sort_pass`: itself."""
    return part


def _resolve_parts(
    index: int, items: Iterator[tuple[int, tuple]], job: Broadcast
) -> Iterator[BinSums]:
    """The reducer of :func:`sort_pass`: part ``index``'s rows in, its bins' sums out."""
    chunks = [chunk for _, chunk in items]
    yield resolve(index, chunks, job.value)


def sort_pass(rows: RDD, layout: SortLayout, job: SortJob) -> BinSums:
    """Shuffle the packed rows ``(part, chunk)`` of a reader's
    :meth:`~tally.spark.readers.base.Reader.sort_rows` to one reducer per part, sort
    and sum them there (:func:`tally.kernels.exact_sort.resolve`); the sums of every
    bin, on the driver."""
    spark_context = rows.context
    shared = spark_context.broadcast(job)
    try:
        by_part = rows.partitionBy(layout.parts, part_key)
        sums = by_part.mapPartitionsWithIndex(partial(_resolve_parts, job=shared)).collect()
    finally:
        shared.destroy()
    return BinSums.concat(sums)


def exact_reader(reader: Reader, plan: CountPlan, options: RefineOptions) -> Reader:
    """The reader to count ``plan`` with when its AUC is to be made exact: the arrow
    reader then ships the rows in its count pass (one read:
    :class:`~tally.spark.readers.arrow.refine.ShippingArrowReader`) where it can
    (unweighted binary plans, ``max_passes`` of 2 or more); else ``reader``."""
    if options.max_passes < 2:
        return reader
    return shipping_reader(reader, plan, options.part_rows)  # type: ignore[return-value]


def refine_histogram(
    df: DataFrame,
    plan: CountPlan,
    score_column: str,
    counts: BinaryCounts,
    options: RefineOptions | None = None,
    *,
    reader: Reader | None = None,
) -> FlatHistogram:
    """Make the metrics of the pass-1 histogram ``counts`` of ``score_column`` exact.

    ``df`` is the input the pass-1 counts were taken from and ``counts`` the
    :class:`BinaryCounts` of ``score_column`` over ALL its rows (the ``ALL`` slice,
    bucketed with ``plan.buckets``; slices are out of scope). ``plan`` gives the
    label, the optional weight column (sums of weights instead of counts) and
    ``buckets``; ``options`` when the passes stop (:class:`RefineOptions`, by default
    when every metric is exact or after 10 passes; its ``parallelism`` is raised to
    Spark's default parallelism). ``reader`` runs the passes (default: the Spark SQL
    reader); the results are the same whichever does.

    Feed the result to :func:`~tally.metrics.exact.exact_auc_metrics` (``roc_auc``,
    ``roc_auc_error_bound``, ``pr_auc``).
    """
    if plan.task != "binary":
        raise ValueError(f"exact AUC is for binary tasks, not {plan.task}")
    if score_column not in plan.scores:
        raise ValueError(f"score column {score_column!r} is not one of {plan.scores}")
    if counts.buckets != plan.buckets:
        raise ValueError(f"counts have {counts.buckets} buckets, the plan {plan.buckets}")
    check_columns(df, plan)
    passes = reader or SQL_READER
    options = options or RefineOptions()
    parallelism = max(options.parallelism, df.sparkSession.sparkContext.defaultParallelism)
    options = dataclasses.replace(options, parallelism=parallelism)

    def run_pass(steps: Sequence[Step]) -> Cells:
        return passes.refinement_pass(df, plan, score_column, steps)

    def run_sort(steps: Sequence[Step], layout: SortLayout, job: SortJob) -> BinSums:
        return sort_pass(passes.sort_rows(df, plan, score_column, steps, layout), layout, job)

    label = f"exact auc of {score_column}"
    shipped = passes.take_shipped(score_column)
    if shipped is not None and shipped.sums is not None:  # one read: the count pass's
        flat = refine_shipped(counts, shipped.sums, options, label, shipped.parts)
        if flat is not None:
            return flat
    narrow = narrow_scores(df, plan, score_column)
    return refine(counts, run_pass, run_sort, options, label=label, narrow=narrow)
