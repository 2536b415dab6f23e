"""Reliability: task retries, failed writes, concurrent runs, determinism, hostile names, secrets,
and a property test of the Spark count table against the numpy reference.

References are independent of the Spark path: ``tally.counts.count_binary`` (numpy, one pass over
the same rows), scikit-learn, or counts written down by hand.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark import TaskContext
from pyspark.errors import AnalysisException
from pyspark.sql import functions as F
from pyspark.sql.readwriter import DataFrameWriter
from sklearn.metrics import confusion_matrix, log_loss, roc_auc_score

import tally.spark.counts_store
import tally.spark.results
import tally.spark.tables
from helpers import job_env
from tally.config import parse_config
from tally.counts import BinaryCounts, count_binary
from tally.errors import ConfigError, OutputError
from tally.job import evaluate
from tally.metrics.binary import binary_metrics
from tally.plan import CountPlan
from tally.spark.count import collect_count_groups, count_table
from tally.spark.tables import OVERWRITE_MODE

DAY0, DAY1, DAY2 = dt.date(2026, 11, 20), dt.date(2026, 11, 21), dt.date(2026, 11, 22)
ROWS = 20_000


def scored_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (NaN = null) and scores with ties, rows on a threshold and a few invalid rows."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.float64)
    score = np.clip(rng.normal(0.3 + 0.35 * label, 0.2), 0.0, 1.0)
    score[: n // 10] = np.round(score[: n // 10], 2)  # ties
    score[n // 10 : n // 10 + 5] = 0.5  # exactly on a threshold
    label[7::997] = np.nan
    score[11::1009] = np.nan
    score[13::1013] = 1.5
    score[17::1019] = np.inf
    label[19::1021] = 2.0
    return label, score


def write_rows(path: Path, label: np.ndarray, score: np.ndarray, files: int = 1, **extra) -> str:
    """Parquet with a nullable label (NaN → null) and the scores as they are (NaN stays NaN)."""
    path.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(np.array_split(np.arange(len(label)), files)):
        columns = {
            "label": pa.array(label[part], pa.float64(), from_pandas=True),
            "score": pa.array(score[part], pa.float64()),
            **{k: pa.array(np.asarray(v)[part]) for k, v in extra.items()},
        }
        pq.write_table(pa.table(columns), path / f"part-{i}.parquet")
    return str(path)


def output(db: str, **names: str) -> dict:
    return {
        "table": f"{db}.metrics",
        "counts_table": f"{db}.counts",
        "curves_table": f"{db}.curves",
        **names,
    }


def job_config(path: str, db: str, model: str, **extra):
    raw = {
        "model": model,
        "input": {"path": path},
        "columns": {"label": "label", "score": "score"},
        "metrics": {"buckets": 1000, "thresholds": [0.5]},
        "output": output(db),
    }
    raw.update(extra)
    return parse_config(raw)


def partition_rows(spark, table: str, day: dt.date, model: str) -> list:
    return partitions_rows(spark, table, day, [model])[model]


def partitions_rows(spark, table: str, day: dt.date, models: list[str]) -> dict[str, list]:
    """The rows of each ``(day, model)`` partition of ``table``, sorted; one query."""
    df = spark.table(table).where((F.col("run_date") == day) & F.col("model").isin(models))
    rows = sorted(df.collect(), key=lambda r: tuple("" if v is None else str(v) for v in r))
    return {model: [r for r in rows if r.model == model] for model in models}


def metric_values(spark, table: str, day: dt.date, model: str) -> dict:
    rows = partition_rows(spark, table, day, model)
    got = {(r.slice, r.metric, r.threshold): r.value for r in rows}
    assert len(got) == len(rows), "duplicated result rows"
    return got


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """One 20k-row input as Parquet (3 files) and as numpy arrays for the references."""
    label, score = scored_rows(ROWS, seed=5)
    path = write_rows(tmp_path_factory.mktemp("reliability") / "in", label, score, files=3)
    return {"path": path, "label": label, "score": score}


# --- 2. faults: task retries -------------------------------------------------------------------

RETRY_SCRIPT = r'''
"""Count and write on local[2,4] (a task may fail 4 times) with injected first-attempt failures."""
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
from pyspark import TaskContext
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tally.config import InputConfig
from tally.kernels.binary import TaskTotals
from tally.plan import CountPlan
from tally.spark.count import arrow_reader, collect_count_groups, count_table
from tally.spark.readers.arrow.run import task_totals
from tally.tasks import decode_groups as decode_count_groups
from tally.spark.results import PARTITION_COLUMNS, RESULTS_SCHEMA, write_results
from tally.spark.session import start_session
from tally.spark.tables import replace_partitions

data, marks, out = (Path(a) for a in sys.argv[1:4])
spark = start_session(  # with class-data sharing where the archive is there, as `tally`
    SparkSession.builder.master("local[2,4]")
    .config("spark.sql.shuffle.partitions", "3")
    .config("spark.sql.execution.arrow.maxRecordsPerBatch", "64")
    # retries are Spark's in either catalog: Spark's in-memory one (the suite's), no Derby
    .config("spark.sql.catalogImplementation", "in-memory"),
    write_archive=False,
)


def fail_first_attempt(tag, partitions):
    """Identity on Arrow batches (mapInArrow: pandas would turn NaN scores into nulls), except
    that the first attempt of the given partitions dies after passing two batches downstream
    (so the failed attempt did part of the work)."""
    def run(batches):
        ctx = TaskContext.get()
        doomed = ctx.attemptNumber() == 0 and ctx.partitionId() in partitions
        for i, batch in enumerate(batches):
            yield batch
            if doomed and i == 1:
                (marks / f"{tag}-{ctx.stageId()}-{ctx.partitionId()}").touch()
                raise RuntimeError(f"injected failure in {tag}")
    return run


# Counting: failures in the scan stage (before the partial aggregation and its shuffle
# write) and in the merge stage (after the shuffle, where the final aggregate runs).
df = spark.read.parquet(str(data)).repartition(8)
df = df.mapInArrow(fail_first_attempt("scan", {1, 4, 6}), df.schema)
plan = CountPlan(label="label", scores=("score",), buckets=1000, thresholds=(0.3, 0.5))
cells = count_table(df, plan)
cells = cells.mapInArrow(fail_first_attempt("merge", {0, 1, 2}), cells.schema)
counts = collect_count_groups(cells, plan)[("score", "ALL")]


def save(counts, name):
    np.savez(
        out / f"{name}.npz", pos=counts.pos, neg=counts.neg, tp_at=counts.tp_at,
        fp_at=counts.fp_at, score_sum=counts.score_sum,
        sums=np.array([counts.log_loss_sum, counts.squared_error_sum]), rows=np.array(counts.rows),
    )
    (out / f"{name}.json").write_text(json.dumps(dict(counts.invalid)))


save(counts, "counts")

# The arrow reader: tasks die after counting their byte ranges, before their table moves on.
def fail_after_counting(partitions):
    def run(totals):
        ctx = TaskContext.get()
        done = list(totals)
        if ctx.attemptNumber() == 0 and ctx.partitionId() in partitions:
            (marks / f"arrow-{ctx.stageId()}-{ctx.partitionId()}").touch()
            raise RuntimeError("injected failure in arrow")
        yield from done
    return run


spark.conf.set("spark.sql.files.maxPartitionBytes", "64k")  # several tasks per file
source = arrow_reader(
    spark, spark.read.parquet(str(data)), plan, InputConfig(path=str(data), reader="arrow")
)
totals = task_totals(spark, source, plan).mapPartitions(fail_after_counting({0, 2}))
merged = totals.treeReduce(TaskTotals.merge, depth=2)
save(decode_count_groups(merged.table(plan.scores, plan.slices), plan)[("score", "ALL")], "arrow")

# Writing: tasks of the insert die after writing part of their file, then succeed.
def rows(day, version, n):
    return [("s", "ALL", f"m{i}", None, None, float(version * 100_000 + i), None, day, "m", 1)
            for i in range(n)]

day0, day1 = dt.date(2026, 11, 20), dt.date(2026, 11, 21)
write_results(spark, "retry.metrics", rows(day0, 1, 500) + rows(day1, 1, 500))  # creates it
new = spark.createDataFrame(rows(day1, 2, 2000), RESULTS_SCHEMA).repartition(4)
new = new.mapInArrow(fail_first_attempt("write", {0, 3}), new.schema)
replace_partitions(spark, "retry.metrics", new, RESULTS_SCHEMA, PARTITION_COLUMNS, "output")
stored = (
    spark.table("retry.metrics").groupBy("run_date").agg(
        F.count(F.lit(1)).alias("rows"), F.countDistinct("metric").alias("metrics"),
        F.min("value").alias("low"), F.max("value").alias("high"),
    ).collect()
)
print(json.dumps({str(r.run_date): [r.rows, r.metrics, r.low, r.high] for r in stored}))
'''


@pytest.mark.e2e  # a job of its own: on local[2,4] a task may fail 4 times
def test_retried_tasks_count_and_write_each_row_once(tmp_path, data):
    """First attempts of scan, merge and write tasks fail after doing part of their work; the
    retries succeed. Counts must equal numpy's on the same rows (no double counting) and the
    written partition must hold each row once."""
    marks, out = tmp_path / "marks", tmp_path / "out"
    marks.mkdir()
    out.mkdir()
    script = tmp_path / "retry_job.py"
    script.write_text(RETRY_SCRIPT)
    # the executor's logs of the failed attempts
    env = job_env(tmp_path / "spark", TALLY_SPARK_LOG_LEVEL="warn")
    done = subprocess.run(
        [sys.executable, str(script), data["path"], str(marks), str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    failed: dict[str, set[int]] = {}
    for mark in marks.iterdir():  # <tag>-<stage>-<partition>, one per failed first attempt
        tag, _, partition = mark.name.split("-")
        failed.setdefault(tag, set()).add(int(partition))
    assert failed.get("scan") == {1, 4, 6}, failed  # the failures did happen
    assert failed.get("merge"), failed
    assert failed.get("write") == {0, 3}, failed
    assert failed.get("arrow") == {0, 2}, failed
    assert "injected failure in scan" in done.stderr  # and were retried, not swallowed
    assert "injected failure in arrow" in done.stderr

    expected = count_binary(data["label"], data["score"], 1000, (0.3, 0.5))
    for name in ("counts", "arrow"):  # Spark's reader, then the arrow reader
        saved = np.load(out / f"{name}.npz")
        got = BinaryCounts(
            pos=saved["pos"],
            neg=saved["neg"],
            thresholds=(0.3, 0.5),
            tp_at=saved["tp_at"],
            fp_at=saved["fp_at"],
            log_loss_sum=float(saved["sums"][0]),
            squared_error_sum=float(saved["sums"][1]),
            invalid=json.loads((out / f"{name}.json").read_text()),
            score_sum=saved["score_sum"],
            rows=int(saved["rows"]),
        )
        assert got.same_counts(expected, rtol=1e-12), name
        assert got.count + got.invalid_rows == ROWS

    stored = json.loads(done.stdout.strip().splitlines()[-1])
    assert stored["2026-11-21"] == [2000, 2000, 200_000.0, 201_999.0]  # new rows, each once
    assert stored["2026-11-20"] == [500, 500, 100_000.0, 100_499.0]  # the other date untouched


# --- 2. faults: a write that fails halfway -----------------------------------------------------


def _failing_midway(df):
    """The same rows, in two tasks of the insert job: the first writes and commits its file,
    the second hands all its rows to the writer, waits, and dies (local[2]: no retry)."""

    def run(batches):
        yield from batches
        if TaskContext.get().partitionId() == 1:
            time.sleep(1.5)  # lets the other task commit first
            raise RuntimeError("injected write failure")

    df = df.repartition(2)
    return df.mapInArrow(run, df.schema)


def same_rows(a: list, b: list) -> bool:
    """Equal partitions: the same rows (keyed by their non-double columns and ``threshold``),
    doubles to 1e-12 relative (float sums may be added up in another order)."""
    if len(a) != len(b):
        return False

    def keyed(rows: list) -> dict:
        out = {}
        for r in rows:
            d = r.asDict()
            key = tuple(
                (k, v) for k, v in d.items() if k == "threshold" or not isinstance(v, float)
            )
            out[key] = [v for k, v in d.items() if k != "threshold" and isinstance(v, float)]
        return out

    ka, kb = keyed(a), keyed(b)
    if len(ka) != len(a) or ka.keys() != kb.keys():
        return False
    return all(all(_same_float(x, y) for x, y in zip(ka[k], kb[k], strict=True)) for k in ka)


def _same_float(x: float, y: float) -> bool:
    return x == y or math.isclose(x, y, rel_tol=1e-12) or (math.isnan(x) and math.isnan(y))


WRITE_ORDER = ("counts", "metrics", "curves")  # the order in which evaluate writes its tables


@pytest.mark.hive_catalog  # the partitions are registered in the metastore that jobs use
def test_write_failing_midway_leaves_each_partition_whole(spark, tmp_path, monkeypatch):
    """What this proves: when the Spark insert job of one output table fails after one of its
    tasks wrote and committed a file and another died — injected into the 1st (counts), 2nd
    (results) or 3rd (curves) `replace_partitions` call of `evaluate`, one after another in
    three failed runs — the (run_date, model) partition of every table holds exactly the rows
    of one run, all of the previous run or all of the new one, never a mix or duplicates: the
    failing table and the ones after it hold the previous run, the tables written before it
    may hold the new run (each table is replaced atomically on its own, not all together);
    neighbouring partitions are untouched; a rerun replaces everything. Not covered: a driver
    killed while a job commits (moves staged files into the partition folders)."""
    db = "tally_crash"
    label, score = scored_rows(2_000, seed=8)
    new_label, new_score = scored_rows(3_000, seed=9)
    old = job_config(write_rows(tmp_path / "old", label, score), db, "m")
    new = job_config(
        write_rows(tmp_path / "new", new_label, new_score),
        db,
        "m",
        metrics={"buckets": 1000, "thresholds": [0.3, 0.7]},
    )
    evaluate(spark, old, DAY1)
    evaluate(spark, job_config(old.input.path, db, "other"), DAY1)  # a neighbour
    models = ["m", "other"]
    before = {t: partitions_rows(spark, f"{db}.{t}", DAY1, models) for t in WRITE_ORDER}
    real = tally.spark.tables.replace_partitions

    after_failure = {}  # failing table -> each table's partition after that failed run
    for failing_write in WRITE_ORDER:
        calls: list[str] = []

        def replace_partitions(
            spark_, table, df, *args, failing=failing_write, calls=calls, **kwargs
        ):
            calls.append(table)
            if table == f"{db}.{failing}":
                df = _failing_midway(df)
            return real(spark_, table, df, *args, **kwargs)

        with monkeypatch.context() as patched:
            for module in (tally.spark.counts_store, tally.spark.results):
                patched.setattr(module, "replace_partitions", replace_partitions)
            with pytest.raises(Exception, match="injected write failure"):
                evaluate(spark, new, DAY1)
        upto = WRITE_ORDER.index(failing_write) + 1
        assert calls == [f"{db}.{t}" for t in WRITE_ORDER[:upto]], failing_write
        now = {t: partitions_rows(spark, f"{db}.{t}", DAY1, models) for t in WRITE_ORDER}
        after_failure[failing_write] = {t: now[t]["m"] for t in WRITE_ORDER}
        for t in WRITE_ORDER:  # the neighbour's partitions are untouched
            assert same_rows(now[t]["other"], before[t]["other"]), (failing_write, t)

    evaluate(spark, new, DAY1)  # the rerun replaces every table's partition completely
    rerun = {t: partition_rows(spark, f"{db}.{t}", DAY1, "m") for t in WRITE_ORDER}
    for failing_write, tables in after_failure.items():
        for t in WRITE_ORDER:
            where = (failing_write, t)
            assert not same_rows(rerun[t], before[t]["m"]), f"{where}: old, new alike"
            if WRITE_ORDER.index(t) >= WRITE_ORDER.index(failing_write):
                assert same_rows(tables[t], before[t]["m"]), f"{where}: not the old run"
            else:
                assert same_rows(tables[t], before[t]["m"]) or same_rows(
                    tables[t], rerun[t]
                ), f"{where}: neither the old nor the new run"
    got = metric_values(spark, f"{db}.metrics", DAY1, "m")
    assert {t for (_, m, t) in got if m == "tp"} == {0.3, 0.7}
    valid = np.isin(new_label, [0, 1]) & (new_score >= 0) & (new_score <= 1)
    assert got[("ALL", "count", None)] == valid.sum()
    assert sum(r.n for r in rerun["counts"] if r.slice == "ALL") == len(new_label)


# --- 2. two runs for different dates or models -------------------------------------------------


def _inputs(tmp_path: Path, sizes: dict[str, int]) -> dict[str, str]:
    """Inputs of different, known sizes (all rows valid), so each run's `count` tells it apart."""
    paths = {}
    for name, n in sizes.items():
        rng = np.random.default_rng(n)
        label = (rng.random(n) < 0.5).astype(np.float64)
        paths[name] = write_rows(tmp_path / name, label, rng.random(n))
    return paths


