"""Group metrics over a high-cardinality key: GAUC and the OIS F-score (numpy only, no Spark).

Rows are split into groups by a key (e.g. ``user_id``); each group ``g`` has
positives ``P_g`` and negatives ``N_g`` (sums of weights when weighted) and
``n_g = P_g + N_g`` (its rows, or its weight).

**GAUC** (group AUC, Zhou et al. 2018, "Deep Interest Network for Click-Through
Rate Prediction", KDD, eq. 1): the ``n_g``-weighted mean of per-group ROC AUC over
the groups that have both classes::

    gauc = Σ_g n_g · AUC_g / Σ_g n_g        over groups with P_g > 0 and N_g > 0

``AUC_g`` is exact, ties counting ½ (scikit-learn's ``roc_auc_score``, with
``sample_weight`` when weighted: weighted pairs ``w_i · w_j``). With ``p_s``, ``m_s``
the positives and negatives at distinct score ``s`` of the group::

    AUC_g = Σ_s p_s · (N_{<s} + ½ · m_s) / (P_g · N_g)

**OIS F-score** ("optimal image scale", Arbeláez et al. 2011, "Contour Detection
and Hierarchical Image Segmentation", IEEE TPAMI 33(5), §3.1, where each image is a
group; the dataset-level best F over one shared threshold is their ODS, Tally's
``best_f1``): the mean over groups with ``P_g > 0`` of each group's best F1 over
thresholds ``t`` at every distinct score of the group (``score >= t`` predicted
positive)::

    ois_f1 = mean_g max_t 2 · tp_g(t) / (tp_g(t) + fp_g(t) + P_g)

Groups with one class absent are skipped (and counted); with no usable group the
metric is undefined (null with a reason), never a placeholder number.

:class:`GroupSums` holds the few sums per (score column, slice) these need — what
the Spark side (:mod:`tally.spark.groups`) computes — and :func:`group_metric_values`
turns them into :class:`~tally.metrics.MetricValue`. :func:`group_auc_f1` and
:func:`group_sums` are the in-memory reference over rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from tally.metrics import MetricValue

GAUC_UNDEFINED = "no group has both positive and negative rows"
OIS_F1_UNDEFINED = "no group has a positive row"


@dataclass(frozen=True)
class GroupSums:
    """Per (score column, slice): the sums the group metrics are made of.

    ``auc_weighted_sum`` = Σ n_g·AUC_g and ``auc_weight`` = Σ n_g over the
    ``auc_groups`` groups with both classes (``auc_groups_skipped`` lack one);
    ``f1_sum`` = Σ best F1_g over the ``f1_groups`` groups with positives
    (``f1_groups_skipped`` have none); ``null_key_rows``: valid rows whose key is
    null, in no group.
    """

    auc_weighted_sum: float = 0.0
    auc_weight: float = 0.0
    auc_groups: int = 0
    auc_groups_skipped: int = 0
    f1_sum: float = 0.0
    f1_groups: int = 0
    f1_groups_skipped: int = 0
    null_key_rows: int = 0


def group_metric_values(sums: GroupSums) -> list[MetricValue]:
    """``gauc``, ``ois_f1`` and their group counts from :class:`GroupSums`.

    Returns, in order: ``gauc``, ``gauc_groups_used``, ``gauc_groups_skipped``,
    ``gauc_rows_null_key``, ``ois_f1``, ``ois_f1_groups_used``, ``ois_f1_groups_skipped``.
    """
    if sums.auc_groups > 0 and sums.auc_weight > 0:
        gauc = MetricValue("gauc", sums.auc_weighted_sum / sums.auc_weight)
    else:
        gauc = MetricValue.undefined("gauc", GAUC_UNDEFINED)
    if sums.f1_groups > 0:
        ois = MetricValue("ois_f1", sums.f1_sum / sums.f1_groups)
    else:
        ois = MetricValue.undefined("ois_f1", OIS_F1_UNDEFINED)
    return [
        gauc,
        MetricValue("gauc_groups_used", float(sums.auc_groups)),
        MetricValue("gauc_groups_skipped", float(sums.auc_groups_skipped)),
        MetricValue("gauc_rows_null_key", float(sums.null_key_rows)),
        ois,
        MetricValue("ois_f1_groups_used", float(sums.f1_groups)),
        MetricValue("ois_f1_groups_skipped", float(sums.f1_groups_skipped)),
    ]


def group_auc_f1(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None
) -> tuple[float, float, float | None, float | None]:
    """``(P, N, AUC, best F1)`` of one group's valid rows (labels 0/1).

    AUC is None unless ``P > 0`` and ``N > 0``; best F1 is None unless ``P > 0``.
    Rows are combined per distinct score, sorted descending; ``tp``/``fp`` are the
    cumulative sums, ``N_{<s} = N − fp(s)``.
    """
    y = np.asarray(labels, np.float64)
    s = np.asarray(scores, np.float64)
    w = np.ones_like(s) if weights is None else np.asarray(weights, np.float64)
    distinct, index = np.unique(-s, return_inverse=True)  # descending scores
    pos = np.bincount(index, weights=w * y, minlength=len(distinct))
    neg = np.bincount(index, weights=w * (1.0 - y), minlength=len(distinct))
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    p_total, n_total = float(pos.sum()), float(neg.sum())
    auc = None
    if p_total > 0 and n_total > 0:
        auc = float(np.sum(pos * (n_total - fp + 0.5 * neg)) / (p_total * n_total))
    best = float(np.max(2.0 * tp / (tp + fp + p_total))) if p_total > 0 else None
    return p_total, n_total, auc, best


def group_sums(
    keys: Sequence[Hashable | None],
    labels: np.ndarray,
    scores: np.ndarray,
    weights: np.ndarray | None = None,
) -> GroupSums:
    """:class:`GroupSums` of valid in-memory rows grouped by ``keys`` (None: no group)."""
    y = np.asarray(labels, np.float64)
    s = np.asarray(scores, np.float64)
    w = None if weights is None else np.asarray(weights, np.float64)
    members: dict[Hashable, list[int]] = {}
    null_rows = 0
    for i, key in enumerate(keys):
        if key is None:
            null_rows += 1
        else:
            members.setdefault(key, []).append(i)
    totals = dict(auc_weighted_sum=0.0, auc_weight=0.0, f1_sum=0.0)
    counts = dict(auc_groups=0, auc_groups_skipped=0, f1_groups=0, f1_groups_skipped=0)
    for rows in members.values():
        idx = np.asarray(rows)
        p, n, auc, best = group_auc_f1(y[idx], s[idx], None if w is None else w[idx])
        if auc is None:
            counts["auc_groups_skipped"] += 1
        else:
            counts["auc_groups"] += 1
            totals["auc_weighted_sum"] += (p + n) * auc
            totals["auc_weight"] += p + n
        if best is None:
            counts["f1_groups_skipped"] += 1
        else:
            counts["f1_groups"] += 1
            totals["f1_sum"] += best
    return GroupSums(**totals, **counts, null_key_rows=null_rows)
