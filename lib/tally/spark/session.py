"""Build or get the SparkSession the job runs in.

Nothing here assumes local mode: under ``spark-submit`` the master, metastore and
warehouse come from the cluster's configuration. Started from plain Python (the
``tally`` command), PySpark launches a local JVM whose master defaults to
``local[*]`` and which reads ``$SPARK_CONF_DIR/spark-defaults.conf`` — the
project's ``conf/`` holds the embedded default (Hive support, Derby metastore and
warehouse inside the project). When it launches that JVM, :func:`get_spark` starts it with
Java class-data sharing where it can (:mod:`tally.spark.class_sharing`).
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path

from pyspark import SparkContext
from pyspark.find_spark_home import _find_spark_home
from pyspark.sql import SparkSession

from tally.spark import class_sharing


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
    """The active session, or a new one with Hive catalog support.

    When this call launches the JVM, it does so with class-data sharing where
    :func:`tally.spark.class_sharing.plan_launch` allows it (:func:`start_session`).
    """
    return start_session(SparkSession.builder.appName(app_name).enableHiveSupport())


def start_session(builder: SparkSession.Builder, write_archive: bool = True) -> SparkSession:
    """``builder.getOrCreate()``, launching the JVM with class-data sharing where it can.

    Sharing applies only when this call launches the JVM and
    :func:`tally.spark.class_sharing.plan_launch` allows it. Without an archive, a run that
    may write one (``write_archive``) starts its JVM writing it and waits at exit for it to
    finish; otherwise the JVM starts as usual and leaves the archive to another run (e.g.
    one whose JVM loads the Hive classes that `tally`'s jobs use).
    """
    if SparkContext._gateway is not None:  # a JVM already runs (or spark-submit started us)
        return builder.getOrCreate()
    launch = class_sharing.plan_launch(
        os.environ,
        Path(_find_spark_home()),
        class_sharing.find_java(os.environ),
        class_sharing.cache_dir(),
        may_write=write_archive,
    )
    if launch is None:
        return builder.getOrCreate()
    try:
        with class_sharing.environment(launch.env):
            spark = builder.getOrCreate()
    except BaseException:
        class_sharing.finish_writing(launch, None)
        raise
    if launch.writing is not None:
        proc = getattr(SparkContext._gateway, "proc", None)
        atexit.register(_stop_and_finish_archive, launch, proc)
    return spark


def _stop_and_finish_archive(launch: class_sharing.Launch, proc: object) -> None:
    """At exit of a run that writes the archive: stop Spark (its accumulator server would
    otherwise see the JVM go), then let the JVM exit and write the archive."""
    context = SparkContext._active_spark_context
    if context is not None:
        context.stop()
    class_sharing.wait_and_finish(launch, proc)  # type: ignore[arg-type]
