"""Binary metrics from count tables, checked against scikit-learn on the same rows.

scikit-learn is the independent reference: every expected value below is computed
by sklearn (or by hand, in comments) from the rows, never copied from Tally's output.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    fbeta_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.metrics import log_loss as sk_log_loss

from helpers import assert_undefined, quiet
from tally.counts import INVALID_REASONS, bucket_of, count_binary
from tally.metrics import MetricValue
from tally.metrics.binary import binary_metrics

TOL = 1e-12
SEEDS = [0, 1, 2, 3, 4]
THRESHOLDS = (0.0, 0.1, 0.25, 0.37, 0.5, 0.73, 0.9, 1.0)
THRESHOLDED = [
    "tp",
    "fp",
    "tn",
    "fn",
    "precision",
    "recall",
    "specificity",
    "f1",
    "f_beta",
    "accuracy",
    "balanced_accuracy",
    "mcc",
]


# --- helpers ----------------------------------------------------------------------------------


class Metrics:
    """binary_metrics of rows, looked up by (name, threshold)."""

    def __init__(self, y, s, buckets: int, thresholds=(), beta: float | None = None):
        self.counts = count_binary(
            np.asarray(y, np.float64), np.asarray(s, np.float64), buckets, thresholds
        )
        self.values: list[MetricValue] = binary_metrics(self.counts, beta=beta)
        keys = Counter((v.metric, v.threshold) for v in self.values)
        duplicated = [k for k, n in keys.items() if n > 1]
        assert not duplicated, f"metrics listed more than once: {duplicated}"
        self.by_key = {(v.metric, v.threshold): v for v in self.values}

    def get(self, name: str, threshold: float | None = None) -> MetricValue:
        return self.by_key[(name, threshold)]

    def value(self, name: str, threshold: float | None = None) -> float | None:
        return self.get(name, threshold).value


def assert_close(ours: float | None, reference: float, what: str = "", tol: float = TOL) -> None:
    assert ours is not None, f"{what}: ours undefined, sklearn {reference}"
    assert not math.isnan(reference), f"{what}: sklearn undefined, ours {ours}"
    assert abs(ours - reference) <= tol, f"{what}: ours {ours!r} sklearn {reference!r}"


def random_rows(seed: int, n: int, positive_rate: float = 0.3, decimals: int | None = 2):
    """Labels and overlapping class score distributions in [0, 1]; rounded scores tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_rate).astype(np.int64)
    s = np.clip(rng.normal(0.35 + 0.25 * y, 0.2), 0.0, 1.0)
    if decimals is not None:
        s = np.round(s, decimals)
    return y, s


def one_score_per_bucket(s: np.ndarray, buckets: int) -> bool:
    b = bucket_of(s, buckets)
    return all(np.unique(s[b == k]).size == 1 for k in np.unique(b))


# datasets for the threshold metrics: name -> rows
def _datasets():
    out = {}
    for seed in SEEDS:
        out[f"ties-{seed}"] = random_rows(seed, 500)
        out[f"skewed-{seed}"] = random_rows(100 + seed, 3000, positive_rate=0.01)
        out[f"tiny-{seed}"] = random_rows(200 + seed, 2 + seed % 4)  # 2-5 rows
    out["constant"] = (np.array([0, 1, 1, 0, 1]), np.full(5, 0.5))
    out["constant-zero"] = (np.array([0, 1, 0]), np.zeros(3))
    out["constant-one"] = (np.array([0, 1, 0]), np.ones(3))
    out["all-positive"] = (np.ones(6, np.int64), np.array([0.0, 0.2, 0.5, 0.5, 0.9, 1.0]))
    out["all-negative"] = (np.zeros(6, np.int64), np.array([0.0, 0.2, 0.5, 0.5, 0.9, 1.0]))
    out["single-row"] = (np.array([1]), np.array([0.3]))
    out["empty"] = (np.zeros(0, np.int64), np.zeros(0))
    return out


DATASETS = _datasets()


# --- threshold metrics ------------------------------------------------------------------------


