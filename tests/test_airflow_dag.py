"""The nightly DAG (`jobs/dags/tally_nightly.py`) loads in a real Airflow, shaped as intended,
and runs: one night, spark-submit and report for real, a failed check failing its task.

Airflow lives in `.venv-airflow` (`make airflow-env`, exact pins from PyPI), apart from the
project venv: its dependency tree would clash with the pyspark/pandas pins. Each check runs
a script in that venv's Python with a throwaway AIRFLOW_HOME and reports as JSON; the
assertions run here. The shape checks load a DagBag over `jobs/dags` once per case of
settings, all in one process (no Airflow database needed); the run (`e2e`) migrates a SQLite
database and runs `dag.test()`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import roc_auc_score

import tally
from helpers import BIN, PROJECT_ROOT, package, spark_submit_sharing, write_spark_conf
from tally.config import load_config
from tally.demo import write_demo_dataset

AIRFLOW_VENV = PROJECT_ROOT / ".venv-airflow"
DAGS = PROJECT_ROOT / "jobs" / "dags"

# Runs in .venv-airflow, once for all the cases in argv[2] (JSON: name -> [logical date, TALLY_*
# settings]): per case, set the settings as environment variables, load the folder (the DAG
# file is imported anew and reads them), describe the DAG and its tasks, render the templates
# for the logical date (without, then with an Airflow Variable, then with a trigger's param),
# and build the spark-submit command line the provider's hook would run.
CHECK = r"""
import inspect, json, os, sys, time
from datetime import datetime

try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models import DagBag

# Airflow 3.3 dropped DagBag(include_examples=...); AIRFLOW__CORE__LOAD_EXAMPLES=False covers it
options = {}
if "include_examples" in inspect.signature(DagBag).parameters:
    options["include_examples"] = False


