"""Count tables of multi-label and multiclass rows, in the same single pass as binary.

Each row (after the score-column/slice expansion of :mod:`tally.spark.counting`)
becomes an array of cells, exploded and summed by the same aggregation. Multiclass
rows are counted here with Spark SQL; multi-label rows, which hold K scores each,
with ``mapInArrow`` + numpy in :mod:`tally.spark.multilabel_arrow` (same cells):

multi-label (K classes, B buckets, T thresholds)
    one cell per class ``(k·B + bucket)·(T+1) + above`` carrying the class label;
    one ``ROW_CELL`` per valid row; one ``exact_match_cell(j)`` per threshold at which
    all K predictions equal the labels (subset accuracy).
multiclass
    one confusion cell ``true·K + predicted`` per row (per pixel for pixel arrays);
    with scores, one ``top_k_cell(k)`` per configured k the row's true class is among
    the k highest scores (ties: lower index first, as argmax).
invalid rows
    one cell ``−(1 + reason)``, reasons from
    :data:`~tally.counts_multi.MULTILABEL_INVALID_REASONS` /
    :data:`~tally.counts_multi.MULTICLASS_INVALID_REASONS`.

Cells sum ``n`` (rows), ``w`` (weights) and ``wy`` (weighted labels).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.kernels.cells import top_k_cell
from tally.kernels.validity import MULTICLASS_INVALID_REASONS
from tally.plan import CountPlan
from tally.spark.names import column


def label_column(plan: CountPlan) -> Column:
    if plan.multiclass_input == "pixels":
        return F.transform(column(plan.label), lambda x: x.cast("long"))
    return column(plan.label).cast("long")


def output_column(plan: CountPlan, name: str) -> Column:
    if plan.multiclass_input == "scores":
        return F.transform(column(name), lambda x: x.cast("double"))
    if plan.multiclass_input == "pixels":
        return F.transform(column(name), lambda x: x.cast("long"))
    return column(name).cast("long")


def _first_reason(checks: dict[str, Column], reasons: tuple[str, ...]) -> Column:
    code: Column | None = None
    for name, condition in checks.items():
        index = reasons.index(name)
        code = F.when(condition, index) if code is None else code.when(condition, index)
    return code  # type: ignore[return-value]


def _weight_checks(plan: CountPlan) -> dict[str, Column]:
    if not plan.weight:
        return {}
    w = F.col("w")
    return {
        "null_weight": w.isNull() | F.isnan(w),
        "invalid_weight": (w < 0) | (w == F.lit(float("inf"))),
    }


def _cell(cell: Column | int, y: Column | float = 0.0) -> Column:
    cell_col = cell if isinstance(cell, Column) else F.lit(cell)
    y_col = y if isinstance(y, Column) else F.lit(y)
    return F.struct(cell_col.cast("long").alias("cell"), y_col.cast("double").alias("y"))


def _invalid(reason: Column) -> Column:
    return F.array(_cell(-1 - reason.cast("long")))


_CELL_TYPE = T.StructType([T.StructField("cell", T.LongType()), T.StructField("y", T.DoubleType())])


def _multiclass_cells(plan: CountPlan) -> Column:
    k = len(plan.classes)
    y, s = F.col("y"), F.col("s")
    if plan.multiclass_input == "pixels":
        return _pixel_cells(plan)
    checks: dict[str, Column] = {
        "null_label": y.isNull(),
        "label_out_of_range": (y < 0) | (y >= k),
    }
    if plan.multiclass_input == "scores":
        checks |= {
            "null_scores": s.isNull(),
            "wrong_length": F.size(s) != k,
            "invalid_score": F.exists(
                s, lambda x: x.isNull() | F.isnan(x) | (F.abs(x) == F.lit(float("inf")))
            ),
        }
        predicted = F.array_position(s, F.array_max(s)) - 1  # first maximum: lowest index
    else:
        checks |= {"null_prediction": s.isNull(), "prediction_out_of_range": (s < 0) | (s >= k)}
        predicted = s
    checks |= _weight_checks(plan)
    reason = _first_reason(checks, MULTICLASS_INVALID_REASONS)
    cells = [F.array(_cell(y * k + predicted))]
    if plan.multiclass_input == "scores":
        true_score = F.get(s, y.cast("int"))
        rank = F.size(
            F.filter(
                F.transform(s, lambda x, i: (x > true_score) | ((x == true_score) & (i < y))),
                lambda ahead: ahead,
            )
        )
        cells += [
            F.when(rank < top, F.array(_cell(top_k_cell(top)))).otherwise(
                F.array().cast(T.ArrayType(_CELL_TYPE))
            )
            for top in plan.top_k
        ]
    return F.when(reason.isNotNull(), _invalid(reason)).otherwise(F.concat(*cells))


def _pixel_cells(plan: CountPlan) -> Column:
    """One confusion cell per pixel; out-of-range pixels are invalid pixels."""
    k = len(plan.classes)
    y, s = F.col("y"), F.col("s")
    row_checks = {
        "null_label": y.isNull(),
        "null_prediction": s.isNull(),
        "wrong_length": F.size(y) != F.size(s),
        **_weight_checks(plan),
    }
    row_reason = _first_reason(row_checks, MULTICLASS_INVALID_REASONS)

    def pixel(label: Column, predicted: Column) -> Column:
        reasons = MULTICLASS_INVALID_REASONS
        return (
            F.when(label.isNull(), _cell(-1 - reasons.index("null_label")))
            .when((label < 0) | (label >= k), _cell(-1 - reasons.index("label_out_of_range")))
            .when(predicted.isNull(), _cell(-1 - reasons.index("null_prediction")))
            .when(
                (predicted < 0) | (predicted >= k),
                _cell(-1 - reasons.index("prediction_out_of_range")),
            )
            .otherwise(_cell(label * k + predicted))
        )

    return F.when(row_reason.isNotNull(), _invalid(row_reason)).otherwise(F.zip_with(y, s, pixel))


def aggregate_multi(expanded: DataFrame, plan: CountPlan, width: int) -> DataFrame:
    """The count table (before slice labelling) of a multiclass pass (multi-label rows are
    counted by :mod:`tally.spark.multilabel_arrow`)."""
    cells = _multiclass_cells(plan)
    slice_keys = ["score_index", "spec", *(f"v{j}" for j in range(width))]
    exploded = expanded.select(*slice_keys, "w", F.inline(cells))
    w, y = F.col("w"), F.col("y")
    return exploded.groupBy(*slice_keys, "cell").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(w).alias("w"),
        F.sum(w * y).alias("wy"),
        F.lit(0.0).alias("w_loss"),
        F.lit(0.0).alias("w_sqerr"),
        F.lit(0.0).alias("w_score"),
    )