def sklearn_at(y, s, t, beta):
    """(value, denominator) of each thresholded metric per sklearn; value NaN if undefined."""
    pred = (s >= t).astype(np.int64)
    n = len(y)
    # sklearn refuses empty input: there every count is 0
    matrix = confusion_matrix(y, pred, labels=[0, 1]) if n else np.zeros((2, 2), np.int64)
    tn, fp, fn, tp = (int(x) for x in matrix.ravel())
    nan = math.nan
    both = tp + fn > 0 and tn + fp > 0
    mcc_den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
    return {
        "tp": (tp, 1),
        "fp": (fp, 1),
        "tn": (tn, 1),
        "fn": (fn, 1),
        "precision": (quiet(precision_score, y, pred, zero_division=nan) if n else nan, tp + fp),
        "recall": (quiet(recall_score, y, pred, zero_division=nan) if n else nan, tp + fn),
        "specificity": (
            quiet(recall_score, y, pred, pos_label=0, zero_division=nan) if n else nan,
            tn + fp,
        ),
        "f1": (quiet(f1_score, y, pred, zero_division=nan) if n else nan, tp + fp + fn),
        "f_beta": (
            quiet(fbeta_score, y, pred, beta=beta, zero_division=nan) if n else nan,
            tp + fp + fn,
        ),
        "accuracy": (accuracy_score(y, pred) if n else nan, n),
        # sklearn averages the recall of the classes present; Tally needs both classes
        "balanced_accuracy": (quiet(balanced_accuracy_score, y, pred) if both else nan, both),
        # sklearn returns 0 on an empty confusion row/column; Tally writes null
        "mcc": (quiet(matthews_corrcoef, y, pred) if mcc_den else nan, mcc_den),
    }


@pytest.mark.parametrize("beta", [0.5, 2.0])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_threshold_metrics_match_sklearn(name, beta):
    y, s = DATASETS[name]
    thresholds = (*THRESHOLDS, *np.unique(s)[:5].tolist())  # thresholds equal to tied scores
    ours = Metrics(y, s, buckets=100, thresholds=tuple(dict.fromkeys(thresholds)), beta=beta)
    for t in dict.fromkeys(thresholds):
        reference = sklearn_at(y, s, t, beta)
        for metric in THRESHOLDED:
            expected, denominator = reference[metric]
            got = ours.get(metric, t)
            what = f"{metric}@{t} on {name}"
            if not denominator:
                # the zero-denominator case: undefined, with a reason (sklearn: 0 + warning)
                assert_undefined(got)
                assert math.isnan(expected), what
            else:
                assert got.reason is None, what
                assert_close(got.value, float(expected), what)


def test_threshold_metrics_without_beta_have_no_f_beta():
    y, s = DATASETS["ties-0"]
    m = Metrics(y, s, buckets=100, thresholds=(0.5,))
    assert not any(v.metric == "f_beta" for v in m.values)


def test_undefined_threshold_metrics_are_the_zero_denominator_cases():
    # Threshold above every score: nothing predicted positive -> precision undefined.
    y = np.array([0, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    m = Metrics(y, s, buckets=10, thresholds=(0.5, 0.0))
    for metric in ("precision", "mcc"):
        assert_undefined(m.get(metric, 0.5))
    assert m.value("tp", 0.5) == 0 and m.value("fp", 0.5) == 0
    # every row predicted positive -> the "predicted negative" column is empty
    assert_undefined(m.get("mcc", 0.0))
    assert m.value("precision", 0.0) == 0.5
    assert m.value("recall", 0.5) == 0.0
    assert m.value("specificity", 0.5) == 1.0
    assert m.value("f1", 0.5) == 0.0  # defined: 2tp + fp + fn = 2 > 0
    # no positive rows and none predicted positive -> F1 undefined
    m = Metrics([0, 0], [0.1, 0.2], buckets=10, thresholds=(0.5,), beta=2.0)
    for metric in ("precision", "recall", "f1", "f_beta", "balanced_accuracy", "mcc"):
        assert_undefined(m.get(metric, 0.5))
    assert m.value("specificity", 0.5) == 1.0
    assert m.value("accuracy", 0.5) == 1.0


# --- ROC AUC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("buckets", [16, 100])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("positive_rate", [0.3, 0.01])
def test_roc_auc_within_error_bound_of_sklearn(seed, buckets, positive_rate):
    # continuous scores spread within each bucket: the bucketed value is approximate
    y, s = random_rows(seed, 4000, positive_rate=positive_rate, decimals=None)
    m = Metrics(y, s, buckets)
    auc, bound = m.value("roc_auc"), m.value("roc_auc_error_bound")
    exact = roc_auc_score(y, s)
    assert bound is not None and 0 < bound <= 0.5
    assert abs(auc - exact) <= bound + TOL, (auc, exact, bound)
    assert 0.0 <= auc <= 1.0


def test_roc_auc_bound_is_not_vacuous():
    # All rows in one bucket, classes perfectly separated by the raw score: the bucketed
    # AUC counts every pair as a tie (0.5) while the exact AUC is 1. The bound says 0.5:
    # the error reaches it.
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4])
    m = Metrics(y, s, buckets=2)
    assert roc_auc_score(y, s) == 1.0
    assert m.value("roc_auc") == 0.5
    assert m.value("roc_auc_error_bound") == 0.5
    # B = 3: buckets 0, 0, 0, 1; bucket 0 holds 2 negatives and 1 positive. Bucketed AUC
    # (2 * 0.5 + 2) / 4 = 0.75, bound 0.5 * 2 / 4 = 0.25, exact 1: the error is the bound.
    m = Metrics(y, s, buckets=3)
    assert m.value("roc_auc") == pytest.approx(0.75, abs=TOL)
    assert m.value("roc_auc_error_bound") == pytest.approx(0.25, abs=TOL)
    # with enough buckets the classes separate and the bound shrinks to 0
    m = Metrics(y, s, buckets=10)
    assert m.value("roc_auc_error_bound") == 0.0
    assert abs(m.value("roc_auc") - 1.0) <= TOL


