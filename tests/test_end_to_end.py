"""The job as users run it: `tally evaluate` and `spark-submit jobs/evaluate.py`, results read
back through SQL (`tally sql`) and checked against scikit-learn on the same rows."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    roc_auc_score,
)

from helpers import PROJECT_ROOT, write_spark_conf
from tally.demo import write_demo_dataset

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
ROWS = 60_000
CONFIG = """\
model: e2e
input: {path: data, format: parquet}
columns: {label: label, score: score}
metrics: {buckets: 65536, thresholds: [0.3, 0.5]}
output: {table: tally_e2e.metrics}
"""


class Workspace:
    """A folder a user would run the job from, with its own catalog and data."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            **os.environ,
            "SPARK_CONF_DIR": str(write_spark_conf(root)),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
        write_demo_dataset(root / "data", rows=ROWS, seed=3, files=3)
        (root / "job.yaml").write_text(CONFIG)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=300
        )

    def tally(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(str(BIN / "tally"), *args)

    def sql(self, query: str) -> list[dict[str, str]]:
        done = self.tally("sql", "--format", "csv", query)
        assert done.returncode == 0, done.stderr
        return list(csv.DictReader(io.StringIO(done.stdout)))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """The same rows as the workspace's data, read with pyarrow for scikit-learn."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_demo_dataset(Path(tmp), rows=ROWS, seed=3, files=3)
        table = pq.read_table(tmp)
    label = table.column("label").to_numpy()
    score = table.column("score").to_numpy(zero_copy_only=False)  # nulls become NaN
    valid = ~np.isnan(score)
    return {"label": label[valid], "score": score[valid].astype(np.float64),
            "invalid": int((~valid).sum())}


def metrics_of(workspace: Workspace, run_date: str) -> dict[tuple[str, str], str]:
    rows = workspace.sql(
        "SELECT metric, threshold, value FROM tally_e2e.metrics "
        f"WHERE model = 'e2e' AND run_date = DATE'{run_date}'"
    )
    return {(r["metric"], r["threshold"]): r["value"] for r in rows}


def test_tally_evaluate_writes_metrics_that_match_scikit_learn(workspace, reference):
    done = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", "2026-11-22")
    assert done.returncode == 0, done.stderr
    assert f"read {ROWS:,} rows ({reference['invalid']} invalid)" in done.stderr

    got = metrics_of(workspace, "2026-11-22")
    y, s = reference["label"], reference["score"]
    assert float(got[("count", "")]) == len(y)
    assert float(got[("invalid_rows", "")]) == reference["invalid"]
    assert float(got[("invalid_rows_null_score", "")]) == reference["invalid"]
    bound = float(got[("roc_auc_error_bound", "")])
    assert abs(float(got[("roc_auc", "")]) - roc_auc_score(y, s)) <= bound + 1e-12
    assert bound < 1e-4
    assert float(got[("pr_auc", "")]) == pytest.approx(average_precision_score(y, s), abs=1e-3)
    assert float(got[("log_loss", "")]) == pytest.approx(log_loss(y, s), rel=1e-12)
    assert float(got[("brier", "")]) == pytest.approx(brier_score_loss(y, s), rel=1e-12)
    for t in (0.3, 0.5):
        tn, fp, fn, tp = confusion_matrix(y, s >= t, labels=[0, 1]).ravel()
        assert [float(got[(m, str(t))]) for m in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]


def test_spark_submit_runs_the_same_job_and_a_rerun_replaces_its_rows(workspace):
    submit = str(BIN / "spark-submit")
    job = str(PROJECT_ROOT / "jobs" / "evaluate.py")
    for thresholds in ("[0.5]", "[0.4, 0.6]"):  # the rerun changes the thresholds
        done = workspace.run(submit, job, "--config", "job.yaml", "--run-date", "2026-11-23",
                             "--set", f"metrics.thresholds={thresholds}")
        assert done.returncode == 0, done.stderr
    # one query (each `tally sql` starts a JVM): rows per (date, metric, threshold)
    rows = workspace.sql(
        "SELECT CAST(run_date AS STRING) AS run_date, metric, threshold, count(*) AS n "
        "FROM tally_e2e.metrics WHERE model = 'e2e' GROUP BY run_date, metric, threshold"
    )
    assert [r for r in rows if r["n"] != "1"] == []  # the rerun replaced, not appended
    thresholds = {d: {r["threshold"] for r in rows if r["run_date"] == d and r["metric"] == "tp"}
                  for d in ("2026-11-22", "2026-11-23")}
    assert thresholds["2026-11-23"] == {"0.4", "0.6"}
    assert thresholds["2026-11-22"] == {"0.3", "0.5"}  # the other date is untouched


def test_bad_config_fails_before_spark_starts_naming_the_key(workspace):
    done = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", "2026-11-22",
                           "--set", "metrics.bukets=10")
    assert done.returncode == 2
    assert "unknown key 'metrics.bukets'; did you mean 'metrics.buckets'?" in done.stderr
    assert "SparkContext" not in done.stderr and "Spark" not in done.stderr


def test_failures_exit_non_zero_and_write_nothing(workspace):
    missing = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", "2026-11-24",
                              "--set", "columns.score=prob")
    assert missing.returncode == 3
    assert "score column 'prob' not found" in missing.stderr
    invalid = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", "2026-11-24",
                              "--set", "on_invalid=fail")
    assert invalid.returncode == 4
    assert "null_score=3" in invalid.stderr
    nowhere = workspace.tally("evaluate", "--config", "job.yaml", "--run-date", "2026-11-24",
                              "--set", "input.path=no/such/folder")
    assert nowhere.returncode == 3
    assert "tally: error: cannot read input path no/such/folder" in nowhere.stderr
    for done in (missing, invalid, nowhere):  # Spark's own warnings and Java traces stay quiet
        assert "at org.apache" not in done.stderr and " WARN " not in done.stderr
    assert metrics_of(workspace, "2026-11-24") == {}
