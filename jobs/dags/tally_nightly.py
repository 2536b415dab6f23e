"""Airflow DAG ``tally_nightly``: evaluate every configured model for the run's date, then report.

One ``SparkSubmitOperator`` per config runs ``jobs/evaluate.py --config <config> --run-date
{{ ds }}`` with the packaged library (``make package`` -> ``dist/tally-<version>.zip``) on
``--py-files``; the ``report`` task runs after all of them, prints that date's headline
metrics with ``tally sql`` and writes one HTML page per config with ``tally report``
(``<TALLY_REPORTS_DIR>/<config file stem>-<date>.html``). Each run date is its own DAG run
and each job rewrites only its own ``(run_date, model)`` partition, so retries, reruns and
backfills (``catchup``) are safe.

Copy this file into the Airflow deployment's dags folder. It imports nothing from Tally or
Spark and reads no Airflow Variable while it is parsed: parsing stays cheap.

Settings, from environment variables seen by the DAG processor (they shape the DAG):

    TALLY_CONFIGS          config paths, comma-separated; relative ones are resolved against
                           TALLY_PROJECT_ROOT. One task ``evaluate_<file stem>`` per config.
                           Default: conf/demo.yaml
    TALLY_PROJECT_ROOT     where the project is deployed on the Airflow workers. Default /opt/tally
    TALLY_SPARK_CONN_ID    Airflow connection of the Spark cluster (master, deploy mode, queue,
                           spark-submit binary). Default spark_default
    TALLY_DEPLOY_MODE      ``cluster``: ship each config with --files and pass its file name
                           (the driver runs on the cluster). Default: unset, the connection's
                           deploy mode, the config path passed as is (right for client mode)
    TALLY_SPARK_CONF       extra Spark properties as a JSON object, e.g.
                           {"spark.pyspark.python": "./environment/bin/python"}
    TALLY_ARCHIVES         --archives, e.g. a packed venv: hdfs:///envs/tally.tar.gz#environment
    TALLY_SCHEDULE         cron or preset. Default @daily
    TALLY_START_DATE       first logical date (YYYY-MM-DD, UTC); catchup runs every date from
                           there. Default 2026-11-01
    TALLY_MAX_ACTIVE_RUNS  DAG runs (dates) at once, e.g. during a backfill. Default 1
    TALLY_RETRIES          retries of a failed task, 10 minutes apart. Default 2
    TALLY_RESULTS_TABLE    the table ``report`` reads. Default tally.metrics
    TALLY_BIN              the ``tally`` command on the worker, for ``report``. Default tally
    TALLY_REPORTS_DIR      where ``report`` writes the HTML pages, on the worker.
                           Default <TALLY_PROJECT_ROOT>/reports

The two paths a task uses are templates rendered when it runs (first set wins): the DAG param
of a manual trigger, the Airflow Variable, the environment variable (read at parse time), the
default:

    param          Variable            environment        default
    application    tally_application   TALLY_APPLICATION  <root>/jobs/evaluate.py
    py_files       tally_py_files      TALLY_PY_FILES     <root>/dist/tally-<version>.zip
"""

from __future__ import annotations

import json
import os
import re
import shlex
from datetime import datetime, timedelta, timezone
from pathlib import PurePosixPath

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.models.param import Param
    from airflow.operators.bash import BashOperator

DAG_ID = "tally_nightly"
TALLY_VERSION = "0.1.0"  # of dist/tally-<version>.zip; tests check it against lib/tally


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TALLY_{name}", "").strip() or default


