"""Calibration (ECE, MCE, reliability curve) from per-bucket counts and score sums.

References are computed on the raw rows: scikit-learn's ``calibration_curve``
(``strategy="uniform"``) for the curve, and the ECE / MCE definitions (Naeini et al.
2015) in numpy here. Scores are kept off the bin edges, where float edges
(``np.linspace``) and exact bucket edges may disagree by one ulp.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from helpers import by_name
from tally.counts import bucket_of
from tally.metrics.calibration import bin_of_bucket, calibration_metrics, reliability_curve

TOL = 1e-12


def rows(seed: int, n: int, positive_rate: float = 0.3, skew: float = 1.0):
    """Labels and miscalibrated scores in [0, 1] with a few at exactly 0 and 1."""
    rng = np.random.default_rng(seed)
    p_true = rng.beta(2, 3, n)
    y = (rng.random(n) < p_true * positive_rate / 0.4).astype(np.int64)
    s = np.clip(p_true**skew + rng.normal(0, 0.05, n), 0, 1)
    return y, s


def tables(y, s, buckets: int, weights=None):
    """(pos, neg, score_sum) per bucket: what the counting pass would produce."""
    w = np.ones(y.size) if weights is None else np.asarray(weights, np.float64)
    b = bucket_of(s, buckets)
    pos = np.bincount(b, weights=w * (y == 1), minlength=buckets)
    neg = np.bincount(b, weights=w * (y == 0), minlength=buckets)
    if weights is None:
        pos, neg = pos.astype(np.int64), neg.astype(np.int64)
    return pos, neg, np.bincount(b, weights=w * s, minlength=buckets)


def bin_edges(buckets: int, bins: int) -> np.ndarray:
    """Inner edges of the calibration bins, ⌈k·B/bins⌉ / B (k / bins when bins divides B)."""
    return np.array([-(-k * buckets // bins) / buckets for k in range(1, bins)])


def off_edges(s: np.ndarray, edges: np.ndarray, margin: float = 1e-9) -> bool:
    return bool(np.all(np.abs(s[:, None] - edges[None, :]) > margin))


def reference(y, s, edges: np.ndarray, weights=None):
    """Per non-empty bin (index, mean score, positive rate, count), ECE and MCE, from rows."""
    w = np.ones(y.size) if weights is None else np.asarray(weights, np.float64)
    k = np.searchsorted(edges, s, side="right")
    points = []
    for b in np.unique(k):
        m = k == b
        count = w[m].sum()
        points.append((int(b), np.dot(w[m], s[m]) / count, np.dot(w[m], y[m]) / count, count))
    total = w.sum()
    ece = sum(c / total * abs(ms - pr) for _, ms, pr, c in points)
    mce = max(abs(ms - pr) for _, ms, pr, _ in points)
    return points, ece, mce


CASES = [  # seed, rows, buckets, bins
    (0, 1000, 1000, 10),
    (1, 5000, 100, 10),
    (2, 300, 64, 8),
    (3, 2000, 1024, 16),
    (4, 50, 20, 5),
    (5, 2000, 1000, 15),  # B not divisible by bins
    (6, 3000, 100, 7),
    (7, 500, 10, 4),
    (8, 1000, 100, 1),
    (9, 1000, 30, 30),
]


@pytest.mark.parametrize(("seed", "n", "buckets", "bins"), CASES)
def test_ece_mce_equal_direct_computation(seed, n, buckets, bins):
    y, s = rows(seed, n)
    edges = bin_edges(buckets, bins)
    assert off_edges(s[(s > 0) & (s < 1)], edges)
    pos, neg, score_sum = tables(y, s, buckets)
    points, ece, mce = reference(y, s, edges)
    got = by_name(calibration_metrics(pos, neg, score_sum, bins))
    assert set(got) == {"ece", "mce"}
    assert abs(got["ece"].value - ece) <= TOL
    assert abs(got["mce"].value - mce) <= TOL
    curve = reliability_curve(pos, neg, score_sum, bins)
    assert [p[0] for p in curve] == [p[0] for p in points]
    for (k, mean_score, rate, count), (_, ref_score, ref_rate, ref_count) in zip(
        curve, points, strict=True
    ):
        assert abs(mean_score - ref_score) <= TOL, k
        assert abs(rate - ref_rate) <= TOL, k
        assert count == ref_count


@pytest.mark.parametrize(
    ("seed", "n", "buckets", "bins"), [c for c in CASES if c[2] % c[3] == 0 and c[3] > 1]
)
def test_curve_equals_sklearn_calibration_curve(seed, n, buckets, bins):
    y, s = rows(seed, n)
    assert off_edges(s[(s > 0) & (s < 1)], np.linspace(0, 1, bins + 1)[1:-1])
    prob_true, prob_pred = calibration_curve(y, s, n_bins=bins, strategy="uniform")
    curve = reliability_curve(*tables(y, s, buckets), bins)
    assert len(curve) == prob_true.size
    np.testing.assert_allclose([c[1] for c in curve], prob_pred, rtol=0, atol=TOL)
    np.testing.assert_allclose([c[2] for c in curve], prob_true, rtol=0, atol=TOL)
    # ECE from sklearn's points and per-bin counts
    counts = np.array([c[3] for c in curve])
    ece = float(np.sum(counts / n * np.abs(prob_pred - prob_true)))
    got = by_name(calibration_metrics(*tables(y, s, buckets), bins))
    assert abs(got["ece"].value - ece) <= TOL
    assert abs(got["mce"].value - float(np.max(np.abs(prob_pred - prob_true)))) <= TOL


def test_empty_bins_are_skipped():
    # scores only in [0.1, 0.2) and [0.8, 0.9): two points, bins 1 and 8
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([0.12, 0.15, 0.81, 0.85, 0.88])
    curve = reliability_curve(*tables(y, s, 100), 10)
    assert [c[0] for c in curve] == [1, 8]
    assert curve[0] == pytest.approx((1, 0.135, 0.5, 2.0))
    assert curve[1] == pytest.approx((8, (0.81 + 0.85 + 0.88) / 3, 2 / 3, 3.0))
    got = by_name(calibration_metrics(*tables(y, s, 100), 10))
    # ECE = (2·|0.135 − 0.5| + 3·|0.8467 − 0.6667|) / 5
    assert got["ece"].value == pytest.approx((2 * 0.365 + abs(2.54 - 2)) / 5, abs=TOL)
    assert got["mce"].value == pytest.approx(0.365, abs=TOL)


def test_perfectly_calibrated_bins():
    # each bin's mean score equals its positive rate
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    s = np.array([0.2, 0.2, 0.3, 0.3, 0.7, 0.7, 0.8, 0.8])
    got = by_name(calibration_metrics(*tables(y, s, 10), 2))
    assert got["ece"].value == pytest.approx(0.0, abs=TOL)
    assert got["mce"].value == pytest.approx(0.0, abs=TOL)


def test_one_bin_is_mean_score_minus_base_rate():
    y, s = rows(11, 800)
    got = by_name(calibration_metrics(*tables(y, s, 100), 1))
    assert abs(got["ece"].value - abs(s.mean() - y.mean())) <= TOL
    assert got["mce"].value == got["ece"].value


def test_weighted_rows():
    rng = np.random.default_rng(3)
    y, s = rows(12, 1000)
    w = rng.uniform(0.1, 3.0, y.size)
    buckets, bins = 200, 10
    _, ece, mce = reference(y, s, bin_edges(buckets, bins), weights=w)
    got = by_name(calibration_metrics(*tables(y, s, buckets, w), bins))
    assert abs(got["ece"].value - ece) <= TOL
    assert abs(got["mce"].value - mce) <= TOL


def test_partitions_add_up():
    y, s = rows(13, 3000)
    whole = calibration_metrics(*tables(y, s, 100), 10)
    parts = [tables(y[i], s[i], 100) for i in np.array_split(np.arange(y.size), 9)]
    merged = [sum(p[j] for p in parts) for j in range(3)]
    for a, b in zip(whole, calibration_metrics(*merged, 10), strict=True):
        assert a.metric == b.metric
        assert math.isclose(a.value, b.value, rel_tol=1e-12)


def test_no_rows_is_undefined():
    zeros = np.zeros(10, np.int64)
    got = calibration_metrics(zeros, zeros, np.zeros(10), 5)
    assert [m.metric for m in got] == ["ece", "mce"]
    for m in got:
        assert m.value is None and m.reason
    assert reliability_curve(zeros, zeros, np.zeros(10), 5) == []


def test_bin_of_bucket():
    assert bin_of_bucket(10, 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert bin_of_bucket(10, 4).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    assert bin_of_bucket(7, 7).tolist() == list(range(7))
    for buckets, bins in [(1000, 10), (100, 7), (1024, 10), (13, 13), (13, 1)]:
        index = bin_of_bucket(buckets, bins)
        assert index[0] == 0 and index[-1] == bins - 1
        assert np.all(np.diff(index) >= 0) and np.all(np.diff(index) <= 1)  # contiguous


@pytest.mark.parametrize("bins", [0, 11, -1])
def test_bins_out_of_range(bins):
    z = np.zeros(10)
    with pytest.raises(ValueError, match="bins"):
        calibration_metrics(z, z, z, bins)


def test_arrays_of_different_lengths():
    with pytest.raises(ValueError, match="length"):
        calibration_metrics(np.zeros(10), np.zeros(10), np.zeros(9), 5)
