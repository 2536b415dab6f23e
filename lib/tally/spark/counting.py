"""Turn a DataFrame of scored rows into count tables, in one pass, without collecting rows.

The count table is one Spark SQL aggregation. Each row is expanded once per
(score column, slice spec) — no expansion for one score column and no slices —
and gets a single ``long`` cell id:

* valid rows: ``cell = bucket · (T + 1) + above`` where ``bucket`` is the score's
  histogram bucket (:func:`bucket_column`) and ``above`` is how many of the T
  sorted thresholds satisfy ``score >= t``: one key carries both the histogram
  bucket and the exact side of every threshold;
* invalid rows: ``cell = −(1 + reason)`` with ``reason`` an index into
  :data:`~tally.counts.INVALID_REASONS` (the first failed check wins).

Grouping by (score column, slice, cell) sums rows ``n``, weight ``w``, weighted
positives ``wy``, log loss ``w_loss``, squared error ``w_sqerr`` and score
``w_score``. Spark builds partial aggregates per partition and merges them after
a shuffle of the cells only; at most ``B + T + 8`` cells per (score column,
slice) exist. Multi-label rows (K scores each) are counted with ``mapInArrow`` +
numpy instead (:mod:`tally.spark.multilabel_arrow`); why binary and multiclass rows
stay in SQL: README, "How counting runs".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from tally.counts import BinaryCounts
from tally.kernels.buckets import is_power_of_two
from tally.kernels.cells import LOG_LOSS_EPS
from tally.kernels.validity import INVALID_REASONS
from tally.plan import (
    ALL_ROWS,
    COUNT_SCHEMA,
    NULL_VALUE,
    OTHER_VALUE,
    SUM_COLUMNS,
    CountPlan,
)
from tally.spark.columns import check_columns
from tally.spark.names import column
from tally.tasks import Counts, decode_groups

if TYPE_CHECKING:
    from tally.spark.direct import DirectSource


def invalid_reason_code(label: Column, score: Column, weight: Column | None) -> Column:
    """Index into INVALID_REASONS of a row's first problem, null when the row is valid."""
    checks = {
        "null_label": label.isNull(),
        "null_score": score.isNull(),
        "nan_score": F.isnan(score),
        "infinite_score": F.abs(score) == F.lit(float("inf")),
        "score_out_of_range": (score < 0) | (score > 1),
        "invalid_label": ~label.isin(0.0, 1.0),
    }
    if weight is not None:
        checks["null_weight"] = weight.isNull() | F.isnan(weight)
        checks["invalid_weight"] = (weight < 0) | (weight == F.lit(float("inf")))
    code: Column | None = None
    for name, condition in checks.items():
        index = INVALID_REASONS.index(name)
        code = F.when(condition, index) if code is None else code.when(condition, index)
    return code  # type: ignore[return-value]


def score_value(plan: CountPlan, name: str) -> Column:
    """A binary score column as evaluated: cast to double, then ``plan.score_transform``.

    ``sigmoid`` maps a logit ``x`` to ``1 / (1 + exp(−x))`` (in float64 it saturates:
    logits above about 36.7 all give 1.0 and tie). Infinite logits stay infinite and
    NaN stays NaN, so they are still counted as invalid rows, not as scores 0 or 1.
    """
    s = column(name).cast("double")
    if plan.score_transform == "sigmoid":
        infinite = F.abs(s) == F.lit(float("inf"))
        return F.when(infinite, s).otherwise(F.lit(1.0) / (F.lit(1.0) + F.exp(-s)))
    return s


def bucket_column(score: Column, buckets: int) -> Column:
    """Spark twin of :func:`tally.counts.bucket_of` (same float64 edge correction)."""
    b = float(buckets)
    index = F.floor(score * F.lit(b))
    if not is_power_of_two(buckets):
        index = (
            F.when(score < index / F.lit(b), index - 1)
            .when(score >= (index + 1) / F.lit(b), index + 1)
            .otherwise(index)
        )
    return F.least(index, F.lit(buckets - 1).cast("long"))


def _expanded(df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
    """One row per (input row, score column, slice spec): y, w, s, score_index, spec, v0…

    ``y`` and ``s`` are the label and model-output columns in the task's working
    type (double for binary; see tally.spark.multi for multiclass). Multi-label rows are
    not expanded here: :mod:`tally.spark.multilabel_arrow` counts them.
    """
    if plan.task == "binary":
        y = column(plan.label).cast("double").alias("y")

        def output(name: str) -> Column:
            return score_value(plan, name)
    else:
        from tally.spark.multi import label_column, output_column

        y = label_column(plan).alias("y")

        def output(name: str) -> Column:
            return output_column(plan, name)

    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    if len(plan.scores) == 1 and not plan.slices:
        s = output(plan.scores[0]).alias("s")
        return df.select(y, w, s, F.lit(0).alias("score_index"), F.lit(0).alias("spec")), 0
    combos, width = score_slice_combos(plan, output)
    return df.select(y, w, F.inline(F.array(*combos))), width


def score_slice_combos(
    plan: CountPlan, output: Callable[[str], Column]
) -> tuple[list[Column], int]:
    """One struct per (score column, slice spec) for ``F.inline``, and the slice width.

    Each struct holds ``s`` (``output(score)``), ``score_index``, ``spec`` (0 = ALL) and
    the spec's values as strings ``v0 … v{width−1}`` (null past the spec's length).
    """
    width = max((len(spec) for spec in plan.slices), default=0)
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
                    *(v.alias(f"v{j}") for j, v in enumerate(values)),
                )
            )
    return combos, width