PROJECT_ROOT = _env("PROJECT_ROOT", "/opt/tally")
CONFIGS = [
    c if c.startswith("/") or "://" in c else f"{PROJECT_ROOT}/{c}"
    for c in (c.strip() for c in _env("CONFIGS", "conf/demo.yaml").split(","))
    if c
]
SPARK_CONN_ID = _env("SPARK_CONN_ID", "spark_default")
DEPLOY_MODE = _env("DEPLOY_MODE", "") or None
SPARK_CONF: dict[str, str] = json.loads(_env("SPARK_CONF", "{}"))
ARCHIVES = _env("ARCHIVES", "") or None
SCHEDULE = _env("SCHEDULE", "@daily")
START_DATE = datetime.fromisoformat(_env("START_DATE", "2026-11-01")).replace(tzinfo=timezone.utc)
MAX_ACTIVE_RUNS = int(_env("MAX_ACTIVE_RUNS", "1"))
RETRIES = int(_env("RETRIES", "2"))
RETRY_DELAY = timedelta(minutes=10)
RESULTS_TABLE = _env("RESULTS_TABLE", "tally.metrics")
TALLY_BIN = _env("BIN", "tally")
REPORTS_DIR = _env("REPORTS_DIR", f"{PROJECT_ROOT}/reports")
APPLICATION = _env("APPLICATION", f"{PROJECT_ROOT}/jobs/evaluate.py")
PY_FILES = _env("PY_FILES", f"{PROJECT_ROOT}/dist/tally-{TALLY_VERSION}.zip")

REPORT_METRICS = ("count", "invalid_rows", "roc_auc", "roc_auc_error_bound", "pr_auc",
                  "log_loss", "brier")


def task_id_for(config: str) -> str:
    """``conf/ctr_v7.yaml`` -> ``evaluate_ctr_v7``."""
    stem = PurePosixPath(config).name.rsplit(".", 1)[0]
    return "evaluate_" + re.sub(r"[^A-Za-z0-9_.-]", "_", stem)


def report_command(config: str) -> str:
    """``tally report`` of ``config``'s model for the run date, into ``REPORTS_DIR``."""
    stem = task_id_for(config).removeprefix("evaluate_")
    out = f"{REPORTS_DIR}/{stem}-{{{{ ds }}}}.html"
    return (
        f"{TALLY_BIN} report --config {shlex.quote(config)} --run-date {{{{ ds }}}} "
        f"--out {shlex.quote(out)}"
    )


def _runtime(param: str, variable: str, default: str) -> str:
    """A template: the trigger's param, else the Airflow Variable, else ``default``."""
    return f"{{{{ params.{param} or var.value.get({variable!r}, {default!r}) }}}}"


task_ids = [task_id_for(c) for c in CONFIGS]
if len(set(task_ids)) != len(task_ids):
    raise ValueError(f"TALLY_CONFIGS: config file names must be unique, got {CONFIGS}")

with DAG(
    dag_id=DAG_ID,
    description="Tally: evaluate every model for the run date, then report its metrics",
    schedule=SCHEDULE,
    start_date=START_DATE,
    catchup=True,  # a missed night or a new start date is backfilled, one run per date
    max_active_runs=MAX_ACTIVE_RUNS,
    default_args={"retries": RETRIES, "retry_delay": RETRY_DELAY},
    params={
        "application": Param(None, type=["null", "string"],
                             description=f"spark-submit application; default {APPLICATION}"),
        "py_files": Param(None, type=["null", "string"],
                          description=f"--py-files artifact; default {PY_FILES}"),
    },
    tags=["tally"],
) as dag:
    report = BashOperator(
        task_id="report",
        bash_command=" && ".join([
            f"{TALLY_BIN} sql --format table "
            f"\"SELECT model, score_column, metric, value FROM {RESULTS_TABLE} "
            "WHERE run_date = DATE'{{ ds }}' AND slice = 'ALL' AND threshold IS NULL "
            f"AND metric IN ({', '.join(repr(m) for m in REPORT_METRICS)}) "
            'ORDER BY model, score_column, metric"',
            *(report_command(config) for config in CONFIGS),
        ]),
        append_env=True,
    )
    for config, task_id in zip(CONFIGS, task_ids, strict=True):
        shipped = DEPLOY_MODE == "cluster"
        evaluate = SparkSubmitOperator(
            task_id=task_id,
            conn_id=SPARK_CONN_ID,
            application=_runtime("application", "tally_application", APPLICATION),
            py_files=_runtime("py_files", "tally_py_files", PY_FILES),
            files=config if shipped else None,
            archives=ARCHIVES,
            conf=SPARK_CONF or None,
            deploy_mode=DEPLOY_MODE,
            name=f"tally-{task_id.removeprefix('evaluate_')}-{{{{ ds }}}}",
            application_args=[
                "--config", PurePosixPath(config).name if shipped else config,
                "--run-date", "{{ ds }}",
            ],
        )
        evaluate >> report
