"""The results table: created on first run, one (run_date, model) replaced per run."""

from __future__ import annotations

import datetime as dt

import pytest

from tally.errors import OutputError
from tally.metrics import MetricValue
from tally.spark.results import RESULTS_SCHEMA, RunKey, result_rows, write_results

DAY1, DAY2 = dt.date(2026, 11, 21), dt.date(2026, 11, 22)


def rows(day: dt.date, model: str, auc: float) -> list[tuple]:
    values = [MetricValue("roc_auc", auc), MetricValue("pr_auc", None, reason="no positive rows"),
              MetricValue("tp", 3.0, threshold=0.5)]
    return result_rows(RunKey(run_date=day, model=model, score_column="score"), values)


def table_rows(spark, table: str) -> list[tuple]:
    return sorted(
        (r.run_date, r.model, r.metric, r.threshold, r.value, r.reason)
        for r in spark.table(table).collect()
    )


def test_rerun_replaces_only_its_date_and_model(spark):
    table = "tally_results_test.rerun"
    write_results(spark, table, rows(DAY1, "a", 0.7))
    write_results(spark, table, rows(DAY1, "b", 0.8))
    write_results(spark, table, rows(DAY2, "a", 0.6))
    write_results(spark, table, rows(DAY1, "a", 0.75))  # rerun of (DAY1, a)
    got = table_rows(spark, table)
    assert len(got) == 9  # 3 partitions x 3 metrics, no duplicates
    auc = {(d, m): v for d, m, metric, _, v, _ in got if metric == "roc_auc"}
    assert auc == {(DAY1, "a"): 0.75, (DAY1, "b"): 0.8, (DAY2, "a"): 0.6}
    null_rows = [(v, reason) for _, _, metric, _, v, reason in got if metric == "pr_auc"]
    assert null_rows == [(None, "no positive rows")] * 3


def test_table_schema_and_sql_query(spark):
    table = "tally_results_test.schema"
    write_results(spark, table, rows(DAY2, "m", 0.9))
    fields = [(f.name, f.dataType) for f in spark.table(table).schema.fields]
    assert fields == [(f.name, f.dataType) for f in RESULTS_SCHEMA.fields]
    got = spark.sql(
        f"SELECT value FROM {table} WHERE model = 'm' AND run_date = DATE'2026-11-22' "
        "AND metric = 'tp' AND threshold = 0.5"
    ).collect()
    assert [r.value for r in got] == [3.0]


def test_model_name_is_stored_verbatim_and_runs_no_sql(spark):
    table = "tally_results_test.injection"
    evil = "x'; DROP TABLE tally_results_test.injection; --"
    write_results(spark, table, rows(DAY1, "safe", 0.5))
    write_results(spark, table, rows(DAY1, evil, 0.6))
    models = {r.model for r in spark.table(table).select("model").distinct().collect()}
    assert models == {"safe", evil}


def test_existing_table_with_another_schema_is_refused(spark):
    spark.sql("CREATE DATABASE IF NOT EXISTS tally_results_test")
    spark.sql("CREATE TABLE tally_results_test.other (a INT) USING parquet")
    with pytest.raises(OutputError, match=r"tally_results_test.other exists with another schema"):
        write_results(spark, "tally_results_test.other", rows(DAY1, "a", 0.7))
    assert spark.table("tally_results_test.other").count() == 0


def test_reserved_words_as_quoted_database_and_table_names(spark):
    table = "`select`.`from`"
    write_results(spark, table, rows(DAY1, "a", 0.7))
    assert spark.table(table).count() == 3
