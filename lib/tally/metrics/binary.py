"""Binary classification metrics from a :class:`~tally.counts.BinaryCounts`.

Notation: buckets ``b = 0 .. B-1`` ascending in score, ``p_b`` / ``n_b`` the
positives / negatives in bucket ``b``, ``P = Σ p_b``, ``N = Σ n_b``. At a
threshold ``t`` a row is predicted positive when ``score >= t``; ``tp``, ``fp``
are then the positives and negatives predicted positive, ``fn = P - tp`` and
``tn = N - fp``.

Undefined values (an absent class, a zero denominator) are returned as
:class:`~tally.metrics.MetricValue` with ``value=None`` and a reason; never a
magic number. References: scikit-learn ``sklearn.metrics`` (``roc_auc_score``,
``average_precision_score``, ``log_loss``, ``brier_score_loss``,
``matthews_corrcoef``); Fawcett, "An introduction to ROC analysis" (2006).
"""

from __future__ import annotations

import math

import numpy as np

from tally.counts import BinaryCounts
from tally.metrics import MetricValue, ratio
from tally.metrics.calibration import calibration_metrics
from tally.metrics.inference import roc_auc_ci

NO_POSITIVES = "no positive rows"
NO_NEGATIVES = "no negative rows"
NO_ROWS = "no valid rows"


def total(counts: np.ndarray) -> float:
    """Sum of a count array: a Python int for integer counts (exact), else a float."""
    value = counts.sum()
    return int(value) if counts.dtype.kind in "iu" else float(value)


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[MetricValue, MetricValue]:
    """Bucketed ROC AUC and the bound on its distance to the exact AUC.

    ``AUC = Σ_b p_b · (N_<b + ½ n_b) / (P · N)`` where ``N_<b`` counts negatives in
    lower buckets: a positive beats every negative in a lower bucket, and pairs
    sharing a bucket count as ties (½), as the trapezoidal ROC area does for tied
    scores. Only pairs within one bucket may be ordered differently by the raw
    scores, so ``|AUC_exact - AUC| <= ½ Σ_b p_b · n_b / (P · N)``, the
    ``roc_auc_error_bound``. When all scores in each bucket are equal the value
    is exact and equals scikit-learn's ``roc_auc_score``.

    Undefined when ``P = 0`` or ``N = 0``.
    """
    positives, negatives = total(pos), total(neg)
    if positives == 0 or negatives == 0:
        reason = NO_POSITIVES if positives == 0 else NO_NEGATIVES
        return (
            MetricValue.undefined("roc_auc", reason),
            MetricValue.undefined("roc_auc_error_bound", reason),
        )
    p = pos.astype(np.float64)
    n = neg.astype(np.float64)
    negatives_below = np.cumsum(n) - n
    pairs = float(positives) * float(negatives)
    tied = float(np.dot(p, n))
    auc = (float(np.dot(p, negatives_below)) + 0.5 * tied) / pairs
    return MetricValue("roc_auc", auc), MetricValue("roc_auc_error_bound", 0.5 * tied / pairs)


def average_precision(pos: np.ndarray, neg: np.ndarray) -> MetricValue:
    """Average precision ``AP = Σ_k (R_k − R_{k−1}) · P_k`` over bucket thresholds.

    Thresholds are the non-empty buckets from the highest down; at bucket ``k``
    every row in buckets ``>= k`` is predicted positive, giving precision
    ``P_k = tp_k / (tp_k + fp_k)`` and recall ``R_k = tp_k / P``. This is the
    step-wise sum of scikit-learn's ``average_precision_score`` (no interpolation)
    and equals it when every bucket holds a single distinct score.

    Undefined when ``P = 0``.
    """
    positives = total(pos)
    if positives == 0:
        return MetricValue.undefined("pr_auc", NO_POSITIVES)
    tp = np.cumsum(pos[::-1].astype(np.float64))
    fp = np.cumsum(neg[::-1].astype(np.float64))
    gained = pos[::-1] > 0
    precision = tp[gained] / (tp[gained] + fp[gained])
    # steps of the cumulative recall (as scikit-learn takes them): they add up to exactly 1
    recall_step = np.diff(tp[gained] / positives, prepend=0.0)
    return MetricValue("pr_auc", float(np.sum(recall_step * precision)))


def best_f1(pos: np.ndarray, neg: np.ndarray) -> tuple[MetricValue, MetricValue]:
    """Largest F1 over bucket-boundary thresholds, and the threshold reaching it.

    At the lower edge ``k / B`` of each non-empty bucket ``k``,
    ``F1_k = 2 tp_k / (2 tp_k + fp_k + fn_k) = 2 tp_k / (tp_k + fp_k + P)``.
    The "optimal dataset scale" (ODS) F-score of edge detection benchmarks.
    On ties the highest threshold wins. Undefined when ``P = 0``.
    """
    positives = total(pos)
    if positives == 0:
        return (
            MetricValue.undefined("best_f1", NO_POSITIVES),
            MetricValue.undefined("best_f1_threshold", NO_POSITIVES),
        )
    buckets = pos.shape[0]
    tp = np.cumsum(pos[::-1].astype(np.float64))
    fp = np.cumsum(neg[::-1].astype(np.float64))
    f1 = 2 * tp / (tp + fp + positives)
    f1[(pos[::-1] + neg[::-1]) == 0] = -1.0  # an empty bucket is not a distinct threshold
    best = int(np.argmax(f1))  # first maximum from the top: the highest threshold
    threshold = (buckets - 1 - best) / buckets
    return MetricValue("best_f1", float(f1[best])), MetricValue("best_f1_threshold", threshold)


