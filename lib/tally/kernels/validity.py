"""Which rows are invalid, and why: the one definition every reader and reference follows.

A row failing a check is counted under the first reason that applies (the order of
the tuples below) and left out of every metric. The Spark SQL reader states the
binary checks in SQL (:func:`tally.spark.rules.invalid_reason_code`);
``tests/test_rules_sql_vs_numpy.py`` holds it to :func:`binary_invalid_rows`.
"""

from __future__ import annotations

import numpy as np

#: Why a binary row is skipped, in the order checked (the first one wins).
INVALID_REASONS: tuple[str, ...] = (
    "null_label",
    "null_score",
    "nan_score",
    "infinite_score",
    "score_out_of_range",
    "invalid_label",
    "null_weight",
    "invalid_weight",
)

#: Why a multi-label row is skipped, in the order checked (the first one wins).
MULTILABEL_INVALID_REASONS: tuple[str, ...] = (
    "null_labels",
    "null_scores",
    "wrong_length",
    "null_label",
    "invalid_label",
    "null_score",
    "nan_score",
    "infinite_score",
    "score_out_of_range",
    "null_weight",
    "invalid_weight",
)

#: Why a multiclass row (or, for pixel arrays, a pixel) is skipped, in the order checked.
MULTICLASS_INVALID_REASONS: tuple[str, ...] = (
    "null_label",
    "label_out_of_range",
    "null_prediction",
    "prediction_out_of_range",
    "null_scores",
    "wrong_length",
    "invalid_score",
    "null_weight",
    "invalid_weight",
)


# --- binary -----------------------------------------------------------------------------------


def binary_invalid_rows(
    y: np.ndarray,
    y_null: np.ndarray | None,
    minus_s: np.ndarray,
    s_null: np.ndarray | None,
    w: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The invalid rows of a binary batch and each one's first problem (index into
    :data:`INVALID_REASONS`).

    The checks, in order: null label, null score, NaN score, ±inf score, score outside
    [0, 1], label other than 0/1 (a NaN label that is not null is such a label), null or
    NaN weight, negative or +inf weight. ``y_null`` and ``s_null`` mark the nulls (None:
    no nulls), which hold NaN in ``y``, ``minus_s`` (the negated scores: the fast path
    of :mod:`tally.kernels.binary` converts scores so) and ``w``. One combined test
    finds the rows with any problem; only those are told apart by reason.
    """
    ok = (minus_s <= 0) & (minus_s >= -1) & ((y == 0) | (y == 1))
    if w is not None:
        ok &= (w >= 0) & (w < np.inf)
    bad = np.flatnonzero(~ok)
    found = np.full(len(bad), -1, np.int64)
    yb, sb = y[bad], -minus_s[bad]
    label_null = y_null[bad] if y_null is not None else np.zeros(len(bad), bool)
    score_null = s_null[bad] if s_null is not None else np.zeros(len(bad), bool)
    checks = [
        ("null_label", label_null),
        ("null_score", score_null),
        ("nan_score", np.isnan(sb) & ~score_null),
        ("infinite_score", np.isinf(sb)),
        ("score_out_of_range", (sb < 0) | (sb > 1)),
        ("invalid_label", (yb != 0) & (yb != 1)),
    ]
    if w is not None:
        wb = w[bad]
        checks += [("null_weight", np.isnan(wb)), ("invalid_weight", (wb < 0) | (wb == np.inf))]
    for name, failed in checks:
        found[(found < 0) & failed] = INVALID_REASONS.index(name)
    return bad, found


def binary_all_valid(y: np.ndarray, minus_s: tuple[float, float], w: np.ndarray | None) -> bool:
    """Whether :func:`binary_invalid_rows` would find no row, from minima and maxima
    where that suffices (the shortcut of batches without a problem).

    ``minus_s`` is the extremes of the negated scores (NaN when any score is null or
    NaN, which fails the test). Labels must be 0 or 1: integer and boolean labels by
    their extremes, others value by value. Weights in ``[0, +inf)``.
    """
    low, high = minus_s
    if not (low >= -1.0 and high <= 0.0):
        return False
    if y.dtype.kind in "biu":
        if len(y) and not (y.min() >= 0 and y.max() <= 1):
            return False
    elif not ((y == 0) | (y == 1)).all():
        return False
    if w is not None and len(w):
        return bool(w.min() >= 0 and w.max() < np.inf)
    return True


def invalid_reason(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Index into :data:`INVALID_REASONS` of each row's first problem, or -1 when valid.

    :func:`binary_invalid_rows` on float64 arrays in which NaN stands for null in
    ``labels`` and ``weights``. A null score cannot be told from a NaN score in a numpy
    array: NaN counts as ``nan_score`` here (a reader tells them apart).
    """
    y = np.asarray(labels, np.float64)
    s = np.asarray(scores, np.float64)
    w = None if weights is None else np.asarray(weights, np.float64)
    with np.errstate(invalid="ignore"):
        bad, reason = binary_invalid_rows(y, np.isnan(y), -s, None, w)
    out = np.full(y.shape, -1, np.int64)
    out[bad] = reason
    return out
