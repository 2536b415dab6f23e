"""Stored counts and rollups (issue 4): the metrics of a window, added up from the counts
stored by its daily runs, equal the metrics of one evaluation over the union of its rows.

The daily runs and the union run are real ``tally.job.evaluate`` runs on Parquet files
written here; the rollup is ``tally.job.rollup`` (``tally rollup`` as a user runs it is in
test_end_to_end.py). Where the union run is not the reference, scikit-learn on the same rows is.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

from tally.config import JobConfig, parse_config
from tally.errors import InputError
from tally.job import evaluate, rollup

DB = "tally_rollup_test"
RESULTS, COUNTS = f"{DB}.metrics", f"{DB}.counts"
DAYS = [dt.date(2026, 11, 1) + dt.timedelta(days=i) for i in range(7)]
ROWS_PER_DAY = 1_200
THRESHOLDS = [0.3, 0.5]
SLICES = [["country"], ["country", "device"]]
#: Metrics that are counts: equal exactly; every other value to float summation order.
COUNT_METRICS = {"count", "positives", "negatives", "tp", "fp", "tn", "fn", "invalid_rows"}


def day_rows(seed: int, rows: int = ROWS_PER_DAY) -> pa.Table:
    """One day of scored rows; days differ in size of classes, countries and bad rows."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2 + 0.03 * (seed % 5)).astype(np.float64)
    s7 = np.clip(rng.normal(0.3 + 0.35 * y, 0.2), 0.0, 1.0)
    s7[: rows // 4] = np.round(s7[: rows // 4], 2)  # ties across days too
    s7[rng.random(rows) < 0.01] = np.nan
    s8 = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0.0, 1.0)
    s8[rng.random(rows) < 0.005] = 1.5
    null_label = rng.random(rows) < 0.01
    countries = ["de", "fr", "us", None] + (["jp"] if seed % 7 == 3 else [])  # jp: one day
    country = [countries[i] for i in rng.integers(0, len(countries), rows)]
    device = [str(d) for d in rng.choice(["ios", "web"], rows)]
    w = rng.gamma(2.0, 1.0, rows)
    w[rng.random(rows) < 0.05] = 0.0
    w[rng.random(rows) < 0.005] = -1.0  # invalid_weight where a weight is used
    return pa.table(
        {
            "label": pa.array(y, mask=null_label),
            "s7": pa.array(s7),
            "s8": pa.array(s8),
            "country": pa.array(country, pa.string()),
            "device": pa.array(device, pa.string()),
            "w": pa.array(w),
        }
    )


def config(model: str, path: Path, weight: str | None = None, **metrics) -> JobConfig:
    columns = {"label": "label", "score": ["s7", "s8"]} | ({"weight": weight} if weight else {})
    return parse_config(
        {
            "model": model,
            "input": {"path": str(path)},
            "columns": columns,
            "metrics": {"buckets": 256, "thresholds": THRESHOLDS, "beta": 2, **metrics},
            "output": {"table": RESULTS, "counts_table": COUNTS, "curves_table": f"{DB}.curves"},
            "slices": SLICES,
        }
    )


#: The metric options of every run here (beta 2 adds f_beta); a rollup is given the same.
METRICS = config("m7", Path("unused")).metrics


def keyed(rows) -> dict[tuple, tuple]:
    """(score_column, slice, metric, class, threshold) -> (value, reason)."""
    out = {}
    for r in rows:
        key = tuple(r[:5])
        assert key not in out, f"duplicate result row {key}"
        out[key] = (r[5], r[6])
    return out


def assert_same_metrics(
    got: dict[tuple, tuple],
    expected: dict[tuple, tuple],
    exact: set[str] = COUNT_METRICS,
    abs_tol: float = 1e-15,
) -> None:
    """Same keys; counts in ``exact`` equal, other values equal to float summation order."""
    assert set(got) == set(expected)
    for key, (value, reason) in expected.items():
        got_value, got_reason = got[key]
        assert got_reason == reason, key
        if value is None or key[2] in exact or key[2].startswith("invalid_rows_"):
            assert got_value == value, key
        else:
            assert got_value == pytest.approx(value, rel=1e-9, abs=abs_tol), key


def stored_rows(spark, table: str, **where) -> list:
    df = spark.table(table)
    for column, value in where.items():
        df = df.where(F.col(column) == F.lit(value))
    return df.collect()


def as_arrays(tables: list[pa.Table]) -> dict[str, np.ndarray]:
    union = pa.concat_tables(tables)
    out = {c: union.column(c).to_numpy(zero_copy_only=False) for c in ("label", "s7", "s8")}
    out["label"] = out["label"].astype(np.float64)  # nulls -> NaN
    out["country"] = np.array(union.column("country").to_pylist(), dtype=object)
    return out


