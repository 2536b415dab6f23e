"""Shared fixtures: one local SparkSession for the whole run, and isolated Spark conf dirs.

The session and every job a test starts as a subprocess get their own Derby
metastore and warehouse under pytest's tmp dir, never the project's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers import TEST_JAVA_OPTIONS, write_spark_conf

# spark-submit first runs a launcher JVM that builds the real command line: C1 and class
# data sharing there too (a session starts about 30% sooner). Test subprocesses inherit it
# from this environment.
os.environ.setdefault("SPARK_LAUNCHER_OPTS", f"{TEST_JAVA_OPTIONS} -Xshare:auto")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """Session-scoped local[2] SparkSession with Hive support on a temporary catalog."""
    from pyspark.sql import SparkSession

    base = tmp_path_factory.mktemp("spark-session")
    os.environ["SPARK_CONF_DIR"] = str(write_spark_conf(base))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("tally-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        # The builder's value replaces the conf file's, so the C1-only flag is repeated here:
        # a test JVM runs many short queries, and C2's compiling costs more CPU than it saves.
        .config(
            "spark.driver.extraJavaOptions",
            f"-Dderby.stream.error.file={base}/derby.log {TEST_JAVA_OPTIONS}",
        )
        .enableHiveSupport()
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def spark_conf(spark):
    """Set Spark SQL confs for one block and restore the previous values after it."""

    @contextmanager
    def setting(**confs: str) -> Iterator[None]:
        keys = {k.replace("__", "."): v for k, v in confs.items()}
        before = {k: spark.conf.get(k, None) for k in keys}
        for k, v in keys.items():
            spark.conf.set(k, v)
        try:
            yield
        finally:
            for k, v in before.items():
                if v is None:
                    spark.conf.unset(k)
                else:
                    spark.conf.set(k, v)

    return setting