def _aggregate(expanded: DataFrame, plan: CountPlan, width: int) -> DataFrame:
    if plan.task != "binary":
        from tally.spark.multi import aggregate_multi

        return aggregate_multi(expanded, plan, width)
    return _binary_cells(expanded, plan, ["score_index", "spec", *(f"v{j}" for j in range(width))])


def _binary_cells(rows: DataFrame, plan: CountPlan, keys: Sequence[str]) -> DataFrame:
    """Group rows (y, w, s and ``keys``) by ``keys`` and their cell; sum the SUM_COLUMNS.

    The cell is ``bucket·(T+1) + above`` for a valid row (``above``: thresholds ``<= s``),
    ``−1 − reason`` for an invalid one.
    """
    y, s = F.col("y"), F.col("s")
    w = F.col("w") if plan.weight else None
    cells_per_bucket = len(plan.thresholds) + 1
    above: Column = F.lit(0).cast("long")
    for t in sorted(plan.thresholds):
        above = above + (s >= F.lit(float(t))).cast("long")
    reason = invalid_reason_code(y, s, w)
    cell = F.when(reason.isNotNull(), -1 - reason.cast("long")).otherwise(
        bucket_column(s, plan.buckets) * cells_per_bucket + above
    )
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


def _binary_nested_cells(df: DataFrame, plan: CountPlan, finest: Sequence[str]) -> DataFrame:
    """The binary count table with nested slice specs, from one aggregation of the rows.

    Rows are counted once per score column by (finest slice values, cell); ALL and each
    spec are then sums over that much smaller table. The plain way (one row per input
    row, score column *and* spec, then one aggregation) moves every row once per spec
    through the hash aggregation: measured on 20M rows, one spec of 51 values, 2^16
    buckets, 2 cores, the aggregation collected: 30–33 s plain, 25–26 s this way
    (two runs each, 2026-11-25).
    """
    width = max(len(spec) for spec in plan.slices)
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
    finest_table = _binary_cells(rows, plan, ["score_index", *fine])
    specs = []
    for k, spec in enumerate(((), *plan.slices)):
        values = [
            F.col(fine[finest.index(spec[j])]) if j < len(spec) else F.lit(None).cast("string")
            for j in range(width)
        ]
        specs.append(
            F.struct(F.lit(k).alias("spec"), *(v.alias(f"v{j}") for j, v in enumerate(values)))
        )
    spread = finest_table.select("score_index", "cell", *SUM_COLUMNS, F.inline(F.array(*specs)))
    keys = ["score_index", "spec", *(f"v{j}" for j in range(width)), "cell"]
    return spread.groupBy(*keys).agg(*(F.sum(c).alias(c) for c in SUM_COLUMNS))


def _counted(
    df: DataFrame, plan: CountPlan, direct: DirectSource | None = None
) -> tuple[DataFrame, int]:
    """The aggregated cells of ``df`` (keys score_index, spec, v0…, cell) and the slice width.

    With ``direct`` the rows are read from its files by pyarrow in the Python workers
    and counted with numpy (:mod:`tally.spark.direct`), else by Spark.
    """
    if direct is not None:
        from tally.spark.direct import count_direct

        return count_direct(df.sparkSession, direct, plan)
    narrow = df.select(*(column(c) for c in plan.needed_columns))
    if plan.task == "multilabel":
        from tally.spark.multilabel_arrow import count_multilabel

        return count_multilabel(narrow, plan)
    finest = nested_slice_columns(plan) if plan.task == "binary" else None
    if finest is not None:
        return _binary_nested_cells(narrow, plan, finest), max(len(s) for s in plan.slices)
    expanded, width = _expanded(narrow, plan)
    return _aggregate(expanded, plan, width), width


