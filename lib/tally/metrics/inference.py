"""Uncertainty of the bucketed ROC AUC: DeLong confidence intervals and paired comparisons.

Notation as in :mod:`tally.metrics.binary`: buckets ``b = 0 .. B-1`` ascending in
score, ``p_b`` / ``n_b`` the positives / negatives in bucket ``b``, ``P = Σ p_b``,
``N = Σ n_b``, ``N_<b`` the negatives in lower buckets and ``P_>b`` the positives in
higher buckets. Pairs sharing a bucket count as ties (½), as in
:func:`~tally.metrics.binary.roc_auc`, so every quantity here is that of the
bucketed AUC; it is the exact one when each bucket holds a single distinct score.

**Placement values** (DeLong et al. 1988; the "structural components" of Sen 1960).
Every positive in bucket ``b`` beats the same fraction of negatives and every
negative in bucket ``b`` is beaten by the same fraction of positives::

    V10_b = (N_<b + ½ n_b) / N          V01_b = (P_>b + ½ p_b) / P

and ``AUC = Σ_b p_b V10_b / P = Σ_b n_b V01_b / N``. DeLong's variance estimate is
``Var(AUC) = S10 / P + S01 / N`` with the sample variances of the placement values
``S10 = Σ_b p_b (V10_b − AUC)² / (P − 1)`` and ``S01 = Σ_b n_b (V01_b − AUC)² / (N − 1)``.
Because the placement values depend on the bucket only, the histogram is all that
is needed: this is the histogram form of the fast algorithm of Sun & Xu (2014),
``O(B)`` instead of ``O(P·N)``.

**Paired comparison.** For two score columns on the same rows, DeLong's test of
``AUC¹ = AUC²`` also needs the covariances of the placement values of each row
under both models, which a pair of histograms cannot give. They come from a second
pass over the rows (mergeable, see :class:`PairedSums`): pass one builds each
model's histogram and from it the lookup arrays of :func:`placement_values`; pass
two looks up each row's placement values under both models and adds up the sums of
:class:`PairedSums`, one set per class.

Counts may be float (weighted rows): weights are then frequency weights, i.e. a row
of weight ``w`` stands for ``w`` identical rows, and ``P − 1``, ``N − 1`` are taken
on the weighted totals.

References: E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson, "Comparing the areas
under two or more correlated receiver operating characteristic curves: a
nonparametric approach", Biometrics 44(3), 1988. X. Sun, W. Xu, "Fast
implementation of DeLong's algorithm for comparing the areas under correlated
receiver operating characteristic curves", IEEE Signal Processing Letters 21(11),
2014.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from statistics import NormalDist

import numpy as np

from tally.metrics import MetricValue

NO_POSITIVES = "no positive rows"
NO_NEGATIVES = "no negative rows"
FEW_POSITIVES = "fewer than 2 positive rows: the variance of the AUC is undefined"
FEW_NEGATIVES = "fewer than 2 negative rows: the variance of the AUC is undefined"
ZERO_DIFF_VARIANCE = (
    "the variance of the AUC difference is 0 (the two score columns give every row the "
    "same placement values, or both separate the classes perfectly): no test statistic"
)

#: Below this fraction of ``Var¹ + Var²`` the variance of the AUC difference is taken
#: as 0: it is then rounding error of sums that cancel (identical rankings).
RELATIVE_ZERO_VARIANCE = 1e-10


def _as_float(counts: np.ndarray) -> np.ndarray:
    return np.asarray(counts, dtype=np.float64)


def _few_rows_reason(positives: float, negatives: float) -> str | None:
    if positives < 2:
        return FEW_POSITIVES
    if negatives < 2:
        return FEW_NEGATIVES
    return None


def placement_values(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lookup arrays ``(v10[B], v01[B])`` of DeLong placement values per bucket.

    ``v10[b] = (N_<b + ½ n_b) / N`` is the placement value of a positive in bucket
    ``b`` (the fraction of negatives it outranks, ties ½); ``v01[b] = (P_>b + ½ p_b) / P``
    that of a negative in bucket ``b`` (the fraction of positives outranking it).
    Entries of buckets without positives (``v10``) or negatives (``v01``) are still
    filled: the value a row there would get.

    Raises ``ValueError`` when ``P = 0`` or ``N = 0`` (no placement is defined) or
    when ``pos`` and ``neg`` differ in length.
    """
    p = _as_float(pos)
    n = _as_float(neg)
    if p.shape != n.shape or p.ndim != 1:
        raise ValueError(f"pos and neg must be 1-d of one length, got {p.shape} and {n.shape}")
    positives, negatives = float(p.sum()), float(n.sum())
    if positives <= 0 or negatives <= 0:
        raise ValueError(
            f"placement values need both classes: {positives} positives, {negatives} negatives"
        )
    negatives_below = np.cumsum(n) - n
    positives_above = positives - np.cumsum(p)
    v10 = (negatives_below + 0.5 * n) / negatives
    v01 = (positives_above + 0.5 * p) / positives
    return v10, v01


