"""Multi-label metrics from a :class:`~tally.counts_multi.MultilabelCounts`.

Notation: ``K`` classes; at a threshold ``t`` class ``k`` is predicted for a row
when its class-``k`` score is ``>= t``, giving per class ``tp_k``, ``fp_k``,
``fn_k`` and ``tn_k = n − tp_k − fp_k − fn_k`` over the ``n`` valid rows.

Per class and threshold (``class`` column set):

* ``precision_k = tp_k / (tp_k + fp_k)``, ``recall_k = tp_k / (tp_k + fn_k)``,
  ``f1_k = 2 tp_k / (2 tp_k + fp_k + fn_k)``, ``support_k = tp_k + fn_k``
  (scikit-learn ``precision_recall_fscore_support(average=None)``); each is null
  with a reason when its denominator is 0.

Over classes, per threshold (the "CP/CR/CF1/OP/OR/OF1" of multi-label image
classification: Wang et al., "CNN-RNN: A Unified Framework for Multi-label Image
Classification", CVPR 2016; Chen et al., "Multi-Label Image Recognition with Graph
Convolutional Networks", CVPR 2019):

* ``cp = (1/K) Σ_k precision_k``, ``cr = (1/K) Σ_k recall_k``, where a class with a
  zero denominator contributes 0 (scikit-learn ``precision_score`` /
  ``recall_score`` with ``average='macro', zero_division=0``); null when no class
  has a defined value (the mean would be a placeholder 0, not a measurement);
* ``cf1 = 2 · cp · cr / (cp + cr)``, null when ``cp + cr = 0`` or either is null;
* ``op = Σ tp / (Σ tp + Σ fp)``, ``or = Σ tp / (Σ tp + Σ fn)`` (``average='micro'``),
  ``of1 = 2 · op · or / (op + or)``, null when ``op + or = 0`` or either is null —
  otherwise equal to ``micro_f1``;
* ``macro_f1 = (1/K) Σ_k f1_k`` with 0 for a class whose F1 is undefined
  (``f1_score(average='macro', zero_division=0)``), null when no F1 is defined;
* ``micro_f1 = 2 Σ tp / (2 Σ tp + Σ fp + Σ fn)`` (``f1_score(average='micro')``);
* ``subset_accuracy`` = rows whose ``K`` predictions all equal their labels / ``n``
  (``accuracy_score`` on indicator arrays);
* ``hamming_loss = (Σ fp + Σ fn) / (n · K)`` (``hamming_loss``).

Threshold-free, from each class's score histogram:

* per class ``roc_auc``, ``roc_auc_error_bound``, ``average_precision`` — the
  binary :func:`~tally.metrics.binary.roc_auc` and
  :func:`~tally.metrics.binary.average_precision` of that class against the rest;
* ``macro_roc_auc`` — the mean of ``roc_auc`` over the classes where it is
  defined (both positive and negative rows); classes with one label value only
  are left out rather than counted as 0, unlike ``roc_auc_score(average='macro')``,
  which refuses such input. Null when no class has a defined AUC. Its error is
  at most the mean of those classes' ``roc_auc_error_bound``;
* ``map`` — mean of ``average_precision`` over the classes with positive rows
  (mean average precision, as in PASCAL VOC / MS-COCO classification).

Undefined values are :class:`~tally.metrics.MetricValue` with ``value=None`` and a
reason, never NaN or a magic number. With weighted tables ``n`` is the weight of
the valid rows (:attr:`MultilabelCounts.total`), so every ratio is weighted.
"""

from __future__ import annotations

from dataclasses import replace

from tally.counts_multi import MultilabelCounts
from tally.metrics import MetricValue, ratio
from tally.metrics.binary import NO_ROWS, average_precision, roc_auc

NO_CLASS_POSITIVES = "no rows positive for this class"
NO_CLASS_PREDICTED = "no rows predicted positive for this class at this threshold"
NO_CLASS_F1 = "no rows positive for this class and none predicted positive"


def _mean_or_undefined(
    name: str, values: list[float], reason: str, threshold: float | None = None
) -> MetricValue:
    if not values:
        return MetricValue.undefined(name, reason, threshold)
    return MetricValue(name, float(sum(values)) / len(values), threshold)


def _harmonic(name: str, a: MetricValue, b: MetricValue, threshold: float) -> MetricValue:
    """``2ab / (a + b)``; null when either is null or ``a + b = 0``."""
    if a.value is None or b.value is None:
        return MetricValue.undefined(name, f"{a.metric} or {b.metric} is undefined", threshold)
    return ratio(
        name, 2 * a.value * b.value, a.value + b.value, f"{a.metric} + {b.metric} = 0", threshold
    )


