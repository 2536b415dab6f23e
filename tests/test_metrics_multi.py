"""Multi-label and multiclass metrics from count tables, checked against scikit-learn.

Every expected value is computed by scikit-learn from the same rows (or, for the
segmentation means, by a numpy formula written here from sklearn's
``confusion_matrix``), never copied from Tally's output. Where Tally writes null
and sklearn substitutes a number (``zero_division``), the test says so.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    hamming_loss,
    jaccard_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

from helpers import class_names, multilabel_rows, quiet
from tally.counts import bucket_of
from tally.counts_multi import (
    MulticlassCounts,
    MultilabelCounts,
    argmax_predictions,
    count_multiclass,
    count_multilabel,
)
from tally.metrics import MetricValue
from tally.metrics.multiclass import confusion_cells, multiclass_metrics
from tally.metrics.multilabel import multilabel_metrics

TOL = 1e-12
NAN = math.nan
THRESHOLDS = (0.0, 0.25, 0.5, 0.77, 1.0)
PER_CLASS_AT_T = ("tp", "fp", "fn", "tn", "precision", "recall", "f1", "support")
OVER_CLASSES_AT_T = (
    "cp",
    "cr",
    "cf1",
    "op",
    "or",
    "of1",
    "macro_f1",
    "micro_f1",
    "subset_accuracy",
    "hamming_loss",
)


# --- helpers ----------------------------------------------------------------------------------


class Metrics:
    """A metric list looked up by (name, threshold, class)."""

    def __init__(self, values: list[MetricValue]):
        self.values = values
        keys = Counter((v.metric, v.threshold, v.class_) for v in values)
        duplicated = [k for k, n in keys.items() if n > 1]
        assert not duplicated, f"metrics listed more than once: {duplicated}"
        self.by_key = {(v.metric, v.threshold, v.class_): v for v in values}
        for v in values:
            if v.value is None:
                assert isinstance(v.reason, str) and v.reason.strip(), v
            else:
                assert v.reason is None and isinstance(v.value, float), v
                assert math.isfinite(v.value), v

    def get(self, name: str, threshold: float | None = None, class_: str | None = None):
        return self.by_key[(name, threshold, class_)]

    def value(self, name: str, threshold: float | None = None, class_: str | None = None):
        return self.get(name, threshold, class_).value


def check(m: MetricValue, reference: float, tol: float = TOL) -> None:
    """Ours equals sklearn's value, and is null exactly where sklearn's is NaN."""
    reference = float(reference)
    if math.isnan(reference):
        assert m.value is None, f"{m}: sklearn undefined"
        assert m.reason, m
    else:
        assert m.value is not None, f"{m}: sklearn {reference}"
        assert abs(m.value - reference) <= tol, f"{m}: sklearn {reference!r}"


def harmonic(a: float, b: float) -> float:
    if math.isnan(a) or math.isnan(b) or a + b == 0:
        return NAN
    return 2 * a * b / (a + b)


# --- multi-label datasets ---------------------------------------------------------------------


def _multilabel_datasets():
    out = {}
    for seed in range(3):
        out[f"ties-{seed}"] = multilabel_rows(seed, 400, 5)
        out[f"continuous-{seed}"] = multilabel_rows(10 + seed, 400, 3, decimals=None)
    y, s = multilabel_rows(20, 300, 4)
    y[:, 2] = 0
    out["class-never-present"] = (y, s)
    y, s = multilabel_rows(21, 300, 4)
    y[:, 1] = 1
    out["class-always-present"] = (y, s)
    y, s = multilabel_rows(22, 300, 4)
    s[:, 0] = s[:, 0] * 0.2  # below 0.25: never predicted at t >= 0.25
    out["class-never-predicted"] = (y, s)
    y, s = multilabel_rows(23, 200, 3)
    out["nothing-predicted"] = (y, np.full_like(s, 0.1))
    y, s = multilabel_rows(24, 200, 3)
    out["no-positives"] = (np.zeros_like(y), s)
    out["one-row"] = (np.array([[1, 0, 1]]), np.array([[0.6, 0.3, 0.2]]))
    out["one-class"] = multilabel_rows(25, 200, 1)
    out["two-classes"] = multilabel_rows(26, 200, 2)
    out["tiny"] = multilabel_rows(27, 3, 2)
    return out


MULTILABEL = _multilabel_datasets()


def sklearn_multilabel_at(y: np.ndarray, s: np.ndarray, t: float) -> dict:
    """Every thresholded multi-label metric per sklearn; NaN where it is undefined."""
    pred = (s >= t).astype(np.int64)
    k = y.shape[1]
    # sklearn reads a single indicator column as binary labels: score class 1 only
    yt, yp, kw = (y[:, 0], pred[:, 0], {"labels": [1]}) if k == 1 else (y, pred, {})
    p, r, f, support = quiet(
        precision_recall_fscore_support, yt, yp, average=None, zero_division=NAN, **kw
    )
    mcm = multilabel_confusion_matrix(yt, yp, **kw)  # per class [[tn, fp], [fn, tp]]
    out = {
        "per_class": {
            "tp": mcm[:, 1, 1],
            "fp": mcm[:, 0, 1],
            "fn": mcm[:, 1, 0],
            "tn": mcm[:, 0, 0],
            "precision": p,
            "recall": r,
            "f1": f,
            "support": support,
        }
    }
    cp = quiet(precision_score, yt, yp, average="macro", zero_division=0, **kw)
    cr = quiet(recall_score, yt, yp, average="macro", zero_division=0, **kw)
    macro_f1 = quiet(f1_score, yt, yp, average="macro", zero_division=0, **kw)
    # sklearn's zero_division=0 mean of nothing but zero-division classes is 0; Tally: null
    cp = NAN if np.all(np.isnan(p)) else cp
    cr = NAN if np.all(np.isnan(r)) else cr
    macro_f1 = NAN if np.all(np.isnan(f)) else macro_f1
    op = quiet(precision_score, yt, yp, average="micro", zero_division=NAN, **kw)
    or_ = quiet(recall_score, yt, yp, average="micro", zero_division=NAN, **kw)
    out.update(
        cp=cp,
        cr=cr,
        cf1=harmonic(cp, cr),
        op=op,
        # "or" is a keyword, hence the dict
        **{"or": or_},
        of1=harmonic(op, or_),
        macro_f1=macro_f1,
        micro_f1=quiet(f1_score, yt, yp, average="micro", zero_division=NAN, **kw),
        subset_accuracy=accuracy_score(y, pred),
        hamming_loss=hamming_loss(y, pred),
    )
    return out


def multilabel_metrics_of(y, s, buckets=100, thresholds=THRESHOLDS) -> Metrics:
    k = y.shape[1]
    return Metrics(multilabel_metrics(count_multilabel(y, s, class_names(k), buckets, thresholds)))


@pytest.mark.parametrize("name", sorted(MULTILABEL))
def test_multilabel_thresholded_metrics_match_sklearn(name):
    y, s = MULTILABEL[name]
    m = multilabel_metrics_of(y, s)
    assert m.value("count") == len(y)
    for t in THRESHOLDS:
        reference = sklearn_multilabel_at(y, s, t)
        for metric, per_class in reference.pop("per_class").items():
            for k, class_name in enumerate(class_names(y.shape[1])):
                check(m.get(metric, t, class_name), per_class[k])
        for metric, value in reference.items():
            check(m.get(metric, t), value)


def test_multilabel_undefined_averages():
    # every class: no rows predicted positive -> precision null for each, CP null (sklearn 0)
    y, s = MULTILABEL["nothing-predicted"]
    m = multilabel_metrics_of(y, s)
    for name in ("cp", "cf1", "op", "of1"):
        assert m.value(name, 0.5) is None and m.get(name, 0.5).reason
    assert m.value("cr", 0.5) == 0.0 and m.value("or", 0.5) == 0.0
    assert m.value("macro_f1", 0.5) == 0.0  # F1 defined (there are positives), 0
    assert quiet(precision_score, y, (s >= 0.5).astype(int), average="macro") == 0.0
    # no positives at all: recall null everywhere, CR and OR null; at t = 0 all predicted
    y, s = MULTILABEL["no-positives"]
    m = multilabel_metrics_of(y, s)
    for name in ("cr", "or", "cf1", "of1"):
        assert m.value(name, 0.0) is None
    assert m.value("cp", 0.0) == 0.0 and m.value("op", 0.0) == 0.0
    assert m.value("micro_f1", 0.0) == 0.0
    assert m.value("hamming_loss", 0.0) == 1.0  # every label wrong
    # CP = CR = 0 with both defined: CF1 is 0/0
    y = np.array([[1, 0], [0, 1]])
    s = np.array([[0.1, 0.9], [0.9, 0.1]])
    m = multilabel_metrics_of(y, s, thresholds=(0.5,))
    assert m.value("cp", 0.5) == 0.0 and m.value("cr", 0.5) == 0.0
    assert m.value("cf1", 0.5) is None and m.value("of1", 0.5) is None
    assert m.value("micro_f1", 0.5) == 0.0  # 2·0 / (0 + 2 + 2): defined


def test_multilabel_hand_computed():
    # K = 2, t = 0.5. Rows (labels | scores): (1,0 | .9,.2) (0,1 | .6,.7) (1,1 | .3,.8)
    # predictions: (1,0) (1,1) (0,1). class a: tp 1 fp 1 fn 1 tn 0; class b: tp 2 fp 0 fn 0
    # tn 1. precision a 1/2, b 1; recall a 1/2, b 1; CP = CR = 3/4, CF1 = 3/4.
    # OP = 3/4, OR = 3/4, OF1 = micro F1 = 6/8. exact rows: row 0 only -> 1/3.
    # hamming: 2 wrong labels of 6 -> 1/3.
    y = np.array([[1, 0], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.6, 0.7], [0.3, 0.8]])
    c = count_multilabel(y, s, ("a", "b"), 10, (0.5,))
    m = Metrics(multilabel_metrics(c))
    expected = {"cp": 0.75, "cr": 0.75, "cf1": 0.75, "op": 0.75, "or": 0.75, "of1": 0.75}
    expected |= {"micro_f1": 0.75, "macro_f1": (0.5 + 1) / 2}
    expected |= {"subset_accuracy": 1 / 3, "hamming_loss": 1 / 3}
    for name, value in expected.items():
        assert m.value(name, 0.5) == pytest.approx(value, abs=TOL), name
    assert [m.value(x, 0.5, "a") for x in PER_CLASS_AT_T] == [1, 1, 1, 0, 0.5, 0.5, 0.5, 2]
    assert [m.value(x, 0.5, "b") for x in PER_CLASS_AT_T] == [2, 0, 0, 1, 1, 1, 1, 2]


# --- multi-label ranking metrics --------------------------------------------------------------


@pytest.mark.parametrize("buckets", [16, 100])
@pytest.mark.parametrize("seed", range(3))
def test_multilabel_roc_auc_within_bound_of_sklearn(seed, buckets):
    y, s = multilabel_rows(seed, 1500, 4, decimals=None)
    y[:, 3] = 0  # a class without positives: AUC undefined, left out of the macro mean
    m = multilabel_metrics_of(y, s, buckets)
    exact, bounds = [], []
    for k, name in enumerate(class_names(4)):
        auc, bound = m.value("roc_auc", None, name), m.value("roc_auc_error_bound", None, name)
        if k == 3:
            assert auc is None and bound is None
            assert m.get("roc_auc", None, name).reason
            continue
        reference = roc_auc_score(y[:, k], s[:, k])
        assert 0 < bound <= 0.5
        assert abs(auc - reference) <= bound + TOL, (name, auc, reference, bound)
        exact.append(reference)
        bounds.append(bound)
    macro = m.value("macro_roc_auc")
    assert abs(macro - np.mean(exact)) <= np.mean(bounds) + TOL


@pytest.mark.parametrize("buckets", [10, 16, 100])
@pytest.mark.parametrize("seed", range(3))
def test_multilabel_ranking_exact_with_one_score_per_bucket(seed, buckets):
    rng = np.random.default_rng(seed)
    n, k = 1500, 4
    y = (rng.random((n, k)) < rng.uniform(0.02, 0.5, k)).astype(np.int64)
    bucket = np.clip(np.round(rng.normal(0.4 + 0.2 * y, 0.2) * buckets), 0, buckets - 1)
    s = (bucket + 0.37) / buckets  # inside bucket, away from its edges; ties within it
    for j in range(k):
        b = bucket_of(s[:, j], buckets)
        assert all(np.unique(s[b == x, j]).size == 1 for x in np.unique(b))
    m = multilabel_metrics_of(y, s, buckets)
    for j, name in enumerate(class_names(k)):
        check(m.get("roc_auc", None, name), roc_auc_score(y[:, j], s[:, j]))
        check(m.get("average_precision", None, name), average_precision_score(y[:, j], s[:, j]))
    # every class has both labels here: sklearn's macro averages apply as they are
    check(m.get("macro_roc_auc"), roc_auc_score(y, s, average="macro"))
    check(m.get("map"), average_precision_score(y, s, average="macro"))


def test_map_and_macro_auc_leave_out_undefined_classes():
    y, s = MULTILABEL["class-never-present"]  # class 2 has no positives
    m = multilabel_metrics_of(y, s, buckets=100)
    assert m.value("average_precision", None, "c2") is None
    present = [0, 1, 3]
    aps = [m.value("average_precision", None, class_names(4)[k]) for k in present]
    aucs = [m.value("roc_auc", None, class_names(4)[k]) for k in present]
    assert m.value("map") == pytest.approx(np.mean(aps), abs=TOL)
    assert m.value("macro_roc_auc") == pytest.approx(np.mean(aucs), abs=TOL)
    y, s = MULTILABEL["class-always-present"]  # class 1 has no negatives: AP yes, AUC no
    m = multilabel_metrics_of(y, s, buckets=100)
    assert m.value("roc_auc", None, "c1") is None
    assert m.value("average_precision", None, "c1") == 1.0
    y, s = MULTILABEL["no-positives"]
    m = multilabel_metrics_of(y, s)
    assert m.value("map") is None and m.value("macro_roc_auc") is None


# --- multi-label: shape of the output, empty input, weights -----------------------------------


def expected_multilabel_keys(classes, thresholds, reasons=()) -> Counter:
    single = ["count", "invalid_rows", *(f"invalid_rows_{r}" for r in reasons)]
    single += ["macro_roc_auc", "map"]
    keys = [(x, None, None) for x in single]
    keys += [
        (x, None, c)
        for c in classes
        for x in ("roc_auc", "roc_auc_error_bound", "average_precision")
    ]
    keys += [(x, t, c) for t in thresholds for c in classes for x in PER_CLASS_AT_T]
    keys += [(x, t, None) for t in thresholds for x in OVER_CLASSES_AT_T]
    return Counter(keys)


@pytest.mark.parametrize("name", sorted(MULTILABEL))
def test_multilabel_output_has_each_metric_once(name):
    y, s = MULTILABEL[name]
    m = multilabel_metrics_of(y, s)  # Metrics checks: no NaN, nulls have reasons
    actual = Counter((v.metric, v.threshold, v.class_) for v in m.values)
    assert actual == expected_multilabel_keys(class_names(y.shape[1]), THRESHOLDS)


def test_multilabel_empty_input():
    reasons = ("null_label", "invalid_label")
    empty = MultilabelCounts.empty(("a", "b"), 16, THRESHOLDS, reasons)
    counted = count_multilabel(np.zeros((0, 2)), np.zeros((0, 2)), ("a", "b"), 16, THRESHOLDS)
    assert (
        Metrics(multilabel_metrics(counted)).values
        == Metrics(multilabel_metrics(MultilabelCounts.empty(("a", "b"), 16, THRESHOLDS))).values
    )
    invalid = MultilabelCounts(
        **{**empty.__dict__, "invalid": {"null_label": 3, "invalid_label": 1}}
    )
    m = Metrics(multilabel_metrics(invalid))
    assert Counter((v.metric, v.threshold, v.class_) for v in m.values) == expected_multilabel_keys(
        ("a", "b"), THRESHOLDS, reasons
    )
    assert m.value("count") == 0 and m.value("invalid_rows") == 4
    assert m.value("invalid_rows_null_label") == 3
    for v in m.values:
        if v.metric in ("tp", "fp", "fn", "tn", "support"):
            assert v.value == 0.0
        elif not v.metric.startswith(("count", "invalid_rows")):
            assert v.value is None and v.reason, v


def weighted_multilabel_counts(y, s, w, classes, buckets, thresholds) -> MultilabelCounts:
    """Weighted tables built directly with numpy, to check the metrics are dtype-agnostic."""
    k = y.shape[1]
    pos, neg = np.zeros((k, buckets)), np.zeros((k, buckets))
    for j in range(k):
        b = bucket_of(s[:, j], buckets)
        np.add.at(pos[j], b[y[:, j] == 1], w[y[:, j] == 1])
        np.add.at(neg[j], b[y[:, j] == 0], w[y[:, j] == 0])
    pred = [s >= t for t in thresholds]
    return MultilabelCounts(
        classes=classes,
        thresholds=thresholds,
        pos=pos,
        neg=neg,
        tp_at=np.array([w @ (p & (y == 1)) for p in pred]),
        fp_at=np.array([w @ (p & (y == 0)) for p in pred]),
        fn_at=np.array([w @ (~p & (y == 1)) for p in pred]),
        exact_match_at=np.array([w @ np.all(p == (y == 1), axis=1) for p in pred]),
        rows=len(y),
    )


def test_multilabel_weighted_tables_match_sklearn_sample_weight():
    rng = np.random.default_rng(7)
    n, k, buckets = 600, 3, 20
    y = (rng.random((n, k)) < 0.35).astype(np.int64)
    bucket = np.clip(np.round(rng.normal(0.4 + 0.2 * y, 0.2) * buckets), 0, buckets - 1)
    s = (bucket + 0.5) / buckets  # one score per bucket: ranking metrics are exact
    w = rng.uniform(0.1, 3.0, n)
    c = weighted_multilabel_counts(y, s, w, class_names(k), buckets, (0.3, 0.6))
    m = Metrics(multilabel_metrics(c))
    assert m.value("count") == n
    for t in (0.3, 0.6):
        pred = (s >= t).astype(np.int64)
        p, r, f, support = precision_recall_fscore_support(y, pred, sample_weight=w)
        for j, name in enumerate(class_names(k)):
            check(m.get("precision", t, name), p[j], 1e-9)
            check(m.get("recall", t, name), r[j], 1e-9)
            check(m.get("f1", t, name), f[j], 1e-9)
            check(m.get("support", t, name), support[j], 1e-9)
        for name, fn, kw in [
            ("cp", precision_score, {"average": "macro"}),
            ("cr", recall_score, {"average": "macro"}),
            ("op", precision_score, {"average": "micro"}),
            ("macro_f1", f1_score, {"average": "macro"}),
            ("micro_f1", f1_score, {"average": "micro"}),
            ("subset_accuracy", accuracy_score, {}),
            ("hamming_loss", hamming_loss, {}),
        ]:
            check(m.get(name, t), fn(y, pred, sample_weight=w, **kw), 1e-9)
    for j, name in enumerate(class_names(k)):
        check(m.get("roc_auc", None, name), roc_auc_score(y[:, j], s[:, j], sample_weight=w), 1e-9)
        check(
            m.get("average_precision", None, name),
            average_precision_score(y[:, j], s[:, j], sample_weight=w),
            1e-9,
        )


# --- multiclass datasets ----------------------------------------------------------------------


def multiclass_rows(seed: int, n: int, k: int, p: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    y = rng.choice(k, size=n, p=p)
    s = rng.random((n, k))
    s[np.arange(n), y] += rng.random(n) * 0.8  # informative, continuous: no ties
    return y, s


def _multiclass_datasets():
    out = {}
    for seed in range(3):
        out[f"random-{seed}"] = multiclass_rows(seed, 500, 4)
        out[f"skewed-{seed}"] = multiclass_rows(
            10 + seed, 800, 6, np.array([0.8, 0.1, 0.05, 0.03, 0.015, 0.005])
        )
    out["class-never-present"] = multiclass_rows(20, 400, 5, np.array([0.3, 0.3, 0.2, 0.0, 0.2]))
    y, s = multiclass_rows(21, 400, 4)
    s[:, 2] = -1.0  # never the highest score: never predicted
    out["class-never-predicted"] = (y, s)
    y, s = multiclass_rows(22, 400, 4, np.array([0.5, 0.0, 0.25, 0.25]))
    s[:, 1] = -1.0
    out["class-absent-and-never-predicted"] = (y, s)
    out["one-row"] = (np.array([2]), np.array([[0.2, 0.5, 0.3]]))
    out["one-class"] = (np.zeros(50, np.int64), np.random.default_rng(23).random((50, 1)))
    out["two-classes"] = multiclass_rows(24, 300, 2)
    out["all-one-class"] = (np.zeros(40, np.int64), np.tile([0.9, 0.05, 0.05], (40, 1)))
    y, s = multiclass_rows(25, 200, 3)
    s = np.eye(3)[y] + 0.01 * np.random.default_rng(25).random((200, 3))
    out["perfect"] = (y, s)
    return out


MULTICLASS = _multiclass_datasets()
KS = (1, 2, 3)


def multiclass_metrics_of(y, s, ks=KS) -> tuple[Metrics, MulticlassCounts]:
    k = s.shape[1]
    c = count_multiclass(y, argmax_predictions(s), class_names(k), s, ks)
    return Metrics(multiclass_metrics(c)), c


def fcn_means(cm: np.ndarray) -> dict[str, float]:
    """mPA, mIoU, FWIoU as the FCN reference code computes them (nanmean over classes)."""
    cm = cm.astype(np.float64)
    diag, row, col = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        class_acc = diag / row
        iou = diag / (row + col - diag)
    freq = row / cm.sum()
    has = freq > 0
    return {
        "mpa": np.nanmean(class_acc),
        "miou": np.nanmean(iou),
        "fwiou": float(np.sum(freq[has] * iou[has])),
    }


@pytest.mark.parametrize("name", sorted(MULTICLASS))
def test_multiclass_metrics_match_sklearn(name):
    y, s = MULTICLASS[name]
    k = s.shape[1]
    labels = list(range(k))
    pred = argmax_predictions(s)
    m, _ = multiclass_metrics_of(y, s)
    assert m.value("count") == len(y)
    check(m.get("accuracy"), accuracy_score(y, pred))
    p, r, f, support = quiet(
        precision_recall_fscore_support, y, pred, labels=labels, average=None, zero_division=NAN
    )
    iou = quiet(jaccard_score, y, pred, labels=labels, average=None, zero_division=0)
    cm = quiet(confusion_matrix, y, pred, labels=labels)
    for j, class_name in enumerate(class_names(k)):
        check(m.get("precision", None, class_name), p[j])
        check(m.get("recall", None, class_name), r[j])
        check(m.get("f1", None, class_name), f[j])
        check(m.get("support", None, class_name), support[j])
        union = cm[j].sum() + cm[:, j].sum() - cm[j, j]
        check(m.get("iou", None, class_name), iou[j] if union else NAN)  # sklearn: 0 there
    # sklearn's default labels: the classes in y or pred, so no zero division
    for average in ("macro", "micro", "weighted"):
        check(m.get(f"{average}_f1"), f1_score(y, pred, average=average))
    check(m.get("cohen_kappa"), quiet(cohen_kappa_score, y, pred))
    for metric, value in fcn_means(cm).items():
        check(m.get(metric), value)
    for kk in KS:
        if k >= 3:
            reference = quiet(top_k_accuracy_score, y, s, k=kk, labels=labels)
        elif k == 2:  # sklearn's binary form: one score column, argmax on normalized scores
            p1 = s[:, 1] / s.sum(axis=1)
            reference = quiet(top_k_accuracy_score, y, p1, k=kk, labels=labels)
        else:
            reference = 1.0  # one class: always in the top k
        check(m.get("top_k_accuracy", float(kk)), reference)


def test_multiclass_absent_and_never_predicted_classes():
    y, s = MULTICLASS["class-absent-and-never-predicted"]  # class 1
    m, _ = multiclass_metrics_of(y, s)
    for metric in ("recall", "precision", "f1", "iou"):
        assert m.value(metric, None, "c1") is None and m.get(metric, None, "c1").reason
    assert m.value("support", None, "c1") == 0.0
    y, s = MULTICLASS["class-never-present"]  # class 3: predicted sometimes, never true
    m, _ = multiclass_metrics_of(y, s)
    assert m.value("recall", None, "c3") is None
    assert m.value("precision", None, "c3") == 0.0 and m.value("iou", None, "c3") == 0.0
    y, s = MULTICLASS["class-never-predicted"]  # class 2: true sometimes, never predicted
    m, _ = multiclass_metrics_of(y, s)
    assert m.value("precision", None, "c2") is None
    assert m.value("recall", None, "c2") == 0.0 and m.value("f1", None, "c2") == 0.0


def test_multiclass_undefined_kappa_and_k_beyond_classes():
    y, s = MULTICLASS["all-one-class"]
    m, _ = multiclass_metrics_of(y, s, ks=(1, 5))
    assert math.isnan(quiet(cohen_kappa_score, y, argmax_predictions(s)))
    assert m.value("cohen_kappa") is None and "chance" in m.get("cohen_kappa").reason
    assert m.value("accuracy") == 1.0 and m.value("miou") == 1.0
    assert m.value("top_k_accuracy", 5.0) == 1.0  # k >= K: every row
    y, s = MULTICLASS["perfect"]
    m, _ = multiclass_metrics_of(y, s)
    assert m.value("cohen_kappa") == 1.0 and m.value("miou") == 1.0


def test_multiclass_hand_computed():
    # C = [[3, 1, 0],     rows: true a, b, c; columns: predicted a, b, c
    #      [2, 2, 0],     r = (4, 4, 2), c = (5, 3, 2), n = 10, diagonal (3, 2, 2)
    #      [0, 0, 2]]
    # accuracy 7/10. recall (3/4, 1/2, 1); mPA = 3/4. precision (3/5, 2/3, 1).
    # IoU: a 3/(4+5-3) = 1/2, b 2/(4+3-2) = 2/5, c 2/2 = 1; mIoU = (1/2 + 2/5 + 1)/3 = 19/30
    # FWIoU = (4·1/2 + 4·2/5 + 2·1)/10 = 5.6/10 = 0.56.
    # F1: a 6/9, b 4/7, c 1; macro (2/3 + 4/7 + 1)/3; weighted (4·2/3 + 4·4/7 + 2)/10.
    # kappa: p_o = 0.7, p_e = (4·5 + 4·3 + 2·2)/100 = 0.36 -> (0.7 - 0.36)/0.64 = 0.53125.
    cm = np.array([[3, 1, 0], [2, 2, 0], [0, 0, 2]])
    c = MulticlassCounts(("a", "b", "c"), cm, {1: 7, 2: 9}, rows=10, invalid={"null_label": 2})
    m = Metrics(multiclass_metrics(c))
    expected = {
        "accuracy": 0.7,
        "mpa": 0.75,
        "miou": 19 / 30,
        "fwiou": 0.56,
        "macro_f1": (2 / 3 + 4 / 7 + 1) / 3,
        "micro_f1": 0.7,
        "weighted_f1": (4 * 2 / 3 + 4 * 4 / 7 + 2) / 10,
        "cohen_kappa": 0.53125,
        "invalid_rows": 2,
        "invalid_rows_null_label": 2,
    }
    for name, value in expected.items():
        assert m.value(name) == pytest.approx(value, abs=TOL), name
    assert m.value("top_k_accuracy", 1.0) == 0.7 and m.value("top_k_accuracy", 2.0) == 0.9
    assert [m.value("iou", None, x) for x in "abc"] == pytest.approx([0.5, 0.4, 1.0], abs=TOL)
    assert confusion_cells(c) == [
        ("a→a", 3.0),
        ("a→b", 1.0),
        ("b→a", 2.0),
        ("b→b", 2.0),
        ("c→c", 2.0),
    ]


@pytest.mark.parametrize("name", ["random-0", "class-never-present", "one-row"])
def test_confusion_cells_are_the_nonzero_cells_of_sklearn_confusion_matrix(name):
    y, s = MULTICLASS[name]
    k = s.shape[1]
    pred = argmax_predictions(s)
    _, c = multiclass_metrics_of(y, s)
    cm = confusion_matrix(y, pred, labels=range(k))
    expected = [(f"c{i}→c{j}", float(cm[i, j])) for i in range(k) for j in range(k) if cm[i, j]]
    assert confusion_cells(c) == expected
    assert sum(v for _, v in confusion_cells(c)) == len(y)


# --- multiclass: shape of the output, empty input, weights ------------------------------------


def expected_multiclass_keys(classes, ks, reasons=()) -> Counter:
    single = ["count", "invalid_rows", *(f"invalid_rows_{r}" for r in reasons), "accuracy"]
    single += ["mpa", "miou", "fwiou", "macro_f1", "micro_f1", "weighted_f1", "cohen_kappa"]
    keys = [(x, None, None) for x in single]
    keys += [(x, None, c) for c in classes for x in ("recall", "precision", "f1", "iou", "support")]
    keys += [("top_k_accuracy", float(k), None) for k in ks]
    return Counter(keys)


@pytest.mark.parametrize("name", sorted(MULTICLASS))
def test_multiclass_output_has_each_metric_once(name):
    y, s = MULTICLASS[name]
    m, _ = multiclass_metrics_of(y, s)
    actual = Counter((v.metric, v.threshold, v.class_) for v in m.values)
    assert actual == expected_multiclass_keys(class_names(s.shape[1]), KS)


def test_multiclass_empty_input():
    reasons = ("null_label", "invalid_label")
    c = count_multiclass(np.zeros(0), np.zeros(0), class_names(3), np.zeros((0, 3)), KS)
    assert c.same_counts(MulticlassCounts.empty(class_names(3), KS))
    c = MulticlassCounts.empty(class_names(3), KS, reasons)
    m = Metrics(multiclass_metrics(c))
    actual = Counter((v.metric, v.threshold, v.class_) for v in m.values)
    assert actual == expected_multiclass_keys(class_names(3), KS, reasons)
    for v in m.values:
        if v.metric in ("support", "count") or v.metric.startswith("invalid_rows"):
            assert v.value == 0.0
        else:
            assert v.value is None and v.reason, v
    assert confusion_cells(c) == []


def test_multiclass_weighted_tables_match_sklearn_sample_weight():
    y, s = multiclass_rows(30, 700, 4, np.array([0.5, 0.3, 0.2, 0.0]))
    w = np.random.default_rng(30).uniform(0.1, 3.0, len(y))
    pred = argmax_predictions(s)
    labels = list(range(4))
    cm = confusion_matrix(y, pred, labels=labels, sample_weight=w)
    hits = {
        k: top_k_accuracy_score(y, s, k=k, labels=labels, sample_weight=w, normalize=False)
        for k in KS
    }
    c = MulticlassCounts(class_names(4), cm, hits, rows=len(y))
    m = Metrics(multiclass_metrics(c))
    assert m.value("count") == len(y)
    check(m.get("accuracy"), accuracy_score(y, pred, sample_weight=w), 1e-9)
    p, r, f, support = quiet(
        precision_recall_fscore_support, y, pred, labels=labels, sample_weight=w, zero_division=NAN
    )
    for j, name in enumerate(class_names(4)):
        check(m.get("precision", None, name), p[j], 1e-9)
        check(m.get("recall", None, name), r[j], 1e-9)
        check(m.get("f1", None, name), f[j], 1e-9)
        check(m.get("support", None, name), support[j], 1e-9)
    for average in ("macro", "micro", "weighted"):
        check(m.get(f"{average}_f1"), f1_score(y, pred, average=average, sample_weight=w), 1e-9)
    check(m.get("cohen_kappa"), cohen_kappa_score(y, pred, sample_weight=w), 1e-9)
    for metric, value in fcn_means(cm).items():
        check(m.get(metric), value, 1e-9)
    for k in KS:
        reference = top_k_accuracy_score(y, s, k=k, labels=labels, sample_weight=w)
        check(m.get("top_k_accuracy", float(k)), reference, 1e-9)
