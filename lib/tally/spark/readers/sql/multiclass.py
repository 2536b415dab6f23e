"""Multiclass cells in Spark SQL (:class:`~tally.kernels.cells.MulticlassLayout`).

Each row (after the score-column/slice expansion of :func:`tally.spark.cells.expanded`)
becomes an array of cells, exploded and summed by one aggregation:

* one confusion cell ``true·K + predicted`` per row (per pixel for pixel arrays);
* with scores, one :func:`~tally.kernels.cells.top_k_cell` per configured k the row's
  true class is among the k highest scores (ties: lower index first, as argmax);
* an invalid row (or pixel): one cell ``−(1 + reason)``, reasons from
  :data:`~tally.kernels.validity.MULTICLASS_INVALID_REASONS`.

Cells sum ``n`` (rows), ``w`` (weights) and ``wy`` (weighted labels).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.kernels.cells import invalid_cell, top_k_cell
from tally.kernels.validity import MULTICLASS_INVALID_REASONS
from tally.plan import SUM_COLUMNS, CountPlan
from tally.spark.cells import expanded, value_keys
from tally.spark.names import column
from tally.spark.rules import first_reason

#: How a row's label and model output are read, by ``plan.multiclass_input``.
_LABELS = {
    "prediction": lambda c: c.cast("long"),
    "scores": lambda c: c.cast("long"),
    "pixels": lambda c: F.transform(c, lambda x: x.cast("long")),
}
_OUTPUTS = {
    "prediction": lambda c: c.cast("long"),
    "scores": lambda c: F.transform(c, lambda x: x.cast("double")),
    "pixels": lambda c: F.transform(c, lambda x: x.cast("long")),
}


def _label_column(plan: CountPlan) -> Column:
    return _LABELS[plan.multiclass_input](column(plan.label))


def _output_column(plan: CountPlan, name: str) -> Column:
    return _OUTPUTS[plan.multiclass_input](column(name))


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
    return F.array(_cell(invalid_cell(reason.cast("long"))))


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
    reason = first_reason(checks, MULTICLASS_INVALID_REASONS)
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
    row_reason = first_reason(row_checks, MULTICLASS_INVALID_REASONS)

    def pixel(label: Column, predicted: Column) -> Column:
        def invalid(reason: str) -> Column:
            return _cell(invalid_cell(MULTICLASS_INVALID_REASONS.index(reason)))

        return (
            F.when(label.isNull(), invalid("null_label"))
            .when((label < 0) | (label >= k), invalid("label_out_of_range"))
            .when(predicted.isNull(), invalid("null_prediction"))
            .when((predicted < 0) | (predicted >= k), invalid("prediction_out_of_range"))
            .otherwise(_cell(label * k + predicted))
        )

    return F.when(row_reason.isNotNull(), _invalid(row_reason)).otherwise(F.zip_with(y, s, pixel))


def multiclass_cells(df: DataFrame, plan: CountPlan) -> tuple[DataFrame, int]:
    """The aggregated multiclass cells of ``df`` and the slice width: each row (after the
    score-column/slice expansion) becomes an array of cells, exploded and summed."""
    rows, width = expanded(df, plan, _label_column(plan), lambda name: _output_column(plan, name))
    cells = _multiclass_cells(plan)
    slice_keys = ["score_index", "spec", *value_keys(width)]
    exploded = rows.select(*slice_keys, "w", F.inline(cells))
    w, y = F.col("w"), F.col("y")
    table = exploded.groupBy(*slice_keys, "cell").agg(
        F.count(F.lit(1)).alias("n"),
        F.sum(w).alias("w"),
        F.sum(w * y).alias("wy"),
        *(F.lit(0.0).alias(c) for c in SUM_COLUMNS[3:]),
    )
    return table, width