@pytest.mark.parametrize("buckets", [10, 16, 1000, 65536])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("positive_rate", [0.4, 0.01])
def test_roc_auc_exact_with_one_score_per_bucket(seed, buckets, positive_rate):
    rng = np.random.default_rng(seed)
    n = 3000
    y = (rng.random(n) < positive_rate).astype(np.int64)
    # scores k/B (k < B), many rows per score: ties within a bucket, one score per bucket
    k = np.clip(np.round(rng.normal(0.4 + 0.2 * y, 0.2) * buckets), 0, buckets - 1)
    s = k.astype(np.int64) / buckets
    assert one_score_per_bucket(s, buckets)
    m = Metrics(y, s, buckets)
    assert_close(m.value("roc_auc"), roc_auc_score(y, s), "roc_auc")
    # the bound still counts tied pairs (it cannot know they are ties), and holds
    assert abs(m.value("roc_auc") - roc_auc_score(y, s)) <= m.value("roc_auc_error_bound")


@pytest.mark.parametrize("name", ["constant", "constant-zero", "constant-one"])
def test_roc_auc_constant_scores(name):
    y, s = DATASETS[name]
    m = Metrics(y, s, buckets=100)
    assert roc_auc_score(y, s) == 0.5
    assert_close(m.value("roc_auc"), 0.5, "roc_auc")
    assert_close(m.value("roc_auc"), roc_auc_score(y, s), "roc_auc")


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_tiny_inputs(seed):
    rng = np.random.default_rng(300 + seed)
    n = 2 + seed % 4
    y = np.concatenate([[0, 1], rng.integers(0, 2, n - 2)])
    s = rng.integers(0, 8, n) / 8  # B = 8: one score per bucket
    m = Metrics(y, s, buckets=8)
    assert_close(m.value("roc_auc"), roc_auc_score(y, s), "roc_auc")


# --- average precision ------------------------------------------------------------------------


@pytest.mark.parametrize("buckets", [10, 16, 100, 1000])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("positive_rate", [0.3, 0.01])
def test_pr_auc_matches_sklearn_with_one_score_per_bucket(seed, buckets, positive_rate):
    rng = np.random.default_rng(seed)
    n = 3000
    y = (rng.random(n) < positive_rate).astype(np.int64)
    k = np.clip(np.round(rng.normal(0.4 + 0.2 * y, 0.2) * buckets), 0, buckets - 1)
    s = (k + 0.37) / buckets  # inside bucket k, away from its edges; ties within it
    assert one_score_per_bucket(s, buckets)
    m = Metrics(y, s, buckets)
    assert_close(m.value("pr_auc"), average_precision_score(y, s), "pr_auc")


@pytest.mark.parametrize("seed", SEEDS)
def test_pr_auc_tiny_and_constant(seed):
    rng = np.random.default_rng(400 + seed)
    n = 2 + seed % 4
    y = np.concatenate([[1, 0], rng.integers(0, 2, n - 2)])
    s = (rng.integers(0, 4, n) + 0.5) / 4
    assert_close(Metrics(y, s, 4).value("pr_auc"), average_precision_score(y, s), "pr_auc")
    y, s = DATASETS["constant"]
    assert_close(Metrics(y, s, 100).value("pr_auc"), average_precision_score(y, s), "pr_auc")


