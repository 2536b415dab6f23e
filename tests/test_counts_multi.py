"""Multi-label and multiclass count tables (pure numpy): what they count, and exact merging.

References are scikit-learn (``multilabel_confusion_matrix``, ``confusion_matrix``,
``top_k_accuracy_score``), plain Python written in the test, or the binary
``count_binary`` applied to one class column at a time.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    top_k_accuracy_score,
)

from helpers import class_names, multilabel_rows
from tally.counts import count_binary
from tally.counts_multi import (
    MulticlassCounts,
    MultilabelCounts,
    argmax_predictions,
    count_multiclass,
    count_multilabel,
    top_k_hits,
)

THRESHOLDS = (0.0, 0.25, 0.5, 0.77, 1.0)


def multiclass_rows(seed: int, n: int, k: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    s = rng.random((n, k))
    s[np.arange(n), y] += rng.random(n) * 0.8  # informative, continuous: no ties
    return y, s


# --- multi-label: what is counted --------------------------------------------------------------


def test_multilabel_hand_made_rows():
    # K = 2, B = 4 (buckets [0, .25), [.25, .5), [.5, .75), [.75, 1])
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.25, 0.5], [0.5, 0.1], [0.74, 1.0]])
    c = count_multilabel(labels, scores, ("cat", "dog"), 4, (0.5, 0.75))
    assert c.classes == ("cat", "dog") and c.thresholds == (0.5, 0.75)
    assert c.pos.tolist() == [[0, 0, 1, 1], [1, 0, 1, 0]]
    assert c.neg.tolist() == [[0, 1, 1, 0], [1, 0, 0, 1]]
    # t = 0.5 (score >= t): cat predicted for rows 0, 2, 3; dog for rows 1, 3
    # t = 0.75: cat for row 0; dog for row 3
    assert c.tp_at.tolist() == [[2, 1], [1, 0]]
    assert c.fp_at.tolist() == [[1, 1], [0, 1]]
    assert c.fn_at.tolist() == [[0, 1], [1, 2]]
    # exact rows at 0.5: row 0 (1,0)=(1,0) yes; row 1 (0,1)=(0,1) yes; row 2 (1,0)!=(1,1);
    # row 3 (1,1)!=(0,0). At 0.75: row 0 yes, others no.
    assert c.exact_match_at.tolist() == [2, 1]
    assert c.rows == 4 and c.total == 4 and c.invalid_rows == 0
    assert c.positives.tolist() == [2, 2] and c.negatives.tolist() == [2, 2]
    assert (c.n_classes, c.buckets) == (2, 4)
    for a in (c.pos, c.neg, c.tp_at, c.fp_at, c.fn_at, c.exact_match_at):
        assert a.dtype == np.int64


@pytest.mark.parametrize("buckets", [1, 7, 16, 100])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multilabel_columns_match_binary_counts_and_sklearn(seed, buckets):
    y, s = multilabel_rows(seed, 300, 4)
    thresholds = (*THRESHOLDS, *np.unique(s)[:3].tolist())  # thresholds equal to scores
    thresholds = tuple(sorted(set(thresholds)))
    c = count_multilabel(y, s, class_names(4), buckets, thresholds)
    for k in range(4):
        b = count_binary(y[:, k].astype(np.float64), s[:, k], buckets, thresholds)
        assert np.array_equal(c.pos[k], b.pos) and np.array_equal(c.neg[k], b.neg)
        assert np.array_equal(c.tp_at[:, k], b.tp_at)
        assert np.array_equal(c.fp_at[:, k], b.fp_at)
    for j, t in enumerate(thresholds):
        pred = (s >= t).astype(np.int64)
        # sklearn's per-class [[tn, fp], [fn, tp]]
        mcm = multilabel_confusion_matrix(y, pred)
        assert c.tp_at[j].tolist() == mcm[:, 1, 1].tolist()
        assert c.fp_at[j].tolist() == mcm[:, 0, 1].tolist()
        assert c.fn_at[j].tolist() == mcm[:, 1, 0].tolist()
        exact = accuracy_score(y, pred, normalize=False)
        assert c.exact_match_at[j] == exact


def test_multilabel_empty_input_is_empty_table():
    c = count_multilabel(np.zeros((0, 3)), np.zeros((0, 3)), class_names(3), 8, THRESHOLDS)
    assert c.same_counts(MultilabelCounts.empty(class_names(3), 8, THRESHOLDS))
    assert c.rows == 0 and c.total == 0
    assert c.pos.shape == (3, 8) and c.tp_at.shape == (len(THRESHOLDS), 3)


def test_multilabel_no_thresholds_and_one_class():
    c = count_multilabel(np.array([[1], [0]]), np.array([[0.2], [0.8]]), ("only",), 10, ())
    assert c.thresholds == () and c.tp_at.shape == (0, 1) and c.exact_match_at.shape == (0,)
    assert c.pos[0, 2] == 1 and c.neg[0, 8] == 1


def test_multilabel_input_checks():
    y, s = multilabel_rows(0, 5, 3)
    with pytest.raises(ValueError, match="shape"):
        count_multilabel(y, s, class_names(2), 8, THRESHOLDS)  # K mismatch
    with pytest.raises(ValueError, match="shape"):
        count_multilabel(y[:, 0], s[:, 0], class_names(1), 8, THRESHOLDS)  # 1-D
    with pytest.raises(ValueError, match="0 or 1"):
        count_multilabel(y * 2, s, class_names(3), 8, THRESHOLDS)
    with pytest.raises(ValueError, match="distinct"):
        count_multilabel(y, s, ("a", "a", "b"), 8, THRESHOLDS)
    with pytest.raises(ValueError, match="at least one class"):
        MultilabelCounts.empty((), 8, THRESHOLDS)
    c = count_multilabel(y, s, class_names(3), 8, THRESHOLDS)
    with pytest.raises(ValueError, match="tp_at"):
        MultilabelCounts(**{**c.__dict__, "tp_at": c.tp_at[:, :2]})


def test_multilabel_merge_refuses_different_tables():
    y, s = multilabel_rows(0, 20, 3)
    c = count_multilabel(y, s, class_names(3), 8, THRESHOLDS)
    for other in (
        count_multilabel(y, s, ("x", "y", "z"), 8, THRESHOLDS),
        count_multilabel(y, s, class_names(3), 16, THRESHOLDS),
        count_multilabel(y, s, class_names(3), 8, THRESHOLDS[:-1]),
    ):
        with pytest.raises(ValueError, match="cannot merge"):
            c.merge(other)


def test_multilabel_merge_adds_invalid_and_float_sums():
    a = MultilabelCounts.empty(class_names(2), 4, (0.5,), reasons=("null_label",), dtype=np.float64)
    a = MultilabelCounts(**{**a.__dict__, "invalid": {"null_label": 2}})
    b = MultilabelCounts.empty(class_names(2), 4, (0.5,))
    b = MultilabelCounts(**{**b.__dict__, "pos": b.pos + 1, "invalid": {"nan_score": 1}})
    m = a.merge(b)
    assert m.pos.dtype == np.float64 and m.pos.tolist() == [[1.0] * 4] * 2
    assert dict(m.invalid) == {"null_label": 2, "nan_score": 1}
    assert m.invalid_rows == 3
    # float sums compare to rtol, a reason missing on one side counts as 0
    close = MultilabelCounts(
        **{**m.__dict__, "pos": m.pos * (1 + 1e-14), "invalid": {**m.invalid, "other": 0}}
    )
    assert m.same_counts(close)
    assert not m.same_counts(MultilabelCounts(**{**m.__dict__, "pos": m.pos * 1.01}))


# --- multiclass: what is counted ---------------------------------------------------------------


def test_multiclass_hand_made_rows():
    labels = np.array([0, 0, 1, 2, 2, 2])
    predictions = np.array([0, 1, 1, 2, 0, 2])
    c = count_multiclass(labels, predictions, ("a", "b", "c"))
    assert c.confusion.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert c.rows == 6 and c.total == 6 and dict(c.top_k_hits) == {}
    assert c.confusion.dtype == np.int64


@pytest.mark.parametrize("k_classes", [1, 2, 3, 7])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multiclass_confusion_matches_sklearn(seed, k_classes):
    y, s = multiclass_rows(seed, 400, k_classes)
    pred = argmax_predictions(s)
    other = np.random.default_rng(seed).integers(0, k_classes, 400)
    c = count_multiclass(y, pred, class_names(k_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # K = 1: "a single label was found"
        expected = confusion_matrix(y, pred, labels=range(k_classes))
        expected_other = confusion_matrix(y, other, labels=range(k_classes))
    assert np.array_equal(c.confusion, expected)
    # predictions need not come from the scores
    c = count_multiclass(y, other, class_names(k_classes))
    assert np.array_equal(c.confusion, expected_other)


@pytest.mark.parametrize("k_classes", [3, 5, 10])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_hits_match_sklearn_on_continuous_scores(seed, k_classes):
    y, s = multiclass_rows(seed, 500, k_classes)
    ks = range(1, k_classes + 1)
    c = count_multiclass(y, argmax_predictions(s), class_names(k_classes), s, ks)
    assert sorted(c.top_k_hits) == list(ks)
    for k in ks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k >= K is "meaningless" to sklearn
            expected = top_k_accuracy_score(y, s, k=k, labels=range(k_classes), normalize=False)
        assert c.top_k_hits[k] == expected, k
    assert c.top_k_hits[1] == int(np.trace(c.confusion))  # top-1 is argmax
    assert c.top_k_hits[k_classes] == 500


def test_top_k_two_classes_matches_sklearn_binary_form():
    # sklearn wants the binary case as one score column; with probabilities summing to 1
    # "score of class 1 > 0.5" is argmax (no exact 0.5 with continuous scores)
    rng = np.random.default_rng(5)
    p1 = rng.random(300)
    y = (rng.random(300) < p1).astype(np.int64)
    s = np.column_stack([1 - p1, p1])
    c = count_multiclass(y, argmax_predictions(s), class_names(2), s, (1, 2))
    assert c.top_k_hits[1] == top_k_accuracy_score(y, p1, k=1, labels=[0, 1], normalize=False)
    assert c.top_k_hits[2] == 300


def test_ties_go_to_the_lowest_class_index():
    s = np.array(
        [
            [0.5, 0.5, 0.1],  # argmax 0; ranks: 0, 1, 2
            [0.2, 0.7, 0.7],  # argmax 1; ranks: 2, 0, 1
            [0.3, 0.3, 0.3],  # argmax 0; ranks: 0, 1, 2
        ]
    )
    assert argmax_predictions(s).tolist() == [0, 1, 0]
    for label, k1, k2 in [(0, [1, 0, 1], [1, 0, 1]), (1, [0, 1, 0], [1, 1, 1])]:
        y = np.full(3, label)
        assert top_k_hits(y, s, 1).tolist() == [bool(x) for x in k1]
        assert top_k_hits(y, s, 2).tolist() == [bool(x) for x in k2]
    y = np.full(3, 2)
    assert top_k_hits(y, s, 2).tolist() == [False, True, False]
    assert top_k_hits(y, s, 3).tolist() == [True, True, True]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 5).flatmap(
        lambda k: st.tuples(
            st.just(k),
            st.lists(
                st.tuples(
                    st.integers(0, k - 1),
                    st.lists(st.sampled_from([0.0, 0.25, 0.5, 1.0]), min_size=k, max_size=k),
                ),
                max_size=12,
            ),
        )
    )
)
def test_top_k_hits_match_a_sorted_ranking(case):
    # Independent definition: sort class indices by (-score, index), take the first k.
    k_classes, rows = case
    y = np.array([r[0] for r in rows], np.int64)
    s = np.array([r[1] for r in rows], np.float64).reshape(len(rows), k_classes)
    assert argmax_predictions(s).tolist() == [
        sorted(range(k_classes), key=lambda j, r=r: (-r[1][j], j))[0] for r in rows
    ]
    for k in range(1, k_classes + 2):
        expected = [
            label in sorted(range(k_classes), key=lambda j, sc=sc: (-sc[j], j))[:k]
            for label, sc in rows
        ]
        assert top_k_hits(y, s, k).tolist() == expected


def test_multiclass_input_checks():
    with pytest.raises(ValueError, match="class indices"):
        count_multiclass(np.array([0, 3]), np.array([0, 1]), class_names(3))
    with pytest.raises(ValueError, match="class indices"):
        count_multiclass(np.array([0, 1]), np.array([-1, 1]), class_names(3))
    with pytest.raises(ValueError, match="length"):
        count_multiclass(np.array([0, 1]), np.array([0]), class_names(3))
    with pytest.raises(ValueError, match="top_k_scores are required"):
        count_multiclass(np.array([0]), np.array([0]), class_names(3), ks=(1,))
    with pytest.raises(ValueError, match="shape"):
        count_multiclass(np.array([0]), np.array([0]), class_names(3), np.zeros((1, 2)), ks=(1,))
    with pytest.raises(ValueError, match="k >= 1"):
        count_multiclass(np.array([0]), np.array([0]), class_names(3), np.zeros((1, 3)), ks=(0,))
    with pytest.raises(ValueError, match="confusion"):
        MulticlassCounts(class_names(3), np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="shape"):
        argmax_predictions(np.zeros(3))


def test_multiclass_empty_and_merge_checks():
    empty = count_multiclass(np.zeros(0), np.zeros(0), class_names(3), np.zeros((0, 3)), (1, 2))
    assert empty.same_counts(MulticlassCounts.empty(class_names(3), ks=(2, 1)))
    assert empty.total == 0 and dict(empty.top_k_hits) == {1: 0, 2: 0}
    with pytest.raises(ValueError, match="cannot merge"):
        empty.merge(MulticlassCounts.empty(class_names(3), ks=(1,)))
    with pytest.raises(ValueError, match="cannot merge"):
        empty.merge(MulticlassCounts.empty(("a", "b", "c"), ks=(1, 2)))
    a = MulticlassCounts.empty(class_names(2), reasons=("null_label",))
    b = MulticlassCounts(class_names(2), np.ones((2, 2)), rows=4, invalid={"invalid_label": 1})
    m = a.merge(b)
    assert m.confusion.dtype == np.float64 and m.rows == 4
    assert dict(m.invalid) == {"null_label": 0, "invalid_label": 1}


# --- merging parts equals counting all rows (hypothesis) ---------------------------------------

EDGY_SCORES = st.sampled_from([0.0, 0.1, 0.25, 0.29, 0.3, 0.5, 0.5000001, 0.77, 0.99, 1.0])


@st.composite
def multilabel_case(draw):
    k = draw(st.integers(1, 4))
    n = draw(st.integers(0, 25))
    labels = draw(
        st.lists(st.lists(st.integers(0, 1), min_size=k, max_size=k), min_size=n, max_size=n)
    )
    scores = draw(st.lists(st.lists(EDGY_SCORES, min_size=k, max_size=k), min_size=n, max_size=n))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    buckets = draw(st.sampled_from([1, 3, 4, 10, 100]))
    return k, np.array(labels).reshape(n, k), np.array(scores).reshape(n, k), cuts, buckets


@settings(max_examples=150, deadline=None)
@given(multilabel_case(), st.randoms(use_true_random=False))
def test_multilabel_merge_of_parts_equals_count_of_all(case, random):
    k, y, s, cuts, buckets = case
    thresholds = (0.0, 0.29, 0.5, 1.0)
    whole = count_multilabel(y, s, class_names(k), buckets, thresholds)
    parts = [
        count_multilabel(y[a:b], s[a:b], class_names(k), buckets, thresholds)
        for a, b in zip([0, *cuts], [*cuts, len(y)], strict=True)
    ]
    random.shuffle(parts)
    merged = MultilabelCounts.empty(class_names(k), buckets, thresholds)
    for part in parts:
        merged = merged.merge(part) if random.random() < 0.5 else part.merge(merged)
    assert merged.same_counts(whole)
    assert merged.rows == len(y)
    # invariants of any table
    assert np.array_equal(
        whole.tp_at + whole.fn_at, np.broadcast_to(whole.positives, whole.tp_at.shape)
    )
    assert np.all(whole.fp_at <= whole.negatives)
    assert np.all(whole.exact_match_at <= whole.rows)


@st.composite
def multiclass_case(draw):
    k = draw(st.integers(1, 5))
    n = draw(st.integers(0, 25))
    labels = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    scores = draw(
        st.lists(
            st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.5]), min_size=k, max_size=k),
            min_size=n,
            max_size=n,
        )
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    return k, np.array(labels, np.int64), np.array(scores, np.float64).reshape(n, k), cuts


@settings(max_examples=150, deadline=None)
@given(multiclass_case(), st.randoms(use_true_random=False))
def test_multiclass_merge_of_parts_equals_count_of_all(case, random):
    k, y, s, cuts = case
    ks = (1, 2, 3)
    pred = argmax_predictions(s)
    whole = count_multiclass(y, pred, class_names(k), s, ks)
    parts = [
        count_multiclass(y[a:b], pred[a:b], class_names(k), s[a:b], ks)
        for a, b in zip([0, *cuts], [*cuts, len(y)], strict=True)
    ]
    random.shuffle(parts)
    merged = MulticlassCounts.empty(class_names(k), ks)
    for part in parts:
        merged = merged.merge(part) if random.random() < 0.5 else part.merge(merged)
    assert merged.same_counts(whole)
    assert merged.rows == len(y) == merged.total
    assert merged.top_k_hits[1] == int(np.trace(merged.confusion))
    assert merged.top_k_hits[1] <= merged.top_k_hits[2] <= merged.top_k_hits[3]
