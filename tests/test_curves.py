"""Curve points from a histogram equal scikit-learn's curves on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, roc_curve

from tally.counts import count_binary
from tally.metrics.curves import roc_pr_curves


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_and_pr_points_are_scikit_learn_points_when_buckets_hold_one_score(seed):
    rng = np.random.default_rng(seed)
    buckets = 64
    y = (rng.random(3000) < 0.3).astype(int)
    score = rng.integers(0, buckets, 3000) / buckets  # one distinct score per bucket
    counts = count_binary(y, score, buckets, ())
    points = roc_pr_curves(counts.pos, counts.neg)
    roc = sorted((p.x, p.y) for p in points if p.curve == "roc")
    fpr, tpr, _ = roc_curve(y, score, drop_intermediate=False)
    assert np.allclose(roc, sorted(zip(fpr, tpr, strict=True)), rtol=0, atol=1e-12)
    pr = sorted((p.x, p.y) for p in points if p.curve == "pr")
    precision, recall, _ = precision_recall_curve(y, score, drop_intermediate=False)
    expected = sorted(zip(recall[:-1], precision[:-1], strict=True))  # drop the (0, 1) end
    assert np.allclose(pr, expected, rtol=0, atol=1e-12)
    roc_thresholds = sorted(p.threshold for p in points if p.curve == "roc" and p.threshold)
    assert roc_thresholds == sorted(set(score[score > 0]))


def test_curves_are_downsampled_and_keep_both_ends():
    rng = np.random.default_rng(5)
    y = (rng.random(200_000) < 0.5).astype(int)
    s = rng.random(200_000)
    counts = count_binary(y, s, 1 << 16, ())
    points = roc_pr_curves(counts.pos, counts.neg, max_points=1000)
    roc = [p for p in points if p.curve == "roc"]
    assert len(roc) <= 1000
    assert (roc[0].x, roc[0].y) == (0.0, 0.0)
    assert roc[-1].x == pytest.approx(1.0) and roc[-1].y == pytest.approx(1.0)


def test_no_curves_without_positives():
    counts = count_binary(np.zeros(10), np.linspace(0, 1, 10), 8, ())
    assert roc_pr_curves(counts.pos, counts.neg) == []
