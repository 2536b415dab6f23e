"""From a reader's aggregated cells to the count table: keys, rare slice values, labels.

Every reader gives its cells as a DataFrame keyed by ``score_index`` (into
``plan.scores``), ``spec`` (0: ALL; ``k``: ``plan.slices[k − 1]``), the spec's slice
values as strings ``v0 … v{width−1}`` (null past the spec's length) and ``cell``, with
the sums :data:`~tally.plan.SUM_COLUMNS` (:func:`tally.plan.cell_keys_schema`). This
module holds what follows, the same for every reader and task:

* values of a spec past ``max_slices_per_spec`` (by rows, :func:`tally.plan.kept_values`'s
  order) are added up as ``__other__`` (:func:`merge_rare_slices`);
* the keys become the ``score_column`` and ``slice`` label of the count table
  (:func:`labelled`, columns :data:`~tally.plan.COUNT_COLUMNS`);
* :class:`CountTables` holds the result of one pass, persisted so that the count table
  and the merged-value counts come from one scan.

:func:`score_slice_combos` gives rows their keys, for the readers that expand rows in SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from tally.plan import COUNT_SCHEMA, OTHER_VALUE, SUM_COLUMNS, CountPlan
from tally.spark.names import column
from tally.spark.rules import kept_order, slice_label_column
from tally.tasks import Counts, GroupKey, decode_groups


def value_keys(width: int) -> list[str]:
    """The slice value keys ``v0 … v{width−1}``."""
    return [f"v{j}" for j in range(width)]


def score_slice_combos(
    plan: CountPlan, output: Callable[[str], Column]
) -> tuple[list[Column], int]:
    """One struct per (score column, slice spec) for ``F.inline``, and the slice width.

    Each struct holds ``s`` (``output(score)``), ``score_index``, ``spec`` (0 = ALL) and
    the spec's values as strings ``v0 … v{width−1}`` (null past the spec's length).
    """
    width = plan.slice_width
    combos = []
    for i, score in enumerate(plan.scores):
        for k, spec in enumerate(((), *plan.slices)):
            values = [
                (column(spec[j]).cast("string") if j < len(spec) else F.lit(None).cast("string"))
                for j in range(width)
            ]
            combos.append(
                F.struct(
                    output(score).alias("s"),
                    F.lit(i).alias("score_index"),
                    F.lit(k).alias("spec"),
                    *(v.alias(name) for name, v in zip(value_keys(width), values, strict=True)),
                )
            )
    return combos, width


def expanded(
    df: DataFrame, plan: CountPlan, label: Column, output: Callable[[str], Column]
) -> tuple[DataFrame, int]:
    """One row per (input row, score column, slice spec): ``y`` (``label``), ``w``, ``s``
    (``output`` of the score column), ``score_index``, ``spec``, ``v0 …``; and the width.

    One score column without slices is not expanded (its keys are constants).
    """
    y = label.alias("y")
    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    if len(plan.scores) == 1 and not plan.slices:
        s = output(plan.scores[0]).alias("s")
        return df.select(y, w, s, F.lit(0).alias("score_index"), F.lit(0).alias("spec")), 0
    combos, width = score_slice_combos(plan, output)
    return df.select(y, w, F.inline(F.array(*combos))), width


def slice_label(plan: CountPlan) -> Column:
    """The ``slice`` label of rows keyed by ``spec`` and ``v0 …``."""
    values = [F.col(v) for v in value_keys(plan.slice_width)]
    return slice_label_column(plan, F.col("spec"), values)


def merge_rare_slices(
    table: DataFrame, plan: CountPlan, width: int
) -> tuple[DataFrame, DataFrame]:
    """Keep the ``max_slices_per_spec`` values of each spec with the most rows; add the
    rest up as ``__other__``. Runs on the cells, not on the input. Also returns, per
    spec that merged any, the number of values merged (columns spec, merged_values)."""
    values = value_keys(width)
    totals = (
        table.where((F.col("spec") > 0) & (F.col("score_index") == 0))
        .groupBy("spec", *values)
        .agg(F.sum("n").alias("total"))
    )
    order = Window.partitionBy("spec").orderBy(
        *kept_order(F.col("total"), [F.col(v) for v in values])
    )
    ranked = totals.withColumn("rank", F.row_number().over(order))
    kept = ranked.where(F.col("rank") <= plan.max_slices_per_spec).select(
        *(F.col(c).alias(f"kept_{c}") for c in ("spec", *values)), F.lit(True).alias("kept")
    )
    merged_values = (
        ranked.where(F.col("rank") > plan.max_slices_per_spec)
        .groupBy("spec")
        .agg(F.count(F.lit(1)).alias("merged_values"))
    )
    same_slice = [F.col(c).eqNullSafe(F.col(f"kept_{c}")) for c in ("spec", *values)]
    joined = table.join(F.broadcast(kept), on=same_slice, how="left")
    spec_width = F.create_map(
        *[x for k, spec in enumerate(((), *plan.slices)) for x in (F.lit(k), F.lit(len(spec)))]
    )
    merged = joined.select(
        "score_index",
        "spec",
        "cell",
        *SUM_COLUMNS,
        *(
            F.when((F.col("spec") == 0) | F.col("kept").isNotNull(), F.col(v))
            .when(F.lit(j) < spec_width[F.col("spec")], F.lit(OTHER_VALUE))
            .alias(v)
            for j, v in enumerate(values)
        ),
    )
    table = merged.groupBy("score_index", "spec", *values, "cell").agg(
        *(F.sum(c).alias(c) for c in SUM_COLUMNS)
    )
    return table, merged_values


def labelled(table: DataFrame, plan: CountPlan) -> DataFrame:
    """Cells keyed by ``score_index``, ``spec``, ``v0 …`` as the count table
    (:data:`~tally.plan.COUNT_COLUMNS`)."""
    score_name = F.element_at(F.array(*(F.lit(s) for s in plan.scores)), F.col("score_index") + 1)
    return table.select(
        score_name.alias("score_column"),
        slice_label(plan).alias("slice"),
        "cell",
        *SUM_COLUMNS,
    )


def count_table_of(cells: DataFrame, width: int, plan: CountPlan) -> DataFrame:
    """The count table of a reader's ``cells``, lazily (rare slice values merged)."""
    if plan.slices:
        cells, _ = merge_rare_slices(cells, plan, width)
    return labelled(cells, plan)


