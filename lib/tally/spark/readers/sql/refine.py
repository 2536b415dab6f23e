"""One refinement pass of exact AUC in Spark SQL: a chain of broadcast joins, then a group-by.

Valid rows (:func:`~tally.spark.rules.invalid_reason_code` is null) start with their
pass-1 bucket (:func:`~tally.spark.rules.bucket_column`) as node id; each
:class:`~tally.kernels.refine.Step` is a broadcast equi-join of the node id with a
small table ``(parent, split, lo, hi, base)`` (one match at most) that keeps
``lo <= s <= hi`` and moves the row to node ``base + j`` with
``j = min(floor((s − lo) / (hi − lo) · R), R − 1)``
(:func:`~tally.spark.rules.sub_bin_column`), or to ``base`` where the step does not
split the node. Rows on no path to a bin refined now drop out at their first join.
Grouping by the final node id sums weighted positives and negatives and keeps
``min(s)``, ``max(s)`` (partial aggregation per partition, then a shuffle of at most
``cell_budget`` groups). These are the moves of :func:`tally.kernels.refine.walk`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyspark import RDD
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from tally.kernels.exact_sort import PartRows, SortLayout
from tally.kernels.refine import Cells, Step
from tally.plan import CountPlan
from tally.spark.names import column
from tally.spark.rules import bucket_column, invalid_reason_code, score_value, sub_bin_column

if TYPE_CHECKING:
    from pyspark import Broadcast


def valid_rows(df: DataFrame, plan: CountPlan, score_column: str) -> DataFrame:
    """The valid rows of ``score_column`` as ``(y, s, w, node)``, node = the pass-1 bucket."""
    y = column(plan.label).cast("double").alias("y")
    s = score_value(plan, score_column).alias("s")
    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    reason = invalid_reason_code(F.col("y"), F.col("s"), F.col("w") if plan.weight else None)
    rows = df.select(y, s, w).where(reason.isNull())
    return rows.select("y", "s", "w", bucket_column(F.col("s"), plan.buckets).alias("node"))


def step_table(spark: SparkSession, step: Step) -> DataFrame:
    """One step as a small DataFrame ``(parent, split, lo, hi, base)``."""
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


def walked(rows: DataFrame, steps: Sequence[Step]) -> DataFrame:
    """``rows`` moved through ``steps``: each node id replaced by the one the step gives."""
    spark = rows.sparkSession
    for step in steps:
        table = F.broadcast(step_table(spark, step))
        split, lo, hi, s = F.col("split"), F.col("lo"), F.col("hi"), F.col("s")
        joined = rows.join(table, on=rows["node"] == table["parent"], how="inner")
        joined = joined.where(~split | ((lo <= s) & (s <= hi)))
        j = sub_bin_column(s, lo, hi, step.resolution)
        node = F.when(split, F.col("base") + j).otherwise(F.col("base"))
        rows = joined.select("y", "s", "w", node.alias("node"))
    return rows


def refinement_pass(
    df: DataFrame, plan: CountPlan, score_column: str, steps: Sequence[Step]
) -> Cells:
    """One pass over ``df`` (see the module docstring): the sums per final node id."""
    rows = walked(valid_rows(df, plan, score_column), steps)
    y, w = F.col("y"), F.col("w")
    if plan.weight:
        pos, neg = F.sum(w * y), F.sum(w * (F.lit(1.0) - y))
    else:
        pos, neg = F.sum((y == 1).cast("long")), F.sum((y == 0).cast("long"))
    cells = rows.groupBy("node").agg(
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


def sort_rows(
    df: DataFrame, plan: CountPlan, score_column: str, steps: Sequence[Step], layout: SortLayout
) -> RDD:
    """The sort pass of exact AUC, lazily: the valid rows walked through ``steps`` (the
    last keeps the bins of ``layout`` only), packed per partition by ``mapInArrow``
    (:class:`~tally.kernels.exact_sort.PartRows`) as ``(part, chunk)`` pairs."""
    rows = walked(valid_rows(df, plan, score_column), steps)
    shared = df.sparkSession.sparkContext.broadcast(layout)
    pack = partial(_pack_rows, layout=shared, weighted=bool(plan.weight))
    packed = rows.select("y", "s", "w", "node").mapInArrow(pack, PACKED_SCHEMA)
    return packed.rdd.map(partial(_chunk, narrow=layout.narrow))


#: One part's packed rows of one partition: the keys and the weights, as bytes.
PACKED_SCHEMA = "part int, packed binary, weights binary"


def _pack_rows(
    batches: Iterator[pa.RecordBatch], layout: Broadcast, weighted: bool
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` function of :func:`sort_rows`: rows in, one row per part out."""
    rows = PartRows(layout.value)
    for batch in batches:
        y = batch.column("y").to_numpy(zero_copy_only=False)
        s = batch.column("s").to_numpy(zero_copy_only=False)
        w = batch.column("w").to_numpy(zero_copy_only=False) if weighted else None
        node = batch.column("node").to_numpy(zero_copy_only=False)
        rows.add(s, y == 1, w, node)
        if rows.rows >= FLUSH_ROWS:
            yield from _packed_batches(rows, weighted)
    yield from _packed_batches(rows, weighted)


#: Rows a ``mapInArrow`` task of :func:`sort_rows` gathers before it emits them.
FLUSH_ROWS = 1 << 22


def _packed_batches(rows: PartRows, weighted: bool) -> Iterator[pa.RecordBatch]:
    """The rows gathered in ``rows`` (then let go of), one Arrow row per part."""
    runs: dict[int, list[tuple[np.ndarray, np.ndarray | None]]] = {}
    for part, run in rows.chunks():
        runs.setdefault(part, []).append(run)
    for part, chunks in runs.items():
        packed = np.concatenate([c[0] for c in chunks])
        weights = np.concatenate([c[1] for c in chunks]) if weighted else None  # type: ignore[misc]
        yield pa.record_batch(
            {
                "part": pa.array([part], pa.int32()),
                "packed": pa.array([packed.tobytes()], pa.binary()),
                "weights": pa.array([b"" if weights is None else weights.tobytes()], pa.binary()),
            }
        )


def _chunk(row: Row, narrow: bool) -> tuple[int, tuple[np.ndarray, np.ndarray | None]]:
    """A packed row of :func:`_pack_rows` as the ``(part, chunk)`` pair of
    :meth:`~tally.kernels.exact_sort.PartRows.chunks`."""
    packed = np.frombuffer(row.packed, np.uint32 if narrow else np.uint64)
    weights = np.frombuffer(row.weights, np.float64) if row.weights else None
    return row.part, (packed, weights)
