"""Shared fixtures: one local SparkSession for the whole run, and isolated Spark conf dirs.

The session and every job a test starts as a subprocess get their own Derby
metastore and warehouse under pytest's tmp dir, never the project's.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


#: JVM options of the JVMs that tests start as subprocesses (`tally`, `spark-submit`): C1
#: only (no C2 JIT). Each such JVM runs a few small queries, all new code to compile, so
#: compiling fast beats compiling well: on the 2-core dev machine a fresh session, a first
#: query, the Hive catalog and a small aggregation took 12.5 s against 18.7 s with the
#: default tiered JIT (e.g. the spark-submit end-to-end test 43 s against 52 s). The
#: session fixture's JVM keeps the default: it runs hundreds of queries, and with C1 the
#: heavier ones were slower (a partitioning test 32 s against 27 s). Results do not depend
#: on it.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
# spark-submit first runs a launcher JVM that builds the real command line: C1 and class
# data sharing there too (4.5 s against 6.3 s to a session, same machine). Test
# subprocesses inherit it from this environment.
os.environ.setdefault("SPARK_LAUNCHER_OPTS", f"{TEST_JAVA_OPTIONS} -Xshare:auto")


def write_spark_conf(base: Path) -> Path:
    """A Spark conf dir like the project's ``conf/``, with the catalog under ``base``."""
    conf_dir = base / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "spark-defaults.conf").write_text(
        "spark.sql.catalogImplementation hive\n"
        f"spark.sql.warehouse.dir {base / 'warehouse'}\n"
        "spark.hadoop.javax.jdo.option.ConnectionURL "
        f"jdbc:derby:;databaseName={base / 'metastore_db'};create=true\n"
        "spark.sql.session.timeZone UTC\n"
        "spark.ui.enabled false\n"
        "spark.ui.showConsoleProgress false\n"
        "spark.sql.shuffle.partitions 2\n"
        f"spark.driver.extraJavaOptions {TEST_JAVA_OPTIONS}\n"
    )
    shutil.copy(PROJECT_ROOT / "conf" / "log4j2.properties", conf_dir / "log4j2.properties")
    return conf_dir


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
        .config("spark.driver.extraJavaOptions", f"-Dderby.stream.error.file={base}/derby.log")
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
