"""input.where and input.query through the in-process job: which rows, which files, which reader.

The input is 30 daily partitions (``ds=2026-11-01`` … ``ds=2026-11-30``, two Parquet files
each) written with pyarrow from one pandas frame; every expected number is the same rows
filtered in pandas (with Spark SQL's semantics spelled out where they differ from
pyarrow's: a NaN score passes ``score >= 0.5``) and scored by scikit-learn.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

from tally.config import parse_config
from tally.errors import ConfigError, InputError
from tally.job import evaluate
from tally.run_date import render_input
from tally.spark.selection import select_rows

DB = "tally_where"
DAY = dt.date(2026, 11, 17)
DAYS = [dt.date(2026, 11, d) for d in range(1, 31)]
BUCKETS = 1024
FILES_PER_DAY = 2
ROWS_PER_FILE = 150


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Every row of the input, with its partition ``ds`` (a string, as in the paths).

    Scores are bucket centres at B = 1024, so the bucketed AUC is exact; one row in 25 has
    a NaN score, and countries have 2 or 3 letters (or none).
    """
    rng = np.random.default_rng(15)
    n = len(DAYS) * FILES_PER_DAY * ROWS_PER_FILE
    label = rng.integers(0, 2, n)
    score = (np.clip(np.round(rng.normal(0.35 + 0.3 * label, 0.2) * BUCKETS), 0, BUCKETS - 1)
             + 0.5) / BUCKETS
    score[rng.random(n) < 0.04] = np.nan
    country = rng.choice(np.array(["US", "DE", "FRA", "GBR", None], dtype=object), n)
    ds = np.repeat([d.isoformat() for d in DAYS], FILES_PER_DAY * ROWS_PER_FILE)
    part = np.tile(np.repeat(np.arange(FILES_PER_DAY), ROWS_PER_FILE), len(DAYS))
    return pd.DataFrame(
        {"label": label, "score": score, "country": country, "ds": ds, "part": part}
    )


