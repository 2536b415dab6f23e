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

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.counts_multi import (
    MULTICLASS_INVALID_REASONS,
    MULTILABEL_INVALID_REASONS,
    MulticlassCounts,
    MultilabelCounts,
)
from tally.errors import InputError
from tally.spark.names import column

if TYPE_CHECKING:
    from tally.spark.counting import CountPlan

ROW_CELL = -100


def exact_match_cell(j: int) -> int:
    """Cell counting rows whose K predictions at threshold j all equal their labels."""
    return -101 - j


def top_k_cell(k: int) -> int:
    """Cell counting rows whose true class is among the k highest scores."""
    return -100 - k


INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
NUMERIC = (T.NumericType,)
LABEL_ELEMENT = (T.NumericType, T.BooleanType)


def column_roles(plan: CountPlan) -> list[tuple[str, str, tuple, str]]:
    """(role, column, allowed types, description) of every input column of a multi task."""
    roles: list[tuple[str, str, tuple, str]] = []
    if plan.task == "multilabel":
        roles.append(("labels", plan.label, ("array", LABEL_ELEMENT), "array of 0/1"))
        roles += [("scores", s, ("array", NUMERIC), "array of numbers") for s in plan.scores]
    elif plan.multiclass_input == "pixels":
        roles.append(("labels", plan.label, ("array", INTEGRAL), "array of class indices"))
        roles += [
            ("predictions", s, ("array", INTEGRAL), "array of class indices") for s in plan.scores
        ]
    else:
        roles.append(("label", plan.label, INTEGRAL, "integer class index"))
        if plan.multiclass_input == "scores":
            roles += [("scores", s, ("array", NUMERIC), "array of numbers") for s in plan.scores]
        else:
            roles += [("prediction", s, INTEGRAL, "integer class index") for s in plan.scores]
    return roles


def check_array_width(df: DataFrame, plan: CountPlan) -> None:
    """Fail when the first non-null array of a K-wide column does not hold K values.

    Multi-label labels and scores, and multiclass score arrays, must have one value per
    configured class. A row of another length is an invalid row (``wrong_length``), but
    when the *first* non-null array already disagrees, the config's ``classes`` is
    almost surely wrong for this input: fail naming both numbers instead of skipping
    every row. Reads one value (``limit(1)``), not the input.
    """
    k = len(plan.classes)
    names = [role[1] for role in column_roles(plan) if role[0] in ("labels", "scores")]
    if plan.multiclass_input == "pixels":
        return
    for name in names:
        first = df.where(column(name).isNotNull()).select(F.size(column(name))).limit(1).collect()
        if first and first[0][0] != k:
            raise InputError(
                f"column '{name}' holds arrays of {first[0][0]} values (first non-null row) "
                f"but classes lists {k}; fix 'classes' or the column"
            )


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


def _as_counts(values: np.ndarray, weighted: bool) -> np.ndarray:
    return values.astype(np.float64) if weighted else np.rint(values).astype(np.int64)


def _invalid_counts(cell: np.ndarray, n: np.ndarray, reasons: tuple[str, ...]) -> dict[str, int]:
    invalid = dict.fromkeys(reasons, 0)
    for c, rows in zip(cell, n, strict=True):
        if -len(reasons) <= c < 0:
            invalid[reasons[-1 - int(c)]] += int(rows)
    return invalid


def decode_multilabel(
    cells: dict[str, np.ndarray], plan: CountPlan, weighted: bool
) -> MultilabelCounts:
    """Decode one (score column, slice) group into :class:`MultilabelCounts`."""
    k, b, t = len(plan.classes), plan.buckets, len(plan.thresholds)
    cell = np.asarray(cells["cell"], np.int64)
    n = np.asarray(cells["n"], np.int64)
    w = _as_counts(np.asarray(cells["w"], np.float64), weighted)
    wy = _as_counts(np.asarray(cells["wy"], np.float64), weighted)
    valid = cell >= 0
    klass, rest = np.divmod(cell[valid], b * (t + 1))
    bucket, above = np.divmod(rest, t + 1)
    pos_cell, neg_cell = wy[valid], w[valid] - wy[valid]
    pos, neg = np.zeros((k, b), pos_cell.dtype), np.zeros((k, b), pos_cell.dtype)
    np.add.at(pos, (klass, bucket), pos_cell)
    np.add.at(neg, (klass, bucket), neg_cell)
    tp_at, fp_at = np.zeros((t, k), pos.dtype), np.zeros((t, k), pos.dtype)
    for j in range(t):
        np.add.at(tp_at[j], klass[above > j], pos_cell[above > j])
        np.add.at(fp_at[j], klass[above > j], neg_cell[above > j])
    fn_at = pos.sum(axis=1)[None, :] - tp_at
    exact = np.array([w[cell == exact_match_cell(j)].sum() for j in range(t)], pos.dtype)
    return MultilabelCounts(
        classes=plan.classes,
        thresholds=plan.thresholds,
        pos=pos,
        neg=neg,
        tp_at=tp_at,
        fp_at=fp_at,
        fn_at=fn_at,
        exact_match_at=exact,
        rows=int(n[cell == ROW_CELL].sum()),
        invalid=_invalid_counts(cell, n, MULTILABEL_INVALID_REASONS),
    )


def decode_multiclass(
    cells: dict[str, np.ndarray], plan: CountPlan, weighted: bool
) -> MulticlassCounts:
    """Decode one (score column, slice) group into :class:`MulticlassCounts`."""
    k = len(plan.classes)
    cell = np.asarray(cells["cell"], np.int64)
    n = np.asarray(cells["n"], np.int64)
    w = _as_counts(np.asarray(cells["w"], np.float64), weighted)
    valid = cell >= 0
    confusion = np.zeros(k * k, w.dtype)
    np.add.at(confusion, cell[valid], w[valid])
    hits = {top: w[cell == top_k_cell(top)].sum().item() for top in plan.top_k}
    return MulticlassCounts(
        classes=plan.classes,
        confusion=confusion.reshape(k, k),
        top_k_hits=hits,
        rows=int(n[valid].sum()),
        invalid=_invalid_counts(cell, n, MULTICLASS_INVALID_REASONS),
    )


def decoder(plan: CountPlan) -> Callable:
    """The decode function of the plan's task."""
    return decode_multilabel if plan.task == "multilabel" else decode_multiclass


def empty_counts(plan: CountPlan) -> MultilabelCounts | MulticlassCounts:
    """The counts of no rows for the plan's task."""
    if plan.task == "multilabel":
        return MultilabelCounts.empty(
            plan.classes, plan.buckets, plan.thresholds, reasons=MULTILABEL_INVALID_REASONS
        )
    return MulticlassCounts.empty(plan.classes, ks=plan.top_k, reasons=MULTICLASS_INVALID_REASONS)