@dataclass(frozen=True)
class DeLongEstimate:
    """AUC and DeLong variance of one histogram (see the module docstring)."""

    auc: float
    s10: float
    s01: float
    positives: float
    negatives: float

    @property
    def variance(self) -> float:
        """``Var(AUC) = S10 / P + S01 / N``."""
        return self.s10 / self.positives + self.s01 / self.negatives


def delong(pos: np.ndarray, neg: np.ndarray) -> DeLongEstimate | str:
    """Bucketed AUC with ``S10``, ``S01`` of DeLong's variance, or the reason it is undefined.

    ``S10 = Σ_b p_b (V10_b − AUC)² / (P − 1)``, ``S01 = Σ_b n_b (V01_b − AUC)² / (N − 1)``
    (sums of squared deviations, not of squares minus squared means, so that AUCs
    near 0 or 1 lose no digits). Undefined when ``P < 2`` or ``N < 2``.
    """
    p = _as_float(pos)
    n = _as_float(neg)
    positives, negatives = float(p.sum()), float(n.sum())
    reason = _few_rows_reason(positives, negatives)
    if reason is not None:
        return reason
    v10, v01 = placement_values(p, n)
    auc = float(np.dot(p, v10)) / positives
    s10 = float(np.dot(p, (v10 - auc) ** 2)) / (positives - 1)
    s01 = float(np.dot(n, (v01 - auc) ** 2)) / (negatives - 1)
    return DeLongEstimate(auc, s10, s01, positives, negatives)