# --- best F1 ----------------------------------------------------------------------------------


def sklearn_best_f1_over_bucket_edges(y, s, buckets):
    """max over lower edges k/B of the non-empty buckets k of sklearn's F1 at score >= k/B."""
    k = np.minimum(np.floor(s * buckets), buckets - 1).astype(np.int64)
    edges = [int(b) / buckets for b in np.unique(k)]
    f1 = {t: quiet(f1_score, y, (s >= t).astype(np.int64), zero_division=0.0) for t in edges}
    return max(f1.values()), f1


def check_best_f1(y, s, buckets):
    m = Metrics(y, s, buckets)
    best, threshold = m.value("best_f1"), m.value("best_f1_threshold")
    expected, per_edge = sklearn_best_f1_over_bucket_edges(y, s, buckets)
    assert_close(best, expected, "best_f1")
    # the reported threshold reaches that F1 when applied to the raw scores
    at_threshold = f1_score(y, (s >= threshold).astype(np.int64))
    assert_close(at_threshold, best, f"sklearn F1 at best_f1_threshold={threshold}")
    # ties: the highest threshold reaching the maximum wins
    reaching = [t for t, f in per_edge.items() if abs(f - expected) <= TOL]
    assert threshold == max(reaching)


@pytest.mark.parametrize("buckets", [8, 16, 64, 1024])
@pytest.mark.parametrize("seed", SEEDS)
def test_best_f1_matches_sklearn(seed, buckets):
    check_best_f1(*random_rows(seed, 1000), buckets)  # 2-decimal scores, ties
    check_best_f1(*random_rows(seed, 1000, decimals=None), buckets)
    check_best_f1(*random_rows(seed, 3000, positive_rate=0.01), buckets)


@pytest.mark.parametrize("seed", SEEDS)
def test_best_f1_tiny_and_constant(seed):
    y, s = DATASETS[f"tiny-{seed}"]
    if y.sum() > 0:
        check_best_f1(y, s, 16)
    for name in ("constant", "constant-zero", "constant-one", "all-positive"):
        check_best_f1(*DATASETS[name], 16)


def test_best_f1_threshold_reproduces_best_f1_when_b_is_not_a_power_of_two():
    y = np.array([0, 1])
    s = np.array([0.29, 0.295])  # 0.29 * 100 == 28.999999999999996, yet 0.29 >= 29/100
    check_best_f1(y, s, 100)
    # Every edge k/B sits in bucket k, whatever rounding s * B does.
    for b in (3, 7, 10, 100, 1000, 65535):
        edges = np.arange(b) / b
        assert np.array_equal(bucket_of(edges, b), np.arange(b))
        below = np.nextafter(edges[1:], 0)
        assert np.array_equal(bucket_of(below, b), np.arange(b - 1))


# --- log loss and Brier -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("positive_rate", [0.3, 0.01])
def test_log_loss_and_brier_match_sklearn(seed, positive_rate):
    rng = np.random.default_rng(seed)
    n = 2000
    y = (rng.random(n) < positive_rate).astype(np.int64)
    s = rng.random(n)
    # exact 0 and 1 on both classes, so clipping to [eps, 1 - eps] matters
    s[:8] = [0.0, 1.0, 0.0, 1.0, 1e-20, 1 - 1e-17, 0.5, 0.5]
    y[:8] = [0, 0, 1, 1, 1, 0, 0, 1]
    m = Metrics(y, s, buckets=100)
    assert_close(m.value("log_loss"), sk_log_loss(y, s, labels=[0, 1]), "log_loss")
    assert_close(m.value("brier"), brier_score_loss(y, s), "brier")


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_log_loss_and_brier_every_dataset(name):
    y, s = DATASETS[name]
    m = Metrics(y, s, buckets=100)
    if len(y) == 0:
        assert_undefined(m.get("log_loss"))
        assert_undefined(m.get("brier"))
        return
    assert_close(m.value("log_loss"), sk_log_loss(y, s, labels=[0, 1]), "log_loss")
    assert_close(m.value("brier"), quiet(brier_score_loss, y, s), "brier")


# --- undefined cases and the shape of the output ----------------------------------------------


