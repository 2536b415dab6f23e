"""Count tables (pure numpy): what count_binary counts, and that merging is exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.counts import INVALID_REASONS, BinaryCounts, bucket_of, count_binary

NAN = math.nan
INF = math.inf


def counts_of(labels, scores, buckets: int, thresholds=()) -> BinaryCounts:
    return count_binary(
        np.asarray(labels, np.float64), np.asarray(scores, np.float64), buckets, thresholds
    )


# --- count_binary on hand-made rows ----------------------------------------------------------


def test_pos_neg_per_bucket():
    # B = 4: buckets [0, .25), [.25, .5), [.5, .75), [.75, 1]
    labels = [1, 0, 0, 1, 1, 0, 1, 0]
    scores = [0.0, 0.1, 0.25, 0.3, 0.5, 0.74, 0.75, 1.0]
    c = counts_of(labels, scores, 4)
    assert c.pos.tolist() == [1, 1, 1, 1]
    assert c.neg.tolist() == [1, 1, 1, 1]
    assert c.pos.dtype == np.int64 and c.neg.dtype == np.int64
    assert (c.positives, c.negatives, c.count) == (4, 4, 8)
    assert c.invalid_rows == 0
    assert c.buckets == 4


def test_bucket_edges():
    # Score 0.0 lands in bucket 0, score exactly 1.0 in bucket B-1 (not B).
    for buckets in (1, 2, 7, 10, 16, 100, 65536):
        assert bucket_of(np.array([0.0]), buckets).tolist() == [0]
        assert bucket_of(np.array([1.0]), buckets).tolist() == [buckets - 1]
        c = counts_of([1, 0], [1.0, 0.0], buckets)
        assert c.pos[buckets - 1] == 1 and c.pos.sum() == 1
        assert c.neg[0] == 1 and c.neg.sum() == 1
    assert bucket_of(np.array([0.0, 0.24, 0.25, 0.5, 0.99, 1.0]), 4).tolist() == [0, 0, 1, 2, 3, 3]
    assert bucket_of(np.array([0.5]), 4).dtype == np.int64


def test_tp_fp_at_thresholds_use_greater_equal_on_raw_score():
    labels = [1, 1, 0, 0, 1, 0]
    scores = [0.6, 0.7, 0.65, 0.25, 0.25, 1.0]
    # 0.6, 0.65 and 0.7 share bucket 1 of B = 2; threshold 0.65 still splits them.
    thresholds = (0.0, 0.25, 0.65, 0.66, 1.0)
    c = counts_of(labels, scores, 2, thresholds)
    assert c.thresholds == thresholds
    assert c.tp_at.tolist() == [3, 3, 1, 1, 0]
    assert c.fp_at.tolist() == [3, 3, 2, 1, 1]
    assert c.tp_at.dtype == np.int64 and c.fp_at.dtype == np.int64
    # bucket table is coarser than the thresholds
    assert c.pos.tolist() == [1, 2]
    assert c.neg.tolist() == [1, 2]


def test_no_thresholds():
    c = counts_of([1, 0], [0.2, 0.8], 10)
    assert c.thresholds == ()
    assert c.tp_at.shape == (0,) and c.fp_at.shape == (0,)


def test_invalid_reasons_first_failing_check_wins():
    rows = [
        # (label, score, expected reason or None)
        (NAN, 0.5, "null_label"),
        (NAN, NAN, "null_label"),  # null label checked before the score
        (NAN, 7.0, "null_label"),
        (1.0, NAN, "nan_score"),
        (2.0, NAN, "nan_score"),  # score checked before the label value
        (0.0, INF, "infinite_score"),
        (1.0, -INF, "infinite_score"),
        (-1.0, INF, "infinite_score"),
        (1.0, -0.1, "score_out_of_range"),
        (0.0, 1.5, "score_out_of_range"),
        (2.0, 1.5, "score_out_of_range"),
        (2.0, 0.5, "invalid_label"),
        (-1.0, 0.5, "invalid_label"),
        (0.5, 0.5, "invalid_label"),
        (1.0, 0.3, None),
        (0.0, 0.7, None),
        (1.0, 1.0, None),
        (0.0, 0.0, None),
    ]
    labels = [r[0] for r in rows]
    scores = [r[1] for r in rows]
    c = counts_of(labels, scores, 10, (0.5,))
    expected = {reason: sum(r[2] == reason for r in rows) for reason in INVALID_REASONS}
    assert dict(c.invalid) == expected
    assert list(c.invalid) == list(INVALID_REASONS)
    assert expected["null_score"] == 0  # the numpy path cannot tell a null score apart
    assert c.invalid_rows == 14
    # only the four valid rows are counted anywhere
    assert c.positives == 2 and c.negatives == 2
    assert c.pos.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert c.neg.tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 0, 0]
    assert c.tp_at.tolist() == [1] and c.fp_at.tolist() == [1]
    assert math.isfinite(c.log_loss_sum) and math.isfinite(c.squared_error_sum)
    assert c.squared_error_sum == pytest.approx(0.7**2 + 0.7**2, abs=1e-15)


def test_invalid_reasons_order_is_the_documented_one():
    assert INVALID_REASONS == (
        "null_label",
        "null_score",
        "nan_score",
        "infinite_score",
        "score_out_of_range",
        "invalid_label",
        "null_weight",
        "invalid_weight",
    )


def test_sums():
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.2, 0.4, 0.0])
    c = counts_of(labels, scores, 8)
    eps = np.finfo(np.float64).eps
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(1 - eps))
    assert c.log_loss_sum == pytest.approx(expected_loss, rel=1e-14)
    assert c.squared_error_sum == pytest.approx(0.01 + 0.04 + 0.36 + 0.0, rel=1e-14)


def test_empty_input():
    c = counts_of([], [], 5, (0.5,))
    assert c.same_counts(BinaryCounts.empty(5, (0.5,)))
    assert c.count == 0 and c.invalid_rows == 0
    assert c.log_loss_sum == 0.0 and c.squared_error_sum == 0.0


# --- merge ------------------------------------------------------------------------------------

LABELS = st.sampled_from([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, NAN, 2.0, -1.0, 0.5])
SCORES = st.one_of(
    st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 0.3, 0.29, 0.999]),  # ties
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    st.sampled_from([NAN, INF, -INF, -0.1, 1.5]),
)
BUCKETS = st.sampled_from([1, 2, 3, 10, 16, 100])
THRESHOLDS = st.lists(
    st.one_of(st.sampled_from([0.0, 0.5, 1.0, 0.29]), st.floats(0.0, 1.0)), max_size=4
).map(tuple)


@st.composite
def split_rows(draw):
    """Rows, a split into parts (possibly empty ones), and a random merge order and grouping."""
    rows = draw(st.lists(st.tuples(LABELS, SCORES), max_size=60))
    parts = draw(st.integers(1, 6))
    group = draw(st.lists(st.integers(0, parts - 1), min_size=len(rows), max_size=len(rows)))
    order = draw(st.permutations(range(parts)))
    # merge steps: which adjacent pair to merge while more than one table remains
    steps = [draw(st.integers(0, remaining - 2)) for remaining in range(parts, 1, -1)]
    return rows, group, parts, order, steps


def merge_in_order(tables: list[BinaryCounts], order, steps) -> BinaryCounts:
    pending = [tables[i] for i in order]
    for i in steps:
        pending[i : i + 2] = [pending[i].merge(pending[i + 1])]
    assert len(pending) == 1
    return pending[0]


@settings(max_examples=80, deadline=None)
@given(split_rows(), BUCKETS, THRESHOLDS)
def test_merge_of_parts_equals_counts_of_all_rows(split, buckets, thresholds):
    rows, group, parts, order, steps = split
    labels = np.array([r[0] for r in rows], np.float64)
    scores = np.array([r[1] for r in rows], np.float64)
    group = np.array(group, np.int64)
    whole = count_binary(labels, scores, buckets, thresholds)
    tables = [
        count_binary(labels[group == g], scores[group == g], buckets, thresholds)
        for g in range(parts)
    ]
    merged = merge_in_order(tables, order, steps)
    assert merged.same_counts(whole)
    # integer arrays exactly equal (same_counts already checks; be explicit)
    for name in ("pos", "neg", "tp_at", "fp_at"):
        a, b = getattr(merged, name), getattr(whole, name)
        assert a.dtype == np.int64 and np.array_equal(a, b)
    assert dict(merged.invalid) == dict(whole.invalid)
    assert merged.count + merged.invalid_rows == len(rows)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(LABELS, SCORES), max_size=40), BUCKETS, THRESHOLDS)
def test_empty_is_identity_of_merge(rows, buckets, thresholds):
    c = count_binary(
        np.array([r[0] for r in rows], np.float64),
        np.array([r[1] for r in rows], np.float64),
        buckets,
        thresholds,
    )
    e = BinaryCounts.empty(buckets, thresholds)
    assert e.merge(c).same_counts(c)
    assert c.merge(e).same_counts(c)
    assert e.merge(e).same_counts(e)
    assert c.merge(e).log_loss_sum == c.log_loss_sum


def test_merge_is_exact_elementwise_addition():
    a = counts_of([1, 0, NAN], [0.1, 0.9, 0.5], 4, (0.5,))
    b = counts_of([1, 1, 2], [0.9, 0.95, 0.5], 4, (0.5,))
    m = a.merge(b)
    assert m.pos.tolist() == [1, 0, 0, 2]
    assert m.neg.tolist() == [0, 0, 0, 1]
    assert m.tp_at.tolist() == [2] and m.fp_at.tolist() == [1]
    assert m.invalid["null_label"] == 1 and m.invalid["invalid_label"] == 1
    assert m.log_loss_sum == a.log_loss_sum + b.log_loss_sum


def test_merge_rejects_different_buckets():
    a = counts_of([1], [0.5], 10, (0.5,))
    b = counts_of([1], [0.5], 11, (0.5,))
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        BinaryCounts.empty(10, (0.5,)).merge(BinaryCounts.empty(16, (0.5,)))


@pytest.mark.parametrize(
    "other", [(), (0.4,), (0.5, 0.7, 0.9), (0.7, 0.5)], ids=["none", "other", "more", "reordered"]
)
def test_merge_rejects_different_thresholds(other):
    a = counts_of([1, 0], [0.5, 0.2], 10, (0.5, 0.7))
    b = counts_of([1, 0], [0.5, 0.2], 10, other)
    with pytest.raises(ValueError):
        a.merge(b)
    with pytest.raises(ValueError):
        b.merge(a)
