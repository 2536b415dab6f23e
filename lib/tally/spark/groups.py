"""Group metrics (``gauc``, ``ois_f1``) over a high-cardinality key, in Spark SQL.

Definitions and sources: :mod:`tally.metrics.groups`. Unlike the count tables,
these need every group's rows together, so they cost a shuffle keyed by group
(two exchanges in all: step 2's, of partial aggregates, then step 3's, of the
per-score cells); no Python UDF runs and no group is ever held in a Python list:

1. From the needed columns only (key, label, score columns, weight, slice
   columns), one row per (input row, score column, slice spec), as the count
   table expands them; rows that :func:`~tally.spark.rules.invalid_reason_code`
   rejects are dropped.
2. Aggregate per (score column, slice, group, distinct score): rows, weighted
   positives ``p`` and negatives ``m`` (partial aggregates per partition, then a
   shuffle, so tied scores, a heavy key and null keys shrink before they move).
   Valid rows with a null key collapse into one cell per (score column, slice):
   they are counted (``gauc_rows_null_key``), in no group. The rows are not
   repartitioned by group first: that would save the second exchange but moves every
   row instead of partial aggregates, and measured no faster (docs/benchmarks.md).
3. A window ``PARTITION BY (score column, slice, group) ORDER BY score DESC`` gives
   the cumulative ``tp``, ``fp`` at each distinct score and the group totals
   ``P_g``, ``N_g`` (one sort per group, which Spark spills; no global window).
4. Per group (no further shuffle: the window's partitioning serves it):
   ``AUC_g = Σ_s p_s·(N_g − fp_s + ½·m_s) / (P_g·N_g)`` and best
   ``F1_g = max_s 2·tp_s / (tp_s + fp_s + P_g)``.
5. Per (score column, slice): the sums of :class:`~tally.metrics.groups.GroupSums`,
   a few rows collected to the driver.

Unweighted, every sum in steps 2–4 is an integer or a half-integer (exact while P_g·N_g < 2^52),
so each ``AUC_g`` is exact and independent of partitioning; step 5 adds doubles,
whose order can change the last bits (relative 1e-15). Weighted, the weight sums
of step 2 are float sums as everywhere in Tally.

A group is a key value within one slice: a user seen in two countries is a group
in each ``country=…`` slice and one group in ``ALL``. Slice labels are those of the
count table (``ALL``, ``col=value/col=value``, null values as ``col=null``), but
the ``max_slices_per_spec`` merge into ``__other__`` is not applied: every slice
value gets its own group metrics. A row that is invalid and has a null key counts
as invalid only (it is in no metric here).
"""

from __future__ import annotations

import dataclasses

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.errors import InputError
from tally.metrics import MetricValue
from tally.metrics.groups import GroupSums, group_metric_values
from tally.plan import ALL_ROWS, CountPlan
from tally.spark.cells import score_slice_combos, slice_label, value_keys
from tally.spark.columns import check_columns
from tally.spark.names import column
from tally.spark.rules import invalid_reason_code, score_value

__all__ = ["group_metrics", "group_sums_table"]


def _check_key(df: DataFrame, key: str) -> None:
    fields = {f.name: f.dataType for f in df.schema.fields}
    if key not in fields:
        available = ", ".join(fields) or "(none)"
        raise InputError(f"group key column '{key}' not found in input; columns: {available}")
    if isinstance(fields[key], T.MapType):
        raise InputError(
            f"group key column '{key}' has type {fields[key].simpleString()}; "
            "a group key must be a string, number, boolean or date"
        )


def _expanded(df: DataFrame, plan: CountPlan, key: str) -> tuple[DataFrame, int]:
    """Valid rows, one per (input row, score column, slice spec): g, y, w, s, score_index,
    spec, v0… (slice values as strings, as the count table has them)."""
    needed = list(dict.fromkeys([key, *plan.needed_columns]))
    narrow = df.select(*(column(c) for c in needed))
    combos, width = score_slice_combos(plan, lambda name: score_value(plan, name))
    y = column(plan.label).cast("double").alias("y")
    w = (column(plan.weight).cast("double") if plan.weight else F.lit(1.0)).alias("w")
    rows = narrow.select(column(key).alias("g"), y, w, F.inline(F.array(*combos)))
    reason = invalid_reason_code(F.col("y"), F.col("s"), F.col("w") if plan.weight else None)
    return rows.where(reason.isNull()), width


#: The columns of :func:`group_sums_table` besides its keys: :class:`GroupSums`' fields.
SUM_FIELDS = tuple(f.name for f in dataclasses.fields(GroupSums))


def group_sums_table(df: DataFrame, plan: CountPlan, key: str) -> DataFrame:
    """Lazily, per (score column, slice): the :class:`GroupSums` fields, one row each.

    Columns: ``score_column``, ``slice`` and the fields of
    :class:`~tally.metrics.groups.GroupSums`. Only (score column, slice) pairs with at
    least one valid row appear. Steps 1–5 of the module docstring.
    """
    if plan.task != "binary":
        raise InputError(f"group metrics need task: binary, not {plan.task}")
    check_columns(df, plan)
    _check_key(df, key)
    rows, width = _expanded(df, plan, key)
    slice_keys = ["score_index", "spec", *value_keys(width)]
    per_group = _group_sums(_score_cells(rows, [*slice_keys, "g"]), [*slice_keys, "g"])
    sums = _slice_sums(per_group, slice_keys)
    score_name = F.element_at(F.array(*(F.lit(s) for s in plan.scores)), F.col("score_index") + 1)
    return sums.select(
        score_name.alias("score_column"),
        slice_label(plan).alias("slice"),
        *(F.coalesce(F.col(c), F.lit(0)).alias(c) for c in SUM_FIELDS),
    )