def check_output_shape(m: Metrics, thresholds, beta) -> None:
    single = [
        "count",
        "positives",
        "negatives",
        "invalid_rows",
        *(f"invalid_rows_{r}" for r in INVALID_REASONS),
        "roc_auc",
        "roc_auc_error_bound",
        "pr_auc",
        "best_f1",
        "best_f1_threshold",
        "roc_auc_std",
        "roc_auc_ci_low",
        "roc_auc_ci_high",
        "log_loss",
        "brier",
        "ece",
        "mce",
    ]
    per_threshold = [x for x in THRESHOLDED if beta is not None or x != "f_beta"]
    expected = Counter(
        [(name, None) for name in single]
        + [(name, t) for t in thresholds for name in per_threshold]
    )
    assert Counter((v.metric, v.threshold) for v in m.values) == expected
    for v in m.values:
        if v.value is None:
            assert isinstance(v.reason, str) and v.reason.strip(), v
        else:
            assert v.reason is None, v
            assert isinstance(v.value, float), v
            assert math.isfinite(v.value), v
    for name in ("roc_auc", "roc_auc_error_bound", "pr_auc", "best_f1"):
        assert m.value(name) != -0.5  # no magic numbers for "undefined"


@pytest.mark.parametrize("beta", [None, 1.5])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_output_has_each_metric_once_and_no_nan(name, beta):
    y, s = DATASETS[name]
    thresholds = (0.0, 0.5, 1.0)
    check_output_shape(Metrics(y, s, 100, thresholds, beta), thresholds, beta)


def test_all_positive():
    y, s = DATASETS["all-positive"]
    m = Metrics(y, s, 100, (0.5,))
    for name in ("roc_auc", "roc_auc_error_bound"):
        assert_undefined(m.get(name))
    assert m.value("count") == 6 and m.value("positives") == 6 and m.value("negatives") == 0
    assert_close(m.value("pr_auc"), average_precision_score(y, s), "pr_auc")  # 1.0
    assert m.value("best_f1") == 1.0 and m.value("best_f1_threshold") == 0.0
    for name in ("specificity", "balanced_accuracy", "mcc"):
        assert_undefined(m.get(name, 0.5))


def test_all_negative():
    y, s = DATASETS["all-negative"]
    m = Metrics(y, s, 100, (0.5,))
    for name in ("roc_auc", "roc_auc_error_bound", "pr_auc", "best_f1", "best_f1_threshold"):
        assert_undefined(m.get(name))
    assert m.value("count") == 6 and m.value("positives") == 0 and m.value("negatives") == 6
    for name in ("recall", "balanced_accuracy", "mcc"):
        assert_undefined(m.get(name, 0.5))
    # 4 rows predicted positive, all wrong: precision and F1 defined, 0
    assert m.value("precision", 0.5) == 0.0
    assert m.value("f1", 0.5) == 0.0
    # nothing predicted positive at t > 1 and no positives: F1 undefined
    m = Metrics(y, s, 100, (1.0,))
    assert m.value("fp", 1.0) == 1.0
    m = Metrics(y[s < 1.0], s[s < 1.0], 100, (1.0,))
    for name in ("precision", "recall", "f1"):
        assert_undefined(m.get(name, 1.0))


@pytest.mark.parametrize("rows", ["empty", "all-invalid"])
def test_no_valid_rows(rows):
    if rows == "empty":
        y, s = np.zeros(0), np.zeros(0)
    else:
        y, s = np.array([np.nan, 1.0, 2.0]), np.array([0.5, np.nan, 0.5])
    thresholds = (0.0, 0.5, 1.0)
    m = Metrics(y, s, 100, thresholds, beta=2.0)
    assert m.value("count") == 0.0
    assert m.value("positives") == 0.0 and m.value("negatives") == 0.0
    assert m.value("invalid_rows") == len(y)
    for name in (
        "roc_auc",
        "roc_auc_error_bound",
        "pr_auc",
        "best_f1",
        "best_f1_threshold",
        "log_loss",
        "brier",
    ):
        assert_undefined(m.get(name))
    for t in thresholds:
        for name in ("tp", "fp", "tn", "fn"):
            assert m.value(name, t) == 0.0
        for name in THRESHOLDED[4:]:
            assert_undefined(m.get(name, t))
    check_output_shape(m, thresholds, 2.0)