def describe(logical_date):
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1], **options)
    parse_s = time.perf_counter() - started
    out = {"import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
           "dag_ids": sorted(bag.dags), "parse_s": parse_s,
           "warnings": {str(k): list(v) for k, v in getattr(bag, "captured_warnings", {}).items()},
           "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "tally"))}
    dag = bag.dags.get("tally_nightly")
    if dag is not None:
        module = next(m for m in list(sys.modules.values())
                      if getattr(m, "__file__", None) == dag.fileloc)
        try:  # the template context's ``macros`` (Airflow 3)
            from airflow.sdk.execution_time import macros
        except ImportError:
            from airflow import macros
        ds = datetime.fromisoformat(logical_date).strftime("%Y-%m-%d")
        params = dag.params.dump()

        def render(task, value, variables=None, **overrides):
            context = {"ds": ds, "macros": macros, "params": {**params, **overrides},
                       "var": {"value": variables or {}}}
            return task.render_template(value, context)

        try:  # what the DAG processor stores for the scheduler and workers (Airflow 3)
            from airflow.serialization.serialized_objects import DagSerialization
        except ImportError:
            from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization
        out["serialized_tasks"] = sorted(
            DagSerialization.from_dict(DagSerialization.to_dict(dag)).task_dict)
        out["dag"] = {"catchup": dag.catchup, "max_active_runs": dag.max_active_runs,
                      "start_date": dag.start_date.isoformat(), "params": params,
                      "schedule": str(getattr(dag, "schedule", None)),
                      "tally_version": module.TALLY_VERSION}
        tasks = out["tasks"] = {}
        for task in dag.tasks:
            info = tasks[task.task_id] = {
                "type": type(task).__name__, "upstream": sorted(task.upstream_task_ids),
                "downstream": sorted(task.downstream_task_ids), "retries": task.retries,
                "retry_delay_s": task.retry_delay.total_seconds(),
                "trigger_rule": getattr(task.trigger_rule, "value", task.trigger_rule)}
            if type(task).__name__ == "SparkSubmitOperator":
                variables = {"tally_py_files": "/variable/tally.zip"}
                info.update(
                    conn_id=task._conn_id, application_args=task.application_args,
                    files=task.files, deploy_mode=task._deploy_mode,
                    rendered_args=render(task, task.application_args),
                    py_files=render(task, task.py_files),
                    py_files_variable=render(task, task.py_files, variables),
                    py_files_param=render(
                    task, task.py_files, variables, py_files="/param/t.zip"),
                    application=render(task, task.application))
                task.render_template_fields(
                    {"ds": ds, "macros": macros, "params": params, "var": {"value": {}}})
                info["command"] = task._get_hook()._build_spark_submit_command(task.application)
            else:
                info.update(rendered_command=render(task, task.bash_command), cwd=task.cwd)
    return out


results = {}
for name, (logical_date, settings) in json.loads(sys.argv[2]).items():
    for key in [k for k in os.environ if k.startswith("TALLY_")]:
        del os.environ[key]
    os.environ.update(settings)
    results[name] = describe(logical_date)
print("RESULT " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def airflow_python() -> Path:
    """`.venv-airflow`'s Python, created by `make airflow-env` if missing or out of date."""
    done = subprocess.run(["make", "--no-print-directory", "airflow-env"], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        reason = f"make airflow-env failed: {(done.stderr or done.stdout).strip()[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    python = AIRFLOW_VENV / "bin" / "python"
    if not python.exists():  # make said why, e.g. a Python older than the provider needs
        pytest.skip(done.stdout.strip())
    return python


def airflow_env(home: Path, **settings: str) -> dict[str, str]:
    """This environment without Airflow's and Tally's settings, then a throwaway AIRFLOW_HOME
    with `jobs/dags` as its dags folder, and the TALLY_<NAME> settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TALLY_", "AIRFLOW", "PYTHONPATH"))}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        **{f"TALLY_{k.upper()}": v for k, v in settings.items()},
    })
    return env


def run_in_airflow(airflow_python: Path, script: str, logical_date: str, cwd: Path,
                   env: dict[str, str], timeout: int = 300) -> tuple[dict, str]:
    """Run ``script`` in .venv-airflow; returns its RESULT JSON and its output."""
    done = subprocess.run([str(airflow_python), "-c", script, str(DAGS), logical_date],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20000:]
    result = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert result, output[-20000:]
    return json.loads(result[-1].removeprefix("RESULT ")), output


#: The DAGs loaded, by name: (logical date, TALLY_<NAME> settings).
CASES = {
    "default": ("2026-11-22", {
        "project_root": "/srv/tally",
        "configs": "conf/demo.yaml,conf/ctr_v7.yaml,/etc/tally/fraud-v2.yaml@-3",
    }),
    "settings": ("2026-12-01", {
        "configs": "/jobs/ctr.yaml", "spark_conn_id": "spark_yarn", "deploy_mode": "cluster",
        "retries": "5", "max_active_runs": "3", "py_files": "hdfs:///tally/tally.zip",
        "bin": "/opt/tally/venv/bin/tally", "reports_dir": "/data/tally reports",
    }),
    "duplicate_names": ("2026-11-22", {"configs": "a/demo.yaml,b/demo.yaml"}),
    "offset_after_the_night": ("2026-11-22", {"configs": "conf/demo.yaml,conf/ctr_v7.yaml@3"}),
}


@pytest.fixture(scope="module")
def loaded(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """CHECK's JSON report of every case, from one Airflow process (it imports Airflow once)."""
    tmp_path = tmp_path_factory.mktemp("dagbag")
    cases = {name: [day, {f"TALLY_{k.upper()}": v for k, v in settings.items()}]
             for name, (day, settings) in CASES.items()}
    return run_in_airflow(airflow_python, CHECK, json.dumps(cases), tmp_path,
                          airflow_env(tmp_path))[0]


@pytest.fixture(scope="module")
def default_dag(loaded: dict[str, dict]) -> dict:
    return loaded["default"]


EVALUATES = ["evaluate_ctr_v7", "evaluate_demo", "evaluate_fraud-v2"]


def test_dag_imports_without_errors_and_without_spark_or_tally(default_dag):
    assert default_dag["import_errors"] == {}
    assert default_dag["dag_ids"] == ["tally_nightly"]
    assert default_dag["warnings"] == {}
    assert default_dag["loaded"] == []  # parsing never imports pyspark or tally
    assert default_dag["serialized_tasks"] == sorted(default_dag["tasks"])
    assert default_dag["parse_s"] < 10


def test_one_evaluate_task_per_config_then_report_and_gate(default_dag):
    tasks = default_dag["tasks"]
    assert sorted(tasks) == [*EVALUATES, "gate", "report"]
    for task_id in ("report", "gate"):
        assert tasks[task_id]["upstream"] == EVALUATES
        assert tasks[task_id]["downstream"] == []
    for task_id in EVALUATES:
        assert tasks[task_id]["type"] == "SparkSubmitOperator"
        assert tasks[task_id]["upstream"] == []
        assert tasks[task_id]["downstream"] == ["gate", "report"]
        assert tasks[task_id]["trigger_rule"] == "all_success"
    assert tasks["report"]["trigger_rule"] == "all_done"  # also after a failed check
    assert tasks["gate"]["trigger_rule"] == "one_failed"  # fails the DAG run then


def test_evaluate_tasks_pass_config_and_templated_run_date(default_dag):
    demo = default_dag["tasks"]["evaluate_demo"]
    assert demo["application_args"] == [
        "--config", "/srv/tally/conf/demo.yaml", "--run-date", "{{ ds }}"]
    assert demo["rendered_args"] == [
        "--config", "/srv/tally/conf/demo.yaml", "--run-date", "2026-11-22"]
    assert demo["conn_id"] == "spark_default"
    assert demo["application"] == "/srv/tally/jobs/evaluate.py"
    assert demo["files"] is None and demo["deploy_mode"] is None


def test_a_run_date_offset_evaluates_an_earlier_night(default_dag):
    fraud = default_dag["tasks"]["evaluate_fraud-v2"]  # configured as fraud-v2.yaml@-3
    assert fraud["application_args"] == [
        "--config", "/etc/tally/fraud-v2.yaml", "--run-date", "{{ macros.ds_add(ds, -3) }}"]
    assert fraud["rendered_args"] == [
        "--config", "/etc/tally/fraud-v2.yaml", "--run-date", "2026-11-19"]
    assert fraud["command"][fraud["command"].index("--name") + 1] == "tally-fraud-v2-2026-11-19"


def test_paths_come_from_param_then_variable_then_default(default_dag):
    demo = default_dag["tasks"]["evaluate_demo"]
    assert demo["py_files"] == f"/srv/tally/dist/tally-{tally.__version__}.zip"
    assert demo["py_files_variable"] == "/variable/tally.zip"
    assert demo["py_files_param"] == "/param/t.zip"
    assert default_dag["dag"]["params"] == {"application": None, "py_files": None}
    assert default_dag["dag"]["tally_version"] == tally.__version__  # the artifact's name


def test_spark_submit_command_line(default_dag):
    command = default_dag["tasks"]["evaluate_demo"]["command"]
    assert command[0] == "spark-submit"
    assert command[command.index("--py-files") + 1] == (
        f"/srv/tally/dist/tally-{tally.__version__}.zip")
    assert command[command.index("--name") + 1] == "tally-demo-2026-11-22"
    assert command[-5:] == ["/srv/tally/jobs/evaluate.py",
                            "--config", "/srv/tally/conf/demo.yaml", "--run-date", "2026-11-22"]


PAGES = (("/srv/tally/conf/demo.yaml", "demo", "2026-11-22"),
         ("/srv/tally/conf/ctr_v7.yaml", "ctr_v7", "2026-11-22"),
         ("/etc/tally/fraud-v2.yaml", "fraud-v2", "2026-11-19"))


def batch_arguments(rendered_command: str) -> list[str]:
    """The words of ``report``'s bash command, ``tally batch ...`` over continued lines."""
    return shlex.split(rendered_command.replace("\\\n", " "))


def test_report_prints_the_nights_rows_and_writes_a_page_per_config(default_dag):
    report = default_dag["tasks"]["report"]
    assert report["type"] == "BashOperator"
    assert report["cwd"] == "/srv/tally"  # where spark-submit runs too, as in `make run`
    # one `tally batch` (one Spark start): the headline query, then a page per config
    tally, batch, keep_going, *steps = batch_arguments(report["rendered_command"])
    assert (tally, batch, keep_going) == ("tally", "batch", "--keep-going")
    assert steps[0::3] == ["--step"] * (1 + len(PAGES))
    assert steps[1::3] == ["headline metrics", *(f"page of {stem}" for _, stem, _ in PAGES)]
    sql, *pages = steps[2::3]
    assert sql.startswith("sql --format table ")
    # the run dates of the night: ds, and ds - 3 for fraud-v2
    assert ("FROM tally.metrics WHERE run_date IN (DATE'2026-11-22', DATE'2026-11-19') "
            in sql)
    assert [shlex.split(page) for page in pages] == [
        ["report", "--config", config, "--run-date", date,
         "--out", f"/srv/tally/reports/{stem}-{date}.html"]
        for config, stem, date in PAGES
    ]


def test_retries_catchup_and_concurrency(default_dag):
    dag = default_dag["dag"]
    assert dag["catchup"] is True
    assert dag["max_active_runs"] == 1
    assert dag["schedule"] == "@daily"
    assert dag["start_date"].startswith("2026-11-01T00:00:00")
    tasks = default_dag["tasks"]
    for task_id in [*EVALUATES, "report"]:
        assert tasks[task_id]["retries"] == 2
        assert tasks[task_id]["retry_delay_s"] == 600
    assert tasks["gate"]["retries"] == 0


def test_settings_from_environment(loaded):
    got = loaded["settings"]
    assert got["import_errors"] == {}
    ctr = got["tasks"]["evaluate_ctr"]
    assert ctr["conn_id"] == "spark_yarn"
    assert ctr["deploy_mode"] == "cluster"
    assert ctr["files"] == "/jobs/ctr.yaml"  # shipped to the driver's working directory
    assert ctr["rendered_args"] == ["--config", "ctr.yaml", "--run-date", "2026-12-01"]
    assert ctr["py_files"] == "hdfs:///tally/tally.zip"
    assert ctr["retries"] == 5 and got["dag"]["max_active_runs"] == 3
    tally, *steps = batch_arguments(got["tasks"]["report"]["rendered_command"])
    assert tally == "/opt/tally/venv/bin/tally"
    assert shlex.split(steps[steps.index("page of ctr") + 1]) == [
        "report", "--config", "/jobs/ctr.yaml", "--run-date", "2026-12-01",
        "--out", "/data/tally reports/ctr-2026-12-01.html"]


def test_duplicate_config_names_are_an_import_error(loaded):
    got = loaded["duplicate_names"]
    assert got["dag_ids"] == []
    [error] = got["import_errors"].values()
    assert "config file names must be unique" in error


def test_a_run_date_offset_after_the_night_is_an_import_error(loaded):
    got = loaded["offset_after_the_night"]
    assert got["dag_ids"] == []
    [error] = got["import_errors"].values()
    assert "TALLY_CONFIGS: 'conf/ctr_v7.yaml@3': after '@' comes the run-date offset" in error


def test_the_label_delay_example_in_the_deploy_docs_is_a_valid_config(tmp_path):
    docs = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
    [example] = re.findall(r"```yaml\n(# conf/fraud_v2.yaml.*?)```", docs, re.DOTALL)
    (tmp_path / "fraud_v2.yaml").write_text(example)
    config = load_config(tmp_path / "fraud_v2.yaml")
    assert config.model == "fraud_v2"
    assert "'{run_date+3}'" in config.input.query  # labels up to ds, for fraud_v2.yaml@-3


# --- The DAG runs for real ------------------------------------------------------------------

# Runs in .venv-airflow: create the throwaway SQLite metadata database (what `airflow db
# migrate` does), then run the DAG for the logical date in argv[2] with Airflow's own runner,
# `dag.test()`: the scheduler's dependency and trigger-rule logic, each task run in this
# process one after another. Reports the run's state, each task's state and the arguments
# Airflow rendered for the evaluate tasks.
RUN = r"""
import json, sys, time
from datetime import datetime, timezone

started = time.perf_counter()
from airflow.utils.db import upgradedb
upgradedb()
migrated = time.perf_counter()
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow 3
except ImportError:
    from airflow.models import DagBag
from airflow.models.renderedtifields import RenderedTaskInstanceFields

dag = DagBag(dag_folder=sys.argv[1]).dags["tally_nightly"]
run = dag.test(logical_date=datetime.fromisoformat(sys.argv[2]).replace(tzinfo=timezone.utc))
tis = run.get_task_instances()
print("RESULT " + json.dumps({
    "state": str(getattr(run.state, "value", run.state)),
    "tasks": {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis},
    "args": {ti.task_id: RenderedTaskInstanceFields.get_templated_fields(ti)["application_args"]
             for ti in tis if ti.task_id.startswith("evaluate_")},
    "migrate_s": migrated - started, "run_s": time.perf_counter() - migrated}))
"""

NIGHT = "2026-11-22"
LABELS_LATE = "2026-11-19"  # NIGHT - 3: the night fraud.yaml@-3 evaluates
ROWS = 3_000
#: model -> (the run date it evaluates, the min of its roc_auc check, the seed of its rows)
MODELS = {"ctr": (NIGHT, 0.5, 11), "fraud": (LABELS_LATE, 0.99, 12)}
#: a row of the headline table that report prints, as it appears in the run's log
HEADLINE_ROW = re.compile(r"(\d{4}-\d\d-\d\d) {2,}(\w+) {2,}(\w+) {2,}(\w+) {2,}(\S+)")
CONFIG = """\
model: {model}
input: {{path: {data}, format: parquet}}
columns: {{label: label, score: score}}
output: {{table: tally_dag.metrics, checks_table: tally_dag.checks}}
checks:
  - {{metric: roc_auc, min: {min_auc}}}
"""


def scored_rows(path: Path, seed: int) -> dict:
    """Demo rows written to ``path``, and their valid rows as numpy arrays (the reference)."""
    table = pq.read_table(write_demo_dataset(path, rows=ROWS, seed=seed, files=1))
    label = table.column("label").to_numpy()
    score = table.column("score").to_numpy(zero_copy_only=False)  # nulls become NaN
    valid = ~np.isnan(score)
    return {"label": label[valid], "score": score[valid]}


@pytest.fixture(scope="module")
def nightly_run(airflow_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One DAG run for NIGHT over two configs, with a real spark-submit per config.

    ``ctr.yaml`` passes its check. ``fraud.yaml@-3`` evaluates NIGHT - 3 and fails its
    check (ROC AUC >= 0.99), so its task fails with exit 6 after writing its metrics.
    Spark runs local[2] (connection ``spark_default`` from AIRFLOW_CONN_SPARK_DEFAULT) on
    the zip from ``make package``, with this venv's Python and a catalog under tmp; no
    retries. The night's rows are read back by the ``report`` task's own ``tally sql``,
    from its log: each JVM costs seconds, and that query is the one an operator reads.
    """
    root = tmp_path_factory.mktemp("nightly")
    artifact = package(root)
    reference = {}
    for model, (_, min_auc, seed) in MODELS.items():
        reference[model] = scored_rows(root / model, seed)
        (root / f"{model}.yaml").write_text(
            CONFIG.format(model=model, data=root / model, min_auc=min_auc))

    env = airflow_env(
        root, project_root=str(root), configs="ctr.yaml,fraud.yaml@-3", retries="0",
        application=str(PROJECT_ROOT / "jobs" / "evaluate.py"), py_files=str(artifact),
        bin=str(BIN / "tally"), reports_dir=str(root / "reports"),
        results_table="tally_dag.metrics")
    conf_dir = write_spark_conf(root)
    # The evaluate tasks' spark-submit: this venv's, behind a script that points it at the
    # conf directory class-data sharing needs (helpers.spark_submit_sharing), the settings
    # passed as the DAG passes any (TALLY_SPARK_CONF: one --conf each). `report` runs
    # `tally`, which starts its JVM with sharing itself.
    properties, sharing = spark_submit_sharing(conf_dir)
    submit = root / "submit-bin" / "spark-submit"
    submit.parent.mkdir()
    submit.write_text(f"#!/bin/sh\nexport SPARK_CONF_DIR={shlex.quote(sharing['SPARK_CONF_DIR'])}"
                      f"\nexec {shlex.quote(str(BIN / 'spark-submit'))} \"$@\"\n")
    submit.chmod(0o755)
    env.update(
        AIRFLOW_CONN_SPARK_DEFAULT=json.dumps({"conn_type": "spark", "host": "local[2]"}),
        SPARK_CONF_DIR=str(conf_dir),
        TALLY_SPARK_CONF=json.dumps(properties),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        PATH=os.pathsep.join([str(submit.parent), str(BIN), os.environ["PATH"]]),
    )
    started = time.perf_counter()
    result, output = run_in_airflow(airflow_python, RUN, NIGHT, root, env, timeout=900)
    result["wall_s"] = time.perf_counter() - started
    # report's `tally sql --format table`: run_date, model, score_column, metric, value
    rows = {(run_date, model, metric): float(value) for run_date, model, _, metric, value
            in HEADLINE_ROW.findall(output)}
    return {**result, "output": output, "rows": rows, "reference": reference,
            "reports": root / "reports"}


@pytest.mark.e2e
def test_a_failed_check_fails_its_task_and_the_dag_run_not_the_others(nightly_run):
    print(f"DAG run: {nightly_run['wall_s']:.0f} s (migrate {nightly_run['migrate_s']:.1f} s)")
    assert nightly_run["tasks"] == {
        "evaluate_ctr": "success",
        "evaluate_fraud": "failed",  # exit 6: roc_auc >= 0.99 failed
        "report": "success",  # all_done: after the failed task too
        "gate": "failed",  # one_failed
    }, nightly_run["output"][-20000:]
    assert nightly_run["state"] == "failed"
    assert "Error code is: 6." in nightly_run["output"]


@pytest.mark.e2e
def test_the_nights_metrics_match_scikit_learn_also_those_of_the_failed_check(nightly_run):
    expected = {model: roc_auc_score(ref["label"], ref["score"])
                for model, ref in nightly_run["reference"].items()}
    assert expected["ctr"] >= 0.5 and expected["fraud"] < 0.99  # so fraud's check fails
    for model, (run_date, _, _) in MODELS.items():
        got = {name: nightly_run["rows"][run_date, model, name]
               for name in ("count", "invalid_rows", "roc_auc", "roc_auc_error_bound")}
        assert got["count"] == len(nightly_run["reference"][model]["label"])
        assert got["invalid_rows"] == ROWS - got["count"]
        assert abs(got["roc_auc"] - expected[model]) <= got["roc_auc_error_bound"] + 1e-12


@pytest.mark.e2e
def test_the_offset_config_evaluated_three_nights_earlier(nightly_run):
    assert nightly_run["args"]["evaluate_fraud"][-2:] == ["--run-date", LABELS_LATE]
    assert nightly_run["args"]["evaluate_ctr"][-2:] == ["--run-date", NIGHT]
    written = {(run_date, model) for run_date, model, _ in nightly_run["rows"]}
    assert written == {(NIGHT, "ctr"), (LABELS_LATE, "fraud")}  # of NIGHT and NIGHT - 3


@pytest.mark.e2e
def test_report_wrote_a_page_per_config_with_its_checks(nightly_run):
    pages = nightly_run["reports"]
    assert sorted(p.name for p in pages.iterdir()) == [
        f"ctr-{NIGHT}.html", f"fraud-{LABELS_LATE}.html"]
    ctr = (pages / f"ctr-{NIGHT}.html").read_text()
    fraud = (pages / f"fraud-{LABELS_LATE}.html").read_text()
    assert "<h2>Checks: 1 passed, 0 failed</h2>" in ctr
    assert "<h2>Checks: 0 passed, 1 failed</h2>" in fraud
    assert "<td>roc_auc &gt;= 0.99</td>" in fraud