def _score_cells(rows: DataFrame, group_keys: list[str]) -> DataFrame:
    """Step 2: rows, weighted positives ``pos`` and negatives ``neg`` per (group keys,
    distinct score); a null key's rows collapse into one cell (score null)."""
    y, w = F.col("y"), F.col("w")
    no_key = F.col("g").isNull()
    return (
        rows.select(
            *group_keys,
            F.when(no_key, F.lit(None).cast("double")).otherwise(F.col("s")).alias("s"),
            (w * y).alias("wp"),
            (w * (F.lit(1.0) - y)).alias("wn"),
        )
        .groupBy(*group_keys, "s")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum("wp").alias("pos"),
            F.sum("wn").alias("neg"),
        )
    )


def _group_sums(cells: DataFrame, group_keys: list[str]) -> DataFrame:
    """Steps 3–4: per group, rows, ``P_g``, ``N_g``, the AUC's pair sum
    ``Σ_s p_s·(N_g − fp_s + ½·m_s)`` and the best F1 over its distinct scores."""
    ordered = Window.partitionBy(*group_keys).orderBy(F.desc("s"))
    running = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    pos, neg = F.col("pos"), F.col("neg")
    cumulative = cells.select(
        *group_keys,
        "rows",
        pos,
        neg,
        F.sum(pos).over(running).alias("tp"),
        F.sum(neg).over(running).alias("fp"),
        F.sum(pos).over(whole).alias("pos_total"),
        F.sum(neg).over(whole).alias("neg_total"),
    )
    tp, fp = F.col("tp"), F.col("fp")
    pos_total, neg_total = F.col("pos_total"), F.col("neg_total")
    return cumulative.groupBy(*group_keys).agg(
        F.sum("rows").alias("rows"),
        F.max(pos_total).alias("pos_total"),
        F.max(neg_total).alias("neg_total"),
        F.sum(pos * (neg_total - fp + F.lit(0.5) * neg)).alias("auc_pairs"),
        F.max(F.when(pos_total > 0, F.lit(2.0) * tp / (tp + fp + pos_total))).alias("best_f1"),
    )


def _slice_sums(per_group: DataFrame, slice_keys: list[str]) -> DataFrame:
    """Step 5: per (score column, slice), the :class:`GroupSums` fields over its groups."""
    pos_total, neg_total = F.col("pos_total"), F.col("neg_total")
    keyed = F.col("g").isNotNull()
    both = keyed & (pos_total > 0) & (neg_total > 0)
    has_pos = keyed & (pos_total > 0)
    n_g = pos_total + neg_total
    auc_g = F.col("auc_pairs") / (pos_total * neg_total)
    return per_group.groupBy(*slice_keys).agg(
        F.sum(F.when(both, n_g * auc_g)).alias("auc_weighted_sum"),
        F.sum(F.when(both, n_g)).alias("auc_weight"),
        F.count(F.when(both, 1)).alias("auc_groups"),
        F.count(F.when(keyed & ~both, 1)).alias("auc_groups_skipped"),
        F.sum(F.when(has_pos, F.col("best_f1"))).alias("f1_sum"),
        F.count(F.when(has_pos, 1)).alias("f1_groups"),
        F.count(F.when(keyed & ~has_pos, 1)).alias("f1_groups_skipped"),
        F.sum(F.when(~keyed, F.col("rows"))).alias("null_key_rows"),
    )


def _sums_of(row: dict) -> GroupSums:
    return GroupSums(
        auc_weighted_sum=float(row["auc_weighted_sum"]),
        auc_weight=float(row["auc_weight"]),
        auc_groups=int(row["auc_groups"]),
        auc_groups_skipped=int(row["auc_groups_skipped"]),
        f1_sum=float(row["f1_sum"]),
        f1_groups=int(row["f1_groups"]),
        f1_groups_skipped=int(row["f1_groups_skipped"]),
        null_key_rows=int(row["null_key_rows"]),
    )


def group_metrics(
    df: DataFrame, plan: CountPlan, key: str
) -> dict[tuple[str, str], list[MetricValue]]:
    """``gauc`` and ``ois_f1`` (with their group counts) per (score column, slice label).

    Keys are ``(score_column, slice)`` as :func:`~tally.spark.cells.collect_count_groups`
    keys them; values are the list of :func:`~tally.metrics.groups.group_metric_values`:
    ``gauc``, ``gauc_groups_used``, ``gauc_groups_skipped``, ``gauc_rows_null_key``,
    ``ois_f1``, ``ois_f1_groups_used``, ``ois_f1_groups_skipped`` (threshold None).
    Every score column has its ``ALL`` entry, even on empty input (values undefined,
    counts 0); a slice value without valid rows has no entry. One scan of ``df``
    (columns ``key`` and :attr:`CountPlan.needed_columns` only) and one shuffle by
    group; weighted when ``plan.weight`` is set. Rare slice values are not merged into
    ``__other__`` (see the module docstring).
    """
    table = group_sums_table(df, plan, key)
    out: dict[tuple[str, str], list[MetricValue]] = {}
    for row in table.collect():
        record = row.asDict()
        out[(record["score_column"], record["slice"])] = group_metric_values(_sums_of(record))
    for score in plan.scores:
        out.setdefault((score, ALL_ROWS), group_metric_values(GroupSums()))
    return dict(sorted(out.items()))