def _zero_division_mean(
    name: str, per_class: list[MetricValue], reason: str, threshold: float
) -> MetricValue:
    """Mean over all classes with undefined values as 0; null when none is defined."""
    if all(v.value is None for v in per_class):
        return MetricValue.undefined(name, reason, threshold)
    values = [0.0 if v.value is None else v.value for v in per_class]
    return MetricValue(name, sum(values) / len(values), threshold)


def class_metrics_at(counts: MultilabelCounts, j: int) -> list[MetricValue]:
    """Per-class ``tp fp fn tn precision recall f1 support`` at threshold ``j``, then the
    averages over classes. See the module docstring for the formulas."""
    t = counts.thresholds[j]
    n = counts.total
    k_classes = counts.n_classes
    tp_all, fp_all, fn_all = (a[j].tolist() for a in (counts.tp_at, counts.fp_at, counts.fn_at))
    values: list[MetricValue] = []
    precisions, recalls, f1s = [], [], []
    for k, name in enumerate(counts.classes):
        tp, fp, fn = tp_all[k], fp_all[k], fn_all[k]
        class_total = (counts.pos[k].sum() + counts.neg[k].sum()).item()
        tn = class_total - tp - fp - fn
        precision = ratio("precision", tp, tp + fp, NO_CLASS_PREDICTED, t, name)
        recall = ratio("recall", tp, tp + fn, NO_CLASS_POSITIVES, t, name)
        f1 = ratio("f1", 2 * tp, 2 * tp + fp + fn, NO_CLASS_F1, t, name)
        values += [
            MetricValue("tp", float(tp), t, None, name),
            MetricValue("fp", float(fp), t, None, name),
            MetricValue("fn", float(fn), t, None, name),
            MetricValue("tn", float(tn), t, None, name),
            precision,
            recall,
            f1,
            MetricValue("support", float(tp + fn), t, None, name),
        ]
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    no_rows = n == 0
    cp = _zero_division_mean(
        "cp", precisions, NO_ROWS if no_rows else "no rows predicted positive for any class", t
    )
    cr = _zero_division_mean(
        "cr", recalls, NO_ROWS if no_rows else "no rows positive for any class", t
    )
    tp, fp, fn = sum(tp_all), sum(fp_all), sum(fn_all)
    op = ratio("op", tp, tp + fp, "no rows predicted positive for any class", t)
    or_ = ratio("or", tp, tp + fn, "no rows positive for any class", t)
    values += [
        cp,
        cr,
        _harmonic("cf1", cp, cr, t),
        op,
        or_,
        _harmonic("of1", op, or_, t),
        _zero_division_mean(
            "macro_f1",
            f1s,
            NO_ROWS if no_rows else "no rows positive or predicted positive for any class",
            t,
        ),
        ratio(
            "micro_f1",
            2 * tp,
            2 * tp + fp + fn,
            "no rows positive or predicted positive for any class",
            t,
        ),
        ratio("subset_accuracy", counts.exact_match_at[j].item(), n, NO_ROWS, t),
        ratio("hamming_loss", fp + fn, n * k_classes, NO_ROWS, t),
    ]
    return values


def ranking_metrics(counts: MultilabelCounts) -> list[MetricValue]:
    """Per-class ``roc_auc``, ``roc_auc_error_bound``, ``average_precision``, then
    ``macro_roc_auc`` and ``map`` (threshold-free)."""
    values: list[MetricValue] = []
    aucs, aps = [], []
    for k, name in enumerate(counts.classes):
        auc, bound = roc_auc(counts.pos[k], counts.neg[k])
        ap = replace(average_precision(counts.pos[k], counts.neg[k]), metric="average_precision")
        values += [replace(auc, class_=name), replace(bound, class_=name), replace(ap, class_=name)]
        if auc.value is not None:
            aucs.append(auc.value)
        if ap.value is not None:
            aps.append(ap.value)
    values += [
        _mean_or_undefined("macro_roc_auc", aucs, "no class has both positive and negative rows"),
        _mean_or_undefined("map", aps, "no rows positive for any class"),
    ]
    return values


def multilabel_metrics(counts: MultilabelCounts) -> list[MetricValue]:
    """Every multi-label metric of the results table, in a stable order.

    ``count`` (valid rows), ``invalid_rows`` and one ``invalid_rows_<reason>`` per
    reason in ``counts.invalid`` (as the binary job writes them); the
    threshold-free ranking metrics; then, for each threshold, the per-class
    metrics followed by the averages over classes.
    """
    values = [
        MetricValue("count", float(counts.rows)),
        MetricValue("invalid_rows", float(counts.invalid_rows)),
        *(MetricValue(f"invalid_rows_{r}", float(n)) for r, n in counts.invalid.items()),
        *ranking_metrics(counts),
    ]
    for j in range(len(counts.thresholds)):
        values += class_metrics_at(counts, j)
    return values