def test_invalid_rows_reported_by_reason():
    y = np.array([1, 0, np.nan, 1, 0, 3])
    s = np.array([0.9, 0.1, 0.5, np.inf, 1.2, 0.5])
    m = Metrics(y, s, 10)
    assert m.value("count") == 2 and m.value("invalid_rows") == 4
    assert m.value("invalid_rows_null_label") == 1
    assert m.value("invalid_rows_null_score") == 0
    assert m.value("invalid_rows_nan_score") == 0
    assert m.value("invalid_rows_infinite_score") == 1
    assert m.value("invalid_rows_score_out_of_range") == 1
    assert m.value("invalid_rows_invalid_label") == 1
    assert m.value("roc_auc") == 1.0


# --- a case small enough to do by hand --------------------------------------------------------


def test_hand_computed_four_rows():
    # y = [0, 0, 1, 1], s = [0.1, 0.4, 0.35, 0.8], B = 20: buckets 2, 8, 7, 16 (distinct).
    # ROC AUC: pairs (pos, neg): (0.35, 0.1) win, (0.35, 0.4) lose, (0.8, 0.1) win,
    #   (0.8, 0.4) win -> 3/4 = 0.75; no bucket mixes classes, so the bound is 0.
    # AP: descending 0.8(+) 0.4(-) 0.35(+) 0.1(-): recall 1/2 at precision 1, then
    #   recall 1 at precision 2/3 -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
    # best F1 over edges: 0.8 -> 2/3, 0.4 -> 2/4, 0.35 -> 4/5, 0.1 -> 4/6: 0.8 at 0.35.
    # At t = 0.5: tp 1, fp 0, tn 2, fn 1: precision 1, recall 1/2, specificity 1,
    #   F1 2/3, accuracy 3/4, balanced 3/4, MCC (1*2 - 0*1) / sqrt(1*2*2*3) = 1/sqrt(3).
    # Brier: (0.01 + 0.16 + 0.4225 + 0.04) / 4 = 0.158125.
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    m = Metrics(y, s, 20, (0.5,))
    assert roc_auc_score(y, s) == pytest.approx(0.75)  # the reference agrees with the hand
    assert m.value("roc_auc") == pytest.approx(0.75, abs=TOL)
    assert m.value("roc_auc_error_bound") == 0.0
    assert m.value("pr_auc") == pytest.approx(5 / 6, abs=TOL)
    assert m.value("best_f1") == pytest.approx(0.8, abs=TOL)
    assert m.value("best_f1_threshold") == pytest.approx(0.35, abs=TOL)
    expected = {
        "tp": 1,
        "fp": 0,
        "tn": 2,
        "fn": 1,
        "precision": 1.0,
        "recall": 0.5,
        "specificity": 1.0,
        "f1": 2 / 3,
        "accuracy": 0.75,
        "balanced_accuracy": 0.75,
        "mcc": 1 / math.sqrt(3),
    }
    for name, value in expected.items():
        assert m.value(name, 0.5) == pytest.approx(value, abs=TOL), name
    assert m.value("brier") == pytest.approx(0.158125, abs=TOL)
    hand_log_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert m.value("log_loss") == pytest.approx(hand_log_loss, abs=TOL)


def test_billions_of_rows_do_not_overflow():
    """Counts of ~5e9 per cell: P·N and the MCC products pass int64 (9.2e18). The reference is
    scikit-learn on one row per cell with the count as its sample weight (float64 sums)."""
    from sklearn.metrics import matthews_corrcoef

    from tally.counts import BinaryCounts

    big = 5_000_000_000
    pos = np.array([1, 2, 3, 4], np.int64) * big  # buckets of 4: scores 0, .25, .5, .75
    neg = np.array([4, 3, 2, 1], np.int64) * big
    counts = BinaryCounts(
        pos=pos,
        neg=neg,
        thresholds=(0.5,),
        tp_at=np.array([pos[2:].sum()]),
        fp_at=np.array([neg[2:].sum()]),
    )
    assert counts.positives * counts.negatives > np.iinfo(np.int64).max
    got = {(m.metric, m.threshold): m.value for m in binary_metrics(counts)}
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0, 0.25, 0.5, 0.75] * 2)
    w = np.concatenate([pos, neg]).astype(np.float64)
    assert got[("roc_auc", None)] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    predicted = s >= 0.5
    assert got[("mcc", 0.5)] == pytest.approx(
        matthews_corrcoef(y, predicted, sample_weight=w), abs=1e-12
    )
    assert got[("tp", 0.5)] == 7 * big and got[("count", None)] == 20 * big