def _merge_rare_slices(
    table: DataFrame, plan: CountPlan, width: int
) -> tuple[DataFrame, DataFrame]:
    """Keep the ``max_slices_per_spec`` most frequent values of each spec; merge the rest
    into ``__other__``. Runs on the count table, not on the input. Also returns, per
    spec that merged any, the number of values merged (columns spec, merged_values)."""
    values = [f"v{j}" for j in range(width)]
    totals = (
        table.where((F.col("spec") > 0) & (F.col("score_index") == 0))
        .groupBy("spec", *values)
        .agg(F.sum("n").alias("total"))
    )
    order = Window.partitionBy("spec").orderBy(
        F.desc("total"), *(F.asc_nulls_first(v) for v in values)
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


def _slice_label(plan: CountPlan) -> Column:
    """``ALL`` for spec 0, else ``col=value/col=value`` (null values read ``null``)."""
    label: Column = F.lit(ALL_ROWS)
    for k, spec in enumerate(plan.slices, start=1):
        parts = [
            F.concat(F.lit(f"{c}="), F.coalesce(F.col(f"v{j}"), F.lit(NULL_VALUE)))
            for j, c in enumerate(spec)
        ]
        label = F.when(F.col("spec") == k, F.concat_ws("/", *parts)).otherwise(label)
    return label


@dataclass
class CountTables:
    """The count table of one pass, and how many slice values were merged.

    ``cells`` has columns :data:`COUNT_COLUMNS`; ``merged_values`` (slice,
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

    @property
    def cells(self) -> DataFrame:
        if self.frame is None:
            assert self.spark is not None and self.collected is not None
            self.frame = self.spark.createDataFrame(self.collected, schema=COUNT_SCHEMA)
        return self.frame

    def groups(self, plan: CountPlan) -> dict[tuple[str, str], Counts]:
        """The cells decoded per (score column, slice): :func:`collect_count_groups`."""
        if self.collected is not None:
            return decode_count_groups(self.collected, plan)
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


def count_table(df: DataFrame, plan: CountPlan, direct: DirectSource | None = None) -> DataFrame:
    """The count table of ``df`` (columns :data:`COUNT_COLUMNS`), lazily, from one pass.

    Reads only the columns the plan needs; the result is small: at most
    ``(B + T + 8)`` cells per (score column, slice). ``direct``: read ``df``'s files
    with pyarrow instead (:func:`tally.spark.direct.direct_source`).
    """
    check_columns(df, plan)
    table, width = _counted(df, plan, direct)
    if plan.slices:
        table, _ = _merge_rare_slices(table, plan, width)
    return _labelled(table, plan)


def count_tables(
    df: DataFrame, plan: CountPlan, direct: DirectSource | None = None
) -> CountTables:
    """:func:`count_table` plus the merged-slice counts, sharing one persisted aggregation.

    With ``direct``, a binary or multi-label plan is counted at once, onto the driver
    (:func:`tally.spark.direct.collect_binary`, :func:`~tally.spark.direct.
    collect_multilabel`), unless its tables are too large for that; otherwise nothing
    runs until the cells are read.
    """
    check_columns(df, plan)
    if direct is not None and plan.task in ("binary", "multilabel"):
        from tally.spark.direct import collect_binary, collect_multilabel

        spark = df.sparkSession
        if plan.task == "binary":
            collected = collect_binary(spark, direct, plan)
        else:
            cells = collect_multilabel(spark, direct, plan)
            collected = None if cells is None else (cells, {})
        if collected is not None:
            cells, merged = collected
            return CountTables(None, None, [], collected=cells, spark=spark, merged=merged)
    table, width = _counted(df, plan, direct)
    table = table.persist(StorageLevel.MEMORY_AND_DISK)
    persisted = [table]
    merged = None
    if plan.slices:
        merged_table, merged_values = _merge_rare_slices(table, plan, width)
        other = {f"v{j}": F.lit(OTHER_VALUE) for j in range(width)}
        merged = merged_values.withColumns(other).select(
            _slice_label(plan).alias("slice"), "merged_values"
        )
        # One small action (it computes the persisted aggregation): when no spec has more
        # values than max_slices_per_spec, the join and re-aggregation of every cell that
        # merging costs are skipped (measured on 20M rows, 51 slice values: 19 s against
        # 28–31 s when always merging, two runs each, 2026-11-25).
        if merged.take(1):
            table = _labelled(merged_table, plan).persist(StorageLevel.MEMORY_AND_DISK)
            persisted.append(table)
            return CountTables(table, merged, persisted)
    return CountTables(_labelled(table, plan), merged, persisted)


def _labelled(table: DataFrame, plan: CountPlan) -> DataFrame:
    score_name = F.element_at(F.array(*(F.lit(s) for s in plan.scores)), F.col("score_index") + 1)
    return table.select(
        score_name.alias("score_column"),
        _slice_label(plan).alias("slice"),
        "cell",
        *SUM_COLUMNS,
    )


def collect_count_groups(table: DataFrame, plan: CountPlan) -> dict[tuple[str, str], Counts]:
    """Bring the count table to the driver (Arrow) and decode it per (score column, slice).

    Values are :class:`BinaryCounts`, or multi-label / multiclass counts for those tasks.
    """
    return decode_count_groups(table.toArrow(), plan)


def decode_count_groups(table: pa.Table, plan: CountPlan) -> dict[tuple[str, str], Counts]:
    """Decode a count table already on the driver per (score column, slice)."""
    return decode_groups(table, plan)


def count_binary_df(
    df: DataFrame,
    label: str,
    score: str,
    buckets: int,
    thresholds: Sequence[float],
    weight: str | None = None,
) -> BinaryCounts:
    """Counts of one score column over all rows: the Spark twin of
    :func:`tally.counts.count_binary`."""
    plan = CountPlan(
        label=label,
        scores=(score,),
        buckets=buckets,
        thresholds=tuple(sorted(thresholds)),
        weight=weight,
    )
    return collect_count_groups(count_table(df, plan), plan)[(score, ALL_ROWS)]
