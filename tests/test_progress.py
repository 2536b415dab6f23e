"""log_progress: stage progress lines while a (deliberately slow) Spark job runs."""

from __future__ import annotations

import logging
import re
import time

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tally.spark.progress import log_progress

LOGGER = "tally.spark.progress"


def _lines(caplog: pytest.LogCaptureFixture, label: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and label in r.getMessage()]


def test_progress_lines_while_a_slow_job_runs(spark, caplog, tmp_path):
    path = str(tmp_path / "rows")
    spark.range(0, 1000, numPartitions=4).write.parquet(path)
    def sleep_then(x):  # nested: pickled by value (workers cannot import this test module)
        time.sleep(0.3)
        return x

    slow = F.udf(sleep_then, T.LongType())
    caplog.set_level(logging.INFO, logger=LOGGER)
    with log_progress(spark, "slow job", every_seconds=0.2) as progress:
        # a filter on the UDF, so the optimizer cannot prune it away from count()
        rows = spark.read.parquet(path).filter(F.col("id") % 64 == 0)
        total = rows.where(slow("id") >= 0).count()
    assert total == 16  # about 2.4 s of sleeping per task on 2 cores
    lines = _lines(caplog, "slow job")
    polls = [line for line in lines if " tasks" in line]
    assert polls, lines
    assert any(re.search(r"stage \d+ \(.*\) \d+/\d+ tasks", line) for line in polls), polls
    assert lines[-1].startswith("slow job: done in ")
    assert lines[-1].endswith("; 1,000 input records read")  # the 4 files' rows, all read
    assert progress.thread is not None and not progress.thread.is_alive()
    assert "tally-progress" not in ",".join(spark.sparkContext.getJobTags())


def test_exception_propagates_and_stops_the_thread(spark, caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    with pytest.raises(ZeroDivisionError), log_progress(spark, "failing", 0.05) as progress:
        time.sleep(0.2)
        raise ZeroDivisionError
    assert not progress.thread.is_alive()
    assert _lines(caplog, "failing")[-1].startswith("failing: failed after ")


def test_never_raises_into_the_job(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    with log_progress(object(), "no spark", every_seconds=0.05) as progress:
        time.sleep(0.2)  # every poll fails: logged at debug level only
    assert not progress.thread.is_alive()
    records = [r for r in caplog.records if r.name == LOGGER]
    assert all(r.levelno == logging.DEBUG for r in records[:-1])
    assert records[-1].getMessage().startswith("no spark: done in ")
    assert any("progress poll failed" in r.getMessage() for r in records)