@pytest.fixture(scope="module")
def stored(spark, tmp_path_factory):
    """Seven daily runs of model m7 (day 3 first run on stale data, then rerun), and one run
    of model m7_union on the union of the seven days' files, dated on the last day."""
    root = tmp_path_factory.mktemp("rollup")
    days = {day: day_rows(seed=100 + i) for i, day in enumerate(DAYS)}
    for day, table in days.items():
        (root / "days" / day.isoformat()).mkdir(parents=True)
        pq.write_table(table, root / "days" / day.isoformat() / "part-0.parquet")
        (root / "union").mkdir(exist_ok=True)
        pq.write_table(table, root / "union" / f"{day.isoformat()}.parquet")
    (root / "stale").mkdir()
    pq.write_table(day_rows(seed=1, rows=700), root / "stale" / "part-0.parquet")

    evaluate(spark, config("m7", root / "stale", buckets=128), DAYS[2])  # replaced below
    for day in DAYS:
        evaluate(spark, config("m7", root / "days" / day.isoformat()), day)
    evaluate(spark, config("m7_union", root / "union"), DAYS[-1])
    yield {"root": root, "days": days}
    spark.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")


@pytest.fixture(scope="module")
def rolled(spark, stored):
    daily_before = Counter(stored_rows(spark, RESULTS, model="m7", window_days=1))
    rows = rollup(spark, COUNTS, RESULTS, "m7", DAYS[0], DAYS[-1], METRICS)
    daily_after = Counter(stored_rows(spark, RESULTS, model="m7", window_days=1))
    return rows, daily_before, daily_after


def union_metrics(spark) -> dict[tuple, tuple]:
    return keyed(stored_rows(spark, RESULTS, model="m7_union", run_date=DAYS[-1], window_days=1))


def test_rollup_equals_evaluating_the_union_of_the_days(spark, rolled):
    rows, _, _ = rolled
    got, expected = keyed(rows), union_metrics(spark)
    assert_same_metrics(got, expected)
    slices = {key[1] for key in got}
    assert {"ALL", "country=jp", "country=null", "country=jp/device=web"} <= slices
    assert {key[0] for key in got} == {"s7", "s8"}
    assert {key[2] for key in got} >= {"roc_auc", "pr_auc", "log_loss", "mcc", "f_beta"}


def test_rollup_rows_carry_the_end_date_and_window_and_leave_daily_rows(spark, rolled):
    rows, daily_before, daily_after = rolled
    assert {(r[7], r[8], r[9]) for r in rows} == {(DAYS[-1], "m7", 7)}
    written = stored_rows(spark, RESULTS, model="m7", window_days=7)
    assert Counter(tuple(r) for r in written) == Counter(rows)
    assert daily_after == daily_before
    assert {r.run_date for r in daily_after} == set(DAYS)
    # the nightly rows of the last day and the window's rows live side by side
    last_day = stored_rows(spark, RESULTS, model="m7", run_date=DAYS[-1])
    assert {r.window_days for r in last_day} == {1, 7}


def test_rerun_of_a_day_replaces_its_counts(spark, stored):
    counts = spark.table(COUNTS)
    assert counts.columns == [
        "score_column",
        "slice",
        "cell",
        "n",
        "w",
        "wy",
        "w_loss",
        "w_sqerr",
        "w_score",
        "layout",
        "run_date",
        "model",
    ]
    duplicates = (
        counts.groupBy("run_date", "model", "score_column", "slice", "cell")
        .count()
        .where("count > 1")
        .count()
    )
    assert duplicates == 0
    day3 = counts.where((F.col("model") == "m7") & (F.col("run_date") == DAYS[2]))
    layouts = [json.loads(r.layout) for r in day3.select("layout").distinct().collect()]
    assert [(x["buckets"], x["thresholds"], x["weighted"]) for x in layouts] == [
        (256, THRESHOLDS, False)
    ]  # the rerun's, not the stale run's 128 buckets
    rows_counted = day3.where("score_column = 's7' AND slice = 'ALL'").agg(F.sum("n")).first()[0]
    assert rows_counted == ROWS_PER_DAY  # valid and invalid rows of the rerun, not the stale 700