@pytest.fixture(scope="module")
def daily(rows: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The rows as ``<root>/ds=<day>/part-<i>.parquet`` (``ds`` not stored in the files)."""
    root = tmp_path_factory.mktemp("where") / "scores"
    for (ds, part), group in rows.groupby(["ds", "part"]):
        folder = root / f"ds={ds}"
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.table(
            {
                "label": pa.array(group.label.to_numpy(), pa.int64()),
                "score": pa.array(group.score.to_numpy(), pa.float64()),
                "country": pa.array(group.country.tolist(), pa.string()),
            }
        )
        pq.write_table(table, folder / f"part-{part}.parquet")
    return str(root)


@pytest.fixture(scope="module")
def daily_table(spark, daily: str) -> str:
    """The same rows as a catalog table partitioned by ``ds``."""
    name = f"{DB}.scores_by_day"
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {DB}")
    spark.sql(f"DROP TABLE IF EXISTS {name}")
    spark.read.parquet(daily).repartition("ds").write.partitionBy("ds").saveAsTable(name)
    return name


def config(model: str, source: dict, **extra):
    raw = {
        "model": model,
        "input": source,
        "columns": {"label": "label", "score": "score"},
        "metrics": {"buckets": BUCKETS, "thresholds": [0.5]},
        "output": {
            "table": f"{DB}.metrics",
            "counts_table": f"{DB}.counts",
            "curves_table": f"{DB}.curves",
        },
    }
    raw.update(extra)
    return parse_config(raw)


def stored(spark, model: str, day: dt.date = DAY) -> dict:
    """{(slice, metric, threshold): value} of one run."""
    got = spark.sql(
        f"SELECT slice, metric, threshold, value FROM {DB}.metrics "
        f"WHERE model = '{model}' AND run_date = DATE'{day}'"
    ).collect()
    return {(r.slice, r.metric, r.threshold): r.value for r in got}


def assert_scored_like(got: dict, expected: pd.DataFrame, slice_: str = "ALL") -> None:
    """Count, invalid rows (NaN scores), AUCs, log loss and tp at 0.5 against scikit-learn."""
    valid = expected[expected.score.notna()]
    y, s = valid.label.to_numpy(), valid.score.to_numpy()
    assert got[(slice_, "count", None)] == len(valid)
    assert got[(slice_, "invalid_rows", None)] == len(expected) - len(valid)
    assert got[(slice_, "positives", None)] == int(y.sum())
    assert got[(slice_, "roc_auc", None)] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert got[(slice_, "pr_auc", None)] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert got[(slice_, "log_loss", None)] == pytest.approx(log_loss(y, s), rel=1e-12)
    assert got[(slice_, "tp", 0.5)] == int(((s >= 0.5) & (y == 1)).sum())


def run(spark, caplog, cfg, day: dt.date = DAY) -> str:
    """Evaluate ``cfg`` for ``day``; the log of the run (tally's INFO lines)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tally"):
        evaluate(spark, cfg, day)
    return caplog.text


# --- a partition filter: only the selected partitions' files are read ----------------------


def test_one_day_of_30_on_a_path_reads_one_partitions_files(spark, caplog, rows, daily):
    cfg = config("path_day", {"path": daily, "where": "ds = '{run_date}'"})
    log = run(spark, caplog, cfg)
    assert "input.where: ds = '2026-11-17'" in log
    assert "input.where selects 1 of 30 partition(s) of" in log
    assert f"({FILES_PER_DAY} file(s)); only those are read" in log
    assert f"reading {FILES_PER_DAY} Parquet file(s) with pyarrow" in log
    assert_scored_like(stored(spark, "path_day"), rows[rows.ds == "2026-11-17"])


def test_the_selected_files_are_those_of_the_selected_partitions(spark, daily):
    """What the arrow reader would read, straight from the selection (no counting)."""
    source = render_input(
        config("x", {"path": daily, "where": "ds BETWEEN '{run_date-2}' AND '{run_date}'"}).input,
        DAY,
    )
    selection = select_rows(spark, source)
    folders = sorted({f.rsplit("/", 2)[-2] for f in selection.df.inputFiles()})
    assert folders == ["ds=2026-11-15", "ds=2026-11-16", "ds=2026-11-17"]
    assert len(selection.df.inputFiles()) == 3 * FILES_PER_DAY
    assert selection.source.where is None  # the files hold exactly the selected rows
    assert selection.df.schema == spark.read.parquet(daily).schema


@pytest.mark.hive_catalog
def test_one_day_of_30_in_a_catalog_table_reads_one_partitions_files(
    spark, caplog, rows, daily_table
):
    cfg = config("table_day", {"table": daily_table, "where": "ds = '{run_date}'"})
    log = run(spark, caplog, cfg)
    assert f"input.where selects 1 partition(s) of table {daily_table} (" in log
    assert "reading " in log and " Parquet file(s) with pyarrow" in log
    assert_scored_like(stored(spark, "table_day"), rows[rows.ds == "2026-11-17"])


def test_a_partition_column_as_a_slice_is_counted_by_spark(spark, caplog, rows, daily):
    """``ds`` is not stored in the files: the arrow reader cannot read it, Spark's can."""
    where = "ds BETWEEN '{run_date-2}' AND '{run_date}'"
    cfg = config("by_day", {"path": daily, "where": where}, slices=[["ds"]])
    log = run(spark, caplog, cfg)
    assert "input.where selects 3 of 30 partition(s)" in log
    assert "reading the input with Spark" in log and "ds" in log
    got = stored(spark, "by_day")
    window = rows[rows.ds.between("2026-11-15", "2026-11-17")]
    assert_scored_like(got, window)
    for ds, group in window.groupby("ds"):
        assert_scored_like(got, group, slice_=f"ds={ds}")


# --- a row filter: Spark's reader applies it ---------------------------------------------


def test_a_score_filter_keeps_nan_rows_as_spark_sql_does(spark, caplog, rows, daily):
    """In Spark SQL NaN is larger than any number: ``score >= 0.5`` keeps the NaN rows
    (then counted invalid, nan_score), where a pyarrow filter would drop them."""
    where = "ds = '{run_date}' AND score >= 0.5"
    log = run(spark, caplog, config("high", {"path": daily, "where": where}))
    assert "reads columns other than the partition column(s) ds: Spark's reader applies it" in log
    day = rows[rows.ds == "2026-11-17"]
    expected = day[(day.score >= 0.5) | day.score.isna()]
    assert expected.score.isna().sum() > 0  # the case is there
    assert_scored_like(stored(spark, "high"), expected)


def test_a_filter_spark_cannot_push_down_is_applied(spark, caplog, rows, daily):
    where = "ds = '{run_date}' AND length(country) = 2"
    log = run(spark, caplog, config("two_letters", {"path": daily, "where": where}))
    assert "Spark's reader applies it" in log
    day = rows[rows.ds == "2026-11-17"]
    two = day[day.country.notna() & (day.country.str.len() == 2)]
    assert 0 < len(two) < len(day)
    assert_scored_like(stored(spark, "two_letters"), two)


def test_a_nondeterministic_partition_filter_is_a_row_filter(spark, daily):
    source = render_input(
        config("x", {"path": daily, "where": "ds = '{run_date}' AND rand() < 2"}).input, DAY
    )
    selection = select_rows(spark, source)
    assert selection.source.where == "ds = '2026-11-17' AND rand() < 2"  # kept: Spark applies it


# --- input.query -------------------------------------------------------------------------


def test_query_joins_labels_and_is_read_by_spark(spark, caplog, rows, daily):
    """Scores without labels joined with a labels table by request id."""
    day = rows[rows.ds == "2026-11-17"].reset_index(drop=True)
    ids = pd.DataFrame({"request_id": np.arange(len(day)), "ds": day.ds})
    scores = spark.createDataFrame(ids.assign(score=day.score.astype(float)))
    scores.write.mode("overwrite").saveAsTable(f"{DB}.served")
    labels = pd.DataFrame({"request_id": np.arange(len(day))[::2], "label": day.label[::2]})
    spark.createDataFrame(labels).write.mode("overwrite").saveAsTable(f"{DB}.outcomes")
    query = (
        f"SELECT s.score, o.label FROM {DB}.served s JOIN {DB}.outcomes o USING (request_id) "
        "WHERE s.ds = '{run_date}'"
    )
    log = run(spark, caplog, config("joined", {"query": query}))
    assert "input.query: SELECT s.score, o.label FROM" in log
    assert "WHERE s.ds = '2026-11-17'" in log
    assert "Spark's reader reads its rows" in log
    assert_scored_like(stored(spark, "joined"), day.iloc[::2])


# --- no rows, and bad predicates -----------------------------------------------------------


def test_a_filter_that_selects_no_rows_fails_naming_it(spark, daily):
    cfg = config("nothing", {"path": daily, "where": "ds = '{run_date+30}'"})
    with pytest.raises(InputError) as info:
        evaluate(spark, cfg, DAY)
    assert str(info.value) == (
        f"path {daily} where ds = '2026-12-17' holds no rows; nothing was written "
        "(input.allow_empty: true writes a count of 0)"
    )
    assert stored(spark, "nothing") == {}


def test_allow_empty_writes_a_count_of_0(spark, daily):
    cfg = config("nothing_allowed", {"path": daily, "where": "ds = '{run_date+30}'",
                                     "allow_empty": True})
    evaluate(spark, cfg, DAY)
    got = stored(spark, "nothing_allowed")
    assert got[("ALL", "count", None)] == 0
    assert got[("ALL", "roc_auc", None)] is None


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ({"where": "ds = = '{run_date}'"}, ConfigError,
         "input.where does not parse: [PARSE_SYNTAX_ERROR] Syntax error at or near '='"),
        ({"where": "dss = '{run_date}'"}, InputError,
         "input.where: [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function "
         "parameter with name `dss` cannot be resolved."),
        ({"query": f"SELECT * FROM {DB}.no_such_table"}, InputError,
         "input.query: [TABLE_OR_VIEW_NOT_FOUND] The table or view "
         f"`{DB}`.`no_such_table` cannot be found."),
        ({"query": f"SELECT *\nFORM {DB}.served"}, ConfigError,
         "input.query does not parse: [PARSE_SYNTAX_ERROR] Syntax error at or near"),
        ({"query": f"WITH x AS (SELECT 1) INSERT INTO {DB}.served SELECT * FROM x"},
         ConfigError, "input.query does not parse: [PARSE_SYNTAX_ERROR]"),
    ],
)
def test_a_bad_where_or_query_is_one_line(spark, daily, source, error, message):
    if "where" in source:
        source = {"path": daily, **source}
    with pytest.raises(error) as info:
        evaluate(spark, config("bad", source), DAY)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
    assert stored(spark, "bad") == {}


def test_a_parse_error_in_a_query_names_the_query_s_own_line(spark):
    with pytest.raises(ConfigError, match=r"\(line 2, pos 0\)"):
        evaluate(spark, config("bad", {"query": "SELECT 1 AS label\nFORM x"}), DAY)


def test_reader_arrow_refuses_a_row_filter_and_takes_a_partition_filter(spark, daily):
    """Under ``input.reader: arrow`` a row filter is an error naming it, never ignored."""
    from tally.job import plan_of
    from tally.spark.count import arrow_reader

    def reader_of(where: str):
        cfg = config("x", {"path": daily, "where": where, "reader": "arrow"})
        selection = select_rows(spark, render_input(cfg.input, DAY))
        return arrow_reader(spark, selection.df, plan_of(cfg), selection.source)

    assert reader_of("ds = '{run_date}'").files == FILES_PER_DAY
    with pytest.raises(InputError) as info:
        reader_of("ds = '{run_date}' AND score >= 0.5")
    assert str(info.value) == (
        "input.reader is 'arrow' but input.where filters rows within files, which Spark's "
        "reader does"
    )