def collect_count_groups(table: DataFrame, plan: CountPlan) -> dict[GroupKey, Counts]:
    """Bring a count table to the driver (Arrow) and decode it per (score column, slice)
    with the plan's task (:func:`tally.tasks.decode_groups`)."""
    return decode_groups(table.toArrow(), plan)


@dataclass
class CountTables:
    """The count table of one pass, and how many slice values were merged.

    ``cells`` has columns :data:`~tally.plan.COUNT_COLUMNS`; ``merged_values`` (slice,
    merged_values) tells how many values of each slice spec went into its
    ``__other__`` slice (None without slices). Both derive from one aggregation of
    the input, kept with ``persist`` so that using both scans the input once; call
    :meth:`release` when done. ``collected`` holds the cells when they were counted
    onto the driver already (the arrow reader, unless its tables were too large to
    add up in Python); ``cells`` is then made from it only when asked for (to write
    the stored counts).
    """

    frame: DataFrame | None
    merged_values: DataFrame | None
    persisted: list[DataFrame]
    collected: pa.Table | None = None
    spark: SparkSession | None = None
    #: with ``collected``: values merged into each ``__other__`` slice, by slice label
    merged: dict[str, int] | None = None

    @classmethod
    def on_driver(
        cls, spark: SparkSession, collected: pa.Table, merged: dict[str, int]
    ) -> CountTables:
        """Cells already counted onto the driver, and the values merged per slice label."""
        return cls(None, None, [], collected=collected, spark=spark, merged=merged)

    @classmethod
    def of(cls, cells: DataFrame, width: int, plan: CountPlan) -> CountTables:
        """The count tables of a reader's ``cells``, persisted.

        With slices, one small action first (it computes the persisted cells) finds
        whether any spec has more values than ``max_slices_per_spec``: only then are the
        cells joined with the kept values and aggregated again.
        """
        table = cells.persist(StorageLevel.MEMORY_AND_DISK)
        persisted = [table]
        if not plan.slices:
            return cls(labelled(table, plan), None, persisted)
        merged_table, merged_values = merge_rare_slices(table, plan, width)
        other = {v: F.lit(OTHER_VALUE) for v in value_keys(width)}
        merged = merged_values.withColumns(other).select(
            slice_label(plan).alias("slice"), "merged_values"
        )
        if not merged.take(1):
            return cls(labelled(table, plan), merged, persisted)
        table = labelled(merged_table, plan).persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(table)
        return cls(table, merged, persisted)

    @property
    def cells(self) -> DataFrame:
        if self.frame is None:
            assert self.spark is not None and self.collected is not None
            self.frame = self.spark.createDataFrame(self.collected, schema=COUNT_SCHEMA)
        return self.frame

    def groups(self, plan: CountPlan) -> dict[GroupKey, Counts]:
        """The cells decoded per (score column, slice): :func:`collect_count_groups`."""
        if self.collected is not None:
            return decode_groups(self.collected, plan)
        return collect_count_groups(self.cells, plan)

    def merged_counts(self) -> dict[str, int]:
        """Values merged into each ``__other__`` slice (by its label); empty without any."""
        if self.merged is not None:
            return dict(self.merged)
        if self.merged_values is None:
            return {}
        return {r["slice"]: int(r["merged_values"]) for r in self.merged_values.collect()}

    def release(self) -> None:
        for df in self.persisted:
            df.unpersist()
