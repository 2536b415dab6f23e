"""``tally spark-sql``: Spark's own ``spark-sql`` shell, started the way ``tally`` starts Spark.

The ``spark-sql`` script that pip puts in the venv finds Spark by running
``$PYSPARK_DRIVER_PYTHON`` (else the first ``python3`` on ``PATH``) on ``find_spark_home.py``;
from a plain shell that is the system Python, which has no PySpark, and the script fails
with ``/bin/spark-submit: No such file or directory``. Here ``SPARK_HOME`` comes from this
interpreter's PySpark, ``SPARK_CONF_DIR`` and the Python workers' interpreter from
:func:`tally.spark.session.prepare_local_environment` (``./conf`` when it holds a
``spark-defaults.conf``: the project's embedded metastore), and the process becomes
``$SPARK_HOME/bin/spark-sql`` with the arguments given (``-e``, ``-f``, none for its prompt).
Values already set in the environment win.

Where a ``tally`` run has left a class-data sharing archive and
:func:`tally.spark.class_sharing.plan_launch` allows sharing, the shell's JVM maps it as
``tally``'s own JVM does (its start takes about half the CPU): the conf directory's files
are passed as ``--properties-file`` and ``--driver-java-options`` before the arguments and
``SPARK_CONF_DIR`` is the archive's empty directory. This process is replaced by the
shell, so it never writes an archive, and arguments that set either option themselves
start the shell as usual.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pyspark.find_spark_home import _find_spark_home

from tally.spark import class_sharing
from tally.spark.session import prepare_local_environment

#: ``spark-submit`` options a launch with sharing sets; a user's own take precedence.
_SHARING_OPTIONS = ("--properties-file", "--driver-java-options")


def spark_sql_command(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of Spark's ``spark-sql`` with ``args``."""
    prepare_local_environment()
    env = dict(os.environ)
    env.setdefault("SPARK_HOME", _find_spark_home())
    script = Path(env["SPARK_HOME"]) / "bin" / "spark-sql"
    options: tuple[str, ...] = ()
    if not any(a.split("=", 1)[0] in _SHARING_OPTIONS for a in args):
        launch = class_sharing.plan_launch(
            env,
            Path(env["SPARK_HOME"]),
            class_sharing.find_java(env),
            class_sharing.cache_dir(),
            may_write=False,
        )
        if launch is not None:
            options = launch.submit_options
            env["SPARK_CONF_DIR"] = launch.env["SPARK_CONF_DIR"]
    return [str(script), *options, *args], env


def exec_spark_sql(args: Sequence[str]) -> NoReturn:
    """Replace this process with ``spark-sql args`` (its exit code is the command's)."""
    argv, env = spark_sql_command(args)
    os.execve(argv[0], argv, env)
