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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pyspark.find_spark_home import _find_spark_home

from tally.spark.session import prepare_local_environment


def spark_sql_command(args: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of Spark's ``spark-sql`` with ``args``."""
    prepare_local_environment()
    env = dict(os.environ)
    env.setdefault("SPARK_HOME", _find_spark_home())
    script = Path(env["SPARK_HOME"]) / "bin" / "spark-sql"
    return [str(script), *args], env


def exec_spark_sql(args: Sequence[str]) -> NoReturn:
    """Replace this process with ``spark-sql args`` (its exit code is the command's)."""
    argv, env = spark_sql_command(args)
    os.execve(argv[0], argv, env)