def normal_quantile(level: float) -> float:
    """``z`` with ``P(|Z| <= z) = level`` for a standard normal ``Z`` (1.959964… at 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def roc_auc_ci(pos: np.ndarray, neg: np.ndarray, level: float = 0.95) -> list[MetricValue]:
    """DeLong standard error and confidence interval of the bucketed ROC AUC.

    Returns ``roc_auc_std = sqrt(Var)``, ``roc_auc_ci_low`` and ``roc_auc_ci_high``
    with ``Var = S10 / P + S01 / N`` (module docstring). The interval is the
    normal (Wald) approximation ``AUC ± z · sqrt(Var)``, ``z`` the two-sided
    ``level`` quantile of the standard normal, clipped to ``[0, 1]``. This is the
    interval of DeLong et al. (1988) and of pROC's ``ci.auc(method = "delong")``;
    the clip only keeps the bounds in the range of an AUC (a logit-transformed
    interval would stay inside on its own but is not what the literature reports).
    Its coverage is close to nominal for moderate samples and AUCs not near 1;
    with few rows of one class and an AUC near 1 it is too narrow. When every
    placement value equals the AUC (perfect separation, or all rows in one bucket)
    the variance is 0 and the interval collapses to the AUC.

    The interval is for the bucketed AUC (ties within a bucket ½); the bucketing
    error ``roc_auc_error_bound`` is not included.

    Undefined (None with a reason) when ``P < 2`` or ``N < 2``. ``level`` must lie
    in ``(0, 1)`` (``ValueError`` otherwise).
    """
    z = normal_quantile(level)
    estimate = delong(pos, neg)
    if isinstance(estimate, str):
        return [
            MetricValue.undefined("roc_auc_std", estimate),
            MetricValue.undefined("roc_auc_ci_low", estimate),
            MetricValue.undefined("roc_auc_ci_high", estimate),
        ]
    std = math.sqrt(max(estimate.variance, 0.0))
    return [
        MetricValue("roc_auc_std", std),
        MetricValue("roc_auc_ci_low", min(max(estimate.auc - z * std, 0.0), 1.0)),
        MetricValue("roc_auc_ci_high", min(max(estimate.auc + z * std, 0.0), 1.0)),
    ]


@dataclass(frozen=True)
class PairedSums:
    """Per-class sums of placement values of two models on the same rows; mergeable.

    Over the positive rows ``x`` (prefix ``pos_``), with ``a = V10¹[b¹(x)]`` and
    ``c = V10²[b²(x)]`` the row's placement values under model 1 and model 2:
    ``count = Σ 1``, ``sum1 = Σ a``, ``sum2 = Σ c``, ``sq1 = Σ a²``, ``sq2 = Σ c²``,
    ``cross = Σ a·c``. The same over the negative rows (prefix ``neg_``) with the
    ``V01`` placement values. Every field is a sum over rows, so the sums of a union
    of row sets are the field-wise sums (:meth:`merge`), in any order. Float
    summation makes them differ from one partitioning to another in the last digits
    only.

    The sample covariances derived from them (:meth:`covariances`) do not change
    when a constant is subtracted from a lookup array, so a pass may look up
    centred values ``V10¹ − AUC¹`` etc. (fewer cancelling digits in the sums; see
    :func:`auc_comparison`).
    """

    pos_count: float = 0.0
    pos_sum1: float = 0.0
    pos_sum2: float = 0.0
    pos_sq1: float = 0.0
    pos_sq2: float = 0.0
    pos_cross: float = 0.0
    neg_count: float = 0.0
    neg_sum1: float = 0.0
    neg_sum2: float = 0.0
    neg_sq1: float = 0.0
    neg_sq2: float = 0.0
    neg_cross: float = 0.0

    @classmethod
    def empty(cls) -> PairedSums:
        """The identity of :meth:`merge`: no rows."""
        return cls()

    def merge(self, other: PairedSums) -> PairedSums:
        """Sums over the union of both row sets (field-wise addition)."""
        return PairedSums(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def covariances(self) -> tuple[np.ndarray, np.ndarray]:
        """Sample covariance matrices ``(S10, S01)`` (2 × 2) of the placement values.

        ``S10[i][j] = (Σ aᵢ aⱼ − Σ aᵢ Σ aⱼ / P) / (P − 1)`` over the positives (``a₁ = a``,
        ``a₂ = c`` above), ``S01`` likewise over the negatives with ``N``. Requires at
        least 2 rows of each class (``ValueError`` otherwise).
        """
        if self.pos_count < 2 or self.neg_count < 2:
            raise ValueError(
                f"covariances need 2 rows of each class: {self.pos_count} positives, "
                f"{self.neg_count} negatives"
            )
        pos = (self.pos_sum1, self.pos_sum2, self.pos_sq1, self.pos_sq2, self.pos_cross)
        neg = (self.neg_sum1, self.neg_sum2, self.neg_sq1, self.neg_sq2, self.neg_cross)
        return _covariance(self.pos_count, *pos), _covariance(self.neg_count, *neg)


def _covariance(
    count: float, sum1: float, sum2: float, sq1: float, sq2: float, cross: float
) -> np.ndarray:
    c11 = (sq1 - sum1 * sum1 / count) / (count - 1)
    c22 = (sq2 - sum2 * sum2 / count) / (count - 1)
    c12 = (cross - sum1 * sum2 / count) / (count - 1)
    return np.array([[c11, c12], [c12, c22]])


def paired_sums_numpy(
    labels: np.ndarray,
    bucket1: np.ndarray,
    bucket2: np.ndarray,
    v10_1: np.ndarray,
    v01_1: np.ndarray,
    v10_2: np.ndarray,
    v01_2: np.ndarray,
) -> PairedSums:
    """:class:`PairedSums` of rows given as numpy arrays (the reference for a Spark pass).

    ``labels`` are 0/1 (valid rows only: rows invalid under either score column must
    be dropped beforehand, and from both histograms too); ``bucket1`` / ``bucket2``
    the rows' bucket indices under each model (:func:`~tally.counts.bucket_of`);
    ``v10_k``, ``v01_k`` the lookup arrays of :func:`placement_values` of model ``k``'s
    histogram (optionally shifted by a constant each, e.g. centred on the AUC).
    """
    y = np.asarray(labels)
    positive = y == 1
    if not np.all(positive | (y == 0)):
        raise ValueError("labels must be 0 or 1")
    b1 = np.asarray(bucket1, np.int64)
    b2 = np.asarray(bucket2, np.int64)
    a_pos = np.asarray(v10_1, np.float64)[b1[positive]]
    c_pos = np.asarray(v10_2, np.float64)[b2[positive]]
    a_neg = np.asarray(v01_1, np.float64)[b1[~positive]]
    c_neg = np.asarray(v01_2, np.float64)[b2[~positive]]
    return PairedSums(
        pos_count=float(a_pos.size),
        pos_sum1=float(a_pos.sum()),
        pos_sum2=float(c_pos.sum()),
        pos_sq1=float(np.dot(a_pos, a_pos)),
        pos_sq2=float(np.dot(c_pos, c_pos)),
        pos_cross=float(np.dot(a_pos, c_pos)),
        neg_count=float(a_neg.size),
        neg_sum1=float(a_neg.sum()),
        neg_sum2=float(c_neg.sum()),
        neg_sq1=float(np.dot(a_neg, a_neg)),
        neg_sq2=float(np.dot(c_neg, c_neg)),
        neg_cross=float(np.dot(a_neg, c_neg)),
    )


def auc_comparison(
    hist1: tuple[np.ndarray, np.ndarray],
    hist2: tuple[np.ndarray, np.ndarray],
    sums: PairedSums,
) -> list[MetricValue]:
    """DeLong's test for two correlated AUCs: ``auc_diff``, ``auc_diff_std``, ``auc_diff_p_value``.

    ``hist1 = (pos, neg)`` and ``hist2`` are the histograms of the two score columns
    over the same rows; ``sums`` the :class:`PairedSums` of those rows with the
    lookup arrays of :func:`placement_values` of ``hist1`` and ``hist2``.

    * ``auc_diff = AUC¹ − AUC²`` (bucketed AUCs of the histograms);
    * ``Var(AUC¹ − AUC²) = Var¹ + Var² − 2 Cov``, i.e. ``cᵀ (S10 / P + S01 / N) c``
      with ``c = (1, −1)`` and ``S10``, ``S01`` the 2 × 2 sample covariance matrices
      of the placement values (:meth:`PairedSums.covariances`); ``auc_diff_std`` is
      its square root;
    * ``z = auc_diff / auc_diff_std`` and the two-sided p-value
      ``P(|Z| >= |z|) = erfc(|z| / √2)`` under ``H₀: AUC¹ = AUC²`` (DeLong et al. 1988).

    ``auc_diff`` is undefined when a class is absent; ``auc_diff_std`` and the
    p-value when ``P < 2`` or ``N < 2``, and the p-value also when the variance of
    the difference is 0 — below ``RELATIVE_ZERO_VARIANCE · (Var¹ + Var²)``, rounding
    of cancelling sums — as when both columns rank the rows identically up to
    buckets. Raises ``ValueError`` when the histograms and ``sums`` disagree on the
    number of rows of a class (they were not computed on the same rows).
    """
    pos1, neg1 = (_as_float(a) for a in hist1)
    pos2, neg2 = (_as_float(a) for a in hist2)
    positives, negatives = float(pos1.sum()), float(neg1.sum())
    for what, values in (
        ("positives", (float(pos2.sum()), sums.pos_count)),
        ("negatives", (float(neg2.sum()), sums.neg_count)),
    ):
        reference = positives if what == "positives" else negatives
        if not all(math.isclose(v, reference, rel_tol=1e-12, abs_tol=1e-9) for v in values):
            raise ValueError(
                f"histograms and paired sums are not over the same rows: {what} "
                f"{reference} / {values[0]} / {values[1]}"
            )
    if positives == 0 or negatives == 0:
        reason = NO_POSITIVES if positives == 0 else NO_NEGATIVES
        return [
            MetricValue.undefined("auc_diff", reason),
            MetricValue.undefined("auc_diff_std", reason),
            MetricValue.undefined("auc_diff_p_value", reason),
        ]
    v10_1, _ = placement_values(pos1, neg1)
    v10_2, _ = placement_values(pos2, neg2)
    diff = float(np.dot(pos1, v10_1)) / positives - float(np.dot(pos2, v10_2)) / positives
    reason = _few_rows_reason(positives, negatives)
    if reason is not None:
        return [
            MetricValue("auc_diff", diff),
            MetricValue.undefined("auc_diff_std", reason),
            MetricValue.undefined("auc_diff_p_value", reason),
        ]
    s10, s01 = sums.covariances()
    covariance = s10 / positives + s01 / negatives
    variance = float(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    scale = float(covariance[0, 0] + covariance[1, 1])
    if variance <= RELATIVE_ZERO_VARIANCE * scale:
        return [
            MetricValue("auc_diff", diff),
            MetricValue("auc_diff_std", 0.0),
            MetricValue.undefined("auc_diff_p_value", ZERO_DIFF_VARIANCE),
        ]
    std = math.sqrt(variance)
    p_value = math.erfc(abs(diff) / std / math.sqrt(2))
    return [
        MetricValue("auc_diff", diff),
        MetricValue("auc_diff_std", std),
        MetricValue("auc_diff_p_value", p_value),
    ]
