"""Shared fixtures: one local SparkSession for the whole run, and isolated Spark conf dirs.

The session keeps its tables in Spark's in-memory catalog; every job a test starts as a
subprocess (`tally`, `spark-submit`) uses the Hive metastore on Derby that users' jobs use,
with its own metastore and warehouse under pytest's tmp dir, never the project's. The Hive
client, Derby and DataNucleus took about a third of the in-process tests' CPU, and only
the tests about how tables behave in the metastore need them: those are marked
``hive_catalog`` and run against Derby in one subprocess (``test_hive_catalog.py``), or
here with ``TALLY_TEST_CATALOG=hive``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers import TEST_JAVA_OPTIONS, write_spark_conf

#: ``hive``: the session uses the Hive metastore (Derby) and runs the ``hive_catalog`` tests
CATALOG_VARIABLE = "TALLY_TEST_CATALOG"


def hive_session() -> bool:
    return os.environ.get(CATALOG_VARIABLE) == "hive"


def pytest_report_header(config: pytest.Config) -> str:
    if hive_session():
        return "spark session catalog: hive (Derby); hive_catalog tests run here"
    return "spark session catalog: in-memory; hive_catalog tests run in test_hive_catalog.py"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a Hive session, leave the ``hive_catalog`` tests to ``test_hive_catalog.py``.

    Then order the files as pytest-xdist hands them out (``make test``: ``--dist loadfile
    --no-loadscope-reorder``): those with ``e2e`` tests first, which start JVMs of their
    own and take the longest, then the others by their number of tests. A long file left
    for last keeps one worker busy while the other has nothing to do.
    """
    if not hive_session():
        hive = [item for item in items if item.get_closest_marker("hive_catalog")]
        if hive:
            config.hook.pytest_deselected(items=hive)
            items[:] = [item for item in items if not item.get_closest_marker("hive_catalog")]
    tests_per_file = Counter(item.path for item in items)
    slow = {item.path for item in items if item.get_closest_marker("e2e")}
    items.sort(key=lambda item: (item.path not in slow, -tests_per_file[item.path], item.path))


# spark-submit first runs a launcher JVM that builds the real command line: C1 and class
# data sharing there too (a session starts about 30% sooner). Test subprocesses inherit it
# from this environment.
os.environ.setdefault("SPARK_LAUNCHER_OPTS", f"{TEST_JAVA_OPTIONS} -Xshare:auto")


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """Session-scoped local[2] SparkSession: Spark's in-memory catalog, or with
    ``TALLY_TEST_CATALOG=hive`` the Hive metastore on a temporary Derby database.

    Its JVM starts as `tally` starts its own: with class-data sharing where the archive is
    there (:mod:`tally.spark.class_sharing`; the first `tally` run writes it), which saves
    loading Spark's classes again in each xdist worker."""
    from pyspark.sql import SparkSession

    from tally.spark.session import start_session

    base = tmp_path_factory.mktemp("spark-session")
    derby_log = f"-Dderby.stream.error.file={base}/derby.log"
    os.environ["SPARK_CONF_DIR"] = str(write_spark_conf(base, derby_log))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    builder = SparkSession.builder
    if hive_session():
        builder = builder.enableHiveSupport()
    else:
        builder = builder.config("spark.sql.catalogImplementation", "in-memory")
    session = start_session(  # an archive is left to `tally`'s runs, whose JVMs load Hive
        builder.master("local[2]")
        .appName("tally-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false"),
        write_archive=False,
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
