"""Multiclass (single-label) metrics from a :class:`~tally.counts_multi.MulticlassCounts`.

Notation: ``C`` the ``K × K`` confusion matrix (rows = true class, columns =
predicted), ``n = Σ C`` the valid rows, ``r_k = Σ_j C_kj`` the rows of true class
``k`` (its support), ``c_k = Σ_i C_ik`` the rows predicted as ``k``.

* ``accuracy = Σ_k C_kk / n`` — pixel accuracy (PA) in segmentation
  (scikit-learn ``accuracy_score``);
* per class: ``recall_k = C_kk / r_k`` (class accuracy), ``precision_k = C_kk / c_k``,
  ``f1_k = 2 C_kk / (r_k + c_k)``, ``iou_k = C_kk / (r_k + c_k − C_kk)``,
  ``support_k = r_k`` (``precision_recall_fscore_support(average=None)``,
  ``jaccard_score(average=None)``); null with a reason on a zero denominator;
* ``mpa = mean of recall_k`` over classes with ``r_k > 0`` (mean pixel / class
  accuracy); ``miou = mean of iou_k`` over classes with ``r_k + c_k > 0``;
  ``fwiou = Σ_k (r_k / n) · iou_k`` (frequency-weighted IoU). Long, Shelhamer and
  Darrell, "Fully Convolutional Networks for Semantic Segmentation" (CVPR 2015),
  §5; IoU as in Everingham et al., "The PASCAL Visual Object Classes (VOC)
  Challenge" (IJCV 2010). Classes absent from both truth and predictions are
  left out of the means, as common implementations do (``nanmean``);
* ``macro_f1`` = mean of ``f1_k`` over the classes present in truth or
  predictions (``f1_score(average='macro')`` with its default labels, where the
  zero-division case cannot occur); ``micro_f1 = 2 Σ C_kk / (2 Σ C_kk + Σ fp + Σ fn)``,
  which equals ``accuracy`` for single-label rows (``average='micro'``);
  ``weighted_f1 = Σ_k r_k · f1_k / n`` (``average='weighted'``);
* ``cohen_kappa = (p_o − p_e) / (1 − p_e)`` with ``p_o = Σ C_kk / n`` and
  ``p_e = Σ_k r_k c_k / n²`` (Cohen 1960; ``cohen_kappa_score``), computed as
  ``(n Σ C_kk − Σ r_k c_k) / (n² − Σ r_k c_k)``; null when ``p_e = 1`` (all rows
  in one class, both true and predicted, or no rows);
* ``top_k_accuracy`` = rows whose true class is among the ``k`` highest scores /
  ``n``, one value per configured ``k``, **with ``k`` in the threshold column**
  (``top_k_accuracy_score``; ties are broken towards the lowest class index here,
  while scikit-learn breaks them towards the highest).

Undefined values are :class:`~tally.metrics.MetricValue` with ``value=None`` and a
reason, never NaN or a magic number. With weighted tables every count is a
weight sum and the ratios are weighted.
"""

from __future__ import annotations

from tally.counts_multi import MulticlassCounts
from tally.metrics import MetricValue, ratio
from tally.metrics.binary import NO_ROWS

NO_SUPPORT = "no rows of this class"
NO_PREDICTED = "no rows predicted as this class"
NOT_PRESENT = "no rows of this class and none predicted as it"


def _mean(name: str, values: list[float], reason: str) -> MetricValue:
    if not values:
        return MetricValue.undefined(name, reason)
    return MetricValue(name, float(sum(values)) / len(values))


def multiclass_metrics(counts: MulticlassCounts) -> list[MetricValue]:
    """Every multiclass metric of the results table, in a stable order.

    ``count`` (valid rows), ``invalid_rows`` and one ``invalid_rows_<reason>`` per
    reason in ``counts.invalid``; ``accuracy``; per class ``recall``, ``precision``,
    ``f1``, ``iou``, ``support``; ``mpa``, ``miou``, ``fwiou``, ``macro_f1``,
    ``micro_f1``, ``weighted_f1``, ``cohen_kappa``; ``top_k_accuracy`` per ``k``
    ascending (``threshold`` = ``k``). See the module docstring for the formulas.
    """
    # Python numbers (int for int64 tables): sums of products stay exact at any size
    c = counts.confusion.tolist()
    k_classes = counts.n_classes
    diagonal = [c[k][k] for k in range(k_classes)]
    row = [sum(c[k]) for k in range(k_classes)]
    col = [sum(c[i][k] for i in range(k_classes)) for k in range(k_classes)]
    n = sum(row)
    correct = sum(diagonal)

    values = [
        MetricValue("count", float(counts.rows)),
        MetricValue("invalid_rows", float(counts.invalid_rows)),
        *(MetricValue(f"invalid_rows_{r}", float(v)) for r, v in counts.invalid.items()),
        ratio("accuracy", correct, n, NO_ROWS),
    ]
    recalls, ious, f1s = [], [], []
    fwiou = 0.0
    weighted_f1 = 0.0
    for k, name in enumerate(counts.classes):
        tp, support, predicted = diagonal[k], row[k], col[k]
        recall = ratio("recall", tp, support, NO_SUPPORT, class_=name)
        f1 = ratio("f1", 2 * tp, support + predicted, NOT_PRESENT, class_=name)
        iou = ratio("iou", tp, support + predicted - tp, NOT_PRESENT, class_=name)
        values += [
            recall,
            ratio("precision", tp, predicted, NO_PREDICTED, class_=name),
            f1,
            iou,
            MetricValue("support", float(support), class_=name),
        ]
        if recall.value is not None:
            recalls.append(recall.value)
        if iou.value is not None:
            ious.append(iou.value)
            # support > 0 implies a non-zero union, so no weighted term is lost
            fwiou += support * iou.value
        if f1.value is not None:
            f1s.append(f1.value)
            weighted_f1 += support * f1.value
    errors = n - correct  # Σ fp = Σ fn = rows off the diagonal
    chance = sum(r * p for r, p in zip(row, col, strict=True))
    values += [
        _mean("mpa", recalls, NO_ROWS),
        _mean("miou", ious, NO_ROWS),
        ratio("fwiou", fwiou, n, NO_ROWS),
        _mean("macro_f1", f1s, NO_ROWS),
        ratio("micro_f1", 2 * correct, 2 * correct + 2 * errors, NO_ROWS),
        ratio("weighted_f1", weighted_f1, n, NO_ROWS),
        ratio(
            "cohen_kappa",
            n * correct - chance,
            n * n - chance,
            NO_ROWS
            if n == 0
            else "chance agreement is 1: all rows in one class, true and predicted",
        ),
    ]
    for k in sorted(counts.top_k_hits):
        values.append(ratio("top_k_accuracy", counts.top_k_hits[k], n, NO_ROWS, threshold=float(k)))
    return values


def confusion_cells(counts: MulticlassCounts) -> list[tuple[str, float]]:
    """``('<true>→<predicted>', count)`` for each non-zero cell, row by row.

    The job writes them as metric ``confusion`` with this label in the class column.
    """
    names = counts.classes
    return [
        (f"{names[i]}→{names[j]}", float(v))
        for i, cells in enumerate(counts.confusion.tolist())
        for j, v in enumerate(cells)
        if v != 0
    ]