def test_rollup_over_a_range_with_a_missing_day_logs_it(spark, stored, caplog):
    # before the first stored day: the window still equals the union of the seven days
    start = DAYS[0] - dt.timedelta(days=1)
    with caplog.at_level(logging.WARNING, logger="tally.job"):
        rows = rollup(spark, COUNTS, None, "m7", start, DAYS[-1], METRICS)
    assert {(r[7], r[9]) for r in rows} == {(DAYS[-1], 8)}
    assert_same_metrics(keyed(rows), union_metrics(spark))
    assert any("2026-10-31" in m and "1 day(s)" in m for m in caplog.messages), caplog.messages
    assert stored_rows(spark, RESULTS, model="m7", window_days=8) == []  # results_table=None

    # a gap inside the window (a failed nightly): model m_gap holds days 1, 2 and 4 only
    copied = (
        spark.table(COUNTS)
        .where((F.col("model") == "m7") & F.col("run_date").isin(DAYS[0], DAYS[1], DAYS[3]))
        .withColumn("model", F.lit("m_gap"))
    )
    copied.write.insertInto(COUNTS)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tally.job"):
        rows = rollup(spark, COUNTS, None, "m_gap", DAYS[0], DAYS[3])
    assert any("2026-11-03" in m for m in caplog.messages), caplog.messages
    assert {(r[7], r[9]) for r in rows} == {(DAYS[3], 4)}
    ref = as_arrays([stored["days"][d] for d in (DAYS[0], DAYS[1], DAYS[3])])
    got = keyed(rows)
    for score in ("s7", "s8"):
        y, s = ref["label"], ref[score]
        valid = ~np.isnan(y) & ~np.isnan(s) & (s >= 0) & (s <= 1)
        yv, sv = y[valid], s[valid]
        assert got[(score, "ALL", "count", None, None)][0] == valid.sum()
        assert got[(score, "ALL", "invalid_rows", None, None)][0] == (~valid).sum()
        for t in THRESHOLDS:
            tn, fp, fn, tp = confusion_matrix(yv, sv >= t).ravel()
            assert [got[(score, "ALL", m, None, t)][0] for m in ("tp", "fp", "tn", "fn")] == [
                tp,
                fp,
                tn,
                fn,
            ]
        bound = got[(score, "ALL", "roc_auc_error_bound", None, None)][0]
        auc = got[(score, "ALL", "roc_auc", None, None)][0]
        assert abs(auc - roc_auc_score(yv, sv)) <= bound + 1e-12
        assert got[(score, "ALL", "log_loss", None, None)][0] == pytest.approx(
            log_loss(yv, sv), rel=1e-9
        )
        in_fr = valid & (ref["country"] == "fr")
        fr = got[(score, "country=fr", "tp", None, 0.5)][0]
        assert fr == np.sum((y[in_fr] == 1) & (s[in_fr] >= 0.5))


def test_weighted_rollup_equals_the_weighted_union(spark, stored, tmp_path):
    for day in DAYS[:2]:
        pq.write_table(stored["days"][day], tmp_path / f"{day.isoformat()}.parquet")
        path = stored["root"] / "days" / day.isoformat()
        evaluate(spark, config("w2", path, weight="w"), day)
    evaluate(spark, config("w2_union", tmp_path, weight="w"), DAYS[1])
    rows = rollup(spark, COUNTS, None, "w2", DAYS[0], DAYS[1], METRICS)
    expected = keyed(stored_rows(spark, RESULTS, model="w2_union", run_date=DAYS[1]))
    # With weights only rows are integers; positives, tp, ... are float sums of weights, and
    # fn = P - tp, tn = N - fp cancel to ~1e-14 instead of 0 (see the xfail test in
    # test_slices_weights.py), hence an absolute tolerance for values near 0.
    assert_same_metrics(keyed(rows), expected, exact={"count", "invalid_rows"}, abs_tol=1e-9)
    got = keyed(rows)
    assert got[("s7", "ALL", "invalid_rows_invalid_weight", None, None)][0] > 0
    positives = got[("s7", "ALL", "positives", None, None)][0]
    assert positives != round(positives)  # a sum of weights, not a row count


def test_days_counted_with_different_buckets_fail_naming_the_dates(spark, stored):
    odd_day = DAYS[-1] + dt.timedelta(days=2)
    evaluate(
        spark, config("m7", stored["root"] / "days" / DAYS[0].isoformat(), buckets=128), odd_day
    )
    with pytest.raises(InputError, match="different layouts") as failure:
        rollup(spark, COUNTS, RESULTS, "m7", DAYS[5], odd_day)
    message = str(failure.value)
    assert "2026-11-09" in message and "2026-11-07" in message and "'m7'" in message
    assert stored_rows(spark, RESULTS, model="m7", window_days=5) == []  # nothing written


def test_rollup_of_no_stored_day_or_a_reversed_range_fails(spark, stored):
    with pytest.raises(InputError, match="no stored counts for model 'm7'"):
        rollup(spark, COUNTS, RESULTS, "m7", dt.date(2025, 1, 1), dt.date(2025, 1, 7))
    with pytest.raises(InputError, match="after"):
        rollup(spark, COUNTS, RESULTS, "m7", DAYS[3], DAYS[1])
    with pytest.raises(InputError, match="does not exist"):
        rollup(spark, f"{DB}.no_such_counts", RESULTS, "m7", DAYS[0], DAYS[1])
