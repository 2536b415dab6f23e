"""tally.evaluate: the metrics of a DataFrame without YAML or tables, checked against
scikit-learn on the same rows; its docstring's example runs; its errors are the config's."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

import tally
import tally.api
from tally.errors import ConfigError, InputError


def test_import_tally_starts_no_spark():
    code = "import sys, tally; assert 'pyspark' not in sys.modules; print(tally.__all__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "evaluate" in done.stdout


def test_the_docstring_examples_run(spark):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(tally.api.evaluate, "evaluate", globs={"spark": spark})
    assert tests and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    n = 4000
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0.0, 1.0)
    country = rng.choice(["US", "FR", "DE"], n)
    return pd.DataFrame({"y": y, "p": p, "q": rng.random(n), "country": country})


def by_key(metrics: pd.DataFrame, slice_label: str = "ALL", score: str = "p") -> dict:
    mine = metrics[(metrics["slice"] == slice_label) & (metrics["score_column"] == score)]
    return {
        (m, None if np.isnan(t) else t): v
        for m, t, v in zip(mine["metric"], mine["threshold"], mine["value"], strict=True)
    }


def test_metrics_of_a_spark_dataframe_equal_scikit_learns(spark, rows):
    metrics = tally.evaluate(
        spark.createDataFrame(rows),
        label="y",
        score=["p", "q"],
        slices=["country"],
        thresholds=[0.3, 0.5],
        auc="exact",
    )
    assert list(metrics.columns) == list(tally.api.RESULT_COLUMNS)
    assert set(metrics["score_column"]) == {"p", "q"}
    parts = [("ALL", rows), *((f"country={c}", g) for c, g in rows.groupby("country"))]
    assert set(metrics["slice"]) == {label for label, _ in parts}
    for slice_label, part in parts:
        got = by_key(metrics, slice_label)
        assert got[("count", None)] == len(part)
        bound = got[("roc_auc_error_bound", None)]
        assert abs(got[("roc_auc", None)] - roc_auc_score(part["y"], part["p"])) <= bound + 1e-12
        for t in (0.3, 0.5):
            predicted = (part["p"] >= t).astype(int)
            assert got[("precision", t)] == pytest.approx(precision_score(part["y"], predicted))
            assert got[("recall", t)] == pytest.approx(recall_score(part["y"], predicted))
        assert got[("log_loss", None)] == pytest.approx(log_loss(part["y"], part["p"]))
    exact = by_key(metrics)  # auc="exact" refines the ALL slice until both are exact
    assert exact[("roc_auc_error_bound", None)] == 0.0
    assert exact[("roc_auc", None)] == pytest.approx(roc_auc_score(rows["y"], rows["p"]), abs=1e-12)
    expected_ap = average_precision_score(rows["y"], rows["p"])
    assert exact[("pr_auc", None)] == pytest.approx(expected_ap, abs=1e-12)


def test_a_pandas_dataframe_and_weights(spark, rows):
    w = np.where(rows["country"] == "US", 2.0, 0.5)
    metrics = tally.evaluate(rows.assign(w=w), label="y", score="p", weight="w", spark=spark)
    got = by_key(metrics)
    assert got[("roc_auc", None)] == pytest.approx(
        roc_auc_score(rows["y"], rows["p"], sample_weight=w), abs=got[("roc_auc_error_bound", None)]
    )
    assert got[("positives", None)] == pytest.approx(float(w[rows["y"] == 1].sum()))


def test_multiclass_predictions(spark):
    frame = pd.DataFrame({"y": [0, 1, 2, 2, 1, 0], "pred": [0, 2, 2, 2, 1, 1]})
    metrics = tally.evaluate(
        spark.createDataFrame(frame), label="y", prediction="pred", task="multiclass", classes=3
    )
    got = by_key(metrics, score="pred")
    assert got[("accuracy", None)] == pytest.approx(4 / 6)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"buckets": 0}, ConfigError, r"metrics.buckets must be between 1 and"),
        ({"thresholds": [1.5]}, ConfigError, r"metrics.thresholds\[0\] must be a number in"),
        ({"task": "regression"}, ConfigError, r"task must be one of"),
        ({"on_invalid": "ignore"}, ConfigError, r"on_invalid must be one of"),
        ({"auc": "exactly"}, ConfigError, r"metrics.auc must be one of"),
        ({"score": "nope"}, InputError, r"score column 'nope' not found in input"),
        ({"slices": [["nope"]]}, InputError, r"slice column 'nope' not found"),
    ],
)
def test_bad_arguments_fail_as_the_config_does(spark, rows, arguments, error, message):
    df = spark.createDataFrame(rows.head(20))
    with pytest.raises(error, match=message):
        tally.evaluate(df, **{"label": "y", "score": "p", **arguments})