def log_loss(loss_sum: float, count: int) -> MetricValue:
    """Mean of ``-(y·ln p + (1-y)·ln(1-p))`` with ``p`` clipped to ``[ε, 1-ε]``.

    ``ε`` is the float64 machine epsilon, as scikit-learn's ``log_loss`` clips.
    Undefined on no rows.
    """
    return ratio("log_loss", loss_sum, count, NO_ROWS)


def brier(squared_error_sum: float, count: int) -> MetricValue:
    """Brier score: mean of ``(p - y)²`` (scikit-learn ``brier_score_loss``).

    Undefined on no rows.
    """
    return ratio("brier", squared_error_sum, count, NO_ROWS)


def threshold_metrics(
    tp: float,
    fp: float,
    positives: float,
    negatives: float,
    threshold: float,
    beta: float | None = None,
    fn: float | None = None,
    tn: float | None = None,
) -> list[MetricValue]:
    """Confusion-matrix metrics at one threshold (``score >= threshold`` is positive).

    ``fn`` and ``tn`` default to ``P − tp`` and ``N − fp``; pass them when summed
    directly (weighted counts, where the subtraction can leave ``-5e-14`` for 0).

    * ``precision = tp / (tp + fp)``; ``recall = tp / (tp + fn)`` (= ``tp / P``);
      ``specificity = tn / (tn + fp)`` (= ``tn / N``)
    * ``f1 = 2 tp / (2 tp + fp + fn)``; ``f_beta = (1+β²) tp / ((1+β²) tp + β² fn + fp)``
    * ``accuracy = (tp + tn) / (P + N)``; ``balanced_accuracy = (recall + specificity) / 2``
    * ``mcc = (tp·tn − fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))`` (Matthews)

    Each is undefined (None with a reason) when its denominator is zero; scikit-learn
    returns 0 there with a warning, Tally writes null. Counts are Python ints when
    unweighted (exact at any size) and floats when they are sums of weights.
    """
    fn = positives - tp if fn is None else fn
    tn = negatives - fp if tn is None else tn
    t = threshold
    no_predicted = "no rows predicted positive at this threshold"
    values = [
        MetricValue("tp", float(tp), t),
        MetricValue("fp", float(fp), t),
        MetricValue("tn", float(tn), t),
        MetricValue("fn", float(fn), t),
        ratio("precision", tp, tp + fp, no_predicted, t),
        ratio("recall", tp, tp + fn, NO_POSITIVES, t),
        ratio("specificity", tn, tn + fp, NO_NEGATIVES, t),
        ratio("f1", 2 * tp, 2 * tp + fp + fn, "no positive rows and none predicted positive", t),
    ]
    if beta is not None:
        b2 = beta * beta
        values.append(
            ratio(
                "f_beta",
                (1 + b2) * tp,
                (1 + b2) * tp + b2 * fn + fp,
                "no positive rows and none predicted positive",
                t,
            )
        )
    values.append(ratio("accuracy", tp + tn, positives + negatives, NO_ROWS, t))
    if positives == 0 or negatives == 0:
        values.append(
            MetricValue.undefined(
                "balanced_accuracy", NO_POSITIVES if positives == 0 else NO_NEGATIVES, t
            )
        )
    else:
        balanced = (tp / (tp + fn) + tn / (tn + fp)) / 2
        values.append(MetricValue("balanced_accuracy", balanced, t))
    # With Python ints the product is exact (it overflows int64 at a billion rows).
    denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    if denominator == 0:
        values.append(
            MetricValue.undefined("mcc", "a row or column of the confusion matrix is empty", t)
        )
    else:
        values.append(MetricValue("mcc", (tp * tn - fp * fn) / math.sqrt(denominator), t))
    return values


def binary_metrics(
    counts: BinaryCounts,
    beta: float | None = None,
    ci_level: float = 0.95,
    calibration_bins: int = 10,
) -> list[MetricValue]:
    """Every binary metric of the results table, in a stable order.

    Besides the metrics of this module: the DeLong standard error and
    ``ci_level`` confidence interval of ``roc_auc`` (:mod:`tally.metrics.inference`)
    and ``ece``/``mce`` over ``calibration_bins`` equal-width bins
    (:mod:`tally.metrics.calibration`; at most one bin per bucket).
    """
    positives, negatives, count = counts.positives, counts.negatives, counts.count
    values = [
        MetricValue("count", float(count)),
        MetricValue("positives", float(positives)),
        MetricValue("negatives", float(negatives)),
        MetricValue("invalid_rows", float(counts.invalid_rows)),
        *(MetricValue(f"invalid_rows_{r}", float(n)) for r, n in counts.invalid.items()),
        *roc_auc(counts.pos, counts.neg),
        average_precision(counts.pos, counts.neg),
        *best_f1(counts.pos, counts.neg),
        *roc_auc_ci(counts.pos, counts.neg, level=ci_level),
        log_loss(counts.log_loss_sum, counts.total_weight),
        brier(counts.squared_error_sum, counts.total_weight),
        *calibration_metrics(
            counts.pos, counts.neg, counts.score_sum, bins=min(calibration_bins, counts.buckets)
        ),
    ]
    for j, t in enumerate(counts.thresholds):
        values.extend(
            threshold_metrics(
                counts.tp_at[j].item(),
                counts.fp_at[j].item(),
                positives,
                negatives,
                t,
                beta,
                fn=counts.fn_at[j].item(),
                tn=counts.tn_at[j].item(),
            )
        )
    return values
