"""Binary cells in Spark SQL: one aggregation of the rows by (keys, cell).

A valid row's cell is :meth:`~tally.kernels.cells.BinaryLayout.cell` of its bucket
(:func:`~tally.spark.rules.bucket_column`) and of how many thresholds it reaches
(:func:`~tally.spark.rules.thresholds_passed_column`); an invalid row's is
``−(1 + reason)`` (:func:`~tally.spark.rules.invalid_reason_code`). Grouping sums
``n``, ``w``, ``wy``, ``w_loss``, ``w_sqerr`` and ``w_score``; Spark builds partial
aggregates per partition and merges them after a shuffle of the cells only: at most
``B·(T+1) + 8`` cells per (score column, slice).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from tally.kernels.cells import LOG_LOSS_EPS, BinaryLayout, invalid_cell
from tally.plan import SUM_COLUMNS, CountPlan
from tally.spark.cells import expanded, value_keys
from tally.spark.names import column
from tally.spark.rules import (
    bucket_column,
    invalid_reason_code,
    score_value,
    thresholds_passed_column,
)


def binary_cells(df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
    """The aggregated binary cells of ``df`` and the slice width.

    Nested slice specs (every spec's columns within the widest one's) are counted from
    one aggregation by the widest spec's values (:func:`nested_cells`); other plans
    from one row per (input row, score column, spec).
    """
    finest = nested_slice_columns(plan)
    if finest is not None:
        return nested_cells(df, plan, finest), plan.slice_width
    label = column(plan.label).cast("double")
    rows, width = expanded(df, plan, label, lambda name: score_value(plan, name))
    return cells_by(rows, plan, ["score_index", "spec", *value_keys(width)]), width


def cells_by(rows: DataFrame, plan: CountPlan, keys: Sequence[str]) -> DataFrame:
    """Group rows (``y``, ``w``, ``s`` and ``keys``) by ``keys`` and their cell; sum the
    :data:`~tally.plan.SUM_COLUMNS`."""
    y, s = F.col("y"), F.col("s")
    w = F.col("w") if plan.weight else None
    layout = BinaryLayout.of(plan)
    reason = invalid_reason_code(y, s, w)
    valid_cell = bucket_column(s, plan.buckets) * layout.per_bucket + thresholds_passed_column(
        s, plan.thresholds
    )
    cell = F.when(reason.isNotNull(), invalid_cell(reason.cast("long"))).otherwise(valid_cell)
    clipped = F.least(F.greatest(s, F.lit(LOG_LOSS_EPS)), F.lit(1.0 - LOG_LOSS_EPS))
    loss = F.when(y == 1, -F.log(clipped)).otherwise(-F.log1p(-clipped))
    rows = rows.select(*keys, cell.alias("cell"), y, s, F.col("w"), loss.alias("loss"))
    if plan.weight:
        sums = [
            F.sum("w").alias("w"),
            F.sum(F.col("w") * y).alias("wy"),
            F.sum(F.col("w") * F.col("loss")).alias("w_loss"),
            F.sum(F.col("w") * (s - y) ** 2).alias("w_sqerr"),
            F.sum(F.col("w") * s).alias("w_score"),
        ]
    else:
        sums = [
            F.sum(y).alias("wy"),
            F.sum("loss").alias("w_loss"),
            F.sum((s - y) ** 2).alias("w_sqerr"),
            F.sum(s).alias("w_score"),
        ]
    table = rows.groupBy(*keys, "cell").agg(F.count(F.lit(1)).alias("n"), *sums)
    if not plan.weight:
        table = table.withColumn("w", F.col("n").cast("double"))
    return table


def nested_slice_columns(plan: CountPlan) -> tuple[str, ...] | None:
    """The columns of the widest slice spec when every spec uses only its columns, else None.

    ``[[country], [country, device]]`` gives ``(country, device)``: every spec's cells are
    then sums of the cells of the widest spec, which is no larger than what that spec
    alone needs.
    """
    if not plan.slices:
        return None
    widest = max(plan.slices, key=len)
    if all(set(spec) <= set(widest) for spec in plan.slices):
        return widest
    return None


def nested_cells(df: DataFrame, plan: CountPlan, finest: Sequence[str]) -> DataFrame:
    """The binary cells with nested slice specs, from one aggregation of the rows.

    Rows are counted once per score column by (finest slice values, cell); ALL and each
    spec are then sums over that much smaller table. The plain way (one row per input
    row, score column *and* spec, then one aggregation) moves every row once per spec
    through the hash aggregation.
    """
    width = plan.slice_width
    fine = [f"f{j}" for j in range(len(finest))]
    y = column(plan.label).cast("double").alias("y")
    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    per_score = [
        F.struct(
            score_value(plan, score).alias("s"),
            F.lit(i).alias("score_index"),
            *(column(c).cast("string").alias(f) for c, f in zip(finest, fine, strict=True)),
        )
        for i, score in enumerate(plan.scores)
    ]
    rows = df.select(y, w, F.inline(F.array(*per_score)))
    finest_table = cells_by(rows, plan, ["score_index", *fine])
    specs: list[Column] = []
    for k, spec in enumerate(((), *plan.slices)):
        values = [
            F.col(fine[finest.index(spec[j])]) if j < len(spec) else F.lit(None).cast("string")
            for j in range(width)
        ]
        specs.append(
            F.struct(F.lit(k).alias("spec"), *(v.alias(f"v{j}") for j, v in enumerate(values)))
        )
    spread = finest_table.select("score_index", "cell", *SUM_COLUMNS, F.inline(F.array(*specs)))
    keys = ["score_index", "spec", *value_keys(width), "cell"]
    return spread.groupBy(*keys).agg(*(F.sum(c).alias(c) for c in SUM_COLUMNS))
