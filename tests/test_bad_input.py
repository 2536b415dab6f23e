"""Bad input, through the whole in-process job (`tally.job.evaluate`): every case of the README's
"Bad input" table, checked against hand-counted invalid rows and scikit-learn on the valid rows.

Inputs are small Parquet files written with pyarrow under ``tmp_path`` (not with Spark, so the
column types are exactly the ones named); results are read back with ``spark.sql``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from helpers import write_parquet
from tally.config import parse_config
from tally.errors import InputError, InvalidRowsError, OutputError
from tally.job import evaluate

DAY1, DAY2 = dt.date(2026, 11, 21), dt.date(2026, 11, 22)
TABLES = ("metrics", "counts", "curves")  # output.table, output.counts_table, .curves_table
BUCKETS = 1024
DB = "tally_bad_input"  # rows of each case go to their own model partition
# The six reasons of the README's Bad input table, in their documented order.
REASONS = (
    "null_label",
    "null_score",
    "nan_score",
    "infinite_score",
    "score_out_of_range",
    "invalid_label",
)
# Valid rows every row-level case starts from: both ends of [0, 1] included, every score in
# its own bucket at B = 1024, so the bucketed AUC is exact here.
BASE_LABELS = [1, 0, 1, 0, 1, 0, 0, 1]
BASE_SCORES = [0.0, 0.1, 0.35, 0.4, 0.8, 0.65, 1.0, 0.9]


def config(path: str, db: str, model: str, **extra):
    raw = {
        "model": model,
        "input": {"path": path, "format": "parquet"},
        "columns": {"label": "label", "score": "score"},
        "metrics": {"buckets": BUCKETS, "thresholds": [0.5]},
        "output": {
            "table": f"{db}.metrics",
            "counts_table": f"{db}.counts",
            "curves_table": f"{db}.curves",
            "checks_table": f"{db}.checks",
        },
    }
    raw.update(extra)
    return parse_config(raw)


def read_metrics(spark, db: str, model: str, day: dt.date) -> dict:
    """{(metric, threshold): (value, reason)} of one (run_date, model), slice ALL."""
    rows = spark.sql(
        f"SELECT metric, threshold, value, reason FROM {db}.metrics "
        f"WHERE model = '{model}' AND run_date = DATE'{day}' AND slice = 'ALL'"
    ).collect()
    got = {(r.metric, r.threshold): (r.value, r.reason) for r in rows}
    assert len(got) == len(rows), "a metric appears twice"
    return got


def stored_rows(spark, table: str, model: str | None = None, day: dt.date | None = None) -> int:
    """Rows of ``table`` for a model/date; 0 when the table does not exist."""
    if not spark.catalog.tableExists(table):
        return 0
    df = spark.table(table)
    if model is not None:
        df = df.where(df.model == model)
    if day is not None:
        df = df.where(df.run_date == day)
    return df.count()


def value(got: dict, metric: str, threshold: float | None = None) -> float | None:
    return got[(metric, threshold)][0]


def assert_matches_sklearn(got: dict, y, s) -> None:
    """Every metric that is defined for (y, s) equals scikit-learn's; undefined ones are null
    with a reason. ``s`` holds the scores as the job evaluates them (float64)."""
    y, s = np.asarray(y, np.int64), np.asarray(s, np.float64)
    pos, neg = int(y.sum()), int((1 - y).sum())
    assert value(got, "count") == len(y)
    assert (value(got, "positives"), value(got, "negatives")) == (pos, neg)
    if pos and neg:
        assert value(got, "roc_auc") == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    else:
        assert value(got, "roc_auc") is None and got[("roc_auc", None)][1]
    if pos:
        assert value(got, "pr_auc") == pytest.approx(average_precision_score(y, s), abs=1e-12)
    else:
        assert value(got, "pr_auc") is None and got[("pr_auc", None)][1]
    if len(y):
        assert value(got, "log_loss") == pytest.approx(log_loss(y, s, labels=[0, 1]), rel=1e-12)
        brier = brier_score_loss(y, s, labels=[0, 1])
        assert value(got, "brier") == pytest.approx(brier, rel=1e-12)
    predicted = (s >= 0.5).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    assert [value(got, m, 0.5) for m in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]
    defined = {
        "precision": (tp + fp > 0, lambda: precision_score(y, predicted, zero_division=0)),
        "recall": (pos > 0, lambda: recall_score(y, predicted, zero_division=0)),
        "specificity": (neg > 0, lambda: tn / neg),
        "f1": (tp + fp + fn > 0, lambda: f1_score(y, predicted, zero_division=0)),
        "balanced_accuracy": (pos and neg, lambda: balanced_accuracy_score(y, predicted)),
        "mcc": (
            min(tp + fp, tp + fn, tn + fp, tn + fn) > 0,
            lambda: matthews_corrcoef(y, predicted),
        ),
    }
    for metric, (is_defined, reference) in defined.items():
        if is_defined:
            assert value(got, metric, 0.5) == pytest.approx(reference(), abs=1e-12), metric
        else:
            assert value(got, metric, 0.5) is None, metric
            assert got[(metric, 0.5)][1], f"{metric} is null without a reason"


def assert_nothing_is_nan(got: dict) -> None:
    for (metric, threshold), (v, reason) in got.items():
        assert v is None or math.isfinite(v), (metric, threshold, v)
        assert (v is None) == (reason is not None), (metric, threshold, v, reason)


# --- row-level cases: each adds bad rows to the same valid rows -----------------------------

NAN, INF = float("nan"), float("inf")
ROW_CASES = {
    # id: (label type, bad rows (label, score), expected counts per reason (hand-counted))
    "null_label": (pa.float64(), [(None, 0.3), (None, 0.7)], {"null_label": 2}),
    "null_score": (pa.float64(), [(1.0, None)], {"null_score": 1}),
    "nan_score": (pa.float64(), [(0.0, NAN), (1.0, NAN)], {"nan_score": 2}),
    "plus_inf_score": (pa.float64(), [(1.0, INF)], {"infinite_score": 1}),
    "minus_inf_score": (pa.float64(), [(0.0, -INF)], {"infinite_score": 1}),
    "score_below_0": (pa.float64(), [(0.0, -0.01), (1.0, -5e-324)], {"score_out_of_range": 2}),
    "score_above_1": (
        pa.float64(),
        [(1.0, 1.5), (0.0, float(np.nextafter(1.0, 2.0)))],
        {"score_out_of_range": 2},
    ),
    "label_2": (pa.int64(), [(2, 0.5)], {"invalid_label": 1}),
    "label_minus_1": (pa.int64(), [(-1, 0.5), (-1, 0.2)], {"invalid_label": 2}),
    "label_one_half": (pa.float64(), [(0.5, 0.5)], {"invalid_label": 1}),
    # Several problems in one row: the first check in the table's order names the reason.
    "first_check_wins": (
        pa.float64(),
        [(None, None), (None, NAN), (1.0, None), (2.0, 1.5), (2.0, NAN), (0.5, -INF)],
        {
            "null_label": 2,
            "null_score": 1,
            "nan_score": 1,
            "infinite_score": 1,
            "score_out_of_range": 1,
        },
    ),
}


@pytest.mark.parametrize("case", list(ROW_CASES))
def test_invalid_rows_are_skipped_and_counted_per_reason(spark, tmp_path, case, caplog):
    label_type, bad, expected = ROW_CASES[case]
    labels = BASE_LABELS[:3] + [y for y, _ in bad] + BASE_LABELS[3:]
    scores = BASE_SCORES[:3] + [s for _, s in bad] + BASE_SCORES[3:]
    score_array = pa.array(scores, pa.float64(), from_pandas=False)  # NaN stays NaN, not null
    path = write_parquet(
        tmp_path / "in", {"label": pa.array(labels, label_type), "score": score_array}
    )
    summary = evaluate(spark, config(path, DB, case), DAY1)

    got = read_metrics(spark, DB, case, DAY1)
    for reason in REASONS:
        assert value(got, f"invalid_rows_{reason}") == expected.get(reason, 0), reason
    assert value(got, "invalid_rows") == len(bad)
    assert (summary.rows_read, summary.invalid_rows) == (len(BASE_LABELS) + len(bad), len(bad))
    assert_matches_sklearn(got, BASE_LABELS, BASE_SCORES)  # the bad rows take no part
    assert_nothing_is_nan(got)
    assert f"skipped {len(bad)} invalid rows" in caplog.text


# --- column types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "columns", "message"),
    [
        (
            "label",
            {"label": pa.array(["yes", "no"]), "score": pa.array([0.9, 0.1])},
            r"label column 'label' has type string, expected numeric or boolean",
        ),
        (
            "score",
            {"label": pa.array([1, 0]), "score": pa.array(["0.9", "0.1"])},
            r"score column 'score' has type string, expected numeric",
        ),
    ],
)
def test_string_column_fails_naming_it_and_writes_nothing(spark, tmp_path, role, columns, message):
    db = f"tally_bad_string_{role}"
    path = write_parquet(tmp_path / "in", columns)
    with pytest.raises(InputError, match=message) as failure:
        evaluate(spark, config(path, db, "m"), DAY1)
    assert failure.value.exit_code == 3
    for table in TABLES:
        assert not spark.catalog.tableExists(f"{db}.{table}")


LABEL_TYPES = {
    "decimal": (pa.decimal128(3, 1), lambda y: decimal.Decimal(f"{y}.0")),
    "float32": (pa.float32(), float),
    "float64": (pa.float64(), float),
    "int8": (pa.int8(), int),
    "int32": (pa.int32(), int),
    "int64": (pa.int64(), int),
    "boolean": (pa.bool_(), bool),
}


@pytest.mark.parametrize("label_type", list(LABEL_TYPES))
def test_label_types_are_accepted(spark, tmp_path, label_type):
    arrow_type, convert = LABEL_TYPES[label_type]
    path = write_parquet(
        tmp_path / "in",
        {
            "label": pa.array([convert(y) for y in BASE_LABELS], arrow_type),
            "score": pa.array(BASE_SCORES, pa.float64()),
        },
    )
    model = f"label_{label_type}"
    evaluate(spark, config(path, DB, model), DAY1)
    got = read_metrics(spark, DB, model, DAY1)
    assert value(got, "invalid_rows") == 0
    assert_matches_sklearn(got, BASE_LABELS, BASE_SCORES)


def test_float32_score_is_evaluated_at_its_stored_value(spark, tmp_path):
    scores = np.array([0.9, 0.2, 0.75, 0.5, 0.1, 0.3, 0.6, 0.45], np.float32)
    path = write_parquet(
        tmp_path / "in",
        {"label": pa.array(BASE_LABELS, pa.int32()), "score": pa.array(scores, pa.float32())},
    )
    evaluate(spark, config(path, DB, "score_float32"), DAY1)
    got = read_metrics(spark, DB, "score_float32", DAY1)
    assert_matches_sklearn(got, BASE_LABELS, scores.astype(np.float64))


# --- degenerate inputs ------------------------------------------------------------------------


def test_empty_input_fails_naming_it_and_writes_nothing(spark, tmp_path):
    path = write_parquet(
        tmp_path / "in", {"label": pa.array([], pa.int64()), "score": pa.array([], pa.float64())}
    )
    with pytest.raises(InputError) as info:
        evaluate(spark, config(path, DB, "empty_refused"), DAY1)
    assert str(info.value) == (
        f"path {path} holds no rows; nothing was written "
        "(input.allow_empty: true writes a count of 0)"
    )
    assert all(stored_rows(spark, f"{DB}.{t}", "empty_refused") == 0 for t in TABLES)


def test_empty_input_gives_count_0_and_null_metrics_with_reasons(spark, tmp_path):
    path = write_parquet(
        tmp_path / "in", {"label": pa.array([], pa.int64()), "score": pa.array([], pa.float64())}
    )
    allowed = {"path": path, "format": "parquet", "allow_empty": True}
    summary = evaluate(spark, config(path, DB, "empty", input=allowed), DAY1)
    got = read_metrics(spark, DB, "empty", DAY1)
    assert summary.rows_read == 0
    assert [value(got, m) for m in ("count", "positives", "negatives", "invalid_rows")] == [0] * 4
    for metric in ("roc_auc", "roc_auc_error_bound", "pr_auc", "best_f1", "log_loss", "brier"):
        assert value(got, metric) is None and got[(metric, None)][1], metric
    for metric in ("precision", "recall", "specificity", "f1", "accuracy", "mcc"):
        assert value(got, metric, 0.5) is None and got[(metric, 0.5)][1], metric
    assert [value(got, m, 0.5) for m in ("tp", "fp", "tn", "fn")] == [0, 0, 0, 0]
    assert_nothing_is_nan(got)
    nan_rows = spark.sql(f"SELECT count(*) AS n FROM {DB}.metrics WHERE isnan(value)").first()
    assert nan_rows.n == 0


def test_one_row(spark, tmp_path):
    path = write_parquet(
        tmp_path / "in", {"label": pa.array([1], pa.int64()), "score": pa.array([0.7])}
    )
    evaluate(spark, config(path, DB, "one_row"), DAY1)
    got = read_metrics(spark, DB, "one_row", DAY1)
    # By hand: one positive at 0.7 → log loss −ln 0.7, Brier 0.3², tp = 1 at 0.5.
    assert value(got, "log_loss") == pytest.approx(-math.log(0.7), rel=1e-12)
    assert value(got, "brier") == pytest.approx(0.09, rel=1e-12)
    assert value(got, "roc_auc") is None and got[("roc_auc", None)][1] == "no negative rows"
    assert_matches_sklearn(got, [1], [0.7])
    assert_nothing_is_nan(got)


def test_all_positive(spark, tmp_path):
    scores = [0.2, 0.4, 0.6, 0.9, 0.9]
    path = write_parquet(
        tmp_path / "in", {"label": pa.array([1] * 5, pa.int64()), "score": pa.array(scores)}
    )
    evaluate(spark, config(path, DB, "all_positive"), DAY1)
    got = read_metrics(spark, DB, "all_positive", DAY1)
    assert value(got, "pr_auc") == pytest.approx(1.0)  # every cut-off has precision 1
    assert value(got, "specificity", 0.5) is None
    assert_matches_sklearn(got, [1] * 5, scores)
    assert_nothing_is_nan(got)


def test_all_scores_equal(spark, tmp_path):
    labels = [1, 0, 0, 1, 0, 0, 1, 0]
    path = write_parquet(
        tmp_path / "in", {"label": pa.array(labels, pa.int64()), "score": pa.array([0.5] * 8)}
    )
    evaluate(spark, config(path, DB, "all_equal"), DAY1)
    got = read_metrics(spark, DB, "all_equal", DAY1)
    # By hand: every pair is a tie → AUC ½, all pairs share one bucket → bound ½;
    # AP = P / (P + N) = 3/8; everything is predicted positive at t = 0.5.
    assert value(got, "roc_auc") == 0.5
    assert value(got, "roc_auc_error_bound") == 0.5
    assert value(got, "pr_auc") == pytest.approx(3 / 8, abs=1e-15)
    assert value(got, "mcc", 0.5) is None  # tn + fn = 0
    assert_matches_sklearn(got, labels, [0.5] * 8)
    assert_nothing_is_nan(got)


# --- on_invalid: fail -------------------------------------------------------------------------


def test_on_invalid_fail_writes_nothing_and_keeps_earlier_dates(spark, tmp_path):
    db = "tally_bad_fail"
    path = write_parquet(
        tmp_path / "in",
        {
            "label": pa.array([*BASE_LABELS, 1, None], pa.float64()),
            "score": pa.array([*BASE_SCORES, None, 0.5], pa.float64()),
        },
    )
    evaluate(spark, config(path, db, "m"), DAY1)  # on_invalid: skip
    before = {t: sorted(spark.table(f"{db}.{t}").collect()) for t in TABLES}
    assert value(read_metrics(spark, db, "m", DAY1), "invalid_rows") == 2

    strict = config(path, db, "m", on_invalid="fail")
    for day in (DAY2, DAY1):  # a new date, then a rerun of the earlier one
        with pytest.raises(InvalidRowsError, match=r"null_label=1, null_score=1") as failure:
            evaluate(spark, strict, day)
        assert failure.value.exit_code == 4
        assert "nothing was written" in str(failure.value)
        for table in TABLES:
            assert stored_rows(spark, f"{db}.{table}", "m", DAY2) == 0
        after = {t: sorted(spark.table(f"{db}.{t}").collect()) for t in TABLES}
        assert after == before


# --- missing input, conflicting output --------------------------------------------------------


def test_missing_input_path_fails_naming_it(spark, tmp_path):
    missing = str(tmp_path / "no" / "such" / "folder")
    with pytest.raises(InputError, match=r"cannot read input path .*no/such/folder") as failure:
        evaluate(spark, config(missing, "tally_bad_missing", "m"), DAY1)
    assert failure.value.exit_code == 3
    for table in TABLES:
        assert not spark.catalog.tableExists(f"tally_bad_missing.{table}")


def test_missing_input_table_fails_naming_it(spark):
    raw = {"input": {"table": "tally_bad_missing.no_such_table"}}
    cfg = config("unused", "tally_bad_missing", "m", **raw)
    with pytest.raises(InputError, match=r"table tally_bad_missing\.no_such_table") as failure:
        evaluate(spark, cfg, DAY1)
    assert failure.value.exit_code == 3
    for table in TABLES:
        assert not spark.catalog.tableExists(f"tally_bad_missing.{table}")


def _clean_input(tmp_path: Path) -> str:
    return write_parquet(
        tmp_path / "in",
        {"label": pa.array(BASE_LABELS, pa.int64()), "score": pa.array(BASE_SCORES)},
    )


@pytest.mark.parametrize("conflict", ["counts", "metrics", "curves", "checks"])
def test_output_table_with_another_schema_fails_and_writes_nothing(spark, tmp_path, conflict):
    db = f"tally_bad_schema_{conflict}"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {db}")
    spark.sql(f"CREATE TABLE {db}.{conflict} (a INT) USING parquet")
    with pytest.raises(OutputError, match=rf"{db}\.{conflict} exists with another schema") as error:
        evaluate(spark, config(_clean_input(tmp_path), db, "m"), DAY1)
    assert error.value.exit_code == 5
    assert spark.table(f"{db}.{conflict}").count() == 0
    for table in (*TABLES, "checks"):
        if table != conflict:
            assert stored_rows(spark, f"{db}.{table}", "m", DAY1) == 0, f"{db}.{table} written"
