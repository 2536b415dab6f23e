"""Multi-label and multiclass count tables from Spark: same counts as the rows say, and
metrics equal to scikit-learn on the same rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import (
    cohen_kappa_score,
    f1_score,
    hamming_loss,
    jaccard_score,
    precision_score,
    recall_score,
    top_k_accuracy_score,
)

from tally.config import parse_config
from tally.counts_multi import argmax_predictions, count_multiclass, count_multilabel
from tally.errors import InputError
from tally.job import evaluate
from tally.plan import CountPlan
from tally.spark.count import collect_count_groups, count_table

CLASSES = ("cat", "dog", "bird", "fish")
K = len(CLASSES)


def multilabel_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, K)) < [0.5, 0.3, 0.1, 0.02]).astype(int)
    scores = np.clip(0.35 * labels + 0.65 * rng.random((n, K)), 0, 1)
    return labels, np.round(scores, 3)  # ties


def test_multilabel_counts_match_numpy_across_partitions(spark):
    labels, scores = multilabel_rows(3000, seed=1)
    df = spark.createDataFrame(
        [(lab.tolist(), s.tolist()) for lab, s in zip(labels, scores, strict=True)],
        "labels array<int>, scores array<double>",
    )
    plan = CountPlan(label="labels", scores=("scores",), buckets=128, thresholds=(0.3, 0.5),
                     task="multilabel", classes=CLASSES)
    expected = count_multilabel(labels, scores, CLASSES, 128, (0.3, 0.5))
    for parts in (1, 5):
        got = collect_count_groups(count_table(df.repartition(parts), plan), plan)
        assert got[("scores", "ALL")].same_counts(expected)


def test_multilabel_invalid_rows_are_counted_by_reason(spark):
    rows = [
        ([1, 0, 0, 1], [0.9, 0.1, 0.2, 0.8]),  # valid
        (None, [0.1, 0.1, 0.1, 0.1]),  # null_labels
        ([1, 0, 0, 1], None),  # null_scores
        ([1, 0, 0], [0.1, 0.1, 0.1]),  # wrong_length
        ([1, None, 0, 1], [0.1, 0.1, 0.1, 0.1]),  # null_label
        ([1, 2, 0, 1], [0.1, 0.1, 0.1, 0.1]),  # invalid_label
        ([1, 0, 0, 1], [0.1, float("nan"), 0.1, 0.1]),  # nan_score
        ([1, 0, 0, 1], [0.1, 1.5, 0.1, 0.1]),  # score_out_of_range
    ]
    df = spark.createDataFrame(rows, "labels array<int>, scores array<double>")
    plan = CountPlan(label="labels", scores=("scores",), buckets=16, thresholds=(0.5,),
                     task="multilabel", classes=CLASSES)
    counts = collect_count_groups(count_table(df, plan), plan)[("scores", "ALL")]
    assert counts.rows == 1
    assert {r: n for r, n in counts.invalid.items() if n} == {
        "null_labels": 1, "null_scores": 1, "wrong_length": 1, "null_label": 1,
        "invalid_label": 1, "nan_score": 1, "score_out_of_range": 1,
    }


def _job(spark, tmp_path, rows, schema, raw_config, day=dt.date(2026, 11, 22)):
    path = str(tmp_path / "input")
    spark.createDataFrame(rows, schema).write.mode("overwrite").parquet(path)
    config = parse_config({"input": {"path": path}, **raw_config})
    evaluate(spark, config, day)
    table = config.output.table
    got = spark.sql(
        f"SELECT slice, metric, class, threshold, value FROM {table} "
        f"WHERE model = '{config.model}' AND run_date = DATE'{day}'"
    ).collect()
    return {(r.slice, r.metric, r["class"], r.threshold): r.value for r in got}


def test_multilabel_job_metrics_match_scikit_learn(spark, tmp_path):
    labels, scores = multilabel_rows(2000, seed=2)
    got = _job(
        spark, tmp_path,
        [(lab.tolist(), s.tolist()) for lab, s in zip(labels, scores, strict=True)],
        "labels array<int>, scores array<float>",
        {"model": "tags", "task": "multilabel", "classes": list(CLASSES),
         "columns": {"labels": "labels", "scores": "scores"},
         "metrics": {"thresholds": [0.5]}, "output": {"table": "tally_multi.ml",
                                                      "counts_table": "tally_multi.ml_counts"}},
    )
    s32 = scores.astype(np.float32).astype(np.float64)
    pred = (s32 >= 0.5).astype(int)
    t = 0.5
    assert got[("ALL", "op", None, t)] == pytest.approx(
        precision_score(labels, pred, average="micro"), rel=1e-12)
    assert got[("ALL", "or", None, t)] == pytest.approx(
        recall_score(labels, pred, average="micro"), rel=1e-12)
    assert got[("ALL", "cp", None, t)] == pytest.approx(
        precision_score(labels, pred, average="macro", zero_division=0), rel=1e-12)
    assert got[("ALL", "macro_f1", None, t)] == pytest.approx(
        f1_score(labels, pred, average="macro", zero_division=0), rel=1e-12)
    assert got[("ALL", "hamming_loss", None, t)] == pytest.approx(
        hamming_loss(labels, pred), rel=1e-12)
    assert got[("ALL", "subset_accuracy", None, t)] == pytest.approx(
        np.mean((labels == pred).all(axis=1)), rel=1e-12)
    for k, name in enumerate(CLASSES):
        assert got[("ALL", "recall", name, t)] == pytest.approx(
            recall_score(labels[:, k], pred[:, k]), rel=1e-12)


@pytest.mark.parametrize("shape", ["prediction", "scores", "pixels"])
def test_multiclass_job_metrics_match_scikit_learn(spark, tmp_path, shape):
    rng = np.random.default_rng(3)
    n = 1500
    y = rng.choice(K, n, p=[0.4, 0.3, 0.2, 0.1])
    logits = rng.normal(size=(n, K)) + 1.5 * np.eye(K)[y]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    base = {"model": f"mc_{shape}", "task": "multiclass", "classes": list(CLASSES),
            "output": {"table": "tally_multi.mc", "counts_table": "tally_multi.mc_counts"}}
    if shape == "prediction":
        pred = argmax_predictions(probs)
        rows = [(int(a), int(b)) for a, b in zip(y, pred, strict=True)]
        got = _job(spark, tmp_path, rows, "label int, pred int",
                   {**base, "columns": {"label": "label", "prediction": "pred"}})
    elif shape == "scores":
        pred = argmax_predictions(probs)
        rows = [(int(a), p.tolist()) for a, p in zip(y, probs, strict=True)]
        got = _job(spark, tmp_path, rows, "label int, scores array<double>",
                   {**base, "columns": {"label": "label", "scores": "scores"},
                    "metrics": {"top_k": [1, 2]}})
        assert got[("ALL", "top_k_accuracy", None, 2.0)] == pytest.approx(
            top_k_accuracy_score(y, probs, k=2, labels=range(K)), rel=1e-12)
    else:  # images of 30 pixels per row
        pred = argmax_predictions(probs)
        rows = [(y[i:i + 30].tolist(), pred[i:i + 30].tolist()) for i in range(0, n, 30)]
        got = _job(spark, tmp_path, rows, "labels array<int>, predictions array<int>",
                   {**base, "columns": {"labels": "labels", "predictions": "predictions"}})
    assert got[("ALL", "accuracy", None, None)] == pytest.approx(np.mean(y == pred), rel=1e-12)
    assert got[("ALL", "macro_f1", None, None)] == pytest.approx(
        f1_score(y, pred, average="macro"), rel=1e-12)
    assert got[("ALL", "weighted_f1", None, None)] == pytest.approx(
        f1_score(y, pred, average="weighted"), rel=1e-12)
    assert got[("ALL", "cohen_kappa", None, None)] == pytest.approx(
        cohen_kappa_score(y, pred), rel=1e-12)
    iou = jaccard_score(y, pred, average=None, labels=range(K))
    assert got[("ALL", "miou", None, None)] == pytest.approx(iou.mean(), rel=1e-12)
    reference = count_multiclass(y, pred, CLASSES)
    for i, a in enumerate(CLASSES):
        for j, b in enumerate(CLASSES):
            cell = got.get(("ALL", "confusion", f"{a}→{b}", None))
            assert (cell or 0) == reference.confusion[i, j]


def test_arrays_of_another_width_than_classes_fail_naming_both(spark, tmp_path):
    labels, scores = multilabel_rows(50, seed=3)
    pairs = zip(labels, scores, strict=True)
    rows = [(None, None)] + [(lab.tolist(), s.tolist()) for lab, s in pairs]
    config = {"model": "wide", "task": "multilabel", "classes": [*CLASSES, "ant"],
              "columns": {"labels": "labels", "scores": "scores"},
              "output": {"table": "tally_multi.wide", "counts_table": "tally_multi.wide_counts",
                         "curves_table": "tally_multi.wide_curves"}}
    with pytest.raises(InputError, match=r"'labels' holds arrays of 4 values .* classes lists 5"):
        _job(spark, tmp_path, rows, "labels array<int>, scores array<float>", config)
    assert not spark.catalog.tableExists("tally_multi.wide")
