"""`make package` builds an artifact that runs the job under `spark-submit --py-files` alone.

The job runs from a temporary folder without `lib/`, under an interpreter that sees the
project venv's packages (pyspark, numpy, pandas, pyarrow, PyYAML) but not Tally's
editable install: a throwaway venv whose only `.pth` line names the project venv's
site-packages, so the `.pth` files there (the editable `lib/` path among them) are not
processed. `tally` can then only come from the zip, on the driver and on the executors.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sysconfig
import venv
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pyspark
import pytest

from helpers import BIN, PROJECT_ROOT, package, spark_submit_sharing, write_spark_conf
from tally.demo import write_demo_dataset

pytestmark = pytest.mark.e2e

ROWS = 30_000
CONFIG = """\
model: packaged
input: {path: data, format: parquet}
columns: {label: label, score: score}
output: {table: tally_pkg.metrics}
"""
#: One spark-submit (each costs a JVM start): jobs/evaluate.py run as spark-submit runs it (as
#: ``__main__``, its exit code printed), then where tally is imported from on the driver and on
#: the executors, then the job's metrics read back with SQL (as CSV lines).
PROBE = """\
import csv, runpy, sys
job, sys.argv = sys.argv[1], sys.argv[1:]
try:
    runpy.run_path(job, run_name="__main__")
except SystemExit as done:
    print("job exit", done.code, flush=True)

import tally
from pyspark.sql import SparkSession

def where(_):
    import tally
    yield tally.__file__

spark = SparkSession.builder.enableHiveSupport().getOrCreate()
print("driver", tally.__file__)
for path in sorted(set(spark.sparkContext.parallelize(range(2), 2).mapPartitions(where).collect())):
    print("executor", path)
rows = spark.sql(
    "SELECT metric, value FROM tally_pkg.metrics WHERE model = 'packaged' "
    "AND run_date = DATE'2026-11-22' AND threshold IS NULL AND slice = 'ALL'"
).collect()
out = csv.writer(sys.stdout)
out.writerow(["sql", "metric", "value"])
out.writerows(["sql", r.metric, repr(r.value)] for r in rows)
spark.stop()
"""


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package`'s zip, copied out of the project."""
    copy = package(tmp_path_factory.mktemp("artifact"))
    names = zipfile.ZipFile(copy).namelist()
    assert "tally/__init__.py" in names and "tally/cli.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    return copy


@pytest.fixture(scope="module")
def python_without_tally(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An interpreter with the project venv's packages but without Tally's editable path."""
    root = tmp_path_factory.mktemp("venv")
    venv.create(root, with_pip=False, symlinks=True)
    python = root / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=root, env=os.environ.copy()).stdout.strip()
    (Path(purelib) / "project_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, python_without_tally: Path):
    root = tmp_path_factory.mktemp("packaged")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        SPARK_CONF_DIR=str(write_spark_conf(root)),
        SPARK_HOME=str(Path(pyspark.__file__).parent),
        PYSPARK_PYTHON=str(python_without_tally),
        PYSPARK_DRIVER_PYTHON=str(python_without_tally),
        PYTHONNOUSERSITE="1",
    )
    write_demo_dataset(root / "data", rows=ROWS, seed=5, files=2)
    (root / "job.yaml").write_text(CONFIG)
    assert not (root / "lib").exists()
    return root, env


def test_the_interpreter_cannot_import_tally_from_the_source_tree(workspace, python_without_tally):
    root, env = workspace
    done = run([str(python_without_tally), "-c", "import pyspark, numpy, pandas, pyarrow, yaml; "
                "import tally"], cwd=root, env=env)
    assert done.returncode == 1
    assert "No module named 'tally'" in done.stderr


@pytest.fixture(scope="module")
def submitted(workspace, artifact) -> dict[str, subprocess.CompletedProcess]:
    """`spark-submit --py-files <zip> probe.py jobs/evaluate.py ...`: the job, then the probe."""
    root, env = workspace
    (root / "probe.py").write_text(PROBE)
    properties, sharing = spark_submit_sharing(Path(env["SPARK_CONF_DIR"]))
    submit = [str(BIN / "spark-submit"), "--master", "local[2]", "--py-files", str(artifact),
              *(f"--conf={key}={value}" for key, value in properties.items())]
    done = run([*submit, "probe.py", str(PROJECT_ROOT / "jobs" / "evaluate.py"),
                "--config", "job.yaml", "--run-date", "2026-11-22"], cwd=root,
               env={**env, **sharing})
    return {"job": done, "probe": done}


def test_spark_submit_imports_tally_from_the_zip_on_driver_and_executors(submitted, artifact):
    done = submitted["probe"]
    assert done.returncode == 0, done.stderr
    lines = [line.split(" ", 1) for line in done.stdout.splitlines() if " " in line]
    where = {role: path for role, path in lines if role in ("driver", "executor")}
    assert set(where) == {"driver", "executor"}, done.stdout
    for path in where.values():  # e.g. <spark local dir>/.../tally-0.1.0.zip/tally/__init__.py
        assert f"{artifact.name}/tally/__init__.py" in path, done.stdout


def test_packaged_job_writes_metrics_readable_with_sql(workspace, submitted):
    root, _ = workspace
    done = submitted["job"]
    assert done.returncode == 0, done.stderr
    assert "job exit 0" in done.stdout.splitlines(), done.stdout
    # spark-submit passes the Python driver's stderr (the job's log) on to its own stdout
    assert f"read {ROWS:,} rows" in done.stdout + done.stderr

    read_back = submitted["probe"]
    assert read_back.returncode == 0, read_back.stderr
    lines = [line for line in read_back.stdout.splitlines() if line.startswith("sql,")]
    got = {r["metric"]: r["value"] for r in csv.DictReader(io.StringIO("\n".join(lines)))}
    valid = pq.read_table(root / "data").column("score").drop_null()
    assert float(got["count"]) == len(valid) > 0
    assert float(got["invalid_rows"]) == ROWS - len(valid)
    assert 0.5 < float(got["roc_auc"]) < 1.0
