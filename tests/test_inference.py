"""DeLong variance, confidence interval and paired test of the bucketed AUC.

The reference is DeLong's estimator computed directly on the rows (a P × N matrix of
pair comparisons), written here independently of the histogram formulas. Scores sit
on one value per bucket, so the histogram loses nothing and both must agree to
rounding.

The coverage simulation is slow; run it with ``TALLY_SLOW=1``.
"""

from __future__ import annotations

import math
import os
import time
from statistics import NormalDist

import numpy as np
import pytest
from scipy.special import ndtr
from sklearn.metrics import roc_auc_score

from helpers import assert_undefined, by_name, on_buckets, paired_rows, row_paired, row_placements
from tally.counts import bucket_of
from tally.metrics.binary import roc_auc
from tally.metrics.inference import (
    PairedSums,
    auc_comparison,
    delong,
    placement_values,
    roc_auc_ci,
)

slow = pytest.mark.skipif(
    os.environ.get("TALLY_SLOW") != "1", reason="slow simulation: set TALLY_SLOW=1 to run"
)

# --- the per-row reference -------------------------------------------------------------------


def row_delong(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """(AUC, variance) by DeLong's formula on the rows."""
    v10, v01 = row_placements(y, s)
    auc = v10.mean()
    return auc, v10.var(ddof=1) / v10.size + v01.var(ddof=1) / v01.size


# --- helpers ---------------------------------------------------------------------------------


def rows(seed: int, n: int, buckets: int, positive_rate: float = 0.3, shift: float = 0.25):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(np.int64)
    raw = np.clip(rng.normal(0.35 + shift * y, 0.2), 0.0, 1.0)
    return y, on_buckets(raw, buckets)


def histogram(y: np.ndarray, s: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    b = bucket_of(s, buckets)
    return (
        np.bincount(b[y == 1], minlength=buckets).astype(np.int64),
        np.bincount(b[y == 0], minlength=buckets).astype(np.int64),
    )


CASES = [  # seed, rows, buckets, positive rate
    (0, 200, 100, 0.3),
    (1, 500, 64, 0.5),
    (2, 2000, 1000, 0.1),
    (3, 1000, 10, 0.3),  # many ties per bucket
    (4, 300, 7, 0.05),
    (5, 1500, 1024, 0.02),
]


# --- placement values and the variance -------------------------------------------------------


@pytest.mark.parametrize(("seed", "n", "buckets", "rate"), CASES)
def test_placement_values_equal_per_row_values(seed, n, buckets, rate):
    y, s = rows(seed, n, buckets, rate)
    pos, neg = histogram(y, s, buckets)
    v10, v01 = placement_values(pos, neg)
    r10, r01 = row_placements(y, s)
    b = bucket_of(s, buckets)
    np.testing.assert_allclose(v10[b[y == 1]], r10, rtol=0, atol=1e-14)
    np.testing.assert_allclose(v01[b[y == 0]], r01, rtol=0, atol=1e-14)


@pytest.mark.parametrize(("seed", "n", "buckets", "rate"), CASES)
def test_delong_variance_equals_per_row_delong(seed, n, buckets, rate):
    y, s = rows(seed, n, buckets, rate)
    pos, neg = histogram(y, s, buckets)
    auc, variance = row_delong(y, s)
    estimate = delong(pos, neg)
    assert not isinstance(estimate, str)
    assert abs(estimate.auc - auc) <= 1e-12
    assert abs(estimate.auc - roc_auc_score(y, s)) <= 1e-12
    assert abs(estimate.auc - roc_auc(pos, neg)[0].value) <= 1e-12
    assert abs(estimate.variance - variance) <= 1e-12
    assert math.isclose(estimate.variance, variance, rel_tol=1e-9)


@pytest.mark.parametrize(("seed", "n", "buckets", "rate"), CASES)
@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_ci_is_auc_plus_minus_z_std(seed, n, buckets, rate, level):
    y, s = rows(seed, n, buckets, rate)
    pos, neg = histogram(y, s, buckets)
    auc, variance = row_delong(y, s)
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    got = by_name(roc_auc_ci(pos, neg, level))
    assert set(got) == {"roc_auc_std", "roc_auc_ci_low", "roc_auc_ci_high"}
    assert abs(got["roc_auc_std"].value - math.sqrt(variance)) <= 1e-12
    assert abs(got["roc_auc_ci_low"].value - max(auc - z * math.sqrt(variance), 0)) <= 1e-12
    assert abs(got["roc_auc_ci_high"].value - min(auc + z * math.sqrt(variance), 1)) <= 1e-12
    assert got["roc_auc_ci_low"].value <= auc <= got["roc_auc_ci_high"].value


def test_known_small_example():
    # positives at buckets 1, 2; negatives at 0, 1 (B = 3)
    # V10: bucket 1 -> (1 + ½)/2 = 0.75, bucket 2 -> 1;  AUC = 0.875
    # V01: bucket 0 -> 1, bucket 1 -> (1 + ½)/2 = 0.75
    # S10 = S01 = ((0.125)² + (0.125)²) / 1 = 0.03125;  Var = 0.03125/2 + 0.03125/2
    pos, neg = np.array([0, 1, 1]), np.array([1, 1, 0])
    v10, v01 = placement_values(pos, neg)
    np.testing.assert_array_equal(v10, [0.25, 0.75, 1.0])
    np.testing.assert_array_equal(v01, [1.0, 0.75, 0.25])
    got = by_name(roc_auc_ci(pos, neg))
    assert got["roc_auc_std"].value == pytest.approx(math.sqrt(0.03125), abs=1e-15)


def test_ci_clipped_to_unit_interval():
    # nearly separated, few rows: AUC + z·std exceeds 1
    pos, neg = np.array([0, 0, 1, 0, 9]), np.array([5, 4, 0, 1, 0])
    got = by_name(roc_auc_ci(pos, neg))
    auc = roc_auc(pos, neg)[0].value
    assert auc + 1.96 * got["roc_auc_std"].value > 1
    assert got["roc_auc_ci_high"].value == 1.0
    assert 0 <= got["roc_auc_ci_low"].value < auc


@pytest.mark.parametrize(
    ("pos", "neg"),
    [
        ([0, 0, 0], [3, 2, 1]),
        ([3, 2, 1], [0, 0, 0]),
        ([0, 1, 0], [3, 2, 1]),  # one positive
        ([3, 2, 1], [0, 0, 1]),  # one negative
        ([0, 0, 0], [0, 0, 0]),
        ([0.0, 0.5, 0.9], [1.0, 2.0, 0.0]),  # weighted: P = 1.4 < 2
    ],
)
def test_ci_undefined_with_fewer_than_two_rows_of_a_class(pos, neg):
    got = by_name(roc_auc_ci(np.array(pos), np.array(neg)))
    assert len(got) == 3
    for m in got.values():
        assert_undefined(m)


def test_zero_variance_gives_a_degenerate_interval():
    # perfect separation: every placement value is 1 and the interval is [1, 1]
    got = by_name(roc_auc_ci(np.array([0, 0, 4]), np.array([3, 2, 0])))
    assert got["roc_auc_std"].value == 0.0
    assert got["roc_auc_ci_low"].value == got["roc_auc_ci_high"].value == 1.0


def test_weighted_counts_are_frequency_weights():
    # integer weights as floats == rows repeated that many times
    rng = np.random.default_rng(7)
    buckets = 20
    y, s = rows(11, 300, buckets)
    w = rng.integers(1, 5, size=y.size)
    b = bucket_of(s, buckets)
    pos_w = np.bincount(b[y == 1], weights=w[y == 1], minlength=buckets)
    neg_w = np.bincount(b[y == 0], weights=w[y == 0], minlength=buckets)
    assert pos_w.dtype == np.float64
    repeated = histogram(np.repeat(y, w), np.repeat(s, w), buckets)
    got = by_name(roc_auc_ci(pos_w, neg_w))
    want = by_name(roc_auc_ci(*repeated))
    for name, m in want.items():
        assert got[name].value == pytest.approx(m.value, rel=1e-12, abs=1e-15)


def test_invalid_level():
    with pytest.raises(ValueError, match="level"):
        roc_auc_ci(np.array([1, 1]), np.array([1, 1]), level=1.0)


def test_placement_values_need_both_classes():
    with pytest.raises(ValueError):
        placement_values(np.array([0, 0]), np.array([1, 1]))


# --- paired comparison -----------------------------------------------------------------------


def tally_paired(y, s1, s2, buckets1, buckets2, parts: int = 1, centred: bool = False):
    """Both passes as a job would run them: histograms, then mergeable sums over parts."""
    from tally.metrics.inference import paired_sums_numpy

    h1, h2 = histogram(y, s1, buckets1), histogram(y, s2, buckets2)
    v10_1, v01_1 = placement_values(*h1)
    v10_2, v01_2 = placement_values(*h2)
    if centred:
        a1 = roc_auc(*h1)[0].value
        a2 = roc_auc(*h2)[0].value
        v10_1, v01_1, v10_2, v01_2 = v10_1 - a1, v01_1 - a1, v10_2 - a2, v01_2 - a2
    b1, b2 = bucket_of(s1, buckets1), bucket_of(s2, buckets2)
    sums = PairedSums.empty()
    for part in np.array_split(np.arange(y.size), parts):
        sums = sums.merge(
            paired_sums_numpy(y[part], b1[part], b2[part], v10_1, v01_1, v10_2, v01_2)
        )
    return by_name(auc_comparison(h1, h2, sums))


PAIRED = [  # seed, rows, B1, B2, positive rate, correlation
    (0, 200, 100, 100, 0.3, 0.5),
    (1, 1000, 64, 1000, 0.4, 0.8),
    (2, 2000, 1000, 20, 0.1, 0.3),
    (3, 500, 10, 10, 0.5, 0.95),
    (4, 1500, 256, 100, 0.05, 0.0),
]


@pytest.mark.parametrize(("seed", "n", "b1", "b2", "rate", "rho"), PAIRED)
@pytest.mark.parametrize(("parts", "centred"), [(1, False), (7, False), (3, True)])
def test_paired_test_equals_per_row_delong(seed, n, b1, b2, rate, rho, parts, centred):
    y, s1, s2 = paired_rows(seed, n, b1, b2, rate, rho)
    diff, variance, p_value = row_paired(y, s1, s2)
    got = tally_paired(y, s1, s2, b1, b2, parts, centred)
    assert set(got) == {"auc_diff", "auc_diff_std", "auc_diff_p_value"}
    assert abs(got["auc_diff"].value - (roc_auc_score(y, s1) - roc_auc_score(y, s2))) <= 1e-12
    assert abs(got["auc_diff"].value - diff) <= 1e-12
    assert abs(got["auc_diff_std"].value ** 2 - variance) <= 1e-12
    assert abs(got["auc_diff_p_value"].value - p_value) <= 1e-9


def test_paired_p_value_against_scipy_normal():
    from scipy.stats import norm

    y, s1, s2 = paired_rows(9, 800, 50, 50, 0.3, 0.6)
    diff, variance, _ = row_paired(y, s1, s2)
    got = tally_paired(y, s1, s2, 50, 50)
    want = 2 * norm.sf(abs(diff) / math.sqrt(variance))
    assert got["auc_diff_p_value"].value == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_paired_variance_matches_single_model_variances():
    # Var(A¹ − A²) = Var¹ + Var² − 2 Cov: the diagonal equals each model's own DeLong variance
    y, s1, s2 = paired_rows(5, 700, 40, 80, 0.3, 0.5)
    h1, h2 = histogram(y, s1, 40), histogram(y, s2, 80)
    from tally.metrics.inference import paired_sums_numpy

    sums = paired_sums_numpy(
        y, bucket_of(s1, 40), bucket_of(s2, 80), *placement_values(*h1), *placement_values(*h2)
    )
    s10, s01 = sums.covariances()
    d1, d2 = delong(*h1), delong(*h2)
    assert s10[0, 0] == pytest.approx(d1.s10, rel=1e-10)
    assert s01[0, 0] == pytest.approx(d1.s01, rel=1e-10)
    assert s10[1, 1] == pytest.approx(d2.s10, rel=1e-10)
    assert s01[1, 1] == pytest.approx(d2.s01, rel=1e-10)


def test_identical_columns_have_no_p_value():
    y, s, _ = paired_rows(3, 400, 50, 50, 0.3, 0.5)
    got = tally_paired(y, s, s.copy(), 50, 50)
    assert got["auc_diff"].value == 0.0
    assert got["auc_diff_std"].value == 0.0
    assert_undefined(got["auc_diff_p_value"])


def test_both_perfect_have_no_p_value():
    y = np.array([0, 0, 0, 1, 1, 1])
    s1 = np.array([0.0, 0.1, 0.2, 0.7, 0.8, 0.9])
    s2 = np.array([0.2, 0.0, 0.1, 0.9, 0.7, 0.8])
    got = tally_paired(y, s1, s2, 10, 10)
    assert got["auc_diff"].value == 0.0
    assert_undefined(got["auc_diff_p_value"])


@pytest.mark.parametrize(
    ("y", "undefined_diff"),
    [([1, 1, 1], True), ([0, 0, 0], True), ([0, 1, 0, 0, 0], False), ([1, 0, 1, 1], False)],
)
def test_paired_undefined_with_few_rows(y, undefined_diff):
    y = np.array(y)
    s1 = np.linspace(0.05, 0.95, y.size)
    s2 = s1[::-1].copy()
    h1, h2 = histogram(y, s1, 10), histogram(y, s2, 10)
    sums = PairedSums(pos_count=float(np.sum(y == 1)), neg_count=float(np.sum(y == 0)))
    got = by_name(auc_comparison(h1, h2, sums))
    assert_undefined(got["auc_diff_p_value"])
    assert_undefined(got["auc_diff_std"])
    if undefined_diff:
        assert_undefined(got["auc_diff"])
    else:
        assert got["auc_diff"].value == pytest.approx(roc_auc_score(y, s1) - roc_auc_score(y, s2))


def test_paired_rejects_sums_over_other_rows():
    y, s1, s2 = paired_rows(1, 100, 10, 10, 0.3, 0.5)
    h1, h2 = histogram(y, s1, 10), histogram(y, s2, 10)
    with pytest.raises(ValueError, match="same rows"):
        auc_comparison(h1, h2, PairedSums(pos_count=3.0, neg_count=5.0))


def test_paired_sums_merge_is_addition():
    a = PairedSums(*range(12))
    b = PairedSums(*(10.0 * x for x in range(12)))
    merged = a.merge(b)
    assert merged == PairedSums(*(11.0 * x for x in range(12)))
    assert a.merge(PairedSums.empty()) == a


# --- coverage --------------------------------------------------------------------------------


def bucketed_binormal_auc(mu: float, buckets: int) -> float:
    """AUC (ties ½) of the bucketed scores Φ(X), X ~ N(0, 1) negatives, N(μ, 1) positives."""
    phi = NormalDist()
    edges = [phi.inv_cdf(k / buckets) for k in range(1, buckets)]
    cdf_neg = np.array([0.0, *(phi.cdf(e) for e in edges), 1.0])
    cdf_pos = np.array([0.0, *(phi.cdf(e - mu) for e in edges), 1.0])
    q_neg, q_pos = np.diff(cdf_neg), np.diff(cdf_pos)
    below = np.cumsum(q_neg) - q_neg
    return float(np.dot(q_pos, below + 0.5 * q_neg))


@slow
@pytest.mark.parametrize(
    ("mu", "positives", "negatives", "buckets"),
    [(1.0, 300, 700, 1000), (1.5, 100, 400, 100), (0.5, 500, 500, 1000)],
)
def test_ci_coverage_binormal(mu, positives, negatives, buckets):
    """95% DeLong intervals cover the true bucketed AUC in 95% ± 2% of 10,000 samples."""
    resamples = 10_000
    target = bucketed_binormal_auc(mu, buckets)
    # for fine buckets the bucketed AUC is the continuous binormal AUC Φ(μ / √2) up to ties
    assert abs(target - NormalDist().cdf(mu / math.sqrt(2))) < 2.0 / buckets
    rng = np.random.default_rng(2024)
    covered = 0
    start = time.perf_counter()
    for _ in range(resamples):
        s_pos = ndtr(rng.normal(mu, 1.0, positives))
        s_neg = ndtr(rng.normal(0.0, 1.0, negatives))
        pos = np.bincount(bucket_of(s_pos, buckets), minlength=buckets)
        neg = np.bincount(bucket_of(s_neg, buckets), minlength=buckets)
        got = by_name(roc_auc_ci(pos, neg))
        covered += got["roc_auc_ci_low"].value <= target <= got["roc_auc_ci_high"].value
    coverage = covered / resamples
    print(
        f"mu={mu} P={positives} N={negatives} B={buckets} true AUC={target:.4f}: "
        f"coverage {coverage:.4f} over {resamples} samples in {time.perf_counter() - start:.1f}s"
    )
    assert abs(coverage - 0.95) <= 0.02