def test_runs_for_other_dates_and_models_keep_each_others_rows(spark, tmp_path):
    db = "tally_sequential"
    paths = _inputs(tmp_path, {"a1": 11, "b1": 12, "a2": 13, "b2": 14, "a1_again": 15})
    runs = [
        ("a", DAY1, "a1"),
        ("b", DAY1, "b1"),
        ("a", DAY2, "a2"),
        ("b", DAY2, "b2"),
        ("a", DAY1, "a1_again"),
    ]  # interleaved models and dates, then a rerun
    for model, day, name in runs:
        evaluate(spark, job_config(paths[name], db, model), day)
    expected = {("a", DAY1): 15, ("b", DAY1): 12, ("a", DAY2): 13, ("b", DAY2): 14}
    for (model, day), n in expected.items():
        got = metric_values(spark, f"{db}.metrics", day, model)
        assert got[("ALL", "count", None)] == n, (model, day)
        counts = partition_rows(spark, f"{db}.counts", day, model)
        assert sum(r.n for r in counts) == n
    assert spark.table(f"{db}.metrics").select("run_date", "model").distinct().count() == 4


@pytest.mark.hive_catalog
def test_concurrent_runs_in_one_session_keep_each_others_rows(spark, tmp_path, monkeypatch):
    """Two `evaluate` calls in two threads of one process (one SparkSession), for different
    models, both tables existing. The overwrite mode is a session-wide conf that each write
    sets to dynamic and then puts back: were two inserts to overlap, one could run after the
    other put back "static" and delete every other partition. Each insert is slowed down to
    widen that window; every insert must see the dynamic mode, none may overlap another, and
    both runs' rows must be there."""
    db = "tally_threads"
    paths = _inputs(tmp_path, {"seed": 9, "a": 10, "b": 11})
    evaluate(spark, job_config(paths["seed"], db, "seed"), DAY0)  # both tables exist
    real_insert = DataFrameWriter.insertInto
    results_table = f"{db}.metrics"
    guard = threading.Lock()
    active, overlaps, modes = [0], [0], []

    def insert_into(writer, table, overwrite=None):
        with guard:
            active[0] += 1
            overlaps[0] += active[0] > 1
        try:
            time.sleep(0.3)
            modes.append(spark.conf.get(OVERWRITE_MODE, None))
            return real_insert(writer, table, overwrite)
        finally:
            with guard:
                active[0] -= 1

    errors: list[BaseException] = []

    def run(model: str) -> None:
        try:
            evaluate(spark, job_config(paths[model], db, model), DAY1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    monkeypatch.setattr(DataFrameWriter, "insertInto", insert_into)
    try:
        threads = [threading.Thread(target=run, args=(m,), name=f"run-{m}") for m in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    finally:
        monkeypatch.undo()
    assert errors == []
    assert modes and set(modes) == {"dynamic"}, modes
    assert overlaps[0] == 0
    assert spark.conf.get(OVERWRITE_MODE, None) in (None, "static")  # put back afterwards
    for model, day, n in [("seed", DAY0, 9), ("a", DAY1, 10), ("b", DAY1, 11)]:
        got = metric_values(spark, results_table, day, model)
        assert got.get(("ALL", "count", None)) == n, (model, day)


# --- 2. determinism ---------------------------------------------------------------------------


def test_counts_and_metrics_do_not_depend_on_partitioning_or_run(spark, spark_conf, data, tmp_path):
    """1, 7 and 50 input partitions, 7 also into 40 shuffle partitions (adaptive execution
    off, so they stay 40: more than the rows' groups need, many reducers get few or no
    rows), and a second run of the 7: identical count tables (integer columns exactly, float
    sums to 1e-12 relative), identical metrics (1e-12), and equal to numpy's counts of the
    same rows. (Each run varies one cut: Spark's default of 200 shuffle partitions took 20 s
    of this test's 45 on 2 cores and checks nothing 40 do not; 50 input partitions of 20k
    rows, 400 each, split every slice's rows as 200 did.)"""
    rng = np.random.default_rng(1)
    country = rng.choice(["de", "fr", "us", None], ROWS)
    second = np.clip(data["score"] * 0.5 + rng.random(ROWS) * 0.5, 0.0, 1.0)
    path = write_rows(tmp_path / "in", data["label"], data["score"], second=second, country=country)
    frame = spark.read.parquet(path)
    plan = CountPlan(
        label="label",
        scores=("score", "second"),
        buckets=1000,
        thresholds=(0.3, 0.5),
        slices=(("country",),),
    )

    def counted(partitions: int) -> tuple[list, dict]:
        cells = count_table(frame.repartition(partitions), plan).cache()
        rows = sorted(cells.collect(), key=lambda r: (r.score_column, r.slice, r.cell))
        groups = collect_count_groups(cells, plan)
        cells.unpersist()
        return rows, groups

    runs = [counted(1), counted(7), counted(7), counted(50)]
    with spark_conf(spark__sql__shuffle__partitions="40", spark__sql__adaptive__enabled="false"):
        runs.append(counted(7))
    first_rows, first_groups = runs[0]
    integer, floating = (
        ("score_column", "slice", "cell", "n"),
        ("w", "wy", "w_loss", "w_sqerr", "w_score"),
    )
    for rows, groups in runs[1:]:
        assert [tuple(r[c] for c in integer) for r in rows] == [
            tuple(r[c] for c in integer) for r in first_rows
        ]
        for c in floating:  # null where every row of a cell is invalid
            a = np.array([np.nan if r[c] is None else r[c] for r in rows])
            b = np.array([np.nan if r[c] is None else r[c] for r in first_rows])
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, equal_nan=True)
        assert groups.keys() == first_groups.keys()
        for key, counts in groups.items():
            assert counts.same_counts(first_groups[key], rtol=1e-12), key
            for m, ref in zip(
                binary_metrics(counts), binary_metrics(first_groups[key]), strict=True
            ):
                assert (m.metric, m.threshold, m.reason) == (ref.metric, ref.threshold, ref.reason)
                assert m.value == ref.value or m.value == pytest.approx(ref.value, rel=1e-12)

    # The independent reference: numpy's counts of each (score column, slice)'s rows.
    label = data["label"]
    for column, scores in (("score", data["score"]), ("second", second)):
        for value in ("de", "fr", "us", None):
            mask = np.array([c == value for c in country])
            expected = count_binary(label[mask], scores[mask], 1000, (0.3, 0.5))
            key = (column, f"country={'null' if value is None else value}")
            assert first_groups[key].same_counts(expected, rtol=1e-12), key
        expected = count_binary(label, scores, 1000, (0.3, 0.5))
        assert first_groups[(column, "ALL")].same_counts(expected, rtol=1e-12)


# --- 3. hostile names -------------------------------------------------------------------------


def test_backtick_and_dot_column_names_as_label_score_and_slice(spark, tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    label = (rng.random(n) < 0.4).astype(np.int64)
    score = np.round(np.clip(rng.normal(0.35 + 0.3 * label, 0.2), 0, 1), 1)
    path = tmp_path / "in"
    path.mkdir()
    decoy = pa.StructArray.from_arrays([pa.array(1.0 - score)], names=["y"])
    pq.write_table(
        pa.table({"a`b": pa.array(label), "x.y": pa.array(score), "x": decoy}),
        path / "part-0.parquet",
    )  # `x`.`y` holds 1 − score: misreading x.y flips AUC
    db = "tally_names"
    cfg = parse_config(
        {
            "model": "m",
            "input": {"path": str(path)},
            "columns": {"label": "a`b", "score": "x.y"},
            "metrics": {"buckets": 20, "thresholds": [0.5]},
            "slices": [["a`b"], ["x.y"]],
            "output": output(db),
        }
    )
    evaluate(spark, cfg, DAY1)
    got = metric_values(spark, f"{db}.metrics", DAY1, "m")
    assert {r.score_column for r in partition_rows(spark, f"{db}.metrics", DAY1, "m")} == {"x.y"}
    # Scores are multiples of 0.1, one distinct score per bucket of width 1/20: exact AUC.
    assert got[("ALL", "roc_auc", None)] == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    tn, fp, fn, tp = confusion_matrix(label, score >= 0.5, labels=[0, 1]).ravel()
    assert [got[("ALL", m, 0.5)] for m in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]
    assert got[("ALL", "log_loss", None)] == pytest.approx(log_loss(label, score), rel=1e-12)
    for y in (0, 1):
        assert got[(f"a`b={y}", "count", None)] == (label == y).sum()
    for s in np.unique(score):
        assert got[(f"x.y={s}", "count", None)] == (score == s).sum()
        assert got[(f"x.y={s}", "positives", None)] == label[score == s].sum()


@pytest.mark.hive_catalog
def test_model_name_with_sql_is_stored_verbatim_and_drops_nothing(spark, tmp_path):
    db = "tally_evil_model"
    evil = f"x'; DROP TABLE {db}.metrics; --"
    paths = _inputs(tmp_path, {"safe": 5, "evil": 6})
    evaluate(spark, job_config(paths["safe"], db, "safe"), DAY1)
    summary = evaluate(spark, job_config(paths["evil"], db, evil), DAY1)
    assert summary.model == evil
    for table in ("metrics", "counts", "curves"):
        assert spark.catalog.tableExists(f"{db}.{table}")
        models = spark.table(f"{db}.{table}").select("model").distinct().collect()
        assert {r.model for r in models} == {"safe", evil}
    assert metric_values(spark, f"{db}.metrics", DAY1, evil)[("ALL", "count", None)] == 6
    assert metric_values(spark, f"{db}.metrics", DAY1, "safe")[("ALL", "count", None)] == 5


@pytest.mark.parametrize(
    "key",
    [
        "output.table",
        "output.counts_table",
        "output.curves_table",
        "output.checks_table",
        "input.table",
    ],
)
def test_table_names_with_sql_are_config_errors_before_anything_runs(key):
    """``db.t; DROP TABLE db.victim; --`` is not a table name: refused when the config is read
    (exit 2, naming the key), so no Spark statement ever sees it."""
    db = "tally_evil_table"
    evil = f"{db}.t; DROP TABLE {db}.victim; --"
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"'{key}' must be a table name") as failure:
        if section == "input":
            job_config("unused", db, "m", input={"table": evil})
        else:
            job_config("unused", db, "m", output=output(db, **{name: evil}))
    assert failure.value.exit_code == 2 and evil in str(failure.value)


@pytest.mark.hive_catalog
def test_quoted_table_name_holding_sql_is_only_a_name(spark, tmp_path):
    """A name that *is* a valid quoted identifier holding SQL text is only a name."""
    db = "tally_evil_quoted"
    paths = _inputs(tmp_path, {"ok": 5})
    evaluate(spark, job_config(paths["ok"], db, "victim"), DAY1)
    quoted = f"{db}.`t; DROP TABLE {db}.metrics; --`"
    cfg = job_config(paths["ok"], db, "m", output=output(db, table=quoted))
    try:
        evaluate(spark, cfg, DAY2)
    except (AnalysisException, OutputError):
        pass  # refused by the catalog: fine, as long as nothing ran
    else:
        assert spark.catalog.tableExists(quoted)
    assert metric_values(spark, f"{db}.metrics", DAY1, "victim")[("ALL", "count", None)] == 5


# --- 3. secrets in logs (the `tally` subprocesses' logs: test_end_to_end.py) -------------------

SECRET = "s3cr3t-9f2c41"


def test_job_log_shows_config_but_no_environment(spark, tmp_path, monkeypatch, caplog, capsys):
    import logging

    from tally.cli import main

    monkeypatch.setenv("TALLY_TEST_SECRET", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET + "-aws")
    caplog.set_level(logging.INFO)
    paths = _inputs(tmp_path, {"in": 7})
    config = tmp_path / "job.yaml"
    config.write_text(
        "model: logged\n"
        f"input: {{path: {paths['in']}}}\n"
        "columns: {label: label, score: score}\n"
        "output: {table: tally_logs.metrics, counts_table: tally_logs.counts,"
        " curves_table: tally_logs.curves}\n"
    )
    assert main(["evaluate", "--config", str(config), "--run-date", "2026-11-21"]) == 0
    out, err = capsys.readouterr()
    assert "model='logged'" in caplog.text and "tally_logs.metrics" in caplog.text
    assert "done: read 7 rows" in caplog.text
    for text in (caplog.text, out, err):
        assert SECRET not in text


# --- 4. property: Spark counts equal numpy counts, however rows are split ----------------------

LABELS = st.sampled_from([0.0, 1.0, 1.0, 0.0, None, 2.0])
SCORES = st.one_of(
    st.sampled_from([0.0, 0.5, 1.0, 0.3, math.nan, math.inf, -0.25, 1.25, None]),
    st.floats(0.0, 1.0),
)
PARTS = st.lists(st.lists(st.tuples(LABELS, SCORES), max_size=25), min_size=1, max_size=6)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=PARTS,
    buckets=st.sampled_from([1, 3, 10, 16, 1000]),
    thresholds=st.lists(st.sampled_from([0.0, 0.25, 0.3, 0.5, 1.0]), max_size=3, unique=True),
)
def test_spark_count_table_equals_numpy_counts_for_any_partitioning(
    spark, parts, buckets, thresholds
):
    thresholds = tuple(sorted(thresholds))
    rdd = spark.sparkContext.parallelize(parts, len(parts)).flatMap(lambda part: part)
    df = spark.createDataFrame(rdd, "label double, score double")
    plan = CountPlan(label="label", scores=("score",), buckets=buckets, thresholds=thresholds)
    got = collect_count_groups(count_table(df, plan), plan)[("score", "ALL")]

    rows = [row for part in parts for row in part]
    label = np.array([math.nan if y is None else y for y, _ in rows], np.float64)
    score = np.array([math.nan if s is None else s for _, s in rows], np.float64)
    expected = count_binary(label, score, buckets, thresholds)
    # numpy cannot tell a null score from NaN; Spark counts a null score as null_score.
    null_scores = sum(1 for y, s in rows if y is not None and s is None)
    invalid = dict(expected.invalid)
    invalid["nan_score"] -= null_scores
    invalid["null_score"] += null_scores
    assert got.invalid == invalid
    expected = BinaryCounts(**{**expected.__dict__, "invalid": invalid})
    assert got.same_counts(expected, rtol=1e-12)
