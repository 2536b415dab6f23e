"""The rules of :mod:`tally.kernels` restated in Spark SQL, for the Spark SQL reader.

Each function here is the SQL twin of one numpy definition, and
``tests/test_rules_sql_vs_numpy.py`` evaluates both on the same awkward values (NaN,
±inf, −0.0, 0 and 1, nulls, the last float below 1, labels 2 and 0.5, negative and
infinite weights) and requires the same answer row by row:

=============================  ==========================================================
SQL                            numpy
=============================  ==========================================================
:func:`invalid_reason_code`    :func:`tally.kernels.validity.binary_invalid_rows`
:func:`bucket_column`          :func:`tally.kernels.buckets.bucket_of`
:func:`thresholds_passed_column`  :func:`tally.kernels.buckets.thresholds_passed`
:func:`sub_bin_column`         :func:`tally.kernels.refine.sub_bin`
:func:`slice_label_column`     :func:`tally.plan.slice_label`
:func:`kept_order`             :func:`tally.plan.kept_values` (the order of kept values)
=============================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from tally.kernels.buckets import is_power_of_two
from tally.kernels.validity import INVALID_REASONS
from tally.plan import ALL_ROWS, NULL_VALUE, CountPlan
from tally.spark.names import column


def invalid_reason_code(label: Column, score: Column, weight: Column | None) -> Column:
    """Index into :data:`~tally.kernels.validity.INVALID_REASONS` of a row's first
    problem, null when the row is valid (``weight`` None: unweighted)."""
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
    return first_reason(checks, INVALID_REASONS)


def first_reason(checks: dict[str, Column], reasons: Sequence[str]) -> Column:
    """The index into ``reasons`` of the first of ``checks`` (in order) that holds, else null."""
    code: Column | None = None
    for name, condition in checks.items():
        index = reasons.index(name)
        code = F.when(condition, index) if code is None else code.when(condition, index)
    return code  # type: ignore[return-value]


def _sigmoid(s: Column) -> Column:
    """``1 / (1 + exp(−x))``; infinite logits stay infinite (and NaN stays NaN), so they
    are still invalid rows, not scores 0 or 1. In float64 it saturates: logits above
    about 36.7 all give 1.0 and tie."""
    infinite = F.abs(s) == F.lit(float("inf"))
    return F.when(infinite, s).otherwise(F.lit(1.0) / (F.lit(1.0) + F.exp(-s)))


#: How a binary score column is evaluated, by ``score_transform``.
SCORE_TRANSFORMS: dict[str, Callable[[Column], Column]] = {
    "none": lambda s: s,
    "sigmoid": _sigmoid,
}


def score_value(plan: CountPlan, name: str) -> Column:
    """A binary score column as evaluated: cast to double, then ``plan.score_transform``."""
    if plan.score_transform not in SCORE_TRANSFORMS:
        raise ValueError(
            f"score_transform must be one of {list(SCORE_TRANSFORMS)}, "
            f"got {plan.score_transform!r}"
        )
    return SCORE_TRANSFORMS[plan.score_transform](column(name).cast("double"))


def bucket_column(score: Column, buckets: int) -> Column:
    """The bucket of a score in [0, 1]: :func:`~tally.kernels.buckets.bucket_of` (same
    float64 edge correction when ``buckets`` is not a power of two)."""
    b = float(buckets)
    index = F.floor(score * F.lit(b))
    if not is_power_of_two(buckets):
        index = (
            F.when(score < index / F.lit(b), index - 1)
            .when(score >= (index + 1) / F.lit(b), index + 1)
            .otherwise(index)
        )
    return F.least(index, F.lit(buckets - 1).cast("long"))


def thresholds_passed_column(score: Column, thresholds: Sequence[float]) -> Column:
    """How many of ``thresholds`` the score reaches (``score >= t``), as a long:
    :func:`~tally.kernels.buckets.thresholds_passed`."""
    above: Column = F.lit(0).cast("long")
    for t in sorted(thresholds):
        above = above + (score >= F.lit(float(t))).cast("long")
    return above


def sub_bin_column(s: Column, lo: Column, hi: Column, resolution: int) -> Column:
    """``min(floor((s − lo) / (hi − lo) · R), R − 1)``: :func:`tally.kernels.refine.sub_bin`
    (the same double operations in the same order, so the same index for the same double)."""
    j = F.floor((s - lo) / (hi - lo) * F.lit(float(resolution)))
    return F.least(j, F.lit(resolution - 1).cast("long"))


def slice_label_column(plan: CountPlan, spec: Column, values: Sequence[Column]) -> Column:
    """The ``slice`` label (:func:`tally.plan.slice_label`) of a row whose slice spec
    index is ``spec`` (0: ALL; ``k``: ``plan.slices[k − 1]``) and whose spec values, as
    strings, are ``values`` (``v0 …``)."""
    label: Column = F.lit(ALL_ROWS)
    for k, names in enumerate(plan.slices, start=1):
        parts = [
            F.concat(F.lit(f"{c}="), F.coalesce(values[j], F.lit(NULL_VALUE)))
            for j, c in enumerate(names)
        ]
        label = F.when(spec == k, F.concat_ws("/", *parts)).otherwise(label)
    return label


def kept_order(total: Column, values: Sequence[Column]) -> list[Column]:
    """Sort order of a slice spec's values when keeping the most frequent:
    :func:`tally.plan.kept_values` (most rows first, ties by value ascending, nulls first)."""
    return [total.desc(), *(v.asc_nulls_first() for v in values)]
