"""The results table: created on first run, one (run_date, model) replaced per run."""

from __future__ import annotations

import datetime as dt

import pytest

from tally.errors import OutputError
from tally.metrics import MetricValue
from tally.spark.results import RunKey, result_rows, write_results

pytestmark = pytest.mark.hive_catalog  # how the table behaves in the metastore jobs use

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


#: The results table as README's "Results table" section documents it: the SQL contract
#: that queries, dashboards and the report rely on, column by column, partition columns last.
PUBLIC_SCHEMA = [
    ("score_column", "string"),
    ("slice", "string"),
    ("metric", "string"),
    ("class", "string"),
    ("threshold", "double"),
    ("value", "double"),
    ("reason", "string"),
    ("run_date", "date"),
    ("model", "string"),
    ("window_days", "int"),
]
PUBLIC_PARTITIONS = ["run_date", "model", "window_days"]


def described(spark, table: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(column, SQL type) of every column, and the partition columns, as DESCRIBE says."""
    rows = [(r.col_name, r.data_type) for r in spark.sql(f"DESCRIBE TABLE {table}").collect()]
    sections = [i for i, (name, _) in enumerate(rows) if name.startswith("#")]
    columns = rows[: sections[0]] if sections else rows
    start = next(i for i, (name, _) in enumerate(rows) if name == "# Partition Information")
    partitions = []
    for name, _ in rows[start + 1 :]:
        if not name or (name.startswith("#") and name != "# col_name"):
            break
        if name != "# col_name":
            partitions.append(name)
    return columns, partitions


def test_table_schema_and_sql_query(spark):
    table = "tally_results_test.schema"
    write_results(spark, table, rows(DAY2, "m", 0.9))
    columns, partitions = described(spark, table)
    assert columns == PUBLIC_SCHEMA
    assert partitions == PUBLIC_PARTITIONS
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
