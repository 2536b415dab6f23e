"""Build or get the SparkSession the job runs in.

Nothing here assumes local mode: under ``spark-submit`` the master, metastore and
warehouse come from the cluster's configuration. Started from plain Python (the
``tally`` command), PySpark launches a local JVM whose master defaults to
``local[*]`` and which reads ``$SPARK_CONF_DIR/spark-defaults.conf`` — the
project's ``conf/`` holds the embedded default (Hive support, Derby metastore and
warehouse inside the project).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession


def prepare_local_environment(conf_dir: Path | None = None) -> None:
    """Point a locally launched Spark at the project's conf and this interpreter.

    Sets ``SPARK_CONF_DIR`` to ``conf_dir`` (default ``./conf`` when it holds a
    ``spark-defaults.conf``) and ``PYSPARK_PYTHON`` to the running interpreter, so
    Python workers import from the same environment. Values already set win.
    """
    conf_dir = conf_dir or Path.cwd() / "conf"
    if "SPARK_CONF_DIR" not in os.environ and (conf_dir / "spark-defaults.conf").is_file():
        os.environ["SPARK_CONF_DIR"] = str(conf_dir.resolve())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def get_spark(app_name: str = "tally") -> SparkSession:
    """The active session, or a new one with Hive catalog support."""
    return SparkSession.builder.appName(app_name).enableHiveSupport().getOrCreate()
