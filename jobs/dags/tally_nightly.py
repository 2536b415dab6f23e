"""Airflow DAG ``tally_nightly``: evaluate every configured model for the run's date, then report.

One ``SparkSubmitOperator`` per config runs ``jobs/evaluate.py --config <config> --run-date
<date>`` with the packaged library (``make package`` -> ``dist/tally-<version>.zip``) on
``--py-files``. ``<date>`` is ``{{ ds }}``, or ``ds`` minus the config's label delay
(``conf/fraud_v2.yaml@-3`` in TALLY_CONFIGS: the run for 2026-11-22 evaluates 2026-11-19,
whose labels have had 3 more days to arrive).

The ``report`` task runs once every evaluate task has finished, whatever its state (trigger
rule ``all_done``), in TALLY_PROJECT_ROOT: it prints the headline metrics of the night's
run dates (``tally sql``) and writes one HTML page per config (``tally report``,
``<TALLY_REPORTS_DIR>/<config file stem>-<date>.html``), all in one ``tally batch``: one
Spark start for the whole task. So a config whose checks failed
(exit 6, after its metrics and checks were written) gets its page, failed checks first. A
page that cannot be written (no results: its evaluate task failed before writing) fails
``report``, after the other pages. ``gate`` (trigger rule ``one_failed``) fails when an
evaluate task failed and is skipped otherwise: a DAG run takes the state of its last
tasks, ``report`` and ``gate``, and without ``gate`` it would turn green under a failed
evaluate task.

Each run date is its own DAG run and each job rewrites only its own ``(run_date, model)``
partition, so retries, reruns and backfills (``catchup``) are safe.

Copy this file into the Airflow deployment's dags folder. It imports nothing from Tally or
Spark and reads no Airflow Variable while it is parsed: parsing stays cheap.

Settings, from environment variables seen by the DAG processor (they shape the DAG):

    TALLY_CONFIGS          config paths, comma-separated; relative ones are resolved against
                           TALLY_PROJECT_ROOT. One task ``evaluate_<file stem>`` per config.
                           ``<path>@-<N>``: evaluate the run date ``ds`` minus N days, for
                           labels that arrive N days late. Default: conf/demo.yaml
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
    TALLY_RETRIES          retries of a failed evaluate or report task, 10 minutes apart.
                           Default 2
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


def config_entry(entry: str) -> tuple[str, int]:
    """``conf/fraud_v2.yaml@-3`` -> (``<root>/conf/fraud_v2.yaml``, -3); without ``@``: 0.

    The offset is the config's run date relative to ``ds``, in days: 0 or negative (a
    positive one would evaluate a night that is not over yet).
    """
    path, at, offset = entry.rpartition("@") if "@" in entry else (entry, "", "0")
    if at and (not re.fullmatch(r"[+-]?[0-9]+", offset) or int(offset) > 0):
        raise ValueError(
            f"TALLY_CONFIGS: {entry!r}: after '@' comes the run-date offset in days, 0 or "
            "negative, e.g. conf/fraud_v2.yaml@-3 for labels that arrive 3 days late")
    root_relative = not (path.startswith("/") or "://" in path)
    return f"{PROJECT_ROOT}/{path}" if root_relative else path, int(offset)


#: (config path, run-date offset in days), one per evaluate task
CONFIG_ENTRIES = [config_entry(entry.strip())
                  for entry in _env("CONFIGS", "conf/demo.yaml").split(",") if entry.strip()]
CONFIGS = [config for config, _ in CONFIG_ENTRIES]
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


def stem_of(config: str) -> str:
    """``conf/ctr_v7.yaml`` -> ``ctr_v7``, characters a task id cannot hold made ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", PurePosixPath(config).name.rsplit(".", 1)[0])


def task_id_for(config: str) -> str:
    """``conf/ctr_v7.yaml`` -> ``evaluate_ctr_v7``."""
    return "evaluate_" + stem_of(config)


def run_date(offset_days: int) -> str:
    """The template of the run date a config evaluates: ``ds`` plus ``offset_days``."""
    return "{{ ds }}" if offset_days == 0 else f"{{{{ macros.ds_add(ds, {offset_days}) }}}}"


def report_command(config: str, offset_days: int) -> str:
    """``tally report`` of ``config``'s model for its run date, into ``REPORTS_DIR`` (without
    the leading ``tally``: a step of ``report``'s ``tally batch``)."""
    date = run_date(offset_days)
    out = f"{REPORTS_DIR}/{stem_of(config)}-{date}.html"
    return f"report --config {shlex.quote(config)} --run-date {date} --out {shlex.quote(out)}"


def headline_query(offsets: list[int]) -> str:
    """``tally sql`` of the headline rows (slice ALL, REPORT_METRICS) of the given run dates."""
    return (
        "sql --format table "
        '"SELECT CAST(run_date AS STRING) AS run_date, model, score_column, metric, value '
        f"FROM {RESULTS_TABLE} "
        f"WHERE run_date IN ({', '.join(f'DATE{run_date(o)!r}' for o in offsets)}) "
        "AND slice = 'ALL' AND threshold IS NULL "
        f"AND metric IN ({', '.join(repr(m) for m in REPORT_METRICS)}) "
        'ORDER BY run_date DESC, model, score_column, metric"'
    )


def report_script() -> str:
    """``report``'s bash: one ``tally batch`` (one Spark start) that prints the headline rows of
    the night's run dates, then writes a page per config.

    ``--keep-going``: every step runs even when one before it failed (a config without
    results for its date must not cost the others their page); the batch then fails,
    naming the failed steps (``tally: batch failed: page of <stem>``).
    """
    offsets = sorted({offset for _, offset in CONFIG_ENTRIES}, reverse=True)
    steps = [("headline metrics", headline_query(offsets)),
             *((f"page of {stem_of(config)}", report_command(config, offset))
               for config, offset in CONFIG_ENTRIES)]
    return " \\\n".join([
        f"{TALLY_BIN} batch --keep-going",
        *(f"  --step {shlex.quote(name)} {shlex.quote(command)}" for name, command in steps),
    ])


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
        bash_command=report_script(),
        append_env=True,
        cwd=PROJECT_ROOT,  # not a temporary folder: a local catalog's relative paths resolve
        trigger_rule="all_done",  # also after a failed evaluate task: the pages of the night
    )
    gate = BashOperator(
        task_id="gate",
        bash_command=(
            "echo 'gate: an evaluate task of {{ ds }} failed, see its log (exit 6: a check "
            "failed; its metrics and checks are written)' >&2; exit 1"),
        trigger_rule="one_failed",  # runs, and fails the DAG run, only then; else skipped
        retries=0,
    )
    for (config, offset), task_id in zip(CONFIG_ENTRIES, task_ids, strict=True):
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
            name=f"tally-{stem_of(config)}-{run_date(offset)}",
            application_args=[
                "--config", PurePosixPath(config).name if shipped else config,
                "--run-date", run_date(offset),
            ],
        )
        evaluate >> [report, gate]
